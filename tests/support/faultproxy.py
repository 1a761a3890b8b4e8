"""A misbehaving JSON-RPC node: a local HTTP proxy in front of a real one (anvil) that, at a given
rate, drops the connection, delays, answers 429 or 503, truncates or garbles the JSON, or answers
like a node that is behind (an older head, and ``null`` for transactions above it).

Used by the fault-injection tests and ``bench/reliability.py``. Faults are drawn from a seeded
random generator so a failing run can be replayed; every injected fault is counted.
"""

from __future__ import annotations

import json
import random
import socket
import threading
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import requests

FAULT_KINDS: tuple[str, ...] = ("drop", "delay", "429", "503", "truncated", "garbage", "stale")


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that gave up (timeout) or a connection we dropped on purpose is not news."""


class FaultProxy:
    """``rate``: probability that a request gets a fault; ``kinds``: which faults to draw from.

    ``delay`` holds the answer ``delay_seconds`` (set it above the client's read timeout to make a
    timeout). ``stale_blocks``: how far behind a "stale" answer pretends to be.
    """

    def __init__(
        self,
        upstream: str,
        *,
        rate: float = 0.3,
        kinds: Sequence[str] = FAULT_KINDS,
        seed: int = 1,
        delay_seconds: float = 1.5,
        stale_blocks: int = 50,
    ) -> None:
        unknown = set(kinds) - set(FAULT_KINDS)
        if unknown:
            raise ValueError(f"unknown fault kinds: {sorted(unknown)}")
        self.upstream = upstream
        self.rate = rate
        self.kinds = tuple(kinds)
        self.delay_seconds = delay_seconds
        self.stale_blocks = stale_blocks
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self.injected: Counter[str] = Counter()
        self.requests = 0
        self._session = requests.Session()
        self._server = _QuietServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def _draw(self) -> str | None:
        with self._lock:
            self.requests += 1
            if self._rng.random() >= self.rate:
                return None
            kind = self._rng.choice(self.kinds)
            self.injected[kind] += 1
            return kind

    def _forward(self, body: bytes) -> tuple[int, bytes]:
        reply = self._session.post(self.upstream, data=body, headers={"Content-Type": "application/json"}, timeout=30)
        return reply.status_code, reply.content

    def _stale(self, body: bytes) -> bytes:
        """Answer like a node ``stale_blocks`` behind: an older head, no newer transactions."""
        request = json.loads(body)
        calls = request if isinstance(request, list) else [request]
        _, head_raw = self._forward(json.dumps({"jsonrpc": "2.0", "id": 0, "method": "eth_blockNumber"}).encode())
        head = max(0, int(json.loads(head_raw)["result"], 16) - self.stale_blocks)
        _, raw = self._forward(body)
        replies = json.loads(raw)
        answers = replies if isinstance(replies, list) else [replies]
        by_id = {a.get("id"): a for a in answers if isinstance(a, dict)}
        for call in calls:
            answer = by_id.get(call.get("id"))
            if answer is None or "result" not in answer:
                continue
            method, params = call.get("method"), call.get("params") or []
            result = answer["result"]
            if method == "eth_blockNumber":
                answer["result"] = hex(head)
            elif method == "eth_getBlockByNumber" and params and params[0] == "latest":
                stale_block = self._call("eth_getBlockByNumber", [hex(head), bool(params[1:2] and params[1])])
                answer["result"] = stale_block
            elif method in ("eth_getTransactionByHash", "eth_getTransactionReceipt") and isinstance(result, dict):
                number = result.get("blockNumber")
                if number is not None and int(number, 16) > head:
                    answer["result"] = None
        return json.dumps(replies).encode()

    def _call(self, method: str, params: list[Any]) -> Any:
        _, raw = self._forward(json.dumps({"jsonrpc": "2.0", "id": 0, "method": method, "params": params}).encode())
        return json.loads(raw)["result"]

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                return

            def _send(self, status: int, body: bytes, headers: dict[str, str] | None = None) -> None:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in (headers or {}).items():
                    self.send_header(key, value)
                self.end_headers()
                self.wfile.write(body)

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                fault = proxy._draw()
                if fault == "drop":
                    self.connection.shutdown(socket.SHUT_RDWR)
                    self.close_connection = True
                    return
                if fault == "429":
                    self._send(429, b'{"error":"too many requests"}', {"Retry-After": "0"})
                    return
                if fault == "503":
                    self._send(503, b"<html>503 Service Unavailable</html>")
                    return
                if fault == "garbage":
                    self._send(200, b"<html><body>upstream error</body></html>")
                    return
                if fault == "delay":
                    time.sleep(proxy.delay_seconds)
                if fault == "stale":
                    self._send(200, proxy._stale(body))
                    return
                status, content = proxy._forward(body)
                if fault == "truncated":
                    content = content[: max(1, len(content) // 2)]
                self._send(status, content)

        return Handler


@contextmanager
def fault_proxy(upstream: str, **options: Any) -> Iterator[FaultProxy]:
    proxy = FaultProxy(upstream, **options).start()
    try:
        yield proxy
    finally:
        proxy.stop()
