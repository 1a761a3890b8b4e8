"""Queue: the filtered, sorted, paged list of cases (paging in SQL), bulk assign, CSV export; and the
"evidence waiting" filter: the cases with a withdrawal record waiting for a specialist's review."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from app.workbench import auth, tables, ui
from app.workbench.context import current
from app.workbench.pages import can
from app.workbench.payout_reads import waiting_payouts
from recovery import queues
from recovery.errors import ServiceError
from recovery.evidence import EvidenceService
from recovery.queues import ACTIVE_STATUSES, SORT_KEYS, UNASSIGNED, QueueFilter, QueueRow
from recovery.vocabulary import CaseStatus, Category, Flag, Origin, Role

AGE_CHOICES: dict[str, tuple[int | None, int | None]] = {
    "any age": (None, None),
    "under 1 day": (None, 1),
    "1-3 days": (1, 3),
    "3-7 days": (3, 7),
    "1-4 weeks": (7, 28),
    "over 4 weeks": (28, None),
}
SLA_CHOICES: dict[str, bool | None] = {"any": None, "breached": True, "not breached": False}
#: sort choices, the default first (every key is one of ``queues.SORT_KEYS``)
SORT_LABELS: dict[str, str] = {
    "sla_due_at": "SLA due", "created_at": "opened", "updated_at": "last change", "value_usd": "value (USD)",
    "reference": "reference", "status": "status", "category": "category", "network": "network",
}
assert set(SORT_LABELS) == set(SORT_KEYS)
#: how each origin reads in the filter (the values stay the codes)
ORIGIN_LABELS: dict[str, str] = {
    Origin.APPEAL.value: "appeal (by the user)",
    Origin.INTAKE.value: "intake (filed by an operator)",
    Origin.DETECTED.value: "detected (found by the scan)",
}
assert set(ORIGIN_LABELS) == {o.value for o in Origin}
NOBODY = "(nobody)"
ANYONE = "(anyone)"
UNASSIGNED_LABEL = "(unassigned)"


def _filter(me: str) -> QueueFilter:
    state = st.session_state
    assignee = state.get("q_assignee", ANYONE)
    if assignee == ANYONE:
        assignee_value = None
    elif assignee == UNASSIGNED_LABEL:
        assignee_value = UNASSIGNED
    elif assignee == "(me)":
        assignee_value = me
    else:
        assignee_value = str(assignee)
    low, high = AGE_CHOICES[state.get("q_age", "any age")]
    return QueueFilter(
        statuses=tuple(state.get("q_status", ())),
        categories=tuple(state.get("q_category", ())),
        networks=tuple(state.get("q_network", ())),
        assets=tuple(state.get("q_asset", ())),
        assignee=assignee_value,
        min_age_days=low,
        max_age_days=high,
        sla_breached=SLA_CHOICES[state.get("q_sla", "any")],
        flags=tuple(state.get("q_flags", ())),
        text=str(state.get("q_text", "")),
        origins=tuple(state.get("q_origin", ())),
    )


def _table(rows: list[QueueRow], now: datetime, clocks: tables.PayoutClocks) -> Any:
    """The queue table with each case's origin beside its user (coloured as ``tables.queue_table``)."""
    frame = tables.queue_frame(rows, now, clocks)
    frame.insert(list(frame.columns).index("user") + 1, "origin", [r.origin for r in rows])
    colors = tables.row_colors(rows, now, clocks)
    return frame.style.apply(lambda _column: colors, axis=0, subset=["age", "SLA"])


def _bulk_assign(shown: list[tuple[str, int]]) -> None:
    """Assign the selected rows, each with the version the page showed."""
    info = auth.signed_in()
    if info is None:
        return
    selection = st.session_state.get("q_table", {}).get("selection", {}).get("rows", [])
    chosen = [shown[i] for i in selection if 0 <= i < len(shown)]
    if not chosen:
        ui.flash("warning", "Select one or more cases in the table first.")
        return
    target = st.session_state.get("q_bulk_assignee", NOBODY)
    assignee = None if target == NOBODY else str(target)
    service = current().cases
    done: list[str] = []
    problems: list[str] = []
    for reference, version in chosen:
        try:
            service.assign(reference, assignee, info.actor, expected_version=version)
            done.append(reference)
        except ServiceError as exc:
            problems.append(f"{reference}: {exc}")
    if done:
        ui.flash("success", f"Assigned {len(done)} case(s).", [f"to {assignee or 'nobody'}: {', '.join(done)}"])
    if problems:
        ui.flash("warning", f"{len(problems)} case(s) were not assigned:", problems)
    st.session_state["q_table"] = {"selection": {"rows": [], "columns": [], "cells": []}}


def _open_selected(shown: list[tuple[str, int]]) -> None:
    selection = st.session_state.get("q_table", {}).get("selection", {}).get("rows", [])
    if len(selection) != 1:
        ui.flash("warning", "Select exactly one case to open.")
        return
    ui.open_case(shown[selection[0]][0])
    st.session_state["wb_goto_case"] = True


def _go_to_reference() -> None:
    text = str(st.session_state.get("q_goto", "")).strip().upper()
    if text:
        ui.open_case(text)
        st.session_state["wb_goto_case"] = True


def _evidence_waiting(wb: Any) -> None:
    """The cases with a withdrawal record waiting for review, oldest case first."""
    references = EvidenceService(wb.db, wb.config, wb.cases.clock).waiting_references()
    st.caption(f"{len(references)} case(s) with ownership evidence waiting for review")
    rows = []
    for reference in references[:500]:
        case = wb.cases.get(reference).case
        rows.append({"reference": reference, "status": case.status, "category": case.category,
                     "user": case.user_id, "network": case.network,
                     "updated": case.updated_at.isoformat(timespec="minutes")})
    if rows:
        st.dataframe(rows, hide_index=True, width="stretch", key="q_evidence_table")
    go = st.columns([2, 2, 4])
    go[0].text_input("Go to reference", key="q_goto", placeholder="RC-000001", label_visibility="collapsed")
    go[1].button("Go", key="q_go", on_click=_go_to_reference)


def _change_page(delta: int) -> None:
    st.session_state["q_page"] = max(1, int(st.session_state.get("q_page", 1)) + delta)


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    role = Role(info.role)
    if st.session_state.pop("wb_goto_case", False):
        st.switch_page("views/case.py")
    st.title("Queue")
    now = wb.now()

    with st.container(border=True):
        first = st.columns([3, 2, 2, 2, 2])
        first[0].multiselect("Status", [s.value for s in CaseStatus], default=list(ACTIVE_STATUSES), key="q_status")
        first[1].multiselect("Category", [c.value for c in Category], key="q_category")
        first[2].multiselect("Network", list(wb.config.networks), key="q_network")
        # the listed symbols of the configuration (a DISTINCT over the cases would read the whole table)
        first[3].multiselect("Asset", sorted({a.symbol for a in wb.config.assets}), key="q_asset")
        first[4].multiselect("Origin", list(ORIGIN_LABELS), format_func=ORIGIN_LABELS.__getitem__, key="q_origin",
                             help="Appealed by the user, filed by an operator for the user, or detected by "
                                  "`recovery scan` before anyone appealed.")
        second = st.columns([2, 2, 2, 4])
        operators = queues.operator_names(wb.db, active_only=False)
        second[0].selectbox("Assignee", [ANYONE, "(me)", UNASSIGNED_LABEL, *operators], key="q_assignee")
        second[1].selectbox("Age", list(AGE_CHOICES), key="q_age")
        second[2].selectbox("SLA", list(SLA_CHOICES), key="q_sla")
        second[3].multiselect("Flags (all of)", [f.value for f in Flag], key="q_flags",
                              help="Payout problems: refund_mismatch (the recorded refund does not prove the "
                                   "approved payout), refund_overdue (not proven on chain in time), "
                                   "refund_overpaid (paid more than approved).")
        third = st.columns([4, 2, 1, 1])
        third[0].text_input("Search", key="q_text", placeholder="reference, transaction hash, address or user id")
        third[1].selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.__getitem__, key="q_sort")
        third[2].toggle("Descending", key="q_desc")
        third[3].selectbox("Per page", [25, 50, 100, 200], index=1, key="q_page_size")
        st.toggle("Evidence waiting", key="q_evidence_waiting",
                  help="Only the cases with ownership evidence (a withdrawal record) waiting for review.")

    if st.session_state.get("q_evidence_waiting"):
        _evidence_waiting(wb)
        return

    filt = _filter(info.username)
    signature = (filt, st.session_state.get("q_sort"), st.session_state.get("q_desc"),
                 st.session_state.get("q_page_size"))
    if st.session_state.get("wb_queue_signature") != signature:
        st.session_state["wb_queue_signature"] = signature
        st.session_state["q_page"] = 1
    page = queues.queue_page(
        wb.db, filt, now, sort=str(st.session_state.get("q_sort", "sla_due_at")),
        descending=bool(st.session_state.get("q_desc", False)),
        page=int(st.session_state.get("q_page", 1)), page_size=int(st.session_state.get("q_page_size", 50)),
        networks=list(wb.config.networks),
    )
    if page.page != st.session_state.get("q_page"):
        st.session_state["q_page"] = page.page

    breached_here = sum(1 for r in page.rows if r.breached(now))
    sla_hours = wb.config.policy.payout_sla_hours
    clocks = waiting_payouts(wb.db, [r.id for r in page.rows if r.status == CaseStatus.APPROVED.value], sla_hours)
    late_payouts = sum(1 for r in page.rows if tables.payout_overdue(r, now, clocks))
    st.caption(f"{page.total} matching case(s) · page {page.page} of {page.pages} · "
               f"{breached_here} past their SLA on this page (red; amber: due within 12 h)"
               + (f" · {late_payouts} approved payout(s) unpaid for more than {sla_hours} h" if late_payouts else ""))
    shown = [(r.reference, r.version) for r in page.rows]
    st.dataframe(_table(page.rows, now, clocks), hide_index=True, width="stretch", key="q_table",
                 on_select="rerun", selection_mode="multi-row", height=min(38 + 35 * max(1, len(page.rows)), 760))

    nav = st.columns([1, 1, 2, 4])
    nav[0].button("Previous", key="q_prev", on_click=_change_page, args=(-1,), disabled=page.page <= 1)
    nav[1].button("Next", key="q_next", on_click=_change_page, args=(1,), disabled=page.page >= page.pages)
    nav[2].number_input("Page", min_value=1, max_value=page.pages, step=1, key="q_page",
                        label_visibility="collapsed")
    nav[3].download_button(
        "Export the filtered cases (CSV)",
        data=lambda: queues.export_csv(wb.db, filt, now, sort=str(st.session_state.get("q_sort", "sla_due_at")),
                                       descending=bool(st.session_state.get("q_desc", False)),
                                       networks=list(wb.config.networks)),
        file_name=f"cases-{now:%Y%m%d-%H%M}.csv", mime="text/csv", key="q_export", on_click="ignore",
    )

    actions = st.columns([2, 2, 2, 2])
    actions[0].button("Open the selected case", key="q_open", on_click=_open_selected, args=(shown,))
    actions[1].text_input("Go to reference", key="q_goto", placeholder="RC-000001", label_visibility="collapsed")
    actions[2].button("Go", key="q_go", on_click=_go_to_reference)
    if can(role, "assign"):
        with st.container(border=True):
            st.caption("Bulk assign the selected cases (each with the version shown here)")
            bulk = st.columns([3, 2])
            active = queues.operator_names(wb.db)
            bulk[0].selectbox("Assign to", [NOBODY, *active], key="q_bulk_assignee")
            bulk[1].button("Assign selected", key="q_bulk_assign", on_click=_bulk_assign, args=(shown,))


render()
