"""The EVM adapter against real local chains (anvil, chain ids 1 and 56), and against real local
HTTP servers standing in for nodes that are down, answer garbage or rate-limit."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
import requests
from web3.middleware import ExtraDataToPOAMiddleware

from chains import devchain
from chains.base import AssetKind, ChainUnavailable, InvalidChainInput, Observation, Transfer, TxStatus
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from chains.evm import EvmAdapter
from tests.fixtures_anvil import (
    FUNDER,
    Behaviour,
    EvmTestbed,
    LocalNode,
    Reply,
    dead_url,
    fresh_address,
    network_variant,
    rpc_error,
)

pytestmark = pytest.mark.anvil

NETWORKS = ["ethereum", "bsc"]
GAS_PRICE = 100 * 10**9  # what seed_transfers pays


def raw(testbed: EvmTestbed, network: str, method: str, *params: Any) -> Any:
    return devchain.rpc(testbed.url(network)).call(method, list(params))


def head_number(testbed: EvmTestbed, network: str) -> int:
    return int(raw(testbed, network, "eth_blockNumber"), 16)


def adapter_on(testbed: EvmTestbed, network: str, *urls: str, **changes: object) -> EvmAdapter:
    """A new adapter for ``network`` (own caches) on other URLs and/or with other settings."""
    base = testbed.config.network(network)
    return EvmAdapter(network_variant(base, *(urls or base.rpc_urls), **changes))


def native(sender: str, recipient: str, amount: int, index: int = 0, *, internal: bool = False) -> Transfer:
    return Transfer(AssetKind.NATIVE, sender, recipient, amount, index=index, internal=internal)


@pytest.fixture(scope="module")
def six_and_eighteen(evm_testbed: EvmTestbed) -> dict[int, str]:
    """Unlisted tokens on ethereum with 6 and 18 decimals, held by FUNDER."""
    return {
        6: evm_testbed.new_token("ethereum", "Six Dollar", "SIX", 6, 10**15),
        18: evm_testbed.new_token("ethereum", "Eighteen Coin", "EIGHTEEN", 18, 10**30),
    }


@pytest.fixture
def proxy(evm_testbed: EvmTestbed) -> Iterator[LocalNode]:
    """A transparent proxy in front of the ethereum anvil that records every request."""
    with LocalNode(upstream=evm_testbed.url("ethereum")) as node:
        yield node


# --------------------------------------------------------------------------- what a lookup says


@pytest.mark.parametrize("network", NETWORKS)
def test_native_transfer(evm_testbed: EvmTestbed, network: str) -> None:
    to = fresh_address()
    tx_hash = evm_testbed.send_native(network, to, 123_456_789)
    obs = evm_testbed.adapter(network).lookup(tx_hash)
    block = raw(evm_testbed, network, "eth_getBlockByNumber", hex(obs.block_number or 0), False)

    assert (obs.network, obs.tx_hash, obs.status) == (network, tx_hash.lower(), TxStatus.SUCCESS)
    assert obs.sender == FUNDER
    assert obs.transfers == (native(FUNDER, to, 123_456_789),)
    assert obs.block_hash == block["hash"] and obs.block_number == int(block["number"], 16)
    assert obs.timestamp == datetime.fromtimestamp(int(block["timestamp"], 16), tz=UTC)
    assert obs.confirmations == head_number(evm_testbed, network) - int(block["number"], 16) + 1
    assert obs.fee == 21_000 * GAS_PRICE
    assert obs.details["internal_transfers"] == "not needed"  # no code ran: nothing to trace


@pytest.mark.parametrize("network", NETWORKS)
def test_a_hash_is_found_whatever_its_case(evm_testbed: EvmTestbed, network: str) -> None:
    tx_hash = evm_testbed.send_native(network, fresh_address(), 5)
    shouted = "0x" + tx_hash[2:].upper()
    answers = evm_testbed.adapter(network).lookup_many([shouted, tx_hash])
    assert set(answers) == {shouted, tx_hash}  # keyed by what was asked
    assert answers[shouted].tx_hash == tx_hash.lower() and answers[shouted] == answers[tx_hash]


@pytest.mark.parametrize(("network", "decimals"), [("ethereum", 6), ("bsc", 18)])
def test_listed_usdt_transfer_with_its_decimals(evm_testbed: EvmTestbed, network: str, decimals: int) -> None:
    """USDT has 6 decimals on Ethereum and 18 on BNB Smart Chain, read from the contract itself."""
    to = fresh_address()
    amount = 12 * 10**decimals + 34
    tx_hash = evm_testbed.send_token(network, "USDT", to, amount)
    obs = evm_testbed.adapter(network).lookup(tx_hash)
    asset = evm_testbed.config.asset_by_symbol(network, "USDT")
    assert asset is not None and asset.decimals == decimals

    assert obs.status is TxStatus.SUCCESS
    (transfer,) = obs.transfers
    assert (transfer.kind, transfer.sender, transfer.recipient) == (AssetKind.TOKEN, FUNDER, to)
    assert transfer.amount == amount
    assert transfer.contract == asset.contract  # checksummed, the configured mainnet address
    assert (transfer.symbol, transfer.decimals) == ("USDT", decimals)
    assert transfer.index == 0  # the log index
    assert obs.details["to"] == asset.contract and obs.details["method"] == "0xa9059cbb"


@pytest.mark.parametrize("decimals", [6, 18])
def test_unlisted_token_metadata_is_read_on_chain(
    evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str], decimals: int
) -> None:
    token = six_and_eighteen[decimals]
    to = fresh_address()
    tx_hash = evm_testbed.send_token("ethereum", token, to, 7 * 10**decimals)
    (transfer,) = adapter_on(evm_testbed, "ethereum").lookup(tx_hash).transfers
    assert (transfer.contract, transfer.recipient, transfer.amount) == (token, to, 7 * 10**decimals)
    assert (transfer.decimals, transfer.symbol, transfer.token_name) == (
        decimals, "SIX" if decimals == 6 else "EIGHTEEN", "Six Dollar" if decimals == 6 else "Eighteen Coin"
    )


def test_token_metadata_and_block_timestamps_are_cached(
    evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str], proxy: LocalNode
) -> None:
    tx_hash = evm_testbed.send_token("ethereum", six_and_eighteen[6], fresh_address(), 1)
    evm_testbed.mine("ethereum")  # its block is not the head (whose timestamp comes with round one)
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url)
    first = adapter.lookup(tx_hash)
    assert "eth_call" in proxy.methods and "eth_getBlockByHash" in proxy.methods
    proxy.received.clear()
    assert adapter.lookup(tx_hash) == first
    assert "eth_call" not in proxy.methods and "eth_getBlockByHash" not in proxy.methods
    assert adapter.token_info(six_and_eighteen[6]).decimals == 6 and not proxy.received[2:]


def test_a_transient_error_is_not_remembered_as_token_metadata(
    evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str], forwarded: dict[str, Any]
) -> None:
    """An eth_call answered "header not found" (a lagging node behind a load balancer) leaves the
    decimals unknown this time and is asked again; a revert (no such function) is an answer."""
    tx_hash = evm_testbed.send_token("ethereum", six_and_eighteen[6], fresh_address(), 10)

    lagged: list[bool] = []

    def lagging_once(request: Any, _: int) -> Reply | None:
        if not isinstance(request, list) or lagged or not any(c["method"] == "eth_call" for c in request):
            return None
        lagged.append(True)
        real = requests.post(evm_testbed.url("ethereum"), json=request, timeout=30).json()
        methods = {c["id"]: c["method"] for c in request}
        for answer in real:
            if methods[answer["id"]] == "eth_call":
                answer.pop("result", None)
                answer["error"] = {"code": -32000, "message": "header not found"}
        return Reply(real)

    with LocalNode(lagging_once, upstream=evm_testbed.url("ethereum")) as lagging:
        adapter = adapter_on(evm_testbed, "ethereum", lagging.url)
        (first,) = adapter.lookup(tx_hash).transfers
        (second,) = adapter.lookup(tx_hash).transfers
        assert lagging.methods.count("eth_call") == 6  # asked twice
        assert first.decimals is None and second.decimals == 6
        assert adapter.token_info(forwarded["forwarder"]).decimals is None  # reverts: not a token
        asked = len(lagging.received)
        assert adapter.token_info(forwarded["forwarder"]).symbol is None
        assert len(lagging.received) == asked  # the revert was remembered


def test_a_transaction_in_the_pool_is_pending(evm_testbed: EvmTestbed) -> None:
    transport = devchain.rpc(evm_testbed.url("bsc"))
    to = fresh_address()
    adapter = evm_testbed.adapter("bsc")
    with devchain.automine_off(transport):
        tx = {"from": FUNDER, "to": to, "value": hex(5), "gas": hex(21_000)}
        tx_hash = transport.call("eth_sendTransaction", [tx])
        pending = adapter.lookup(tx_hash)
        devchain.mine_until_empty(transport)
    assert pending.status is TxStatus.PENDING and pending.found
    assert (pending.block_number, pending.block_hash, pending.confirmations, pending.transfers) == (None, None, 0, ())
    assert pending.sender == FUNDER and pending.details["attempted"] == {"to": to, "value": "5"}
    mined = adapter.lookup(tx_hash)
    assert mined.status is TxStatus.SUCCESS and mined.transfers == (native(FUNDER, to, 5),)


def test_reverted_transfer_is_failed_and_moves_nothing(
    evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str]
) -> None:
    broke = DEV_ACCOUNTS[9]  # holds none of this token: the transfer reverts
    to = fresh_address()
    (tx_hash,) = devchain.seed_transfers(
        evm_testbed.url("ethereum"), [SeedTransfer(broke, to, token=six_and_eighteen[6], amount=5_000_000)]
    )
    obs = evm_testbed.adapter("ethereum").lookup(tx_hash)
    assert obs.status is TxStatus.FAILED
    assert obs.transfers == ()
    assert obs.sender == broke and obs.block_hash is not None and obs.confirmations >= 1
    assert obs.fee is not None and obs.fee > 0  # the sender still paid for gas
    assert obs.details["attempted"]["token_transfer"] == {
        "contract": six_and_eighteen[6], "recipient": to, "amount": "5000000",
    }


def test_a_contract_moving_several_tokens_in_one_transaction(
    evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str]
) -> None:
    """Every Transfer log comes from a token contract, none from tx.to (the MultiTransfer contract)."""
    multi = evm_testbed.deploy("ethereum", "MultiTransfer")
    listed = evm_testbed.tokens["ethereum"]
    tokens = [listed["USDT"], listed["USDC"], six_and_eighteen[18]]
    recipients = [fresh_address(), fresh_address(), fresh_address()]
    amounts = [11_000_000, 22_000_000, 33 * 10**18]
    for token, amount in zip(tokens, amounts, strict=True):
        evm_testbed.transact("ethereum", "TestToken", token, "approve", multi, amount)
    tx_hash = evm_testbed.transact("ethereum", "MultiTransfer", multi, "multiTransfer", tokens, recipients, amounts)

    obs = evm_testbed.adapter("ethereum").lookup(tx_hash)
    receipt = raw(evm_testbed, "ethereum", "eth_getTransactionReceipt", tx_hash)
    assert obs.status is TxStatus.SUCCESS and obs.details["to"] == multi
    assert [(t.kind, t.contract, t.sender, t.recipient, t.amount) for t in obs.transfers] == [
        (AssetKind.TOKEN, token, FUNDER, to, amount)
        for token, to, amount in zip(tokens, recipients, amounts, strict=True)
    ]
    assert [t.index for t in obs.transfers] == [int(log["logIndex"], 16) for log in receipt["logs"]]
    assert [t.decimals for t in obs.transfers] == [6, 6, 18]
    assert obs.details["internal_transfers"] == "traced"  # code ran; no native value moved


# --------------------------------------------------------------------------- internal transfers


@pytest.fixture(scope="module")
def forwarded(evm_testbed: EvmTestbed) -> dict[str, Any]:
    """Native coin sent to a Forwarder, which passes it on to ``target`` (an internal transfer),
    and a forwardMany splitting value over two recipients."""
    target, first, second = fresh_address(), fresh_address(), fresh_address()
    forwarder = evm_testbed.deploy("ethereum", "Forwarder", target)
    (plain,) = devchain.seed_transfers(
        evm_testbed.url("ethereum"), [SeedTransfer(FUNDER, forwarder, value=777, gas=100_000)]
    )
    split = evm_testbed.transact(
        "ethereum", "Forwarder", forwarder, "forwardMany", [first, second], [300, 400], value=700
    )
    return {"forwarder": forwarder, "target": target, "plain": plain, "split": split, "recipients": (first, second)}


def expected_forwarding(forwarded: dict[str, Any]) -> dict[str, tuple[Transfer, ...]]:
    fwd = forwarded["forwarder"]
    first, second = forwarded["recipients"]
    return {
        "plain": (native(FUNDER, fwd, 777), native(fwd, forwarded["target"], 777, 1, internal=True)),
        "split": (native(FUNDER, fwd, 700), native(fwd, first, 300, 1, internal=True),
                  native(fwd, second, 400, 2, internal=True)),
    }


@pytest.mark.parametrize(("settings", "method"), [
    ({}, "trace_transaction"),  # parity traces, one call per transaction
    ({"trace_block_min_txs": 1}, "trace_block"),  # one call per block
    ({"features": ["debug_trace"]}, "debug_traceTransaction"),  # geth's call tracer
], ids=["trace_transaction", "trace_block", "debug_traceTransaction"])
def test_internal_transfer_through_a_forwarding_contract(
    evm_testbed: EvmTestbed, forwarded: dict[str, Any], proxy: LocalNode, settings: dict[str, Any], method: str
) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, **settings)
    answers = adapter.lookup_many([forwarded["plain"], forwarded["split"]])
    expected = expected_forwarding(forwarded)
    for key in ("plain", "split"):
        obs = answers[forwarded[key]]
        assert obs.transfers == expected[key]
        assert obs.details["internal_transfers"] == "traced"
    traced_with = {m for m in proxy.methods if m.startswith(("trace_", "debug_"))}
    assert traced_with == {method}
    assert "trace" in adapter.features


@pytest.mark.parametrize(("settings", "method"), [
    ({}, "trace_transaction"),  # 4 of the block's 20 transactions: under the default share (a quarter)
    ({"trace_block_min_share": 0.2}, "trace_block"),  # a fifth is enough
    ({"trace_block_min_share": 0}, "trace_block"),  # whenever trace_block_min_txs (4) are wanted
    ({"trace_block_min_share": 0.2, "trace_block_min_txs": 5}, "trace_transaction"),
], ids=["default", "share-0.2", "share-0", "min-txs-5"])
def test_a_block_is_traced_whole_only_for_a_good_share_of_its_transactions(
    evm_testbed: EvmTestbed, proxy: LocalNode, settings: dict[str, Any], method: str
) -> None:
    """``trace_block`` answers with every transaction's traces: four contract calls in a block of
    twenty are traced one by one unless the configured share says otherwise; the result is the same."""
    target = fresh_address()
    forwarder = evm_testbed.deploy("ethereum", "Forwarder", target)
    calls = [SeedTransfer(FUNDER, forwarder, value=100 + i, gas=100_000) for i in range(4)]
    plain = [SeedTransfer(DEV_ACCOUNTS[1], fresh_address(), value=1) for _ in range(16)]
    hashes = devchain.seed_transfers(evm_testbed.url("ethereum"), [*calls, *plain])
    receipts = [raw(evm_testbed, "ethereum", "eth_getTransactionReceipt", h) for h in hashes]
    assert len({r["blockHash"] for r in receipts}) == 1  # one block of twenty
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, **settings)
    answers = adapter.lookup_many(hashes[:4])
    for i, tx_hash in enumerate(hashes[:4]):
        assert answers[tx_hash].transfers == (native(FUNDER, forwarder, 100 + i),
                                              native(forwarder, target, 100 + i, 1, internal=True))
    traced_with = [m for m in proxy.methods if m.startswith("trace_")]
    assert traced_with == ([method] * 4 if method == "trace_transaction" else [method])


@pytest.mark.parametrize("share", [-0.1, 1.5, "half", True])
def test_a_bad_trace_block_share_is_refused_by_name(evm_testbed: EvmTestbed, share: object) -> None:
    with pytest.raises(ValueError, match="ethereum: trace_block_min_share must be a number from 0 to 1"):
        adapter_on(evm_testbed, "ethereum", trace_block_min_share=share)


def test_a_node_without_parity_traces_falls_back_to_the_call_tracer(
    evm_testbed: EvmTestbed, forwarded: dict[str, Any]
) -> None:
    def no_trace_namespace(request: Any, _: int) -> Reply | None:
        methods = [c["method"] for c in (request if isinstance(request, list) else [request])]
        if any(m.startswith("trace_") for m in methods):
            return rpc_error(request, -32601, "the method trace_transaction does not exist/is not available")
        return None

    with LocalNode(no_trace_namespace, upstream=evm_testbed.url("ethereum")) as geth_like:
        adapter = adapter_on(evm_testbed, "ethereum", geth_like.url)
        obs = adapter.lookup(forwarded["plain"])
        assert "debug_traceTransaction" in geth_like.methods
    assert obs.transfers == expected_forwarding(forwarded)["plain"]
    assert "parity_trace" not in adapter.features and {"trace", "debug_trace"} <= adapter.features


def test_a_node_that_cannot_trace_says_so(evm_testbed: EvmTestbed, forwarded: dict[str, Any]) -> None:
    def no_tracing(request: Any, _: int) -> Reply | None:
        methods = [c["method"] for c in (request if isinstance(request, list) else [request])]
        if any(m.startswith(("trace_", "debug_")) for m in methods):
            return rpc_error(request, -32601, "method not found")
        return None

    with LocalNode(no_tracing, upstream=evm_testbed.url("ethereum")) as plain_node:
        adapter = adapter_on(evm_testbed, "ethereum", plain_node.url)
        obs = adapter.lookup(forwarded["plain"])
    assert obs.transfers == expected_forwarding(forwarded)["plain"][:1]  # only the top-level value
    assert obs.details["internal_transfers"] == "not traced: the node does not support tracing"
    assert "trace" not in adapter.features
    # configured without tracing: not even asked
    quiet = adapter_on(evm_testbed, "ethereum", features=["trace_filter"])
    assert quiet.lookup(forwarded["plain"]).details["internal_transfers"].startswith("not traced")


# --------------------------------------------------------------------------- confirmations, blocks, reorgs


@pytest.mark.parametrize("network", NETWORKS)
def test_confirmations_grow_as_blocks_are_mined(evm_testbed: EvmTestbed, network: str) -> None:
    required = evm_testbed.config.network(network).confirmations
    tx_hash = evm_testbed.send_native(network, fresh_address(), 1)
    adapter = evm_testbed.adapter(network)
    assert adapter.lookup(tx_hash).confirmations == 1 < required
    evm_testbed.mine(network, required - 2)
    assert adapter.lookup(tx_hash).confirmations == required - 1
    evm_testbed.mine(network)
    assert adapter.lookup(tx_hash).confirmations == required


def test_block_hash_is_kept_so_a_recheck_sees_a_reorg(evm_testbed: EvmTestbed) -> None:
    """A transaction mined, then its block replaced (anvil snapshot/revert): the re-check finds the
    transaction gone and the same height under another hash."""
    url = evm_testbed.url("ethereum")
    watcher = adapter_on(evm_testbed, "ethereum")  # saw the chain before the reorg
    fresh = adapter_on(evm_testbed, "ethereum", head_memory_seconds=0)
    snapshot = devchain.snapshot(url)
    tx_hash = evm_testbed.send_native("ethereum", fresh_address(), 42)
    before = watcher.lookup(tx_hash)
    try:
        devchain.revert(url, snapshot)
        other = evm_testbed.send_native("ethereum", fresh_address(), 43)
        devchain.mine_until_empty(devchain.rpc(url))
        replaced = watcher.lookup(other)
        assert replaced.block_number == before.block_number
        assert replaced.block_hash != before.block_hash
        again = fresh.lookup(tx_hash)
        assert again.status is TxStatus.NOT_FOUND
    finally:
        evm_testbed.mine("ethereum", 2)


def test_a_node_below_a_head_already_seen_cannot_say_not_found(evm_testbed: EvmTestbed) -> None:
    """After the chain went back (revert), an adapter that saw a higher head treats "not found" as
    a node that is behind (try again later) until its memory of that head expires."""
    url = evm_testbed.url("ethereum")
    snapshot = devchain.snapshot(url)
    evm_testbed.mine("ethereum", 3)
    remembers = adapter_on(evm_testbed, "ethereum")
    forgets = adapter_on(evm_testbed, "ethereum", head_memory_seconds=0)
    unknown = "0x" + secrets.token_hex(32)
    assert not remembers.lookup(unknown).found and not forgets.lookup(unknown).found
    devchain.revert(url, snapshot)
    try:
        with pytest.raises(ChainUnavailable, match="behind"):
            remembers.lookup(unknown)
        assert forgets.lookup(unknown).status is TxStatus.NOT_FOUND
    finally:
        evm_testbed.mine("ethereum", 4)
    assert remembers.lookup(unknown).status is TxStatus.NOT_FOUND  # caught up


def test_a_node_whose_head_is_too_old_is_behind(evm_testbed: EvmTestbed) -> None:
    stale = adapter_on(evm_testbed, "ethereum", max_head_age_seconds=0, retry_attempts=1)
    with pytest.raises(ChainUnavailable, match="behind"):
        stale.lookup("0x" + secrets.token_hex(32))
    with pytest.raises(ChainUnavailable, match="behind"):
        stale.head()


@pytest.mark.parametrize("network", NETWORKS)
def test_head_through_web3(evm_testbed: EvmTestbed, network: str) -> None:
    head = evm_testbed.adapter(network).head()
    latest = raw(evm_testbed, network, "eth_getBlockByNumber", hex(head.number), False)
    assert head.hash == latest["hash"]
    assert head.timestamp == datetime.fromtimestamp(int(latest["timestamp"], 16), tz=UTC)


def test_proof_of_authority_headers_need_the_extra_data_middleware(evm_testbed: EvmTestbed) -> None:
    """BNB Smart Chain headers carry 97 bytes of extraData (vanity + validator seal); web3 refuses
    them without the middleware. A proxy in front of the bsc anvil serves such headers."""
    url = evm_testbed.url("bsc")

    def sealed(request: Any, _: int) -> Reply | None:
        if isinstance(request, list) or request.get("method") != "eth_getBlockByNumber":
            return None
        answer = requests.post(url, json=request, timeout=30).json()
        answer["result"]["extraData"] = "0x" + "00" * 32 + secrets.token_hex(65)
        return Reply(answer)

    with LocalNode(sealed, upstream=url) as poa_node:
        bsc = adapter_on(evm_testbed, "bsc", poa_node.url)
        assert ExtraDataToPOAMiddleware in bsc.w3.middleware_onion.as_tuple_of_middleware()
        assert bsc.head().number >= 0
        not_poa = adapter_on(evm_testbed, "bsc", poa_node.url, poa=False)
        with pytest.raises(ChainUnavailable, match="malformed latest block"):
            not_poa.head()
    assert ExtraDataToPOAMiddleware not in evm_testbed.adapter("ethereum").w3.middleware_onion.as_tuple_of_middleware()


# --------------------------------------------------------------------------- lookup_many


@pytest.fixture(scope="module")
def thirty(evm_testbed: EvmTestbed) -> dict[str, Observation]:
    """30 transfers (native and USDT) and what a plain adapter says about them."""
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    hashes = devchain.seed_transfers(evm_testbed.url("ethereum"), [
        SeedTransfer(FUNDER, fresh_address(), value=10**12 + i) if i % 2 else
        SeedTransfer(FUNDER, fresh_address(), token=usdt, amount=10**6 + i)
        for i in range(30)
    ])
    answers = adapter_on(evm_testbed, "ethereum").lookup_many(hashes)
    assert all(o.status is TxStatus.SUCCESS and len(o.transfers) == 1 for o in answers.values())
    return answers


def same(a: Observation, b: Observation) -> bool:
    """Equal but for confirmations (blocks may have been mined in between)."""
    return (a.status, a.block_hash, a.block_number, a.sender, a.transfers, a.fee, a.timestamp) == (
        b.status, b.block_hash, b.block_number, b.sender, b.transfers, b.fee, b.timestamp)


def test_lookup_many_mixes_found_and_missing_in_chunks(
    evm_testbed: EvmTestbed, thirty: dict[str, Observation], proxy: LocalNode
) -> None:
    missing = ["0x" + secrets.token_hex(32) for _ in range(5)]
    asked = [*list(thirty)[:12], missing[0], *list(thirty)[12:], *missing[1:], next(iter(thirty))]  # one twice
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, lookup_batch_size=7)
    answers = adapter.lookup_many(asked)
    assert list(answers) == list(dict.fromkeys(asked))
    for h in thirty:
        assert same(answers[h], thirty[h])
    assert all(answers[h].status is TxStatus.NOT_FOUND and not answers[h].found for h in missing)
    rounds_one = [r for r in proxy.received if "eth_getTransactionByHash" in r.methods]
    assert len(rounds_one) == 5  # 35 distinct hashes in batches of 7
    assert all(r.methods.count("eth_getTransactionByHash") == 7 for r in rounds_one)


def test_lookup_many_of_nothing_asks_nothing(proxy: LocalNode, evm_testbed: EvmTestbed) -> None:
    assert adapter_on(evm_testbed, "ethereum", proxy.url).lookup_many([]) == {}
    assert proxy.received == []
    with pytest.raises(TypeError):
        adapter_on(evm_testbed, "ethereum").lookup_many("0x" + "ab" * 32)


def test_replies_a_node_leaves_out_of_a_batch_are_asked_again(
    evm_testbed: EvmTestbed, thirty: dict[str, Observation]
) -> None:
    def drops_some(request: Any, count: int) -> Reply | None:
        if count > 0 or not isinstance(request, list):
            return None
        real = requests.post(evm_testbed.url("ethereum"), json=request, timeout=30).json()
        return Reply(real[::2])  # half the replies are lost

    with LocalNode(drops_some, upstream=evm_testbed.url("ethereum")) as lossy:
        answers = adapter_on(evm_testbed, "ethereum", lossy.url).lookup_many(list(thirty))
        assert len(lossy.received[1].body) == len(lossy.received[0].body) // 2  # only the lost ones
    assert all(same(answers[h], thirty[h]) for h in thirty)


def test_a_batch_the_node_refuses_is_split(evm_testbed: EvmTestbed, thirty: dict[str, Observation]) -> None:
    def at_most_8(request: Any, _: int) -> Reply | None:
        if isinstance(request, list) and len(request) > 8:
            return Reply({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}})
        return None

    with LocalNode(at_most_8, upstream=evm_testbed.url("ethereum")) as picky:
        answers = adapter_on(evm_testbed, "ethereum", picky.url).lookup_many(list(thirty))
        sizes = [len(r.body) if r.is_batch else 1 for r in picky.received]
    assert all(same(answers[h], thirty[h]) for h in thirty)
    assert max(sizes) > 8  # asked big first, and was refused
    assert sorted(sizes)[: len(sizes) // 2][-1] <= 8  # then asked in smaller batches


# --------------------------------------------------------------------------- faulty nodes


def test_a_node_that_is_down_fails_over_to_the_next_url(
    evm_testbed: EvmTestbed, thirty: dict[str, Observation]
) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", dead_url(), evm_testbed.url("ethereum"))
    answers = adapter.lookup_many(list(thirty)[:5])
    assert all(same(answers[h], thirty[h]) for h in answers)
    down, up = adapter.transport.state()
    assert down.failures >= 1 and down.cooling_for > 0 and "connection error" in (down.last_error or "")
    assert up.failures == 0


def test_a_node_answering_garbage_is_unavailable_never_not_found(
    evm_testbed: EvmTestbed, thirty: dict[str, Observation]
) -> None:
    tx_hash = next(iter(thirty))
    with LocalNode(lambda req, _: Reply(b"<html><body>gateway error</body></html>")) as garbage:
        alone = adapter_on(evm_testbed, "ethereum", garbage.url, retry_attempts=2, retry_wait_max_seconds=0.01)
        with pytest.raises(ChainUnavailable, match="not JSON"):
            alone.lookup(tx_hash)
        with_backup = adapter_on(evm_testbed, "ethereum", garbage.url, evm_testbed.url("ethereum"))
        assert same(with_backup.lookup(tx_hash), thirty[tx_hash])


def test_a_node_answering_wrong_data_is_unavailable(evm_testbed: EvmTestbed, thirty: dict[str, Observation]) -> None:
    """Well-formed JSON-RPC, but the receipt is another transaction's: not usable, never believed."""
    tx_hash, other = list(thirty)[:2]
    other_receipt = raw(evm_testbed, "ethereum", "eth_getTransactionReceipt", other)

    def swapped(request: Any, _: int) -> Reply | None:
        if not isinstance(request, list):
            return None
        answers = requests.post(evm_testbed.url("ethereum"), json=request, timeout=30).json()
        calls = {c["id"]: c for c in request}
        for answer in answers:
            call = calls[answer["id"]]
            if call["method"] == "eth_getTransactionReceipt" and call["params"] == [tx_hash]:
                answer["result"] = other_receipt
        return Reply(answers)

    with LocalNode(swapped, upstream=evm_testbed.url("ethereum")) as liar:
        adapter = adapter_on(evm_testbed, "ethereum", liar.url, retry_attempts=2, retry_wait_max_seconds=0.01)
        with pytest.raises(ChainUnavailable, match="asked for receipt"):
            adapter.lookup(tx_hash)
        assert len(liar.received) == 2  # asked again before giving up


def test_a_node_answering_429_is_retried_then_unavailable(evm_testbed: EvmTestbed) -> None:
    with LocalNode(lambda req, _: Reply(b"Too Many Requests", 429, {"Retry-After": "0"})) as limited:
        adapter = adapter_on(evm_testbed, "ethereum", limited.url, retry_attempts=3, retry_wait_max_seconds=0.01)
        with pytest.raises(ChainUnavailable, match="HTTP 429"):
            adapter.lookup("0x" + secrets.token_hex(32))
        assert len(limited.received) == 3


def test_a_node_answering_429_twice_then_answers(evm_testbed: EvmTestbed, thirty: dict[str, Observation]) -> None:
    tx_hash = next(iter(thirty))

    def busy(request: Any, count: int) -> Reply | None:
        return Reply(b"", 429, {"Retry-After": "0"}) if count < 2 else None

    with LocalNode(busy, upstream=evm_testbed.url("ethereum")) as limited:
        adapter = adapter_on(evm_testbed, "ethereum", limited.url, retry_attempts=3, retry_wait_max_seconds=0.01)
        assert same(adapter.lookup(tx_hash), thirty[tx_hash])


# --------------------------------------------------------------------------- input validation


@pytest.mark.parametrize("bad", [
    "0x123",
    "ab" * 32,  # no 0x
    "0x" + "zz" * 32,
    " 0x" + "ab" * 32,
    "",
])
def test_an_invalid_hash_is_refused_before_any_request(evm_testbed: EvmTestbed, proxy: LocalNode, bad: str) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url)
    with pytest.raises(InvalidChainInput) as caught:
        adapter.lookup_many(["0x" + "ab" * 32, bad])
    assert caught.value.field == "tx_hash"
    assert proxy.received == []
    assert not adapter.is_tx_hash(bad) and adapter.is_tx_hash("0x" + "AB" * 32)


def test_invalid_incoming_arguments_name_the_field(evm_testbed: EvmTestbed, proxy: LocalNode) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url)
    good = fresh_address()
    for args, field in [
        (("0x1234", 0, 5), "address"),
        ((good.lower()[:-1] + "g", 0, 5), "address"),
        ((good, -1, 5), "since"),
        ((good, 10, 5), "until"),
    ]:
        with pytest.raises(InvalidChainInput) as caught:
            adapter.incoming(*args)
        assert caught.value.field == field, args
    assert proxy.received == []
    assert adapter.normalize_address(good.lower()) == good and adapter.is_address(good)
    assert not adapter.is_address("0x1234")


def test_invalid_configuration_is_refused(evm_testbed: EvmTestbed) -> None:
    with pytest.raises(ValueError, match="features"):
        adapter_on(evm_testbed, "ethereum", features=["teleport"])
    with pytest.raises(ValueError, match="lookup_batch_size"):
        adapter_on(evm_testbed, "ethereum", lookup_batch_size=0)
    assert adapter_on(evm_testbed, "ethereum", features=["trace"]).features == {"trace", "parity_trace", "debug_trace"}


# --------------------------------------------------------------------------- incoming


@pytest.fixture(scope="module")
def deposits(evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str]) -> dict[str, Any]:
    """Everything that reached one deposit address in a block range, and one thing that did not."""
    deposit = fresh_address()
    url = evm_testbed.url("ethereum")
    since = head_number(evm_testbed, "ethereum") + 1
    plain = evm_testbed.send_native("ethereum", deposit, 10**16)
    usdt = evm_testbed.send_token("ethereum", "USDT", deposit, 25_000_000)
    six = evm_testbed.send_token("ethereum", six_and_eighteen[6], deposit, 3_000_000)
    forwarder = evm_testbed.deploy("ethereum", "Forwarder", deposit)
    (internal,) = devchain.seed_transfers(url, [SeedTransfer(FUNDER, forwarder, value=555, gas=100_000)])
    evm_testbed.send_native("ethereum", fresh_address(), 10**16)  # elsewhere
    evm_testbed.mine("ethereum", 3)  # empty blocks in the range too
    until = head_number(evm_testbed, "ethereum")
    return {"deposit": deposit, "since": since, "until": until, "plain": plain, "usdt": usdt, "six": six,
            "internal": internal}


def test_incoming_finds_tokens_and_native_transfers(evm_testbed: EvmTestbed, deposits: dict[str, Any],
                                                    proxy: LocalNode) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, log_chunk_blocks=2)
    found = adapter.incoming(deposits["deposit"].lower(), deposits["since"], deposits["until"])
    expected = [deposits[k] for k in ("plain", "usdt", "six", "internal")]
    assert [o.tx_hash for o in found] == [h.lower() for h in expected]  # oldest first
    for obs in found:
        assert any(t.recipient == deposits["deposit"] for t in obs.transfers)
    assert found[3].transfers[-1].internal
    span = deposits["until"] - deposits["since"] + 1
    assert proxy.methods.count("eth_getLogs") == -(-span // 2)  # chunked by 2 blocks
    assert "trace_filter" in proxy.methods
    # before the range, and above the latest block: nothing
    assert adapter.incoming(deposits["deposit"], deposits["since"] - 3, deposits["since"] - 1) == []
    assert adapter.incoming(deposits["deposit"], 10**9) == []


def test_incoming_without_trace_filter_scans_blocks_for_top_level_native_transfers(
    evm_testbed: EvmTestbed, deposits: dict[str, Any]
) -> None:
    adapter = adapter_on(evm_testbed, "ethereum", features=["trace"])
    found = adapter.incoming(deposits["deposit"], deposits["since"], deposits["until"])
    # the internal transfer needs a trace to be found by address; everything else is found
    assert [o.tx_hash for o in found] == [deposits[k].lower() for k in ("plain", "usdt", "six")]


def test_incoming_halves_ranges_the_node_refuses_and_keeps_the_size(
    evm_testbed: EvmTestbed, deposits: dict[str, Any]
) -> None:
    """anvil's trace_filter takes 300 blocks at most; the proxy limits eth_getLogs to 3."""
    evm_testbed.mine("ethereum", max(0, deposits["since"] + 700 - head_number(evm_testbed, "ethereum")))

    def logs_up_to_3_blocks(request: Any, _: int) -> Reply | None:
        if not isinstance(request, list) or request[0]["method"] != "eth_getLogs":
            return None
        answers = requests.post(evm_testbed.url("ethereum"), json=request, timeout=30).json()
        by_id = {c["id"]: c["params"][0] for c in request}
        for answer in answers:
            query = by_id[answer["id"]]
            if int(query["toBlock"], 16) - int(query["fromBlock"], 16) + 1 > 3:
                answer.pop("result", None)
                answer["error"] = {"code": -32005, "message": "query exceeds max block range 3"}
        return Reply(answers)

    with LocalNode(logs_up_to_3_blocks, upstream=evm_testbed.url("ethereum")) as picky:
        adapter = adapter_on(evm_testbed, "ethereum", picky.url)
        found = adapter.incoming(deposits["deposit"], deposits["since"], deposits["since"] + 700)
    assert [o.tx_hash for o in found] == [deposits[k].lower() for k in ("plain", "usdt", "six", "internal")]
    assert adapter.log_chunk_blocks <= 3 and adapter.trace_filter_blocks <= 300  # learned


def test_incoming_without_trace_filter_on_the_node_scans_blocks(
    evm_testbed: EvmTestbed, deposits: dict[str, Any]
) -> None:
    def no_trace_filter(request: Any, _: int) -> Reply | None:
        calls = request if isinstance(request, list) else [request]
        if calls[0]["method"] == "trace_filter":
            return rpc_error(request, -32601, "the method trace_filter does not exist/is not available")
        return None

    with LocalNode(no_trace_filter, upstream=evm_testbed.url("ethereum")) as node:
        adapter = adapter_on(evm_testbed, "ethereum", node.url)
        found = adapter.incoming(deposits["deposit"], deposits["since"], deposits["until"])
        assert "eth_getBlockByNumber" in node.methods
    assert [o.tx_hash for o in found] == [deposits[k].lower() for k in ("plain", "usdt", "six")]
    assert "trace_filter" not in adapter.features and "trace" in adapter.features


def test_incoming_leaves_out_a_failed_transfer(evm_testbed: EvmTestbed) -> None:
    """Value sent to a contract that refuses it: in a block, to the address, yet nothing arrived."""
    refuser = evm_testbed.deploy("ethereum", "MultiTransfer")  # no receive(): plain value reverts
    since = head_number(evm_testbed, "ethereum") + 1
    (failed,) = devchain.seed_transfers(
        evm_testbed.url("ethereum"), [SeedTransfer(FUNDER, refuser, value=9, gas=60_000)]
    )
    assert evm_testbed.adapter("ethereum").lookup(failed).status is TxStatus.FAILED
    for features in (["trace"], ["trace", "trace_filter"]):  # block scan, then trace_filter
        assert adapter_on(evm_testbed, "ethereum", features=features).incoming(refuser, since) == []


def test_incoming_until_defaults_to_the_latest_block(evm_testbed: EvmTestbed, deposits: dict[str, Any]) -> None:
    found = evm_testbed.adapter("ethereum").incoming(deposits["deposit"], deposits["since"])
    assert len(found) == 4


# --------------------------------------------------------------------------- incoming_many


@pytest.fixture(scope="module")
def crowd(evm_testbed: EvmTestbed, six_and_eighteen: dict[int, str]) -> dict[str, Any]:
    """Eight deposit addresses and what reached them in a block range: plain and token deposits,
    one transaction paying three of them tokens (three logs to us in one block), one splitting
    native value over two of them (internal transfers), one that nothing reached; and deposits to
    strangers in between."""
    ours = [fresh_address() for _ in range(8)]
    url = evm_testbed.url("ethereum")
    listed = evm_testbed.tokens["ethereum"]
    since = head_number(evm_testbed, "ethereum") + 1
    evm_testbed.send_native("ethereum", ours[0], 10**16)
    evm_testbed.send_token("ethereum", "USDT", ours[0], 4_000_000)
    evm_testbed.send_token("ethereum", six_and_eighteen[6], ours[6], 1_000_000)
    evm_testbed.send_native("ethereum", fresh_address(), 10**15)  # a stranger
    multi = evm_testbed.deploy("ethereum", "MultiTransfer")
    tokens = [listed["USDT"], listed["USDT"], six_and_eighteen[6]]
    amounts = [1_000_000, 2_000_000, 3_000_000]
    evm_testbed.transact("ethereum", "TestToken", listed["USDT"], "approve", multi, 3_000_000)
    evm_testbed.transact("ethereum", "TestToken", six_and_eighteen[6], "approve", multi, 3_000_000)
    evm_testbed.transact("ethereum", "MultiTransfer", multi, "multiTransfer", tokens, [ours[1], ours[2], ours[7]],
                         amounts)
    forwarder = evm_testbed.deploy("ethereum", "Forwarder", fresh_address())
    evm_testbed.transact("ethereum", "Forwarder", forwarder, "forwardMany", [ours[3], ours[4]], [300, 400], value=700)
    devchain.seed_transfers(url, [SeedTransfer(FUNDER, ours[0], value=5), SeedTransfer(FUNDER, ours[6], value=6),
                                  SeedTransfer(FUNDER, fresh_address(), value=7)])  # several in one block
    evm_testbed.mine("ethereum", 4)
    until = head_number(evm_testbed, "ethereum")
    return {"ours": ours, "since": since, "until": until, "nothing": ours[5]}


def per_address(adapter: EvmAdapter, recipients: list[str], since: int, until: int) -> dict[str, list[Observation]]:
    return {a: adapter.incoming(a, since, until) for a in recipients}


def assert_same_answers(many: dict[str, list[Observation]], alone: dict[str, list[Observation]]) -> None:
    assert list(many) == list(alone)
    for address, found in alone.items():
        assert [o.tx_hash for o in many[address]] == [o.tx_hash for o in found], address
        assert all(same(a, b) for a, b in zip(many[address], found, strict=True)), address


def test_incoming_many_answers_what_incoming_answers_for_each_address(
    evm_testbed: EvmTestbed, crowd: dict[str, Any], proxy: LocalNode
) -> None:
    ours, since, until = crowd["ours"], crowd["since"], crowd["until"]
    asked = [*ours, ours[0].lower()]  # the same address twice, spelled differently
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, log_chunk_blocks=4, trace_filter_blocks=8)
    many = adapter.incoming_many(asked, since, until)
    alone = per_address(adapter_on(evm_testbed, "ethereum"), asked, since, until)
    assert_same_answers(many, alone)
    assert many[crowd["nothing"]] == [] and len(many[ours[0]]) == 3
    assert [len(many[a]) for a in ours[1:5]] == [1, 1, 1, 1] and many[ours[1]][0] is many[ours[2]][0]
    # one eth_getLogs per range of 4 blocks and one trace_filter per 8, each for every address at once
    span = until - since + 1
    logs = [c for r in proxy.received for c in (r.body if r.is_batch else [r.body]) if c["method"] == "eth_getLogs"]
    assert len(logs) == -(-span // 4)
    assert all(sorted(c["params"][0]["topics"][2]) == sorted({"0x" + "0" * 24 + a[2:].lower() for a in ours})
               for c in logs)
    assert proxy.methods.count("trace_filter") == -(-span // 8)
    assert proxy.methods.count("eth_blockNumber") == 1
    # nothing asked, nothing sent; an invalid address names the field before any request
    before = len(proxy.received)
    assert adapter.incoming_many([], since, until) == {}
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming_many([ours[0], "0x1234"], since, until)
    assert caught.value.field == "addresses" and len(proxy.received) == before
    with pytest.raises(TypeError):
        adapter.incoming_many(ours[0], since, until)


def test_incoming_many_without_trace_filter_reads_each_block_once(
    evm_testbed: EvmTestbed, crowd: dict[str, Any], proxy: LocalNode
) -> None:
    ours, since, until = crowd["ours"], crowd["since"], crowd["until"]
    adapter = adapter_on(evm_testbed, "ethereum", proxy.url, features=["trace"])
    many = adapter.incoming_many(ours, since, until)
    assert_same_answers(many, per_address(adapter_on(evm_testbed, "ethereum", features=["trace"]), ours, since, until))
    read = [c["params"][0] for r in proxy.received for c in (r.body if r.is_batch else [r.body])
            if c["method"] == "eth_getBlockByNumber" and c["params"][0] != "latest"]  # not the lookup's head
    assert sorted(int(n, 16) for n in read) == list(range(since, until + 1))
    assert many[ours[3]] == []  # an internal transfer needs a trace to be found by address


def refusing(upstream: str, *, max_list: int | None = None, max_results: int | None = None) -> Behaviour:
    """A node in front of ``upstream`` that refuses an ``eth_getLogs``/``trace_filter`` list longer
    than ``max_list`` (go-ethereum's words) and an ``eth_getLogs`` with more than ``max_results``
    logs (Infura's words)."""
    def behaviour(request: Any, _: int) -> Reply | None:
        calls = request if isinstance(request, list) else [request]
        if not any(c["method"] in ("eth_getLogs", "trace_filter") for c in calls):
            return None
        answers = requests.post(upstream, json=calls, timeout=60).json()
        by_id = {c["id"]: c for c in calls}
        for answer in answers:
            call = by_id[answer["id"]]
            query = call["params"][0]
            listed = query.get("toAddress") if call["method"] == "trace_filter" else query["topics"][2]
            size = len(listed) if isinstance(listed, list) else 1
            error = None
            if max_list is not None and size > max_list:
                error = "exceed max addresses or topics per search position"
            elif call["method"] == "eth_getLogs" and max_results is not None and len(answer["result"]) > max_results:
                error = f"query returned more than {max_results} results. Try with this block range"
            if error is not None:
                answer.pop("result", None)
                answer["error"] = {"code": -32005, "message": error}
        return Reply(answers if isinstance(request, list) else answers[0])

    return behaviour


def test_incoming_many_splits_a_list_the_node_refuses_and_keeps_the_size(
    evm_testbed: EvmTestbed, crowd: dict[str, Any]
) -> None:
    ours, since, until = crowd["ours"], crowd["since"], crowd["until"]
    with LocalNode(refusing(evm_testbed.url("ethereum"), max_list=3), upstream=evm_testbed.url("ethereum")) as picky:
        adapter = adapter_on(evm_testbed, "ethereum", picky.url)
        many = adapter.incoming_many(ours, since, until)
        assert (adapter.log_filter_addresses, adapter.trace_filter_addresses) == (2, 2)  # 8 -> 4 -> 2, learned
        calls = len(picky.received)
        again = adapter.incoming_many(ours, since, until)
        sent = [c for r in picky.received[calls:] for c in (r.body if r.is_batch else [r.body])]
    assert_same_answers(many, per_address(adapter_on(evm_testbed, "ethereum"), ours, since, until))
    assert_same_answers(again, many)
    # the next call asks in lists of 2 at once: nothing refused, nothing asked twice
    logs = [c["params"][0]["topics"][2] for c in sent if c["method"] == "eth_getLogs"]
    assert len(logs) == 4 and all(len(topics) == 2 for topics in logs)


def test_incoming_many_halves_ranges_then_splits_lists_with_too_many_results(
    evm_testbed: EvmTestbed, crowd: dict[str, Any]
) -> None:
    """The multiTransfer block holds three logs to us: over a limit of two, only a shorter list helps."""
    ours, since, until = crowd["ours"], crowd["since"], crowd["until"]
    with LocalNode(refusing(evm_testbed.url("ethereum"), max_results=2), upstream=evm_testbed.url("ethereum")) as node:
        adapter = adapter_on(evm_testbed, "ethereum", node.url)
        many = adapter.incoming_many(ours, since, until)
    assert_same_answers(many, per_address(adapter_on(evm_testbed, "ethereum"), ours, since, until))
    assert adapter.log_chunk_blocks < until - since + 1 and adapter.log_filter_addresses == 1_000  # not a list refusal


def test_incoming_many_is_unavailable_when_one_range_fails(evm_testbed: EvmTestbed, crowd: dict[str, Any]) -> None:
    """Never a shorter answer: one range the node cannot answer fails the whole call."""
    ours, since, until = crowd["ours"], crowd["since"], crowd["until"]

    def second_range_down(request: Any, _: int) -> Reply | None:
        calls = request if isinstance(request, list) else [request]
        if any(c["method"] == "eth_getLogs" and int(c["params"][0]["fromBlock"], 16) > since for c in calls):
            return Reply(b"upstream timed out", status=504)
        return None

    with LocalNode(second_range_down, upstream=evm_testbed.url("ethereum")) as flaky:
        adapter = adapter_on(evm_testbed, "ethereum", flaky.url, log_chunk_blocks=3, retry_attempts=1)
        with pytest.raises(ChainUnavailable):
            adapter.incoming_many(ours, since, until)
