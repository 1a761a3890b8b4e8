"""TronGrid account history: the recorded ``/v1/accounts/{address}/transactions`` pages, decoded
entry by entry, served by the replay (paging, filters, coverage) and read by ``incoming``.

What each page shows is taken from fixtures/chains/SOURCES.md ("Added 2026-12-07"). The pages are
found by their content (the account every entry names), never by file name. The replay head is
derived from the replay itself (its newest recorded block), so confirmations are computed from it.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import requests

from chains.base import AssetKind, ChainUnavailable, Observation, TxStatus
from chains.replay import ReplayServer
from chains.replay import tron as tron_replay
from chains.tron import TronAdapter, decode_call_transfer, decode_page_entry, read_contract, tron_address
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

TRC10_ACCOUNT = "TFFriedwRtWdFuzerDDtkoQTZ29smDZ1MB"
MIXED_ACCOUNT = "TM1zzNDZD2DPASbKcgdVoTYhfmYgtfwx9R"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
TRC10_TX = "f6804d16ac87fa77357e8145fbfdafd459433f89f87019bc8ea2308260abb761"
TRX_OUT = "3fca53c0"  # prefix, as SOURCES.md names it
TRC10_OUT = "79010512"
#: meta.at of the two pages, in unix seconds (rounded down so that the window ends before it)
TRC10_AT = 1589366680021 // 1000 - 1
MIXED_AT = 1592755486554 // 1000 - 1
#: the oldest block_timestamp on the fingerprinted page (four entries share it)
MIXED_OLDEST_MS = 1592754444000


def _pages(fixtures_dir: Path) -> dict[str, dict[str, Any]]:
    """The recorded TronGrid account pages, keyed by the account every entry names (by content)."""
    handler = tron_replay.build_handler(fixtures_dir)
    out: dict[str, dict[str, Any]] = {}
    for rec in handler.account_pages:
        history = next(
            h for h in handler.accounts.values() if {e["txID"].lower() for e in rec.data["data"]} <= set(h.entries)
        )
        out[history.address] = rec.data
    return out


def _entry(page: Mapping[str, Any], prefix: str) -> dict[str, Any]:
    (found,) = [e for e in page["data"] if e["txID"].startswith(prefix)]
    assert isinstance(found, dict)
    return found


@pytest.fixture(scope="module")
def pages(fixtures_dir: Path) -> dict[str, dict[str, Any]]:
    found = _pages(fixtures_dir)
    assert set(found) >= {TRC10_ACCOUNT, MIXED_ACCOUNT}
    return found


@pytest.fixture
def history(replay_config: Config, replay_faults: object) -> TronAdapter:
    """An adapter that reads TronGrid's history with pages of 1 entry and, as the recording has no
    TRC-20 index answer, with ``trc20_history = false`` (the operator's explicit choice)."""
    net = network_at(
        replay_config.network("tron"),
        list(replay_config.network("tron").rpc_urls),
        **FAST,
        page_limit=1,
        trc20_history=False,
    )
    return TronAdapter(net)


@pytest.fixture
def default_adapter(replay_config: Config, replay_faults: object) -> TronAdapter:
    return TronAdapter(network_at(replay_config.network("tron"), list(replay_config.network("tron").rpc_urls), **FAST))


@pytest.fixture(scope="module")
def head(fixtures_dir: Path) -> int:
    handler = tron_replay.build_handler(fixtures_dir)
    assert handler.head is not None
    return handler.head[0]


# ------------------------------------------------------------------ the recordings, decoded


def test_pages_are_recognised_by_their_account(fixtures_dir: Path) -> None:
    handler = tron_replay.build_handler(fixtures_dir)
    assert not [s for s in handler.skipped if "trongrid" in s.path.name]
    trc10, mixed = handler.accounts[TRC10_ACCOUNT], handler.accounts[MIXED_ACCOUNT]
    assert len(trc10.entries) >= 21 and len(mixed.entries) >= 25
    # no fingerprint: the whole history up to meta.at; a fingerprint: only after its oldest entry
    assert (None, 1589366680021) in trc10.spans
    assert (MIXED_OLDEST_MS, 1592755486554) in mixed.spans


def test_trc10_transfer_entry(pages: dict[str, dict[str, Any]], head: int) -> None:
    entry = _entry(pages[TRC10_ACCOUNT], TRC10_TX)
    obs = decode_page_entry("tron", entry, head)
    assert obs is not None and obs.status is TxStatus.SUCCESS and obs.tx_hash == TRC10_TX
    assert obs.block_number == 19634882 and obs.confirmations == head - 19634882 + 1
    assert obs.timestamp == datetime.fromtimestamp(1589169090, tz=UTC)
    assert obs.fee == 2820 and obs.details["net_fee"] == 2820
    (t,) = obs.transfers
    assert (t.kind, t.contract, t.amount, t.recipient) == (AssetKind.TRC10, "1002000", 2980411, TRC10_ACCOUNT)
    assert t.sender == tron_address("41d0995a2071de293ff0c1fa25131c0f4bab3535ae")
    assert tron_address("4139fec4d95bb59f45a727f9234020adaf2cec9e20") == TRC10_ACCOUNT


def test_trc10_page_contents(pages: dict[str, dict[str, Any]]) -> None:
    """17 TRC-10 transfers (assets 1002000, 1002814, 1002798), 1 TRX transfer of 278720000 sun, and
    a freeze, an unfreeze and a vote that move nothing."""
    readings = [read_contract(e["raw_data"]) for e in pages[TRC10_ACCOUNT]["data"]]
    assert all(not r.reasons for r in readings)
    trc10 = [t for r in readings for t in r.planned if t.kind is AssetKind.TRC10]
    assert len(trc10) == 17 and {t.contract for t in trc10} == {"1002000", "1002814", "1002798"}
    assert all(t.recipient == TRC10_ACCOUNT for t in trc10)
    (trx,) = [t for r in readings for t in r.planned if t.kind is AssetKind.NATIVE]
    assert (trx.amount, trx.recipient) == (278_720_000, TRC10_ACCOUNT)
    quiet = {r.kind for r in readings if not r.planned}
    assert quiet == {"FreezeBalanceContract", "UnfreezeBalanceContract", "VoteWitnessContract"}
    assert all(r.call is None for r in readings)


def test_mixed_page_trx_trc10_and_trc20_entries(pages: dict[str, dict[str, Any]], head: int) -> None:
    page = pages[MIXED_ACCOUNT]
    trx = decode_page_entry("tron", _entry(page, TRX_OUT), head)
    assert trx is not None and trx.status is TxStatus.SUCCESS
    (t,) = trx.transfers
    assert (t.kind, t.amount, t.sender) == (AssetKind.NATIVE, 13_195_916_000, MIXED_ACCOUNT)
    assert t.recipient == tron_address("41d9378a9849912a41ec1f0e4677c074edf0516241")
    trc10 = decode_page_entry("tron", _entry(page, TRC10_OUT), head)
    assert trc10 is not None and trc10.status is TxStatus.SUCCESS
    (t,) = trc10.transfers
    assert (t.kind, t.contract, t.amount, t.sender) == (AssetKind.TRC10, "1002000", 7_639_170_000_000, MIXED_ACCOUNT)
    # a TRC-20 entry holds the contract call, not the token movement: it is looked up, never read alone
    calls = [e for e in page["data"] if e["raw_data"]["contract"][0]["type"] == "TriggerSmartContract"]
    assert calls
    for entry in calls:
        assert decode_page_entry("tron", entry, head) is None
        reading = read_contract(entry["raw_data"])
        assert reading.call is not None and reading.call.contract == USDT and reading.call.method == "transfer"
        assert reading.call.sender == MIXED_ACCOUNT and reading.call.recipient != MIXED_ACCOUNT
        data = entry["raw_data"]["contract"][0]["parameter"]["value"]["data"]
        assert reading.call.amount == int(data[-64:], 16)
        assert decode_call_transfer(MIXED_ACCOUNT, USDT, data) == reading.call


def test_entries_without_their_block_are_looked_up(pages: dict[str, dict[str, Any]]) -> None:
    """Most 2019 entries of the TRC-10 page carry no blockNumber: not enough for an observation."""
    bare = [e for e in pages[TRC10_ACCOUNT]["data"] if "blockNumber" not in e]
    assert bare
    assert all(decode_page_entry("tron", e, None) is None for e in bare)


# ------------------------------------------------------------------ the replay's history answers


def _get(server: ReplayServer, account: str, **params: object) -> requests.Response:
    url = f"{server.url_for('tron')}/v1/accounts/{account}/transactions"
    return requests.get(url, params={k: str(v) for k, v in params.items()}, timeout=5)


def _all_pages(server: ReplayServer, account: str, **params: object) -> Iterator[dict[str, Any]]:
    fingerprint: str | None = None
    for _ in range(100):
        got = _get(server, account, **params, **({"fingerprint": fingerprint} if fingerprint else {}))
        assert got.status_code == 200, got.text
        body = got.json()
        yield body
        fingerprint = body["meta"].get("fingerprint")
        if not fingerprint:
            return
    raise AssertionError("paging did not end")


def test_replay_pages_the_whole_history_with_its_own_fingerprints(replay_server: ReplayServer) -> None:
    window = {"max_timestamp": TRC10_AT * 1000}
    whole = [e["txID"] for b in _all_pages(replay_server, TRC10_ACCOUNT, limit=200, **window) for e in b["data"]]
    paged = [e["txID"] for b in _all_pages(replay_server, TRC10_ACCOUNT, limit=4, **window) for e in b["data"]]
    assert paged == whole and len(whole) >= 21 and whole[0].startswith(TRC10_TX[:8])
    stamps = [
        e["block_timestamp"] for b in _all_pages(replay_server, TRC10_ACCOUNT, limit=5, **window) for e in b["data"]
    ]
    assert stamps == sorted(stamps, reverse=True)
    ascending = [
        e["txID"]
        for b in _all_pages(replay_server, TRC10_ACCOUNT, limit=3, order_by="block_timestamp,asc", **window)
        for e in b["data"]
    ]
    assert ascending == whole[::-1]


def test_replay_filters(replay_server: ReplayServer) -> None:
    window = {"max_timestamp": MIXED_AT * 1000, "min_timestamp": MIXED_OLDEST_MS + 1}
    incoming = [
        e for b in _all_pages(replay_server, MIXED_ACCOUNT, only_to="true", limit=2, **window) for e in b["data"]
    ]
    assert [e["txID"][:8] for e in incoming] == ["82efc845"]
    outgoing = [
        e for b in _all_pages(replay_server, MIXED_ACCOUNT, only_from="true", limit=7, **window) for e in b["data"]
    ]
    assert {e["txID"][:8] for e in outgoing} >= {TRX_OUT, TRC10_OUT, "18f5908a"}
    owners = {tron_address(e["raw_data"]["contract"][0]["parameter"]["value"]["owner_address"]) for e in outgoing}
    assert owners == {MIXED_ACCOUNT}
    narrow = _get(replay_server, TRC10_ACCOUNT, min_timestamp=1589169090000, max_timestamp=1589169090000).json()
    assert [e["txID"] for e in narrow["data"]] == [TRC10_TX] and "fingerprint" not in narrow["meta"]


def test_replay_never_invents_an_end_of_history(replay_server: ReplayServer, pages: dict[str, dict[str, Any]]) -> None:
    # the recorded request itself (newest first, 25) is served as recorded, with a next page...
    first = _get(replay_server, MIXED_ACCOUNT, limit=25, max_timestamp=MIXED_AT * 1000 + 999)
    assert first.status_code == 200 and len(first.json()["data"]) == 25
    # ...which nobody recorded
    after = _get(
        replay_server,
        MIXED_ACCOUNT,
        limit=25,
        max_timestamp=MIXED_AT * 1000 + 999,
        fingerprint=first.json()["meta"]["fingerprint"],
    )
    assert after.status_code == 501
    recorded_next = pages[MIXED_ACCOUNT]["meta"]["fingerprint"]  # the recording's own next page
    assert _get(replay_server, MIXED_ACCOUNT, fingerprint=recorded_next).status_code == 501
    # a page reaching the oldest recorded millisecond (or older) is not known to be complete...
    for low in (MIXED_OLDEST_MS, 0):
        window = {"min_timestamp": low, "max_timestamp": MIXED_AT * 1000}
        assert _get(replay_server, MIXED_ACCOUNT, limit=200, **window).status_code == 501
        # ...while a page that fills before it is
        assert len(_get(replay_server, MIXED_ACCOUNT, limit=20, **window).json()["data"]) == 20
    # nor is anything after meta.at (a request without max_timestamp asks up to now)
    assert _get(replay_server, TRC10_ACCOUNT).status_code == 501
    # the TRC-20 index and an account nobody recorded
    base = replay_server.url_for("tron")
    assert requests.get(f"{base}/v1/accounts/{MIXED_ACCOUNT}/transactions/trc20", timeout=5).status_code == 501
    assert _get(replay_server, USDT, max_timestamp=1).status_code == 501


# ------------------------------------------------------------------ incoming


def test_incoming_trc10_account_follows_the_pages(history: TronAdapter, replay_server: ReplayServer, head: int) -> None:
    before = len(replay_server.log)
    found = history.incoming(TRC10_ACCOUNT, 1_586_000_000, TRC10_AT)
    asked = [path for family, _m, path in replay_server.log[before:] if family == "tron"]
    assert asked.count(f"/v1/accounts/{TRC10_ACCOUNT}/transactions") >= 2  # one entry per page
    assert "/wallet/getnowblock" in asked and not any("trc20" in p for p in asked)
    assert [o.tx_hash[:8] for o in found] == ["b42ffe11", "f6804d16"]
    for obs in found:
        assert obs.status is TxStatus.SUCCESS and obs.confirmations == head - (obs.block_number or 0) + 1
        (t,) = obs.transfers
        assert (t.kind, t.contract, t.recipient) == (AssetKind.TRC10, "1002000", TRC10_ACCOUNT)
    assert [o.transfers[0].amount for o in found] == [2_984_422, 2_980_411]
    assert found[1].block_number == 19634882
    assert Observation.from_json(json.loads(json.dumps(found[1].to_json()))) == found[1]


def test_incoming_mixed_account_only_what_arrived(history: TronAdapter) -> None:
    """Outgoing TRX, TRC-10 and USDT calls are not deposits; the one TRX transfer to the account
    after the oldest recorded millisecond is."""
    (obs,) = history.incoming(MIXED_ACCOUNT, MIXED_OLDEST_MS // 1000 + 1, MIXED_AT)
    assert obs.tx_hash.startswith("82efc845") and obs.block_number == 20829499
    (t,) = obs.transfers
    assert (t.kind, t.amount, t.recipient) == (AssetKind.NATIVE, 2_538_461, MIXED_ACCOUNT)
    assert t.sender == tron_address("41da03247c21301eaf0538c1b9f79e5c8ea7cbb386")


def test_incoming_never_reads_past_the_recording(history: TronAdapter) -> None:
    # older than the fingerprinted page's oldest entry: 501 from the replay, unavailable here
    with pytest.raises(ChainUnavailable):
        history.incoming(MIXED_ACCOUNT, MIXED_OLDEST_MS // 1000, MIXED_AT)
    # up to now (after meta.at)
    with pytest.raises(ChainUnavailable):
        history.incoming(TRC10_ACCOUNT, 1_586_000_000)


def test_a_listed_transaction_the_node_does_not_know_is_unavailable(history: TronAdapter) -> None:
    """The 2019 entries carry no blockNumber, so they are looked up; the node answers {} for a
    transaction TronGrid just listed: a contradiction, never "not found" and never dropped."""
    with pytest.raises(ChainUnavailable) as caught:
        history.incoming(TRC10_ACCOUNT, 0, TRC10_AT)
    assert "listed" in caught.value.reason and "not_found" in caught.value.reason


def test_incoming_without_the_trc20_index_is_unavailable(
    default_adapter: TronAdapter, replay_server: ReplayServer
) -> None:
    """TronGrid's /transactions does not list received TRC-20 transfers, so without its TRC-20
    index (501: not recorded) the adapter cannot say what arrived: unavailable, never a partial list."""
    assert default_adapter.trc20_history is True
    before = len(replay_server.log)
    with pytest.raises(ChainUnavailable):
        default_adapter.incoming(MIXED_ACCOUNT, MIXED_OLDEST_MS // 1000 + 1, MIXED_AT)
    assert any(p.endswith("/transactions/trc20") for _f, _m, p in replay_server.log[before:])


def test_network_keys_are_checked(replay_config: Config) -> None:
    base = replay_config.network("tron")
    for bad in ({"page_limit": 0}, {"page_limit": 201}, {"trc20_history": "no"}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            TronAdapter(network_at(base, list(base.rpc_urls), **bad))
