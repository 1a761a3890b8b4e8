"""The keyed audit chain against an insider with database access, on both databases: a rewrite
rehashed with plain SHA-256 or with another key, a moved cut-over, a truncated tail (anchors), a
case row edited behind the events' back, key rotation, an upgraded unkeyed chain."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlmodel import Session, col, select

from recovery import audit, migrate
from recovery.audit import GENESIS_HASH, KEY_ROTATED, event_hash, rotate_key, verify_chain
from recovery.audit_anchors import AnchorSettings, publish, read_anchors
from recovery.audit_keys import KeyRing, load_keyring, new_key, reset_cache
from recovery.db import Database, connect
from recovery.models import AuditHead, Case, CaseEvent
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import Role
from tests.conftest import new_database
from tests.support.tamper import as_dba, guard_off
from tests.test_cases import new_draft

SPECIALIST = Actor("sam", Role.SPECIALIST)
NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


def seed(service: CaseService, cases: int = 3) -> list[str]:
    refs = []
    for _ in range(cases):
        case, _ = service.submit(new_draft(), SYSTEM)
        ref = case.reference or ""
        service.assign(ref, "sam", SPECIALIST, expected_version=1)
        service.note(ref, "checked the explorer", SPECIALIST, expected_version=2)
        refs.append(ref)
    return refs


def verify(service: CaseService, **options: Any) -> audit.VerifyResult:
    with service.db.read() as session:
        return verify_chain(session, **options)


def sql(db: Database, statement: str, **params: object) -> None:
    as_dba(db, statement, **params)


def rehash_from(db: Database, first_id: int, sign: Any) -> None:
    """What an insider without the key can do: recompute every hash from ``first_id`` with ``sign``
    (event -> (key_id, hash)) and point the head at the new last hash."""
    with guard_off(db), Session(db.engine) as session:
        events = session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()
        prev = GENESIS_HASH
        for event in events:
            if event.id is not None and event.id >= first_id:
                event.prev_hash = prev
                event.key_id, event.hash = sign(event)
                session.add(event)
            prev = event.hash
        head = session.get(AuditHead, 1)
        assert head is not None
        head.last_hash = prev
        session.add(head)
        session.commit()


def test_a_rewrite_rehashed_with_plain_sha256_fails(service: CaseService) -> None:
    seed(service)
    assert verify(service).ok
    sql(service.db, "UPDATE case_events SET actor = 'mallory' WHERE id = 2")
    rehash_from(service.db, 2, lambda e: (None, event_hash(e)))
    result = verify(service)
    assert not result.ok and result.first_broken_id == 2 and "no known key" in (result.problem or "")


def test_a_rewrite_rehashed_with_another_key_fails(service: CaseService) -> None:
    seed(service)
    ring = audit.current_keyring()
    forged = new_key()
    sql(service.db, "UPDATE case_events SET actor = 'mallory' WHERE id = 3")
    rehash_from(service.db, 3, lambda e: (forged.id, event_hash(e, forged)))
    assert not verify(service).ok
    # the same key id with another secret is no better
    rehash_from(service.db, 3, lambda e: (ring.current.id, event_hash(e, forged)))
    result = verify(service)
    assert not result.ok and result.first_broken_id == 3 and "edited" in (result.problem or "")


def test_moving_the_cut_over_to_the_end_fails(service: CaseService) -> None:
    seed(service)
    rehash_from(service.db, 1, lambda e: (None, event_hash(e)))
    sql(service.db, "UPDATE audit_head SET keyed_from_id = last_event_id WHERE id = 1")
    result = verify(service)
    assert not result.ok and "cut-over" in (result.problem or "")


def test_verifying_with_a_wrong_key_fails(service: CaseService) -> None:
    seed(service)
    stranger = new_key()
    result = verify(service, ring=KeyRing({stranger.id: stranger}, stranger.id))
    assert not result.ok


def test_a_truncated_tail_is_caught_by_an_anchor(service: CaseService, tmp_path: Path) -> None:
    seed(service)
    settings = AnchorSettings(tmp_path / "anchors.jsonl")
    with service.db.read() as session:
        anchor = publish(session, settings, NOW)
    assert anchor["event_id"] == 9 and read_anchors(settings.path) == [anchor]
    assert verify(service, anchors=read_anchors(settings.path)).ok
    # delete the newest events and point the head at the last one kept: the chain itself still verifies
    sql(service.db, "DELETE FROM case_events WHERE id >= 8")
    with Session(service.db.engine) as session:
        last = session.get(CaseEvent, 7)
        head = session.get(AuditHead, 1)
        assert last is not None and head is not None
        head.last_event_id, head.last_hash = 7, last.hash
        session.add(head)
        session.commit()
    assert verify(service).ok
    result = verify(service, anchors=read_anchors(settings.path))
    assert not result.ok and "anchor 1 (event 9" in (result.problem or "") and "truncated" in (result.problem or "")


def test_a_case_row_edited_behind_its_events_is_named(service: CaseService) -> None:
    [reference, *_] = seed(service)
    assert verify(service, rows=True).ok
    sql(service.db, "UPDATE cases SET status = 'approved', version = 3 WHERE reference = :r", r=reference)
    result = verify(service, rows=True)
    assert not result.ok
    assert result.row_problems == (f"{reference}: status: the row says 'approved', its events say 'submitted'",)


def test_key_rotation_is_an_event_and_each_segment_verifies_with_its_key(service: CaseService, tmp_path: Path) -> None:
    first = new_key()
    ring = KeyRing({first.id: first}, first.id, tmp_path / "keys.json")
    os.environ["RECOVERY_AUDIT_KEY"], saved = str(ring.path), os.environ["RECOVERY_AUDIT_KEY"]
    try:
        ring.add(first)  # writes the file
        reset_cache()
        # a fresh chain keyed with the file's key
        sql(service.db, "UPDATE audit_head SET keyed_from_key = :k, keyed_from_mac = :m WHERE id = 1",
            k=first.id, m=audit.cutover_mac(first, 0))
        seed(service, 1)
        with service.db.write() as session:
            rotation = rotate_key(session, audit.current_keyring(), new_key(), "ada", "admin", NOW)
        seed(service, 1)
        rotated = load_keyring(tmp_path, str(ring.path))
        assert rotated.current_id != first.id and set(rotated.keys) == {first.id, rotated.current_id}
        assert verify(service).ok
        with service.db.read() as session:
            keys = [e.key_id for e in session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()]
        assert keys == [first.id] * 4 + [rotated.current_id] * 3 and rotation.action == KEY_ROTATED
        # without the old key the first segment cannot be checked
        only_new = KeyRing({rotated.current_id: rotated.current}, rotated.current_id)
        assert not verify(service, ring=only_new).ok
    finally:
        os.environ["RECOVERY_AUDIT_KEY"] = saved
        reset_cache()


def test_the_embedded_default_creates_a_private_key_file(tmp_path: Path) -> None:
    reset_cache()
    ring = load_keyring(tmp_path, "")
    path = tmp_path / "audit-key.json"
    assert ring.path == path and ring.beside_data and stat.S_IMODE(path.stat().st_mode) == 0o600
    assert load_keyring(tmp_path, "").current.id == ring.current.id
    reset_cache()
    assert load_keyring(tmp_path, "").current.id == ring.current.id  # read back from the file
    reset_cache()


def test_an_unkeyed_chain_is_keyed_after_the_cut_over(database: Database) -> None:
    """A database from before the keyed chain: its events keep their plain hashes up to the
    cut-over the migration signs; every later event is keyed, and the old ones stay protected."""
    migrate.downgrade(database, "0004_payouts")
    prev = GENESIS_HASH
    with database.engine.begin() as conn:
        conn.execute(text("INSERT INTO cases (id, reference, user_id, origin, network, asset, tx_hash, "
                          "deposit_address, status, flags, version, created_at, updated_at, check_count) VALUES "
                          "(1, 'RC-000001', 'u', 'appeal', 'ethereum', 'USDT', '0x01', '0x02', 'submitted', '[]', "
                          "2, '2026-01-01 00:00:00', '2026-01-01 00:00:00', 0)"))
        for event_id, action in ((1, "submit"), (2, "note")):
            event = CaseEvent(id=event_id, case_id=1, actor="old", actor_role="specialist", action=action,
                              from_status=None, to_status="submitted", details={}, created_at=NOW,
                              prev_hash=prev, hash="")
            event.hash = event_hash(event)  # the old scheme: plain SHA-256
            conn.execute(text("INSERT INTO case_events (id, case_id, actor, actor_role, action, from_status, "
                              "to_status, details, created_at, prev_hash, hash) VALUES (:id, 1, 'old', "
                              "'specialist', :action, NULL, 'submitted', '{}', :at, :prev, :hash)"),
                         {"id": event_id, "action": action, "at": NOW.replace(tzinfo=None), "prev": prev,
                          "hash": event.hash})
            prev = event.hash
        conn.execute(text("UPDATE audit_head SET last_event_id = 2, last_hash = :h WHERE id = 1"), {"h": prev})
    migrate.upgrade(database)
    with database.read() as session:
        head = session.get(AuditHead, 1)
        assert head is not None and head.keyed_from_id == 2
    service = CaseService(database, _config(), lambda: NOW)
    service.note("RC-000001", "after the upgrade", SPECIALIST, expected_version=2)
    result = verify(service)
    assert result.ok and result.events_checked == 3
    # an old event edited and the old part rehashed: the first keyed event no longer links to it
    sql(database, "UPDATE case_events SET actor = 'mallory' WHERE id = 1")
    rehash_from(database, 1, lambda e: (None, event_hash(e)) if (e.id or 0) <= 2 else (e.key_id, e.hash))
    assert not verify(service).ok


def _config() -> Any:
    from recovery.config import load_config
    from recovery.settings import REPO_ROOT

    return load_config(REPO_ROOT / "config")


def test_rows_problem_lists_a_credited_user_change(service: CaseService) -> None:
    """The credited user recorded by a decision is compared with the row."""
    [reference] = seed(service, 1)
    with service.db.write() as session:
        case = session.exec(select(Case).where(Case.reference == reference)).one()
        case_id = case.id
    details = {"outcome": "decided", "category": "uncredited_valid", "resolution": "credit",
               "credited_user_id": "user-1"}
    with service.db.write() as session:
        audit.append_event(session, case_id=case_id, actor="system", actor_role="system", action="chain_result",
                           from_status="submitted", to_status="in_review", details=details, now=NOW)
    sql(service.db, "UPDATE cases SET status = 'in_review', version = 4, category = 'uncredited_valid', "
        "resolution = 'credit', credited_user_id = 'mallory' WHERE reference = :r", r=reference)
    result = verify(service, rows=True)
    assert result.row_problems == (
        f"{reference}: credited_user_id: the row says 'mallory', its events say 'user-1'",
    )


def test_plain_and_keyed_hashes_differ() -> None:
    event = CaseEvent(id=1, case_id=1, actor="a", actor_role="system", action="submit", details={},
                      created_at=NOW, prev_hash=GENESIS_HASH, hash="")
    key = new_key()
    assert event_hash(event) != event_hash(event, key)
    assert event_hash(event) == hashlib.sha256(json.dumps(
        {"id": 1, "case_id": 1, "actor": "a", "actor_role": "system", "action": "submit", "from_status": None,
         "to_status": None, "details": {}, "created_at": NOW.isoformat(timespec="microseconds"),
         "prev_hash": GENESIS_HASH}, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


@pytest.fixture(autouse=True)
def _fresh_keyring_cache() -> Any:
    reset_cache()
    yield
    reset_cache()


def test_the_database_refuses_to_edit_or_delete_events(service: CaseService) -> None:
    seed(service, 1)
    for statement in ("UPDATE case_events SET actor = 'mallory' WHERE id = 1", "DELETE FROM case_events WHERE id = 3"):
        with pytest.raises(DBAPIError, match="append-only"), service.db.engine.begin() as conn:
            conn.execute(text(statement))
    with service.db.read() as session:
        assert [e.actor for e in session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()] == [
            "system", "sam", "sam"]
    assert verify(service).ok


@pytest.fixture
def pg_service(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[CaseService]:
    for db in new_database("postgresql", request, tmp_path):
        yield CaseService(db, _config(), lambda: NOW)


@pytest.mark.postgres
def test_the_application_role_may_insert_events_but_never_change_them(pg_service: CaseService) -> None:
    """PostgreSQL: the services run as a login role in ``recovery_app``: everything works, but the
    database refuses that role any UPDATE, DELETE or TRUNCATE of audit events."""
    service = pg_service
    seed(service, 1)
    login = "recovery_service_" + secrets.token_hex(3)
    with service.db.engine.begin() as conn:
        conn.execute(text(f"CREATE ROLE {login} LOGIN IN ROLE recovery_app"))
    url = service.db.engine.url.set(username=login)
    app = connect(url.render_as_string(hide_password=False))
    try:
        as_app = CaseService(app, service.config, lambda: NOW)
        seed(as_app, 1)  # the services work under the role: cases, events, payouts
        for statement in ("UPDATE case_events SET actor = 'mallory' WHERE id = 1", "DELETE FROM case_events",
                          "TRUNCATE case_events CASCADE"):
            with pytest.raises(DBAPIError, match="permission denied"), app.engine.begin() as conn:
                conn.execute(text(statement))
        assert verify(as_app).ok
    finally:
        app.dispose()
