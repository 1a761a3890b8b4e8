"""Case: the appeal, the chain evidence per network, the decision, flags, the payout, actions, audit timeline.

The page in one look (issue 23): a summary line at the top (``recovery.case_summary``), the money
figures the decision allows (no fee and no net where nothing is paid, and why; amounts in asset units,
base units on hover), the next action the case's state calls for first and prominent beside it (the
other actions below, one expander each), money-moving actions confirmed in a dialog, hashes and
addresses with copy buttons, evidence and timeline as readable rows (JSON behind expanders), the fee
breakdown folded to its sentence, and the other cases whose deposit came from the same sender.
A fee the engine could not set (no price) waits for a valuation (``recovery.valuation``), shown to
the approver with who set it, its price, source and reason.

Every action is a form whose submit callback carries the version this page showed; the service
refuses it (Conflict) if the case changed since, and the page says so and shows the new state.

The payout (issue 17): approval fixes the exact payout, which the page shows with its state, who
approved it, its payout SLA and, for a refund, the re-check's on-chain proof (or what did not
match). The forms that pay (record the refund, mark credited) restate that payout; a four-eyes
rule the page can tell in advance (the approver paying, a preparer approving) disables the button
and says why, and the service enforces every rule whatever the page shows.

Ownership evidence (issue 18): where the credit does not follow from our books, the page shows what
proof it needs, each signed message with its verification result and each withdrawal record
(images inline, PDFs to open), with Accept and Reject (with a reason) for a record waiting for
review. Accepting is preparing the case: the approval is then someone else's (the service refuses
it otherwise, and refuses any approval without accepted evidence).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import Workbench, current
from app.workbench.payout_reads import CasePayouts, PayoutClock, case_payouts
from recovery import case_summary, payouts, queues, valuation
from recovery.errors import NotFound, ServiceError
from recovery.evidence import ACCEPTED, SUBMITTED, EvidenceService
from recovery.evidence_records import EvidenceDocument, OwnershipEvidence
from recovery.fees import units_to_amount
from recovery.i18n import translator
from recovery.lifecycle import ACTIONS, allowed_actions
from recovery.models import Case, Payout
from recovery.plain_values import EXACT
from recovery.public import conversation, open_question
from recovery.rules import Decision
from recovery.services import REJECTION_REASONS, Actor, rejection_reason_for
from recovery.vocabulary import CaseStatus, Category, Resolution, Role

#: flags and how loudly to show them
FLAG_BANNERS: dict[str, tuple[str, str]] = {
    "contested": ("error", "**Contested**: another user appealed the same transaction. Check who owns it."),
    "counterfeit": ("error", "**Counterfeit token**: it imitates a listed asset. Never credit it."),
    "amount_mismatch": ("warning", "**Amount mismatch**: the amount on chain differs from the claimed amount."),
    "credited_to_other_user": ("error", "**Credited to another user**: this deposit is already on another "
                                        "user's account. Credit this appellant only with accepted proof, and "
                                        "freeze the amount on that account first."),
    "other_users_address": ("error", "**Another user's address**: the deposit address belongs to another user. "
                                     "The appellant was told only that it is not an address of their account: "
                                     "reject it as not_our_address; the owner is credited through their own "
                                     "case."),
    "partial_payment": ("warning", "**Partial payment**: only part of the claimed amount arrived."),
    "expired": ("warning", "**Expired**: older than the recovery window of its fee rule."),
    "not_economical": ("warning", "**Not economical**: the fee would take the whole amount, or the value is "
                                  "too low."),
    "unrecognised_chain_data": ("warning", "**Unrecognised chain data**: the network's answer held something "
                                           "the adapter could not read with certainty."),
    "replaceable": ("warning", "**Replaceable**: an unconfirmed transaction its sender may still replace. "
                               "Never credit it before it confirms."),
    "refund_mismatch": ("error", "**Refund mismatch**: the recorded refund transaction does not prove the "
                                 "approved payout (see what was expected and what was found under Payout). "
                                 "The case is back in review: find out where the money went before anything "
                                 "else is paid."),
    "refund_overdue": ("warning", "**Refund overdue**: the recorded refund transaction is still not proven on "
                                  "chain. Check that it was broadcast."),
    "refund_overpaid": ("warning", "**Refund overpaid**: the refund proven on chain paid more than the approved "
                                   "amount. Recover the difference."),
}
NOBODY = "(nobody)"
#: the order actions appear in; "chain_result" is the re-check button
ACTION_ORDER = ("assign", "note", "chain_result", "request_info", "provide_info", "override_category",
                "set_valuation", "send_for_approval", "approve", "change_payout", "reject", "record_refund",
                "mark_credited", "close", "reopen")
ACTION_TITLES = {
    "assign": "Assign", "note": "Internal note", "chain_result": "Re-check on the chains now",
    "request_info": "Request information from the user", "provide_info": "Record the user's answer (from chat)",
    "override_category": "Override the category", "set_valuation": "Set valuation",
    "send_for_approval": "Send for approval", "approve": "Approve",
    "change_payout": "Change payout", "reject": "Reject", "record_refund": "Record the refund transaction",
    "mark_credited": "Mark credited", "close": "Close", "reopen": "Reopen",
}
#: the actions whose button is the page's main one
PRIMARY = ("approve", "mark_credited", "record_refund")
#: actions that move money: their button asks for a confirmation (a dialog restating the payout)
MONEY_MOVING = ("approve", "mark_credited", "record_refund", "change_payout")
#: the session key of the confirmation waiting in a dialog: (what the page showed, the action)
CONFIRM_KEY = "wb_case_confirm"
#: what the page rendered last (a link to another case changes the URL's ``ref``)
SHOWN_KEY = "wb_case_shown"
EN = translator("en")
#: resolutions that pay something (a payout is approved and recorded for them)
PAYING = (Resolution.CREDIT.value, Resolution.REFUND.value)
#: how each payout state reads (fixed text), and how loudly
PAYOUT_STATES: dict[str, tuple[str, str]] = {
    "approved": ("info", "**Approved, waiting to be paid.** Pay exactly this payout, then record it; whoever "
                         "records it must not be the approver."),
    "executed": ("info", "**Paid, recorded.**"),
    "confirmed": ("success", "**Refund proven on chain.**"),
    "mismatch": ("error", "**The recorded refund does not prove this payout.** Nothing more is paid until a "
                          "person finds out what happened; a payout change needs a new approval."),
    "cancelled": ("info", "**Cancelled** (a payout change or a rejection)."),
}


def _value(key: str) -> str:
    return str(st.session_state.get(key) or "").strip()


#: the template choice meaning "no template: my own words"
OWN_WORDS = "(my own words)"


@dataclass(frozen=True)
class Shown:
    """What the page showed when the form was drawn."""

    reference: str
    version: int


def _run(shown: Shown, action: str, call: Callable[[Actor, int], Any], clear: tuple[str, ...] = ()) -> None:
    info = auth.signed_in()
    if info is None:
        return
    try:
        result = call(info.actor, shown.version)
    except ServiceError as exc:
        ui.service_error(exc, seen_version=shown.version)
        return
    if isinstance(result, Case):
        ui.flash("success", f"{ACTION_TITLES[action]}: done. The case is now {result.status} "
                            f"(version {result.version}).")
    for key in clear:
        st.session_state[key] = ""


def _submit(shown: Shown, action: str) -> None:
    """Form callback: collect the form's fields and call the service with the version shown."""
    wb = current()
    svc = wb.cases
    ref = shown.reference
    key = f"act_{action}_"
    if action == "assign":
        target = _value(key + "assignee")
        assignee = None if target in ("", NOBODY) else target
        _run(shown, action, lambda a, v: svc.assign(ref, assignee, a, expected_version=v))
    elif action == "note":
        _run(shown, action, lambda a, v: svc.note(ref, _value(key + "text"), a, expected_version=v), (key + "text",))
    elif action == "request_info":
        chosen = _value(key + "template")
        template = wb.config.templates.get(chosen) if chosen not in ("", OWN_WORDS) else None
        message = _value(key + "message") or (template.message if template is not None else "")
        used = chosen if template is not None and message == template.message else None
        _run(shown, action, lambda a, v: svc.request_info(ref, message, a, expected_version=v, template=used),
             (key + "message",))
    elif action == "provide_info":
        _run(shown, action, lambda a, v: svc.provide_info(ref, _value(key + "message"), a, expected_version=v),
             (key + "message",))
    elif action == "override_category":
        _run(shown, action, lambda a, v: svc.override_category(
            ref, _value(key + "category"), _value(key + "reason"), a, expected_version=v), (key + "reason",))
    elif action == "set_valuation":
        _run(shown, action, lambda a, v: svc.set_valuation(
            ref, a, expected_version=v, price_usd=_value(key + "price_usd"), source=_value(key + "source"),
            reason=_value(key + "reason")), (key + "price_usd", key + "source", key + "reason"))
    elif action == "send_for_approval":
        _run(shown, action, lambda a, v: svc.send_for_approval(ref, a, expected_version=v,
                                                               comment=_value(key + "comment")), (key + "comment",))
    elif action == "approve":
        _run(shown, action, lambda a, v: svc.approve(ref, a, expected_version=v, comment=_value(key + "comment")),
             (key + "comment",))
    elif action == "change_payout":
        _run(shown, action, lambda a, v: svc.change_payout(
            ref, a, expected_version=v, reason=_value(key + "reason"), to_address=_value(key + "to_address") or None,
            memo=_value(key + "memo") or None,
        ), (key + "to_address", key + "memo", key + "reason"))
    elif action == "reject":
        _run(shown, action, lambda a, v: svc.reject(ref, _value(key + "reason_code"), a, expected_version=v,
                                                    message=_value(key + "message")), (key + "message",))
    elif action == "record_refund":
        # no address here: the refund goes where the approved payout says (a new one is a payout change)
        _run(shown, action, lambda a, v: svc.record_refund(ref, _value(key + "tx_hash"), a, expected_version=v),
             (key + "tx_hash",))
    elif action == "mark_credited":
        _run(shown, action, lambda a, v: svc.mark_credited(
            ref, a, expected_version=v, ledger_reference=_value(key + "ledger")), (key + "ledger",))
    elif action == "close":
        _run(shown, action, lambda a, v: svc.close(ref, a, expected_version=v))
    elif action == "reopen":
        _run(shown, action, lambda a, v: svc.reopen(ref, _value(key + "reason"), a, expected_version=v),
             (key + "reason",))
    elif action == "chain_result":
        _recheck(wb, shown)


def _recheck(wb: Workbench, shown: Shown) -> None:
    """Ask the chains again now (the checker applies the result with its own optimistic version)."""
    info = auth.signed_in()
    if info is None:
        return
    try:
        case = wb.cases.get(shown.reference).case
    except NotFound as exc:
        ui.service_error(exc)
        return
    if case.version != shown.version:
        ui.flash("warning", "Someone else changed this case since you opened it, so it was not re-checked. "
                            "The page now shows the current case.",
                 [f"You saw version {shown.version}; it is now version {case.version}."])
        return
    outcomes = wb.checker.check([shown.reference], actor=info.actor, timeout=wb.settings.recheck_timeout_seconds)
    outcome = outcomes[0] if outcomes else None
    if outcome is None:
        ui.flash("error", "The case could not be re-checked.")
    elif outcome.error:
        ui.flash("warning", "The re-check result was not applied:", [outcome.error])
    elif not outcome.conclusive:
        ui.flash("warning", "Some networks did not answer: the case waits for the chains (never 'not found' "
                            "because of an outage). Try again later.")
    elif outcome.changed:
        ui.flash("success", f"Re-checked: the case is now {outcome.new_status}, "
                            f"category {outcome.category or 'none'}.")
    else:
        ui.flash("info", "Re-checked: the chains say the same as before; nothing changed.")


def _review_evidence(shown: Shown, evidence_id: int, accept: bool) -> None:
    """Accept or reject a withdrawal record with the case version the page showed."""
    wb = current()
    info = auth.signed_in()
    if info is None:
        return
    service = EvidenceService(wb.db, wb.config, wb.cases.clock)
    actor = info.actor
    try:
        if accept:
            service.accept(shown.reference, evidence_id, actor.name, actor.role, expected_version=shown.version,
                           comment=_value(f"ev_reason_{evidence_id}"))
        else:
            service.reject(shown.reference, evidence_id, actor.name, actor.role,
                           reason=_value(f"ev_reason_{evidence_id}"), expected_version=shown.version)
    except ServiceError as exc:
        ui.service_error(exc, seen_version=shown.version)
        return
    verb = "accepted: you prepared this case, so someone else approves it" if accept else "rejected"
    ui.flash("success", f"Evidence {evidence_id} {verb}.")
    st.session_state[f"ev_reason_{evidence_id}"] = ""


def _ownership(wb: Workbench, case: Case, role: Role) -> None:
    """What proof of ownership the credit needs, and each piece given, with its review."""
    service = EvidenceService(wb.db, wb.config, wb.cases.clock)
    _case, need, rows = service.evidence(case.reference or "")
    if need is None and not rows:
        return
    st.subheader("Ownership evidence")
    own = service.ownership(case.reference or "")
    if need is not None:
        accepted = own.status == ACCEPTED  # only proof of the current requirement counts
        text = (f"The credit does not follow from our books: approval needs accepted proof that the appellant "
                f"sent {need.tx_hash} from {need.sender} ({' or '.join(need.kinds)}).")
        if accepted:
            st.success("Ownership proven. " + text)
        else:
            st.warning(text + " Approval is refused until then.")
        if need.not_offered:
            st.caption(f"Signed messages are not offered here: {need.not_offered}")
    shown = Shown(case.reference or "", case.version)
    may_review = role in (Role.SPECIALIST, Role.APPROVER, Role.ADMIN) and CaseStatus(case.status) in ACTIONS[
        "accept_evidence"].moves
    for row in rows:
        if row.id not in own.current:
            st.caption(f"Evidence {row.id} was given for a former decision: it no longer counts.")
        _evidence_row(service, row, shown, may_review and row.id in own.current)


#: an uploaded image larger than this is never drawn (a few hundred kilobytes of PNG can declare
#: billions of pixels: decoding it would take the reviewer's page down)
MAX_DRAWN_PIXELS = 40_000_000


def _decodes(content: bytes) -> bool:
    """Whether an uploaded PNG or JPEG is an image Pillow can read and of a size fit to draw
    (checked from its header before anything is decoded)."""
    import warnings
    from io import BytesIO

    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(BytesIO(content)) as image:
                width, height = image.size
                if width * height > MAX_DRAWN_PIXELS:
                    return False
                image.verify()
    except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning, OSError,
            ValueError, SyntaxError):
        return False
    return True


def _show_document(document: EvidenceDocument, *, label: str, name: str, key: str, caption: str | None = None) -> None:
    """A stored document: an image drawn inline when it decodes and is small enough, and any
    document to open (its file name ``name`` plus the extension of its checked media type)."""
    if document.media_type in ("image/png", "image/jpeg"):
        if _decodes(document.content):
            st.image(document.content, caption=caption)
        else:  # the right magic bytes, but no image any decoder reads, or one too large: never drawn
            st.warning("This file starts like an image but cannot be decoded, or is too large to show; "
                       "open it with care.")
    st.download_button(label, data=document.content, mime=document.media_type,
                       file_name=f"{name}.{document.media_type.rsplit('/', 1)[-1]}", key=key)


def _evidence_row(service: EvidenceService, row: OwnershipEvidence, shown: Shown, may_review: bool) -> None:
    with st.container(border=True):
        st.markdown(f"**Evidence {row.id}: {row.kind.replace('_', ' ')}**, {row.status}")
        # what the user gave (a file name, a signature) is shown as plain text, never as markdown
        facts = [f"given by {row.submitted_by} at {row.submitted_at.isoformat(timespec='seconds')}"]
        if row.reviewer:
            facts.append(f"{row.status} by {row.reviewer}"
                         + (f" at {row.reviewed_at.isoformat(timespec='seconds')}" if row.reviewed_at else ""))
        st.text("; ".join(facts))
        if row.reason and row.status == "rejected":
            st.text(f"Reason: {row.reason}")
        if row.kind == "signed_message":
            st.caption("Verification result (by the chain family's library)")
            st.json(row.verification or {}, expanded=False)
            return
        st.text(f"{row.media_type}, {row.size} bytes, SHA-256 {row.document_sha256}"
                + (f", file name {row.file_name!r}" if row.file_name else ""))
        document = service.document(row.document_sha256 or "")
        if document is not None:
            _show_document(document, label="Open the document", name=f"evidence-{row.id}", key=f"ev_open_{row.id}",
                           caption=f"Evidence {row.id}")
        if may_review and row.status == SUBMITTED:
            st.text_input("Comment (accept) or reason (reject, required)", key=f"ev_reason_{row.id}")
            buttons = st.columns(2)
            buttons[0].button("Accept", key=f"ev_accept_{row.id}", type="primary",
                              on_click=_review_evidence, args=(shown, row.id or 0, True),
                              help="The record names this transaction and amount. Accepting counts as preparing "
                                   "the case: someone else approves it.")
            buttons[1].button("Reject", key=f"ev_reject_{row.id}", on_click=_review_evidence,
                              args=(shown, row.id or 0, False))


# ------------------------------------------------------------------------------ rendering
def _needs_four_eyes(wb: Workbench, case: Case) -> bool:
    """As the service decides it: above the threshold, of unknown value, or valued by hand."""
    policy = wb.config.policy
    if case.resolution not in policy.four_eyes_resolutions:
        return False
    return (case.value_usd is None or valuation.manually_valued(case)
            or case.value_usd > policy.four_eyes_above_usd)


def _copyable(label: str, value: str | None) -> None:
    """A hash or an address whole, with a copy button (``st.code``: plain text, never Markdown)."""
    if not value:
        return
    st.caption(label)
    st.code(value, language=None, wrap_lines=True)


def _summary(wb: Workbench, case: Case, facts: CasePayouts) -> None:
    """The case in one line (plain text: it names users, assets and addresses)."""
    line = case_summary.summary_line(case, wb.config, payout_state=facts.live.state if facts.live else None)
    with st.container(border=True, key="case_summary"):
        st.text(line)


def _status_line(case: Case) -> None:
    """Status, category, resolution and value in one line of badges (codes of the vocabulary and figures
    the system wrote: safe as Markdown), the version the page acts on below it."""
    value = ui.usd(case.value_usd) if case.value_usd is not None else "unknown"
    if valuation.manually_valued(case):
        value += " (manual valuation)"
    st.markdown(f"Status :blue-badge[{CaseStatus(case.status).value}] · Category "
                f":violet-badge[{Category(case.category).value if case.category else '-'}] · Resolution "
                f":green-badge[{Resolution(case.resolution).value if case.resolution else '-'}] · Value {value}")
    st.caption(f"Version {case.version}: the page acts on this version (a change made meanwhile by someone else "
               "is refused, never overwritten).")


def _money(wb: Workbench, case: Case) -> None:
    """Amount, fee and net as the decision allows them: none where nothing is paid (and why)."""
    money = case_summary.money_view(case, wb.config)
    units = _base_units(case.amount, money.decimals)
    cells = st.columns(3)
    cells[0].metric("Amount", money.amount, help=f"{units} base units" if units is not None else None)
    if not money.payable:
        cells[1].metric("Fee", "none", help="Nothing is paid out, so no fee is charged.")
        cells[2].metric("To the user", "nothing")
        st.caption("No fee and nothing to the user: " + money.note if money.note else "Nothing is paid.")
        return
    if money.fee_state == "undetermined":
        cells[1].metric("Fee", "not set", help="No USD price for this asset: set a valuation.")
        cells[2].metric("To the user", "after a valuation")
        st.warning("**Fee not set**: " + (money.note or "no USD price for this asset") + ".")
        return
    fee_units = _base_units(case.fee_amount, money.decimals)
    net_units = _base_units(case.net_amount, money.decimals)
    cells[1].metric("Fee", money.fee or "-", help=(f"{fee_units} base units" if fee_units is not None else "")
                    + (f"; {money.fee_usd}" if money.fee_usd else ""))
    label = "Credit" if case.resolution == Resolution.CREDIT.value else "Refund"
    cells[2].metric(f"{label} (net)", money.net or "-", help=f"{net_units} base units" if net_units is not None
                    else None)
    current = valuation.current_valuation(case)
    if money.fee_state == "valued" and current is not None:
        st.warning(f"**Fee from a manual valuation** ({EN.usd(current.price_usd)} per unit, value "
                   f"{money.value_usd or '-'}): whoever set it cannot approve the case.")
        st.text(f"Set by {current.by} at {current.at[:16].replace('T', ' ')} UTC; source: {current.source}; "
                f"reason: {current.reason}")


def _base_units(amount: Decimal | None, decimals: int | None) -> int | None:
    if amount is None or decimals is None:
        return None
    scaled = amount.scaleb(decimals, context=EXACT)
    return int(scaled) if scaled == scaled.to_integral_value() else None


def _flags(case: Case) -> None:
    for flag in case.flags:
        kind, text = FLAG_BANNERS.get(flag, ("warning", "**Flag**: an unknown flag is set on this case."))
        (st.error if kind == "error" else st.warning)(text)


def _appeal(wb: Workbench, case: Case) -> None:
    st.subheader("Appeal")
    _copyable("Transaction", case.tx_hash)
    _copyable("Deposit address", case.deposit_address)
    ui.field_table([
        ("user", case.user_id), ("origin", case.origin), ("claimed network", case.network),
        ("asset", case.asset), ("memo", case.memo), ("claimed amount", ui.money(case.claimed_amount)),
        ("opened", ui.when(case.created_at)), ("SLA due", ui.when(case.sla_due_at)),
        ("assignee", case.assignee), ("last change", ui.when(case.updated_at)),
        ("chain checks", f"{case.check_count} (last {ui.when(case.last_checked_at)})"),
    ], key="case_appeal")


def _decision(wb: Workbench, case: Case) -> Decision | None:
    st.subheader("Decision")
    if not case.decision:
        st.info("No decision yet: the case waits for the chains.")
        return None
    try:
        decision = Decision.from_json(case.decision)
    except (KeyError, ValueError, TypeError):
        st.warning("The stored decision has an unexpected shape; showing it raw.")
        st.json(case.decision)
        return None
    ui.field_table([
        ("category", case.category + (" (overridden)" if case.category_override else "") if case.category else "-"),
        ("engine category", decision.category.value),
        ("also applies", ", ".join(c.value for c in decision.also) or "-"),
        ("recoverable", decision.recoverable.value), ("resolution", decision.resolution.value),
        ("found on", decision.network or "nowhere"), ("asset", decision.asset),
        ("value", ui.usd(case.value_usd) + (" (manual valuation)" if valuation.manually_valued(case) else "")),
        ("credit to user", decision.credited_user_id),
        ("refund to", case.refund_address), ("refund transaction", case.refund_tx_hash),
        ("rules version", decision.rules_version), ("decided", ui.when(decision.decided_at)),
    ], key="case_decision")
    return decision


def _reasons(decision: Decision) -> None:
    st.subheader("Reasons")
    rows = [{"reason": r.text, "code": r.code, "team only": "yes" if r.internal else ""} for r in decision.reasons]
    if not rows:
        st.caption("No reasons recorded.")
        return
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="case_reasons", column_config={
                     "reason": st.column_config.TextColumn("reason", width="large"),
                     "code": st.column_config.TextColumn("code", width="small"),
                     "team only": st.column_config.TextColumn("team only", width="small")})
    with st.expander("The reasons' evidence (JSON)"):
        st.json([{"code": r.code, "evidence": dict(r.evidence)} for r in decision.reasons], expanded=False)


def _fee(wb: Workbench, case: Case, decision: Decision) -> None:
    """The fee in its one sentence (the decision's own), the breakdown behind an expander."""
    fee = decision.fee
    st.subheader("Fee")
    money = case_summary.money_view(case, wb.config)
    if fee is None:
        st.caption("No fee was computed for this decision.")
        return
    if not money.payable:
        st.caption("No fee: " + (money.note or "nothing is paid out") + ". What the engine computed is only in "
                   "the breakdown below, for the record.")
    else:
        sentence = next((r.text for r in decision.reasons if r.code == "fee"), None)
        if sentence:
            st.text(sentence)
        if money.fee_state in ("undetermined", "valued"):
            st.caption(money.note if money.fee_state == "undetermined" else
                       "The engine's sentence is without a price; the fee shown above is the valuation's.")
    with st.expander("Fee breakdown (every term)"):
        _fee_table(fee)


def _fee_table(fee: Any) -> None:
    rule = ("no rule matched (free)" if fee.rule_index is None
            else f"fees.toml #{fee.rule_index + 1}: category={fee.rule_category}, network={fee.rule_network}, "
                 f"asset={fee.rule_asset}")
    ui.field_table([
        ("rule", rule), ("amount", ui.money(fee.amount)), ("price (USD)", ui.money(fee.price_usd)),
        ("value (USD)", ui.money(fee.value_usd)), ("flat (USD)", ui.money(fee.flat_usd)),
        ("percent", ui.money(fee.percent)), ("free below (USD)", ui.money(fee.free_below_usd)),
        ("percent term (USD)", ui.money(fee.percent_term_usd)), ("minimum (USD)", ui.money(fee.min_usd)),
        ("maximum (USD)", ui.money(fee.max_usd)), ("fee (USD, clamped)", ui.money(fee.fee_usd)),
        ("fee (asset, rounded up)", ui.money(fee.fee)), ("fee valued (USD)", ui.money(fee.fee_value_usd)),
        ("net", ui.money(fee.net)), ("minimum value (USD)", ui.money(fee.min_value_usd)),
        ("max age (days)", fee.max_age_days), ("capped at the amount", "yes" if fee.capped else "no"),
        ("below minimum value", "yes" if fee.below_min_value else "no"),
        ("notes", " ".join(fee.notes)),
    ], key="case_fee")


def _evidence(wb: Workbench, case: Case) -> None:
    st.subheader("Chain evidence")
    evidence = queues.evidence_for(wb.db, [case.tx_hash, case.refund_tx_hash or ""])
    decimals = case_summary.decimals_of(case, wb.config)
    if not evidence:
        st.caption("No network has reported this transaction yet.")
    for item in evidence:
        obs = item.observation
        network = wb.config.networks.get(obs.network)
        kind = "refund" if obs.tx_hash == case.refund_tx_hash and obs.tx_hash != case.tx_hash else "deposit"
        with st.container(border=True):
            head = st.columns([3, 1])
            head[0].markdown(f"**{obs.network}** · {kind} transaction · {obs.status}")
            if network is not None:
                head[1].link_button("Open in explorer", network.explorer_link(obs.tx_hash))
            _copyable("Transaction", obs.tx_hash)
            sender = obs.evidence.get("sender")
            _copyable("Sender", str(sender) if sender else None)
            ui.field_table([
                ("block", obs.block_number), ("block hash", obs.block_hash),
                ("confirmations", obs.confirmations), ("observed", ui.when(obs.observed_at)),
                ("memo", obs.evidence.get("memo")),
            ], key=f"case_obs_{obs.network}_{kind}")
            _transfers(case, item.transfers, decimals, key=f"case_transfers_{obs.network}_{kind}")


def _transfers(case: Case, transfers: list[Any], decimals: int | None, *, key: str) -> None:
    """The transfers of one transaction as rows: amounts in asset units where the asset is the case's
    (its decimals are known), base units always; addresses whole (a cell copies)."""
    if not transfers:
        st.caption("No transfers in this transaction.")
        return
    contract = next((str(r.get("contract") or "") for r in (case.decision or {}).get("transfers") or []
                     if isinstance(r, dict)), None)
    rows = []
    for t in transfers:
        same = decimals is not None and contract is not None and (t.contract or "").lower() == contract.lower()
        amount = (EN.number(units_to_amount(int(t.amount_base_units), decimals)) if same and decimals is not None
                  else "-")
        rows.append({"#": str(t.transfer_index), "kind": t.kind, "amount": amount,
                     "amount (base units)": str(int(t.amount_base_units)), "token contract": t.contract or "(native)",
                     "from": t.sender, "to": t.recipient, "memo": t.memo or "-"})
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key=key, column_config={
        "#": st.column_config.TextColumn("#", width="small"),
        "amount": st.column_config.TextColumn("amount", help="In asset units (the asset's decimals)."),
        "amount (base units)": st.column_config.TextColumn("amount (base units)"),
        "from": st.column_config.TextColumn("from", width="medium"),
        "to": st.column_config.TextColumn("to", width="medium"),
    })


def _conversation(wb: Workbench, case: Case, events: list[Any]) -> None:
    """The questions to the user, the reminders and the answers with their attachments, inline."""
    entries = conversation(events)
    if not entries:
        return
    st.subheader("Conversation with the user")
    question = open_question(case, events, wb.config)
    if question is not None and case.status == CaseStatus.NEEDS_INFO.value:
        st.info(f"Waiting for the user's answer (asked {question['asked_at'][:16].replace('T', ' ')} UTC; "
                f"closes {str(question['closes_at'])[:10]} without one). The SLA clock is stopped meanwhile.")
    store = EvidenceService(wb.db, wb.config, wb.cases.clock)
    for n, entry in enumerate(entries):
        with st.container(border=True):
            who = "The team" if entry["by"] == "team" else "The user"
            st.markdown(f"**{who}: {entry['kind'].replace('_', ' ')}**, {entry['at'][:16].replace('T', ' ')} UTC")
            st.text(entry["message"])  # the user's words as plain text, never markdown
            for m, item in enumerate(entry["attachments"]):
                st.text(f"{item['file_name'] or '(no name)'}: {item['media_type']}, {item['size']} bytes, "
                        f"SHA-256 {item['sha256']}")
                document = store.document(item["sha256"])
                if document is None:
                    st.warning("The attachment is missing from the document store.")
                    continue
                _show_document(document, label="Open the attachment", name=f"answer-{n}-{m}", key=f"conv_open_{n}_{m}")


#: the detail keys worth a word in the timeline's "what" column, in order
_TIMELINE_KEYS = ("text", "message", "comment", "reason", "reason_code", "assignee", "category", "outcome",
                  "price_usd", "source", "fee", "net", "ledger_reference", "refund_tx_hash", "flag", "evidence_id",
                  "kind")


def _what(action: str, details: dict[str, Any] | None) -> str:
    """An event's details in a few words (the whole JSON is behind the expander)."""
    details = details or {}
    if action == "note":
        return str(details.get("text") or "")
    if action == "approve" and isinstance(details.get("payout"), dict):
        payout = details["payout"]
        target = payout.get("to_user_id") or payout.get("to_address") or "-"
        valued = details.get("valuation")
        extra = f"; valuation {valued.get('price_usd')} USD by {valued.get('by')}" if isinstance(valued, dict) else ""
        return (f"{payout.get('kind')} {payout.get('amount')} {payout.get('asset')} on {payout.get('network')} "
                f"to {target}{extra}")
    if action == "chain_result" and details.get("outcome") == "decided":
        return (f"{details.get('category')}, {details.get('recoverable')}, {details.get('resolution')}"
                + (f", fee {details.get('fee')}" if details.get("fee") is not None else ""))
    parts = []
    for key in _TIMELINE_KEYS:
        value = details.get(key)
        if value not in (None, "", [], {}):
            parts.append(f"{key.replace('_', ' ')}: {value}")
    return "; ".join(parts)


def _timeline(wb: Workbench, events: list[Any]) -> None:
    st.subheader("Audit timeline")
    rows = [{"#": str(e.id), "when": ui.when(e.created_at), "who": f"{e.actor} ({e.actor_role})",
             "action": e.action, "status": f"{e.from_status or '-'} → {e.to_status or '-'}",
             "what": _what(e.action, e.details)} for e in events]
    st.dataframe(pd.DataFrame(rows), hide_index=True, width="stretch", key="case_timeline",
                 height=38 + 35 * min(len(rows), 15), column_config={
                     "#": st.column_config.TextColumn("#", width="small"),
                     "when": st.column_config.TextColumn("when", width="small"),
                     "action": st.column_config.TextColumn("action", width="small"),
                     "what": st.column_config.TextColumn("what", width="large"),
                 })
    with st.expander("Every event with its details (JSON)"):
        st.json([{"id": e.id, "when": ui.when(e.created_at), "actor": e.actor, "role": e.actor_role,
                  "action": e.action, "from": e.from_status, "to": e.to_status, "details": e.details}
                 for e in events], expanded=False)


# ------------------------------------------------------------------------------ the payout
def amount_text(amount: Decimal, units: Decimal | int, asset: str) -> str:
    """An amount in asset units with its base units: ``500 USDT (500000000 base units)``."""
    return f"{ui.money(amount, asset)} ({int(units)} base units)"


def payout_sla_text(clock: PayoutClock, now: datetime) -> str:
    waited = ui.duration(now - clock.approved_at)
    if clock.overdue(now):
        return f"overdue by {ui.duration(now - clock.due_at)} (approved {waited} ago; SLA {clock.sla_hours} h)"
    return f"due in {ui.duration(clock.due_at - now)} (approved {waited} ago; SLA {clock.sla_hours} h)"


def payout_summary(row: Payout) -> str:
    """One line naming exactly what is paid (shown as text: the asset and addresses come from chains)."""
    target = f"user {row.to_user_id}" if row.kind == Resolution.CREDIT.value else row.to_address or "-"
    line = f"{row.kind}: {amount_text(row.amount, row.amount_units, row.asset)} on {row.network} to {target}"
    return line + (f", memo {row.memo}" if row.memo else "")


def chain_symbol(case: Case, contract: str | None) -> str | None:
    """The symbol an unlisted token reports on chain (untrusted), when the asset is named by its contract."""
    for ref in (case.decision or {}).get("transfers") or []:
        if isinstance(ref, dict) and contract and str(ref.get("contract") or "").lower() == contract.lower():
            return str(ref.get("symbol") or "") or None
    return None


def _payout_rows(wb: Workbench, case: Case, row: Payout, now: datetime) -> list[tuple[str, Any]]:
    credit = row.kind == Resolution.CREDIT.value
    rows: list[tuple[str, Any]] = [
        ("payout", f"#{row.id} {row.kind}, {row.state}"),
        ("network", row.network), ("asset", row.asset), ("token contract", row.contract or "(native)"),
    ]
    if row.contract and row.asset == row.contract:
        rows.append(("symbol on chain (untrusted)", chain_symbol(case, row.contract)))
    rows += [
        ("decimals", row.decimals), ("amount", ui.money(row.amount, row.asset)),
        ("amount (base units)", int(row.amount_units)),
        ("from (our address)", row.from_address),
        ("credit to user" if credit else "to address", row.to_user_id if credit else row.to_address),
        ("memo", row.memo),
        ("approved by", row.approved_by), ("approved", ui.when(row.approved_at)),
        ("recorded by", row.executed_by), ("recorded", ui.when(row.executed_at)),
    ]
    if credit:
        rows.append(("ledger reference", row.ledger_reference))
    else:
        rows.append(("refund transaction", row.refund_tx_hash))
    if row.state == "approved":
        rows.append(("payout SLA", payout_sla_text(PayoutClock(row.approved_at, wb.config.policy.payout_sla_hours),
                                                    now)))
    return rows


#: how the keys of a refund proof's "expected" read
PROOF_LABELS = {"network": "network", "asset": "asset", "contract": "token contract", "to_address": "to address",
                "amount_units": "at least (base units)", "memo": "memo", "from": "from"}


def _proof(row: Payout) -> None:
    """The re-check's verdict on the recorded refund: what was expected, what was found."""
    proof = row.proof or {}
    outcome = str(proof.get("outcome") or "")
    st.markdown("**On-chain proof of the refund**")
    if outcome == "confirmed":
        st.success("Proven: the refund transaction succeeded, with the network's confirmations, and holds a "
                   "transfer of the approved asset from an address we hold to the approved address of the "
                   "approved amount.")
    elif outcome == "overpaid":
        st.warning("Proven, but it paid **more** than approved (flag refund_overpaid).")
    elif outcome == "failed":
        st.warning("The recorded refund transaction **failed** on chain: nothing moved. The approved payout "
                   "waits for a new transaction.")
    elif outcome == "mismatch":
        st.error("**Not proven**: the refund transaction is final but is not the approved payout.")
    else:
        st.caption("The re-check has not settled this refund yet.")
    tx = proof.get("failed_refund_tx_hash") or proof.get("refund_tx_hash")
    if tx:
        st.caption("Refund transaction checked:")
        st.text(str(tx))
    problems = [str(p) for p in proof.get("problems") or []]
    if problems:
        st.caption("What did not match:")
        for problem in problems:
            st.text(f"- {problem}")
    expected: dict[str, Any] = proof.get("expected") or {}
    found: dict[str, Any] = proof.get("found") or {}
    left, right = st.columns(2)
    with left:
        st.caption("Expected (the approved payout)")
        ui.field_table([(PROOF_LABELS.get(k, k), v) for k, v in expected.items()], key="case_proof_expected")
    with right:
        st.caption("Found on chain")
        ui.field_table([("status", found.get("status")), ("confirmations", found.get("confirmations")),
                        ("block", found.get("block_number"))], key="case_proof_found")
    transfers = [t for t in found.get("transfers") or [] if isinstance(t, dict)]
    st.caption("Transfers in the refund transaction")
    ui.table(
        [{"kind": t.get("kind"), "token contract": t.get("contract") or "(native)", "from": t.get("sender"),
          "to": t.get("recipient"), "amount (base units)": t.get("amount_units"), "memo": t.get("memo")}
         for t in transfers],
        ["kind", "token contract", "from", "to", "amount (base units)", "memo"], key="case_proof_transfers",
        empty="The transaction holds no transfer.",
    )


def _payout(wb: Workbench, case: Case, facts: CasePayouts) -> None:
    if case.resolution not in PAYING and not facts.history:
        return
    st.subheader("Payout")
    now = wb.now()
    live = facts.live
    table, status = st.columns([3, 2])
    if live is None:
        _proposed(wb, case, facts, table, status)
    else:
        with status:
            _payout_status(wb, live, now)
            _request(case, facts)
        with table:
            ui.field_table(_payout_rows(wb, case, live, now), key="case_payout")
        if live.kind == Resolution.REFUND.value and live.proof:
            _proof(live)
    earlier = [row for row in facts.history if live is None or row.id != live.id]
    if earlier:
        with st.expander(f"Earlier payouts of this case ({len(earlier)})"):
            ui.table(
                [{"payout": f"#{r.id}", "state": r.state, "kind": r.kind, "network": r.network, "asset": r.asset,
                  "amount": ui.money(r.amount), "base units": int(r.amount_units), "to": r.to_address or r.to_user_id,
                  "memo": r.memo, "approved by": r.approved_by, "approved": r.approved_at,
                  "refund transaction": r.refund_tx_hash,
                  "problems": "; ".join(str(p) for p in (r.proof or {}).get("problems") or [])}
                 for r in earlier],
                ["payout", "state", "kind", "network", "asset", "amount", "base units", "to", "memo", "approved by",
                 "approved", "refund transaction", "problems"], key="case_payout_history",
            )


def _payout_status(wb: Workbench, live: Payout, now: datetime) -> None:
    kind, text = PAYOUT_STATES.get(live.state, ("info", "**Payout**"))
    if live.state == "executed" and live.kind == Resolution.REFUND.value:
        text = ("**Refund transaction recorded**: the re-check proves it on chain (recipient, asset, amount, "
                "sender) before the case becomes refunded.")
    elif live.state == "executed":
        text = "**Credited**: the credit is booked (see the ledger reference) and in the credited-deposits book."
    {"success": st.success, "warning": st.warning, "error": st.error}.get(kind, st.info)(text)
    if live.state == "approved":
        clock = PayoutClock(live.approved_at, wb.config.policy.payout_sla_hours)
        if clock.overdue(now):
            st.error(f"**Payout SLA passed**: approved {ui.duration(now - live.approved_at)} ago and still "
                     f"not paid (payout SLA {clock.sla_hours} h).")
        else:
            st.caption(f"Payout SLA: to be paid within {clock.sla_hours} h of the approval "
                       f"({ui.duration(clock.due_at - now)} left).")


def _request(case: Case, facts: CasePayouts) -> None:
    if facts.request is not None:
        request = facts.request
        st.caption(f"Sent for approval {ui.when(request.sent_at)} by:")
        st.text(request.sent_by + (f": {request.comment}" if request.comment else ""))
    elif case.status == CaseStatus.IN_REVIEW.value and case.resolution in PAYING:
        st.caption("Not sent for approval yet.")


def _proposed(wb: Workbench, case: Case, facts: CasePayouts, table: Any, status: Any) -> None:
    """No live payout: what approval would fix, and whether the case was sent for approval."""
    if case.status != CaseStatus.IN_REVIEW.value or case.resolution not in PAYING:
        with status:
            st.caption("No payout is approved for this case.")
            _request(case, facts)
        return
    try:
        plan = payouts.plan_payout(case, wb.config)
    except ServiceError as exc:
        with status:
            st.warning("No exact payout can be fixed for this decision yet:")
            st.text(str(exc))
            _request(case, facts)
        return
    with status:
        st.info("**Not approved yet.** Approving fixes exactly this payout; changing it later is an audited "
                "payout change that needs a new approval.")
        _request(case, facts)
    target = ("credit to user", plan.to_user_id) if plan.kind is Resolution.CREDIT else ("to address", plan.to_address)
    with table:
        ui.field_table([
            ("payout", f"{plan.kind.value}, proposed"), ("network", plan.network), ("asset", plan.asset),
            ("token contract", plan.contract or "(native)"),
            *([("symbol on chain (untrusted)", chain_symbol(case, plan.contract))]
              if plan.contract and plan.asset == plan.contract else []),
            ("decimals", plan.decimals),
            ("amount", ui.money(plan.amount, plan.asset)), ("amount (base units)", plan.amount_units),
            ("from (our address)", plan.from_address), target, ("memo", plan.memo),
            ("fee undetermined", "yes: no price, the whole deposit is paid out" if plan.fee_undetermined else "no"),
        ], key="case_payout")


# ------------------------------------------------------------------------------ actions
def _waiting(facts: CasePayouts, kind: Resolution) -> Payout | None:
    live = facts.live
    return live if live is not None and live.state == "approved" and live.kind == kind.value else None


def _valuers(case: Case) -> set[str]:
    current = valuation.current_valuation(case)
    return {current.by} if current is not None else set()


def _approve_guard(wb: Workbench, case: Case, role: Role, me: str, facts: CasePayouts) -> bool:
    """Explain the four-eyes rules that apply; True when they forbid ``me`` to approve."""
    if me in facts.changers:
        st.caption("You changed this payout, so someone else must approve it.")
        return True
    if valuation.needs_valuation(case):
        st.warning("**No USD price for this asset**: its fee is not set. Set a valuation (price, source, "
                   "reason) first; someone else then approves it.")
        return True
    if me in _valuers(case):
        st.caption("You set the valuation of this case, so someone else must approve it.")
        return True
    if _needs_four_eyes(wb, case):
        rule = (f"Worth more than {wb.config.policy.four_eyes_above_usd} USD (or of unknown or manual value): "
                "an approver who did not prepare this case must approve it, once it was sent for approval.")
        blocked = role is Role.SPECIALIST or me in facts.preparers or facts.request is None
        (st.warning if blocked else st.caption)(rule)  # loud only when it stops you
        if role is Role.SPECIALIST:
            return True
        if me in facts.preparers:
            st.caption("You prepared this case (you filed, claimed, reopened or sent it, overrode its category, "
                       "changed its payout or accepted its evidence), so you cannot also approve it.")
            return True
        if facts.request is None:
            st.caption("Not sent for approval yet: the specialist who prepared it sends it first "
                       "(Send for approval).")
            return True
    if facts.request is not None:
        st.caption(f"Sent for approval {ui.when(facts.request.sent_at)} by:")
        st.text(facts.request.sent_by + (f": {facts.request.comment}" if facts.request.comment else ""))
    text = _plan_text(wb, case)
    if text is not None:
        st.caption("Approving fixes this payout:")
        st.text(text)
    return False


def _plan_text(wb: Workbench, case: Case) -> str | None:
    """The payout approving would fix, in one line (with the valuation its fee comes from)."""
    try:
        plan = payouts.plan_payout(case, wb.config)
    except ServiceError:
        return None  # the Payout section says why; the service refuses with its own message
    target = f"user {plan.to_user_id}" if plan.kind is Resolution.CREDIT else plan.to_address or "-"
    line = (f"{plan.kind.value}: {amount_text(plan.amount, plan.amount_units, plan.asset)} on {plan.network} "
            f"to {target}" + (f", memo {plan.memo}" if plan.memo else ""))
    current = valuation.current_valuation(case)
    if current is not None and valuation.manually_valued(case):
        line += (f"; fee {ui.money(case.fee_amount)} from the valuation of {ui.money(current.price_usd)} USD per "
                 f"unit by {current.by} ({current.source})")
    return line


def _payer_guard(row: Payout | None, me: str, kind: Resolution) -> bool:
    """Restate the approved payout before it is recorded as paid; True when ``me`` approved it."""
    if row is None:
        st.caption(f"No approved {kind.value} is waiting to be paid.")
        return False
    if kind is Resolution.CREDIT:
        st.caption("You confirm that exactly this credit was booked:")
        ui.field_table([("credit to user", row.to_user_id), ("asset", row.asset),
                        ("amount", ui.money(row.amount, row.asset)),
                        ("amount (base units)", int(row.amount_units)), ("network", row.network),
                        ("approved by", row.approved_by)], key="case_credit_restated")
    else:
        st.caption("Pay exactly this refund, then record its transaction:")
        st.text(payout_summary(row))
        st.text(f"from our address {row.from_address or '-'}")
        st.caption("No address here: the refund goes where the approval fixed it (a new address is a payout "
                   "change, approved again).")
    if row.approved_by == me:
        st.warning("You approved this payout: four-eyes rule, another operator must record it as paid.")
        return True
    return False


def _action_form(wb: Workbench, case: Case, action: str, role: Role, me: str, operators: list[str],
                 facts: CasePayouts, *, primary: bool = False) -> None:
    shown = Shown(case.reference or "", case.version)
    key = f"act_{action}_"
    disabled = False
    with st.form(f"form_{action}", border=not primary):
        if not primary:
            st.markdown(f"**{ACTION_TITLES[action]}**")
        if action == "assign":
            options = [NOBODY, *operators]
            current_index = options.index(case.assignee) if case.assignee in options else 0
            st.selectbox("Assignee", options, index=current_index, key=key + "assignee")
        elif action == "note":
            st.text_area("Note (the team only)", key=key + "text")
        elif action == "request_info":
            offered = wb.config.templates_for(case.category)
            st.selectbox("Template", [OWN_WORDS, *offered], key=key + "template",
                         format_func=lambda name: name if name == OWN_WORDS else offered[name].title,
                         help="With the message left empty, the template's text is sent as it is.")
            st.text_area("Message to the user (empty: the template's text)", key=key + "message")
            st.caption("The SLA clock stops until the user answers; they are reminded after "
                       f"{wb.config.policy.info_reminder_hours} h and the case closes after "
                       f"{wb.config.policy.info_close_after_hours} h without an answer.")
        elif action == "provide_info":
            st.text_area("The user's answer", key=key + "message")
        elif action == "override_category":
            st.selectbox("Category", [c.value for c in Category], key=key + "category")
            st.text_area("Reason (mandatory)", key=key + "reason")
        elif action == "set_valuation":
            _valuation_fields(wb, case, key)
        elif action == "send_for_approval":
            if facts.request is not None:
                st.caption(f"Already sent {ui.when(facts.request.sent_at)}; sending again replaces the comment.")
            st.caption("Sending it makes you one of its preparers: above the threshold you then cannot approve it.")
            st.text_input("Comment for the approver (optional)", key=key + "comment")
        elif action == "approve":
            disabled = _approve_guard(wb, case, role, me, facts)
            st.text_input("Comment (optional)", key=key + "comment")
        elif action == "change_payout":
            row = facts.live
            current_to = (row.to_address, row.memo) if row is not None else (
                (case.payout_override or {}).get("to_address") or (case.decision or {}).get("refund_address"),
                (case.payout_override or {}).get("memo"))
            st.caption("The refund goes now to:")
            st.text(f"{current_to[0] or '-'}" + (f", memo {current_to[1]}" if current_to[1] else ""))
            st.text_input("New refund address (optional)", key=key + "to_address")
            st.text_input("New memo / tag (optional)", key=key + "memo")
            st.text_area("Reason (mandatory)", key=key + "reason")
            st.caption("An approved payout is cancelled and the case goes back to review: it must be sent for "
                       "approval again and approved by someone other than you.")
        elif action == "reject":
            codes = list(REJECTION_REASONS)
            st.selectbox("Reason code (preselected: the one that matches the finding)", codes,
                         index=codes.index(rejection_reason_for(case)), key=key + "reason_code",
                         format_func=lambda code: f"{code}: {REJECTION_REASONS[code]}")
            st.text_area("Message to the user (optional)", key=key + "message")
        elif action == "record_refund":
            disabled = _payer_guard(_waiting(facts, Resolution.REFUND), me, Resolution.REFUND)
            st.text_input("Refund transaction hash", key=key + "tx_hash")
        elif action == "mark_credited":
            disabled = _payer_guard(_waiting(facts, Resolution.CREDIT), me, Resolution.CREDIT)
            st.text_input("Ledger reference (required)", key=key + "ledger",
                          help="The entry of the credit in the exchange's ledger.")
        elif action == "reopen":
            st.text_area("Reason (mandatory)", key=key + "reason")
        elif action == "chain_result":
            st.caption("Looks the transaction up on its network and the others of the same family, then "
                       "applies the engine's decision.")
        elif action == "close":
            st.caption("Archive this finished case.")
        if not primary:  # the next action's panel says why it is next instead
            st.caption(ACTIONS[action].description)
        confirm = action in MONEY_MOVING
        st.form_submit_button(ACTION_TITLES[action] + ("…" if confirm else ""), key=f"submit_{action}",
                              on_click=_ask if confirm else _submit, args=(shown, action), disabled=disabled,
                              type="primary" if action in PRIMARY or primary else "secondary")


def _valuation_fields(wb: Workbench, case: Case, key: str) -> None:
    money = case_summary.money_view(case, wb.config)
    st.caption(f"The asset has no USD price. Its fee rule: {money.rule or 'none'}. The price you set gives the "
               "value and the fee; it counts as preparing the case (someone else approves it) and is shown to the "
               "approver and kept in the audit event.")
    current = valuation.current_valuation(case)
    if current is not None:
        st.caption("Current valuation (a new one replaces it):")
        st.text(f"{ui.money(current.price_usd)} USD per unit by {current.by}; source: {current.source}")
    st.text_input("Price of one unit (USD)", key=key + "price_usd", placeholder="0.25",
                  help="A positive decimal, at most 8 decimal places.")
    st.text_input("Source of the price", key=key + "source", placeholder="e.g. DEX mid price, 3 venues")
    st.text_area("Reason", key=key + "reason", height=68)


# ------------------------------------------------------------------------------ confirmations
def _ask(shown: Shown, action: str) -> None:
    """A money-moving form was submitted: confirm it in a dialog first."""
    st.session_state[CONFIRM_KEY] = (shown, action)


def _confirmed(shown: Shown, action: str) -> None:
    st.session_state.pop(CONFIRM_KEY, None)
    _submit(shown, action)


def _cancel() -> None:
    st.session_state.pop(CONFIRM_KEY, None)


@st.dialog("Please confirm", width="medium", on_dismiss=_cancel)
def _confirm_dialog(wb: Workbench, case: Case, shown: Shown, action: str, facts: CasePayouts) -> None:
    if st.session_state.get(CONFIRM_KEY) is None:
        # confirmed or cancelled: a button in a dialog reruns only the dialog; the whole page shows the result
        st.rerun()
    st.markdown(f"**{ACTION_TITLES[action]}: {shown.reference}**")
    key = f"act_{action}_"
    if action == "approve":
        text = _plan_text(wb, case)
        st.caption("Approving fixes exactly this payout (a change later is an audited payout change that needs a "
                   "new approval):")
        st.text(text or "(no exact payout can be fixed: the service will say why)")
    elif action in ("mark_credited", "record_refund"):
        live = facts.live
        st.caption("You record as paid exactly this approved payout:")
        st.text(payout_summary(live) if live is not None else "(no approved payout)")
        if action == "mark_credited":
            st.text(f"Ledger reference: {_value(key + 'ledger') or '(none)'}")
        else:
            st.text(f"Refund transaction: {_value(key + 'tx_hash') or '(none)'}")
    elif action == "change_payout":
        st.caption("The approved payout is cancelled and the case goes back to review; the refund will go to:")
        st.text(f"{_value(key + 'to_address') or '(the same address)'}"
                + (f", memo {_value(key + 'memo')}" if _value(key + "memo") else ""))
    buttons = st.columns(2)
    buttons[0].button(f"Confirm: {ACTION_TITLES[action]}", key=f"confirm_{action}", type="primary",
                      on_click=_confirmed, args=(shown, action))
    buttons[1].button("Cancel", key=f"cancel_{action}", on_click=_cancel)


def _applies(action: str, case: Case) -> bool:
    """Whether an action the transition table allows makes sense for this case's resolution."""
    if action == "provide_info" and case.status == CaseStatus.CLOSED.value:
        return False  # only the user's own answer reopens a case closed unanswered
    if action == "send_for_approval":
        return case.resolution in PAYING
    if action == "set_valuation":
        return valuation.fee_undetermined(case)
    if action in ("change_payout", "record_refund"):
        return case.resolution == Resolution.REFUND.value
    if action == "mark_credited":
        return case.resolution == Resolution.CREDIT.value
    return True


def next_action(case: Case, available: list[str], facts: CasePayouts, needs_four_eyes: bool) -> str | None:
    """The action the case's state calls for (shown first, prominent), among those ``available``."""
    status = CaseStatus(case.status)
    wanted: tuple[str, ...]
    if status is CaseStatus.IN_REVIEW and case.resolution in PAYING:
        if valuation.needs_valuation(case):
            wanted = ("set_valuation",)
        elif needs_four_eyes and facts.request is None:
            wanted = ("send_for_approval", "approve")
        else:
            wanted = ("approve",)
    elif status is CaseStatus.IN_REVIEW:
        wanted = ("reject", "override_category")
    elif status is CaseStatus.APPROVED:
        wanted = ("mark_credited",) if case.resolution == Resolution.CREDIT.value else ("record_refund",)
    elif status is CaseStatus.NEEDS_INFO:
        wanted = ("provide_info",)
    elif status in (CaseStatus.SUBMITTED, CaseStatus.AWAITING_CHAIN):
        wanted = ("chain_result",)
    elif status in (CaseStatus.CREDITED, CaseStatus.REFUNDED, CaseStatus.REJECTED):
        wanted = ("close", "reopen")
    elif status is CaseStatus.CLOSED:
        wanted = ("reopen",)
    else:
        wanted = ()
    return next((a for a in wanted if a in available), available[0] if available else None)


#: why the next action is the next one, by action (fixed text)
NEXT_WHY = {
    "set_valuation": "The asset has no USD price, so the fee is not set: value it before anyone approves.",
    "send_for_approval": "Above the four-eyes threshold (or of unknown or manual value): the preparer sends it "
                         "to an approver.",
    "approve": "The decision pays out: approving fixes the exact payout.",
    "reject": "Nothing is paid out for this decision: reject it with the reason code of the finding (or override "
              "the category).",
    "mark_credited": "Approved: book the credit, then record it here (not by its approver).",
    "record_refund": "Approved: pay the refund exactly as approved, then record its transaction (not by its "
                     "approver).",
    "provide_info": "Waiting for the user's answer; record it here if it came by chat.",
    "chain_result": "Waiting for the chains: look the transaction up again now.",
    "close": "Finished: archive it.",
    "reopen": "Take it back into review if something new came up.",
}


def _actions(wb: Workbench, case: Case, role: Role, me: str, facts: CasePayouts) -> None:
    possible = set(allowed_actions(CaseStatus(case.status), role))
    available = [a for a in ACTION_ORDER if a in possible and _applies(a, case)]
    if role is Role.AUDITOR:
        st.subheader("Actions")
        st.info("Read-only: auditors see everything and change nothing.")
        return
    if not available:
        st.subheader("Actions")
        st.caption("No action applies to this case in its current status.")
        return
    operators = queues.operator_names(wb.db)
    first = next_action(case, available, facts, _needs_four_eyes(wb, case))
    with st.container(border=True, key="case_next_action"):
        st.subheader(f"Next: {ACTION_TITLES[first]}" if first else "Actions")
        if first is not None:
            st.caption(NEXT_WHY.get(first, ACTIONS[first].description))
            _action_form(wb, case, first, role, me, operators, facts, primary=True)
    others = [a for a in available if a != first]
    if others:
        st.caption("Other actions")
    for action in others:
        with st.expander(ACTION_TITLES[action]):
            _action_form(wb, case, action, role, me, operators, facts)


def _typed_reference() -> None:
    st.session_state["wb_case_ref"] = _value("case_ref_input").upper()


def _choose_reference(where: Any) -> str | None:
    """The case to show: one typed or opened from another page, else the URL's (a link to another
    case, a reload, a shared address), else the one shown last."""
    chosen = str(st.session_state.get("wb_case_ref") or "").strip().upper()
    url = str(st.query_params.get("ref") or "").strip().upper()
    shown = st.session_state.get(SHOWN_KEY)
    if url and url != shown and (not chosen or chosen == shown):
        chosen = url  # followed a link (or the URL was edited): the URL wins over the case shown last
    reference = chosen or url
    if reference:
        st.session_state["wb_case_ref"] = reference
    if "case_ref_input" not in st.session_state or st.session_state.get(SHOWN_KEY) != reference:
        st.session_state["case_ref_input"] = reference
    where.text_input("Case reference", key="case_ref_input", placeholder="RC-000001", on_change=_typed_reference)
    return reference or None


def _sender_cases(wb: Workbench, case: Case) -> None:
    """Other cases whose deposit came from the same sender address, as links."""
    with wb.db.read() as session:
        sender, others = case_summary.cases_from_sender(session, case, list(wb.config.networks), limit=10)
    if sender is None:
        return
    st.subheader("Other cases from this sender")
    _copyable("Sender", sender)
    if not others:
        st.caption("No other case has a deposit from this address.")
        return
    for other in others:
        amount = ui.money(other.amount, other.asset) if other.amount is not None else other.asset
        st.page_link("views/case.py", label=f"{other.reference}: {other.status}, {other.category or 'undecided'}, "
                                            f"{amount} on {other.network}, {ui.when(other.created_at)}",
                     query_params={"ref": other.reference})
    if len(others) == 10:
        st.caption("The ten newest are listed.")


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    role = Role(info.role)
    heading, chooser = st.columns([3, 1], vertical_alignment="bottom")
    reference = _choose_reference(chooser)
    if not reference:
        heading.title("Case")
        st.caption("Open a case from the queue, or type its reference.")
        return
    try:
        view = wb.cases.get(reference)
    except NotFound:
        heading.title("Case")
        st.error("No case has this reference:")
        st.text(reference)
        return
    case = view.case
    st.session_state[SHOWN_KEY] = case.reference
    st.query_params["ref"] = case.reference or ""
    heading.title(f"Case {case.reference}")
    facts = case_payouts(wb.db, case)
    left, right = st.columns([3, 2])
    with left:
        _summary(wb, case, facts)
        _flags(case)
        _status_line(case)
        _money(wb, case)
    with right:
        _actions(wb, case, role, info.username, facts)
    pending = st.session_state.get(CONFIRM_KEY)
    if pending is not None and pending[0].reference == case.reference and role is not Role.AUDITOR:
        _confirm_dialog(wb, case, pending[0], pending[1], facts)
    _payout(wb, case, facts)
    _ownership(wb, case, role)
    _conversation(wb, case, view.events)
    appeal, decided = st.columns(2)
    with appeal:
        _appeal(wb, case)
    with decided:
        decision = _decision(wb, case)
    if decision is not None:
        _reasons(decision)
        _fee(wb, case, decision)
    _evidence(wb, case)
    _sender_cases(wb, case)
    _timeline(wb, view.events)


render()
