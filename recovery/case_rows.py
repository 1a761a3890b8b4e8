"""Case reads on SQLAlchemy Core, for the operator read-outs that start often and read little:
``recovery cases list`` and ``recovery cases show`` (issue 20).

A filtered page of cases, their count, and one case with its audit events, read as rows of the
Core tables of :mod:`recovery.case_tables`, and their plain-JSON shapes. Needs SQLAlchemy Core and
:mod:`recovery.dbtypes` only: not SQLModel, the ORM, pydantic, the table models, the service layer
or the configuration (``tests/test_startup.py`` checks what the commands import). The same queries
through the ORM are :mod:`recovery.case_reads` (the service layer's reads); the JSON shapes are
those of :func:`recovery.views.case_json` and :func:`recovery.views.event_json`, key for key
(``tests/test_case_rows.py`` compares them).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, select

from recovery.case_tables import case_events, cases
from recovery.dbtypes import jsonable
from recovery.errors import NotFound

if TYPE_CHECKING:
    from sqlalchemy import Connection, Row, Select

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
class CaseRows:
    """A case's row with its events' rows, oldest first (attributes named as the models' fields)."""

    case: Row[Any]
    events: list[Row[Any]] = field(default_factory=list)


def _filtered(query: Select[Any], filters: CaseFilter) -> Select[Any]:
    for name in FILTER_FIELDS:
        value = getattr(filters, name)
        if value is not None:
            query = query.where(cases.c[name] == value)
    return query


def case_rows(connection: Connection, filters: CaseFilter = CaseFilter(), *, limit: int = 100,
              offset: int = 0) -> list[Row[Any]]:
    """The cases matching ``filters``, oldest first, ``limit`` of them from ``offset``."""
    query = _filtered(select(cases), filters).order_by(cases.c.id).offset(offset).limit(limit)
    return list(connection.execute(query).all())


def count_case_rows(connection: Connection, filters: CaseFilter = CaseFilter()) -> int:
    """How many cases match ``filters``."""
    return int(connection.execute(_filtered(select(func.count()).select_from(cases), filters)).scalar_one())


def read_case_rows(connection: Connection, reference: str) -> CaseRows:
    """The case ``reference`` with its events, oldest first; :class:`NotFound` when there is none."""
    case = connection.execute(select(cases).where(cases.c.reference == reference)).first()
    if case is None:
        raise NotFound(f"no case {reference}")
    events = connection.execute(select(case_events).where(case_events.c.case_id == case.id)
                                .order_by(case_events.c.id)).all()
    return CaseRows(case=case, events=list(events))


#: the keys of a case's JSON, in order (:func:`recovery.views.case_json` writes the same)
CASE_KEYS = (
    "reference", "user_id", "origin", "network", "deposit_network", "asset", "tx_hash", "deposit_address", "memo",
    "claimed_amount", "status", "category", "recoverable", "resolution", "flags", "amount", "value_usd",
    "fee_amount", "fee_asset", "fee_usd", "net_amount", "credited_user_id", "refund_network", "refund_address",
    "refund_tx_hash", "assignee", "decision", "version", "created_at", "updated_at", "sla_due_at",
)
#: the keys of an event's JSON, in order (:func:`recovery.views.event_json` writes the same)
EVENT_KEYS = ("id", "actor", "actor_role", "action", "from_status", "to_status", "details", "created_at", "hash")


def case_json(row: Row[Any]) -> dict[str, Any]:
    """A case row as :func:`recovery.views.case_json` writes the case."""
    data = row._mapping
    result: dict[str, Any] = {key: jsonable(data[key]) for key in CASE_KEYS}
    result["flags"] = jsonable(list(data["flags"]))
    return result


def event_json(row: Row[Any]) -> dict[str, Any]:
    """An event row as :func:`recovery.views.event_json` writes the event."""
    data = row._mapping
    return {key: jsonable(data[key]) for key in EVENT_KEYS}
