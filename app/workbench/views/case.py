"""Case: the appeal, the chain evidence per network, the decision, flags, actions, audit timeline.

Every action is a form whose submit callback carries the version this page showed; the service
refuses it (Conflict) if the case changed since, and the page says so and shows the new state.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import Workbench, current
from recovery import queues
from recovery.errors import NotFound, ServiceError
from recovery.lifecycle import ACTIONS, allowed_actions
from recovery.models import Case
from recovery.rules import Decision
from recovery.services import REJECTION_REASONS, Actor
from recovery.vocabulary import CaseStatus, Category, Role

#: flags and how loudly to show them
FLAG_BANNERS: dict[str, tuple[str, str]] = {
    "contested": ("error", "**Contested**: another user appealed the same transaction. Check who owns it."),
    "counterfeit": ("error", "**Counterfeit token**: it imitates a listed asset. Never credit it."),
    "amount_mismatch": ("warning", "**Amount mismatch**: the amount on chain differs from the claimed amount."),
    "credited_to_other_user": ("error", "**Credited to another user**: this deposit is already on another "
                                        "user's account."),
    "other_users_address": ("error", "**Another user's address**: the deposit address belongs to another user."),
    "partial_payment": ("warning", "**Partial payment**: only part of the claimed amount arrived."),
    "expired": ("warning", "**Expired**: older than the recovery window of its fee rule."),
    "not_economical": ("warning", "**Not economical**: the fee would take the whole amount, or the value is "
                                  "too low."),
}
NOBODY = "(nobody)"
#: the order actions appear in; "chain_result" is the re-check button
ACTION_ORDER = ("assign", "note", "chain_result", "request_info", "provide_info", "override_category", "approve",
                "reject", "record_refund", "mark_credited", "close", "reopen")
ACTION_TITLES = {
    "assign": "Assign", "note": "Internal note", "chain_result": "Re-check on the chains now",
    "request_info": "Request information from the user", "provide_info": "Record the user's answer (from chat)",
    "override_category": "Override the category", "approve": "Approve", "reject": "Reject",
    "record_refund": "Record the refund transaction", "mark_credited": "Mark credited", "close": "Close",
    "reopen": "Reopen",
}


def _value(key: str) -> str:
    return str(st.session_state.get(key) or "").strip()


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
        _run(shown, action, lambda a, v: svc.request_info(ref, _value(key + "message"), a, expected_version=v),
             (key + "message",))
    elif action == "provide_info":
        _run(shown, action, lambda a, v: svc.provide_info(ref, _value(key + "message"), a, expected_version=v),
             (key + "message",))
    elif action == "override_category":
        _run(shown, action, lambda a, v: svc.override_category(
            ref, _value(key + "category"), _value(key + "reason"), a, expected_version=v), (key + "reason",))
    elif action == "approve":
        _run(shown, action, lambda a, v: svc.approve(ref, a, expected_version=v, comment=_value(key + "comment")),
             (key + "comment",))
    elif action == "reject":
        _run(shown, action, lambda a, v: svc.reject(ref, _value(key + "reason_code"), a, expected_version=v,
                                                    message=_value(key + "message")), (key + "message",))
    elif action == "record_refund":
        _run(shown, action, lambda a, v: svc.record_refund(
            ref, _value(key + "tx_hash"), a, expected_version=v, refund_address=_value(key + "address") or None,
        ), (key + "tx_hash", key + "address"))
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


# ------------------------------------------------------------------------------ rendering
def _needs_four_eyes(wb: Workbench, case: Case) -> bool:
    policy = wb.config.policy
    if case.resolution not in policy.four_eyes_resolutions:
        return False
    return case.value_usd is None or case.value_usd > policy.four_eyes_above_usd


def _flags(case: Case) -> None:
    for flag in case.flags:
        kind, text = FLAG_BANNERS.get(flag, ("warning", "**Flag**: an unknown flag is set on this case."))
        (st.error if kind == "error" else st.warning)(text)


def _appeal(wb: Workbench, case: Case) -> None:
    st.subheader("Appeal")
    ui.field_table([
        ("user", case.user_id), ("origin", case.origin), ("claimed network", case.network),
        ("asset", case.asset), ("transaction", case.tx_hash), ("deposit address", case.deposit_address),
        ("memo", case.memo), ("claimed amount", ui.money(case.claimed_amount)),
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
        ("amount", ui.money(decision.amount)), ("value", ui.usd(decision.value_usd)),
        ("fee", ui.money(case.fee_amount, case.fee_asset or "")), ("fee (USD)", ui.usd(case.fee_usd)),
        ("net to the user", ui.money(case.net_amount)), ("credit to user", decision.credited_user_id),
        ("refund to", case.refund_address), ("refund transaction", case.refund_tx_hash),
        ("rules version", decision.rules_version), ("decided", ui.when(decision.decided_at)),
    ], key="case_decision")
    return decision


def _reasons(decision: Decision) -> None:
    st.subheader("Reasons")
    ui.table(
        [{"reason": r.text, "code": r.code, "team only": "yes" if r.internal else "",
          "evidence": json.dumps(dict(r.evidence), ensure_ascii=False, sort_keys=True)} for r in decision.reasons],
        ["reason", "code", "team only", "evidence"], key="case_reasons", empty="No reasons recorded.",
    )


def _fee(decision: Decision) -> None:
    fee = decision.fee
    st.subheader("Fee breakdown")
    if fee is None:
        st.caption("No fee was computed for this decision.")
        return
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
            ui.field_table([
                ("transaction", obs.tx_hash), ("block", obs.block_number), ("block hash", obs.block_hash),
                ("confirmations", obs.confirmations), ("observed", ui.when(obs.observed_at)),
                ("sender", obs.evidence.get("sender")), ("memo", obs.evidence.get("memo")),
            ], key=f"case_obs_{obs.network}_{kind}")
            ui.table(
                [{"#": t.transfer_index, "kind": t.kind, "token contract": t.contract or "(native)",
                  "from": t.sender, "to": t.recipient, "amount (base units)": t.amount_base_units,
                  "memo": t.memo} for t in item.transfers],
                ["#", "kind", "token contract", "from", "to", "amount (base units)", "memo"],
                key=f"case_transfers_{obs.network}_{kind}", empty="No transfers in this transaction.",
            )


def _timeline(wb: Workbench, events: list[Any]) -> None:
    st.subheader("Audit timeline")
    ui.table(
        [{"#": e.id, "when": e.created_at, "actor": e.actor, "role": e.actor_role, "action": e.action,
          "status": f"{e.from_status or '-'} → {e.to_status or '-'}", "details": e.details} for e in events],
        ["#", "when", "actor", "role", "action", "status", "details"], key="case_timeline",
    )


def _action_form(wb: Workbench, case: Case, action: str, role: Role, me: str, operators: list[str]) -> None:
    shown = Shown(case.reference or "", case.version)
    key = f"act_{action}_"
    disabled = False
    with st.form(f"form_{action}", border=True):
        st.markdown(f"**{ACTION_TITLES[action]}**")
        if action == "assign":
            options = [NOBODY, *operators]
            current_index = options.index(case.assignee) if case.assignee in options else 0
            st.selectbox("Assignee", options, index=current_index, key=key + "assignee")
        elif action == "note":
            st.text_area("Note (the team only)", key=key + "text")
        elif action in ("request_info", "provide_info"):
            label = "Message to the user" if action == "request_info" else "The user's answer"
            st.text_area(label, key=key + "message")
        elif action == "override_category":
            st.selectbox("Category", [c.value for c in Category], key=key + "category")
            st.text_area("Reason (mandatory)", key=key + "reason")
        elif action == "approve":
            if _needs_four_eyes(wb, case):
                st.warning(f"Worth more than {wb.config.policy.four_eyes_above_usd} USD (or of unknown value): "
                           "an approver who did not prepare this case must approve it.")
                if role is Role.SPECIALIST:
                    disabled = True
                elif case.id is not None and case.id in queues.prepared_by(wb.db, [case.id], me):
                    st.caption("You prepared this case, so you cannot also approve it.")
                    disabled = True
            st.text_input("Comment (optional)", key=key + "comment")
        elif action == "reject":
            st.selectbox("Reason code", list(REJECTION_REASONS), key=key + "reason_code",
                         format_func=lambda code: f"{code}: {REJECTION_REASONS[code]}")
            st.text_area("Message to the user (optional)", key=key + "message")
        elif action == "record_refund":
            st.text_input("Refund transaction hash", key=key + "tx_hash")
            st.text_input("Refund address (optional; default: the decision's)", key=key + "address")
        elif action == "mark_credited":
            st.text_input("Ledger reference (optional)", key=key + "ledger")
        elif action == "reopen":
            st.text_area("Reason (mandatory)", key=key + "reason")
        elif action == "chain_result":
            st.caption("Looks the transaction up on its network and the others of the same family, then "
                       "applies the engine's decision.")
        elif action == "close":
            st.caption("Archive this finished case.")
        st.caption(ACTIONS[action].description)
        st.form_submit_button(ACTION_TITLES[action], key=f"submit_{action}", on_click=_submit,
                              args=(shown, action), disabled=disabled,
                              type="primary" if action in ("approve", "mark_credited") else "secondary")


def _actions(wb: Workbench, case: Case, role: Role, me: str) -> None:
    st.subheader("Actions")
    possible = set(allowed_actions(CaseStatus(case.status), role))
    available = [a for a in ACTION_ORDER if a in possible]
    if role is Role.AUDITOR:
        st.info("Read-only: auditors see everything and change nothing.")
        return
    if not available:
        st.caption("No action applies to this case in its current status.")
        return
    operators = queues.operator_names(wb.db)
    tabs = st.tabs([ACTION_TITLES[a] for a in available])
    for tab, action in zip(tabs, available, strict=True):
        with tab:
            _action_form(wb, case, action, role, me, operators)


def _typed_reference() -> None:
    st.session_state["wb_case_ref"] = _value("case_ref_input").upper()


def _choose_reference() -> str | None:
    reference = st.session_state.get("wb_case_ref") or st.query_params.get("ref") or ""
    if "case_ref_input" not in st.session_state:
        st.session_state["case_ref_input"] = str(reference)
    st.columns([1, 3])[0].text_input("Case reference", key="case_ref_input", placeholder="RC-000001",
                                     on_change=_typed_reference)
    return str(reference).strip().upper() or None


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    role = Role(info.role)
    reference = _choose_reference()
    if not reference:
        st.title("Case")
        st.caption("Open a case from the queue, or type its reference.")
        return
    try:
        view = wb.cases.get(reference)
    except NotFound:
        st.title("Case")
        st.error("No case has this reference:")
        st.text(reference)
        return
    case = view.case
    st.query_params["ref"] = case.reference or ""
    st.title(f"Case {case.reference}")
    top = st.columns([1, 2, 1, 1, 1])
    top[0].metric("Status", case.status)
    top[1].metric("Category", case.category or "-")
    top[2].metric("Resolution", case.resolution or "-")
    top[3].metric("Value (USD)", ui.money(case.value_usd.quantize(Decimal("0.01")) if case.value_usd else None))
    top[4].metric("Version", case.version)
    _flags(case)
    appeal, decided, actions = st.columns([5, 5, 4])
    with appeal:
        _appeal(wb, case)
    with decided:
        decision = _decision(wb, case)
    with actions:
        _actions(wb, case, role, info.username)
    if decision is not None:
        _reasons(decision)
    fee, evidence = st.columns(2)
    if decision is not None:
        with fee:
            _fee(decision)
    with evidence:
        _evidence(wb, case)
    _timeline(wb, view.events)


render()
