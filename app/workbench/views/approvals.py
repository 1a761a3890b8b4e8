"""Approvals: credits and refunds waiting for a decision, those above the four-eyes threshold first."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from recovery import queues
from recovery.queues import QueueFilter
from recovery.vocabulary import CaseStatus, Resolution


def _open() -> None:
    selection = st.session_state.get("ap_table", {}).get("selection", {}).get("rows", [])
    shown = st.session_state.get("wb_approval_refs", [])
    if len(selection) == 1 and selection[0] < len(shown):
        ui.open_case(shown[selection[0]])
        st.session_state["wb_goto_case"] = True
    else:
        ui.flash("warning", "Select exactly one case to open.")


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    if st.session_state.pop("wb_goto_case", False):
        st.switch_page("views/case.py")
    policy = wb.config.policy
    st.title("Approvals")
    st.caption(f"Cases in review with a credit or a refund to approve, largest first. Above "
               f"{policy.four_eyes_above_usd} USD an approver who did not prepare the case must approve it.")
    now = wb.now()
    filt = QueueFilter(statuses=(CaseStatus.IN_REVIEW.value,),
                       resolutions=(Resolution.CREDIT.value, Resolution.REFUND.value))
    page_number = int(st.session_state.get("ap_page", 1))
    page = queues.queue_page(wb.db, filt, now, sort="value_usd", descending=True, page=page_number, page_size=100)
    mine = queues.prepared_by(wb.db, [r.id for r in page.rows], info.username)
    records = []
    for row in page.rows:
        four_eyes = row.resolution in policy.four_eyes_resolutions and (
            row.value_usd is None or row.value_usd > policy.four_eyes_above_usd)
        records.append({
            "reference": row.reference, "resolution": row.resolution, "category": row.category,
            "network": row.network, "asset": row.asset, "value USD": ui.money(row.value_usd),
            "needs an approver": "yes" if four_eyes else "no",
            "you prepared it": "yes" if row.id in mine else "", "assignee": row.assignee or "-",
            "flags": ", ".join(row.flags) or "-", "age": ui.duration(now - row.created_at),
        })
    st.session_state["wb_approval_refs"] = [r.reference for r in page.rows]
    st.caption(f"{page.total} case(s) · page {page.page} of {page.pages}")
    st.dataframe(pd.DataFrame(records), hide_index=True, width="stretch", key="ap_table", on_select="rerun",
                 selection_mode="single-row")
    st.button("Open the selected case", key="ap_open", on_click=_open)
    if page.pages > 1:
        st.number_input("Page", min_value=1, max_value=page.pages, step=1, key="ap_page")


render()
