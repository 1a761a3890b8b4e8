"""Case reads on the database driver itself (``sqlite3``, or ``psycopg`` for PostgreSQL), for the
operator read-outs that start often and read little: ``recovery cases list`` and ``recovery cases
show`` (issue 20).

Importing SQLAlchemy alone takes longer than the whole read-out is allowed to (``python -m
bench.startup``), so these two commands read with the driver and three fixed queries. What they read
is what the ORM loads (:mod:`recovery.case_reads`, the service layer's reads): the same columns, and
every value decoded as :mod:`recovery.dbtypes` decodes it (money as exact, canonical ``Decimal``,
times as aware UTC ``datetime``, JSON columns parsed). ``tests/test_case_rows.py`` holds the column
lists to the models and every value, page, count and JSON shape to the ORM's on both databases.

The SQL is fixed: filters are bound values, column names come from the lists below. Nothing here
writes: an SQLite file that does not exist is an error (never created), and a database without this
version's schema is told to run ``recovery db upgrade`` (:class:`ReadFailed`).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from recovery.errors import NotFound
from recovery.plain_values import canonical_decimal, jsonable

#: the ``cases`` columns, in the table's order (``recovery.models.Case``)
CASE_COLUMNS = (
    "id", "reference", "user_id", "origin", "network", "deposit_network", "asset", "tx_hash", "deposit_address",
    "memo", "claimed_amount", "status", "category", "recoverable", "resolution", "flags", "decision",
    "category_override", "amount", "value_usd", "fee_amount", "fee_asset", "fee_usd", "net_amount",
    "credited_user_id", "refund_network", "refund_address", "refund_tx_hash", "assignee", "created_at",
    "updated_at", "sla_due_at", "first_decided_at", "resolved_at", "last_checked_at", "check_count", "version",
    "approval_requested_at", "payout_override", "lease_owner", "lease_expires_at",
)
#: the ``case_events`` columns, in the table's order (``recovery.models.CaseEvent``)
EVENT_COLUMNS = ("id", "case_id", "actor", "actor_role", "action", "from_status", "to_status", "details",
                 "created_at", "prev_hash", "hash", "key_id")
#: columns of :class:`recovery.dbtypes.ExactDecimal` (text on SQLite, NUMERIC on PostgreSQL)
MONEY_COLUMNS = frozenset({"claimed_amount", "amount", "value_usd", "fee_amount", "fee_usd", "net_amount"})
#: columns of :class:`recovery.dbtypes.UTCDateTime` (naive UTC text on SQLite, timestamptz on PostgreSQL)
TIME_COLUMNS = frozenset({"created_at", "updated_at", "sla_due_at", "first_decided_at", "resolved_at",
                          "last_checked_at", "approval_requested_at", "lease_expires_at"})
#: JSON columns (text on SQLite, json on PostgreSQL)
JSON_COLUMNS = frozenset({"flags", "decision", "payout_override", "details"})

#: the columns a listing filters on, by equality
FILTER_FIELDS = ("status", "category", "network", "user_id", "assignee", "origin")


class ReadFailed(Exception):
    """The database could not be read: not there, not reachable, or not at this version's schema."""


class Row(dict[str, Any]):
    """A row: its decoded values by column name, also readable as attributes (``row.status``)."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(name) from None


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
    """A case's row with its events' rows, oldest first."""

    case: Row
    events: list[Row] = field(default_factory=list)


def _time(value: Any) -> datetime | None:
    if value is None:
        return None
    if isinstance(value, str):  # SQLite: ISO text, naive UTC
        value = datetime.fromisoformat(value)
    if not isinstance(value, datetime):
        raise ReadFailed(f"a time column holds {type(value).__name__}, not a time")
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _money(value: Any) -> Decimal | None:
    return None if value is None else canonical_decimal(Decimal(str(value)))


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str | bytes) else value  # psycopg parses json itself


def _decoders(columns: Sequence[str]) -> list[Callable[[Any], Any] | None]:
    return [_money if c in MONEY_COLUMNS else _time if c in TIME_COLUMNS else _json if c in JSON_COLUMNS else None
            for c in columns]


_CASE_DECODERS = _decoders(CASE_COLUMNS)
_EVENT_DECODERS = _decoders(EVENT_COLUMNS)


class CaseReader:
    """One open read connection (:func:`read_connection`) and its driver's parameter marker."""

    def __init__(self, connection: Any, marker: str, errors: tuple[type[Exception], ...],
                 schema_errors: tuple[type[Exception], ...]) -> None:
        self.connection = connection
        self.marker = marker
        self._errors = errors
        self._schema_errors = schema_errors

    def rows(self, sql: str, values: Sequence[Any]) -> list[tuple[Any, ...]]:
        """The rows of ``sql``, whose ``?`` are bound to ``values``; :class:`ReadFailed` on any error."""
        cursor = self.connection.cursor()
        try:
            cursor.execute(sql.replace("?", self.marker), tuple(values))
            return list(cursor.fetchall())
        except self._schema_errors as exc:
            raise ReadFailed(f"the database schema is not this version's ({str(exc).strip()}): "
                             "run `recovery db upgrade`") from None
        except self._errors as exc:
            raise ReadFailed(f"cannot read the database: {str(exc).strip()}") from None
        finally:
            cursor.close()


def _sqlite_path(url: str) -> str:
    scheme, _, rest = url.partition(":///")
    if scheme not in ("sqlite", "sqlite+pysqlite") or not rest or "?" in rest:
        raise ReadFailed(f"RECOVERY_DATABASE_URL: {url!r} is not an sqlite:///PATH URL the read commands open")
    return rest


@contextmanager
def read_connection(url: str) -> Iterator[CaseReader]:
    """A read connection to the database at ``url`` (``sqlite:///PATH`` or ``postgresql+psycopg://...``),
    closed on exit; :class:`ReadFailed` when it cannot be opened."""
    if url.startswith("sqlite"):
        import sqlite3
        from pathlib import Path
        from urllib.parse import quote

        path = Path(_sqlite_path(url))
        try:  # mode=rw: an existing file only (a missing one is not created); one snapshot for every read
            connection: Any = sqlite3.connect(f"file:{quote(str(path))}?mode=rw", uri=True, timeout=30,
                                              isolation_level=None)
            connection.execute("BEGIN")
        except sqlite3.Error as exc:
            raise ReadFailed(f"cannot open the SQLite database {str(path)!r}: {exc}") from None
        reader = CaseReader(connection, "?", (sqlite3.Error,), (sqlite3.OperationalError,))
    else:
        import psycopg

        conninfo = "postgresql://" + url.partition("://")[2]  # libpq reads the URL without the driver name
        try:
            connection = psycopg.connect(conninfo)  # one transaction, rolled back on close
        except psycopg.Error as exc:
            raise ReadFailed(f"cannot reach the database: {str(exc).strip()}") from None
        schema_errors = (psycopg.errors.UndefinedTable, psycopg.errors.UndefinedColumn)
        reader = CaseReader(connection, "%s", (psycopg.Error,), schema_errors)
    try:
        yield reader
    finally:
        connection.close()


def _decoded(values: Sequence[Any], columns: Sequence[str], decoders: Sequence[Callable[[Any], Any] | None]) -> Row:
    return Row((column, value if decode is None else decode(value))
               for column, value, decode in zip(columns, values, decoders, strict=True))


def _where(filters: CaseFilter) -> tuple[str, list[Any]]:
    names = [name for name in FILTER_FIELDS if getattr(filters, name) is not None]
    clause = " WHERE " + " AND ".join(f"{name} = ?" for name in names) if names else ""
    return clause, [getattr(filters, name) for name in names]


_SELECT_CASES = f"SELECT {', '.join(CASE_COLUMNS)} FROM cases"  # noqa: S608  (fixed column names)
_SELECT_EVENTS = f"SELECT {', '.join(EVENT_COLUMNS)} FROM case_events"  # noqa: S608


def case_rows(reader: CaseReader, filters: CaseFilter = CaseFilter(), *, limit: int = 100,
              offset: int = 0) -> list[Row]:
    """The cases matching ``filters``, oldest first, ``limit`` of them from ``offset``."""
    where, values = _where(filters)
    rows = reader.rows(f"{_SELECT_CASES}{where} ORDER BY id LIMIT ? OFFSET ?", [*values, limit, offset])
    return [_decoded(row, CASE_COLUMNS, _CASE_DECODERS) for row in rows]


def count_case_rows(reader: CaseReader, filters: CaseFilter = CaseFilter()) -> int:
    """How many cases match ``filters``."""
    where, values = _where(filters)
    return int(reader.rows(f"SELECT count(*) FROM cases{where}", values)[0][0])  # noqa: S608


def read_case_rows(reader: CaseReader, reference: str) -> CaseRows:
    """The case ``reference`` with its events, oldest first; :class:`NotFound` when there is none."""
    found = reader.rows(f"{_SELECT_CASES} WHERE reference = ?", [reference])
    if not found:
        raise NotFound(f"no case {reference}")
    case = _decoded(found[0], CASE_COLUMNS, _CASE_DECODERS)
    events = reader.rows(f"{_SELECT_EVENTS} WHERE case_id = ? ORDER BY id", [case.id])
    return CaseRows(case=case, events=[_decoded(e, EVENT_COLUMNS, _EVENT_DECODERS) for e in events])


#: the keys of a case's JSON, in order (:func:`recovery.views.case_json` writes the same)
CASE_KEYS = (
    "reference", "user_id", "origin", "network", "deposit_network", "asset", "tx_hash", "deposit_address", "memo",
    "claimed_amount", "status", "category", "recoverable", "resolution", "flags", "amount", "value_usd",
    "fee_amount", "fee_asset", "fee_usd", "net_amount", "credited_user_id", "refund_network", "refund_address",
    "refund_tx_hash", "assignee", "decision", "version", "created_at", "updated_at", "sla_due_at",
)
#: the keys of an event's JSON, in order (:func:`recovery.views.event_json` writes the same)
EVENT_KEYS = ("id", "actor", "actor_role", "action", "from_status", "to_status", "details", "created_at", "hash")


def case_json(row: Row) -> dict[str, Any]:
    """A case row as :func:`recovery.views.case_json` writes the case."""
    result: dict[str, Any] = {key: jsonable(row[key]) for key in CASE_KEYS}
    result["flags"] = jsonable(list(row["flags"]))
    return result


def event_json(row: Row) -> dict[str, Any]:
    """An event row as :func:`recovery.views.event_json` writes the event."""
    return {key: jsonable(row[key]) for key in EVENT_KEYS}
