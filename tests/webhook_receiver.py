"""A real local HTTP receiver for the webhook tests: it verifies every signature itself (its own
HMAC code, not the sender's) and records what it got, in order."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    event_id: str
    header_event_id: str
    data: dict[str, Any]
    raw: bytes
    signature: str
    timestamp: int
    verified: bool
    path: str
    worker: str


def check_signature(secret: str, header: str, body: bytes) -> tuple[bool, int]:
    """(whether ``header`` is ``t=<t>,v1=<HMAC-SHA256 of "<t>.<body>">`` keyed with ``secret``, t)."""
    parts = dict(part.split("=", 1) for part in header.split(",") if "=" in part)
    timestamp = int(parts.get("t", "-1")) if parts.get("t", "").isdigit() else -1
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return timestamp >= 0 and hmac.compare_digest(expected, parts.get("v1", "")), timestamp


class Receiver:
    """``start()``/``stop()`` on one port (a stopped receiver refuses connections); ``answer``
    decides each status (default 200); ``on_request`` runs before the answer (it may block)."""

    def __init__(self, secret: str) -> None:
        self.secret = secret
        self.records: list[Received] = []
        self.lock = threading.Lock()
        self.answer: Callable[[Received], int] = lambda _r: 200
        self.on_request: Callable[[Received], None] | None = None
        self.redirect_to: str | None = None
        self.port = 0
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    def start(self) -> Receiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("Recovery-Signature", "")
                verified, timestamp = check_signature(receiver.secret, header, body)
                try:
                    data = json.loads(body)
                except ValueError:
                    data = {}
                record = Received(str(data.get("id", "")), self.headers.get("Recovery-Event-Id", ""), data, body,
                                  header, timestamp, verified, self.path, self.headers.get("X-Worker", ""))
                if receiver.redirect_to is not None and self.path == "/hooks":
                    self.send_response(307)
                    self.send_header("Location", receiver.redirect_to)
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                with receiver.lock:
                    receiver.records.append(record)
                if receiver.on_request is not None:
                    receiver.on_request(record)
                status = receiver.answer(record)
                self.send_response(status)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *_args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self.port = server.server_address[1]
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None

    def ids(self) -> list[str]:
        with self.lock:
            return [r.event_id for r in self.records]
