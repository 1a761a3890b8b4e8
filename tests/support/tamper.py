"""What someone with administrator rights on the database can do that the application cannot:
switch off the append-only guard on audit events (the tests of the audit chain play that insider)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import text

from recovery.db import Database

_SQLITE_GUARDS = (
    "CREATE TRIGGER case_events_no_update BEFORE UPDATE ON case_events "
    "BEGIN SELECT RAISE(ABORT, 'case_events is append-only: UPDATE refused'); END",
    "CREATE TRIGGER case_events_no_delete BEFORE DELETE ON case_events "
    "BEGIN SELECT RAISE(ABORT, 'case_events is append-only: DELETE refused'); END",
)


@contextmanager
def guard_off(db: Database) -> Iterator[None]:
    """The audit events' append-only guard is off inside the block (restored afterwards)."""
    with db.engine.begin() as conn:
        if db.is_postgresql:
            conn.execute(text("ALTER TABLE case_events DISABLE TRIGGER USER"))
        else:
            conn.execute(text("DROP TRIGGER IF EXISTS case_events_no_update"))
            conn.execute(text("DROP TRIGGER IF EXISTS case_events_no_delete"))
    try:
        yield
    finally:
        with db.engine.begin() as conn:
            if db.is_postgresql:
                conn.execute(text("ALTER TABLE case_events ENABLE TRIGGER USER"))
            else:
                for guard in _SQLITE_GUARDS:
                    conn.execute(text(guard))


def as_dba(db: Database, statement: str, **params: object) -> None:
    """Run ``statement`` with the audit events' guard off."""
    with guard_off(db), db.engine.begin() as conn:
        conn.execute(text(statement), params)
