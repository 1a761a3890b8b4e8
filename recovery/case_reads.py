"""Case reads for the operator read-outs: one case with its audit events, a filtered page of cases,
their count.

Needs only the table models and the database: not the service layer, the rules, the evidence and
audit-writing layers, the configuration or any chain code. ``recovery cases list`` and ``recovery
cases show`` read through it and start in little more than the time SQLAlchemy and the models take
to import (issue 20; ``tests/test_startup.py`` checks what they import). The service layer's reads
(:meth:`recovery.services.CaseService.get`, ``list_cases`` and ``count``) answer the same queries.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TypeVar

from sqlmodel import Session, col, func, select
from sqlmodel.sql.expression import SelectOfScalar

from recovery.db import Database
from recovery.errors import NotFound
from recovery.models import Case, CaseEvent

_T = TypeVar("_T")

#: the columns a listing filters on, by equality
FILTER_FIELDS = ("status", "category", "network", "user_id", "assignee", "origin")


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None
    category: str | None = None
    network: str | None = None
    user_id: str | None = None
    assignee: str | None = None
    origin: str | None = None


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


def read_cases(session: Session, filters: CaseFilter = CaseFilter(), *, limit: int = 100,
               offset: int = 0) -> list[Case]:
    """The cases matching ``filters``, oldest first, ``limit`` of them from ``offset``."""
    query = _filtered(select(Case), filters).order_by(col(Case.id)).offset(offset).limit(limit)
    return list(session.exec(query).all())


def count_cases(session: Session, filters: CaseFilter = CaseFilter()) -> int:
    """How many cases match ``filters``."""
    return int(session.exec(_filtered(select(func.count()).select_from(Case), filters)).one())


def get_case(db: Database, reference: str, *, for_user: str | None = None) -> CaseView:
    """:func:`read_case` in a read session of its own."""
    with db.read() as session:
        return read_case(session, reference, for_user=for_user)
