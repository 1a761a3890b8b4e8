"""The chain check (recovery.checking) and the service's apply_decision, on real anvil chains and
both databases: decisions applied through the service, compact re-check bookkeeping, the
wrong-network search, outages that are never "not found", and a transaction that vanished in a
reorganization."""

from __future__ import annotations

import dataclasses
import socket
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from types import MappingProxyType
from typing import Any

import pytest
from sqlmodel import select

from chains import devchain
from chains.base import TxStatus
from recovery import audit
from recovery.checking import CaseChecker, ChainGateway
from recovery.config import Config, Network
from recovery.db import Database
from recovery.errors import Conflict, Forbidden, InvalidTransition
from recovery.intake import validate_appeal
from recovery.models import Case, ChainObservation, CreditedDeposit, DepositAddress, ObservedTransfer
from recovery.rules import Appeal, classify
from recovery.services import SYSTEM, Actor, CaseService, upsert
from recovery.sql_registry import SqlRegistry
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address

SPECIALIST = Actor("maria", Role.SPECIALIST)


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> CaseService:
    return CaseService(database, evm_testbed.config, clock)


def holder(service: CaseService, user: str, networks: tuple[str, ...] = ("ethereum", "bsc")) -> str:
    """A deposit address we hold for ``user`` on ``networks``."""
    address = fresh_address()
    with service.db.write() as session:
        for network in networks:
            session.add(DepositAddress(user_id=user, network=network, address=address, kind="eoa"))
    return address


def file_appeal(service: CaseService, user: str, network: str, asset: str, tx_hash: str, address: str) -> str:
    draft = validate_appeal(
        service.config, {"network": network, "asset": asset, "tx_hash": tx_hash, "deposit_address": address}, user
    )
    case, created = service.submit(draft, Actor(user, Role.USER))
    assert created and case.reference
    return case.reference


def checker(service: CaseService, config: Config | None = None) -> CaseChecker:
    """A checker with fresh adapters (as a new process would have)."""
    return CaseChecker(service, ChainGateway(config or service.config))


def actions(service: CaseService, reference: str) -> list[str]:
    return [e.action for e in service.get(reference).events]


def with_urls(config: Config, **urls: str) -> Config:
    """The same configuration with some networks pointed elsewhere (one try, short timeouts)."""
    networks = dict(config.networks)
    for name, url in urls.items():
        raw = networks[name].model_dump()
        raw.update(rpc_urls=[url], retry_attempts=1, connect_timeout_seconds=0.3, timeout_seconds=1)
        networks[name] = Network.model_validate(raw)
    return dataclasses.replace(config, networks=MappingProxyType(networks))


@pytest.fixture
def closed_url() -> str:
    """A loopback URL where nothing listens (connection refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture
def black_hole_url() -> Iterator[str]:
    """A loopback URL that accepts connections and never answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"


def test_decision_applied_then_rerun_is_bookkeeping_only(cases: CaseService, evm_testbed: EvmTestbed,
                                                          clock: Clock) -> None:
    address = holder(cases, "alice")
    tx = evm_testbed.send_native("ethereum", address, 10**17)
    evm_testbed.mine("ethereum", 12)
    ref = file_appeal(cases, "alice", "ethereum", "ETH", tx, address)

    [first] = checker(cases).check([ref])
    assert (first.old_status, first.new_status, first.category, first.changed) == (
        "submitted", "in_review", "uncredited_valid", True)
    assert first.conclusive and first.error is None and not first.reorg
    case = cases.get(ref).case
    assert (case.amount, case.deposit_network, case.version, case.check_count) == (Decimal("0.1"), "ethereum", 2, 1)
    assert actions(cases, ref) == ["submit", "chain_result"]
    event = cases.get(ref).events[-1]
    assert (event.actor, event.actor_role, event.details["outcome"]) == ("system", "system", "decided")

    clock.advance(minutes=10)
    evm_testbed.mine("ethereum", 3)  # more confirmations only: not worth an event
    [again] = checker(cases).check([ref])
    assert (again.new_status, again.changed) == ("in_review", False)
    case = cases.get(ref).case
    assert actions(cases, ref) == ["submit", "chain_result"]
    assert (case.version, case.check_count, case.last_checked_at) == (2, 2, clock.now)
    with cases.db.read() as session:
        stored = session.exec(select(ChainObservation).where(ChainObservation.tx_hash == tx.lower())).one()
        assert stored.confirmations >= 15  # the observation itself is kept current
        assert audit.verify_chain(session).ok


def test_confirmations_reached_between_checks(cases: CaseService, evm_testbed: EvmTestbed, clock: Clock) -> None:
    address = holder(cases, "bruno")
    tx = evm_testbed.send_token("ethereum", "USDC", address, 42 * 10**6)
    ref = file_appeal(cases, "bruno", "ethereum", "USDC", tx, address)
    evm_testbed.mine("ethereum", 2)

    [waiting] = checker(cases).check([ref])
    assert (waiting.new_status, waiting.category) == ("awaiting_chain", "awaiting_confirmations")
    clock.advance(minutes=1)
    evm_testbed.mine("ethereum", 4)  # still short of 12
    [still] = checker(cases).check([ref])
    assert not still.changed and actions(cases, ref) == ["submit", "chain_result"]
    evm_testbed.mine("ethereum", 12)
    clock.advance(minutes=1)
    [done] = checker(cases).check([ref])
    assert (done.old_status, done.new_status, done.category, done.changed) == (
        "awaiting_chain", "in_review", "uncredited_valid", True)
    last = cases.get(ref).events[-1]
    assert last.details["previous"]["category"] == "awaiting_confirmations"
    assert cases.get(ref).case.amount == Decimal("42")


def test_transaction_found_on_another_network_of_the_family(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    address = holder(cases, "chen", ("ethereum",))  # issued for Ethereum only
    tx = evm_testbed.send_token("bsc", "USDT", address, 30 * 10**18)
    evm_testbed.mine("bsc", 15)
    ref = file_appeal(cases, "chen", "ethereum", "USDT", tx, address)  # the user says Ethereum
    [outcome] = checker(cases).check([ref])
    case = cases.get(ref).case
    assert outcome.conclusive and case.deposit_network == "bsc" and case.category == "wrong_network"
    with cases.db.read() as session:
        networks = session.exec(select(ChainObservation.network).where(ChainObservation.tx_hash == tx.lower())).all()
    assert networks == ["bsc"]  # "not found on ethereum" is not stored as evidence


def test_a_network_that_cannot_answer_is_never_not_found(cases: CaseService, evm_testbed: EvmTestbed,
                                                         closed_url: str, clock: Clock) -> None:
    address = holder(cases, "dana")
    on_bsc = evm_testbed.send_native("bsc", address, 10**16)
    evm_testbed.mine("bsc", 15)
    ghost = "0x" + "ab" * 32  # on no chain
    found_ref = file_appeal(cases, "dana", "bsc", "BNB", on_bsc, address)
    ghost_ref = file_appeal(cases, "dana", "bsc", "BNB", ghost, address)
    eth_down = with_urls(cases.config, ethereum=closed_url)

    outcomes = {o.reference: o for o in checker(cases, eth_down).check([found_ref, ghost_ref])}
    # found where claimed: Ethereum was not needed
    assert outcomes[found_ref].conclusive and outcomes[found_ref].new_status == "in_review"
    # missing on BNB Smart Chain, and Ethereum could not say: waiting, never "not found"
    ghost_case = cases.get(ghost_ref)
    assert not outcomes[ghost_ref].conclusive
    assert (ghost_case.case.status, ghost_case.case.category) == ("awaiting_chain", None)
    assert ghost_case.events[-1].details["outcome"] == "chain_unavailable"
    assert "ethereum" in ghost_case.events[-1].details["unavailable"]

    clock.advance(minutes=5)
    [again] = checker(cases, eth_down).check([ghost_ref])
    assert not again.changed and len(cases.get(ghost_ref).events) == 2  # no row per outage per run

    clock.advance(minutes=5)
    [verdict] = checker(cases).check([ghost_ref])  # both networks answer now
    assert verdict.conclusive and cases.get(ghost_ref).case.category == "tx_not_found"


def test_timeout_bounds_the_chain_part(cases: CaseService, evm_testbed: EvmTestbed, black_hole_url: str) -> None:
    address = holder(cases, "emil")
    ref = file_appeal(cases, "emil", "ethereum", "ETH", "0x" + "cd" * 32, address)
    slow = with_urls(cases.config, ethereum=black_hole_url)
    began = time.monotonic()
    [outcome] = checker(cases, slow).check([ref], timeout=0.5)
    assert time.monotonic() - began < 5
    assert not outcome.conclusive and outcome.new_status == "awaiting_chain"
    assert "no answer within 0.5 s" in cases.get(ref).events[-1].details["unavailable"]["ethereum"]


def test_a_transaction_that_vanished_in_a_reorg(cases: CaseService, evm_testbed: EvmTestbed, clock: Clock) -> None:
    url = evm_testbed.url("ethereum")
    address = holder(cases, "fiona")
    snapshot = devchain.snapshot(url)
    tx = evm_testbed.send_token("ethereum", "USDT", address, 60 * 10**6)
    evm_testbed.mine("ethereum", 3)
    ref = file_appeal(cases, "fiona", "ethereum", "USDT", tx, address)
    [seen] = checker(cases).check([ref])
    assert seen.category == "awaiting_confirmations"
    head = int(devchain.rpc(url).call("eth_blockNumber"), 16)

    devchain.revert(url, snapshot)  # the blocks holding the transaction are gone; it is not re-sent
    now = int(devchain.rpc(url).call("eth_blockNumber"), 16)
    evm_testbed.mine("ethereum", head - now + 2)  # the new branch is longer than the old one
    clock.advance(minutes=1)
    [gone] = checker(cases).check([ref])

    assert gone.reorg and gone.changed and gone.category == "tx_not_found"
    event = cases.get(ref).events[-1]
    [reorg] = event.details["reorg"]
    assert reorg["old_block_hash"] and reorg["new_block_hash"] is None and reorg["tx_hash"] == tx.lower()
    with cases.db.read() as session:
        stored = session.exec(select(ChainObservation).where(ChainObservation.tx_hash == tx.lower())).one()
        transfers = session.exec(select(ObservedTransfer).where(ObservedTransfer.tx_hash == tx.lower())).all()
    assert (stored.status, stored.block_hash) == (TxStatus.NOT_FOUND.value, None) and transfers == []


def test_apply_decision_guards(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    address = holder(cases, "gus")
    tx = evm_testbed.send_native("ethereum", address, 10**17)
    evm_testbed.mine("ethereum", 12)
    ref = file_appeal(cases, "gus", "ethereum", "ETH", tx, address)
    check = checker(cases)
    case = cases.get(ref).case
    evidence = check.gateway.evidence([(case.network, case.tx_hash)])[(case.network, case.tx_hash)]
    decision = check.decide(case, evidence)
    assert decision is not None

    with pytest.raises(Forbidden):
        cases.apply_decision(ref, decision, Actor("gus", Role.USER), expected_version=case.version)
    with pytest.raises(Conflict):
        cases.apply_decision(ref, decision, SYSTEM, expected_version=case.version + 1)
    assert cases.get(ref).case.version == 1 and actions(cases, ref) == ["submit"]  # nothing half-written

    updated, changed = cases.apply_decision(ref, decision, SYSTEM, expected_version=1,
                                            observations=evidence.observations)
    assert changed and updated.status == "in_review"
    # an inconclusive answer later leaves a decided case as it is (bookkeeping only)
    same, changed = cases.apply_decision(ref, None, SYSTEM, expected_version=2, unavailable={"ethereum": "down"})
    assert not changed and (same.status, same.version, same.check_count) == ("in_review", 2, 2)
    cases.reject(ref, "other", SPECIALIST, expected_version=2, message="test")
    with pytest.raises(InvalidTransition):
        cases.apply_decision(ref, decision, SYSTEM, expected_version=3)


def test_batch_decisions_match_one_query_per_question(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    """The batch registry (two queries up front) decides exactly as the per-question SqlRegistry."""
    mine = holder(cases, "hana")
    eth_only = holder(cases, "ivan", ("ethereum",))
    stranger = fresh_address()
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    sent = {
        "valid": evm_testbed.send_native("ethereum", mine, 10**17),
        "credited": evm_testbed.send_token("ethereum", "USDT", mine, 10 * 10**6),
        "unlisted": evm_testbed.send_token("ethereum", token, mine, 10**21),
        "stranger": evm_testbed.send_native("ethereum", stranger, 10**17),
        "wrong_network": evm_testbed.send_native("bsc", eth_only, 10**17),
    }
    evm_testbed.mine("ethereum", 12)
    evm_testbed.mine("bsc", 15)
    with cases.db.write() as session:
        session.add(CreditedDeposit(network="ethereum", tx_hash=sent["credited"], user_id="hana", asset="USDT",
                                    amount=Decimal(10)))
    refs = [
        file_appeal(cases, "hana", "ethereum", "ETH", sent["valid"], mine),
        file_appeal(cases, "hana", "ethereum", "USDT", sent["credited"], mine),
        file_appeal(cases, "hana", "ethereum", token, sent["unlisted"], mine),
        file_appeal(cases, "hana", "ethereum", "ETH", sent["stranger"], mine),
        file_appeal(cases, "ivan", "ethereum", "ETH", sent["wrong_network"], eth_only),
        file_appeal(cases, "jo", "ethereum", "ETH", sent["valid"], mine),  # contested: someone else claims it
    ]
    check = checker(cases)
    rows = [cases.get(r).case for r in refs]
    evidence = check.gateway.evidence(sorted({(c.network, c.tx_hash) for c in rows}))
    batch = check.decide_many(rows, evidence)
    with cases.db.read() as session:
        for case, decided in zip(rows, batch, strict=True):
            others = frozenset(u for u in session.exec(select(Case.user_id).where(
                Case.tx_hash == case.tx_hash, Case.id != case.id)).all())
            appeal = Appeal(user_id=case.user_id, network=case.network, tx_hash=case.tx_hash, asset=case.asset,
                            deposit_address=case.deposit_address, memo=case.memo,
                            claimed_amount=case.claimed_amount, submitted_at=case.created_at,
                            other_appellants=others)
            one_by_one = classify(appeal, evidence[(case.network, case.tx_hash)].observations,
                                  SqlRegistry(session, cases.config), cases.config, cases.clock())
            assert decided is not None and decided.to_json() == one_by_one.to_json(), case.reference
    categories = [d.category.value for d in batch if d is not None]
    assert {"already_credited", "unlisted_token", "not_our_address", "wrong_network"} <= set(categories)


def test_batch_apply_reports_a_stale_case_and_applies_the_others(cases: CaseService, evm_testbed: EvmTestbed,
                                                                 clock: Clock) -> None:
    address = holder(cases, "kim")
    txs = [evm_testbed.send_native("ethereum", address, 10**16 * (i + 1)) for i in range(3)]
    evm_testbed.mine("ethereum", 12)
    refs = [file_appeal(cases, "kim", "ethereum", "ETH", tx, address) for tx in txs]
    check = checker(cases)
    rows = [cases.get(r).case for r in refs]
    cases.note(refs[1], "looked at it", SPECIALIST, expected_version=1)  # the batch now holds a stale copy
    evidence = check.gateway.evidence([(c.network, c.tx_hash) for c in rows])
    outcomes = check.apply_many(rows, evidence)
    assert [o.changed for o in outcomes] == [True, False, True]
    assert outcomes[1].error is not None and "changed by someone else" in outcomes[1].error
    assert actions(cases, refs[1]) == ["submit", "note"]  # untouched
    assert [cases.get(r).case.status for r in refs] == ["in_review", "submitted", "in_review"]
    # the same case twice in one batch: the second copy is stale
    clock.advance(minutes=1)
    again = [cases.get(refs[1]).case] * 2
    twice = check.apply_many(again, evidence)
    assert twice[0].changed and twice[1].error is not None
    with cases.db.read() as session:
        assert audit.verify_chain(session).ok


def test_an_observation_another_runner_stored_meanwhile_is_updated_not_a_failure(database: Database) -> None:
    """Two runners may store the first observation of one transaction at once (two appeals of it in
    different batches): the second insert updates the row instead of failing its whole batch."""
    first: dict[str, Any] = {
        "network": "ethereum", "tx_hash": "0x" + "12" * 32, "status": "pending", "block_number": None,
        "block_hash": None, "confirmations": 0, "evidence": {}, "observed_at": datetime(2026, 11, 1, tzinfo=UTC),
    }
    later = dict(first, status="success", block_number=7, block_hash="0x" + "34" * 32, confirmations=3)
    with database.write() as session:
        upsert(session, ChainObservation, [first], ("network", "tx_hash"))
    with database.write() as session:
        upsert(session, ChainObservation, [later], ("network", "tx_hash"))
    with database.read() as session:
        [row] = session.exec(select(ChainObservation)).all()
    assert (row.status, row.block_number, row.confirmations) == ("success", 7, 3)
