"""The team lead's reads (``recovery/team_reads.py``) on both databases, against values counted by
hand: the weekly trend per category and the throughput per operator from the five cases of
``tests/test_service_metrics.py``'s desk (simulated clock); the value recovered by payout date from
credits and refunds really paid on anvil (filed in one week, paid in the next ones)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlalchemy import event, update
from sqlmodel import col

from recovery import queues, team_reads
from recovery.db import Database
from recovery.models import Case
from recovery.queues import QueueFilter
from recovery.services import CaseService
from recovery.team_reads import CategoryWeek, OperatorWeek
from tests.conftest import Clock
from tests.fixtures_anvil import FUNDER, EvmTestbed
from tests.test_payouts import APPROVER, PEPE_NET_UNITS, SPECIALIST, approved_refund, decided, pay, settle, version
from tests.test_service_metrics import T0, work_the_desk

#: Sunday 22 November 2026 (ISO week 47): the last four weeks start on Monday 26 October
NOW = T0 + timedelta(days=20)
W44, W45, W46, W47 = (date(2026, 10, 26) + timedelta(weeks=n) for n in range(4))


def test_weeks() -> None:
    assert team_reads.week_of(NOW) == W47 and team_reads.week_of(T0) == W45
    assert team_reads.week_list(NOW, 4) == [W44, W45, W46, W47]


def test_category_trend_by_the_week_of_filing(database: Database, default_config: Any) -> None:
    clock = Clock(T0)
    work_the_desk(CaseService(database, default_config, clock), clock)
    trend = team_reads.category_trend(database, NOW, weeks=4)
    counts = {(row.week, row.category): row.cases for row in trend}
    # W45: alice and bob (wrong network), carol (unlisted token), dave (never checked); W46: erin
    assert {key: n for key, n in counts.items() if n} == {
        (W45, "unclassified"): 1, (W45, "unlisted_token"): 1, (W45, "wrong_network"): 2, (W46, "unclassified"): 1}
    # every week of every category seen, in order (zeros included: a line chart needs them)
    assert trend[:3] == [CategoryWeek(W44, "unclassified", 0), CategoryWeek(W44, "unlisted_token", 0),
                         CategoryWeek(W44, "wrong_network", 0)]
    assert len(trend) == 4 * 3
    assert team_reads.category_trend(database, NOW, weeks=1) == []  # nothing filed in W47


def test_throughput_per_operator_and_week(database: Database, default_config: Any) -> None:
    clock = Clock(T0)
    work_the_desk(CaseService(database, default_config, clock), clock)
    # maria in W45: three categories set, two questions, two rejections (alice at 10 h, bob at 25 h)
    # on three cases; in W46 she rejected erin. Users and the system are not operators.
    assert team_reads.throughput(database, NOW, weeks=4) == [
        OperatorWeek(W45, "maria", decided=2, acted=3, actions=7),
        OperatorWeek(W46, "maria", decided=1, acted=1, actions=1),
    ]
    assert team_reads.throughput(database, NOW, weeks=2) == [OperatorWeek(W46, "maria", 1, 1, 1)]
    # the operators' events of the window are read through their partial index (migration 0013)
    assert "ix_case_events_operator_time" in plans(database, lambda: team_reads.throughput(database, NOW, weeks=4))


def plans(database: Database, read: Callable[[], object]) -> str:
    """The query plans of the statements ``read`` runs (on PostgreSQL with sequential scans off: the
    tables are tiny, the question is whether the index can answer at all)."""
    captured: list[tuple[str, Any]] = []

    def grab(_conn: Any, _cursor: Any, statement: str, parameters: Any, _context: Any, _many: bool) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            captured.append((statement, parameters))

    event.listen(database.engine, "before_cursor_execute", grab)
    try:
        read()
    finally:
        event.remove(database.engine, "before_cursor_execute", grab)
    lines: list[str] = []
    with database.engine.connect() as connection:
        if database.is_postgresql:
            connection.exec_driver_sql("SET enable_seqscan = off")
        explain = "EXPLAIN QUERY PLAN " if database.is_sqlite else "EXPLAIN "
        for statement, parameters in captured:
            lines += [" ".join(map(str, row)) for row in connection.exec_driver_sql(explain + statement, parameters)]
    return "\n".join(lines)


def test_recovered_value_by_payout_date(database: Database, evm_testbed: EvmTestbed) -> None:
    clock = Clock(T0 - timedelta(days=7))  # everything is filed in W44
    service = CaseService(database, evm_testbed.config, clock)
    early, _tx, _address = decided(service, evm_testbed, "rv-early", "USDT", 200 * 10**6)
    credit, _tx, _address = decided(service, evm_testbed, "rv-credit", "USDT", 300 * 10**6)
    unpaid, _tx, _address = decided(service, evm_testbed, "rv-unpaid", "USDT", 50 * 10**6)
    refund, token, address = approved_refund(service, evm_testbed, "rv-refund")  # 500 USD, fee 80 USD
    for reference in (early, credit, unpaid):
        service.approve(reference, APPROVER, expected_version=version(service, reference))
    # W44: the early credit is booked (before the window); W45: the 300 USDT credit
    service.mark_credited(early, SPECIALIST, expected_version=version(service, early), ledger_reference="L-1")
    clock.now = T0 + timedelta(days=1)
    service.mark_credited(credit, SPECIALIST, expected_version=version(service, credit), ledger_reference="L-2")
    booked = clock.now
    # the refund is sent in W45 and proven on chain in W46 (its payout date)
    service.record_refund(refund, pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS), SPECIALIST,
                          expected_version=version(service, refund))
    clock.now = T0 + timedelta(days=8)
    settle(service, evm_testbed)
    assert service.get(refund).case.status == "refunded"
    confirmed = next(e.created_at for e in service.get(refund).events if e.action == "refund_confirmed")

    weeks = team_reads.recovered(database, NOW, weeks=3)  # W45, W46, W47
    since = datetime(2026, 11, 2, tzinfo=UTC)  # W45's Monday
    assert [(p.reference, p.kind, p.paid_at) for p in team_reads.paid_cases(database, since)] == [
        (credit, "credit", booked), (refund, "refund", confirmed)]
    assert weeks.cases == 2
    d = Decimal
    assert [(r.key, r.cases, r.value_usd, r.fee_usd, r.net_usd) for r in weeks.by_week()] == [
        (W45.isoformat(), 1, d(300), d(0), d(300)), (W46.isoformat(), 1, d(500), d(80), d(420)),
        (W47.isoformat(), 0, d(0), d(0), d(0))]
    assert [(r.key, r.value_usd) for r in weeks.by_category()] == [("uncredited_valid", d(300)),
                                                                  ("unlisted_token", d(500))]
    assert [(r.key, r.cases) for r in weeks.by_kind()] == [("credit", 1), ("refund", 1)]
    assert [(r.key, r.cases, r.value_usd, r.fee_usd) for r in weeks.by_network()] == [("ethereum", 2, d(800), d(80))]
    total = weeks.total()
    assert (total.cases, total.unvalued, total.value_usd, total.fee_usd, total.net_usd) == (2, 0, d(800), d(80),
                                                                                          d(720))
    # four weeks: the early credit, booked in W44, counts too; the unpaid approval never does
    assert team_reads.recovered(database, NOW, weeks=4).cases == 3
    assert [p.reference for p in team_reads.paid_cases(database, since - timedelta(weeks=1))] == [early, credit, refund]
    first_week = team_reads.paid_cases(database, since, since + timedelta(weeks=1))
    assert first_week == team_reads.paid_cases(database, since)[:1]
    # the queue's filters by payout day and by filing day (the dashboard's links): the same cases
    def found(filt: QueueFilter) -> list[str]:
        return sorted(row.reference for row in queues.queue_page(database, filt, NOW, page_size=200).rows)

    assert found(QueueFilter(paid_on=(W45, W45 + timedelta(days=6)))) == [credit]
    assert found(QueueFilter(paid_on=(W46, W47 + timedelta(days=6)))) == [refund]
    assert found(QueueFilter(paid_on=(W44, W47))) == sorted([early, credit, refund])
    assert found(QueueFilter(paid_on=(W47, W47))) == []
    filed = (T0 - timedelta(days=7)).date()
    assert found(QueueFilter(filed_on=(filed, filed))) == sorted([early, credit, unpaid, refund])
    assert found(QueueFilter(filed_on=(filed + timedelta(days=1), W47))) == []
    with pytest.raises(ValueError, match="paid_on"):
        QueueFilter(paid_on=(W46, W45))
    # a paid case of unknown value (no price and no valuation) is counted, not summed, and so is its fee
    with database.write() as session:
        session.execute(update(Case).where(col(Case.reference) == credit).values(value_usd=None, fee_usd=Decimal(7)))
    total = team_reads.recovered(database, NOW, weeks=3).total()
    assert (total.cases, total.unvalued, total.value_usd, total.fee_usd) == (2, 1, d(500), d(80))
    # the credits booked in the window are a range of its index (migration 0013; on a table this small
    # the planner reaches the refunds' proofs through the case ids, at 100,000 cases through
    # ix_case_events_refund_confirmed: bench/workbench.py)
    assert "ix_payouts_paid" in plans(database, lambda: team_reads.recovered(database, NOW, weeks=3))
