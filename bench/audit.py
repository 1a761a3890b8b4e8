"""How fast the keyed audit chain is written and verified.

    python -m bench.audit                     # 1,000,000 events on SQLite
    python -m bench.audit --events 200000

Prints, from one run: the cost per event of the keyed hash (HMAC-SHA256 over the canonical JSON)
against plain SHA-256 of the same JSON (interleaved rounds over the same events, median), and
``verify_chain`` over a chain of ``--events`` events in a throwaway SQLite database (events per
second; the chain is written in bulk, keyed exactly as the service layer writes it).
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, text

from recovery import audit, migrate
from recovery.audit_keys import KeyRing, new_key
from recovery.db import connect
from recovery.models import CaseEvent
from recovery.services import table_of


def _events(count: int, key_id: str) -> list[CaseEvent]:
    start = datetime(2026, 12, 1, tzinfo=UTC)
    return [
        CaseEvent(id=i + 1, case_id=None, actor="maria", actor_role="specialist", action="note",
                  from_status="in_review", to_status="in_review", details={"text": f"looked at it {i}"},
                  created_at=start + timedelta(seconds=i), prev_hash="0" * 64, hash="", key_id=key_id)
        for i in range(count)
    ]


def hash_costs(rounds: int, per_round: int) -> tuple[float, float]:
    """Median microseconds per event: (plain SHA-256, keyed HMAC)."""
    key = new_key()
    sample = _events(per_round, key.id)
    plain, keyed = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for event in sample:
            audit.event_hash(event)
        t1 = time.perf_counter()
        for event in sample:
            audit.event_hash(event, key)
        t2 = time.perf_counter()
        plain.append((t1 - t0) / per_round * 1e6)
        keyed.append((t2 - t1) / per_round * 1e6)
    return statistics.median(plain), statistics.median(keyed)


def verify_rate(count: int, folder: Path, chunk: int = 20_000) -> tuple[float, float]:
    """(seconds to write, events verified per second) for a keyed chain of ``count`` events."""
    key = new_key()
    ring = KeyRing({key.id: key}, key.id)
    db = connect(f"sqlite:///{folder / 'audit.db'}")
    migrate.upgrade(db)
    table = table_of(CaseEvent)
    prev = audit.GENESIS_HASH
    written = time.perf_counter()
    with db.engine.begin() as conn:
        mac = audit.cutover_mac(key, 0)
        conn.execute(text("UPDATE audit_head SET keyed_from_id = 0, keyed_from_key = :k, keyed_from_mac = :m"),
                     {"k": key.id, "m": mac})
    for start in range(0, count, chunk):
        rows = []
        for event in _events(min(chunk, count - start), key.id):
            event.id = start + (event.id or 0)
            event.prev_hash = prev
            event.hash = prev = audit.event_hash(event, key)
            rows.append({c.name: getattr(event, c.name) for c in table.c})
        with db.engine.begin() as conn:
            conn.execute(insert(table), rows)
    with db.engine.begin() as conn:
        conn.execute(text("UPDATE audit_head SET last_event_id = :i, last_hash = :h"), {"i": count, "h": prev})
    written = time.perf_counter() - written
    with db.read() as session:
        t0 = time.perf_counter()
        result = audit.verify_chain(session, ring=ring)
        elapsed = time.perf_counter() - t0
    db.dispose()
    if not result.ok or result.events_checked != count:
        raise SystemExit(f"verify failed: {result}")
    return written, count / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=7)
    args = parser.parse_args()
    plain, keyed = hash_costs(args.rounds, 20_000)
    print(f"hash per event: plain SHA-256 {plain:.2f} µs, keyed HMAC-SHA256 {keyed:.2f} µs, "
          f"keyed/plain = {keyed / plain:.2f}")
    with tempfile.TemporaryDirectory() as folder:
        written, rate = verify_rate(args.events, Path(folder))
    print(f"audit verify: {args.events:,} keyed events in {args.events / rate:.1f} s = {rate:,.0f} events/s "
          f"(writing them took {written:.1f} s)")


if __name__ == "__main__":
    main()
