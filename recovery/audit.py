"""The tamper-evident audit log: every case event hashes the one before it, across all cases.

Appends are serialized by locking the single ``audit_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite write transactions are already exclusive), so two writers can never fork the
chain. ``verify`` recomputes every hash in id order and names the first event that does not fit:
an edited, deleted, inserted or reordered event, or a truncated tail.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any

from sqlmodel import Session, col, select

from recovery.dbtypes import decimal_text
from recovery.models import AuditHead, CaseEvent

GENESIS_HASH = "0" * 64


def jsonable(value: Any) -> Any:
    """Details as plain JSON: Decimals as plain strings, datetimes in UTC ISO form, enums as values."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, float):
        raise TypeError("floats are not allowed in audit details; use Decimal or str")
    return value


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(event: CaseEvent) -> str:
    payload = {
        "id": event.id,
        "case_id": event.case_id,
        "actor": event.actor,
        "actor_role": event.actor_role,
        "action": event.action,
        "from_status": event.from_status,
        "to_status": event.to_status,
        "details": event.details,
        "created_at": _timestamp(event.created_at),
        "prev_hash": event.prev_hash,
    }
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def ensure_head(session: Session) -> None:
    """Create the head row if the table is empty (migrations also insert it)."""
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, last_event_id=None, last_hash=GENESIS_HASH))
        session.flush()


def append_event(
    session: Session,
    *,
    case_id: int,
    actor: str,
    actor_role: str,
    action: str,
    from_status: str | None,
    to_status: str | None,
    details: Mapping[str, Any],
    now: datetime,
) -> CaseEvent:
    """Append one event inside the caller's transaction; the head lock is held until it commits."""
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        ensure_head(session)
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    event = CaseEvent(
        id=(head.last_event_id or 0) + 1,
        case_id=case_id,
        actor=actor,
        actor_role=actor_role,
        action=action,
        from_status=from_status,
        to_status=to_status,
        details=jsonable(dict(details)),
        created_at=now.astimezone(UTC),
        prev_hash=head.last_hash,
        hash="",
    )
    event.hash = event_hash(event)
    session.add(event)
    head.last_event_id = event.id
    head.last_hash = event.hash
    session.add(head)
    session.flush()
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_broken_id: int | None = None
    problem: str | None = None


def _events(session: Session, batch: int = 5000) -> Iterator[CaseEvent]:
    last_id = 0
    while True:
        rows = session.exec(
            select(CaseEvent).where(col(CaseEvent.id) > last_id).order_by(col(CaseEvent.id)).limit(batch)
        ).all()
        if not rows:
            return
        yield from rows
        last_id = rows[-1].id or last_id


def verify_chain(session: Session) -> VerifyResult:
    """Walk the whole log in id order; report the first event that breaks the chain."""
    expected_prev = GENESIS_HASH
    expected_id = 1
    count = 0
    for event in _events(session):
        count += 1
        if event.id != expected_id:
            return VerifyResult(False, count, event.id, f"event {expected_id} is missing (next id is {event.id})")
        if event.prev_hash != expected_prev:
            return VerifyResult(False, count, event.id, "prev_hash does not match the previous event")
        if event_hash(event) != event.hash:
            return VerifyResult(False, count, event.id, "content does not match its hash (edited)")
        expected_prev = event.hash
        expected_id += 1
    head = session.get(AuditHead, 1)
    head_hash = head.last_hash if head else GENESIS_HASH
    if head_hash != expected_prev:
        return VerifyResult(
            False, count, expected_id, "the newest events are missing (head does not match the last event)"
        )
    return VerifyResult(True, count)
