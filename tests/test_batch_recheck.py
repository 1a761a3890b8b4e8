"""The batch re-check (recovery.recheck) on real anvil chains, on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from sqlmodel import select

from app.demo.chainworld import impersonate, send_all, token_transfer
from chains import devchain
from recovery.batch_deciding import InProcessDecider, ProcessDecider
from recovery.checking import CaseChecker, ChainGateway
from recovery.config import Config, Network
from recovery.db import Database
from recovery.intake import validate_appeal
from recovery.leases import Leases, RunnerBusy
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.recheck import Recheck, RecheckOptions, RecheckSummary
from recovery.services import SYSTEM, Actor, CaseService, ChainUpdate
from recovery.vocabulary import CaseStatus, Role
from tests.conftest import Clock, new_database
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address

APPROVER = Actor("omar", Role.APPROVER)
SPECIALIST = Actor("maria", Role.SPECIALIST)


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> CaseService:
    return CaseService(database, evm_testbed.config, clock)


@pytest.fixture
def sqlite_cases(
    request: pytest.FixtureRequest, tmp_path: Path, evm_testbed: EvmTestbed, clock: Clock
) -> Iterator[CaseService]:
    for db in new_database("sqlite", request, tmp_path):
        yield CaseService(db, evm_testbed.config, clock)


@pytest.fixture
def pg_cases(
    request: pytest.FixtureRequest, tmp_path: Path, evm_testbed: EvmTestbed, clock: Clock
) -> Iterator[CaseService]:
    for db in new_database("postgresql", request, tmp_path):
        yield CaseService(db, evm_testbed.config, clock)


def user_address(service: CaseService, user: str, networks: tuple[str, ...] = ("ethereum", "bsc")) -> str:
    address = fresh_address()
    with service.db.write() as session:
        for network in networks:
            session.add(DepositAddress(user_id=user, network=network, address=address, kind="eoa"))
    return address


def appeal(service: CaseService, user: str, network: str, asset: str, tx_hash: str, address: str) -> str:
    draft = validate_appeal(service.config, {"network": network, "asset": asset, "tx_hash": tx_hash,
                                             "deposit_address": address}, user)
    case, _ = service.submit(draft, Actor(user, Role.USER))
    return case.reference or ""


@pytest.fixture(params=[0, 2], ids=["in-process", "2-processes"])
def processes(request: pytest.FixtureRequest) -> int:
    """Where batches are looked up and decided: the runner's own process, or two forked workers."""
    return int(request.param)


def recheck(service: CaseService, config: Config | None = None, **options: object) -> RecheckSummary:
    if isinstance(service.clock, Clock):
        service.clock.advance(minutes=5)  # each run happens later than the last
    gateway = ChainGateway(config or service.config)
    return Recheck(service, gateway, RecheckOptions(**options)).run()  # type: ignore[arg-type]


def events(service: CaseService, reference: str) -> list[CaseEvent]:
    return service.get(reference).events


def status(service: CaseService, reference: str) -> str:
    return service.get(reference).case.status


def test_confirmations_reached_between_runs(cases: CaseService, evm_testbed: EvmTestbed, processes: int) -> None:
    address = user_address(cases, "alice")
    tx = evm_testbed.send_token("ethereum", "USDT", address, 250 * 10**6)
    ref = appeal(cases, "alice", "ethereum", "USDT", tx, address)
    first = recheck(cases, processes=processes)
    assert status(cases, ref) == CaseStatus.AWAITING_CHAIN
    assert cases.get(ref).case.category == "awaiting_confirmations"
    assert first.transitions[("submitted", "awaiting_chain")] >= 1
    before = len(events(cases, ref))
    recheck(cases, processes=processes)  # nothing new on chain: bookkeeping only, no audit row
    assert len(events(cases, ref)) == before
    evm_testbed.mine("ethereum", 12)
    recheck(cases, processes=processes)
    case = cases.get(ref).case
    assert (case.status, case.category, case.amount) == ("in_review", "uncredited_valid", Decimal("250"))


def test_reorg_is_detected_and_recorded(cases: CaseService, evm_testbed: EvmTestbed, processes: int) -> None:
    url = evm_testbed.url("ethereum")
    address = user_address(cases, "bob")
    snapshot = devchain.snapshot(url)
    head_before = int(devchain.rpc(url).call("eth_blockNumber"), 16)
    spec = token_transfer("ethereum", FUNDER, evm_testbed.tokens["ethereum"]["USDT"], address, 75 * 10**6)
    tx = send_all(url, [spec])[0]
    evm_testbed.mine("ethereum", 12)
    ref = appeal(cases, "bob", "ethereum", "USDT", tx, address)
    recheck(cases, processes=processes)
    first_block = cases.get(ref).case.decision
    assert status(cases, ref) == "in_review" and first_block is not None
    devchain.revert(url, snapshot)
    evm_testbed.mine("ethereum", 2)  # the same transaction now lands in another block
    assert send_all(url, [spec])[0] == tx
    evm_testbed.mine("ethereum", 12)
    summary = recheck(cases, processes=processes)
    assert summary.reorgs == 1
    last = events(cases, ref)[-1]
    assert last.action == "chain_result" and last.details.get("reorg")
    head = int(devchain.rpc(url).call("eth_blockNumber"), 16)
    evm_testbed.mine("ethereum", max(1, head_before + 40 - head))  # keep the shared chain ahead of any head seen


def test_a_reorg_is_recorded_on_each_contested_case_even_in_different_batches(
    cases: CaseService, evm_testbed: EvmTestbed, processes: int
) -> None:
    # Two users appeal one transfer; each batch holds one case, so the second batch finds the shared
    # observation already moved to the new block by the first: its own decision still shows the old.
    url = evm_testbed.url("ethereum")
    address = user_address(cases, "bob")
    snapshot = devchain.snapshot(url)
    head_before = int(devchain.rpc(url).call("eth_blockNumber"), 16)
    spec = token_transfer("ethereum", FUNDER, evm_testbed.tokens["ethereum"]["USDT"], address, 80 * 10**6)
    tx = send_all(url, [spec])[0]
    evm_testbed.mine("ethereum", 12)
    refs = [appeal(cases, user, "ethereum", "USDT", tx, address) for user in ("bob", "mallory")]
    recheck(cases, batch_size=1, workers=1, processes=processes)
    assert all(status(cases, ref) == "in_review" for ref in refs)
    devchain.revert(url, snapshot)
    evm_testbed.mine("ethereum", 3)  # the same transaction now lands in another block
    assert send_all(url, [spec])[0] == tx
    evm_testbed.mine("ethereum", 12)

    summary = recheck(cases, batch_size=1, workers=1, processes=processes)

    assert summary.reorgs == 2
    moves = []
    for ref in refs:
        last = events(cases, ref)[-1]
        assert last.action == "chain_result" and last.details.get("reorg"), ref
        [move] = last.details["reorg"]
        moves.append((move["old_block_hash"], move["new_block_hash"]))
    assert moves[0] == moves[1] and moves[0][0] != moves[0][1]
    head = int(devchain.rpc(url).call("eth_blockNumber"), 16)
    evm_testbed.mine("ethereum", max(1, head_before + 40 - head))  # keep the shared chain ahead of any head seen


def refund_case(cases: CaseService, evm_testbed: EvmTestbed, user: str) -> tuple[str, str, str]:
    """An unlisted-token deposit, decided (refund) and approved; returns (reference, token, address)."""
    address = user_address(cases, user)
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    tx = evm_testbed.send_token("ethereum", token, address, 5000 * 10**18)
    evm_testbed.mine("ethereum", 12)
    ref = appeal(cases, user, "ethereum", token, tx, address)
    recheck(cases)
    case = cases.get(ref).case
    assert (case.category, case.resolution) == ("unlisted_token", "refund")
    # no price: a specialist values it (0.1 USD: the 80 USD fee is 800 tokens, 4200 go back)
    case = cases.set_valuation(ref, SPECIALIST, expected_version=case.version, price_usd="0.1", source="quote",
                               reason="no listed price")
    sent = cases.send_for_approval(ref, SPECIALIST, expected_version=case.version)  # a manual value: four eyes
    cases.approve(ref, APPROVER, expected_version=sent.version)
    return ref, token, address


def test_refund_confirmed_on_chain(cases: CaseService, evm_testbed: EvmTestbed, processes: int) -> None:
    ref, token, address = refund_case(cases, evm_testbed, "carol")
    url = evm_testbed.url("ethereum")
    impersonate(url, address)
    refund = send_all(url, [token_transfer("ethereum", address, token, FUNDER, 4200 * 10**18)])[0]
    cases.record_refund(ref, refund, SPECIALIST, expected_version=cases.get(ref).case.version)
    recheck(cases, processes=processes)
    assert status(cases, ref) == "refund_pending"  # mined, not yet confirmed
    evm_testbed.mine("ethereum", 12)
    summary = recheck(cases, processes=processes)
    assert summary.refunds_confirmed == 1 and status(cases, ref) == "refunded"
    assert events(cases, ref)[-1].details["refund_tx_hash"] == refund


def test_failed_refund_goes_back_to_approved(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    ref, token, address = refund_case(cases, evm_testbed, "dave")
    url = evm_testbed.url("ethereum")
    impersonate(url, address)
    too_much = token_transfer("ethereum", address, token, FUNDER, 10**40)  # reverts: more than it holds
    refund = send_all(url, [too_much])[0]
    cases.record_refund(ref, refund, SPECIALIST, expected_version=cases.get(ref).case.version)
    summary = recheck(cases)
    case = cases.get(ref).case
    assert summary.refunds_failed == 1
    assert (case.status, case.refund_tx_hash) == ("approved", None)
    assert events(cases, ref)[-1].details["failed_refund_tx_hash"] == refund


def test_a_network_that_is_down_leaves_its_cases_untouched(
    cases: CaseService, evm_testbed: EvmTestbed, unused_url: str, processes: int
) -> None:
    address = user_address(cases, "erin")
    eth_tx = evm_testbed.send_native("ethereum", address, 10**17)
    bsc_tx = evm_testbed.send_native("bsc", address, 10**17)
    evm_testbed.mine("ethereum", 12)
    evm_testbed.mine("bsc", 15)
    on_eth = appeal(cases, "erin", "ethereum", "ETH", eth_tx, address)
    on_bsc = appeal(cases, "erin", "bsc", "BNB", bsc_tx, address)
    bsc_down = evm_testbed.config.network("bsc").model_dump()
    bsc_down.update(rpc_urls=[unused_url], retry_attempts=1, connect_timeout_seconds=0.2)
    networks = dict(evm_testbed.config.networks) | {"bsc": Network.model_validate(bsc_down)}
    import dataclasses

    config = dataclasses.replace(evm_testbed.config, networks=networks)
    summary = recheck(cases, config, processes=processes)
    assert status(cases, on_eth) == "in_review"
    assert status(cases, on_bsc) == "submitted" and len(events(cases, on_bsc)) == 1
    assert summary.unavailable_networks["bsc"] >= 1 and summary.unavailable >= 1


@pytest.fixture
def unused_url() -> Iterator[str]:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_sqlite_allows_one_runner_at_a_time(sqlite_cases: CaseService) -> None:
    cases = sqlite_cases
    with Leases(cases.db, "someone-else", lease_seconds=60, clock=cases.clock), pytest.raises(
        RunnerBusy, match="one at a time"
    ):
        recheck(cases)


def test_dry_run_writes_nothing(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    address = user_address(cases, "fay")
    tx = evm_testbed.send_native("ethereum", address, 10**17)
    evm_testbed.mine("ethereum", 12)
    ref = appeal(cases, "fay", "ethereum", "ETH", tx, address)
    summary = recheck(cases, dry_run=True)
    assert summary.transitions[("submitted", "in_review")] == 1 and summary.categories["uncredited_valid"] == 1
    assert status(cases, ref) == "submitted" and len(events(cases, ref)) == 1


def test_two_runners_on_postgresql_share_2000_cases_exactly_once(pg_cases: CaseService, processes: int) -> None:
    cases = pg_cases
    address = to_checksum_address(fresh_address())
    with cases.db.write() as session:
        for i in range(2000):
            session.add(Case(user_id=f"u{i}", network="ethereum", asset="ETH", tx_hash="0x" + f"{i:064x}",
                             deposit_address=address, status="submitted", flags=[], reference=f"RC-T{i:06d}"))
    summaries: list[RecheckSummary] = []
    barrier = threading.Barrier(2)

    def runner() -> None:
        barrier.wait()
        summaries.append(recheck(cases, batch_size=100, workers=2, processes=processes))

    threads = [threading.Thread(target=runner) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert len(summaries) == 2 and all(s.processed > 0 for s in summaries), [s.processed for s in summaries]
    assert sum(s.processed for s in summaries) == 2000
    with cases.db.read() as session:
        per_case = Counter(session.exec(select(CaseEvent.case_id).where(CaseEvent.action == "chain_result")).all())
        statuses = Counter(session.exec(select(Case.status)).all())
        leased = session.exec(select(Case.id).where(Case.lease_owner != None)).all()  # noqa: E711
    assert len(per_case) == 2000 and set(per_case.values()) == {1}
    assert statuses == {"awaiting_chain": 2000} and not leased


def test_appeals_naming_different_networks_for_one_transaction_are_contested(
    cases: CaseService, evm_testbed: EvmTestbed, processes: int
) -> None:
    address = user_address(cases, "gus")
    tx = evm_testbed.send_token("bsc", "USDT", address, 90 * 10**18)
    evm_testbed.mine("bsc", 15)
    mine = appeal(cases, "gus", "bsc", "USDT", tx, address)
    theirs = appeal(cases, "hal", "ethereum", "USDT", tx, address)  # thinks it went on Ethereum
    recheck(cases, processes=processes)
    for reference in (mine, theirs):
        assert "contested" in cases.get(reference).case.flags, reference


def test_worker_processes_need_a_gateway_that_makes_its_own_adapters(
    sqlite_cases: CaseService, evm_testbed: EvmTestbed, caplog: pytest.LogCaptureFixture
) -> None:
    """Adapters handed to a gateway hold this process's connections: a fork cannot reuse them, so the
    run decides in its own process instead (and says so)."""
    cases = sqlite_cases
    address = user_address(cases, "ida")
    tx = evm_testbed.send_native("ethereum", address, 10**17)
    evm_testbed.mine("ethereum", 12)
    ref = appeal(cases, "ida", "ethereum", "ETH", tx, address)
    given = ChainGateway(cases.config, adapters={"ethereum": evm_testbed.adapter("ethereum")})
    with pytest.raises(ValueError, match="makes its own adapters"):
        ProcessDecider(cases, given, 2)

    runner = Recheck(cases, given, RecheckOptions(processes=2))
    with runner.deciders() as decider:
        assert isinstance(decider, InProcessDecider)
    summary = runner.run()

    assert "deciding in this process" in caplog.text
    assert summary.changed == 1 and status(cases, ref) == "in_review"


def test_a_process_decider_decides_only_while_entered(sqlite_cases: CaseService) -> None:
    decider = ProcessDecider(sqlite_cases, ChainGateway(sqlite_cases.config), 1)
    with pytest.raises(RuntimeError, match="not running"):
        decider.decide([1], sqlite_cases.clock())
    with decider:
        assert decider.decide([], sqlite_cases.clock()).cases == []
    with pytest.raises(RuntimeError, match="not running"):
        decider.decide([1], sqlite_cases.clock())


def test_a_worker_process_hands_over_the_batch_it_would_decide_in_process(
    sqlite_cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    """What a worker process sends the runner (cases, observations with their transfers, decisions
    as stored JSON) arrives equal to deciding in the runner's own process."""
    address = user_address(sqlite_cases, "ana")
    native = evm_testbed.send_native("ethereum", address, 10**15)
    token = evm_testbed.send_token("ethereum", "USDT", address, 5 * 10**6)
    references = [appeal(sqlite_cases, "ana", "ethereum", "ETH", native, address),
                  appeal(sqlite_cases, "ana", "ethereum", "USDT", token, address)]
    ids = [sqlite_cases.get(r).case.id for r in references]
    assert None not in ids
    now = sqlite_cases.clock()
    gateway = ChainGateway(sqlite_cases.config)
    here = InProcessDecider(CaseChecker(sqlite_cases, gateway)).decide(ids, now)  # type: ignore[arg-type]
    with ProcessDecider(sqlite_cases, gateway, 1) as decider:
        there = decider.decide(ids, now)  # type: ignore[arg-type]
    assert there == here
    assert [c.reference for c in there.cases] == references
    transfers = [t for e in there.evidence.values() for o in e.observations.values() for t in o.transfers]
    assert sorted((t.kind.value, t.amount) for t in transfers) == [("native", 10**15), ("token", 5 * 10**6)]
    assert sorted(d["category"] for d in there.decisions.values()) == ["awaiting_confirmations"] * 2  # not deep yet
    assert all(type(d) is dict and isinstance(d["reasons"], list) for d in there.decisions.values())


def test_applying_a_result_clears_only_the_runners_own_lease(cases: CaseService) -> None:
    """The re-check clears its lease in the update that records the result (no second row version);
    a case another runner holds keeps that runner's lease."""
    references = [appeal(cases, user, "ethereum", "ETH", "0x" + f"{i:064x}", fresh_address())
                  for i, user in ((1, "ana"), (2, "ben"))]
    until = cases.clock() + timedelta(minutes=5)
    with cases.db.write() as session:
        for reference, owner in zip(references, ("runner-a", "runner-b"), strict=True):
            row = session.exec(select(Case).where(Case.reference == reference)).one()
            row.lease_owner, row.lease_expires_at = owner, until
            session.add(row)
    updates = [ChainUpdate(r, None, cases.get(r).case.version, {}, {"ethereum": "node down"}) for r in references]
    applied = cases.apply_decisions(updates, SYSTEM, full_cases=False, release_lease_of="runner-a")
    assert [a.status for a in applied] == ["awaiting_chain", "awaiting_chain"]
    own, other = (cases.get(r).case for r in references)
    assert (own.lease_owner, own.lease_expires_at) == (None, None)
    assert other.lease_owner == "runner-b" and other.lease_expires_at is not None
