"""Delivering the webhook outbox (``recovery webhooks deliver``) and reading its state (``status``).

Each row of ``webhook_outbox`` (queued in the transaction of the change, :mod:`recovery.webhook_outbox`)
is POSTed to its URL with its stored body, byte for byte, and the header
``Recovery-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>.<body>">`` keyed with
``RECOVERY_WEBHOOK_SECRET`` (signed afresh at each attempt), plus ``Recovery-Event-Id``.

- **Delivered** on a 2xx. Anything else (another status, a timeout, a refused connection, a
  redirect to another host) is retried with exponential backoff (30 s, 1 min, 2 min, ... at most
  1 h apart) until 24 hours after the event, then the row is ``dead`` (``webhooks status``).
  Redirects are never followed to another scheme, host or port; a 307/308 to the same origin is.
- **In order per case and URL**: only the lowest pending row of a (case, URL) is ever claimed, so
  a later event of a case waits until the earlier one is delivered or dead.
- **At least once**: a row is marked delivered only after its 2xx; a worker that dies between the
  two leaves it pending under a lease that expires (``lease_seconds``), and it is sent again with
  the same event id and body.
- **Several workers**: a worker claims a batch in a short transaction (``FOR UPDATE SKIP LOCKED``
  on PostgreSQL; SQLite's single writer serializes claims) and leases it (owner, expiry); it sends
  outside any transaction and records the outcomes in a second one. No row is sent by two live
  workers at once: a worker stops sending a batch whose lease would run out before the next
  request's timeout, and gives the rest back.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import socket
import threading
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any
from urllib.parse import urljoin, urlsplit

from sqlalchemy import and_, bindparam, case, exists, func, literal_column, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.sql.elements import ColumnElement

from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.models import WebhookOutbox

if TYPE_CHECKING:
    import requests

SIGNATURE_HEADER = "Recovery-Signature"
EVENT_ID_HEADER = "Recovery-Event-Id"
USER_AGENT = "deposit-recovery-webhooks/1"
#: how far a receiver should accept a signature's time from its own clock
DEFAULT_TOLERANCE_SECONDS = 300
#: same-origin 307/308 redirects followed for one attempt
MAX_REDIRECTS = 3
#: the most of a response body read (and thrown away) before the connection is reused
MAX_RESPONSE_BYTES = 64 * 1024

PENDING, DELIVERED, DEAD = "pending", "delivered", "dead"
#: how long the worker waits before it tries a database that could not be reached again
DATABASE_RETRY_SECONDS = 5.0

_OUTBOX = WebhookOutbox.__table__  # type: ignore[attr-defined]
_PENDING_LITERAL: ColumnElement[str] = literal_column("'pending'")

Clock = Callable[[], datetime]


# ------------------------------------------------------------------------------------ signatures


def _key(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def signature(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``Recovery-Signature`` header value of ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(_key(secret), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={mac}"


def verify_signature(secret: str | bytes, header: str, body: bytes, *, now: int,
                     tolerance: int = DEFAULT_TOLERANCE_SECONDS) -> bool:
    """What a receiver checks: the header's ``t`` is within ``tolerance`` seconds of ``now`` and one
    of its ``v1`` values is the HMAC-SHA256 of ``"<t>.<raw body>"`` (compared in constant time)."""
    timestamp: int | None = None
    macs: list[str] = []
    for part in header.split(","):
        name, _, value = part.strip().partition("=")
        if name == "t" and value.isdigit():
            timestamp = int(value)
        elif name == "v1":
            macs.append(value)
    if timestamp is None or not macs or abs(now - timestamp) > tolerance:
        return False
    expected = signature(secret, body, timestamp).rsplit("v1=", 1)[1]
    return any(hmac.compare_digest(expected, mac) for mac in macs)


# ---------------------------------------------------------------------------------------- retries


@dataclass(frozen=True)
class RetryPolicy:
    """Exponential backoff after each failed attempt, for ``give_up_after`` from the event."""

    first_delay: timedelta = timedelta(seconds=30)
    max_delay: timedelta = timedelta(hours=1)
    give_up_after: timedelta = timedelta(hours=24)

    def next_attempt(self, created_at: datetime, failed_attempts: int, now: datetime) -> datetime | None:
        """When to try again after ``failed_attempts`` failures; None: give up (the row is dead). The
        last attempt is made at ``give_up_after`` itself."""
        deadline = created_at + self.give_up_after
        if now >= deadline:
            return None
        delay = min(self.first_delay * (1 << min(max(failed_attempts - 1, 0), 20)), self.max_delay)
        return min(now + delay, deadline)


# ---------------------------------------------------------------------------------------- sending


@dataclass(frozen=True)
class Attempt:
    """One POST's outcome: ``status`` (None: no answer), ``error`` (None: a 2xx), ``unreachable``
    (no HTTP answer at all: the other rows of that URL in the batch are not tried now)."""

    status: int | None
    error: str | None
    unreachable: bool = False

    @property
    def delivered(self) -> bool:
        return self.error is None


def _origin(url: str) -> tuple[str, str, int | None]:
    parts = urlsplit(url)
    port = parts.port or {"http": 80, "https": 443}.get(parts.scheme)
    return parts.scheme, (parts.hostname or "").lower(), port


def post(http: requests.Session, url: str, body: bytes, headers: Mapping[str, str], timeout: float) -> Attempt:
    """POST ``body`` to ``url``; a 307/308 to the same origin is followed (at most 3), any other
    redirect is a failure (never followed to another host)."""
    import requests

    target = url
    for _hop in range(MAX_REDIRECTS + 1):
        try:
            response = http.post(target, data=body, headers=dict(headers), timeout=(timeout, timeout),
                                 allow_redirects=False, stream=True)
        except requests.Timeout:
            return Attempt(None, f"timed out after {timeout:g} s", unreachable=True)
        except requests.ConnectionError as exc:
            return Attempt(None, f"connection failed: {_short(exc)}", unreachable=True)
        except requests.RequestException as exc:
            return Attempt(None, f"request failed: {_short(exc)}", unreachable=True)
        try:
            status = response.status_code
            location = response.headers.get("Location")
            with contextlib.suppress(Exception):  # the answer's body is not used
                response.raw.read(MAX_RESPONSE_BYTES, decode_content=False)
        finally:
            response.close()
        if 200 <= status < 300:
            return Attempt(status, None)
        if status in (307, 308) and location:
            following = urljoin(target, location)
            if _origin(following) != _origin(url):
                return Attempt(status, f"HTTP {status}: redirect to {_origin(following)[1] or following!r} "
                                       "not followed (another origin)")
            target = following
            continue
        if 300 <= status < 400:
            return Attempt(status, f"HTTP {status}: redirect not followed")
        return Attempt(status, f"HTTP {status}")
    return Attempt(None, f"more than {MAX_REDIRECTS} redirects")


def _short(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    return text[:300]


def new_session() -> requests.Session:
    """An HTTP session for one worker: kept-alive connections, no credentials or proxies taken from
    the environment (``.netrc``), no redirects (see :func:`post`)."""
    import requests

    http = requests.Session()
    http.trust_env = False
    http.headers["User-Agent"] = USER_AGENT
    return http


# ---------------------------------------------------------------------------------------- the worker


@dataclass(frozen=True)
class Claimed:
    """A leased outbox row, as the worker sends it."""

    id: int
    event_id: str
    url: str
    body: str
    created_at: datetime
    attempts: int


@dataclass
class DeliveryReport:
    delivered: int = 0
    failed: int = 0
    dead: int = 0
    postponed: int = 0
    batches: int = 0
    errors: dict[str, str] = field(default_factory=dict)

    @property
    def attempted(self) -> int:
        return self.delivered + self.failed + self.dead

    def add(self, other: DeliveryReport) -> None:
        self.delivered += other.delivered
        self.failed += other.failed
        self.dead += other.dead
        self.postponed += other.postponed
        self.batches += other.batches
        self.errors.update(other.errors)

    def as_json(self) -> dict[str, Any]:
        return {"delivered": self.delivered, "failed": self.failed, "dead": self.dead, "postponed": self.postponed,
                "batches": self.batches, "errors": dict(self.errors)}


def new_owner() -> str:
    return f"webhooks:{socket.gethostname()[:24]}:{os.getpid()}:{uuid.uuid4().hex[:12]}"


class Deliverer:
    """One webhook worker: claims due rows, sends them, records the outcomes."""

    def __init__(
        self,
        db: Database,
        *,
        urls: Sequence[str],
        secret: str | bytes,
        clock: Clock = utcnow,
        timeout: float = 10.0,
        batch_size: int = 50,
        lease_seconds: float = 120.0,
        policy: RetryPolicy | None = None,
        http: requests.Session | None = None,
        owner: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        if lease_seconds < 2 * timeout:
            raise ValueError(f"lease_seconds ({lease_seconds:g}) must be at least twice the timeout ({timeout:g})")
        self.db = db
        self.urls = tuple(urls)
        self.secret = _key(secret)
        self.clock = clock
        self.timeout = timeout
        self.batch_size = batch_size
        self.lease = timedelta(seconds=lease_seconds)
        self.policy = policy or RetryPolicy()
        self.http = http or new_session()
        self.owner = owner or new_owner()
        #: when the lease of the batch in hand runs out (set by :meth:`claim`)
        self._leased_until: datetime | None = None

    # -------------------------------------------------------------- claim, send, mark
    def claim(self) -> list[Claimed]:
        """Lease up to ``batch_size`` due rows, each the first pending row of its (case, URL)."""
        if not self.urls:
            return []
        now = self.clock()
        row, earlier = _OUTBOX.alias("o"), _OUTBOX.alias("p")
        query = (
            core_select(row.c.id, row.c.event_id, row.c.url, row.c.body, row.c.created_at, row.c.attempts)
            .where(
                row.c.state == _PENDING_LITERAL,  # as the partial index says it (SQLite then uses it)
                row.c.next_attempt_at <= now,
                row.c.url.in_(self.urls),
                or_(row.c.leased_until.is_(None), row.c.leased_until <= now),
                ~exists().where(and_(earlier.c.case_id == row.c.case_id, earlier.c.url == row.c.url,
                                     earlier.c.state == _PENDING_LITERAL, earlier.c.id < row.c.id)),
            )
            .order_by(row.c.id)
            .limit(self.batch_size)
        )
        if self.db.is_postgresql:
            query = query.with_for_update(skip_locked=True, of=row)
        with self.db.write() as session:
            connection = session.connection()
            rows = [Claimed(*r) for r in connection.execute(query)]
            if rows:
                connection.execute(
                    update(_OUTBOX).where(_OUTBOX.c.id.in_([r.id for r in rows]))
                    .values(leased_by=self.owner, leased_until=now + self.lease)
                )
        self._leased_until = now + self.lease
        return rows

    def send(self, rows: Sequence[Claimed]) -> list[tuple[Claimed, Attempt | None]]:
        """POST each row (in id order); None for a row not tried (its URL did not answer earlier in
        this batch, or the lease would run out)."""
        results: list[tuple[Claimed, Attempt | None]] = []
        down: set[str] = set()
        leased_until = self._leased_until or self.clock() + self.lease
        margin = timedelta(seconds=self.timeout * 2)
        for row in rows:
            if row.url in down or self.clock() + margin > leased_until:
                results.append((row, None))
                continue
            body = row.body.encode()
            moment = int(self.clock().timestamp())
            headers = {"Content-Type": "application/json", SIGNATURE_HEADER: signature(self.secret, body, moment),
                       EVENT_ID_HEADER: row.event_id}
            attempt = post(self.http, row.url, body, headers, self.timeout)
            if attempt.unreachable:
                down.add(row.url)
            results.append((row, attempt))
        return results

    def mark(self, results: Sequence[tuple[Claimed, Attempt | None]]) -> DeliveryReport:
        """Record the outcomes in one transaction, on the rows this worker still leases. A delivered
        row keeps the error of its last failed attempt (``webhooks status`` shows it with its time)."""
        report = DeliveryReport(batches=1)
        now = self.clock()
        delivered: list[dict[str, Any]] = []
        failed: list[dict[str, Any]] = []
        untried: list[dict[str, Any]] = []
        for row, attempt in results:
            if attempt is None:  # not tried: back in the queue, its URL looked at again a little later
                untried.append({"row_id": row.id, "next_attempt_at": now + self.policy.first_delay})
                report.postponed += 1
            elif attempt.delivered:
                delivered.append({"row_id": row.id, "attempts": row.attempts + 1, "last_status": attempt.status})
                report.delivered += 1
            else:
                later = self.policy.next_attempt(row.created_at, row.attempts + 1, now)
                failed.append({"row_id": row.id, "state": PENDING if later is not None else DEAD,
                               "attempts": row.attempts + 1, "next_attempt_at": later or now,
                               "last_status": attempt.status, "last_error": (attempt.error or "")[:500]})
                if later is None:
                    report.dead += 1
                else:
                    report.failed += 1
                report.errors[row.url] = attempt.error or ""
        mine = and_(_OUTBOX.c.id == bindparam("row_id"), _OUTBOX.c.leased_by == self.owner)
        released = {"leased_by": None, "leased_until": None}
        with self.db.write() as session:
            connection = session.connection()
            if delivered:
                connection.execute(update(_OUTBOX).where(mine).values(
                    state=DELIVERED, attempts=bindparam("attempts"), last_status=bindparam("last_status"),
                    last_attempt_at=now, delivered_at=now, **released), delivered)
            if failed:
                connection.execute(update(_OUTBOX).where(mine).values(
                    state=bindparam("state"), attempts=bindparam("attempts"),
                    next_attempt_at=bindparam("next_attempt_at"), last_status=bindparam("last_status"),
                    last_error=bindparam("last_error"), last_attempt_at=now, **released), failed)
            if untried:
                connection.execute(update(_OUTBOX).where(mine).values(
                    next_attempt_at=bindparam("next_attempt_at"), **released), untried)
        return report

    def deliver_batch(self) -> DeliveryReport | None:
        """Claim, send and record one batch; None when nothing was due."""
        rows = self.claim()
        if not rows:
            return None
        return self.mark(self.send(rows))

    def deliver_due(self, *, stop: threading.Event | None = None, max_batches: int | None = None) -> DeliveryReport:
        """Deliver batches until nothing is due (``--once``), or ``stop`` is set between batches."""
        total = DeliveryReport()
        while (stop is None or not stop.is_set()) and (max_batches is None or total.batches < max_batches):
            report = self.deliver_batch()
            if report is None:
                break
            total.add(report)
            if report.delivered == 0 and report.failed == 0 and report.dead == 0:
                break  # everything claimed was postponed: come back later
        return total

    def run(self, stop: threading.Event, *, poll_seconds: float = 1.0,
            on_report: Callable[[DeliveryReport], None] | None = None,
            on_error: Callable[[Exception], None] | None = None) -> DeliveryReport:
        """The long-running worker: deliver what is due, wait ``poll_seconds`` when idle, until
        ``stop``. A database that cannot be reached is tried again every few seconds (a batch in hand
        stays leased and goes out again once its lease runs out)."""
        total = DeliveryReport()
        while not stop.is_set():
            try:
                report = self.deliver_due(stop=stop)
            except (OperationalError, InterfaceError) as exc:
                if on_error is not None:
                    on_error(exc)
                stop.wait(max(poll_seconds, DATABASE_RETRY_SECONDS))
                continue
            total.add(report)
            if report.batches and on_report is not None:
                on_report(report)
            if report.attempted == 0:
                stop.wait(poll_seconds)
        return total

    def close(self) -> None:
        self.http.close()


# ---------------------------------------------------------------------------------------- status


def status(db: Database, *, now: datetime | None = None, urls: Sequence[str] = ()) -> dict[str, Any]:
    """The backlog and the failures: counts by state (pending split into due, waiting and in
    flight), the oldest pending event's age, and per URL its counts, last delivery and last error."""
    now = now or utcnow()
    table = _OUTBOX
    backlog = {"due": 0, "waiting": 0, "in_flight": 0, "delivered": 0, "dead": 0}
    per_url: dict[str, dict[str, Any]] = {}

    def entry(url: str) -> dict[str, Any]:
        return per_url.setdefault(url, {
            "url": url, "configured": url in urls, "pending": 0, "delivered": 0, "dead": 0,
            "oldest_pending_at": None, "last_delivered_at": None, "last_error": None, "last_error_at": None,
            "last_status": None,
        })

    for url in urls:
        entry(url)
    leased = and_(table.c.leased_until.is_not(None), table.c.leased_until > now)
    due = and_(table.c.next_attempt_at <= now, ~leased)
    with db.read() as session:
        connection = session.connection()
        grouped = connection.execute(
            core_select(
                table.c.url, table.c.state, func.count(),
                func.sum(case((and_(table.c.state == PENDING, leased), 1), else_=0)),
                func.sum(case((and_(table.c.state == PENDING, due), 1), else_=0)),
                func.min(table.c.created_at), func.max(table.c.delivered_at),
            ).group_by(table.c.url, table.c.state)
        ).all()
        oldest: datetime | None = None
        for url, state, count, in_flight, due_count, first, last_delivered in grouped:
            item = entry(url)
            count = int(count)
            if state == PENDING:
                in_flight, due_count = int(in_flight or 0), int(due_count or 0)
                backlog["in_flight"] += in_flight
                backlog["due"] += due_count
                backlog["waiting"] += count - in_flight - due_count
                item["pending"] += count
                item["oldest_pending_at"] = _iso(first)
                oldest = first if oldest is None or (first is not None and first < oldest) else oldest
            elif state in (DELIVERED, DEAD):
                backlog[state] += count
                item[state] += count
                if state == DELIVERED:
                    item["last_delivered_at"] = _iso(last_delivered)
        for url in list(per_url):
            failed = connection.execute(
                core_select(table.c.last_error, table.c.last_attempt_at, table.c.last_status)
                .where(table.c.url == url, table.c.last_error.is_not(None))
                .order_by(table.c.last_attempt_at.desc(), table.c.id.desc()).limit(1)
            ).first()
            if failed is not None:
                per_url[url].update(last_error=failed[0], last_error_at=_iso(failed[1]), last_status=failed[2])
    return {
        "backlog": backlog,
        "oldest_pending_at": _iso(oldest),
        "oldest_pending_seconds": round((now - oldest).total_seconds(), 1) if oldest is not None else None,
        "urls": sorted(per_url.values(), key=lambda item: (not item["configured"], item["url"])),
        "at": _iso(now),
    }


def _iso(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None

