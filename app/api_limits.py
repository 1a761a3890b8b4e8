"""Request-size limit (pure ASGI middleware) and the per-user rate limit on appeal creation."""

from __future__ import annotations

import json
import math
import re
import threading
import weakref
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.api_errors import ApiError
from recovery.db import Database
from recovery.public import appeals_created_since

#: (path pattern, limit) pairs: a larger body limit for one endpoint only (the ownership evidence upload)
BodyOverrides = Sequence[tuple[re.Pattern[str], int]]


class BodyLimitMiddleware:
    """Refuses request bodies over ``max_bytes`` with 413 before the application reads them.

    A declared ``Content-Length`` is checked up front; a chunked body is read (at most
    ``max_bytes`` + 1 bytes) and handed on only if it fits.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, overrides: BodyOverrides = ()) -> None:
        self.app = app
        self.default_bytes = max_bytes
        self.overrides = tuple(overrides)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = str(scope.get("path", ""))
        limit = next((size for pattern, size in self.overrides if pattern.fullmatch(path)), self.default_bytes)
        await self._limited(scope, receive, send, limit)

    async def _limited(self, scope: Scope, receive: Receive, send: Send, max_bytes: int) -> None:
        declared: bytes | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                declared = value
            elif name == b"transfer-encoding" and b"chunked" in value.lower():
                chunked = True
        if declared is not None:
            try:
                length = int(declared)
            except ValueError:
                await _reply(send, 400, "bad_request", "invalid Content-Length header")
                return
            if length > max_bytes:
                await _reply(send, 413, "payload_too_large", f"the request body is larger than {max_bytes} bytes")
                return
            await self.app(scope, receive, send)
            return
        if not chunked:
            await self.app(scope, receive, send)
            return
        body = bytearray()
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            body += message.get("body", b"")
            if len(body) > max_bytes:
                await _reply(send, 413, "payload_too_large", f"the request body is larger than {max_bytes} bytes")
                return
            if not message.get("more_body", False):
                break
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": bytes(body), "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


async def _reply(send: Send, status: int, code: str, message: str) -> None:
    payload = json.dumps({"code": code, "message": message}).encode()
    await send({
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(payload)).encode()),
                    (b"connection", b"close")],
    })
    await send({"type": "http.response.body", "body": payload})


class AppealRateLimit:
    """At most ``limit`` appeals per user in any ``window``, counted from the database.

    Counting the stored appeals (rather than requests in memory) keeps the limit right across
    restarts and several server processes. Within one process the count and the creation run
    under a per-user lock, so concurrent requests of one user cannot slip past the limit; across
    processes a burst may exceed it by the number of processes at most.
    """

    def __init__(self, db: Database, limit: int, window: timedelta, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.limit = limit
        self.window = window
        self.clock = clock
        self._locks: weakref.WeakValueDictionary[str, threading.Lock] = weakref.WeakValueDictionary()
        self._guard = threading.Lock()

    def lock(self, user_id: str) -> threading.Lock:
        with self._guard:
            lock = self._locks.get(user_id)
            if lock is None:
                lock = threading.Lock()
                self._locks[user_id] = lock
            return lock

    def check(self, user_id: str) -> None:
        """Raise ApiError 429 (with Retry-After) when the user has used up the window. Appeals count,
        and so do claims (an appeal that takes over a case the exchange detected)."""
        now = self.clock()
        with self.db.read() as session:
            times = sorted([*appeals_created_since(session, user_id, now - self.window),
                            *_user_event_times(session, user_id, "claim", now - self.window)])
        self._refuse_over(times, now, "appeals")

    def check_evidence(self, user_id: str) -> None:
        """The same limit on ownership evidence attempts (each signature or document given)."""
        now = self.clock()
        with self.db.read() as session:
            times = _user_event_times(session, user_id, "submit_evidence", now - self.window)
        self._refuse_over(times, now, "ownership evidence attempts")

    def check_replies(self, user_id: str) -> None:
        """The same limit on answers to the appeal team's questions (each one taken)."""
        now = self.clock()
        with self.db.read() as session:
            times = _user_event_times(session, user_id, "provide_info", now - self.window)
        self._refuse_over(times, now, "answers")

    def check_feedback(self, user_id: str) -> None:
        """The same limit on ratings of finished cases (each one taken; one per case anyway)."""
        now = self.clock()
        with self.db.read() as session:
            times = _user_event_times(session, user_id, "feedback", now - self.window)
        self._refuse_over(times, now, "ratings")

    def _refuse_over(self, times: list[datetime], now: datetime, what: str) -> None:
        if len(times) < self.limit:
            return
        frees_at = times[len(times) - self.limit] + self.window
        wait = max(1, math.ceil((frees_at - now).total_seconds()))
        raise ApiError(
            429,
            "rate_limited",
            f"at most {self.limit} {what} per {_span(self.window)}; try again in {wait} s",
            headers={"Retry-After": str(wait)},
            retry_after=wait,
        )


def _user_event_times(session: Any, user_id: str, action: str, since: datetime) -> list[datetime]:
    """When the user (as a user, not an operator) did ``action`` on one of their cases after
    ``since``, oldest first. Found through the user's cases (indexed by user) and their events
    (indexed by case), never by scanning the audit trail."""
    from sqlmodel import col, select

    from recovery.models import Case, CaseEvent

    return list(session.exec(
        select(CaseEvent.created_at).join(Case, col(Case.id) == CaseEvent.case_id)
        .where(Case.user_id == user_id, CaseEvent.actor == user_id, CaseEvent.actor_role == "user",
               CaseEvent.action == action, col(CaseEvent.created_at) > since)
        .order_by(col(CaseEvent.created_at))
    ).all())


def _span(window: timedelta) -> str:
    seconds = int(window.total_seconds())
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = seconds // size
            return unit if count == 1 else f"{count} {unit}s"
    return f"{seconds} seconds"
