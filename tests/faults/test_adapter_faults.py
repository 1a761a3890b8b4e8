"""The EVM adapter behind a misbehaving node: every answer is either right or "try again later".

A found transaction must never come back as not found, whatever the node does (drops, delays,
429/503, truncated or garbage JSON, answers from a node that is behind).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest

from chains import devchain
from chains.base import ChainUnavailable, Observation
from chains.evm import EvmAdapter
from recovery.config import Network
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.support.faultproxy import FAULT_KINDS, FaultProxy, fault_proxy


def network_behind(base: Network, url: str) -> Network:
    data = base.model_dump()
    data.update(base.model_extra or {})
    data.update(rpc_urls=[url], timeout_seconds=0.5, connect_timeout_seconds=0.5, retry_attempts=3,
                retry_wait_max_seconds=0.05, cooldown_seconds=0)
    return Network.model_validate(data)


@pytest.fixture(scope="module")
def transfers(evm_testbed: EvmTestbed) -> dict[str, Observation]:
    """60 real transfers (native and token) and the truth about them, read without faults."""
    url = evm_testbed.url("ethereum")
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    hashes = devchain.seed_transfers(url, [
        devchain.SeedTransfer(FUNDER, fresh_address(), value=10**15 + i) if i % 2 else
        devchain.SeedTransfer(FUNDER, fresh_address(), token=usdt, amount=10**6 + i)
        for i in range(60)
    ])
    evm_testbed.mine("ethereum", 3)
    return evm_testbed.adapter("ethereum").lookup_many(hashes)


@pytest.fixture
def proxy(evm_testbed: EvmTestbed, request: pytest.FixtureRequest) -> Iterator[FaultProxy]:
    kinds = getattr(request, "param", FAULT_KINDS)
    with fault_proxy(evm_testbed.url("ethereum"), rate=0.3, kinds=kinds, seed=7, delay_seconds=0.8) as p:
        yield p


def same(a: Observation, b: Observation) -> bool:
    return (a.status, a.block_hash, a.block_number, a.transfers) == (b.status, b.block_hash, b.block_number,
                                                                      b.transfers)


@pytest.mark.parametrize("proxy", [FAULT_KINDS, ("stale",), ("truncated", "garbage")], indirect=True,
                         ids=["all-faults", "node-behind", "broken-json"])
def test_answers_are_right_or_unavailable(
    evm_testbed: EvmTestbed, transfers: dict[str, Observation], proxy: FaultProxy
) -> None:
    adapter = EvmAdapter(network_behind(evm_testbed.config.network("ethereum"), proxy.url))
    missing = ["0x" + secrets.token_hex(32) for _ in range(20)]
    hashes = list(transfers) + missing
    right = unavailable = 0
    for start in range(0, len(hashes), 8):
        chunk = hashes[start : start + 8]
        try:
            answers = adapter.lookup_many(chunk)
        except ChainUnavailable:
            unavailable += 1
            continue
        for h in chunk:
            if h in transfers:
                assert answers[h].found, f"{h} exists but was reported not found ({proxy.injected})"
                assert same(answers[h], transfers[h]), h
            else:
                assert not answers[h].found
            right += 1
    assert sum(proxy.injected.values()) > 0
    assert right > len(hashes) // 2, (right, unavailable, proxy.injected)
