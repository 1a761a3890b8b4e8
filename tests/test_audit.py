"""The audit chain detects an edited, deleted, reordered or truncated event, on both databases."""

from __future__ import annotations

import json
import threading

from recovery.audit import GENESIS_HASH, verify_chain
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import Role
from tests.support.tamper import as_dba
from tests.test_cases import new_draft

SPECIALIST = Actor("sam", Role.SPECIALIST)


def _seed(service: CaseService, cases: int = 3) -> list[str]:
    refs = []
    for _ in range(cases):
        case, _ = service.submit(new_draft(), SYSTEM)
        ref = case.reference or ""
        service.assign(ref, "sam", SPECIALIST, expected_version=1)
        service.note(ref, "checked the explorer", SPECIALIST, expected_version=2)
        refs.append(ref)
    return refs


def _verify(service: CaseService):  # type: ignore[no-untyped-def]
    with service.db.read() as session:
        return verify_chain(session)


def _sql(service: CaseService, statement: str, **params: object) -> None:
    as_dba(service.db, statement, **params)


def test_an_untouched_chain_verifies(service: CaseService) -> None:
    _seed(service)
    result = _verify(service)
    assert result.ok and result.events_checked == 9


def test_an_empty_chain_verifies(service: CaseService) -> None:
    result = _verify(service)
    assert result.ok and result.events_checked == 0


def test_an_edited_event_is_named(service: CaseService) -> None:
    _seed(service)
    details = json.dumps({"text": "nothing to see here"})
    _sql(service, "UPDATE case_events SET details = :d WHERE id = 6", d=details)
    result = _verify(service)
    assert not result.ok and result.first_broken_id == 6 and "edited" in (result.problem or "")


def test_an_edited_actor_is_named(service: CaseService) -> None:
    _seed(service)
    _sql(service, "UPDATE case_events SET actor = 'mallory' WHERE id = 2")
    result = _verify(service)
    assert not result.ok and result.first_broken_id == 2


def test_a_deleted_event_is_named(service: CaseService) -> None:
    _seed(service)
    _sql(service, "DELETE FROM case_events WHERE id = 4")
    result = _verify(service)
    assert not result.ok and result.first_broken_id == 5 and "missing" in (result.problem or "")


def test_reordered_events_are_detected(service: CaseService) -> None:
    _seed(service)
    # swap the contents of events 3 and 4 (ids stay in place)
    _sql(service, "UPDATE case_events SET id = 1000 WHERE id = 3")
    _sql(service, "UPDATE case_events SET id = 3 WHERE id = 4")
    _sql(service, "UPDATE case_events SET id = 4 WHERE id = 1000")
    result = _verify(service)
    assert not result.ok and result.first_broken_id == 3


def test_a_truncated_tail_is_detected(service: CaseService) -> None:
    _seed(service)
    _sql(service, "DELETE FROM case_events WHERE id >= 8")
    result = _verify(service)
    assert not result.ok and "newest events are missing" in (result.problem or "")


def test_a_rewritten_chain_without_the_head_is_detected(service: CaseService) -> None:
    _seed(service, cases=1)
    _sql(service, "DELETE FROM case_events")
    result = _verify(service)
    assert not result.ok
    _sql(service, "UPDATE audit_head SET last_hash = :g, last_event_id = NULL", g=GENESIS_HASH)
    assert _verify(service).ok  # only whoever can rewrite the head too can hide a wipe


def test_concurrent_writers_never_fork_the_chain(service: CaseService) -> None:
    refs = _seed(service, cases=4)
    errors: list[BaseException] = []

    def worker(ref: str) -> None:
        try:
            version = service.get(ref).case.version
            for i in range(5):
                service.note(ref, f"note {i}", SPECIALIST, expected_version=version)
                version += 1
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(ref,)) for ref in refs]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    result = _verify(service)
    assert result.ok and result.events_checked == 12 + 20
