"""Cross-network search on the local chains: where does a hash exist (the wrong-network check)."""

from __future__ import annotations

import secrets
import threading
from typing import Any

import pytest

from chains.base import AssetKind, ChainAdapter, InvalidChainInput, TxStatus
from chains.evm import EvmAdapter
from chains.search import CrossNetworkSearch
from tests.fixtures_anvil import EvmTestbed, LocalNode, Reply, dead_url, fresh_address, network_variant

pytestmark = pytest.mark.anvil


def adapters_on(testbed: EvmTestbed, **urls: str) -> dict[str, ChainAdapter]:
    """One new adapter per test network, on the URLs given (default: the network's anvil)."""
    out: dict[str, ChainAdapter] = {}
    for name in ("ethereum", "bsc"):
        base = testbed.config.network(name)
        url = urls.get(name)
        network = network_variant(base, url, retry_attempts=1) if url else base
        out[name] = EvmAdapter(network)
    return out


def test_a_hash_that_exists_only_on_the_other_chain_is_found_there(evm_testbed: EvmTestbed) -> None:
    """USDT sent on BNB Smart Chain to an address the user meant for Ethereum: found on bsc only."""
    deposit = fresh_address()
    amount = 50 * 10**18
    tx_hash = evm_testbed.send_token("bsc", "USDT", deposit, amount)
    search = CrossNetworkSearch(evm_testbed.config)
    assert set(search.adapters) == {"ethereum", "bsc"}

    result = search.find(tx_hash)
    assert result.networks == ("bsc",)
    assert result.missing == ("ethereum",)
    assert result.complete and not result.nowhere
    obs = result.found["bsc"]
    assert obs.status is TxStatus.SUCCESS
    (transfer,) = obs.transfers
    assert (transfer.kind, transfer.recipient, transfer.amount, transfer.decimals) == (
        AssetKind.TOKEN, deposit, amount, 18
    )


def test_each_hash_is_found_where_it_is(evm_testbed: EvmTestbed) -> None:
    on_eth = evm_testbed.send_native("ethereum", fresh_address(), 10**15)
    on_bsc = evm_testbed.send_native("bsc", fresh_address(), 10**15)
    nowhere = "0x" + secrets.token_hex(32)
    shouted = "0x" + on_eth[2:].upper()
    results = CrossNetworkSearch(evm_testbed.config).find_many([on_eth, on_bsc, nowhere, shouted])
    assert list(results) == [on_eth, on_bsc, nowhere, shouted]  # keyed by what was asked
    assert results[on_eth].networks == ("ethereum",) and results[shouted].networks == ("ethereum",)
    assert results[on_bsc].networks == ("bsc",)
    assert results[nowhere].nowhere and set(results[nowhere].missing) == {"ethereum", "bsc"}


def test_a_network_that_cannot_answer_is_unavailable_not_missing(evm_testbed: EvmTestbed) -> None:
    """With ethereum's node down, a hash unknown to bsc is not "nowhere": ethereum could not say."""
    search = CrossNetworkSearch(evm_testbed.config, adapters=adapters_on(evm_testbed, ethereum=dead_url()))
    result = search.find("0x" + secrets.token_hex(32))
    assert set(result.unavailable) == {"ethereum"} and "connection error" in result.unavailable["ethereum"]
    assert result.missing == ("bsc",)
    assert not result.complete and not result.nowhere


def test_networks_are_asked_at_once(evm_testbed: EvmTestbed) -> None:
    """Each node holds its answer until the other has been asked too: a search that asked one
    network after the other would find the first node stuck and the network unavailable."""
    both_asked = threading.Barrier(2, timeout=10)

    def wait_for_the_other(request: Any, _: int) -> Reply | None:
        try:
            both_asked.wait()
        except threading.BrokenBarrierError:
            return Reply(b"the other network was never asked", 503)
        return None

    with (
        LocalNode(wait_for_the_other, upstream=evm_testbed.url("ethereum")) as eth,
        LocalNode(wait_for_the_other, upstream=evm_testbed.url("bsc")) as bsc,
    ):
        search = CrossNetworkSearch(evm_testbed.config, adapters=adapters_on(evm_testbed, ethereum=eth.url,
                                                                              bsc=bsc.url))
        result = search.find("0x" + secrets.token_hex(32))
        assert len(eth.received) == len(bsc.received) == 1  # one batch per network for the whole search
    assert result.nowhere


def test_invalid_hashes_are_refused_before_any_request(evm_testbed: EvmTestbed) -> None:
    with LocalNode(upstream=evm_testbed.url("ethereum")) as eth, LocalNode(upstream=evm_testbed.url("bsc")) as bsc:
        search = CrossNetworkSearch(evm_testbed.config, adapters=adapters_on(evm_testbed, ethereum=eth.url,
                                                                              bsc=bsc.url))
        with pytest.raises(InvalidChainInput) as caught:
            search.find_many(["0x" + secrets.token_hex(32), "0xnot-a-hash"])
        assert caught.value.field == "tx_hash"
        assert search.find_many([]) == {}
        assert eth.received == [] and bsc.received == []


def test_a_family_without_networks_is_refused(evm_testbed: EvmTestbed) -> None:
    with pytest.raises(ValueError, match="no bitcoin-cash networks"):
        CrossNetworkSearch(evm_testbed.config, "bitcoin-cash")
