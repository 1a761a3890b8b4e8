"""Engines and sessions for SQLite (embedded default) and PostgreSQL (production)."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from threading import RLock
from typing import TYPE_CHECKING, Any

import orjson
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import Connection

if TYPE_CHECKING:  # the ORM session is imported when a session is first opened (issue 20: Core reads need none)
    from sqlalchemy.sql.dml import UpdateBase
    from sqlmodel import Session


def json_text(value: Any) -> str:
    """JSON columns as text, by orjson (several times faster than the standard library on decisions
    and evidence); what orjson refuses (integers wider than 64 bits) falls back to ``json.dumps``."""
    try:
        return orjson.dumps(value, option=orjson.OPT_NON_STR_KEYS).decode()
    except TypeError:
        return json.dumps(value)


def execute_rows(session: Session, statement: UpdateBase, rows: Sequence[Mapping[str, Any]]) -> None:
    """Run an INSERT, UPDATE or upsert once per row, in one DB-API ``executemany``.

    Each value goes through its column type's own bind processing (UTC datetimes, JSON, money),
    but not through SQLAlchemy's per-row parameter machinery, which cost some 30 µs a row: most of
    the batch re-check's writes. Every row must have the same keys. A statement that takes a
    parameter the rows do not name (a column default computed in Python) runs the ordinary way.
    """
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    compiled = statement.compile(dialect=dialect, column_keys=names)
    order = list(compiled.positiontup or ()) if compiled.positional else list(compiled.binds)
    if not set(order) <= set(names):
        connection.execute(statement, list(rows))
        return
    processors: list[tuple[str, Callable[[Any], Any] | None]] = [
        (name, compiled.binds[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in order
    ]
    params: list[Any]
    if compiled.positional:
        params = [tuple(row[name] if process is None else process(row[name]) for name, process in processors)
                  for row in rows]
    else:
        params = [{name: row[name] if process is None else process(row[name]) for name, process in processors}
                  for row in rows]
    connection.exec_driver_sql(compiled.string, params)


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    # Let SQLAlchemy emit BEGIN itself so write units can take the lock up front.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _sqlite_begin(conn: Connection) -> None:
    # BEGIN IMMEDIATE for writers: two writers queue on the lock instead of deadlocking on upgrade.
    if conn.get_execution_options().get("sqlite_immediate"):
        conn.exec_driver_sql("BEGIN IMMEDIATE")
    else:
        conn.exec_driver_sql("BEGIN")


@dataclass(frozen=True)
class Database:
    """One database: ``read()`` for queries, ``write()`` for a unit of work that commits.

    On SQLite (one writer at a time) the writers of this process queue on ``write_lock`` before
    ``BEGIN IMMEDIATE``: a writer that meets the file lock sleeps in SQLite's busy handler (1, 2, 5,
    ... 100 ms steps) even when the lock frees a moment later, which under several worker threads
    cost more than the writes. Other processes still queue on the file lock (busy timeout 30 s).
    """

    engine: Engine
    write_engine: Engine
    write_lock: RLock | None = field(default=None, compare=False, repr=False)

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    @property
    def is_postgresql(self) -> bool:
        return self.engine.dialect.name == "postgresql"

    @contextmanager
    def read(self) -> Iterator[Session]:
        from sqlmodel import Session

        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A transaction that commits on success and rolls back on any error."""
        if self.write_lock is None:
            with self._unit() as session:
                yield session
            return
        with self.write_lock, self._unit() as session:
            yield session

    @contextmanager
    def _unit(self) -> Iterator[Session]:
        from sqlmodel import Session

        with Session(self.write_engine, expire_on_commit=False) as session:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise

    def dispose(self) -> None:
        self.engine.dispose()


def connect(url: str, **engine_options: Any) -> Database:
    """Create the engines for a URL (``sqlite:///path`` or ``postgresql+psycopg://...``)."""
    engine_options.setdefault("json_serializer", json_text)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **engine_options)
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
    else:
        engine_options.setdefault("pool_pre_ping", True)
        engine = create_engine(url, **engine_options)
    write_engine = engine.execution_options(sqlite_immediate=True)
    return Database(engine=engine, write_engine=write_engine, write_lock=RLock() if url.startswith("sqlite") else None)
