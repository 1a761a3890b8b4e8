"""The Bitcoin adapter on Blockbook's recorded answers of 2026-12-07 (trezor/blockbook docs/api.md,
live ``btc1.trezor.io`` responses; see fixtures/chains/SOURCES.md, section "Added 2026-12-07").

- ``/api/v2/tx`` confirmed, P2WPKH -> P2PKH, only 1 confirmation;
- ``/api/v2/tx`` unconfirmed (``blockHeight`` -1, ``confirmations`` 0, ``rbf`` true): pending and
  replaceable, never success;
- ``/api/v2/address/{addr}?details=txids``: two txids whose bodies were not recorded, so ``incoming``
  on it meets a node that lists a transaction and then says it does not know it: unavailable.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chains.base import AssetKind, ChainUnavailable, Observation, TxStatus
from chains.bitcoin import BitcoinAdapter, blockbook_txids_page
from chains.replay import ReplayServer, Reply, Request
from chains.replay import bitcoin as bitcoin_replay
from chains.transport import UnusableAnswer
from recovery.config import Config
from tests.chains.test_bitcoin import recorded_bodies
from tests.fixtures_replay import FAST, network_at

CONFIRMED_TX = "8c1e3dec662d1f2a5e322ccef5eca263f98eb16723c6f990be0c88c1db113fb1"
RBF_TX = "73b1ad97194e426031e5c692869de2d83dc2ff6033fc6f0ab5514345f92eaf0d"
ADDRESS = "bc1q0wd209cv5k9pd9mhk7nspacywcj038xxdhnt5u"
LISTED = [
    "0db6010dc0815a4bdaa505bd1ccc851056b0d53c7e4ea7af39c4d648a2c0c019",
    "7532920ddc506218337cceac978cce9c7f98e27ad3226dee55f3e934e0b32e80",
]
UNKNOWN = "ab" * 32


def _adapter(config: Config, url: str, **extra: object) -> BitcoinAdapter:
    base = config.network("bitcoin")
    return BitcoinAdapter(network_at(base, [url], **{**FAST, "api": "blockbook", **extra}))


@pytest.fixture
def blockbook(replay_config: Config, replay_faults: object) -> BitcoinAdapter:
    return _adapter(replay_config, replay_config.network("bitcoin").rpc_urls[0])


def _recorded(fixtures_dir: Path, kind: str, key: str, value: str) -> dict[str, object]:
    (body,) = [b for b in recorded_bodies(fixtures_dir, kind) if b[key] == value]
    assert isinstance(body, dict)
    return body


# ------------------------------------------------------------------ /api/v2/tx


def test_confirmed_p2wpkh_to_p2pkh_with_one_confirmation(blockbook: BitcoinAdapter, fixtures_dir: Path) -> None:
    """SOURCES: 1 input 10106300 sat from bc1qmgwn…; 175000 -> 1Nb1ykSD… (P2PKH), 9888100 change ->
    bc1qjmc4…; fees 43200; blockHeight 860730; confirmations 1 (trap: only 1)."""
    obs = blockbook.lookup(CONFIRMED_TX)
    recorded = _recorded(fixtures_dir, "blockbook", "txid", CONFIRMED_TX)
    assert obs.tx_hash == CONFIRMED_TX and obs.status is TxStatus.SUCCESS
    assert obs.block_number == 860730 and obs.confirmations == 1
    assert obs.block_hash == recorded["blockHash"]
    assert obs.timestamp == datetime.fromtimestamp(1725956288, tz=UTC)
    assert obs.sender == "bc1qmgwnfjlda4ns3g6g3yz74w6scnn9yu2ts82yyc"
    assert [(t.kind, t.sender, t.recipient, t.amount, t.index) for t in obs.transfers] == [
        (AssetKind.NATIVE, obs.sender, "1Nb1ykSD7J5k4RFjJQGsrD9gxBE6jzfNa9", 175_000, 0),
        (AssetKind.NATIVE, obs.sender, "bc1qjmc49gy3jjrkyjl57yl5duxjp7ssmxkvh5t2q5", 9_888_100, 1),
    ]
    # decimal strings read exactly: fees = valueIn - value, and the inputs and outputs add up
    assert obs.fee == 43_200 == 10_106_300 - 10_063_100
    assert [i["value"] for i in obs.details["inputs"]] == [10_106_300]
    assert sum(t.amount for t in obs.transfers) == int(str(recorded["value"])) == 10_063_100
    assert [o["type"] for o in obs.details["outputs"]] == ["p2pkh", "p2wpkh"]
    assert "replaceable" not in obs.details and "rbf_signalled" not in obs.details  # in a block
    # a P2PKH 1… address is also a Bitcoin Cash legacy address: noted for the recovery
    assert "Bitcoin Cash" in obs.details["address_collisions"]["1Nb1ykSD7J5k4RFjJQGsrD9gxBE6jzfNa9"][0]


def test_unconfirmed_rbf_is_pending_and_replaceable(blockbook: BitcoinAdapter, fixtures_dir: Path) -> None:
    """SOURCES: blockHeight -1, confirmations 0, rbf true; 371042 from bc1q9lh7…; 293135 ->
    bc1q4t7h…, 74022 -> bc1q500q…; fees 3885."""
    obs = blockbook.lookup(RBF_TX)
    recorded = _recorded(fixtures_dir, "blockbook", "txid", RBF_TX)
    assert recorded["blockHeight"] == -1 and recorded["confirmations"] == 0 and recorded["rbf"] is True
    assert obs.status is TxStatus.PENDING and obs.confirmations == 0
    assert obs.block_number is None and obs.block_hash is None and obs.timestamp is None
    assert obs.details["replaceable"] is True and obs.details["rbf_signalled"] is True
    # Blockbook omits empty fields: the input's missing "sequence" is 0 (coinSpecificData agrees)
    assert [i["sequence"] for i in obs.details["inputs"]] == [0]
    assert obs.details["first_seen"] == 1725959035  # mempool blockTime: first seen, not a block time
    assert obs.sender == "bc1q9lh77es6m8ztr7muwcec00ewn8fxakpl9jwv8y"
    assert [(t.recipient, t.amount, t.index) for t in obs.transfers] == [
        ("bc1q4t7h8phena94prkqtm500mwzupcjvcs2akcdy9", 293_135, 0),
        ("bc1q500qlwagnstagvynze82j4d66eduyc9lf64ksh", 74_022, 1),
    ]
    assert obs.fee == 3885 == 371_042 - 293_135 - 74_022
    assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs


def test_lookup_many_mixes_confirmed_pending_and_unknown(blockbook: BitcoinAdapter) -> None:
    found = blockbook.lookup_many([CONFIRMED_TX, RBF_TX.upper(), UNKNOWN])
    assert [o.status for o in found.values()] == [TxStatus.SUCCESS, TxStatus.PENDING, TxStatus.NOT_FOUND]


# ------------------------------------------------------------------ /api/v2/address?details=txids


def test_the_recorded_address_page_adds_up(fixtures_dir: Path) -> None:
    """SOURCES: balance = totalReceived = 4225100, totalSent 0, 2 txs, page 1 of 1."""
    page = _recorded(fixtures_dir, "address", "address", ADDRESS)
    assert int(str(page["balance"])) == int(str(page["totalReceived"])) - int(str(page["totalSent"])) == 4_225_100
    assert page["txs"] == len(LISTED) and page["txids"] == LISTED


def test_the_page_reader(fixtures_dir: Path) -> None:
    page = _recorded(fixtures_dir, "address", "address", ADDRESS)

    def same(address: str) -> str:
        return address.lower()

    assert blockbook_txids_page(page, ADDRESS, 1, same) == (LISTED, True)  # page 1 of 1: the last
    # asked for page 2, Blockbook answers the closest page (1): seen already, and the end
    assert blockbook_txids_page(page, ADDRESS, 2, same) == ([], True)
    with pytest.raises(UnusableAnswer, match="not bc1q"):
        blockbook_txids_page(page, "bc1qjmc49gy3jjrkyjl57yl5duxjp7ssmxkvh5t2q5", 1, same)


class _Logged:
    """The recorded handler, keeping each request (with its query) for the test to read."""

    def __init__(self, handler: bitcoin_replay.BitcoinReplay) -> None:
        self.handler = handler
        self.requests: list[Request] = []

    def handle(self, request: Request) -> Reply:
        self.requests.append(request)
        return self.handler.handle(request)


@pytest.fixture
def logged(fixtures_dir: Path) -> Iterator[tuple[ReplayServer, _Logged]]:
    handler = _Logged(bitcoin_replay.build_handler(fixtures_dir))
    with ReplayServer({"bitcoin": handler}) as server:
        yield server, handler


def test_incoming_lists_then_looks_up_and_a_listed_unknown_txid_is_unavailable(
    replay_config: Config, logged: tuple[ReplayServer, _Logged]
) -> None:
    """The recorded page lists two txids whose bodies nobody recorded: the node (the replay)
    answers "not found" for them. A listed transaction the node then does not know is a
    contradiction: try later, never dropped and never an empty history."""
    server, handler = logged
    adapter = _adapter(replay_config, server.url_for("bitcoin"))
    assert adapter.blockbook_txids(ADDRESS, 0, None) == LISTED
    (request,) = handler.requests
    assert request.path == f"/api/v2/address/{ADDRESS}"
    assert dict(request.query) == {"details": "txids", "from": "0", "pageSize": "1000", "page": "1"}
    handler.requests.clear()
    with pytest.raises(ChainUnavailable, match=f"lists transaction {LISTED[0][:16]}.*does not know it"):
        adapter.incoming(ADDRESS, 860_000, 870_000)
    assert handler.requests[0].query["from"] == "860000" and handler.requests[0].query["to"] == "870000"
    assert {r.path for r in handler.requests[1:]} == {f"/api/v2/tx/{t}" for t in LISTED}


def test_incoming_on_an_unrecorded_address_is_unavailable(blockbook: BitcoinAdapter) -> None:
    """The replay answers 501 for a history nobody recorded: a server error, never []."""
    with pytest.raises(ChainUnavailable):
        blockbook.incoming("bc1qjmc49gy3jjrkyjl57yl5duxjp7ssmxkvh5t2q5", 0)


@pytest.mark.parametrize("kind", ["503", "garbage", "truncated"])
def test_a_failing_address_page_is_unavailable(
    blockbook: BitcoinAdapter, replay_server: ReplayServer, kind: str
) -> None:
    replay_server.faults.inject("bitcoin", kind, count=2, path="/api/v2/address/")
    with pytest.raises(ChainUnavailable):
        blockbook.blockbook_txids(ADDRESS, 0, None)
    assert blockbook.blockbook_txids(ADDRESS, 0, None) == LISTED
