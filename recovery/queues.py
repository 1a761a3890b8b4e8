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
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import (
    ARRAY,
    Date,
    Float,
    Integer,
    String,
    and_,
    bindparam,
    case,
    cast,
    func,
    literal,
    literal_column,
    null,
    or_,
    select,
    text,
    type_coerce,
    union_all,
)
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement, Grouping
from sqlalchemy.sql.selectable import CompoundSelect, Select
from sqlalchemy.sql.visitors import InternalTraversal
from sqlmodel import Session, col

from recovery import case_search
from recovery.db import Database
from recovery.dbtypes import canonical_decimal, decimal_text
from recovery.exact_sums import exact_sum, money_total
from recovery.lifecycle import OPEN
from recovery.models import Case, CaseEvent, ChainObservation, ObservedTransfer, Operator, ScanFinding
from recovery.utc_days import day_range
from recovery.vocabulary import CaseStatus, Category, Flag, Origin, Resolution

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
#: statuses in which a case waits for a person's decision: its SLA clock runs (policy ``sla_hours``:
#: a case should be decided within that many hours of its appeal)
AWAITING_DECISION: tuple[str, ...] = tuple(s.value for s in CaseStatus if s in OPEN)
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
    #: True: only cases waiting for a decision past their SLA due time; False: only the others
    sla_breached: bool | None = None
    #: every one of these flags must be set
    flags: tuple[str, ...] = ()
    #: free text: a reference, user id, whole or partial transaction hash, deposit address, or a
    #: transfer's sender or recipient (``recovery/case_search.py``)
    text: str = ""
    resolutions: tuple[str, ...] = ()
    #: how the case was opened: ``appeal`` (the user), ``intake`` (an operator for the user),
    #: ``detected`` (``recovery scan``)
    origins: tuple[str, ...] = ()
    #: True: only cases in review that a specialist sent for approval (the Approvals page's list)
    sent_for_approval: bool | None = None
    #: only cases filed on these days (first and last, UTC, both included)
    filed_on: tuple[date, date] | None = None
    #: only cases paid out on these days (first and last, UTC, both included): a credit booked, a refund
    #: proven on chain (``recovery.team_reads.paid_in``: the dashboard's value by payout date)
    paid_on: tuple[date, date] | None = None

    def __post_init__(self) -> None:
        """Refuse codes outside the vocabulary, naming the filter (a typo would silently match nothing)."""
        for name, allowed in _FILTER_CODES.items():
            unknown = [value for value in getattr(self, name) if value not in allowed]
            if unknown:
                raise ValueError(f"{name}: {', '.join(map(repr, unknown))} not among {', '.join(allowed)}")
        for name in ("min_age_days", "max_age_days"):
            days = getattr(self, name)
            if days is not None and days < 0:
                raise ValueError(f"{name}: must be 0 or more")
        for name in ("filed_on", "paid_on"):
            days = getattr(self, name)
            if days is not None and days[0] > days[1]:
                raise ValueError(f"{name}: the first day {days[0]} is after the last {days[1]}")


#: the filters whose values are fixed codes, with the codes they accept
_FILTER_CODES: dict[str, tuple[str, ...]] = {
    "statuses": tuple(s.value for s in CaseStatus),
    "categories": tuple(c.value for c in Category),
    "resolutions": tuple(r.value for r in Resolution),
    "flags": tuple(f.value for f in Flag),
    "origins": tuple(o.value for o in Origin),
}


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
    #: where the funds were found (None until the chain check found them)
    deposit_network: str | None = None

    def breached(self, now: datetime) -> bool:
        return self.status in AWAITING_DECISION and self.sla_due_at is not None and self.sla_due_at < now

    def due_soon(self, now: datetime) -> bool:
        return (
            self.status in AWAITING_DECISION and self.sla_due_at is not None
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
                 "sla_due_at", "version", "deposit_network")
)


class Unindexed(ColumnElement[Any]):
    """A column the SQLite planner must not use an index for (SQLite's no-op unary ``+``).

    The open cases are a small part of the table once history grows, and each row carries its
    decision JSON. Left alone, SQLite walks the index of ``sla_due_at < now`` or of the sort column
    through the whole history; marking those terms makes it read the working set through the status
    index. PostgreSQL's planner needs no help: there it is the plain column.
    """

    inherit_cache = True
    #: the wrapped column is part of the statement cache key (two wrapped columns never share SQL)
    _traverse_internals = [("column", InternalTraversal.dp_clauseelement)]

    def __init__(self, column: Any) -> None:
        self.column = column
        self.type = column.type


@compiles(Unindexed)
def _compile_unindexed(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.column, **kw))


@compiles(Unindexed, "sqlite")
def _compile_unindexed_sqlite(element: Unindexed, compiler: Any, **kw: Any) -> str:
    return "+" + str(compiler.process(element.column, **kw))


def _working_set(filt: QueueFilter) -> bool:
    """Whether the filter keeps to open cases (a small part of the table once history grows)."""
    return (bool(filt.statuses) and set(filt.statuses) <= set(ACTIVE_STATUSES)) or filt.sla_breached is True


def _column(name: str, filt: QueueFilter | None) -> Any:
    """A case column; for a working-set filter every column but ``status`` is kept off the indexes."""
    column = getattr(Case, name)
    if filt is not None and _working_set(filt) and name != "status":
        return Unindexed(column)
    return column


def _conditions(filt: QueueFilter, now: datetime, text: ColumnElement[bool] | None = None) -> list[ColumnElement[bool]]:
    where: list[ColumnElement[bool]] = []

    def c(name: str) -> Any:
        return _column(name, filt)

    if filt.statuses:
        where.append(c("status").in_(filt.statuses))
    if filt.categories:
        where.append(c("category").in_(filt.categories))
    if filt.networks:
        where.append(c("network").in_(filt.networks))
    if filt.assets:
        where.append(c("asset").in_(filt.assets))
    if filt.resolutions:
        where.append(c("resolution").in_(filt.resolutions))
    if filt.origins:
        where.append(c("origin").in_(filt.origins))
    if filt.sent_for_approval is True:
        where.append(and_(c("status") == CaseStatus.IN_REVIEW.value, c("approval_requested_at").is_not(None)))
    elif filt.sent_for_approval is False:
        where.append(or_(c("status") != CaseStatus.IN_REVIEW.value, c("approval_requested_at").is_(None)))
    if filt.assignee == UNASSIGNED:
        where.append(c("assignee").is_(None))
    elif filt.assignee:
        where.append(c("assignee") == filt.assignee)
    if filt.min_age_days is not None:
        where.append(c("created_at") <= now - timedelta(days=filt.min_age_days))
    if filt.max_age_days is not None:
        where.append(c("created_at") > now - timedelta(days=filt.max_age_days))
    breached = and_(c("status").in_(AWAITING_DECISION), c("sla_due_at") < now)
    if filt.sla_breached is True:
        where.append(breached)
    elif filt.sla_breached is False:
        where.append(~breached)
    for flag in filt.flags:
        # Flags are a JSON list of fixed codes: '"code"' (quotes included) matches one element exactly.
        where.append(cast(Case.flags, String).contains(json.dumps(flag), autoescape=True))
    if filt.filed_on is not None:
        first, last = day_range(filt.filed_on)
        where += [c("created_at") >= first, c("created_at") < last]
    if filt.paid_on is not None:
        from recovery.team_reads import paid_in

        paid = paid_in(*day_range(filt.paid_on))
        where.append(col(Case.id).in_(select(paid.c.case_id)))
    if text is not None:
        where.append(text)
    return where


def text_condition(
    db: Database, session: Session, filt: QueueFilter, now: datetime, networks: Sequence[str] | None = None,
    search: case_search.Search | None = None,
) -> tuple[ColumnElement[bool] | None, bool]:
    """The search condition (``recovery/case_search.py``: whole identifiers through indexes, else
    part of one, a scan) and whether it scans. ``networks``: the configured ones (else read from
    the cases); ``search``: the search already run for ``filt.text`` (a page runs it once for its
    queries). ``now`` is unused (kept for callers)."""
    found = search if search is not None and search.terms.text == filt.text.strip()[:case_search.MAX_TEXT] \
        else case_search.search(db, session, filt.text, networks)
    if found is None:
        return None, False
    return found.condition, found.scanning


@dataclass(frozen=True)
class Hidden:
    """Cases the search finds that the status filter hides: how many per status."""

    by_status: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.by_status.values())

    @property
    def finished_only(self) -> bool:
        return all(status in FINISHED_STATUSES for status in self.by_status)


def hidden_by_status(db: Database, filt: QueueFilter, now: datetime,
                     networks: Sequence[str] | None = None, search: case_search.Search | None = None) -> Hidden:
    """The cases that match the search and every other filter but whose status the status filter
    leaves out (none without a search text or a status filter). ``search``: as for
    :func:`text_condition`."""
    if not filt.text.strip() or not filt.statuses:
        return Hidden({})
    with db.read() as session:
        condition, _scanning = text_condition(db, session, filt, now, networks, search)
        if condition is None:
            return Hidden({})
        others = _conditions(replace(filt, statuses=(), text=""), now)
        counts = case_search.by_status(db, session, condition, others)
    return Hidden({status: n for status, n in counts.items() if status not in filt.statuses})


def _sort_column(db: Database, key: str, filt: QueueFilter | None = None) -> Any:
    if key not in SORT_KEYS:
        raise ValueError(f"sort: must be one of {', '.join(SORT_KEYS)}")
    if key == "reference":
        return _column("id", filt)
    if key == "value_usd" and db.is_sqlite:
        # SQLite keeps money as exact text; a text sort would put "9" after "10". The cast is
        # used for ordering only, never for arithmetic.
        return cast(Case.value_usd, Float)
    return _column(key, filt)


def _ordered(db: Database, query: Select[Any], sort: str, descending: bool, filt: QueueFilter) -> Select[Any]:
    column = _sort_column(db, sort, filt)
    order = column.desc() if descending else column.asc()
    tie = _column("id", filt)
    return query.order_by(order.nulls_last(), tie.desc() if descending else tie.asc())


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
    networks: Sequence[str] | None = None,
    search: case_search.Search | None = None,
) -> QueuePage:
    """One page of the queue (1-based) and the number of cases matching the filter.

    Two indexed queries (a count and a LIMIT/OFFSET page) for ordinary filters; a substring search,
    which must scan, is one query that also counts (``count(*) OVER ()``).
    """
    if page_size < 1 or page_size > 1000:
        raise ValueError("page_size: must be between 1 and 1000")
    _sort_column(db, sort)
    with db.read() as session:
        text, scanning = text_condition(db, session, filt, now, networks, search)
        where = _conditions(filt, now, text)
        if scanning:
            total_column = func.count().over().label("total")
            query = _ordered(db, select(*_ROW_COLUMNS, total_column).where(*where), sort, descending, filt)
            rows = session.execute(query.offset((max(1, page) - 1) * page_size).limit(page_size)).all()
            if rows:
                return QueuePage([_row(r[:-1]) for r in rows], int(rows[0][-1]), max(1, page), page_size)
        total = int(session.execute(select(func.count()).select_from(Case).where(*where)).scalar_one())
        pages = max(1, math.ceil(total / page_size))
        page = min(max(1, page), pages)
        query = _ordered(db, select(*_ROW_COLUMNS).where(*where), sort, descending, filt)
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
    batch: int = 2000, networks: Sequence[str] | None = None,
) -> Iterator[list[str]]:
    """Every case matching the filter as CSV cells (header first), streamed in batches."""
    yield list(EXPORT_COLUMNS)
    with db.read() as session:
        text, _scanning = text_condition(db, session, filt, now, networks)
        query = _ordered(db, select(*_ROW_COLUMNS).where(*_conditions(filt, now, text)), sort, descending, filt)
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
               descending: bool = False, networks: Sequence[str] | None = None) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    for cells in export_rows(db, filt, now, sort=sort, descending=descending, networks=networks):
        writer.writerow(cells)
    return buffer.getvalue()


# ------------------------------------------------------------------------------------ choices
def operator_names(db: Database, *, active_only: bool = True) -> list[str]:
    with db.read() as session:
        query = select(col(Operator.username)).order_by(Operator.username)
        if active_only:
            query = query.where(col(Operator.active).is_(True))
        return [str(name) for name in session.execute(query).scalars()]


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
    """The cases among ``case_ids`` that ``username`` helped prepare (four-eyes: they cannot approve
    them above the threshold); the preparing actions are :data:`recovery.payouts.PREPARING_ACTIONS`."""
    from recovery.payouts import PREPARING_ACTIONS

    if not case_ids:
        return set()
    with db.read() as session:
        ids = session.execute(
            select(col(CaseEvent.case_id)).distinct().where(
                col(CaseEvent.case_id).in_(list(case_ids)),
                col(CaseEvent.actor) == username,
                col(CaseEvent.action).in_(sorted(PREPARING_ACTIONS)),
                col(CaseEvent.actor_role).in_(["specialist", "approver", "admin"]),
            )
        ).scalars()
        return {int(i) for i in ids if i is not None}


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
    awaiting: int  # cases waiting for a decision
    breached: int  # of those, past their SLA due time
    due_soon: int  # of those, due within DUE_SOON
    decided: int  # cases filed in the window that a person decided
    decided_late: int  # of those, decided after their SLA due time


@dataclass(frozen=True)
class OriginRow:
    """The window's cases opened one way (``Origin``): how many, how many still open, and how
    long after the deposit reached the chain the case was opened."""

    origin: str
    cases: int
    open: int  # still in the backlog (``ACTIVE_STATUSES``)
    finished: int
    #: percent of the window's cases (one decimal)
    share_percent: float
    #: from the deposit's block time to the case, over the cases whose block time is known
    deposit_to_case: Percentiles
    #: cases with no known block time (not found on the chain yet, or never checked)
    unknown_deposit: int


@dataclass(frozen=True)
class Dashboard:
    days: int
    by_status: dict[str, int]
    backlog_by_category: dict[str, int]
    age_buckets: list[tuple[str, int, int]]  # (bucket, within SLA, breached)
    sla: SlaSummary
    first_decision: Percentiles
    resolution: Percentiles
    money: list[MoneyRow]
    per_day: list[tuple[str, int]]
    #: one row per origin (every ``Origin``, in vocabulary order), over the window's cases
    origins: list[OriginRow] = field(default_factory=list)
    #: the appealed origins (``APPEALED_ORIGINS``) together, against ``detected``
    appealed: OriginRow | None = None

    def origin(self, name: str) -> OriginRow:
        """The row of one origin, or of ``APPEALED``."""
        if name == APPEALED and self.appealed is not None:
            return self.appealed
        return next(row for row in self.origins if row.origin == name)


def percentiles(seconds: Sequence[float]) -> Percentiles:
    """Nearest-rank median and 90th percentile of durations in seconds, in hours."""
    ordered = sorted(seconds)
    count = len(ordered)
    if count == 0:
        return Percentiles(0, None, None)
    median, p90 = (ordered[max(0, math.ceil(q * count) - 1)] for q in (0.5, 0.9))
    return Percentiles(count, round(median / 3600, 2), round(p90 / 3600, 2))


def _epoch(db: Database, column: Any) -> Any:
    """A timestamp as seconds since 1970 (a float: for durations, never for money).

    On PostgreSQL ``date_part`` (double precision: the microseconds divided by a million, correctly
    rounded), not ``extract`` (NUMERIC since PostgreSQL 14, then cast): the same value, several
    times cheaper per row.
    """
    if db.is_sqlite:
        return (func.julianday(column) - 2440587.5) * 86400.0
    return func.date_part("epoch", column, type_=Float)


#: the origins that are appeals (the user's own, or filed by an operator for the user), against ``detected``
APPEALED_ORIGINS: tuple[str, ...] = (Origin.APPEAL.value, Origin.INTAKE.value)
#: the name of the row that adds up the appealed origins
APPEALED = "appealed"

#: the first time a person decided a case: its first approval or rejection
DECIDING_ACTIONS = ("approve", "reject")
#: the same condition as SQL text with the codes written out: the partial index
#: ``ix_case_events_decisions`` (migration 0010) is chosen only for a query that repeats its
#: condition, and SQLite cannot match a bound parameter against it
DECIDING_CONDITION = "action IN (" + ", ".join(f"'{action}'" for action in DECIDING_ACTIONS) + ")"
assert all(action.isidentifier() for action in DECIDING_ACTIONS)  # codes, safe to write into SQL

#: a case whose money actually moved back to the user
_RECOVERED = (CaseStatus.CREDITED.value, CaseStatus.REFUNDED.value, CaseStatus.CLOSED.value)
_RECOVERED_RESOLUTIONS = (Resolution.CREDIT.value, Resolution.REFUND.value)


def _day(db: Database, column: Any) -> Any:
    """The UTC day of a timestamp (SQLite: ``YYYY-MM-DD`` text; PostgreSQL: a date, see ``_day_text``)."""
    if db.is_sqlite:
        return func.date(column)
    return cast(func.timezone("UTC", column), Date)


def _day_text(db: Database, day: Any) -> Any:
    """A ``_day`` as ``YYYY-MM-DD`` text (PostgreSQL formats the grouped days, not every row)."""
    if db.is_sqlite:
        return day
    return func.to_char(day, "YYYY-MM-DD")


#: ``_window_statement`` per database dialect (built once: it only takes parameters)
_WINDOW_STATEMENTS: dict[str, CompoundSelect[Any]] = {}


def _window_statement(db: Database) -> CompoundSelect[Any]:
    """One statement for the window's figures (the cases filed since the parameter ``since``, whose
    ids start at the parameter ``first_case_id``): the window's cases are read once (a materialized
    CTE, ``w``); counts and exact sums are aggregated in SQL; the durations the percentiles need
    come back as one narrow row per case.

    Per case of the window (``w``):

    - its first approval or rejection from the audit log, through the partial index of deciding
      events (``ix_case_events_decisions``: a range of case ids, not the log's tail);
    - when its deposit reached the chain: the earliest block time ``recovery scan`` recorded for it
      (``scan_findings``, a range of case ids), else the block time of the chain check's stored
      observation of the transaction on the network where it landed (one probe of the covering
      index ``ix_chain_observations_block_time`` per case the scan did not record; COALESCE stops
      at the first value).

    The rows that come back, ``(part, key, key2, n, seconds_a, seconds_b, seconds_c, total_a, total_b)``:

    - on SQLite, ``case``: one per case: its origin (key), 1 if still open (n), seconds from the
      deposit's block to the case, from the case to its first decision and to its resolution (a,
      b, c; NULL when unknown). SQLite has no percentile function, and its window functions cost
      more than sorting these values in Python;
    - on PostgreSQL, the percentiles' values themselves (see ``_ranked_durations``): turning a row
      per case into Python values costs more there than ranking them in SQL;
    - ``late``: cases decided after their SLA due time (n);
    - ``money``: per (network, category) of the recovered cases: cases (n), value and fees (exact
      totals, see ``recovery.exact_sums``);
    - ``day``: cases filed per day (key).
    """
    statement = _WINDOW_STATEMENTS.get(db.engine.dialect.name)
    if statement is not None:
        return statement
    since: Any = bindparam("since")
    first_case_id: Any = bindparam("first_case_id")
    network = func.coalesce(col(Case.deposit_network), col(Case.network))
    found = (
        select(col(ScanFinding.case_id).label("case_id"),
               _epoch(db, func.min(col(ScanFinding.block_time))).label("found"))
        .where(col(ScanFinding.case_id) >= first_case_id)
        .group_by(col(ScanFinding.case_id))
        .subquery("found")
    )
    decided = (
        select(col(CaseEvent.case_id).label("case_id"),
               _epoch(db, func.min(col(CaseEvent.created_at))).label("decided"))
        .where(text(DECIDING_CONDITION), col(CaseEvent.case_id) >= first_case_id)
        .group_by(col(CaseEvent.case_id))
        .subquery("decided")
    )
    # The unique (network, tx_hash) index would need a read of the observation's row (its evidence
    # JSON among it) for the block time; SQLite picks it over the covering index led by the hash
    # unless the network is kept off the index (``Unindexed``).
    observed = (
        select(_epoch(db, col(ChainObservation.block_time)))
        .where(col(ChainObservation.tx_hash) == col(Case.tx_hash), Unindexed(col(ChainObservation.network)) == network)
        .limit(1)
        .scalar_subquery()
    )
    w = (
        select(
            col(Case.status).label("status"), col(Case.resolution).label("resolution"),
            col(Case.origin).label("origin"), network.label("network"), col(Case.category).label("category"),
            type_coerce(col(Case.value_usd), String).label("value_usd"),
            type_coerce(col(Case.fee_usd), String).label("fee_usd"),
            _epoch(db, col(Case.created_at)).label("filed"), _epoch(db, col(Case.sla_due_at)).label("due"),
            _epoch(db, col(Case.resolved_at)).label("resolved"),
            func.coalesce(found.c.found, observed).label("deposited"),
            decided.c.decided.label("decided"),
            _day(db, col(Case.created_at)).label("day"),
        )
        .select_from(Case)
        .outerjoin(found, found.c.case_id == col(Case.id))
        .outerjoin(decided, decided.c.case_id == col(Case.id))
        .where(col(Case.created_at) >= since)
        .cte("w")
        .prefix_with("MATERIALIZED")
    )
    c = w.c

    def row(part: str, key: Any = None, key2: Any = None, n: Any = None, seconds: Sequence[Any] = (None,) * 3,
            totals: Sequence[Any] = (None, None)) -> list[Any]:
        def typed(value: Any, kind: Any) -> Any:
            # a NULL is cast: PostgreSQL would give a column that is NULL in every branch the type text
            return cast(null(), kind) if value is None else type_coerce(value, kind)

        return [literal_column(f"'{part}'", String).label("part"), typed(key, String).label("key"),
                typed(key2, String).label("key2"), typed(n, Integer).label("n"),
                *(typed(value, Float).label(f"seconds_{name}") for value, name in zip(seconds, "abc", strict=True)),
                *(typed(value, String).label(f"total_{name}") for value, name in zip(totals, "ab", strict=True))]

    recovered = and_(c.resolved.is_not(None), c.status.in_(_RECOVERED), c.resolution.in_(_RECOVERED_RESOLUTIONS))
    still_open = case((c.status.in_(ACTIVE_STATUSES), 1), else_=0)
    if db.is_sqlite:
        durations = [select(*row("case", c.origin, None, still_open,
                                 (c.filed - c.deposited, c.decided - c.filed, c.resolved - c.filed)))]
    else:
        durations = _ranked_durations(c, row, still_open)
    statement = _WINDOW_STATEMENTS[db.engine.dialect.name] = union_all(
        *durations,
        select(*row("late", None, None, func.count())).where(c.decided > c.due),
        select(*row("money", c.network, c.category, func.count(),
                    totals=(money_total(db, c.value_usd), money_total(db, c.fee_usd))))
        .where(recovered).group_by(c.network, c.category),
        select(*row("day", _day_text(db, c.day), None, func.count())).group_by(c.day),
    )
    return statement


def _ranked_durations(c: Any, row: Any, still_open: Any) -> list[Select[Any]]:
    """PostgreSQL's rows for the percentiles: ``origin`` per origin (key), its cases (n) and those
    still open (seconds_a); ``ranked``: per series (key: ``wait`` per origin in key2,
    ``wait_appealed``, ``decision``, ``resolution``), its count (n) and its median and 90th
    percentile (seconds_a, seconds_b).

    ``percentile_disc(q)`` is the value at rank ceil(q * n) (PostgreSQL multiplies the same two
    doubles as ``percentiles``): the nearest rank. The waits are ranked before they are rounded to
    the millisecond and floored at zero (``_wait``): both are monotonic, so the value at a rank,
    adjusted, is the adjusted values' value at that rank.
    """
    empty = literal_column("''", String)
    series = union_all(
        select(literal_column("'wait'", String).label("series"), c.origin.label("grp"),
               (c.filed - c.deposited).label("v")).where(c.deposited.is_not(None)),
        select(literal_column("'wait_appealed'", String), empty, c.filed - c.deposited)
        .where(c.deposited.is_not(None), c.origin.in_(APPEALED_ORIGINS)),
        select(literal_column("'decision'", String), empty, c.decided - c.filed).where(c.decided.is_not(None)),
        select(literal_column("'resolution'", String), empty, c.resolved - c.filed).where(c.resolved.is_not(None)),
    ).subquery("series")
    s = series.c
    # both quantiles from one sort per series (PostgreSQL computes the repeated aggregate once)
    both = type_coerce(Grouping(func.percentile_disc(literal_column("ARRAY[0.5, 0.9]")).within_group(s.v)),
                       ARRAY(Float))
    median, p90 = both[1], both[2]
    return [
        select(*row("origin", c.origin, None, func.count(), (func.sum(still_open), None, None))).group_by(c.origin),
        select(*row("ranked", s.series, s.grp, func.count(), (median, p90, None))).group_by(s.series, s.grp),
    ]


@dataclass(frozen=True)
class _Ranked:
    """A series of durations PostgreSQL ranked: how many, its median and its 90th percentile."""

    count: int = 0
    median: float = 0.0
    p90: float = 0.0

    def percentiles(self, adjust: Any = None) -> Percentiles:
        if not self.count:
            return Percentiles(0, None, None)
        median, p90 = (adjust(v) for v in (self.median, self.p90)) if adjust else (self.median, self.p90)
        return Percentiles(self.count, round(median / 3600, 2), round(p90 / 3600, 2))


def _wait(seconds: float) -> float:
    """From the deposit's block to the case, to the millisecond (SQLite keeps times to the millisecond,
    and the float arithmetic adds noise); a case opened before its transaction was in a block (an
    appeal of a pending transfer): nobody waited."""
    return max(0.0, round(seconds, 3))


@dataclass
class _OriginCases:
    cases: int = 0
    open: int = 0
    #: seconds from the deposit's block to the case, for the cases whose block time is known
    waits: list[float] = field(default_factory=list)


@dataclass
class _Window:
    """The window's figures, read from ``_window_statement``'s rows."""

    origins: dict[str, _OriginCases] = field(default_factory=lambda: defaultdict(_OriginCases))
    decision_times: list[float] = field(default_factory=list)
    resolution_times: list[float] = field(default_factory=list)
    #: PostgreSQL: (series, group) -> the series ranked in SQL (``_ranked_durations``)
    ranked: dict[tuple[str, str], _Ranked] | None = None
    decided_late: int = 0
    money: dict[tuple[str, str], list[Any]] = field(default_factory=dict)
    per_day: dict[str, int] = field(default_factory=dict)

    def durations(self, series: str) -> Percentiles:
        """``decision`` or ``resolution`` times."""
        if self.ranked is not None:
            return self.ranked.get((series, ""), _Ranked()).percentiles()
        return percentiles(self.decision_times if series == "decision" else self.resolution_times)

    def waits(self, name: str, members: Sequence[str]) -> Percentiles:
        if self.ranked is not None:
            key = ("wait", name) if name != APPEALED else ("wait_appealed", "")
            return self.ranked.get(key, _Ranked()).percentiles(_wait)
        return percentiles([wait for m in members if m in self.origins for wait in self.origins[m].waits])

    def origin_row(self, name: str, members: Sequence[str]) -> OriginRow:
        total = sum(o.cases for o in self.origins.values())
        mine = [self.origins[m] for m in members if m in self.origins]
        cases, still_open = sum(o.cases for o in mine), sum(o.open for o in mine)
        waits = self.waits(name, members)
        share = round(100 * cases / total, 1) if total else 0.0
        return OriginRow(name, cases, still_open, cases - still_open, share, waits, cases - waits.count)

    def origin_rows(self) -> tuple[list[OriginRow], OriginRow]:
        """One row per origin (every ``Origin``, then any other stored value) and the appealed origins together."""
        names = [o.value for o in Origin]
        names += sorted(set(self.origins) - set(names))
        return [self.origin_row(name, (name,)) for name in names], self.origin_row(APPEALED, APPEALED_ORIGINS)


def _window(db: Database, session: Session, since: datetime) -> _Window:
    found = _Window()
    # case ids follow the filing order: the window's cases are the ids from its first case on. ``id + 0``:
    # PostgreSQL would otherwise walk the primary key from the oldest case until one is in the window.
    first_case_id = session.execute(
        select(func.min(col(Case.id) + 0)).where(col(Case.created_at) >= since)
    ).scalar_one()
    if first_case_id is None:
        return found
    # a Core execution: the ORM's handling of a statement that loads no entities only costs time here
    rows = session.connection().execute(
        _window_statement(db), {"since": since, "first_case_id": int(first_case_id)}
    ).all()
    if not db.is_sqlite:
        found.ranked = {}
    origins, decisions, resolutions = found.origins, found.decision_times, found.resolution_times
    for part, key, key2, n, seconds_a, seconds_b, seconds_c, total_a, total_b in rows:
        if part == "case":  # SQLite: one row per case of the window (a few thousand)
            origin = origins[key]
            origin.cases += 1
            origin.open += n
            if seconds_a is not None:
                origin.waits.append(max(0.0, round(seconds_a, 3)))  # ``_wait``, inlined
            if seconds_b is not None:
                decisions.append(seconds_b)
            if seconds_c is not None:
                resolutions.append(seconds_c)
        elif part == "origin":
            origins[str(key)] = _OriginCases(int(n), int(seconds_a))
        elif part == "ranked" and found.ranked is not None:
            found.ranked[(str(key), str(key2 or ""))] = _Ranked(int(n), float(seconds_a), float(seconds_b))
        elif part == "late":
            found.decided_late = int(n)
        elif part == "money":
            entry = found.money.setdefault((str(key), str(key2 or "unclassified")), [0, Decimal(0), Decimal(0)])
            entry[0] += int(n)
            entry[1] += exact_sum(db, total_a)
            entry[2] += exact_sum(db, total_b)
        elif part == "day":
            found.per_day[str(key)] = int(n)
    return found


def dashboard(db: Database, now: datetime, *, days: int = 30) -> Dashboard:
    """Every figure of the dashboard. The backlog is as of now; times, money and intake cover the
    appeals filed in the last ``days`` days (so the cost follows the window, not the history)."""
    since = (now - timedelta(days=days - 1)).replace(hour=0, minute=0, second=0, microsecond=0)
    with db.read() as session:
        by_status = {
            str(s): int(n)
            for s, n in session.execute(select(col(Case.status), func.count()).group_by(col(Case.status))).all()
        }
        # The backlog in one pass over the open cases, read through the status index (see ``Unindexed``):
        # by category, and the ages and SLA of those awaiting a decision (a subset of the open ones).
        category = Unindexed(col(Case.category))
        created, due = Unindexed(col(Case.created_at)), Unindexed(col(Case.sla_due_at))
        bucket_expr = case(
            *[(created <= now - timedelta(hours=lower), literal(label)) for label, lower in reversed(AGE_BUCKETS[1:])],
            else_=literal(AGE_BUCKETS[0][0]),
        )
        is_breached = case((due < now, 1), else_=0)
        is_soon = case((and_(due >= now, due < now + DUE_SOON), 1), else_=0)
        backlog_by_category: dict[str, int] = defaultdict(int)
        raw_buckets: dict[str, list[int]] = {label: [0, 0] for label, _ in AGE_BUCKETS}
        awaiting = breached = due_soon = 0
        for status, category_name, label, late, soon, n in session.execute(
            select(col(Case.status), category, bucket_expr, is_breached, is_soon, func.count())
            .where(col(Case.status).in_(ACTIVE_STATUSES))
            .group_by(col(Case.status), category, bucket_expr, is_breached, is_soon)
        ).all():
            backlog_by_category[str(category_name or "unclassified")] += int(n)
            if status not in AWAITING_DECISION:
                continue
            raw_buckets[str(label)][1 if int(late) else 0] += int(n)
            awaiting += int(n)
            breached += int(n) if int(late) else 0
            due_soon += int(n) if int(soon) else 0
        age_buckets = [(label, ok, late) for label, (ok, late) in raw_buckets.items()]
        window = _window(db, session, since)
    decision = window.durations("decision")
    sla = SlaSummary(awaiting, breached, due_soon, decision.count, window.decided_late)
    money = sorted((MoneyRow(n, c, k, canonical_decimal(v), canonical_decimal(f))
                    for (n, c), (k, v, f) in window.money.items()), key=lambda r: (r.network, r.category))
    per_day = []
    for offset in range(days):
        label = (since + timedelta(days=offset)).date().isoformat()
        per_day.append((label, window.per_day.get(label, 0)))
    return Dashboard(days, by_status, dict(backlog_by_category), age_buckets, sla, decision,
                     window.durations("resolution"), money, per_day, *window.origin_rows())


# ------------------------------------------------------------------------------------ audit export
def export_events_jsonl(db: Database, *, batch: int = 5000) -> Iterator[str]:
    """Every audit event in id order as JSON lines, with the case reference (null for events about
    no case: operators, imports, key rotations)."""
    from recovery.views import event_json

    last_id = 0
    with db.read() as session:
        while True:
            rows = session.execute(
                select(CaseEvent, col(Case.reference))
                .outerjoin(Case, col(Case.id) == col(CaseEvent.case_id))
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
                data["key_id"] = event.key_id
                yield json.dumps(data, ensure_ascii=False, sort_keys=True) + "\n"
            last_id = int(rows[-1][0].id or last_id)


def latest_events(db: Database, limit: int = 50) -> list[dict[str, Any]]:
    """The newest audit events, newest first, with their case reference."""
    with db.read() as session:
        rows = session.execute(
            select(CaseEvent, col(Case.reference))
            .outerjoin(Case, col(Case.id) == col(CaseEvent.case_id))
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
