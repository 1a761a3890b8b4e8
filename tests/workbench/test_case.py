"""Case page: what it shows, every action through the service with the version shown, role checks,
stale versions, and user text shown verbatim."""

from __future__ import annotations

import secrets

import pytest
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from app.demo.chainworld import impersonate, send_all, token_transfer
from app.workbench.context import Workbench
from recovery import valuation
from recovery.errors import Forbidden
from recovery.models import Case, CaseEvent
from recovery.services import Actor
from recovery.vocabulary import CaseStatus, Role
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.workbench.conftest import field_value, frame_with, markdown_texts, plain_texts, signed_in_app
from tests.workbench.seed import HOSTILE, SARA, World

CASE = "views/case.py"
#: the case page's actions that ask for a confirmation in a dialog (views/case.py MONEY_MOVING)
MONEY_MOVING = ("approve", "mark_credited", "record_refund", "change_payout")
ALICE = Actor("alice", Role.APPROVER)
BOB = Actor("bob", Role.APPROVER)


def open_case(username: str, reference: str) -> AppTest:
    """The case page of ``reference`` as ``username`` (opened as the queue opens it: the reference set,
    then the page; the queue itself forgets the last case opened)."""
    at = signed_in_app(username)
    at.session_state["wb_case_ref"] = reference
    at.switch_page(CASE).run()
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
    if action in MONEY_MOVING:  # a money-moving action asks for a confirmation first (a dialog)
        at.button(key=f"confirm_{action}").click().run()
        assert not at.exception, at.exception
    return at


def status(wb: Workbench, reference: str) -> str:
    return wb.cases.get(reference).case.status


def last_event(wb: Workbench, reference: str) -> CaseEvent:
    return wb.cases.get(reference).events[-1]


def succeeded(at: AppTest) -> bool:
    return any(": done." in str(s.value) for s in at.success)


def field_tables(at: AppTest) -> dict[str, dict[str, str]]:
    """The page's field/value tables, each by its first label."""
    found: dict[str, dict[str, str]] = {}
    for frame in at.dataframe:
        value = frame.value
        if list(getattr(value, "columns", [])) == ["field", "value"] and len(value):
            found.setdefault(str(value["field"].iloc[0]), dict(zip(value["field"], value["value"], strict=True)))
    return found


def payout_fields(at: AppTest) -> dict[str, str]:
    """The Payout section's table (approved, paid, proven or proposed)."""
    return field_tables(at)["payout"]


# ------------------------------------------------------------------------------ what the page shows
def test_the_case_page_shows_appeal_decision_fee_evidence_and_timeline(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    case = wb.cases.get(world.small).case
    assert ("Status :blue-badge[in_review] · Category :violet-badge[uncredited_valid] · Resolution "
            ":green-badge[credit] · Value 500.00 USD") in [m.value for m in at.markdown]
    assert "500 USDT sent on Ethereum; recoverable; no fee; credit 500 to user-1 after approval" in plain_texts(at)
    assert case.tx_hash in [c.value for c in at.code]  # with a copy button
    assert field_value(at, "claimed amount") == "500"
    assert field_value(at, "found on") == "ethereum"
    money = {m.label: m.value for m in at.metric}
    assert (money["Amount"], money["Fee"], money["Credit (net)"]) == ("500 USDT", "0", "500")
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
    timeline = frame_with(at, "what")
    notes = [d for a, d in zip(timeline["action"], timeline["what"], strict=True) if a == "note"]
    assert notes == [HOSTILE]
    assert not any("<script" in text or "pwned" in text for text in markdown_texts(at))
    # typed through a form, a message to the user comes back verbatim too
    submit(at, "request_info", message=HOSTILE)
    assert last_event(wb, world.small).details["message"] == HOSTILE
    assert not any("pwned" in text for text in markdown_texts(at))
    # so does a comment for the approver, on the case page and on Approvals
    submit(at, "provide_info", message="ok")
    submit(at, "send_for_approval", comment=HOSTILE)
    assert last_event(wb, world.small).details["comment"] == HOSTILE
    assert f"sara: {HOSTILE}" in plain_texts(at)
    assert not any("pwned" in text for text in markdown_texts(at))
    approvals = signed_in_app("alice", "views/approvals.py")
    assert HOSTILE in list(frame_with(approvals, "comment")["comment"])
    assert not any("pwned" in text for text in markdown_texts(approvals))


def test_an_unknown_reference_is_quoted_as_text(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.session_state["wb_case_ref"] = "<b>RC-9</b>"
    at.switch_page(CASE).run()
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


def test_a_template_question_and_the_answer_with_its_image_shown_inline(wb: Workbench, world: World) -> None:
    """Issue 21: the question from a template, the user's answer and attachment on the case page."""
    from io import BytesIO

    from PIL import Image

    from recovery.replies import Attachment

    at = open_case("sara", world.small)
    offered = at.selectbox(key="act_request_info_template").options
    assert offered[0] == "(my own words)" and "A screenshot of the withdrawal" in offered
    at = submit(at, "request_info", template="screenshot", message="")
    asked = last_event(wb, world.small)
    assert (asked.action, asked.details["template"]) == ("request_info", "screenshot")
    assert asked.details["message"] == wb.config.templates["screenshot"].message
    assert wb.cases.get(world.small).case.sla_due_at is None  # the clock waits for the user
    image = BytesIO()
    Image.new("RGB", (8, 8), (200, 30, 30)).save(image, format="PNG")
    case = wb.cases.get(world.small).case
    wb.cases.provide_info(world.small, HOSTILE, Actor(case.user_id, Role.USER), expected_version=case.version,
                          attachments=[Attachment(image.getvalue(), "image/png", "wallet.png")])
    at = open_case("sara", world.small)
    assert "Conversation with the user" in [h.value for h in at.subheader]
    texts = plain_texts(at)
    assert wb.config.templates["screenshot"].message in texts and HOSTILE in texts
    assert not any("pwned" in text for text in markdown_texts(at))
    assert any(t.startswith("wallet.png: image/png") for t in texts)
    assert len(at.get("image")) == 1  # drawn inline (it decodes and is small)


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
    at = open_case("sara", world.small)
    # before approval the page shows the exact payout approval would fix
    proposed = payout_fields(at)
    assert proposed["payout"] == "credit, proposed"
    assert (proposed["credit to user"], proposed["amount"], proposed["amount (base units)"]) == (
        "user-1", "500 USDT", "500000000")
    submit(at, "approve", comment="ok")
    assert succeeded(at)
    assert status(wb, world.small) == CaseStatus.APPROVED
    payout = wb.cases.payout(world.small)
    assert payout is not None and payout.approved_by == "sara"


def test_a_specialist_cannot_approve_their_own_case_above_the_threshold(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.big)
    assert at.button(key="submit_approve").disabled
    assert any("an approver who did not prepare this case" in str(w.value) for w in at.warning)
    # and the service behind the page refuses it anyway
    with pytest.raises(Forbidden, match="an approver must approve it"):
        version = wb.cases.get(world.big).case.version
        wb.cases.approve(world.big, Actor("sara", Role.SPECIALIST), expected_version=version)
    assert status(wb, world.big) == CaseStatus.IN_REVIEW


def test_four_eyes_notes_and_assignment_do_not_prepare_but_sending_does(wb: Workbench, world: World) -> None:
    """Reading, notes and assignment do not bar an approver; sending the case for approval does."""
    case = wb.cases.get(world.big).case
    case = wb.cases.assign(world.big, "alice", ALICE, expected_version=case.version)
    wb.cases.note(world.big, "Looked at the transfer.", ALICE, expected_version=case.version)
    at = open_case("alice", world.big)
    assert not at.button(key="submit_approve").disabled
    # alice sends it (again) herself: now she prepared it and cannot approve it
    submit(at, "send_for_approval", comment="Second look done.")
    assert succeeded(at)
    assert at.button(key="submit_approve").disabled
    assert any("You prepared this case" in str(c.value) for c in at.caption)
    with pytest.raises(Forbidden, match="prepared this case"):
        wb.cases.approve(world.big, ALICE, expected_version=wb.cases.get(world.big).case.version)
    at = open_case("bob", world.big)
    assert not at.button(key="submit_approve").disabled
    submit(at, "approve")
    assert status(wb, world.big) == CaseStatus.APPROVED
    event = last_event(wb, world.big)
    assert (event.actor, event.details["four_eyes"], event.details["preparers"]) == ("bob", True, ["alice", "sara"])


def test_approval_above_the_threshold_needs_a_send_for_approval(wb: Workbench, world: World) -> None:
    """The unlisted token's value is unknown: a valuation first, then four eyes, once a specialist sent it."""
    at = open_case("bob", world.unlisted)
    assert at.button(key="submit_approve").disabled
    assert any("No USD price for this asset" in str(w.value) for w in at.warning)
    version = wb.cases.get(world.unlisted).case.version
    with pytest.raises(Forbidden, match="must send it for approval first"):
        wb.cases.approve(world.unlisted, BOB, expected_version=version)
    assert wb.cases.get(world.unlisted).case.version == version
    value_on_page(wb, world.unlisted)
    at = open_case("bob", world.unlisted)
    assert at.button(key="submit_approve").disabled
    assert any("Not sent for approval yet: the specialist who prepared it sends it first" in str(c.value)
               for c in at.caption)
    at = submit(open_case("sara", world.unlisted), "send_for_approval", comment="Token confirmed unlisted.")
    assert succeeded(at)
    event = last_event(wb, world.unlisted)
    assert (event.action, event.actor, event.details) == ("send_for_approval", "sara",
                                                         {"comment": "Token confirmed unlisted."})
    case = wb.cases.get(world.unlisted).case
    assert case.status == CaseStatus.IN_REVIEW and case.approval_requested_at is not None
    at = open_case("bob", world.unlisted)
    assert "sara: Token confirmed unlisted." in plain_texts(at)
    assert not at.button(key="submit_approve").disabled
    submit(at, "approve")
    assert status(wb, world.unlisted) == CaseStatus.APPROVED


def test_reject_with_a_reason_code(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.not_found), "reject", reason_code="ownership_not_proven",
                message="Send proof of the withdrawal.")
    assert succeeded(at)
    event = last_event(wb, world.not_found)
    assert status(wb, world.not_found) == CaseStatus.REJECTED
    assert event.details == {"reason_code": "ownership_not_proven", "message": "Send proof of the withdrawal."}


#: the seeded unlisted token (25 SHINY, no price) valued at 10 USD: 250 USD, fee 80 USD = 8 SHINY, 17 back
SHINY_PRICE = "10"
SHINY_NET = 17


def value_on_page(wb: Workbench, reference: str, username: str = "sara") -> AppTest:
    """Set the valuation through the case page's form (the next action of an unpriced case)."""
    at = open_case(username, reference)
    assert any(h.value == "Next: Set valuation" for h in at.subheader)
    at = submit(at, "set_valuation", price_usd=SHINY_PRICE, source="DEX quote", reason="No listed price.")
    assert succeeded(at)
    return at


def send_and_approve(wb: Workbench, reference: str, approver: Actor = BOB) -> None:
    case = wb.cases.get(reference).case
    if valuation.needs_valuation(case):
        case = wb.cases.set_valuation(reference, SARA, expected_version=case.version, price_usd=SHINY_PRICE,
                                      source="DEX quote", reason="No listed price.")
    case = wb.cases.send_for_approval(reference, SARA, expected_version=case.version)
    wb.cases.approve(reference, approver, expected_version=case.version)


def test_approve_then_record_the_refund(wb: Workbench, world: World) -> None:
    send_and_approve(wb, world.unlisted)
    payout = wb.cases.payout(world.unlisted)
    assert payout is not None
    at = open_case("sara", world.unlisted)
    shown = payout_fields(at)
    assert shown["payout"] == f"#{payout.id} refund, approved"
    # an unlisted token is named by its contract; the symbol it reports on chain is shown as untrusted
    token = payout.contract
    assert token and shown["token contract"] == shown["asset"] == token
    assert (shown["network"], shown["amount"], shown["amount (base units)"], shown["decimals"]) == (
        "ethereum", f"{SHINY_NET} {token}", str(SHINY_NET * 10**18), "18")
    assert shown["symbol on chain (untrusted)"] == "SHINY"
    assert shown["to address"].lower() == FUNDER.lower()
    assert shown["from (our address)"] == payout.from_address
    assert (shown["approved by"], shown["payout SLA"]) == ("bob", "due in 1d 0h (approved 0h 0m ago; SLA 24 h)")
    # no address on the form: the refund goes where the approval fixed it
    assert "act_record_refund_address" not in [w.key for w in at.text_input]
    assert (f"refund: {SHINY_NET} {token} ({SHINY_NET * 10**18} base units) on ethereum to {payout.to_address}"
            in plain_texts(at))
    at = submit(at, "record_refund", tx_hash="not a hash")
    assert status(wb, world.unlisted) == CaseStatus.APPROVED
    assert any(t.startswith("refund_tx_hash:") for t in plain_texts(at))
    # the deposit's own hash proves nothing: refused by the service, and the page says why
    deposit = wb.cases.get(world.unlisted).case.tx_hash
    at = submit(at, "record_refund", tx_hash=deposit)
    assert any("The action failed" in str(e.value) for e in at.error)
    assert f"{deposit} is the deposit transaction of {world.unlisted}, not a refund" in plain_texts(at)
    refund = "0x" + secrets.token_hex(32)
    submit(at, "record_refund", tx_hash=refund.upper().replace("0X", "0x"))
    case = wb.cases.get(world.unlisted).case
    assert (case.status, case.refund_tx_hash) == (CaseStatus.REFUND_PENDING, refund)
    event = last_event(wb, world.unlisted)
    assert (event.actor, event.details["approved_by"]) == ("sara", "bob")
    shown = payout_fields(open_case("sara", world.unlisted))
    assert (shown["payout"], shown["recorded by"], shown["refund transaction"]) == (
        f"#{payout.id} refund, executed", "sara", refund)


@pytest.mark.parametrize("kind", ["credit", "refund"])
def test_the_approver_cannot_record_the_payment(wb: Workbench, world: World, kind: str) -> None:
    """Four eyes at payment: whoever approved a payout never records it as paid, at any value."""
    reference = world.small if kind == "credit" else world.unlisted
    action, fields = (("mark_credited", {"ledger": "LEDGER-9"}) if kind == "credit"
                      else ("record_refund", {"tx_hash": "0x" + secrets.token_hex(32)}))
    send_and_approve(wb, reference, approver=BOB)
    version = wb.cases.get(reference).case.version
    at = open_case("bob", reference)
    assert at.button(key=f"submit_{action}").disabled
    other = "record_refund" if kind == "credit" else "mark_credited"
    assert f"submit_{other}" not in [b.key for b in at.button], "only the payout's own kind is recorded"
    assert any("You approved this payout" in str(w.value) for w in at.warning)
    with pytest.raises(Forbidden, match="bob approved this payout and cannot also record it as paid"):
        if kind == "credit":
            wb.cases.mark_credited(reference, BOB, expected_version=version, ledger_reference="LEDGER-9")
        else:
            wb.cases.record_refund(reference, str(fields["tx_hash"]), BOB, expected_version=version)
    assert wb.cases.get(reference).case.version == version
    # another operator records it through the same form
    at = submit(open_case("alice", reference), action, **fields)
    assert succeeded(at)
    assert status(wb, reference) == (CaseStatus.CREDITED if kind == "credit" else CaseStatus.REFUND_PENDING)
    assert last_event(wb, reference).actor == "alice"


def test_mark_credited_restates_the_credit_and_needs_the_ledger_reference(wb: Workbench, world: World) -> None:
    at = submit(open_case("sara", world.small), "approve")
    assert status(wb, world.small) == CaseStatus.APPROVED
    at = open_case("tom", world.small)
    assert field_tables(at)["credit to user"] == {
        "credit to user": "user-1", "asset": "USDT", "amount": "500 USDT", "amount (base units)": "500000000",
        "network": "ethereum", "approved by": "sara"}
    version = wb.cases.get(world.small).case.version
    at = submit(at, "mark_credited", ledger="")
    assert any("correct the following" in str(e.value) for e in at.error)
    assert "ledger_reference: is required: the ledger entry of the credit" in plain_texts(at)
    assert wb.cases.get(world.small).case.version == version
    at = submit(at, "mark_credited", ledger="LEDGER-77")
    assert status(wb, world.small) == CaseStatus.CREDITED
    event = last_event(wb, world.small)
    assert (event.actor, event.details["ledger_reference"], event.details["approved_by"]) == (
        "tom", "LEDGER-77", "sara")
    shown = payout_fields(at)
    assert (shown["payout"].endswith("credit, executed"), shown["recorded by"], shown["ledger reference"]) == (
        True, "tom", "LEDGER-77")
    submit(at, "close")
    assert status(wb, world.small) == CaseStatus.CLOSED


def test_change_payout_sends_the_refund_back_for_a_new_approval(wb: Workbench, world: World) -> None:
    send_and_approve(wb, world.unlisted)
    first = wb.cases.payout(world.unlisted)
    assert first is not None
    assert "submit_change_payout" not in [b.key for b in open_case("alice", world.small).button], "a credit"
    new_home = fresh_address()
    at = open_case("alice", world.unlisted)
    at = submit(at, "change_payout", to_address=new_home, reason="")
    assert "reason: is required for change_payout" in plain_texts(at)
    at = submit(at, "change_payout", to_address="not an address", reason="The user's exchange moved.")
    assert any(t.startswith("to_address:") for t in plain_texts(at))
    assert status(wb, world.unlisted) == CaseStatus.APPROVED
    at = submit(at, "change_payout", to_address=new_home.lower(), memo="", reason="The user's exchange moved.")
    assert succeeded(at)
    case = wb.cases.get(world.unlisted).case
    assert (case.status, case.approval_requested_at, wb.cases.payout(world.unlisted)) == (
        CaseStatus.IN_REVIEW, None, None)
    event = last_event(wb, world.unlisted)
    assert (event.action, event.actor, event.details["reason"]) == ("change_payout", "alice",
                                                                    "The user's exchange moved.")
    # the page now proposes the new address, keeps the cancelled payout, and bars alice from approving
    proposed = payout_fields(at)
    assert proposed["to address"].lower() == new_home.lower()
    history = frame_with(at, "problems")
    assert list(zip(history["payout"], history["state"], strict=True)) == [(f"#{first.id}", "cancelled")]
    at = submit(open_case("sara", world.unlisted), "send_for_approval")
    at = open_case("alice", world.unlisted)
    assert at.button(key="submit_approve").disabled
    assert any("You changed this payout" in str(c.value) for c in at.caption)
    with pytest.raises(Forbidden, match="changed the payout"):
        wb.cases.approve(world.unlisted, ALICE, expected_version=wb.cases.get(world.unlisted).case.version)
    submit(open_case("bob", world.unlisted), "approve")
    payout = wb.cases.payout(world.unlisted)
    assert payout is not None and payout.id != first.id
    assert (payout.to_address or "").lower() == new_home.lower() and payout.approved_by == "bob"


@pytest.mark.parametrize("outcome", ["confirmed", "mismatch"])
def test_the_refund_proof_or_what_did_not_match(wb: Workbench, world: World, evm_testbed: EvmTestbed,
                                                outcome: str) -> None:
    """A refund really sent from our deposit address, proven by the re-check's own path."""
    send_and_approve(wb, world.unlisted)
    payout = wb.cases.payout(world.unlisted)
    assert payout is not None and payout.contract and payout.from_address and payout.to_address
    units = int(payout.amount_units)
    url = evm_testbed.url("ethereum")
    # the seeded deposit may already have been refunded by another test: top the address up first
    evm_testbed.send_token("ethereum", payout.contract, payout.from_address, units)
    impersonate(url, payout.from_address)
    to = payout.to_address if outcome == "confirmed" else fresh_address()
    [refund] = send_all(url, [token_transfer("ethereum", payout.from_address, payout.contract, to, units)])
    evm_testbed.mine("ethereum", 15)
    version = wb.cases.get(world.unlisted).case.version
    wb.cases.record_refund(world.unlisted, refund, SARA, expected_version=version)
    observation = wb.gateway.adapter("ethereum").lookup(refund)
    _case, verdict = wb.cases.settle_refund(world.unlisted, observation, expected_version=version + 1)
    assert verdict == outcome
    at = open_case("sara", world.unlisted)
    tables = field_tables(at)
    wanted, found = tables["network"], tables["status"]  # expected (the approved payout), found on chain
    assert wanted["to address"].lower() == payout.to_address.lower()
    assert (wanted["at least (base units)"], wanted["asset"]) == (str(units), payout.contract)
    assert found["status"] == "success" and int(found["confirmations"]) >= 12
    transfers = frame_with(at, "token contract")
    assert list(transfers["to"])[-1].lower() == to.lower()
    if outcome == "confirmed":
        assert status(wb, world.unlisted) == CaseStatus.REFUNDED
        assert any("Proven" in str(s.value) for s in at.success)
        assert payout_fields(at)["payout"].endswith("refund, confirmed")
    else:
        case = wb.cases.get(world.unlisted).case
        assert (case.status, case.flags) == (CaseStatus.IN_REVIEW, ["refund_mismatch"])
        banners = [str(e.value) for e in at.error]
        assert any(b.startswith("**Refund mismatch**") for b in banners)
        assert any("Not proven" in b for b in banners)
        assert "- no transfer of the approved asset to the approved address" in plain_texts(at)
        assert payout_fields(at)["payout"].endswith("refund, mismatch")
        # back in review, but not waiting for an approver: the earlier request was answered by the approval
        assert world.unlisted not in list(frame_with(signed_in_app("alice", "views/approvals.py"), "reference")
                                          ["reference"])
        assert open_case("alice", world.unlisted).button(key="submit_approve").disabled
        # the queue's flag filter finds it
        queue = signed_in_app("sara")
        queue.multiselect(key="q_flags").set_value(["refund_mismatch"]).run()
        assert list(frame_with(queue, "reference")["reference"]) == [world.unlisted]


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
    ("send_for_approval", {"comment": "ready"}),
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
    assert any(str(c.value).startswith(f"Version {shown + 1}: the page acts on this version") for c in at.caption)


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
                     "submit_override_category", "submit_send_for_approval", "submit_approve", "submit_reject"}
    # a refund's payout can be changed; a credit's cannot
    shown = {b.key for b in open_case("sara", world.unlisted).button if str(b.key).startswith("submit_")}
    assert {"submit_send_for_approval", "submit_change_payout"} <= shown


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
