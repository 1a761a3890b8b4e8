"""Approvals: the credits and refunds a specialist sent for approval, largest first.

Only cases sent for approval (``CaseService.send_for_approval``) and not approved since are listed:
a case merely in review, touched or not, is not waiting for an approver.
"""

from __future__ import annotations

from datetime import datetime

import pandas as pd
import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from app.workbench.payout_reads import SentCase, sent_for_approval
from recovery import valuation

PAGE_SIZE = 100


def _open() -> None:
    selection = st.session_state.get("ap_table", {}).get("selection", {}).get("rows", [])
    shown = st.session_state.get("wb_approval_refs", [])
    if len(selection) == 1 and selection[0] < len(shown):
        ui.open_case(shown[selection[0]])
        st.session_state["wb_goto_case"] = True
    else:
        ui.flash("warning", "Select exactly one case to open.")


def _record(item: SentCase, me: str, four_eyes: bool, now: datetime) -> dict[str, object]:
    case = item.case
    if me in item.changers:
        yours = "you changed its payout"
    elif me in item.preparers:
        yours = "you prepared it"
    else:
        yours = ""
    valued = valuation.current_valuation(case) if valuation.manually_valued(case) else None
    if valuation.needs_valuation(case):
        value = "not valued yet (no price)"
    elif valued is not None:
        value = f"{ui.money(case.value_usd)} (manual valuation by {valued.by})"
    else:
        value = ui.money(case.value_usd)
    return {
        "reference": case.reference, "resolution": case.resolution, "category": case.category,
        "network": case.network, "asset": case.asset, "value USD": value,
        "needs an approver": "yes" if four_eyes else "no", "sent by": item.request.sent_by,
        "sent": ui.when(item.request.sent_at), "waiting": ui.duration(now - item.request.sent_at),
        "comment": item.request.comment or "-",
        "you prepared it": yours, "flags": ", ".join(case.flags) or "-",
    }


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    if st.session_state.pop("wb_goto_case", False):
        st.switch_page("views/case.py")
    policy = wb.config.policy
    st.title("Approvals")
    st.caption(f"Credits and refunds a specialist sent for approval, largest first. Above "
               f"{policy.four_eyes_above_usd} USD (or of unknown or manually set value) an approver who did not "
               "prepare the case must approve it; at any value, whoever changed the payout or set the valuation "
               "cannot approve it, and the approver cannot record the payment. A case without a price is "
               "approved only once valued.")
    now = wb.now()
    sent = sent_for_approval(wb.db)
    pages = max(1, -(-len(sent) // PAGE_SIZE))
    page_number = min(max(1, int(st.session_state.get("ap_page", 1))), pages)
    shown = sent[(page_number - 1) * PAGE_SIZE: page_number * PAGE_SIZE]
    records = []
    for item in shown:
        case = item.case
        four_eyes = case.resolution in policy.four_eyes_resolutions and (
            case.value_usd is None or valuation.manually_valued(case) or case.value_usd > policy.four_eyes_above_usd)
        records.append(_record(item, info.username, four_eyes, now))
    st.session_state["wb_approval_refs"] = [item.case.reference for item in shown]
    st.caption(f"{len(sent)} case(s) sent for approval · page {page_number} of {pages}")
    if not records:
        st.info("Nothing is waiting for an approver: no case in review was sent for approval.")
        return
    st.dataframe(pd.DataFrame(records), hide_index=True, width="stretch", key="ap_table", on_select="rerun",
                 selection_mode="single-row")
    st.button("Open the selected case", key="ap_open", on_click=_open)
    if pages > 1:
        st.number_input("Page", min_value=1, max_value=pages, step=1, key="ap_page")


render()
