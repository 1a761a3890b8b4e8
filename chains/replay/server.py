"""A local HTTP server that answers like a chain's API, from recorded responses, with injectable faults.

One :class:`ReplayServer` serves several chain families side by side: a request to
``/<family>/<rest>`` goes to ``handlers[family].handle(Request(path="/<rest>", ...))``, and the
:class:`Reply` it returns is sent back. Adapters are pointed at it through ``rpc_urls``
(``server.url_for("tron")`` = ``http://127.0.0.1:PORT/tron``), so they speak their real API paths.

Faults (``server.faults``) replace the handler's answer for the next ``count`` requests of a family,
or for a ``rate`` of them (drawn from a seeded generator so a run can be replayed):

- ``"429"`` / ``"503"``: that status with a short JSON body (TronGrid answers 503 when it rate-limits).
- ``"timeout"``: the connection is held without an answer for ``hold_seconds`` (set it above the
  client's read timeout), then closed. Held connections are released at once by :meth:`stop`.
- ``"truncated"``: the handler's real answer, cut in the middle (a proxy that lost the rest).
- ``"garbage"``: 200 with an HTML error page instead of JSON.
- ``"empty"``: 200 with an empty body.
- ``"reset"``: the TCP connection is closed with a reset, no answer at all.

Every request is counted per family in :attr:`ReplayServer.requests` (faulted ones included);
:attr:`ReplayServer.log` keeps ``(family, method, path)`` of each.
"""

from __future__ import annotations

import json
import random
import socket
import struct
import threading
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Final, Protocol
from urllib.parse import parse_qsl, urlsplit

from chains.replay.recorded import SkippedRecording

__all__ = ["FAULT_KINDS", "Faults", "Handler", "ReplayServer", "Reply", "Request"]

FAULT_KINDS: Final[tuple[str, ...]] = ("429", "503", "timeout", "truncated", "garbage", "empty", "reset")


@dataclass(frozen=True, slots=True)
class Request:
    """One request as a handler sees it: ``path`` is the part after ``/<family>`` (starts with "/")."""

    method: str
    path: str
    query: Mapping[str, str] = field(default_factory=dict)
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)
    #: every query parameter in order, repeated names included (``query`` keeps the last of each)
    query_items: tuple[tuple[str, str], ...] = ()

    def json(self) -> Any:
        """The body parsed as JSON (``None`` for an empty body); ValueError when it is not JSON."""
        if not self.body.strip():
            return None
        return json.loads(self.body)


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: bytes = b""
    headers: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def json(cls, obj: Any, status: int = 200) -> Reply:
        """``obj`` serialized as JSON; a ``bytes`` value is sent as is (a recorded body, byte for byte)."""
        body = obj if isinstance(obj, bytes) else json.dumps(obj).encode("utf-8")
        return cls(status, body, {"Content-Type": "application/json"})

    @classmethod
    def text(cls, text: str, status: int = 200, content_type: str = "text/plain") -> Reply:
        return cls(status, text.encode("utf-8"), {"Content-Type": f"{content_type}; charset=utf-8"})


class Handler(Protocol):
    """Answers one chain family's API."""

    def handle(self, request: Request) -> Reply: ...


@dataclass(slots=True)
class _Rule:
    family: str
    kind: str
    count: int | None
    rate: float | None
    path: str | None

    def matches(self, family: str, path: str) -> bool:
        return self.family in ("*", family) and (self.path is None or path.startswith(self.path))


class Faults:
    """Faults to inject, per family. Thread-safe."""

    def __init__(self, seed: int = 1) -> None:
        self._lock = threading.Lock()
        self._rules: list[_Rule] = []
        self._rng = random.Random(seed)
        #: (family, kind) -> how many were injected
        self.injected: Counter[tuple[str, str]] = Counter()

    def inject(
        self,
        family: str,
        kind: str,
        count: int | None = None,
        rate: float | None = None,
        *,
        path: str | None = None,
    ) -> None:
        """Fault the next ``count`` requests (default 1) of ``family`` ("*" = any family), or each
        request with probability ``rate``. ``path`` limits the fault to request paths starting with it."""
        if kind not in FAULT_KINDS:
            raise ValueError(f"unknown fault kind {kind!r}; expected one of {', '.join(FAULT_KINDS)}")
        if count is not None and rate is not None:
            raise ValueError("give count or rate, not both")
        if rate is not None and not 0 < rate <= 1:
            raise ValueError("rate must be in (0, 1]")
        if count is None and rate is None:
            count = 1
        if count is not None and count < 1:
            raise ValueError("count must be at least 1")
        with self._lock:
            self._rules.append(_Rule(family, kind, count, rate, path))

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def pending(self) -> int:
        """How many counted faults are still to be injected."""
        with self._lock:
            return sum(rule.count or 0 for rule in self._rules)

    def take(self, family: str, path: str) -> str | None:
        """The fault for this request, if any (counted faults first, in the order injected)."""
        with self._lock:
            for rule in self._rules:
                if rule.count is not None and rule.matches(family, path):
                    rule.count -= 1
                    if rule.count == 0:
                        self._rules.remove(rule)
                    self.injected[(family, rule.kind)] += 1
                    return rule.kind
            for rule in self._rules:
                if rule.rate is not None and rule.matches(family, path) and self._rng.random() < rule.rate:
                    self.injected[(family, rule.kind)] += 1
                    return rule.kind
        return None


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    replay: ReplayServer

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up, or a connection closed on purpose, is not news."""


class _RequestHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    #: headers and body go out in separate writes: without TCP_NODELAY, Nagle's algorithm and the
    #: client's delayed ACK add ~40 ms to every keep-alive request
    disable_nagle_algorithm = True
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        return

    def do_GET(self) -> None:
        self._serve()

    def do_POST(self) -> None:
        self._serve()

    def _serve(self) -> None:
        replay = self.server.replay
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        parts = split.path.split("/", 2)
        family = parts[1] if len(parts) > 1 else ""
        rest = "/" + (parts[2] if len(parts) > 2 else "")
        replay._count(family, self.command, rest)
        fault = replay.faults.take(family, rest)
        if fault in ("timeout", "reset"):
            if fault == "timeout":
                replay._stopping.wait(replay.hold_seconds)
            self._reset()
            return
        if fault is not None and fault != "truncated":
            self._send(_fault_reply(fault))
            return
        handler = replay.handlers.get(family)
        if handler is None:
            reply = Reply.json({"error": f"no handler for family {family!r}"}, status=404)
        else:
            items = tuple(parse_qsl(split.query, keep_blank_values=True))
            request = Request(
                method=self.command,
                path=rest,
                query=dict(items),
                body=body,
                headers={k: v for k, v in self.headers.items()},
                query_items=items,
            )
            try:
                reply = handler.handle(request)
            except Exception as exc:  # a handler bug must show up as an error, not hang the client
                reply = Reply.json({"error": f"replay handler failed: {type(exc).__name__}: {exc}"}, status=500)
        if fault == "truncated":
            reply = Reply(reply.status, reply.body[: max(1, len(reply.body) // 2)], reply.headers)
        self._send(reply)

    def _send(self, reply: Reply) -> None:
        self.send_response(reply.status)
        for name, value in reply.headers.items():
            if name.lower() != "content-length":
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(reply.body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(reply.body)

    def _reset(self) -> None:
        """Close the connection with a TCP reset (SO_LINGER 0), without an answer."""
        self.close_connection = True
        try:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.connection.close()
        except OSError:
            pass


def _fault_reply(kind: str) -> Reply:
    if kind == "429":
        return Reply.json({"error": "Too Many Requests", "message": "rate limit exceeded"}, status=429)
    if kind == "503":
        return Reply.json({"error": "Service Unavailable"}, status=503)
    if kind == "garbage":
        return Reply.text("<html><body><h1>502 Bad Gateway</h1></body></html>", content_type="text/html")
    if kind == "empty":
        return Reply(200, b"", {"Content-Type": "application/json"})
    raise AssertionError(f"unhandled fault kind {kind}")  # pragma: no cover


class ReplayServer:
    """Serves ``handlers`` (family -> :class:`Handler`) on ``127.0.0.1``; ``port=0`` picks a free port.

    ``hold_seconds``: how long a ``"timeout"`` fault holds the connection (bounded; :meth:`stop`
    releases it at once).
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        *,
        port: int = 0,
        hold_seconds: float = 5.0,
        seed: int = 1,
    ) -> None:
        for family in handlers:
            if not family or "/" in family:
                raise ValueError(f"invalid family name {family!r}")
        self.handlers: dict[str, Handler] = dict(handlers)
        #: recorded files the handlers set aside, with the reason (see ``chains.replay.recorded``)
        self.skipped: list[SkippedRecording] = []
        self.hold_seconds = hold_seconds
        self.faults = Faults(seed)
        #: family -> number of requests received (faulted ones included)
        self.requests: Counter[str] = Counter()
        #: (family, method, path) of every request, in arrival order
        self.log: list[tuple[str, str, str]] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _RequestHandler, bind_and_activate=False)
        self._server.replay = self
        self._port = port
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> ReplayServer:
        if self._thread is not None:
            return self
        self._server.allow_reuse_address = True
        self._server.server_bind()
        self._server.server_activate()
        self._port = int(self._server.server_address[1])
        self._stopping.clear()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="replay-server", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._thread is None:
            return
        self._stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)
        self._thread = None

    def __enter__(self) -> ReplayServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    # ------------------------------------------------------------------ addresses

    @property
    def port(self) -> int:
        if self._thread is None:
            raise RuntimeError("the replay server is not started")
        return self._port

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def url_for(self, family: str) -> str:
        return f"{self.url}/{family}"

    # ------------------------------------------------------------------ bookkeeping

    def _count(self, family: str, method: str, path: str) -> None:
        with self._lock:
            self.requests[family] += 1
            self.log.append((family, method, path))

    def reset_counts(self) -> None:
        with self._lock:
            self.requests.clear()
            self.log.clear()
