"""Stellar account history (``incoming`` over ``/accounts/{id}/payments``) and a Horizon that is
behind, on the recorded answers.

The one recorded account page (``horizon_account_payments_page_native_mainnet.json``) was recorded
with ``order=desc&limit=25`` and is full: older history exists that nobody recorded. The replay
answers a page only where the recorded records decide it (501 "not recorded" past the oldest one),
and the page's transactions have no recorded bodies (501 too). With ``recorded_head=True`` the
recorded Horizon root (ledger 52426477, closed 2024-07-05) is older than some recorded
transactions: a Horizon that is behind.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from stellar_sdk import MuxedAccount
from stellar_sdk import Network as StellarNetwork

from chains.base import ChainUnavailable, InvalidChainInput, TxStatus
from chains.replay import ReplayServer
from chains.replay.server import Reply, Request
from chains.replay.stellar import StellarReplay, build_handler
from chains.stellar import StellarAdapter
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

pytestmark = pytest.mark.fixtures

ACCOUNT = "GDKIJJIKXLOM2NRMPNQZUUYK24ZPVFC6426GZAEP3KUK6KEJLACCWNMX"
#: the oldest recorded record of the account (ledger 23182117, the transaction's second operation)
OLDEST = 99566434367078401
#: ledgers 26638624..27569463 hold eight recorded payments, all made BY the account
OUTGOING_ONLY = (26638624, 27569463)
#: ledger 29193957 holds one payment TO the account (0.1 XLM, transaction 1eeb1ced…), body not recorded
ONE_INCOMING = 29193957
FAILED_TX = "ced549af061dc39758ce222f78f027e82b5077176a4e2efbeb4dc04086150b7d"  # ledger 52429114
FEE_BUMP = "01f25077d5924dc2381055b22befacfdb7d6466325e2511d9cc0739d23bf14f0"  # ledger 52428726
CREDIT12 = "85b0084a82a055dc1b3c9312277c97b13baca5377d23d4b4fde36c01467edf9c"  # an older testnet example


class Recorder:
    """The replay, keeping each request it answers."""

    def __init__(self, inner: StellarReplay) -> None:
        self.inner = inner
        self.seen: list[Request] = []

    def handle(self, request: Request) -> Reply:
        self.seen.append(request)
        return self.inner.handle(request)

    def paths(self, prefix: str) -> list[Request]:
        return [r for r in self.seen if r.path.startswith(prefix)]


class TruncatedHistory(Recorder):
    """A Horizon that lists payments but then answers 404 for their transactions (one node of a
    pool kept less history): where the replay cannot serve a listed transaction, this one gives the
    replay's own 404 problem document, as for a hash nobody knows."""

    def handle(self, request: Request) -> Reply:
        reply = super().handle(request)
        if request.path.startswith("/transactions/") and reply.status == 501:
            return self.inner.handle(Request("GET", "/transactions/" + "00" * 32))
        return reply


def record_of(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / "stellar" / name).read_bytes())


@pytest.fixture
def serve(fixtures_dir: Path, replay_config: Config) -> Iterator[Any]:
    """serve(handler_class, recorded_head=False, **network extras) -> (adapter, handler)."""
    servers: list[ReplayServer] = []

    def start(kind: type[Recorder] = Recorder, *, recorded_head: bool = False, **extra: Any) -> tuple[
        StellarAdapter, Recorder
    ]:
        handler = kind(build_handler(fixtures_dir, recorded_head=recorded_head))
        server = ReplayServer({"stellar": handler}).start()
        servers.append(server)
        network = network_at(replay_config.networks["stellar"], [server.url_for("stellar")], **{**FAST, **extra})
        return StellarAdapter(network, clock=extra.pop("clock", None)), handler

    yield start
    for server in servers:
        server.stop()


# --------------------------------------------------------------------------------------------------
# incoming, inside the recorded records


def test_incoming_pages_by_cursor_and_answers_a_range_inside_the_recording(serve: Any) -> None:
    adapter, handler = serve(page_limit=3)
    assert adapter.incoming(ACCOUNT, *OUTGOING_ONLY) == []  # eight payments, all outgoing
    pages = handler.paths(f"/accounts/{ACCOUNT}/payments")
    cursors = [p.query.get("cursor") for p in pages]
    # the first cursor is the range's first operation id; each next one the last record's id
    assert cursors == [str(OUTGOING_ONLY[0] << 32), "115003345692798977", "117004160502652929"]
    assert all(p.query["order"] == "asc" and p.query["limit"] == "3" for p in pages)
    assert handler.paths("/transactions/") == []  # nothing to look up: no payment to the account
    # one page of 200 gives the same answer; a muxed address reads its base account
    adapter, _ = serve()
    assert adapter.incoming(ACCOUNT, *OUTGOING_ONLY) == []
    assert adapter.incoming(MuxedAccount(ACCOUNT, 7).account_muxed or "", *OUTGOING_ONLY) == []


def test_a_range_between_recorded_records_is_answered(adapter_on_shared_replay: StellarAdapter) -> None:
    # ledger 23182118 is after the oldest record (23182117) and before the next one (23182131)
    assert adapter_on_shared_replay.incoming(ACCOUNT, 23182118, 23182130) == []


@pytest.fixture
def adapter_on_shared_replay(replay_config: Config) -> StellarAdapter:
    return StellarAdapter(replay_config.networks["stellar"])


# --------------------------------------------------------------------------------------------------
# incoming, past what was recorded


@pytest.mark.parametrize("since", [0, 1, 23182117], ids=["from-genesis", "ledger-1", "the-oldest-ledger"])
def test_a_range_reaching_older_than_the_recording_is_not_recorded(serve: Any, since: int) -> None:
    """Ledger 23182117 itself may hold older payments (operations before the recorded one)."""
    adapter, handler = serve()
    with pytest.raises(ChainUnavailable, match="501"):
        adapter.incoming(ACCOUNT, since, OUTGOING_ONLY[1])
    assert handler.paths("/transactions/") == []  # nothing was decided from a partial history


def test_a_listed_transaction_nobody_recorded_is_try_later(serve: Any) -> None:
    adapter, handler = serve()
    with pytest.raises(ChainUnavailable, match="501"):
        adapter.incoming(ACCOUNT, ONE_INCOMING, ONE_INCOMING)
    lookups = {r.path for r in handler.paths("/transactions/")}  # (the transport retried it)
    assert len(lookups) == 1 and lookups.pop().startswith("/transactions/1eeb1cedf9")


def test_a_horizon_that_lists_a_payment_then_does_not_find_its_transaction(serve: Any) -> None:
    """Horizon just listed the payment: a 404 for its transaction is a contradiction ("try
    later"), never "nothing arrived", and the payment is never dropped."""
    adapter, handler = serve(TruncatedHistory)
    with pytest.raises(ChainUnavailable, match="does not find the transaction"):
        adapter.incoming(ACCOUNT, ONE_INCOMING, ONE_INCOMING)
    with pytest.raises(ChainUnavailable, match="does not find the transaction"):
        adapter.incoming(ACCOUNT, OUTGOING_ONLY[0])  # up to the latest: every incoming one is listed
    # the same node, asked directly, says "not found" for the hash
    assert adapter.lookup(handler.paths("/transactions/")[0].path.rsplit("/", 1)[1]).status is TxStatus.NOT_FOUND


def test_the_replay_never_invents_an_end_of_history(fixtures_dir: Path) -> None:
    with ReplayServer({"stellar": build_handler(fixtures_dir)}) as server:
        url = f"{server.url_for('stellar')}/accounts/{ACCOUNT}/payments"

        def get(**params: str) -> requests.Response:
            return requests.get(url, params=params, timeout=5)

        recorded = record_of(fixtures_dir, "horizon_account_payments_page_native_mainnet.json")
        ids = [r["id"] for r in recorded["_embedded"]["records"]]
        # the recorded request itself, and the same records in smaller pages
        assert [r["id"] for r in get(order="desc", limit="25").json()["_embedded"]["records"]] == ids
        assert [r["id"] for r in get(order="desc", limit="10", cursor=ids[9]).json()["_embedded"]["records"]] == ids[
            10:20
        ]
        # one more record than recorded, or a page from the start: older history nobody recorded
        assert get(order="desc", limit="26").status_code == 501
        assert get(order="desc", limit="10", cursor=ids[20]).status_code == 501
        assert get(order="asc", limit="5").status_code == 501
        assert get(order="asc", cursor=str(OLDEST - 1), limit="200").status_code == 200
        assert get(order="asc", cursor=str(OLDEST - 2), limit="200").status_code == 501
        # the page was recorded without include_failed: it says nothing of failed transactions
        assert get(order="asc", cursor=str(OLDEST), include_failed="true").status_code == 501


# --------------------------------------------------------------------------------------------------
# a Horizon that is behind (the recorded root: ledger 52426477)


def test_the_recorded_root(serve: Any) -> None:
    adapter, _ = serve(recorded_head=True)
    assert adapter.head() == 52426477  # history_latest_ledger


def test_a_transaction_newer_than_the_root_is_try_later(serve: Any) -> None:
    adapter, _ = serve(recorded_head=True)
    for tx_hash in (FAILED_TX, FEE_BUMP):  # ledgers 52429114 and 52428726
        with pytest.raises(ChainUnavailable, match="behind"):
            adapter.lookup(tx_hash)
    older = adapter.lookup(CREDIT12)  # an older ledger: answered, confirmations from the root
    assert older.status is TxStatus.SUCCESS and older.confirmations == 52426477 - older.block_number + 1


def test_a_stale_horizon_cannot_say_not_found(serve: Any, fixtures_dir: Path) -> None:
    closed = datetime.fromisoformat(
        record_of(fixtures_dir, "horizon_root_mainnet.json")["history_latest_ledger_closed_at"]
    ).astimezone(UTC)
    adapter, _ = serve(recorded_head=True)  # the real clock: that ledger closed long ago
    with pytest.raises(ChainUnavailable, match="closed at"):
        adapter.lookup("ab" * 32)
    adapter, _ = serve(recorded_head=True, clock=lambda: closed + timedelta(seconds=10))
    assert adapter.lookup("ab" * 32).status is TxStatus.NOT_FOUND


def test_incoming_up_to_a_ledger_the_root_has_not_reached_is_try_later(serve: Any) -> None:
    adapter, _ = serve(recorded_head=True)
    assert adapter.incoming(ACCOUNT, *OUTGOING_ONLY) == []  # long before its latest ledger
    with pytest.raises(ChainUnavailable, match="behind"):
        adapter.incoming(ACCOUNT, OUTGOING_ONLY[0], 52426478)


def test_a_horizon_of_another_network_is_refused(serve: Any) -> None:
    adapter, _ = serve(recorded_head=True, network_passphrase=StellarNetwork.TESTNET_NETWORK_PASSPHRASE)
    with pytest.raises(ChainUnavailable, match="serves the network"):
        adapter.head()


@pytest.mark.parametrize(("since", "until"), [(-1, None), (10, 9), (True, None)])
def test_incoming_refuses_bad_ranges(adapter_on_shared_replay: StellarAdapter, since: Any, until: Any) -> None:
    with pytest.raises(InvalidChainInput):
        adapter_on_shared_replay.incoming(ACCOUNT, since, until)
