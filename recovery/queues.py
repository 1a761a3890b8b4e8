"""Read-side queries for the workbench: the filtered, sorted, paged queue and the dashboard figures.

Everything here reads; nothing changes a case (that is ``recovery/services.py``). Filtering,
sorting, paging and aggregation run in SQL so a page costs the same with 100 or 100,000 cases.
Money is summed exactly: in SQL on PostgreSQL (NUMERIC), in Python with Decimal on SQLite (where
amounts are stored as exact decimal text and SQL arithmetic would turn them into floats).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Float, String, and_, case, cast, func, literal, or_, select
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.selectable import Select
from sqlmodel import Session, col

from recovery.db import Database
from recovery.dbtypes import decimal_text
from recovery.models import Case, CaseEvent, ChainObservation, ObservedTransfer, Operator
from recovery.vocabulary import CaseStatus, Resolution

#: statuses in which the appeal team still owes the user something (the working backlog)
ACTIVE_STATUSES: tuple[str, ...] = (
    CaseStatus.SUBMITTED.value,
    CaseStatus.AWAITING_CHAIN.value,
    CaseStatus.IN_REVIEW.value,
    CaseStatus.NEEDS_INFO.value,
    CaseStatus.APPROVED.value,
    CaseStatus.REFUND_PENDING.value,
)
FINISHED_STATUSES: tuple[str, ...] = tuple(s.value for s in CaseStatus if s.value not in ACTIVE_STATUSES)
#: the assignee filter value meaning "nobody"
UNASSIGNED = "__unassigned__"
#: age buckets of the dashboard, (label, lower bound in hours)
AGE_BUCKETS: tuple[tuple[str, int], ...] = (
    ("< 1 day", 0),
    ("1-3 days", 24),
    ("3-7 days", 72),
    ("1-2 weeks", 168),
    ("2-4 weeks", 336),
    ("> 4 weeks", 672),
)
#: how close to its SLA due time a case counts as "due soon"
DUE_SOON = timedelta(hours=12)


@dataclass(frozen=True)
class QueueFilter:
    """What the queue shows. Empty tuples and None mean "any"."""

    statuses: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    networks: tuple[str, ...] = ()
    assets: tuple[str, ...] = ()
    #: an operator's username, or ``UNASSIGNED``
    assignee: str | None = None
    min_age_days: int | None = None
    max_age_days: int | None = None
    #: True: only active cases past their SLA due time; False: only the others
    sla_breached: bool | None = None
    #: every one of these flags must be set
    flags: tuple[str, ...] = ()
    #: free text: part of a reference, transaction hash, address or user id (case-insensitive)
    text: str = ""
    resolutions: tuple[str, ...] = ()


#: sort keys the queue offers -> column; anything else is refused (no SQL from the browser)
SORT_KEYS: tuple[str, ...] = ("created_at", "sla_due_at", "updated_at", "value_usd", "reference", "status",
                              "category", "network")


@dataclass(frozen=True)
class QueueRow:
    id: int
    reference: str
    status: str
    category: str | None
    network: str
    asset: str
    user_id: str
    assignee: str | None
    flags: list[str]
    value_usd: Decimal | None
    fee_usd: Decimal | None
    resolution: str | None
    origin: str
    tx_hash: str
    created_at: datetime
    updated_at: datetime
    sla_due_at: datetime | None
    version: int

    def breached(self, now: datetime) -> bool:
        return self.status in ACTIVE_STATUSES and self.sla_due_at is not None and self.sla_due_at < now

    def due_soon(self, now: datetime) -> bool:
        return (
            self.status in ACTIVE_STATUSES and self.sla_due_at is not None
            and now <= self.sla_due_at < now + DUE_SOON
        )


@dataclass(frozen=True)
class QueuePage:
    rows: list[QueueRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


_ROW_COLUMNS: tuple[Any, ...] = tuple(
    getattr(Case, name)
    for name in ("id", "reference", "status", "category", "network", "asset", "user_id", "assignee", "flags",
                 "value_usd", "fee_usd", "resolution", "origin", "tx_hash", "created_at", "updated_at",
                 "sla_due_at", "version")
)


def _like_text(value: str) -> str:
    return value.strip().lower()


def _conditions(filt: QueueFilter, now: datetime) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []
    if filt.statuses:
        where.append(col(Case.status).in_(filt.statuses))
    if filt.categories:
        where.append(col(Case.category).in_(filt.categories))
    if filt.networks:
        where.append(col(Case.network).in_(filt.networks))
    if filt.assets:
        where.append(col(Case.asset).in_(filt.assets))
    if filt.resolutions:
        where.append(col(Case.resolution).in_(filt.resolutions))
    if filt.assignee == UNASSIGNED:
        where.append(col(Case.assignee).is_(None))
    elif filt.assignee:
        where.append(col(Case.assignee) == filt.assignee)
    if filt.min_age_days is not None:
        where.append(col(Case.created_at) <= now - timedelta(days=filt.min_age_days))
    if filt.max_age_days is not None:
        where.append(col(Case.created_at) > now - timedelta(days=filt.max_age_days))
    breached = and_(col(Case.status).in_(ACTIVE_STATUSES), col(Case.sla_due_at) < now)
    if filt.sla_breached is True:
        where.append(breached)
    elif filt.sla_breached is False:
        where.append(~breached)
    for flag in filt.flags:
        # Flags are a JSON list of fixed codes: '"code"' (quotes included) matches one element exactly.
        where.append(cast(Case.flags, String).contains(json.dumps(flag), autoescape=True))
    text = _like_text(filt.text)
    if text:
        where.append(or_(*(
            func.lower(column).contains(text, autoescape=True)
            for column in (Case.reference, Case.tx_hash, Case.deposit_address, Case.user_id, Case.refund_tx_hash)
        )))
    return where


def _sort_column(db: Database, key: str) -> Any:
    if key not in SORT_KEYS:
        raise ValueError(f"sort: must be one of {', '.join(SORT_KEYS)}")
    if key == "reference":
        return col(Case.id)
    if key == "value_usd" and db.is_sqlite:
        # SQLite keeps money as exact text; a text sort would put "9" after "10". The cast is
        # used for ordering only, never for arithmetic.
        return cast(Case.value_usd, Float)
    return getattr(Case, key)


def _ordered(db: Database, query: Select[Any], sort: str, descending: bool) -> Select[Any]:
    column = _sort_column(db, sort)
    order = column.desc() if descending else column.asc()
    tie = col(Case.id).desc() if descending else col(Case.id).asc()
    return query.order_by(order.nulls_last(), tie)


def _row(values: Sequence[Any]) -> QueueRow:
    return QueueRow(*values)


def queue_page(
    db: Database,
    filt: QueueFilter,
    now: datetime,
    *,
    sort: str = "sla_due_at",
    descending: bool = False,
    page: int = 1,
    page_size: int = 50,
) -> QueuePage:
    """One page of the queue (1-based) and the number of cases matching the filter."""
    if page_size < 1 or page_size > 1000:
        raise ValueError("page_size: must be between 1 and 1000")
    where = _conditions(filt, now)
    with db.read() as session:
        total = int(session.execute(select(func.count()).select_from(Case).where(*where)).scalar_one())
        pages = max(1, math.ceil(total / page_size))
        page = min(max(1, page), pages)
        query = _ordered(db, select(*_ROW_COLUMNS).where(*where), sort, descending)
        rows = session.execute(query.offset((page - 1) * page_size).limit(page_size)).all()
    return QueuePage([_row(r) for r in rows], total, page, page_size)


EXPORT_COLUMNS: tuple[str, ...] = (
    "reference", "status", "category", "resolution", "network", "asset", "user_id", "assignee", "flags",
    "value_usd", "fee_usd", "origin", "tx_hash", "created_at", "updated_at", "sla_due_at", "sla_breached",
    "version",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, list):
        return ";".join(str(v) for v in value)
    text = str(value)
    # A spreadsheet would run a cell starting like a formula: keep it text.
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_rows(
    db: Database, filt: QueueFilter, now: datetime, *, sort: str = "sla_due_at", descending: bool = False,
    batch: int = 2000,
) -> Iterator[list[str]]:
    """Every case matching the filter as CSV cells (header first), streamed in batches."""
    yield list(EXPORT_COLUMNS)
    query = _ordered(db, select(*_ROW_COLUMNS).where(*_conditions(filt, now)), sort, descending)
    with db.read() as session:
        result = session.execute(query.execution_options(yield_per=batch))
        for values in result:
            row = _row(values)
            data = {
                "reference": row.reference, "status": row.status, "category": row.category,
                "resolution": row.resolution, "network": row.network, "asset": row.asset, "user_id": row.user_id,
                "assignee": row.assignee, "flags": row.flags, "value_usd": row.value_usd, "fee_usd": row.fee_usd,
                "origin": row.origin, "tx_hash": row.tx_hash, "created_at": row.created_at,
                "updated_at": row.updated_at, "sla_due_at": row.sla_due_at, "sla_breached": row.breached(now),
                "version": row.version,
            }
            yield [_csv_cell(data[name]) for name in EXPORT_COLUMNS]


def export_csv(db: Database, filt: QueueFilter, now: datetime, *, sort: str = "sla_due_at",
               descending: bool = False) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for cells in export_rows(db, filt, now, sort=sort, descending=descending):
        writer.writerow(cells)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ choices
def operator_names(db: Database, *, active_only: bool = True) -> list[str]:
    with db.read() as session:
        query = select(col(Operator.username)).order_by(Operator.username)
        if active_only:
            query = query.where(col(Operator.active).is_(True))
        return [str(name) for name in session.execute(query).scalars()]


def distinct_assets(db: Database) -> list[str]:
    with db.read() as session:
        return [str(a) for a in session.execute(select(col(Case.asset)).distinct().order_by(col(Case.asset))).scalars()]


# ------------------------------------------------------------------------------------ one case
@dataclass(frozen=True)
class NetworkEvidence:
    """What one network said about the case's transaction (or its refund)."""

    observation: ChainObservation
    transfers: list[ObservedTransfer] = field(default_factory=list)


def evidence_for(db: Database, tx_hashes: Sequence[str]) -> list[NetworkEvidence]:
    """Stored chain observations of these transactions on every network, with their transfers."""
    wanted = [h for h in dict.fromkeys(tx_hashes) if h]
    if not wanted:
        return []
    with db.read() as session:
        observations = list(session.execute(
            select(ChainObservation).where(col(ChainObservation.tx_hash).in_(wanted))
            .order_by(col(ChainObservation.network))
        ).scalars())
        transfers = list(session.execute(
            select(ObservedTransfer).where(col(ObservedTransfer.tx_hash).in_(wanted))
            .order_by(col(ObservedTransfer.network), col(ObservedTransfer.transfer_index))
        ).scalars())
    grouped: dict[tuple[str, str], list[ObservedTransfer]] = defaultdict(list)
    for transfer in transfers:
        grouped[(transfer.network, transfer.tx_hash)].append(transfer)
    return [NetworkEvidence(o, grouped.get((o.network, o.tx_hash), [])) for o in observations]


def prepared_by(db: Database, case_ids: Sequence[int], username: str) -> set[int]:
    """The cases among ``case_ids`` that ``username`` helped prepare (four-eyes: they cannot approve them)."""
    if not case_ids:
        return set()
    shaping = ("override_category", "request_info", "assign", "chain_result", "provide_info", "note")
    with db.read() as session:
        ids = session.execute(
            select(col(CaseEvent.case_id)).distinct().where(
                col(CaseEvent.case_id).in_(list(case_ids)),
                col(CaseEvent.actor) == username,
                col(CaseEvent.action).in_(shaping),
            )
        ).scalars()
        prepared = {int(i) for i in ids}
        assigned = session.execute(
            select(col(Case.id)).where(col(Case.id).in_(list(case_ids)), col(Case.assignee) == username)
        ).scalars()
        prepared |= {int(i) for i in assigned}
    return prepared


# ------------------------------------------------------------------------------------ dashboard
@dataclass(frozen=True)
class Percentiles:
    count: int
    median_hours: float | None
    p90_hours: float | None


@dataclass(frozen=True)
class MoneyRow:
    network: str
    category: str
    cases: int
    value_usd: Decimal
    fee_usd: Decimal


@dataclass(frozen=True)
class SlaSummary:
    active: int
    breached: int
    due_soon: int
    resolved: int
    resolved_late: int


@dataclass(frozen=True)
class Dashboard:
    by_status: dict[str, int]
    backlog_by_category: dict[str, int]
    age_buckets: list[tuple[str, int, int]]  # (bucket, within SLA, breached)
    sla: SlaSummary
    first_decision: Percentiles
    resolution: Percentiles
    money: list[MoneyRow]
    per_day: list[tuple[str, int]]


def _seconds_between(db: Database, later: Any, earlier: Any) -> Any:
    if db.is_sqlite:
        return (func.julianday(later) - func.julianday(earlier)) * 86400.0
    return func.extract("epoch", later - earlier)


def _percentiles(session: Session, durations: Any) -> Percentiles:
    """Nearest-rank median and 90th percentile of a subquery's ``seconds`` column, in hours."""
    count = int(session.execute(select(func.count()).select_from(durations)).scalar_one())
    if count == 0:
        return Percentiles(0, None, None)

    def rank(q: float) -> float:
        offset = max(0, math.ceil(q * count) - 1)
        value = session.execute(
            select(durations.c.seconds).order_by(durations.c.seconds).offset(offset).limit(1)
        ).scalar_one()
        return round(float(value) / 3600.0, 2)

    return Percentiles(count, rank(0.5), rank(0.9))


#: the first time a person decided a case: its first approval or rejection
DECIDING_ACTIONS = ("approve", "reject")


def _first_decision_durations(db: Database) -> Any:
    first = (
        select(col(CaseEvent.case_id).label("case_id"), func.min(col(CaseEvent.created_at)).label("decided_at"))
        .where(col(CaseEvent.action).in_(DECIDING_ACTIONS))
        .group_by(col(CaseEvent.case_id))
        .subquery()
    )
    return (
        select(_seconds_between(db, first.c.decided_at, col(Case.created_at)).label("seconds"))
        .join_from(Case, first, col(Case.id) == first.c.case_id)
        .subquery()
    )


def _resolution_durations(db: Database) -> Any:
    return (
        select(_seconds_between(db, col(Case.resolved_at), col(Case.created_at)).label("seconds"))
        .where(col(Case.resolved_at).is_not(None))
        .subquery()
    )


def _day(db: Database, column: Any) -> Any:
    if db.is_sqlite:
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


def dashboard(db: Database, now: datetime, *, days: int = 30) -> Dashboard:
    """Every figure of the dashboard, each from one aggregate query."""
    active = col(Case.status).in_(ACTIVE_STATUSES)
    breached = and_(active, col(Case.sla_due_at) < now)
    with db.read() as session:
        by_status = {
            str(s): int(n)
            for s, n in session.execute(select(col(Case.status), func.count()).group_by(col(Case.status))).all()
        }
        backlog_by_category = {
            str(c or "unclassified"): int(n)
            for c, n in session.execute(
                select(col(Case.category), func.count()).where(active).group_by(col(Case.category))
            ).all()
        }
        bucket_expr = case(
            *[
                (col(Case.created_at) <= now - timedelta(hours=lower), literal(label))
                for label, lower in reversed(AGE_BUCKETS[1:])
            ],
            else_=literal(AGE_BUCKETS[0][0]),
        )
        is_breached = case((col(Case.sla_due_at) < now, 1), else_=0)
        raw_buckets: dict[str, list[int]] = {label: [0, 0] for label, _ in AGE_BUCKETS}
        for label, late, n in session.execute(
            select(bucket_expr, is_breached, func.count()).where(active).group_by(bucket_expr, is_breached)
        ).all():
            raw_buckets[str(label)][1 if int(late) else 0] += int(n)
        age_buckets = [(label, ok, late) for label, (ok, late) in raw_buckets.items()]

        active_n = sum(by_status.get(s, 0) for s in ACTIVE_STATUSES)
        breached_n = int(session.execute(select(func.count()).select_from(Case).where(breached)).scalar_one())
        due_soon_n = int(session.execute(
            select(func.count()).select_from(Case).where(
                active, col(Case.sla_due_at) >= now, col(Case.sla_due_at) < now + DUE_SOON
            )
        ).scalar_one())
        resolved_n, late_n = session.execute(
            select(func.count(), func.coalesce(func.sum(case((col(Case.resolved_at) > col(Case.sla_due_at), 1),
                                                             else_=0)), 0))
            .select_from(Case).where(col(Case.resolved_at).is_not(None))
        ).one()
        sla = SlaSummary(active_n, breached_n, due_soon_n, int(resolved_n), int(late_n))

        first_decision = _percentiles(session, _first_decision_durations(db))
        resolution = _percentiles(session, _resolution_durations(db))
        money = _money(db, session)

        since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
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
    return Dashboard(by_status, backlog_by_category, age_buckets, sla, first_decision, resolution, money, per_day)


#: a case whose money actually moved back to the user
_RECOVERED = (CaseStatus.CREDITED.value, CaseStatus.REFUNDED.value, CaseStatus.CLOSED.value)


def _money(db: Database, session: Session) -> list[MoneyRow]:
    """Recovered value and fees by landing network and category (credited or refunded cases)."""
    network = func.coalesce(col(Case.deposit_network), col(Case.network))
    where = (
        col(Case.status).in_(_RECOVERED),
        col(Case.resolved_at).is_not(None),
        col(Case.resolution).in_((Resolution.CREDIT.value, Resolution.REFUND.value)),
    )
    if db.is_postgresql:
        rows = session.execute(
            select(network, col(Case.category), func.count(), func.coalesce(func.sum(col(Case.value_usd)), 0),
                   func.coalesce(func.sum(col(Case.fee_usd)), 0))
            .where(*where).group_by(network, col(Case.category))
        ).all()
        result = [MoneyRow(str(n), str(c or "unclassified"), int(k), Decimal(v), Decimal(f)) for n, c, k, v, f in rows]
    else:
        # Exact sums: SQLite would add the decimal text as floats, so add Decimals here.
        totals: dict[tuple[str, str], list[Any]] = defaultdict(lambda: [0, Decimal(0), Decimal(0)])
        raw = session.execute(
            select(network, col(Case.category), cast(col(Case.value_usd), String), cast(col(Case.fee_usd), String))
            .where(*where)
        )
        for n, c, value, fee in raw:
            entry = totals[(str(n), str(c or "unclassified"))]
            entry[0] += 1
            if value:
                entry[1] += Decimal(value)
            if fee:
                entry[2] += Decimal(fee)
        result = [MoneyRow(n, c, k, v, f) for (n, c), (k, v, f) in totals.items()]
    return sorted(result, key=lambda r: (r.network, r.category))


# ------------------------------------------------------------------------------------ audit export
def export_events_jsonl(db: Database, *, batch: int = 5000) -> Iterator[str]:
    """Every audit event in id order as JSON lines, with the case reference."""
    from recovery.views import event_json

    last_id = 0
    with db.read() as session:
        while True:
            rows = session.execute(
                select(CaseEvent, col(Case.reference))
                .join(Case, col(Case.id) == col(CaseEvent.case_id))
                .where(col(CaseEvent.id) > last_id)
                .order_by(col(CaseEvent.id))
                .limit(batch)
            ).all()
            if not rows:
                return
            for event, reference in rows:
                data = event_json(event)
                data["case_id"] = event.case_id
                data["reference"] = reference
                data["prev_hash"] = event.prev_hash
                yield json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"
            last_id = int(rows[-1][0].id or last_id)


def latest_events(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """The newest audit events, newest first, with their case reference."""
    with db.read() as session:
        rows = session.execute(
            select(CaseEvent, col(Case.reference))
            .join(Case, col(Case.id) == col(CaseEvent.case_id))
            .order_by(col(CaseEvent.id).desc())
            .limit(limit)
        ).all()
    return [
        {"id": e.id, "reference": ref, "when": e.created_at, "actor": e.actor, "actor_role": e.actor_role,
         "action": e.action, "from_status": e.from_status, "to_status": e.to_status, "details": e.details}
        for e, ref in rows
    ]


def count_cases(db: Database) -> int:
    with db.read() as session:
        return int(session.execute(select(func.count()).select_from(Case)).scalar_one())
