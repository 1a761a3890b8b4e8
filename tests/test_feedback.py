"""Issue 22: the user rates a finished appeal (``POST /v1/appeals/{reference}/feedback``, a score 1-5
and an optional comment, once): an append-only audit event through the service layer, never in the
user's timeline. Both databases."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api_settings import ApiSettings
from recovery import feedback
from recovery.audit import verify_chain
from recovery.audit_rows import rows_against_events
from recovery.db import Database
from recovery.errors import Conflict, Forbidden, ValidationFailed
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import SECRET, bearer, make_client
from tests.fixtures_anvil import fresh_address
from tests.test_evidence import appeal

MARIA = Actor("maria", Role.SPECIALIST)
HASHES = iter(f"0x{n:064x}" for n in range(1, 10_000))


def filed(service: CaseService, user: str = "alice") -> str:
    return appeal(service, user, "ethereum", "USDT", next(HASHES), fresh_address())


def rejected(service: CaseService, user: str = "alice") -> str:
    reference = filed(service, user)
    service.reject(reference, "other", MARIA, expected_version=service.get(reference).case.version,
                   message="Internal: the desk thinks this is a scam; told the user it cannot be recovered.")
    return reference


@pytest.fixture
def client(service: CaseService) -> Iterator[TestClient]:
    with make_client(service, ApiSettings(jwt_secret=SECRET)) as api:
        yield api


def rate(client: TestClient, reference: str, body: Any, user: str = "alice") -> Any:
    return client.post(f"/v1/appeals/{reference}/feedback", json=body, headers=bearer(user))


def ratings(service: CaseService, reference: str) -> list[Any]:
    return [e for e in service.get(reference).events if e.action == feedback.FEEDBACK_ACTION]


def audit_is_whole(db: Database) -> None:
    with db.read() as session:
        assert verify_chain(session).ok
        assert rows_against_events(session) == []


def test_a_finished_appeal_is_rated_once_by_its_owner(service: CaseService, client: TestClient,
                                                      database: Database) -> None:
    reference = rejected(service)
    version = service.get(reference).case.version
    before = client.get(f"/v1/appeals/{reference}", headers=bearer("alice")).json()
    assert (before["can_rate"], before["feedback"]) == (True, None)  # the form knows to offer the rating

    reply = rate(client, reference, {"score": 4, "comment": "  Slow, but you told me why.  "})

    assert reply.status_code == 201, reply.text
    body = reply.json()
    assert body == {"reference": reference, "score": 4, "comment": "Slow, but you told me why.",
                    "given_at": service.clock().isoformat().replace("+00:00", "Z")}
    [event] = ratings(service, reference)
    assert (event.actor, event.actor_role, event.from_status, event.to_status) == (
        "alice", "user", "rejected", "rejected")
    assert event.details == {"score": 4, "comment": "Slow, but you told me why."}
    case = service.get(reference).case
    assert (case.status, case.version) == ("rejected", version + 1)  # an event like any other: the version follows

    again = rate(client, reference, {"score": 5})
    assert again.status_code == 409 and again.json()["code"] == "feedback_already_given"
    assert len(ratings(service, reference)) == 1

    # not in the user's timeline; the view says it was given (the score, never the comment)
    view = client.get(f"/v1/appeals/{reference}", headers=bearer("alice")).json()
    assert [entry["event"] for entry in view["timeline"]] == ["submitted", "rejected"]
    assert "Slow, but" not in str(view)
    assert view["can_rate"] is False and view["feedback"] == {"score": 4, "given_at": body["given_at"].replace(
        "Z", "+00:00")}
    audit_is_whole(database)


def test_not_finished_not_yours_and_bad_fields_are_refused_and_store_nothing(
    service: CaseService, client: TestClient, database: Database
) -> None:
    open_case = filed(service)
    refused = rate(client, open_case, {"score": 5})
    assert refused.status_code == 409 and refused.json()["code"] == "not_finished"
    assert client.get(f"/v1/appeals/{open_case}", headers=bearer("alice")).json()["can_rate"] is False

    finished = rejected(service)
    missing = rate(client, "RC-999999", {"score": 5})
    not_yours = rate(client, finished, {"score": 5}, user="bob")
    assert missing.status_code == not_yours.status_code == 404
    assert missing.json() == not_yours.json()

    for score in (0, 6, "5", 4.5, True, None, -1):
        reply = rate(client, finished, {"score": score})
        assert reply.status_code == 422, (score, reply.text)
        assert [e["field"] for e in reply.json()["errors"]] == ["score"]
    too_long = rate(client, finished, {"score": 3, "comment": "x" * 2001})
    assert [e["field"] for e in too_long.json()["errors"]] == ["comment"]
    unknown = rate(client, finished, {"score": 3, "stars": 3})
    assert [e["field"] for e in unknown.json()["errors"]] == ["stars"]
    assert rate(client, finished, [3]).status_code == 422
    not_json = client.post(f"/v1/appeals/{finished}/feedback", content=b"score=3", headers={
        **bearer("alice"), "Content-Type": "application/x-www-form-urlencoded"})
    assert not_json.status_code == 415
    assert ratings(service, open_case) == ratings(service, finished) == []

    # the longest comment, as JSON-escaped astral characters (12 bytes each), is over the default body limit
    longest = json.dumps({"score": 1, "comment": "\U0001F600" * 2000}).encode()
    assert len(longest) > 16 * 1024
    ok = client.post(f"/v1/appeals/{finished}/feedback", content=longest,
                     headers={**bearer("alice"), "Content-Type": "application/json"})
    assert ok.status_code == 201, ok.text
    assert ok.json()["comment"] == "\U0001F600" * 2000
    audit_is_whole(database)


def test_every_ended_status_takes_a_rating(service: CaseService, client: TestClient) -> None:
    withdrawn = filed(service)
    service.withdraw(withdrawn, Actor("alice", Role.USER), expected_version=1)
    assert service.get(withdrawn).case.status == "closed"
    assert rate(client, withdrawn, {"score": 2}).status_code == 201
    assert feedback.ENDED_STATUSES == ("closed", "credited", "refunded", "rejected")


def test_ratings_count_against_the_per_user_limit(service: CaseService) -> None:
    references = [rejected(service) for _ in range(3)]
    with make_client(service, ApiSettings(jwt_secret=SECRET, rate_limit=2)) as client:
        assert [rate(client, r, {"score": 5}).status_code for r in references[:2]] == [201, 201]
        limited = rate(client, references[2], {"score": 5})
        assert limited.status_code == 429 and limited.json()["code"] == "rate_limited"
        assert "Retry-After" in limited.headers
        service.clock.advance(hours=1, seconds=1)  # type: ignore[attr-defined]
        assert rate(client, references[2], {"score": 5}).status_code == 201


def test_the_service_checks_role_version_and_once_under_the_lock(service: CaseService, database: Database) -> None:
    reference = rejected(service)
    version = service.get(reference).case.version
    with pytest.raises(ValidationFailed):
        feedback.give(service, reference, "alice", {"score": 9}, expected_version=version)
    with pytest.raises(Conflict):
        feedback.give(service, reference, "alice", {"score": 3}, expected_version=version - 1)
    with pytest.raises(Forbidden):
        service.act(reference, feedback.FEEDBACK_ACTION, MARIA, expected_version=version, details={"score": 3})

    outcomes: list[str] = []

    def rate_once(score: int) -> None:
        try:
            feedback.give(service, reference, "alice", {"score": score}, expected_version=version)
            outcomes.append("rated")
        except (feedback.FeedbackAlreadyGiven, Conflict) as exc:
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=rate_once, args=(score,)) for score in (1, 5, 3, 4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert outcomes.count("rated") == 1, outcomes
    assert len(ratings(service, reference)) == 1
    after = service.get(reference).case.version
    with pytest.raises(feedback.FeedbackAlreadyGiven):
        feedback.give(service, reference, "alice", {"score": 3}, expected_version=after)
    audit_is_whole(database)
