"""Issue 21: the user answers the appeal team's question through the API (text, attachments), the
SLA clock stops while the case waits for them, a reminder goes out, an unanswered case is closed
and the user's answer reopens it within the grace period. Both databases, the real API, anvil."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import func, select

from app.api_settings import ApiSettings
from recovery.audit import verify_chain
from recovery.audit_rows import rows_against_events
from recovery.checking import ChainGateway
from recovery.db import Database
from recovery.errors import InvalidTransition, ValidationFailed
from recovery.evidence_records import EvidenceDocument
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.replies import Attachment
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import SECRET, bearer, make_client
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_evidence import appeal, recheck

MARIA = Actor("maria", Role.SPECIALIST)
QUESTION = "Please send a screenshot of the withdrawal in the wallet you sent it from."
PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


@dataclasses.dataclass
class Waiting:
    service: CaseService
    client: TestClient
    clock: Clock
    reference: str

    def case(self) -> Case:
        return self.service.get(self.reference).case

    def view(self, user: str = "alice") -> dict[str, Any]:
        reply = self.client.get(f"/v1/appeals/{self.reference}", headers=bearer(user))
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def ask(self, message: str = QUESTION) -> Case:
        return self.service.request_info(self.reference, message, MARIA, expected_version=self.case().version)

    def events(self, action: str) -> list[CaseEvent]:
        return [e for e in self.service.get(self.reference).events if e.action == action]


@pytest.fixture
def waiting(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> Iterator[Waiting]:
    """alice's appeal of a valid uncredited USDT deposit, checked (in review)."""
    service = CaseService(database, evm_testbed.config, clock)
    address = fresh_address()
    with database.write() as session:
        session.add(DepositAddress(user_id="alice", network="ethereum", address=address, kind="eoa"))
    tx = evm_testbed.send_token("ethereum", "USDT", address, 40 * 10**6)
    evm_testbed.mine("ethereum", 30)
    reference = appeal(service, "alice", "ethereum", "USDT", tx, address)
    recheck(service)
    assert service.get(reference).case.status == "in_review"
    client = make_client(service, ApiSettings(jwt_secret=SECRET), gateway=ChainGateway(service.config))
    try:
        yield Waiting(service, client, clock, reference)
    finally:
        client.close()


def audit_is_whole(db: Database) -> None:
    with db.read() as session:
        assert verify_chain(session).ok
        assert rows_against_events(session) == []


def documents(db: Database) -> int:
    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(EvidenceDocument)).one())


def test_the_question_pauses_the_sla_and_the_answer_resumes_it_with_the_time_left(waiting: Waiting,
                                                                                 database: Database) -> None:
    due = waiting.case().sla_due_at
    assert due is not None
    waiting.clock.advance(hours=10)
    asked = waiting.ask()
    assert (asked.status, asked.sla_due_at) == ("needs_info", None)
    left = int((due - waiting.clock()).total_seconds())
    assert waiting.events("request_info")[-1].details["sla_remaining_seconds"] == left
    view = waiting.view()
    assert view["open_question"]["message"] == QUESTION
    assert view["open_question"]["reminder_at"] is not None and view["open_question"]["closes_at"] is not None
    assert [(e["by"], e["kind"]) for e in view["conversation"]] == [("team", "question")]
    assert view["status_label"] == "Waiting for your answer"
    assert view["next_step"].startswith("Please answer our question below by ")

    waiting.clock.advance(hours=40)  # the user takes 40 hours: none of it counts against the team
    reply = waiting.client.post(f"/v1/appeals/{waiting.reference}/replies",
                                json={"message": "  Here is the transaction from my wallet.  "},
                                headers=bearer("alice"))
    assert reply.status_code == 201, reply.text
    answered = reply.json()
    assert (answered["status"], answered["open_question"]) == ("in_review", None)
    assert [(e["by"], e["kind"], e["message"]) for e in answered["conversation"]] == [
        ("team", "question", QUESTION), ("you", "answer", "Here is the transaction from my wallet.")]
    case = waiting.case()
    assert case.sla_due_at == waiting.clock() + timedelta(seconds=left)
    assert [e["event"] for e in answered["timeline"]][-2:] == ["information_requested", "information_provided"]
    audit_is_whole(database)


def test_an_answer_with_attachments_stores_them_by_hash_with_the_answer(waiting: Waiting, database: Database) -> None:
    waiting.ask()
    files = [("files", ("withdrawal.pdf", PDF, "application/pdf")), ("files", ("screen.png", PNG, "image/png"))]
    reply = waiting.client.post(f"/v1/appeals/{waiting.reference}/replies", data={"message": "Both attached."},
                                files=files, headers=bearer("alice"))
    assert reply.status_code == 201, reply.text
    [answer] = [e for e in reply.json()["conversation"] if e["kind"] == "answer"]
    assert [(a["file_name"], a["media_type"], a["size"], a["sha256"]) for a in answer["attachments"]] == [
        ("withdrawal.pdf", "application/pdf", len(PDF), hashlib.sha256(PDF).hexdigest()),
        ("screen.png", "image/png", len(PNG), hashlib.sha256(PNG).hexdigest())]
    with database.read() as session:
        stored = session.get(EvidenceDocument, hashlib.sha256(PDF).hexdigest())
        assert stored is not None and stored.content == PDF and stored.media_type == "application/pdf"
    assert waiting.events("provide_info")[-1].details["attachments"][0]["sha256"] == hashlib.sha256(PDF).hexdigest()
    audit_is_whole(database)


@pytest.mark.parametrize(("files", "status", "field", "says"), [
    ([("files", ("w.pdf", b"just text, no PDF", "application/pdf"))], 422, "files[0]", "not a PDF, PNG or JPEG"),
    ([("files", ("w.pdf", PDF, "application/pdf")), ("files", ("w.png", PDF, "image/png"))], 422, "files[1]",
     "not image/png"),
    ([("files", ("big.pdf", PDF + b"\x00" * (5 * 1024 * 1024), "application/pdf"))], 422, "files[0]", "5 MiB"),
    ([("files", (f"{i}.png", PNG, "image/png")) for i in range(6)], 400, None, "Too many files"),
])
def test_a_bad_file_is_refused_naming_it_and_nothing_is_stored(waiting: Waiting, database: Database, files: list[Any],
                                                               status: int, field: str | None, says: str) -> None:
    waiting.ask()
    before = (len(waiting.service.get(waiting.reference).events), documents(database))
    reply = waiting.client.post(f"/v1/appeals/{waiting.reference}/replies", data={"message": "see attached"},
                                files=files, headers=bearer("alice"))
    assert reply.status_code == status, reply.text
    if field is not None:
        assert any(e["field"] == field and says in e["message"] for e in reply.json()["errors"]), reply.text
    else:
        assert says in reply.json()["message"]
    assert waiting.case().status == "needs_info"
    assert (len(waiting.service.get(waiting.reference).events), documents(database)) == before


def test_an_answer_to_a_case_not_waiting_or_not_yours_is_refused(waiting: Waiting, database: Database) -> None:
    url = f"/v1/appeals/{waiting.reference}/replies"
    not_waiting = waiting.client.post(url, json={"message": "hello"}, headers=bearer("alice"))
    assert not_waiting.status_code == 409 and not_waiting.json()["code"] == "not_waiting_for_an_answer"
    # files sent to a case that waits for nothing are refused before they are read, and nothing is kept
    pdf = [("files", ("w.pdf", PDF, "application/pdf"))]
    with_files = waiting.client.post(url, data={"message": "hello"}, files=pdf, headers=bearer("alice"))
    assert with_files.status_code == 409 and documents(database) == 0
    waiting.ask()
    assert waiting.client.post(url, json={"message": "it's mine"}, headers=bearer("bob")).status_code == 404
    assert waiting.client.post(url, json={"message": "hi"}).status_code == 401
    empty = waiting.client.post(url, json={"message": "   "}, headers=bearer("alice"))
    assert empty.status_code == 422 and empty.json()["errors"][0]["field"] == "message"
    extra = waiting.client.post(url, json={"message": "hi", "status": "approved"}, headers=bearer("alice"))
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "status"
    assert waiting.case().status == "needs_info"
    # one answer per question: the second is refused, the first stands
    assert waiting.client.post(url, json={"message": "first"}, headers=bearer("alice")).status_code == 201
    assert waiting.client.post(url, json={"message": "second"}, headers=bearer("alice")).status_code == 409
    assert [e.details["message"] for e in waiting.events("provide_info")] == ["first"]


def test_a_reminder_then_the_close_then_the_answer_reopens_within_the_grace_period(
    waiting: Waiting, database: Database
) -> None:
    policy = waiting.service.config.policy
    waiting.ask()
    waiting.clock.advance(hours=policy.info_reminder_hours - 1)
    recheck(waiting.service)
    assert waiting.events("remind_info") == []
    waiting.clock.advance(hours=2)
    recheck(waiting.service)
    recheck(waiting.service)  # one reminder per question, however often the sweep runs
    [reminder] = waiting.events("remind_info")
    assert "still waiting for your answer" in reminder.details["message"]
    view = waiting.view()
    assert view["timeline"][-1]["event"] == "information_reminder"
    assert view["open_question"]["reminder_at"] is None
    assert waiting.case().status == "needs_info"

    waiting.clock.advance(hours=policy.info_close_after_hours)
    recheck(waiting.service)
    closed = waiting.view()
    assert closed["status"] == "closed" and closed["timeline"][-1]["event"] == "closed"
    assert "not answered" in closed["timeline"][-1]["message"]
    assert closed["open_question"]["message"] == QUESTION  # an answer still reopens it
    assert closed["next_step"].startswith("Answer our question below by ") and "reopen" in closed["next_step"]
    assert [e["kind"] for e in closed["conversation"]] == ["question", "reminder", "closed_unanswered"]

    waiting.clock.advance(hours=24)
    reply = waiting.client.post(f"/v1/appeals/{waiting.reference}/replies", json={"message": "Sorry, here it is."},
                                headers=bearer("alice"))
    assert reply.status_code == 201, reply.text
    assert reply.json()["status"] == "in_review"
    assert waiting.events("provide_info")[-1].details["reopened"] is True
    assert waiting.case().sla_due_at is not None
    audit_is_whole(database)


def test_after_the_grace_period_an_answer_does_not_reopen_and_other_closes_never_do(waiting: Waiting) -> None:
    policy = waiting.service.config.policy
    waiting.ask()
    waiting.clock.advance(hours=policy.info_close_after_hours + 1)
    recheck(waiting.service)
    assert waiting.case().status == "closed"
    waiting.clock.advance(hours=policy.info_reopen_grace_hours + 1)
    late = waiting.client.post(f"/v1/appeals/{waiting.reference}/replies", json={"message": "late"},
                               headers=bearer("alice"))
    assert late.status_code == 409 and "reopens it only until" in late.json()["message"]
    assert waiting.view()["open_question"] is not None  # shown, with the date it could be answered until
    # a case closed any other way (here withdrawn by the user while waiting) is not reopened by an answer
    service, reference, alice = waiting.service, waiting.reference, Actor("alice", Role.USER)
    service.reopen(reference, "approver looks again", Actor("omar", Role.APPROVER),
                   expected_version=waiting.case().version)
    waiting.ask()
    withdrawn = service.withdraw(reference, alice, expected_version=waiting.case().version)
    with pytest.raises(InvalidTransition, match="only a case closed for want of an answer"):
        service.provide_info(reference, "now?", alice, expected_version=withdrawn.version)
    assert waiting.case().status == "closed"


def test_the_service_checks_the_same_on_every_path(waiting: Waiting) -> None:
    """The answer's checks live in the service: a specialist recording an answer from chat meets them too."""
    waiting.ask()
    with pytest.raises(ValidationFailed) as refused:
        waiting.service.provide_info(waiting.reference, "see file", MARIA, expected_version=waiting.case().version,
                                     attachments=[Attachment(b"MZ\x90\x00 an executable", "application/pdf", "x.pdf")])
    assert refused.value.errors[0].field == "files[0]"
    with pytest.raises(ValidationFailed):
        waiting.service.request_info(waiting.reference, "x" * 4001, MARIA, expected_version=waiting.case().version)


def test_a_rejection_without_a_code_carries_the_one_of_the_finding(waiting: Waiting) -> None:
    case = waiting.case()
    rejected = waiting.service.reject(waiting.reference, None, MARIA, expected_version=case.version)
    [event] = waiting.events("reject")
    assert event.details["reason_code"] == "not_recoverable" and rejected.status == "rejected"
    entry = waiting.view()["timeline"][-1]
    assert (entry["event"], entry["reason_code"]) == ("rejected", "not_recoverable")
    assert entry["message"] == "The funds cannot be recovered from where they landed."
