"""Case reads through the ORM: one case with its audit events, a filtered page of cases, their count.

Needs only the table models and the database: not the service layer, the rules, the evidence and
audit-writing layers, the configuration or any chain code. The service layer's reads
(:meth:`recovery.services.CaseService.get`, ``list_cases`` and ``count``) answer through it.
``recovery cases list`` and ``recovery cases show`` read the same rows with the database driver,
without SQLAlchemy or pydantic (:mod:`recovery.case_rows`, issue 20); the filters are that module's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from recovery.case_rows import FILTER_FIELDS as FILTER_FIELDS  # one filter for the ORM and the Core reads
from recovery.case_rows import CaseFilter as CaseFilter
from recovery.db import Database
from recovery.errors import NotFound
from recovery.models import Case, CaseEvent

_T = TypeVar("_T")
#: every case
_ANY = CaseFilter()


@dataclass(frozen=True)
class CaseView:
    """A case with its events, detached from the session."""

    case: Case
    events: list[CaseEvent] = field(default_factory=list)


def _filtered(query: SelectOfScalar[_T], filters: CaseFilter) -> SelectOfScalar[_T]:
    for name in FILTER_FIELDS:
        value = getattr(filters, name)
        if value is not None:
            query = query.where(getattr(Case, name) == value)
    return query


def read_case(session: Session, reference: str, *, for_user: str | None = None) -> CaseView:
    """The case ``reference`` with its events, oldest first. ``for_user`` hides other users' cases
    (as if absent). :class:`NotFound` when there is none."""
    case = session.exec(select(Case).where(Case.reference == reference)).first()
    if case is None or (for_user is not None and case.user_id != for_user):
        raise NotFound(f"no case {reference}")
    events = list(session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.id))).all())
    return CaseView(case=case, events=events)


def read_cases(session: Session, filters: CaseFilter = _ANY, *, limit: int = 100,
               offset: int = 0) -> list[Case]:
    """The cases matching ``filters``, oldest first, ``limit`` of them from ``offset``."""
    query = _filtered(select(Case), filters).order_by(col(Case.id)).offset(offset).limit(limit)
    return list(session.exec(query).all())


def count_cases(session: Session, filters: CaseFilter = _ANY) -> int:
    """How many cases match ``filters``."""
    return int(session.exec(_filtered(select(func.count()).select_from(Case), filters)).one())


def get_case(db: Database, reference: str, *, for_user: str | None = None) -> CaseView:
    """:func:`read_case` in a read session of its own."""
    with db.read() as session:
        return read_case(session, reference, for_user=for_user)
