"""New appeal: a specialist files an appeal for a user (e.g. from a chat), with the API's validation."""

from __future__ import annotations

import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from recovery.errors import ServiceError
from recovery.intake import validate_appeal
from recovery.vocabulary import Origin

FIELDS = ("user_id", "network", "asset", "tx_hash", "deposit_address", "memo", "amount")


def _file() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    state = st.session_state
    raw = {name: (str(state.get(f"new_{name}") or "").strip() or None) for name in FIELDS if name != "user_id"}
    user_id = str(state.get("new_user_id") or "").strip()
    try:
        draft = validate_appeal(wb.config, raw, user_id)
        case, created = wb.cases.submit(draft, info.actor, origin=Origin.INTAKE)
    except ServiceError as exc:
        ui.service_error(exc)
        return
    reference = case.reference or ""
    if not created:
        ui.flash("info", f"This user already has an appeal for this transaction: {reference}. "
                         "Nothing new was filed.")
    else:
        ui.flash("success", f"Appeal {reference} filed for the user.")
        for name in FIELDS:
            if name != "network":
                state[f"new_{name}"] = ""
        if state.get("new_check_now"):
            outcome = wb.checker.check([reference], actor=info.actor, timeout=wb.settings.recheck_timeout_seconds)
            if outcome and outcome[0].conclusive and not outcome[0].error:
                ui.flash("info", f"Checked on the chains: {outcome[0].new_status}, "
                                 f"category {outcome[0].category or 'none'}.")
            else:
                ui.flash("warning", "The chains did not answer conclusively; the case waits for a re-check.")
    state["wb_new_reference"] = reference


def _open_new() -> None:
    reference = st.session_state.get("wb_new_reference")
    if reference:
        ui.open_case(str(reference))
        st.session_state["wb_goto_case"] = True


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    if st.session_state.pop("wb_goto_case", False):
        st.switch_page("views/case.py")
    st.title("New appeal")
    st.caption("For a user who reached the team another way (chat, e-mail). The same checks as the appeal "
               "form of the API: every field is validated for the network before anything is stored.")
    with st.form("new_appeal"):
        left, right = st.columns(2)
        left.text_input("User id", key="new_user_id")
        left.selectbox("Network the user says they sent on", list(wb.config.networks), key="new_network")
        left.text_input("Asset (listed symbol, token symbol or token contract)", key="new_asset")
        left.text_input("Claimed amount (optional)", key="new_amount", placeholder="e.g. 125.5")
        right.text_input("Transaction hash", key="new_tx_hash")
        right.text_input("Deposit address the user sent to", key="new_deposit_address")
        right.text_input("Memo / tag (where the network needs one)", key="new_memo")
        right.checkbox("Check it on the chains now", value=True, key="new_check_now")
        st.form_submit_button("File the appeal", type="primary", on_click=_file, key="new_submit")
    reference = st.session_state.get("wb_new_reference")
    if reference:
        st.button(f"Open {reference}", key="new_open", on_click=_open_new)


render()
