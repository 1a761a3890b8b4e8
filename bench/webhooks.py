"""How fast the webhook outbox is delivered, against a bare HTTP POST loop to the same receiver.

    python -m bench.webhooks                      # 5,000 events, SQLite then PostgreSQL
    python -m bench.webhooks --events 20000 --batch-size 200 --backends sqlite
    python -m bench.webhooks --database-url postgresql+psycopg://...   # an empty database of yours

Prints, from one run: a bare loop (one kept-alive ``requests`` session POSTing the same bodies,
one after the other, no database, no signature) and ``recovery webhooks deliver --once``'s worker
(:class:`recovery.webhooks.Deliverer`: claim a batch, sign and POST each event, record the
outcomes) over the same events, to the same local receiver (HTTP/1.1, kept alive; it checks the
HMAC of every signed request), each as events per second, and their ratio. Also what queueing
costs a change: milliseconds per appeal submitted through the service layer with webhooks off and
on (the event built as the user's appeal view and written to the outbox in the same transaction).
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from sqlalchemy import insert
from sqlalchemy import select as core_select

from recovery import migrate, webhooks
from recovery.config import load_config
from recovery.db import Database, connect
from recovery.intake import AppealDraft
from recovery.models import WebhookOutbox
from recovery.services import Actor, CaseService
from recovery.settings import REPO_ROOT, get_settings
from recovery.vocabulary import Role

SECRET = "bench-webhook-secret-" + "x" * 16
_OUTBOX = WebhookOutbox.__table__  # type: ignore[attr-defined]


class _Receiver:
    """A local receiver: HTTP/1.1 kept alive, 204 to everything, the signature checked when present."""

    def __init__(self) -> None:
        counts = self.counts = {"requests": 0, "bad_signatures": 0}
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                header = self.headers.get("Recovery-Signature")
                good = True
                if header is not None:
                    parts = dict(p.split("=", 1) for p in header.split(","))
                    mac = hmac.new(SECRET.encode(), f"{parts['t']}.".encode() + body, hashlib.sha256).hexdigest()
                    good = hmac.compare_digest(mac, parts.get("v1", ""))
                with lock:
                    counts["requests"] += 1
                    counts["bad_signatures"] += 0 if good else 1
                self.send_response(204)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def _draft(i: int) -> AppealDraft:
    return AppealDraft(user_id=f"bench-user-{i % 500}", network="ethereum", asset="USDT",
                       tx_hash="0x" + hashlib.sha256(f"bench-{i}".encode()).hexdigest(),
                       deposit_address="0x" + hashlib.sha256(f"addr-{i % 500}".encode()).hexdigest()[:40],
                       memo=None, claimed_amount=None)


def submit_costs(service: CaseService, count: int, url: str) -> tuple[float, float]:
    """Median ms per submitted appeal with webhooks off, then on (interleaved rounds)."""
    off: list[float] = []
    on: list[float] = []
    rounds, per_round = 5, max(count // 5, 1)
    serial = 0
    for _ in range(rounds):
        for enabled, sink in ((False, off), (True, on)):
            os.environ["RECOVERY_WEBHOOK_URLS"] = url if enabled else ""
            get_settings.cache_clear()
            started = time.perf_counter()
            for _i in range(per_round):
                draft = _draft(serial)
                serial += 1
                service.submit(draft, Actor(draft.user_id, Role.USER))
            sink.append((time.perf_counter() - started) / per_round * 1000)
    os.environ["RECOVERY_WEBHOOK_URLS"] = url
    get_settings.cache_clear()
    return statistics.median(off), statistics.median(on)


def fill_outbox(db: Database, events: int) -> list[bytes]:
    """``events`` pending outbox rows, copies of the real ones the submits queued (four per case,
    spread over the cases); returns their bodies."""
    with db.write() as session:
        connection = session.connection()
        real = [dict(r._mapping) for r in connection.execute(core_select(_OUTBOX).order_by(_OUTBOX.c.id))]
        connection.execute(_OUTBOX.delete())
        rows = []
        for i in range(events):
            template = real[(i // 4) % len(real)]
            rows.append({**{k: v for k, v in template.items() if k != "id"}, "event_id": f"evt_bench_{i:08d}"})
        for start in range(0, len(rows), 2000):
            connection.execute(insert(_OUTBOX), rows[start:start + 2000])
    return [r["body"].encode() for r in rows]


def bare_rate(url: str, bodies: Sequence[bytes]) -> float:
    http = webhooks.new_session()
    started = time.perf_counter()
    for body in bodies:
        response = http.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)
        response.raise_for_status()
    elapsed = time.perf_counter() - started
    http.close()
    return len(bodies) / elapsed


def deliver_rate(db: Database, url: str, events: int, batch_size: int) -> tuple[float, int]:
    worker = webhooks.Deliverer(db, urls=[url], secret=SECRET, batch_size=batch_size)
    started = time.perf_counter()
    report = worker.deliver_due()
    elapsed = time.perf_counter() - started
    worker.close()
    return report.delivered / elapsed, report.delivered


def run_one(url: str, args: argparse.Namespace, receiver: _Receiver) -> dict[str, Any]:
    db = connect(url)
    migrate.upgrade(db)
    service = CaseService(db, load_config(REPO_ROOT / "config"))
    off_ms, on_ms = submit_costs(service, args.submits, receiver.url)
    bodies = fill_outbox(db, args.events)
    bare = bare_rate(receiver.url, bodies)
    rate, delivered = deliver_rate(db, receiver.url, args.events, args.batch_size)
    bare_after = bare_rate(receiver.url, bodies)
    backend = db.engine.dialect.name
    db.dispose()
    return {"backend": backend, "size": statistics.median(len(b) for b in bodies), "bare": bare, "rate": rate,
            "bare_after": bare_after, "delivered": delivered, "off_ms": off_ms, "on_ms": on_ms}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.webhooks", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--submits", type=int, default=500, help="appeals submitted to time the queueing")
    parser.add_argument("--backends", default="sqlite,postgresql",
                        help="sqlite and/or postgresql (a throwaway cluster from the machine's binaries)")
    parser.add_argument("--database-url", default=None, help="an empty database of yours instead")
    args = parser.parse_args(argv)
    receiver = _Receiver()
    os.environ["RECOVERY_WEBHOOK_URLS"] = receiver.url
    os.environ["RECOVERY_WEBHOOK_SECRET"] = SECRET
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-webhooks-") as folder:
        os.environ["RECOVERY_VAR_DIR"] = folder  # the audit key file, if none is configured
        get_settings.cache_clear()
        if args.database_url:
            results.append(run_one(args.database_url, args, receiver))
        else:
            backends = [b.strip() for b in args.backends.split(",") if b.strip()]
            if "sqlite" in backends:
                results.append(run_one(f"sqlite:///{Path(folder) / 'bench.db'}", args, receiver))
            if "postgresql" in backends:
                sys.path.insert(0, str(REPO_ROOT))
                from tests.support.pgcluster import PgCluster

                cluster = PgCluster.start()
                try:
                    results.append(run_one(cluster.url(cluster.create_database("bench_webhooks")), args, receiver))
                finally:
                    cluster.stop()
    receiver.close()
    print(f"{args.events} events of {results[0]['size']:.0f} bytes (median), batch {args.batch_size}; "
          f"{os.cpu_count()} CPU(s), load average {os.getloadavg()[0]:.1f}")
    print(f"{'backend':<12}{'bare before':>12}{'deliver':>10}{'bare after':>12}{'ratio':>7}"
          f"{'submit off':>12}{'submit on':>11}")
    for r in results:
        ratio = r["rate"] / statistics.mean([r["bare"], r["bare_after"]])
        print(f"{r['backend']:<12}{r['bare']:>10.0f}/s{r['rate']:>8.0f}/s{r['bare_after']:>10.0f}/s{ratio:>7.2f}"
              f"{r['off_ms']:>9.2f} ms{r['on_ms']:>8.2f} ms")
    print(f"bad signatures at the receiver: {receiver.counts['bad_signatures']}")
    complete = all(r["delivered"] == args.events for r in results)
    return 0 if complete and receiver.counts["bad_signatures"] == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
