"""``recovery scan`` looking many addresses up at once (``EvmAdapter.incoming_many``): the same
findings and cases as one address at a time, lists the node refuses split, and the cursors never
past a range not fully processed, whatever stops the scan; on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import signal
import threading
import time
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests
from sqlalchemy import update
from sqlmodel import col, select

from chains import devchain
from chains.devchain import SeedTransfer
from chains.evm import EvmAdapter
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.models import Case, CreditedDeposit, DepositAddress, ScanCursor, ScanFinding
from recovery.scan import Scanner, ScanOptions, ScanSummary, sync_cursors
from recovery.services import CaseService, decision_signature
from tests.conftest import Clock, new_database
from tests.fixtures_anvil import FUNDER, EvmTestbed, LocalNode, Reply, fresh_address, network_variant
from tests.test_scan import (
    assert_each_found_once,
    cases_by_tx,
    cursors,
    findings,
    head,
    hold,
    many_strays,
    run_scan,
    scan_config,
    scan_process,
    send_strays,
    settle,
    write_config,
)

pytestmark = pytest.mark.anvil


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> CaseService:
    return CaseService(database, scan_config(evm_testbed, suspended=("bsc", "USDC")), clock)


def backend_of(db: Database) -> str:
    return "postgresql" if db.is_postgresql else "sqlite"


def copy_holdings(source: Database, target: Database) -> None:
    """The deposit addresses and credits of ``source`` into ``target`` (an exchange's two imports)."""
    with source.read() as session:
        held = [(r.user_id, r.network, r.address, r.memo, r.kind) for r in session.exec(select(DepositAddress)).all()]
        credits = [(c.network, c.tx_hash, c.user_id, c.asset, c.amount)
                   for c in session.exec(select(CreditedDeposit)).all()]
    with target.write() as session:
        session.add_all(DepositAddress(user_id=u, network=n, address=a, memo=m, kind=k) for u, n, a, m, k in held)
        session.add_all(CreditedDeposit(network=n, tx_hash=h, user_id=u, asset=a, amount=x)
                        for n, h, u, a, x in credits)


def outcome(db: Database) -> tuple[set[tuple[Any, ...]], set[tuple[Any, ...]]]:
    """Every finding and every case, without ids, references or times (what a scan decided)."""
    with db.read() as session:
        rows = list(session.exec(select(Case)).all())
        by_id = {c.id: (c.tx_hash.lower(), c.user_id) for c in rows}
        found = {
            (f.network, f.tx_hash.lower(), f.kind, f.transfer_index, f.sender, f.recipient, f.memo, f.contract, f.asset,
             f.amount_base_units, f.amount, f.value_usd, f.block_number, f.block_hash, f.category, f.outcome, f.user_id,
             by_id.get(f.case_id) if f.case_id is not None else None)
            for f in session.exec(select(ScanFinding)).all()
        }
    opened = {
        (c.tx_hash.lower(), c.user_id, c.network, c.asset, c.amount, c.deposit_address, c.memo, c.category, c.status,
         c.origin, c.recoverable, tuple(sorted(c.flags or ())), c.credited_user_id,
         json.dumps(decision_signature(c.decision or {}), sort_keys=True, default=str))
        for c in rows
    }
    return found, opened


COUNTED = ("scanned", "up_to_date", "blocks", "transactions", "transfers", "opened", "appealed", "dust", "counterfeit",
           "ignored", "credited", "own_senders", "resumed", "seen_before", "unavailable")


def pay_two_at_once(testbed: EvmTestbed, first: str, second: str) -> tuple[str, str]:
    """One transaction paying both addresses USDT (two logs), one splitting ETH over both (traces)."""
    usdt = testbed.tokens["ethereum"]["USDT"]
    multi = testbed.deploy("ethereum", "MultiTransfer")
    testbed.transact("ethereum", "TestToken", usdt, "approve", multi, 70 * 10**6)
    tokens = testbed.transact("ethereum", "MultiTransfer", multi, "multiTransfer", [usdt, usdt], [first, second],
                              [30 * 10**6, 40 * 10**6])
    forwarder = testbed.deploy("ethereum", "Forwarder", fresh_address())
    native = testbed.transact("ethereum", "Forwarder", forwarder, "forwardMany", [first, second],
                              [2 * 10**16, 3 * 10**16], value=5 * 10**16)
    return tokens, native


# ----------------------------------------------------------------------------------------------- the same answers


def test_batched_finds_exactly_what_the_per_address_scan_finds(
    request: pytest.FixtureRequest, tmp_path: Path, cases: CaseService, evm_testbed: EvmTestbed,
    monkeypatch: pytest.MonkeyPatch
) -> None:
    strays = send_strays(cases, evm_testbed)  # every EVM kind: wrong network, unlisted, dust, counterfeit, ...
    owners = many_strays(cases, evm_testbed, 4)
    dana, erin = hold(cases, "dana"), hold(cases, "erin")
    shared = pay_two_at_once(evm_testbed, dana, erin)  # one transaction, a case for each of two users
    settle(evm_testbed)
    prices = {("ethereum", strays.spam_token): Decimal("0.05")}

    asked = Counter[str]()
    for method in ("incoming", "incoming_many"):
        original = getattr(EvmAdapter, method)

        def spy(self: EvmAdapter, *args: Any, __original: Any = original, __name: str = method) -> Any:
            asked[__name] += 1
            return __original(self, *args)

        monkeypatch.setattr(EvmAdapter, method, spy)
    (tmp_path / "alone").mkdir()
    for other in new_database(backend_of(cases.db), request, tmp_path / "alone"):
        copy_holdings(cases.db, other)
        alone = CaseService(other, cases.config, Clock(cases.clock()))
        one_by_one = run_scan(alone, prices=prices, batch_size=1, workers=1)
        assert asked["incoming_many"] == 0 and asked["incoming"] == one_by_one.scanned
        asked.clear()
        together = run_scan(cases, prices=prices, batch_size=50, workers=1)
        assert asked == {"incoming_many": 2}  # one call per network for every address (one range)
        monkeypatch.undo()
        assert {k: getattr(together, k) for k in COUNTED} == {k: getattr(one_by_one, k) for k in COUNTED}
        assert together.categories == one_by_one.categories
        assert together.recorded_categories == one_by_one.recorded_categories
        assert outcome(cases.db) == outcome(other)
        assert {(c.network, c.address, c.scanned_to) for c in cursors(cases.db)} == {
            (c.network, c.address, c.scanned_to) for c in cursors(other)}
    by_tx = cases_by_tx(cases.db)
    assert set(by_tx) == set(strays.opened) | set(owners) | set(shared)
    for tx in shared:
        assert sorted(c.user_id for c in by_tx[tx]) == ["dana", "erin"]
    assert together.opened == len(by_tx) + 2 and together.unavailable == 0


def test_addresses_at_different_places_are_scanned_together_each_from_its_own(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    ahead, behind, fresh = hold(cases, "ahead"), hold(cases, "behind"), hold(cases, "fresh")
    start = head(evm_testbed, "ethereum") + 1
    early = {a: evm_testbed.send_native("ethereum", a, 10**16 + i) for i, a in enumerate((ahead, behind, fresh))}
    middle = head(evm_testbed, "ethereum")
    evm_testbed.mine("ethereum", 5)
    late = {a: evm_testbed.send_native("ethereum", a, 2 * 10**16 + i) for i, a in enumerate((ahead, behind, fresh))}
    settle(evm_testbed)
    options = ScanOptions(network="ethereum", chunk_blocks=4, batch_size=50, workers=1)
    sync_cursors(cases.db, cases.config, options)
    with cases.db.write() as session:  # ahead was scanned up to the middle already; fresh starts after it
        session.execute(update(ScanCursor).where(col(ScanCursor.address) == ahead).values(scanned_to=middle))
        session.execute(update(ScanCursor).where(col(ScanCursor.address) == fresh).values(first_block=middle + 1))
    cases.clock.advance(minutes=5)  # type: ignore[attr-defined]
    summary = Scanner(cases, ChainGateway(cases.config), options).run()
    safe = head(evm_testbed, "ethereum") - cases.config.network("ethereum").confirmations + 1
    assert summary.scanned == 3 and summary.blocks == 2 * (safe - middle) + (safe - start + 1)
    assert set(cases_by_tx(cases.db)) == {early[behind], *late.values()}  # what is behind a cursor is not read again
    assert {(c.address, c.scanned_to) for c in cursors(cases.db)} == {(a, safe) for a in (ahead, behind, fresh)}


# ----------------------------------------------------------------------------------------------- a picky node


def on_node(config: Config, network: str, url: str, **changes: Any) -> Config:
    """``config`` with ``network`` served by the node at ``url`` (and other network keys)."""
    moved = network_variant(config.network(network), url, **changes)
    return dataclasses.replace(config, networks=MappingProxyType({**config.networks, network: moved}))


def test_a_node_that_refuses_large_lists_gets_them_split(
    database: Database, evm_testbed: EvmTestbed, clock: Clock
) -> None:
    upstream = evm_testbed.url("ethereum")
    longest: list[int] = []

    def at_most_two(request: Any, _: int) -> Reply | None:
        calls = request if isinstance(request, list) else [request]
        if not any(c["method"] in ("eth_getLogs", "trace_filter") for c in calls):
            return None
        answers = {a["id"]: a for a in requests.post(upstream, json=calls, timeout=60).json()}
        for call in calls:
            if call["method"] not in ("eth_getLogs", "trace_filter"):
                continue
            query = call["params"][0]
            listed = query["toAddress"] if call["method"] == "trace_filter" else query["topics"][2]
            size = len(listed) if isinstance(listed, list) else 1
            longest.append(size)
            if size > 2:
                answers[call["id"]].pop("result", None)
                answers[call["id"]]["error"] = {"code": -32000,
                                                "message": "exceed max addresses or topics per search position"}
        return Reply([answers[c["id"]] for c in calls] if isinstance(request, list) else answers[calls[0]["id"]])

    with LocalNode(at_most_two, upstream=upstream) as picky:
        service = CaseService(database, on_node(scan_config(evm_testbed), "ethereum", picky.url), clock)
        owners = many_strays(service, evm_testbed, 6)
        summary = run_scan(service, batch_size=50, workers=1)
    assert summary.unavailable == 0 and summary.scanned == 12
    assert_each_found_once(service, owners)
    assert max(longest) == 6 and longest[-1] <= 2  # refused once, then asked in lists of two


# ----------------------------------------------------------------------------------------------- never past a gap


def strays_by_block(service: CaseService, owners: dict[str, str]) -> dict[tuple[str, str], list[tuple[int, str]]]:
    """(network, address) -> [(block, tx)] of the strays, read from a complete scan's findings."""
    out: dict[tuple[str, str], list[tuple[int, str]]] = {}
    for f in findings(service.db):
        if f.tx_hash in owners:
            out.setdefault((f.network, f.recipient.lower()), []).append((f.block_number or 0, f.tx_hash))
    return out


def assert_no_gap(snapshot: list[ScanCursor], found: set[str], strays: dict[tuple[str, str], list[tuple[int, str]]]
                  ) -> None:
    """Every stray at or below a cursor has its finding: a cursor never passed a range not processed."""
    for cursor in snapshot:
        for block, tx in strays.get((cursor.network, cursor.address.lower()), []):
            if cursor.scanned_to is not None and block <= cursor.scanned_to:
                assert tx in found, (cursor.network, cursor.address, cursor.scanned_to, block)


@pytest.mark.parametrize("failing", ["trace_filter", "eth_getTransactionReceipt"])
def test_an_error_mid_batch_keeps_every_cursor_before_the_range(
    database: Database, evm_testbed: EvmTestbed, clock: Clock, failing: str
) -> None:
    upstream = evm_testbed.url("ethereum")
    down: dict[str, Any] = {"from": None, "hashes": set()}

    def failing_after(request: Any, _: int) -> Reply | None:
        calls = request if isinstance(request, list) else [request]
        for call in calls:
            if call["method"] != failing:
                continue
            if failing == "trace_filter" and down["from"] is not None and int(call["params"][0]["toBlock"], 16) >= down[
                    "from"]:
                return Reply(b"bad gateway", status=502)
            if failing != "trace_filter" and call["params"][0] in down["hashes"]:
                return Reply(b"bad gateway", status=502)
        return None

    with LocalNode(failing_after, upstream=upstream) as flaky:
        service = CaseService(database, on_node(scan_config(evm_testbed), "ethereum", flaky.url, retry_attempts=1,
                                                cooldown_seconds=0), clock)
        owners = many_strays(service, evm_testbed, 6)
        # where the ethereum strays are; the node fails from the third one on
        looked = evm_testbed.adapter("ethereum").lookup_many(list(owners))
        block_of = {tx: o.block_number or 0 for tx, o in looked.items() if o.found}
        third = sorted(block_of.values())[2]
        down["from"] = third
        down["hashes"] = {tx.lower() for tx, block in block_of.items() if block >= third}
        first = run_scan(service, network="ethereum", batch_size=50, workers=1, chunk_blocks=2)
        assert first.unavailable == 6 and first.scanned == 0
        snapshot = cursors(service.db)
        [stopped] = {c.scanned_to for c in snapshot}  # they move together
        assert stopped is not None and third - 2 <= stopped < third  # up to the range before the failing one
        assert all(c.last_error for c in snapshot)
        before = {f.tx_hash for f in findings(service.db)}
        assert before == {tx for tx, block in block_of.items() if block <= stopped}  # and only those
        assert len(before) >= 1
        down["from"], down["hashes"] = None, set()  # the node recovers
        second = run_scan(service, batch_size=50, workers=1, chunk_blocks=2)
    assert second.unavailable == 0 and second.scanned == 12
    assert_each_found_once(service, owners)
    assert_no_gap(snapshot, before, strays_by_block(service, owners))


class Killed(BaseException):
    """What a SIGKILL would do to the scanner at this point, in-process."""


@pytest.mark.parametrize("where", ["after_a_case_opened", "while_saving_a_range"])
def test_a_scanner_stopped_mid_batch_leaves_no_gap_and_no_duplicate(
    cases: CaseService, evm_testbed: EvmTestbed, monkeypatch: pytest.MonkeyPatch, where: str
) -> None:
    owners = many_strays(cases, evm_testbed, 6)
    calls = Counter[str]()
    if where == "after_a_case_opened":
        submit = CaseService.submit

        def dying_submit(self: CaseService, *args: Any, **kwargs: Any) -> Any:
            answer = submit(self, *args, **kwargs)
            calls["submit"] += 1
            if calls["submit"] == 3:  # the third stray: a case, not recorded with its range
                raise Killed
            return answer

        monkeypatch.setattr(CaseService, "submit", dying_submit)
    else:
        commit = Scanner._commit_units

        def dying_commit(self: Scanner, rows: Any, leases: Any, last: int, found: Any) -> set[int]:
            calls["commit"] += 1
            if calls["commit"] == 3:
                with self.db.write() as session:  # half-written: rolled back with the range
                    session.execute(update(ScanCursor).values(scanned_to=last))
                    raise Killed
            return commit(self, rows, leases, last, found)

        monkeypatch.setattr(Scanner, "_commit_units", dying_commit)
    with pytest.raises(Killed):
        run_scan(cases, batch_size=50, workers=1, chunk_blocks=1)
    monkeypatch.undo()
    snapshot = cursors(cases.db)
    before = {f.tx_hash for f in findings(cases.db)}
    assert 0 < len(cases_by_tx(cases.db)) < len(owners)
    assert any(c.scanned_to is not None for c in snapshot)
    summary = run_scan(cases, batch_size=50, workers=1)
    assert summary.scanned == 12
    assert summary.resumed == 1  # the case opened in the range that was not saved is finished, not opened again
    assert_each_found_once(cases, owners)
    assert_no_gap(snapshot, before, strays_by_block(cases, owners))


def test_killed_mid_batch_the_next_run_leaves_no_gap_and_no_duplicate(
    cases: CaseService, evm_testbed: EvmTestbed, tmp_path: Path
) -> None:
    owners = many_strays(cases, evm_testbed, 6)
    config_dir = write_config(cases.config, tmp_path / "config")
    child = scan_process(cases.db, config_dir, "--chunk-blocks", "1", "--workers", "1", "--batch-size", "12")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if findings(cases.db):  # some ranges saved, most not yet
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    snapshot = cursors(cases.db)
    before = {f.tx_hash for f in findings(cases.db)}
    partial = len(cases_by_tx(cases.db))
    assert 0 < partial < len(owners)
    summary = run_scan(cases, batch_size=12)  # takes the killed scanner's leases over at once
    assert summary.scanned == 12
    assert_each_found_once(cases, owners)
    assert_no_gap(snapshot, before, strays_by_block(cases, owners))
    safe = {n: head(evm_testbed, n) - cases.config.network(n).confirmations + 1 for n in ("ethereum", "bsc")}
    assert {(c.network, c.scanned_to) for c in cursors(cases.db)} == set(safe.items())


def test_a_lease_lost_mid_batch_stops_that_address_only(
    cases: CaseService, evm_testbed: EvmTestbed, monkeypatch: pytest.MonkeyPatch
) -> None:
    owners = many_strays(cases, evm_testbed, 4)
    handle = Scanner._handle_units
    taken: list[int] = []

    def taken_over(self: Scanner, network: Any, units: Any, summary: ScanSummary) -> Any:
        answer = handle(self, network, units, summary)
        # the first address with a finding in the range: another scanner took it over (our lease
        # had expired) while the range was being decided
        found = [address for (address, _, _), items in zip(units, answer, strict=True) if items]
        if not taken and found:
            with self.db.write() as session:
                row = session.exec(select(ScanCursor).where(ScanCursor.network == network.name,
                                                            ScanCursor.address == found[0])).one()
                assert row.id is not None
                taken.append(row.id)
                session.execute(update(ScanCursor).where(col(ScanCursor.id) == row.id)
                                .values(lease_owner="scan:other", lease_expires_at=self.service.clock()))
        return answer

    monkeypatch.setattr(Scanner, "_handle_units", taken_over)
    summary = run_scan(cases, batch_size=50, workers=1, chunk_blocks=3)
    monkeypatch.undo()
    assert summary.scanned == 7 and len(summary.errors) == 1 and "another scanner" in summary.errors[0]
    [lost] = [c for c in cursors(cases.db) if c.id == taken[0]]
    assert lost.scanned_to is None  # nothing written for it by the scanner that lost it: no cursor, no finding
    assert not [f for f in findings(cases.db) if f.network == lost.network
                and f.recipient.lower() == lost.address.lower()]
    assert any(f.network != lost.network or f.recipient.lower() != lost.address.lower()
               for f in findings(cases.db))  # the others' were written
    again = run_scan(cases, batch_size=50)
    assert again.scanned == 1 and not again.errors
    assert_each_found_once(cases, owners)


# ----------------------------------------------------------------------------------------------- sharing


@pytest.fixture
def pg_cases(request: pytest.FixtureRequest, tmp_path: Path, evm_testbed: EvmTestbed, clock: Clock
             ) -> Iterator[CaseService]:
    for db in new_database("postgresql", request, tmp_path):
        yield CaseService(db, scan_config(evm_testbed), clock)


def test_scanners_share_batches_on_postgresql(pg_cases: CaseService, evm_testbed: EvmTestbed) -> None:
    owners = many_strays(pg_cases, evm_testbed, 9)
    results: list[ScanSummary] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(Scanner(pg_cases, ChainGateway(pg_cases.config),
                                   ScanOptions(chunk_blocks=3, workers=2, batch_size=3)).run())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and len(results) == 3
    assert sum(r.scanned for r in results) == 18  # each (network, address) scanned by exactly one of them
    assert sum(r.opened + r.resumed for r in results) == len(owners)
    assert_each_found_once(pg_cases, owners)
    assert all(c.lease_owner is None for c in cursors(pg_cases.db))


def test_several_deposits_in_one_block_to_several_addresses(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    """One block holding a stray for each of several addresses of a batch, ETH and USDT."""
    held = [hold(cases, f"user{i}") for i in range(5)]
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    sent = devchain.seed_transfers(evm_testbed.url("ethereum"), [
        SeedTransfer(FUNDER, a, value=10**16 + i) if i % 2 else SeedTransfer(FUNDER, a, token=usdt, amount=10**7 + i)
        for i, a in enumerate(held)])
    settle(evm_testbed)
    summary = run_scan(cases, network="ethereum", batch_size=50)
    assert summary.opened == 5 and summary.scanned == 5
    assert {tx: [c.user_id for c in rows] for tx, rows in cases_by_tx(cases.db).items()} == {
        tx: [f"user{i}"] for i, tx in enumerate(sent)}
