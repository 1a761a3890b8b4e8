"""The dashboard's figures computed the way ``recovery/queues.py`` computed them before issue 20's
rewrite (revision 448cd55): one row per case of the window read into Python, the first decisions
read from the tail of the audit log, percentiles and exact sums in Python. Kept as the reference
the SQL aggregation is compared with (tests/workbench/test_dashboard_figures.py); not used by the
workbench.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Sequence
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Float, String, and_, case, cast, func, literal, select
from sqlmodel import Session, col

from recovery.db import Database
from recovery.dbtypes import canonical_decimal
from recovery.models import Case, CaseEvent, ChainObservation, ScanFinding
from recovery.queues import (
    ACTIVE_STATUSES,
    AGE_BUCKETS,
    APPEALED,
    APPEALED_ORIGINS,
    AWAITING_DECISION,
    DUE_SOON,
    Dashboard,
    MoneyRow,
    OriginRow,
    Percentiles,
    SlaSummary,
    Unindexed,
)
from recovery.vocabulary import CaseStatus, Origin, Resolution


def percentiles(seconds: Sequence[float]) -> Percentiles:
    """Nearest-rank median and 90th percentile of durations in seconds, in hours."""
    ordered = sorted(seconds)
    count = len(ordered)
    if count == 0:
        return Percentiles(0, None, None)
    median, p90 = (ordered[max(0, math.ceil(q * count) - 1)] for q in (0.5, 0.9))
    return Percentiles(count, round(median / 3600, 2), round(p90 / 3600, 2))


def _epoch(db: Database, column: Any) -> Any:
    """A timestamp as seconds since 1970 (a float: for durations, never for money)."""
    if db.is_sqlite:
        return (func.julianday(column) - 2440587.5) * 86400.0
    return cast(func.extract("epoch", column), Float)


def _deposit_epochs(db: Database) -> tuple[Any, Any]:
    """When the case's deposit reached the chain (epoch seconds; NULL when unknown), two ways:

    - the block time ``recovery scan`` recorded with the transfer (``scan_findings``: detected
      cases, and appeals the scan found already open);
    - the block time of the chain check's stored observation of the transaction on the network
      where it landed (``chain_observations.block_time``), for every case the re-check saw.

    Both are correlated look-ups through an index (``scan_findings.case_id``, the observation's
    unique (network, tx_hash)): one probe per case of the window, and the second only where the
    first found nothing (COALESCE stops at the first value). Neither reads JSON: the observation's
    block time is a column of its own (migration 0009 filled it from ``evidence.timestamp``).
    """
    found = (
        select(func.min(_epoch(db, col(ScanFinding.block_time))))
        .where(col(ScanFinding.case_id) == col(Case.id))
        .scalar_subquery()
    )
    observed = (
        select(_epoch(db, col(ChainObservation.block_time)))
        .where(col(ChainObservation.network) == func.coalesce(col(Case.deposit_network), col(Case.network)),
               col(ChainObservation.tx_hash) == col(Case.tx_hash))
        .limit(1)
        .scalar_subquery()
    )
    return found, observed


def _origin_row(name: str, members: Sequence[str], cases: Sequence[tuple[str, str, float | None]]) -> OriginRow:
    mine = [(status, wait) for origin, status, wait in cases if origin in members]
    still_open = sum(1 for status, _ in mine if status in ACTIVE_STATUSES)
    # a case opened before its transaction was in a block (an appeal of a pending transfer): nobody waited
    waits = [max(0.0, wait) for _, wait in mine if wait is not None]
    share = round(100 * len(mine) / len(cases), 1) if cases else 0.0
    return OriginRow(name, len(mine), still_open, len(mine) - still_open, share, percentiles(waits),
                     len(mine) - len(waits))


def _origin_rows(cases: Sequence[tuple[str, str, float | None]]) -> tuple[list[OriginRow], OriginRow]:
    """``(origin, status, seconds from the deposit's block to the case, or None)`` per case -> one
    row per origin (every ``Origin``, then any other stored value) and the appealed origins together."""
    names = [o.value for o in Origin]
    names += sorted({origin for origin, _, _ in cases} - set(names))
    return [_origin_row(name, (name,), cases) for name in names], _origin_row(APPEALED, APPEALED_ORIGINS, cases)


#: the first time a person decided a case: its first approval or rejection
DECIDING_ACTIONS = ("approve", "reject")


def _day(db: Database, column: Any) -> Any:
    if db.is_sqlite:
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


def _first_decisions(db: Database, session: Session, first_case_id: int | None) -> dict[int, float]:
    """case id -> its first approval or rejection (epoch seconds), for cases from ``first_case_id`` on.

    Reads only the tail of the audit log: events are numbered in the order they are appended, a
    case's submission is appended with the case (ids in submission order), and its decisions come
    after it; so every decision of those cases follows the first event of ``first_case_id``.
    """
    if first_case_id is None:
        return {}
    floor = session.execute(
        select(func.min(col(CaseEvent.id))).where(col(CaseEvent.case_id) == first_case_id)
    ).scalar_one()
    if floor is None:
        return {}
    rows = session.execute(
        select(col(CaseEvent.case_id), func.min(_epoch(db, col(CaseEvent.created_at))))
        # the id range is the tail of the table; keep SQLite off the case_id index (see ``Unindexed``)
        .where(col(CaseEvent.id) >= floor, Unindexed(col(CaseEvent.case_id)) >= first_case_id,
               col(CaseEvent.action).in_(DECIDING_ACTIONS))
        .group_by(col(CaseEvent.case_id))
    ).all()
    return {int(case_id): float(decided) for case_id, decided in rows}


#: a case whose money actually moved back to the user
_RECOVERED = (CaseStatus.CREDITED.value, CaseStatus.REFUNDED.value, CaseStatus.CLOSED.value)


def reference_dashboard(db: Database, now: datetime, *, days: int = 30) -> Dashboard:
    """Every figure of the dashboard. The backlog is as of now; times, money and intake cover the
    appeals filed in the last ``days`` days (so the cost follows the window, not the history)."""
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with db.read() as session:
        by_status = {
            str(s): int(n)
            for s, n in session.execute(select(col(Case.status), func.count()).group_by(col(Case.status))).all()
        }
        # the backlog is read through the status index (see ``Unindexed``)
        category = Unindexed(col(Case.category))
        backlog_by_category = {
            str(c or "unclassified"): int(n)
            for c, n in session.execute(
                select(category, func.count()).where(col(Case.status).in_(ACTIVE_STATUSES)).group_by(category)
            ).all()
        }
        created, due = Unindexed(col(Case.created_at)), Unindexed(col(Case.sla_due_at))
        bucket_expr = case(
            *[(created <= now - timedelta(hours=lower), literal(label)) for label, lower in reversed(AGE_BUCKETS[1:])],
            else_=literal(AGE_BUCKETS[0][0]),
        )
        is_breached = case((due < now, 1), else_=0)
        is_soon = case((and_(due >= now, due < now + DUE_SOON), 1), else_=0)
        raw_buckets: dict[str, list[int]] = {label: [0, 0] for label, _ in AGE_BUCKETS}
        awaiting = breached = due_soon = 0
        for label, late, soon, n in session.execute(
            select(bucket_expr, is_breached, is_soon, func.count())
            .where(col(Case.status).in_(AWAITING_DECISION))
            .group_by(bucket_expr, is_breached, is_soon)
        ).all():
            raw_buckets[str(label)][1 if int(late) else 0] += int(n)
            awaiting += int(n)
            breached += int(n) if int(late) else 0
            due_soon += int(n) if int(soon) else 0
        age_buckets = [(label, ok, late) for label, (ok, late) in raw_buckets.items()]

        # The window's figures: one pass over its cases and one over the tail of the audit log.
        # Percentiles and exact money sums are computed here (SQLite has neither a percentile
        # function nor exact decimal arithmetic), so both databases share one path.
        # Times come back as epoch seconds and money as decimal text: no per-row conversion to
        # datetime or canonical Decimal for rows that only feed a sum or a percentile.
        found_at, observed_at = _deposit_epochs(db)
        window = session.execute(
            select(col(Case.id), _epoch(db, col(Case.created_at)), _epoch(db, col(Case.sla_due_at)),
                   _epoch(db, col(Case.resolved_at)), col(Case.status), col(Case.resolution),
                   func.coalesce(col(Case.deposit_network), col(Case.network)), col(Case.category),
                   cast(col(Case.value_usd), String), cast(col(Case.fee_usd), String), col(Case.origin),
                   func.coalesce(found_at, observed_at))
            .where(col(Case.created_at) >= since)
        ).all()
        first_decided = _first_decisions(db, session, min((row[0] for row in window), default=None))
        decision_times: list[float] = []
        decided_late = 0
        totals: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
        resolution_times: list[float] = []
        recovered_resolutions = (Resolution.CREDIT.value, Resolution.REFUND.value)
        by_origin: list[tuple[str, str, float | None]] = []
        for (case_id, filed, due_at, resolved, status, resolution, network, category_name, value, fee, origin,
             deposited) in window:
            # to the millisecond: SQLite keeps times to the millisecond (and the float arithmetic adds noise)
            waited = round(filed - deposited, 3) if deposited is not None else None
            by_origin.append((str(origin), str(status), waited))
            decided = first_decided.get(case_id)
            if decided is not None:
                decision_times.append(decided - filed)
                decided_late += 1 if due_at is not None and decided > due_at else 0
            if resolved is None:
                continue
            resolution_times.append(resolved - filed)
            if status in _RECOVERED and resolution in recovered_resolutions:
                entry = totals[(str(network), str(category_name or "unclassified"))]
                entry[0] += 1
                entry[1] += Decimal(value) if value else 0
                entry[2] += Decimal(fee) if fee else 0
        sla = SlaSummary(awaiting, breached, due_soon, len(decision_times), decided_late)
        first_decision = percentiles(decision_times)
        resolution = percentiles(resolution_times)
        money = sorted((MoneyRow(n, c, k, canonical_decimal(v), canonical_decimal(f))
                        for (n, c), (k, v, f) in totals.items()), key=lambda r: (r.network, r.category))

        day = _day(db, col(Case.created_at))
        counts = {
            str(d): int(n)
            for d, n in session.execute(
                select(day, func.count()).where(col(Case.created_at) >= since).group_by(day)
            ).all()
        }
        per_day = []
        for offset in range(days):
            label = (since + timedelta(days=offset)).date().isoformat()
            per_day.append((label, counts.get(label, 0)))
    return Dashboard(days, by_status, backlog_by_category, age_buckets, sla, first_decision, resolution, money,
                     per_day, *_origin_rows(by_origin))


