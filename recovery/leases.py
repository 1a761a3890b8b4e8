"""Case leases: several re-check (or scan) runners share the work without handling a case twice.

PostgreSQL: each runner claims batches with ``SELECT … FOR UPDATE SKIP LOCKED`` and marks them
leased (owner + expiry) in the same transaction. While alive, a runner holds a session-level
advisory lock named after its owner id; a lease whose owner's advisory lock is free belongs to a
dead runner (killed, even by SIGKILL) and is taken over at once instead of waiting for the expiry.

SQLite: one runner at a time. The runner holds an exclusive ``flock`` on a file beside the
database (released by the kernel when the process dies); a second runner is refused with a
clear message, and the single live runner may take over any lease left behind.

Leases are bookkeeping: they never change a case's version, status or audit trail.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import socket
import time
import uuid
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from pathlib import Path
from threading import Lock
from typing import IO, Any

from sqlalchemy import Connection, false, text
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, or_, select, update

from recovery.db import Database
from recovery.models import Case

#: how often a claim asks again which other runners died (their leases are then taken over)
DEAD_CHECK_SECONDS = 2.0


class RunnerBusy(RuntimeError):
    """Another runner already works on this (SQLite) database."""


def new_owner(kind: str) -> str:
    return f"{kind}:{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


def owner_key(owner: str) -> int:
    """A signed 64-bit advisory-lock key for an owner id."""
    return int.from_bytes(hashlib.blake2b(owner.encode(), digest_size=8).digest(), "big", signed=True)


def sqlite_path(db: Database) -> Path:
    database = db.engine.url.database
    if not database or database == ":memory:":
        raise RuntimeError("leases on SQLite need a database file")
    return Path(database)


class Leases:
    """Claim, hold and release cases for one runner (``owner``). Use as a context manager.

    ``claim`` walks the eligible cases in id order with a cursor, so within one run a runner
    never takes the same case twice, and cases leased by a live runner are left to it.
    """

    def __init__(self, db: Database, owner: str, *, lease_seconds: float, clock: Callable[[], datetime],
                 what: str = "recheck") -> None:
        self.db = db
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.what = what
        self._cursor = 0
        self._cursor_lock = Lock()
        self._lock_file: IO[str] | None = None
        self._pg: Connection | None = None
        self._dead_lock = Lock()
        self._dead: list[str] = []
        self._dead_checked_at = float("-inf")

    # ------------------------------------------------------------------ liveness

    def __enter__(self) -> Leases:
        if self.db.is_sqlite:
            path = sqlite_path(self.db).with_suffix(f".{self.what}.lock")
            handle = path.open("a+")
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                handle.seek(0)
                holder = handle.read().strip() or "another process"
                handle.close()
                raise RunnerBusy(
                    f"another {self.what} is already running on this SQLite database ({holder}); SQLite allows "
                    f"one at a time: wait for it, or use PostgreSQL to run several workers"
                ) from None
            handle.seek(0)
            handle.truncate()
            handle.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
            handle.flush()
            self._lock_file = handle
        else:
            self._pg = self.db.engine.connect()
            self._pg.execute(text("SELECT pg_advisory_lock(:k)"), {"k": owner_key(self.owner)})
            self._pg.commit()
        self._sweep()
        return self

    def _sweep(self) -> None:
        """Clear what dead runners left behind (a killed runner's in-flight batch keeps its lease):
        eligible cases would be taken over anyway, the others would carry a stale name forever."""
        dead = self._dead_owners()
        if dead:
            with self.db.write() as session:
                session.exec(
                    update(Case).where(col(Case.lease_owner).in_(dead)).values(lease_owner=None, lease_expires_at=None)
                )

    def __exit__(self, *_: object) -> None:
        try:
            self.release_all()
        finally:
            if self._lock_file is not None:
                fcntl.flock(self._lock_file, fcntl.LOCK_UN)
                self._lock_file.close()
                self._lock_file = None
            if self._pg is not None:
                self._pg.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": owner_key(self.owner)})
                self._pg.commit()
                self._pg.close()
                self._pg = None

    def _recently_dead(self, now: datetime) -> list[str]:
        """:meth:`_dead_owners`, asked at most every ``DEAD_CHECK_SECONDS`` (the lease columns are not
        indexed, so the question scans the cases; the leases of a runner that died before this one
        started were already cleared by :meth:`_sweep`)."""
        with self._dead_lock:
            if time.monotonic() >= self._dead_checked_at + DEAD_CHECK_SECONDS:
                self._dead = self._dead_owners(now)
                self._dead_checked_at = time.monotonic()
            return list(self._dead)

    def _dead_owners(self, now: datetime | None = None) -> list[str]:
        """Owners of unexpired leases (with ``now``; of any lease without) whose runner is gone."""
        with self.db.read() as session:
            query = select(Case.lease_owner).where(
                col(Case.lease_owner).is_not(None), col(Case.lease_owner) != self.owner
            )
            if now is not None:
                query = query.where(col(Case.lease_expires_at) >= now)
            owners = session.exec(query.distinct()).all()
        if self.db.is_sqlite:
            return [o for o in owners if o]  # we hold the only runner lock: every other owner is dead
        assert self._pg is not None
        dead = []
        for owner in owners:
            if not owner:
                continue
            key = owner_key(owner)
            got = self._pg.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar()
            if got:
                self._pg.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                dead.append(owner)
            self._pg.commit()
        return dead

    # ------------------------------------------------------------------ work

    def claim(self, eligible: ColumnElement[bool], limit: int, *, releasing: Sequence[int] = ()) -> list[int]:
        """Lease up to ``limit`` eligible cases after the cursor; returns their ids (ascending).

        ``releasing``: the caller's finished batch, released in the same transaction (one write
        fewer per batch).
        """
        now = self.clock()
        dead = self._recently_dead(now)
        free = or_(col(Case.lease_expires_at).is_(None), col(Case.lease_expires_at) < now,
                   col(Case.lease_owner) == self.owner, col(Case.lease_owner).in_(dead) if dead else false())
        with self._cursor_lock:
            after = self._cursor
            with self.db.write() as session:
                if releasing:
                    self._release(session, releasing)
                query: Any = (
                    select(Case.id).where(eligible, free, col(Case.id) > after).order_by(col(Case.id)).limit(limit)
                )
                if self.db.is_postgresql:
                    query = query.with_for_update(skip_locked=True, of=Case)
                ids = [int(i) for i in session.exec(query).all()]
                if ids:
                    session.exec(
                        update(Case).where(col(Case.id).in_(ids)).values(
                            lease_owner=self.owner, lease_expires_at=now + self.lease
                        )
                    )
            if ids:
                self._cursor = max(ids)
        return ids

    def release(self, ids: Sequence[int]) -> None:
        if not ids:
            return
        with self.db.write() as session:
            self._release(session, ids)

    def _release(self, session: Session, ids: Sequence[int]) -> None:
        session.exec(
            update(Case).where(col(Case.id).in_(list(ids)), col(Case.lease_owner) == self.owner).values(
                lease_owner=None, lease_expires_at=None
            )
        )

    def release_all(self) -> None:
        with self.db.write() as session:
            session.exec(
                update(Case).where(col(Case.lease_owner) == self.owner).values(lease_owner=None, lease_expires_at=None)
            )
