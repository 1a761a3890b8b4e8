"""The tamper-evident audit log: every event is an HMAC, with a key kept outside the database
(:mod:`recovery.audit_keys`), over its content and the hash of the event before it, across all cases.

Without the key nobody can produce a chain that verifies: recomputing the chain with plain hashes
after an edit fails. Events written before the chain was keyed (an upgraded database) keep their
plain SHA-256 hashes up to a cut-over point that is itself signed. A key rotation is an event of its
own, signed with the old key, announcing the new one.

Appends are serialized by locking the single ``audit_head`` row (``SELECT … FOR UPDATE`` on
PostgreSQL; SQLite write transactions are already exclusive), so two writers can never fork the
chain. ``verify`` recomputes every hash in id order and names the first event that does not fit:
an edited, deleted, inserted or reordered event, or a truncated tail.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlmodel import Session, col, select

from recovery import webhook_outbox
from recovery.audit_keys import AuditKey, KeyRing, load_keyring
from recovery.dbtypes import jsonable
from recovery.models import AuditHead, CaseEvent

#: the action of a key rotation event (no case); its details name the new key
KEY_ROTATED = "audit_key_rotated"

GENESIS_HASH = "0" * 64


def _timestamp(value: datetime) -> str:
    return value.astimezone(UTC).isoformat(timespec="microseconds")


def event_hash(event: CaseEvent, key: AuditKey | None = None) -> str:
    """The event's hash: HMAC-SHA256 with ``key`` (its id is part of what is signed), or plain
    SHA-256 for an event written before the chain was keyed."""
    payload: dict[str, Any] = {
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
    if key is None:
        canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        return hashlib.sha256(canonical.encode()).hexdigest()
    payload["key_id"] = key.id
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hmac.new(key.secret, canonical.encode(), hashlib.sha256).hexdigest()


def cutover_mac(key: AuditKey, keyed_from_id: int) -> str:
    return hmac.new(key.secret, f"recovery-audit-keyed-from:{keyed_from_id}".encode(), hashlib.sha256).hexdigest()


def current_keyring() -> KeyRing:
    """The process's audit keys (``RECOVERY_AUDIT_KEY``, else the key file in the var folder)."""
    from recovery.settings import get_settings

    return load_keyring(get_settings().var_dir)


def sign_cutover(session: Session, ring: KeyRing | None = None) -> None:
    """Key the chain from now on: events so far stay plain, every later one is signed (the
    migration that introduced keys calls this, and so does a head created on an empty database)."""
    ring = ring or current_keyring()
    head = session.get(AuditHead, 1)
    assert head is not None
    head.keyed_from_id = head.last_event_id or 0
    head.keyed_from_key = ring.current.id
    head.keyed_from_mac = cutover_mac(ring.current, head.keyed_from_id)
    session.add(head)
    session.flush()


def ensure_head(session: Session) -> None:
    """Create the head row if the table is empty (migrations also insert it)."""
    if session.get(AuditHead, 1) is None:
        session.add(AuditHead(id=1, last_event_id=None, last_hash=GENESIS_HASH))
        session.flush()
        sign_cutover(session)


def append_event(
    session: Session,
    *,
    case_id: int | None,
    actor: str,
    actor_role: str,
    action: str,
    from_status: str | None,
    to_status: str | None,
    details: Mapping[str, Any],
    now: datetime,
    ring: KeyRing | None = None,
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
    key = (ring or current_keyring()).current
    event.key_id = key.id
    event.hash = event_hash(event, key)
    session.add(event)
    head.last_event_id = event.id
    head.last_hash = event.hash
    session.add(head)
    session.flush()
    if case_id is not None:
        webhook_outbox.enqueue(session, [event])  # the user's webhooks, in this transaction (none: no cost)
    return event


@dataclass(frozen=True)
class VerifyResult:
    ok: bool
    events_checked: int
    first_broken_id: int | None = None
    problem: str | None = None
    #: anchors (outside the database) the chain was checked against
    anchors_checked: int = 0
    #: case rows that do not follow from their events ("RC-…: field: row … events …")
    row_problems: tuple[str, ...] = ()


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


def rotate_key(session: Session, ring: KeyRing, new: AuditKey, actor: str, actor_role: str, now: datetime) -> CaseEvent:
    """Announce ``new`` in an event signed with the current key, then make it current (the key file
    is written before the caller commits; if the commit fails the old key stays current)."""
    old = ring.current
    event = append_event(session, case_id=None, actor=actor, actor_role=actor_role, action=KEY_ROTATED,
                         from_status=None, to_status=None,
                         details={"old_key_id": old.id, "new_key_id": new.id}, now=now, ring=ring)
    ring.add(new)
    return event


def _chain_problem(session: Session, ring: KeyRing) -> tuple[VerifyResult | None, int, dict[int, str]]:
    """Walk the log; (the first break or None, events checked, id -> hash of every event)."""
    head = session.get(AuditHead, 1)
    keyed_from = head.keyed_from_id if head is not None else 0
    if head is not None and head.last_event_id:
        signer = ring.get(head.keyed_from_key or "")
        if signer is None or head.keyed_from_mac is None or not hmac.compare_digest(
            head.keyed_from_mac, cutover_mac(signer, keyed_from)
        ):
            return VerifyResult(False, 0, None, "the keyed cut-over point is not signed by a known key "
                                                "(moved or forged)"), 0, {}
    expected_prev, expected_id, count = GENESIS_HASH, 1, 0
    expected_key: str | None = head.keyed_from_key if head is not None else None
    hashes: dict[int, str] = {}
    for event in _events(session):
        count += 1
        assert event.id is not None
        if event.id != expected_id:
            return VerifyResult(False, count, event.id, f"event {expected_id} is missing (next id is {event.id})"), \
                count, hashes
        if event.prev_hash != expected_prev:
            return VerifyResult(False, count, event.id, "prev_hash does not match the previous event"), count, hashes
        if event.id <= keyed_from:
            if event.key_id is not None or event_hash(event) != event.hash:
                return VerifyResult(False, count, event.id, "content does not match its hash (edited)"), count, hashes
        else:
            key = ring.get(event.key_id or "")
            if event.key_id is None or key is None:
                unknown = event.key_id or "none"
                return VerifyResult(False, count, event.id,
                                    f"signed with no known key ({unknown}): rewritten without the key"), count, hashes
            if expected_key is not None and event.key_id != expected_key:
                return VerifyResult(False, count, event.id,
                                    f"signed with key {event.key_id} where no rotation announced it"), count, hashes
            if not hmac.compare_digest(event_hash(event, key), event.hash):
                return VerifyResult(False, count, event.id, "content does not match its hash (edited)"), count, hashes
            expected_key = event.key_id
            if event.action == KEY_ROTATED:
                expected_key = str(event.details.get("new_key_id"))
        hashes[event.id] = event.hash
        expected_prev = event.hash
        expected_id += 1
    head_hash = head.last_hash if head else GENESIS_HASH
    if head_hash != expected_prev:
        return VerifyResult(
            False, count, expected_id, "the newest events are missing (head does not match the last event)"
        ), count, hashes
    return None, count, hashes


def verify_chain(
    session: Session,
    *,
    ring: KeyRing | None = None,
    anchors: Sequence[Mapping[str, Any]] = (),
    rows: bool = False,
) -> VerifyResult:
    """Walk the whole log in id order and report the first event that breaks the chain; then check
    it against every ``anchor`` published outside the database (a truncated or rewritten tail names
    the first anchor that no longer matches) and, with ``rows``, every case row against its events."""
    ring = ring or current_keyring()
    broken, count, hashes = _chain_problem(session, ring)
    if broken is not None:
        return broken
    for number, anchor in enumerate(anchors, start=1):
        event_id = int(anchor.get("event_id") or 0)
        if event_id == 0:
            continue
        found = hashes.get(event_id)
        if found is None:
            return VerifyResult(False, count, event_id, f"anchor {number} (event {event_id}, published "
                                f"{anchor.get('at')}) no longer matches: the event is gone (truncated)", number - 1)
        if not hmac.compare_digest(found, str(anchor.get("hash"))):
            return VerifyResult(False, count, event_id, f"anchor {number} (event {event_id}, published "
                                f"{anchor.get('at')}) no longer matches: the event was rewritten", number - 1)
    row_problems: tuple[str, ...] = ()
    if rows:
        from recovery.audit_rows import rows_against_events

        row_problems = tuple(rows_against_events(session))
    if row_problems:
        return VerifyResult(False, count, None, f"{len(row_problems)} case row(s) differ from their events",
                            len(anchors), row_problems)
    return VerifyResult(True, count, anchors_checked=len(anchors))
