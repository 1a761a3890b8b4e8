"""Case page: what it shows, every action through the service with the version shown, role checks,
stale versions, and user text shown verbatim."""

from __future__ import annotations

import json
import secrets

import pytest
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from app.workbench.context import Workbench
from recovery.errors import Forbidden
from recovery.models import Case, CaseEvent
from recovery.services import Actor
from recovery.vocabulary import CaseStatus, Role
from tests.workbench.conftest import field_value, frame_with, markdown_texts, plain_texts, signed_in_app
from tests.workbench.seed import HOSTILE, World

CASE = "views/case.py"
ALICE = Actor("alice", Role.APPROVER)
BOB = Actor("bob", Role.APPROVER)


def open_case(username: str, reference: str) -> AppTest:
    at = signed_in_app(username, CASE, wb_case_ref=reference)
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == [f"Case {reference}"]
    return at


def submit(at: AppTest, action: str, **fields: object) -> AppTest:
    for name, value in fields.items():
        key = f"act_{action}_{name}"
        widgets = [w for w in (*at.text_input, *at.text_area, *at.selectbox) if w.key == key]
        assert widgets, f"no field {key}"
        widgets[0].set_value(value)
    at.button(key=f"submit_{action}").click().run()
    assert not at.exception, at.exception
    return at


def status(wb: Workbench, reference: str) -> str:
    return wb.cases.get(reference).case.status


def last_event(wb: Workbench, reference: str) -> CaseEvent:
    return wb.cases.get(reference).events[-1]


def succeeded(at: AppTest) -> bool:
    return any(": done." in str(s.value) for s in at.success)


# ------------------------------------------------------------------------------ what the page shows
def test_the_case_page_shows_appeal_decision_fee_evidence_and_timeline(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    case = wb.cases.get(world.small).case
    assert [m.value for m in at.metric][:3] == ["in_review", "uncredited_valid", "credit"]
    assert field_value(at, "transaction") == case.tx_hash
    assert field_value(at, "claimed amount") == "500"
    assert field_value(at, "found on") == "ethereum"
    assert field_value(at, "net to the user") == "500"
    reasons = frame_with(at, "reason")
    assert len(reasons) >= 2 and "found" in set(reasons["code"])
    assert field_value(at, "rule").startswith("fees.toml #")
    assert field_value(at, "fee (asset, rounded up)") == "0"
    # evidence per network with an explorer link built from the configured template
    links = at.get("link_button")
    assert [link.proto.url for link in links] == [f"https://etherscan.io/tx/{case.tx_hash}"]
    transfers = frame_with(at, "amount (base units)")
    assert list(transfers["amount (base units)"]) == ["500000000"]
    timeline = frame_with(at, "action")
    events = wb.cases.get(world.small).events
    assert list(timeline["action"]) == [e.action for e in events] == ["submit", "chain_result", "note"]


def test_flags_are_prominent(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.contested[1])
    banners = [str(e.value) for e in at.error]
    assert any(b.startswith("**Contested**") for b in banners)
    assert any(b.startswith("**Another user's address**") for b in banners)


def test_user_text_is_shown_verbatim_never_as_markup(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    timeline = frame_with(at, "details")
    notes = [json.loads(d) for a, d in zip(timeline["action"], timeline["details"], strict=True) if a == "note"]
    assert notes == [{"text": HOSTILE}]
    assert not any("<script" in text or "pwned" in text for text in markdown_texts(at))
    # typed through a form, a message to the user comes back verbatim too
    submit(at, "request_info", message=HOSTILE)
    assert last_event(wb, world.small).details["message"] == HOSTILE
    assert not any("pwned" in text for text in markdown_texts(at))


def test_an_unknown_reference_is_quoted_as_text(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara", CASE, wb_case_ref="<b>RC-9</b>")
    assert any("No case has this reference" in str(e.value) for e in at.error)
    assert "<B>RC-9</B>" in plain_texts(at)
    assert not any("<B>" in text for text in markdown_texts(at))


def test_typing_a_reference_opens_that_case(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    at.text_input(key="case_ref_input").input(world.big.lower()).run()
    assert [t.value for t in at.title] == [f"Case {world.big}"]


# ------------------------------------------------------------------------------ each action
def test_assign(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.small), "assign", assignee="tom")
    assert succeeded(at)
    assert wb.cases.get(world.small).case.assignee == "tom"
    submit(at, "assign", assignee="(nobody)")
    assert wb.cases.get(world.small).case.assignee is None


def test_note(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.unlisted), "note", text="Called the user.")
    assert succeeded(at)
    event = last_event(wb, world.unlisted)
    assert (event.action, event.actor, event.details["text"]) == ("note", "sara", "Called the user.")
    assert at.text_area(key="act_note_text").value == ""


def test_request_info_then_record_the_answer(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.small), "request_info", message="Which wallet did you use?")
    assert status(wb, world.small) == CaseStatus.NEEDS_INFO
    at = submit(at, "provide_info", message="MetaMask")
    assert status(wb, world.small) == CaseStatus.IN_REVIEW
    assert last_event(wb, world.small).details["message"] == "MetaMask"


def test_override_category_needs_a_reason(wb: Workbench, world: World) -> None:
    version = wb.cases.get(world.unlisted).case.version
    at = submit(open_case("sara", world.unlisted), "override_category", category="wrong_network", reason="")
    assert any("correct the following" in str(e.value) for e in at.error)
    assert "reason: is required for override_category" in plain_texts(at)
    assert wb.cases.get(world.unlisted).case.version == version
    submit(at, "override_category", category="wrong_network", reason="The user sent on BSC by mistake.")
    case = wb.cases.get(world.unlisted).case
    assert (case.category, case.category_override) == ("wrong_network", "wrong_network")


def test_a_specialist_approves_below_the_threshold(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.small), "approve", comment="ok")
    assert succeeded(at)
    assert status(wb, world.small) == CaseStatus.APPROVED


def test_a_specialist_cannot_approve_their_own_case_above_the_threshold(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.big)
    assert at.button(key="submit_approve").disabled
    assert any("an approver who did not prepare this case" in str(w.value) for w in at.warning)
    # and the service behind the page refuses it anyway
    with pytest.raises(Forbidden, match="an approver must approve it"):
        version = wb.cases.get(world.big).case.version
        wb.cases.approve(world.big, Actor("sara", Role.SPECIALIST), expected_version=version)
    assert status(wb, world.big) == CaseStatus.IN_REVIEW


def test_four_eyes_an_approver_who_prepared_the_case_cannot_approve_it(wb: Workbench, world: World) -> None:
    case = wb.cases.get(world.big).case
    wb.cases.assign(world.big, "alice", ALICE, expected_version=case.version)
    at = open_case("alice", world.big)
    assert at.button(key="submit_approve").disabled
    at = open_case("bob", world.big)
    assert not at.button(key="submit_approve").disabled
    submit(at, "approve")
    assert status(wb, world.big) == CaseStatus.APPROVED
    event = last_event(wb, world.big)
    assert (event.actor, event.details["four_eyes"]) == ("bob", True)


def test_reject_with_a_reason_code(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.not_found), "reject", reason_code="ownership_not_proven",
                message="Send proof of the withdrawal.")
    assert succeeded(at)
    event = last_event(wb, world.not_found)
    assert status(wb, world.not_found) == CaseStatus.REJECTED
    assert event.details == {"reason_code": "ownership_not_proven", "message": "Send proof of the withdrawal."}


def test_approve_then_record_the_refund(wb: Workbench, world: World) -> None:
    at = submit(open_case("bob", world.unlisted), "approve")
    assert status(wb, world.unlisted) == CaseStatus.APPROVED
    at = submit(at, "record_refund", tx_hash="not a hash")
    assert status(wb, world.unlisted) == CaseStatus.APPROVED
    assert any(t.startswith("refund_tx_hash:") for t in plain_texts(at))
    refund = "0x" + secrets.token_hex(32)
    submit(at, "record_refund", tx_hash=refund.upper().replace("0X", "0x"))
    case = wb.cases.get(world.unlisted).case
    assert (case.status, case.refund_tx_hash) == (CaseStatus.REFUND_PENDING, refund)


def test_mark_credited_then_close(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.small), "approve")
    at = submit(at, "mark_credited", ledger="LEDGER-77")
    assert status(wb, world.small) == CaseStatus.CREDITED
    assert last_event(wb, world.small).details["ledger_reference"] == "LEDGER-77"
    submit(at, "close")
    assert status(wb, world.small) == CaseStatus.CLOSED


def test_reopen_a_rejected_case(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.rejected)
    assert "submit_reopen" not in [b.key for b in at.button], "specialists cannot reopen"
    at = submit(open_case("alice", world.rejected), "reopen", reason="New evidence from the user.")
    assert status(wb, world.rejected) == CaseStatus.IN_REVIEW


def test_recheck_now(wb: Workbench, world: World) -> None:
    checks = wb.cases.get(world.not_found).case.check_count
    at = submit(open_case("sara", world.not_found), "chain_result")
    assert any("the chains say the same as before" in str(i.value) for i in at.info)
    assert wb.cases.get(world.not_found).case.check_count == checks + 1
    assert status(wb, world.not_found) == CaseStatus.AWAITING_CHAIN


def test_recheck_classifies_a_case_never_checked(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.overdue[0]), "chain_result")
    assert any("Re-checked: the case is now awaiting_chain, category tx_not_found" in str(s.value)
               for s in at.success)
    event = last_event(wb, world.overdue[0])
    assert (event.action, event.actor, event.actor_role) == ("chain_result", "sara", "specialist")


# ------------------------------------------------------------------------------ stale versions and roles
@pytest.mark.parametrize(("action", "fields"), [
    ("assign", {"assignee": "tom"}),
    ("approve", {}),
    ("reject", {"reason_code": "other"}),
    ("note", {"text": "mine"}),
    ("chain_result", {}),
])
def test_a_stale_version_says_someone_else_changed_the_case(
        wb: Workbench, world: World, action: str, fields: dict[str, object]) -> None:
    at = open_case("sara", world.small)
    shown = wb.cases.get(world.small).case.version
    wb.cases.note(world.small, "meanwhile", Actor("tom", Role.SPECIALIST), expected_version=shown)
    submit(at, action, **fields)
    assert any("Someone else changed this case since you opened it" in str(w.value) for w in at.warning)
    assert f"You saw version {shown}; it is now version {shown + 1}." in plain_texts(at)
    case = wb.cases.get(world.small).case
    assert case.version == shown + 1 and case.status == CaseStatus.IN_REVIEW and case.assignee is None
    # the page now shows the current version, and acting again works
    assert [m.value for m in at.metric][4] == str(shown + 1)


def test_auditors_see_everything_and_have_no_actions(wb: Workbench, world: World) -> None:
    at = open_case("ari", world.small)
    assert any("auditors see everything and change nothing" in str(i.value) for i in at.info)
    assert not [b for b in at.button if str(b.key).startswith("submit_")]
    assert frame_with(at, "action") is not None  # the timeline is there


def test_the_actions_follow_the_transition_table(wb: Workbench, world: World) -> None:
    shown = {b.key for b in open_case("sara", world.credited).button if str(b.key).startswith("submit_")}
    assert shown == {"submit_note", "submit_close"}
    shown = {b.key for b in open_case("sara", world.small).button if str(b.key).startswith("submit_")}
    assert shown == {"submit_assign", "submit_note", "submit_chain_result", "submit_request_info",
                     "submit_override_category", "submit_approve", "submit_reject"}


def test_every_page_action_left_an_audit_event_with_the_operator(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    submit(at, "note", text="one")
    submit(at, "assign", assignee="sara")
    with wb.db.read() as session:
        rows = session.exec(
            select(CaseEvent.action, CaseEvent.actor).join(Case, col(Case.id) == CaseEvent.case_id)
            .where(Case.reference == world.small).order_by(col(CaseEvent.id))
        ).all()
    assert [tuple(r) for r in rows][-2:] == [("note", "sara"), ("assign", "sara")]
