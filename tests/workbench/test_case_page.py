"""The case page in one look (issue 23), AppTest on the seeded world: the summary line, the money
figures the decision allows, the next action first, money-moving actions confirmed in a dialog, the
valuation (set on the page, shown to the approver, refused to its author, and the approval refused
without a sound one even when the page let the button through), readable rows, and the other cases
from the same sender (the read on SQLite and PostgreSQL)."""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from sqlalchemy import update
from sqlmodel import Session, col
from streamlit.testing.v1 import AppTest

from app.workbench.context import Workbench
from recovery import case_summary
from recovery.models import Case
from recovery.services import SYSTEM
from recovery.vocabulary import CaseStatus
from tests.workbench.conftest import frame_with, markdown_texts, plain_texts
from tests.workbench.seed import HOSTILE, SARA, World
from tests.workbench.test_case import last_event, open_case, status, submit, succeeded


def next_action(at: AppTest) -> str:
    [heading] = [h.value for h in at.subheader if str(h.value).startswith("Next: ")]
    return str(heading).removeprefix("Next: ")


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def value_it(at: AppTest, price: str, source: str = "DEX quote", reason: str = "No listed price.") -> AppTest:
    return submit(at, "set_valuation", price_usd=price, source=source, reason=reason)


# ------------------------------------------------------------------------------ the summary and the money
def test_the_summary_line_and_the_next_action_of_each_state(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    assert "500 USDT sent on Ethereum; recoverable; no fee; credit 500 to user-1 after approval" in plain_texts(at)
    assert next_action(at) == "Approve"  # below the threshold: a specialist may approve it
    at = open_case("sara", world.big)
    assert next_action(at) == "Approve"  # sent already; sara prepared it, so her button is disabled
    assert at.button(key="submit_approve").disabled
    assert next_action(open_case("sara", world.not_found)) == "Re-check on the chains now"
    assert next_action(open_case("sara", world.credited)) == "Close"
    assert next_action(open_case("sara", world.rejected)) == "Close"
    assert next_action(open_case("alice", world.rejected)) == "Close"
    # every other action is still there, each in its own expander (no tabs, nothing behind a scroll arrow)
    at = open_case("sara", world.small)
    submits = {b.key for b in at.button if str(b.key).startswith("submit_")}
    assert {"submit_note", "submit_assign", "submit_reject", "submit_approve"} <= submits
    assert not at.tabs
    # "Version" is no headline figure any more; the page still says which version it acts on
    assert "Version" not in metrics(at)
    version = wb.cases.get(world.small).case.version
    assert any(str(c.value).startswith(f"Version {version}: the page acts on this version") for c in at.caption)


def test_a_case_that_pays_nothing_shows_no_fee_and_no_net(wb: Workbench, world: World) -> None:
    """The issue's expired case: the engine computed a fee and a net, the page shows neither, and why."""
    case = wb.cases.get(world.small).case

    def expire(_session: Session, row: Case) -> dict[str, Any]:
        row.recoverable, row.resolution = "no", "none"
        row.flags = sorted({*row.flags, "expired"})
        return {"outcome": "test"}

    wb.cases.act(world.small, "chain_result", SYSTEM, expected_version=case.version, mutate=expire)
    case = wb.cases.get(world.small).case
    assert case.fee_amount is not None and case.net_amount == Decimal(500)  # still on the row
    at = open_case("sara", world.small)
    shown = metrics(at)
    assert (shown["Fee"], shown["To the user"]) == ("none", "nothing")
    assert "Credit (net)" not in shown and "Refund (net)" not in shown
    assert any("No fee and nothing to the user: expired" in str(c.value) for c in at.caption)
    line = next(t for t in plain_texts(at) if t.startswith("500 USDT sent on Ethereum"))
    assert line == "500 USDT sent on Ethereum; not recoverable (expired); nothing to pay"
    assert next_action(at) == "Reject"


def test_the_unlisted_token_says_why_it_has_no_fee_and_asks_for_a_valuation(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.unlisted)
    assert next_action(at) == "Set valuation"
    shown = metrics(at)
    assert (shown["Fee"], shown["To the user"]) == ("not set", "after a valuation")
    warning = next(str(w.value) for w in at.warning if str(w.value).startswith("**Fee not set**"))
    assert "80 USD flat (at most 500 USD)" in warning and "set a valuation" in warning
    line = next(t for t in plain_texts(at) if " sent on Ethereum" in t)
    assert "fee not set: no USD price (80 USD flat (at most 500 USD))" in line
    assert line.endswith("after a valuation and approval")
    # the amount in asset units, base units on hover
    amount = next(m for m in at.metric if m.label == "Amount")
    assert amount.value.startswith("25 0x") and amount.proto.help == f"{25 * 10**18} base units"


# ------------------------------------------------------------------------------ the valuation
def test_a_valuation_on_the_page_then_an_approval_by_someone_else(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.unlisted)
    version = wb.cases.get(world.unlisted).case.version
    at = value_it(at, "-5")
    assert "price_usd: must be positive" in plain_texts(at)
    at = value_it(at, "abc", source="")
    assert {"price_usd: 'abc' is not a decimal number", "source: is required: where the price comes from (a venue, "
            "a quote)"} <= set(plain_texts(at))
    assert wb.cases.get(world.unlisted).case.version == version
    at = value_it(at, "10", source=HOSTILE, reason=HOSTILE)
    assert succeeded(at)
    event = last_event(wb, world.unlisted)
    assert (event.action, event.actor, event.details["price_usd"], event.details["fee"]) == (
        "set_valuation", "sara", "10", "8")
    case = wb.cases.get(world.unlisted).case
    assert (case.value_usd, case.fee_amount, case.net_amount) == (Decimal(250), Decimal(8), Decimal(17))
    # the page now shows the valued fee, who set it and why (verbatim, never markup)
    shown = metrics(at)
    assert (shown["Fee"], shown["Refund (net)"]) == ("8", "17")
    assert any(str(w.value).startswith("**Fee from a manual valuation** ($10.00 per unit, value $250.00)")
               for w in at.warning)
    assert any(t.startswith("Set by sara at ") and t.endswith(f"source: {HOSTILE}; reason: {HOSTILE}")
               for t in plain_texts(at))
    assert not any("pwned" in text for text in markdown_texts(at))
    # a manual value is four eyes: sara sends it; she cannot approve it (she set the valuation)
    assert next_action(at) == "Send for approval"
    at = submit(at, "send_for_approval", comment="Valued from a DEX quote.")
    assert at.button(key="submit_approve").disabled
    at = open_case("ada", world.unlisted)  # an admin who did not prepare it may
    assert not at.button(key="submit_approve").disabled
    at = open_case("bob", world.unlisted)
    assert next_action(at) == "Approve" and not at.button(key="submit_approve").disabled
    texts = plain_texts(at)
    assert any("fee 8 from the valuation of 10 USD per unit by sara" in t for t in texts)
    # the approval asks for a confirmation restating the payout; cancelling changes nothing
    at.button(key="submit_approve").click().run()
    assert any("fee 8 from the valuation of 10 USD per unit by sara" in t for t in plain_texts(at))
    at.button(key="cancel_approve").click().run()
    assert status(wb, world.unlisted) == CaseStatus.IN_REVIEW
    at = submit(at, "approve", comment="ok")
    assert succeeded(at) and status(wb, world.unlisted) == CaseStatus.APPROVED
    approval = last_event(wb, world.unlisted)
    assert (approval.actor, approval.details["valuation"]["set_by"]) == ("bob", ["sara"])
    timeline = frame_with(at, "what")
    [what] = [w for a, w in zip(timeline["action"], timeline["what"], strict=True) if a == "approve"]
    assert what.endswith("; valuation 10 USD by sara")


def test_the_valuer_s_own_approval_is_refused_on_the_page(wb: Workbench, world: World) -> None:
    """alice (an approver) values and sends the case herself: her button is disabled, and the service
    behind it refuses her anyway."""
    at = value_it(open_case("alice", world.unlisted), "10")
    at = submit(at, "send_for_approval")
    assert at.button(key="submit_approve").disabled
    assert any("You set the valuation of this case" in str(c.value) for c in at.caption) or any(
        "You prepared this case" in str(c.value) for c in at.caption)


def test_the_workbench_path_is_refused_by_the_service_when_the_valuation_does_not_hold(
    wb: Workbench, world: World
) -> None:
    """The page showed an approvable case; meanwhile an insider lowered the fee on the row. The
    approval through the page is refused with the service's message; nothing changes."""
    case = wb.cases.set_valuation(world.unlisted, SARA, expected_version=wb.cases.get(world.unlisted).case.version,
                                  price_usd="10", source="DEX", reason="none listed")
    wb.cases.send_for_approval(world.unlisted, SARA, expected_version=case.version)
    at = open_case("bob", world.unlisted)
    assert not at.button(key="submit_approve").disabled
    with wb.db.write() as session:
        session.execute(update(Case).where(col(Case.reference) == world.unlisted)
                        .values(fee_amount=Decimal(0), net_amount=Decimal(25)))
    version = wb.cases.get(world.unlisted).case.version
    at = submit(at, "approve")
    assert any("This action does not apply to the case as it is now" in str(e.value) for e in at.error)
    assert any("does not match its audited set_valuation event" in t for t in plain_texts(at))
    assert wb.cases.get(world.unlisted).case.version == version and wb.cases.payout(world.unlisted) is None


def test_an_unvalued_case_is_refused_on_the_page_even_if_its_button_is_pressed(wb: Workbench, world: World) -> None:
    """The page disables Approve on a case without a price; a crafted request that opens the
    confirmation anyway (the button bypassed) is refused by the service and the page says why."""
    case = wb.cases.send_for_approval(world.unlisted, SARA,
                                      expected_version=wb.cases.get(world.unlisted).case.version)
    at = open_case("bob", world.unlisted)
    assert at.button(key="submit_approve").disabled
    at.session_state["wb_case_confirm"] = (Seen(world.unlisted, case.version), "approve")
    at.run()
    at.button(key="confirm_approve").click().run()
    assert any("This action does not apply to the case as it is now" in str(e.value) for e in at.error)
    assert any("set a valuation" in t for t in plain_texts(at))
    assert wb.cases.get(world.unlisted).case.version == case.version and status(wb, world.unlisted) == "in_review"


@dataclass(frozen=True)
class Seen:
    """What a page showed (the case page's own ``Shown``: a reference and a version)."""

    reference: str
    version: int


# ------------------------------------------------------------------------------ readable rows, the sender
def test_evidence_and_timeline_are_readable_rows_with_json_behind_expanders(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    case = wb.cases.get(world.small).case
    transfers = frame_with(at, "amount (base units)")
    assert list(transfers["amount"]) == ["500"] and list(transfers["amount (base units)"]) == ["500000000"]
    codes = [c.value for c in at.code]
    assert case.tx_hash in codes and case.deposit_address in codes  # copy buttons
    timeline = frame_with(at, "what")
    assert list(timeline["action"]) == ["submit", "chain_result", "note"]
    assert list(timeline["who"])[-1] == "sara (specialist)"
    assert list(timeline["what"])[1] == "uncredited_valid, yes, credit, fee 0"
    assert any("details" in str(j.value) for j in at.json)  # the whole events, behind an expander
    reasons = frame_with(at, "reason")
    assert "evidence" not in reasons.columns and "found" in set(reasons["code"])
    assert any(e.label == "Fee breakdown (every term)" for e in at.expander)


def test_other_cases_from_this_sender_are_links(wb: Workbench, world: World) -> None:
    at = open_case("sara", world.small)
    assert "Other cases from this sender" in [h.value for h in at.subheader]
    links = at.get("page_link")
    labels = [link.proto.label for link in links]
    # every seeded deposit was sent by the same funding account
    assert any(label.startswith(f"{world.big}: in_review, uncredited_valid, 5000 USDT on ethereum")
               for label in labels)
    assert not any(label.startswith(f"{world.small}:") for label in labels)
    assert len(labels) <= 10
    # following a link (the URL's ref) opens that case, even though another was shown last
    at.query_params["ref"] = world.big
    at.run()
    assert [t.value for t in at.title] == [f"Case {world.big}"]


def test_the_sender_read_on_both_databases(seeded_any: tuple[Workbench, World]) -> None:
    wb, world = seeded_any
    case = wb.cases.get(world.small).case
    with wb.db.read() as session:
        sender, others = case_summary.cases_from_sender(session, case, list(wb.config.networks), limit=3)
        _nobody, none = case_summary.cases_from_sender(session, wb.cases.get(world.not_found).case,
                                                       list(wb.config.networks))
    assert sender is not None and sender.lower() == case_summary.sender_of(case).lower()  # type: ignore[union-attr]
    assert len(others) == 3 and world.small not in [o.reference for o in others]
    assert [o.created_at for o in others] == sorted((o.created_at for o in others), reverse=True)
    assert (_nobody, none) == (None, [])
