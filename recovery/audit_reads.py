"""Read-side queries for the Audit page: the audit events filtered by actor, case, action and dates,
paged in SQL, and the filtered events exported as CSV or JSON lines (streamed in batches, bounded).

Nothing here writes. Every filter is a plain column condition on ``case_events``; a case reference
is first turned into the case's id (one lookup in the reference's unique index), so the events of
one case come from ``ix_case_events_case_id``. Pages are newest first (``id`` descending: the
chain's order); an export is in chain order (oldest first), one query whose rows are fetched in
batches, and stops at ``limit`` events.

Dates are UTC days, both ends included (``until`` 2026-12-07 takes every event of that day).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from recovery.db import Database
from recovery.dbtypes import jsonable
from recovery.models import Case, CaseEvent
from recovery.utc_days import day_start

#: the page sizes the Audit page offers
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
#: an export stops after this many events (about 50 MB of JSON lines); the page says so and asks for
#: a narrower filter. The unfiltered chain is exported whole by ``queues.export_events_jsonl``.
EXPORT_LIMIT = 100_000
#: longest actor or reference the filter accepts (the columns are 128 and 20 characters)
MAX_TEXT = 128
#: the columns of the CSV export, in order
EXPORT_COLUMNS: tuple[str, ...] = ("id", "reference", "created_at", "actor", "actor_role", "action", "from_status",
                                   "to_status", "details", "hash")


@dataclass(frozen=True)
class AuditFilter:
    """Which events. Empty strings, an empty tuple and None mean "any"."""

    #: exact username (an operator, ``system``, or a user's id)
    actor: str = ""
    #: a case reference (``RC-000123``; any letter case)
    reference: str = ""
    actions: tuple[str, ...] = ()
    #: first UTC day included
    since: date | None = None
    #: last UTC day included
    until: date | None = None

    def __post_init__(self) -> None:
        for name in ("actor", "reference"):
            value = getattr(self, name)
            if len(value) > MAX_TEXT:
                raise ValueError(f"{name}: longer than {MAX_TEXT} characters")
        if any(not a or len(a) > 40 for a in self.actions):
            raise ValueError("actions: each is a code of 1 to 40 characters")
        if self.since is not None and self.until is not None and self.since > self.until:
            raise ValueError(f"since: {self.since} is after until {self.until}")

    @property
    def is_empty(self) -> bool:
        return not (self.actor or self.reference or self.actions or self.since or self.until)


@dataclass(frozen=True)
class AuditRow:
    id: int
    case_id: int | None
    #: None for events about no case (operators, imports, key rotations)
    reference: str | None
    created_at: datetime
    actor: str
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    details: dict[str, Any]
    hash: str

    def record(self) -> dict[str, Any]:
        """The event as plain JSON values (the export's line)."""
        data = jsonable({
            "id": self.id, "case_id": self.case_id, "reference": self.reference, "created_at": self.created_at,
            "actor": self.actor, "actor_role": self.actor_role, "action": self.action,
            "from_status": self.from_status, "to_status": self.to_status, "details": self.details,
            "hash": self.hash,
        })
        assert isinstance(data, dict)
        return data


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int
    page: int
    page_size: int

    @property
    def pages(self) -> int:
        return max(1, math.ceil(self.total / self.page_size))


_COLUMNS = (col(CaseEvent.id), col(CaseEvent.case_id), col(Case.reference), col(CaseEvent.created_at),
            col(CaseEvent.actor), col(CaseEvent.actor_role), col(CaseEvent.action), col(CaseEvent.from_status),
            col(CaseEvent.to_status), col(CaseEvent.details), col(CaseEvent.hash))


def _row(values: Sequence[Any]) -> AuditRow:
    details = values[9]
    if isinstance(details, str):  # a driver that hands JSON back as text
        details = json.loads(details)
    return AuditRow(int(values[0]), values[1], values[2], values[3], str(values[4]), str(values[5]), str(values[6]),
                    values[7], values[8], dict(details or {}), str(values[10]))


def conditions(session: Session, filt: AuditFilter) -> list[ColumnElement[bool]] | None:
    """The filter as conditions on ``case_events``; None when nothing can match (no such case)."""
    found: list[ColumnElement[bool]] = []
    if filt.reference:
        case_id = session.execute(
            select(col(Case.id)).where(col(Case.reference) == filt.reference.strip().upper())
        ).scalar_one_or_none()
        if case_id is None:
            return None
        found.append(col(CaseEvent.case_id) == case_id)
    if filt.actor:
        found.append(col(CaseEvent.actor) == filt.actor.strip())
    if filt.actions:
        found.append(col(CaseEvent.action).in_(sorted(set(filt.actions))))
    if filt.since is not None:
        found.append(col(CaseEvent.created_at) >= day_start(filt.since))
    if filt.until is not None:
        found.append(col(CaseEvent.created_at) < day_start(filt.until + timedelta(days=1)))
    return found


def count_events(db: Database, filt: AuditFilter) -> int:
    with db.read() as session:
        where = conditions(session, filt)
        if where is None:
            return 0
        return int(session.execute(select(func.count()).select_from(CaseEvent).where(*where)).scalar_one())


def audit_page(db: Database, filt: AuditFilter, *, page: int = 1, page_size: int = 50) -> AuditPage:
    """One page of the matching events, newest first, with how many match in all. A page past the
    last is answered with the last page."""
    if page_size < 1 or page_size > max(PAGE_SIZES):
        raise ValueError(f"page_size: 1 to {max(PAGE_SIZES)}")
    with db.read() as session:
        where = conditions(session, filt)
        if where is None:
            return AuditPage([], 0, 1, page_size)
        total = int(session.execute(select(func.count()).select_from(CaseEvent).where(*where)).scalar_one())
        page = max(1, min(page, max(1, math.ceil(total / page_size))))
        query = (select(*_COLUMNS).outerjoin(Case, col(Case.id) == col(CaseEvent.case_id)).where(*where)
                 .order_by(col(CaseEvent.id).desc()).offset((page - 1) * page_size).limit(page_size))
        rows = [_row(r) for r in session.execute(query).all()]
    return AuditPage(rows, total, page, page_size)


_EVENT_COLUMNS = tuple(c for c in _COLUMNS if c is not _COLUMNS[2])  # all but the reference


def export_events(db: Database, filt: AuditFilter, *, limit: int = EXPORT_LIMIT, batch: int = 2000) -> Iterator[
        AuditRow]:
    """The matching events in chain order (oldest first), at most ``limit``: one query, its rows
    fetched ``batch`` at a time (never the whole export in memory at once), the references of each
    batch's cases in one more query (an event's case is looked up once per batch, not per event)."""
    with db.read() as session:
        where = conditions(session, filt)
        if where is None:
            return
        query = select(*_EVENT_COLUMNS).where(*where).order_by(col(CaseEvent.id)).limit(limit)
        for chunk in session.execute(query.execution_options(yield_per=batch)).partitions():
            ids = sorted({int(values[1]) for values in chunk if values[1] is not None})
            references = dict(session.execute(
                select(col(Case.id), col(Case.reference)).where(col(Case.id).in_(ids))).all()) if ids else {}
            for values in chunk:
                yield _row((*values[:2], references.get(values[1]), *values[2:]))


def export_jsonl(db: Database, filt: AuditFilter, *, limit: int = EXPORT_LIMIT) -> Iterator[str]:
    """The matching events as JSON lines (see :func:`export_events`)."""
    for row in export_events(db, filt, limit=limit):
        yield json.dumps(row.record(), ensure_ascii=False, sort_keys=True) + "\n"


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _csv_cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, dict | list):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    text = str(value)
    # a spreadsheet would run a cell starting like a formula (an actor is a user's id): keep it text
    return "'" + text if text.startswith(_FORMULA_START) else text


def export_csv(db: Database, filt: AuditFilter, *, limit: int = EXPORT_LIMIT) -> Iterator[str]:
    """The matching events as CSV lines, the header first (see :func:`export_events`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def line(cells: Sequence[str]) -> str:
        buffer.seek(0)
        buffer.truncate()
        writer.writerow(cells)
        return buffer.getvalue()

    yield line(EXPORT_COLUMNS)
    for row in export_events(db, filt, limit=limit):
        record = row.record()
        yield line([_csv_cell(record[name]) for name in EXPORT_COLUMNS])


def known_actions() -> list[str]:
    """Every action the code writes: the case actions of the transition table, sign-ins, operator
    changes, imports and key rotations (the filter also takes any other code typed in)."""
    from recovery import operators
    from recovery.audit import KEY_ROTATED
    from recovery.lifecycle import ACTIONS

    others = {KEY_ROTATED, "addresses_imported", "credits_imported", operators.SIGN_IN, operators.SIGN_IN_FAILED,
              operators.SIGN_IN_LOCKED, operators.OPERATOR_ADDED, operators.OPERATOR_DISABLED,
              operators.OPERATOR_ENABLED, operators.OPERATOR_ROLE_CHANGED, operators.OPERATOR_PASSWORD_RESET,
              operators.OPERATOR_TOTP_ENROLLED, operators.OPERATOR_TOTP_REMOVED, operators.OPERATOR_OIDC_LINKED,
              operators.OPERATOR_OIDC_UNLINKED}
    return sorted({*ACTIONS, *others})


def actors(db: Database) -> list[str]:
    """Names to offer in the actor filter: every operator account and ``system`` (a user's id or any
    other name is typed)."""
    from recovery.models import Operator

    with db.read() as session:
        names = [str(n) for n in session.execute(select(col(Operator.username)).order_by(Operator.username))
                 .scalars()]
    return sorted({*names, "system"})
