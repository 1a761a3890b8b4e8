"""Queue: one search box through every status, the filtered, sorted, paged list of cases (paging in
SQL), saved views, bulk assign, CSV export; and the "evidence waiting" list: the cases with a
withdrawal record waiting for a specialist's review.

The page keeps its state in its address (``app/workbench/queue_url.py``): back, reload and a shared
link show the same filters, sort, page and search. A reference opens its case in the same tab
(a click on it in the table, or the link shown when the search finds one case).
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import streamlit as st

from app.workbench import auth, queue_url, tables, ui
from app.workbench.context import Workbench, current
from app.workbench.pages import can
from app.workbench.payout_reads import waiting_payouts
from app.workbench.queue_url import AGE_CHOICES, ANYONE, ME, SLA_CHOICES, UNASSIGNED_LABEL, Choices
from recovery import case_search, queues, saved_views
from recovery.errors import ServiceError
from recovery.evidence import EvidenceService
from recovery.queues import SORT_KEYS, UNASSIGNED, QueueFilter, QueueRow
from recovery.vocabulary import CaseStatus, Category, Flag, Origin, Role

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
CASE_PAGE = "views/case.py"
#: the views every operator has (name -> the queue's URL parameters)
BUILT_IN_VIEWS: dict[str, dict[str, str]] = {
    "Open backlog": {},
    "My cases": {"assignee": "me"},
    "My overdue": {"assignee": "me", "sla": "breached"},
    "Overdue (everyone)": {"sla": "breached"},
    "Unassigned": {"assignee": "none"},
    "Waiting for approval": {"status": CaseStatus.IN_REVIEW.value, "approval": "1"},
    "Needs info from the user": {"status": CaseStatus.NEEDS_INFO.value},
    "Evidence waiting": {"evidence": "1"},
}
#: the saved-view selector's prefix for an operator's own views
OWN = "★ "
NO_VIEW = "(choose a view)"
#: session keys: the parameters the page last wrote to the address
URL_KEY = "wb_queue_url"


def _choices(wb: Workbench) -> Choices:
    return Choices(networks=list(wb.config.networks), assets=sorted({a.symbol for a in wb.config.assets}),
                   operators=queues.operator_names(wb.db, active_only=False))


def _apply(values: dict[str, Any]) -> None:
    for key, value in values.items():
        st.session_state[key] = value


def _restore(choices: Choices) -> None:
    """Set the widgets from the address when it changed under the page (back, forward, reload, a
    shared link, a saved view) or when the page's widgets are gone (it was left for another page:
    the last state the page wrote comes back)."""
    state = st.session_state
    here = queue_url.queue_params(st.query_params.to_dict())
    last = state.get(URL_KEY)
    widgets_gone = "q_status" not in state
    if here != last and (here or not widgets_gone):
        _apply(queue_url.from_params(here, choices))
    elif widgets_gone:
        _apply(queue_url.from_params(last or {}, choices))
    else:
        return
    state.pop("wb_queue_signature", None)  # the page asked for is kept (a changed filter goes to page 1)


def _write_url() -> None:
    """The widgets' state into the address (only what differs from the default)."""
    params = queue_url.to_params({key: st.session_state.get(key) for key in queue_url.KEYS
                                  if key in st.session_state})
    if queue_url.queue_params(st.query_params.to_dict()) != params:
        st.query_params.from_dict(params)
    st.session_state[URL_KEY] = params


def _filter(me: str) -> QueueFilter:
    state = st.session_state
    assignee = state.get("q_assignee", ANYONE)
    if assignee == ANYONE:
        assignee_value = None
    elif assignee == UNASSIGNED_LABEL:
        assignee_value = UNASSIGNED
    elif assignee == ME:
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
        sent_for_approval=True if state.get("q_approval") else None,
        filed_on=queue_url.day_range(tuple(state.get("q_filed") or ())),
        paid_on=queue_url.day_range(tuple(state.get("q_paid") or ())),
    )


# ------------------------------------------------------------------------------------ saved views
def _views(wb: Workbench, me: str) -> dict[str, dict[str, str]]:
    own = {OWN + v.name: queue_url.parse_query(v.query) for v in saved_views.list_views(wb.db, me)}
    return {**BUILT_IN_VIEWS, **own}


def _choose_view(views: dict[str, dict[str, str]], choices: Choices) -> None:
    name = st.session_state.get("q_view", NO_VIEW)
    if name in views:
        _apply(queue_url.from_params(views[name], choices))
    st.session_state["q_view"] = NO_VIEW


def _save_view(me: str) -> None:
    wb = current()
    name = str(st.session_state.get("q_view_name", ""))
    params = queue_url.to_params({key: st.session_state.get(key) for key in queue_url.KEYS
                                  if key in st.session_state})
    params.pop("page", None)
    try:
        view = saved_views.save_view(wb.db, me, name, queue_url.query_string(params), wb.now())
    except ValueError as exc:
        ui.flash("warning", "The view was not saved:", [str(exc)])
        return
    ui.flash("success", "View saved.", [f"{view.name}: {view.query or '(the open backlog)'}"])
    st.session_state["q_view_name"] = ""


def _delete_view(me: str) -> None:
    name = str(st.session_state.get("q_view_delete", ""))
    if name and saved_views.delete_view(current().db, me, name):
        ui.flash("success", "View deleted.", [name])


def _saved_views(wb: Workbench, me: str, choices: Choices) -> None:
    views = _views(wb, me)
    own = [name[len(OWN):] for name in views if name.startswith(OWN)]
    row = st.columns([3, 3, 1, 3, 1])
    row[0].selectbox("View", [NO_VIEW, *views], key="q_view", on_change=_choose_view, args=(views, choices),
                     help="Built-in views, then your own (★). Choosing one sets the filters.")
    row[1].text_input("Save these filters as", key="q_view_name", placeholder="a name for your view",
                      max_chars=saved_views.MAX_NAME)
    row[2].button("Save", key="q_view_save", on_click=_save_view, args=(me,))
    if own:
        row[3].selectbox("Your views", own, key="q_view_delete")
        row[4].button("Delete", key="q_view_delete_button", on_click=_delete_view, args=(me,))


# ------------------------------------------------------------------------------------ opening cases
def _open_case(reference: str) -> None:
    ui.open_case(reference)
    st.session_state["wb_goto_case"] = True


def _table_clicked(shown: list[tuple[str, int]]) -> None:
    """A click on a reference opens the case."""
    cells = st.session_state.get("q_table", {}).get("selection", {}).get("cells", [])
    for row, column in cells:
        if column == "reference" and 0 <= row < len(shown):
            _open_case(shown[row][0])
            return


def _open_selected(shown: list[tuple[str, int]]) -> None:
    selection = st.session_state.get("q_table", {}).get("selection", {}).get("rows", [])
    if len(selection) != 1:
        ui.flash("warning", "Select exactly one case to open.")
        return
    _open_case(shown[selection[0]][0])


def _go_to_reference() -> None:
    text = str(st.session_state.get("q_goto", "")).strip().upper()
    if text:
        _open_case(text)


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


def _evidence_waiting(wb: Workbench) -> None:
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
    for reference in references[:20]:
        st.page_link(CASE_PAGE, label=f"Open {reference}", query_params={"ref": reference})


def _go_to_box() -> None:
    go = st.columns([2, 1, 5])
    go[0].text_input("Go to reference", key="q_goto", placeholder="RC-000001", label_visibility="collapsed")
    go[1].button("Go", key="q_go", on_click=_go_to_reference)


def _change_page(delta: int) -> None:
    st.session_state["q_page"] = max(1, int(st.session_state.get("q_page", 1)) + delta)


def _include_statuses(statuses: list[str]) -> None:
    current_statuses = list(st.session_state.get("q_status", []))
    st.session_state["q_status"] = current_statuses + [s for s in statuses if s not in current_statuses]


# ------------------------------------------------------------------------------------ the page
def _filters(wb: Workbench, choices: Choices) -> None:
    with st.container(border=True):
        first = st.columns([3, 2, 2, 2, 2])
        first[0].multiselect("Status", [s.value for s in CaseStatus], key="q_status")
        first[1].multiselect("Category", [c.value for c in Category], key="q_category")
        first[2].multiselect("Network", list(choices.networks), key="q_network",
                             help="The network the appeal names (the table's \"found on\" says where the funds are).")
        # the listed symbols of the configuration (a DISTINCT over the cases would read the whole table)
        first[3].multiselect("Asset", list(choices.assets), key="q_asset")
        first[4].multiselect("Origin", list(ORIGIN_LABELS), format_func=ORIGIN_LABELS.__getitem__, key="q_origin",
                             help="Appealed by the user, filed by an operator for the user, or detected by "
                                  "`recovery scan` before anyone appealed.")
        second = st.columns([2, 2, 2, 4, 2])
        second[0].selectbox("Assignee", [ANYONE, ME, UNASSIGNED_LABEL, *choices.operators], key="q_assignee")
        second[1].selectbox("Age", list(AGE_CHOICES), key="q_age")
        second[2].selectbox("SLA", list(SLA_CHOICES), key="q_sla")
        second[3].multiselect("Flags (all of)", [f.value for f in Flag], key="q_flags",
                              help="Payout problems: refund_mismatch (the recorded refund does not prove the "
                                   "approved payout), refund_overdue (not proven on chain in time), "
                                   "refund_overpaid (paid more than approved).")
        second[4].toggle("Sent for approval", key="q_approval",
                         help="Only cases in review that a specialist sent to the approvers.")
        third = st.columns([2, 1, 1, 2, 2, 2])
        third[0].selectbox("Sort by", list(SORT_LABELS), format_func=SORT_LABELS.__getitem__, key="q_sort")
        third[1].toggle("Descending", key="q_desc")
        third[2].selectbox("Per page", list(queue_url.PAGE_SIZES), key="q_page_size")
        third[3].toggle("Evidence waiting", key="q_evidence_waiting",
                        help="Only the cases with ownership evidence (a withdrawal record) waiting for review.")
        # value=[]: a range of days (the address sets the state; the default only makes it a range)
        third[4].date_input("Filed (days, UTC)", value=[], key="q_filed", format="YYYY-MM-DD",
                            help="Only the cases filed on these days (the first and the last included).")
        third[5].date_input("Paid out (days, UTC)", value=[], key="q_paid", format="YYYY-MM-DD",
                            help="Only the cases paid out on these days: a credit booked, a refund proven on "
                                 "chain (the dashboard's value by payout date).")


def _hidden_note(wb: Workbench, filt: QueueFilter, now: datetime, found: case_search.Search) -> None:
    """"N more in finished statuses" when the status filter hides cases the search finds."""
    hidden = queues.hidden_by_status(wb.db, filt, now, networks=list(wb.config.networks), search=found)
    if not hidden.total:
        return
    where = "finished statuses" if hidden.finished_only else "other statuses"
    detail = ", ".join(f"{n} {status}" for status, n in sorted(hidden.by_status.items()))
    note = st.columns([6, 2])
    note[0].info(f"{hidden.total} more in {where} ({detail}): the status filter hides them.")
    note[1].button("Include them", key="q_include_hidden", on_click=_include_statuses,
                   args=(sorted(hidden.by_status),), type="primary")


def _table(rows: list[QueueRow], now: datetime, clocks: tables.PayoutClocks, shown: list[tuple[str, int]]) -> None:
    frame = tables.queue_frame(rows, now, clocks)
    colors = tables.row_colors(rows, now, clocks)
    styled = frame.style.apply(lambda _column: colors, axis=0, subset=["age", "SLA"])
    # every row of the page in view (no inner scroll bar), each column as wide as its longest value
    st.dataframe(styled, hide_index=True, width="stretch", key="q_table", column_config=tables.column_config(frame),
                 on_select=lambda: _table_clicked(shown),
                 selection_mode=["multi-row", "single-cell"],
                 height=38 + 35 * max(1, len(rows)))


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    role = Role(info.role)
    if st.session_state.pop("wb_goto_case", False):
        reference = str(st.session_state.get("wb_case_ref", ""))
        st.switch_page(CASE_PAGE, query_params={"ref": reference} if reference else None)
    # the case page shows the case its link names (``?ref=``), not the last one opened from here
    st.session_state.pop("wb_case_ref", None)
    st.title("Queue")
    now = wb.now()
    choices = _choices(wb)
    _restore(choices)

    search = st.columns([6, 2])
    search[0].text_input("Find anything", key="q_text",
                         placeholder="reference, transaction hash or part of it, deposit address, sender or "
                                     "recipient, user id",
                         help="Looks through every status. Hex hashes and EVM addresses in any case; Base58 "
                              "addresses (TRON, Solana, Bitcoin, XRP Ledger, Stellar) exactly as written.")
    with search[1]:
        _go_to_box()
    _saved_views(wb, info.username, choices)
    _filters(wb, choices)

    if st.session_state.get("q_evidence_waiting"):
        _write_url()
        _evidence_waiting(wb)
        return

    filt = _filter(info.username)
    signature = (filt, st.session_state.get("q_sort"), st.session_state.get("q_desc"),
                 st.session_state.get("q_page_size"))
    previous = st.session_state.get("wb_queue_signature")
    st.session_state["wb_queue_signature"] = signature
    if previous is not None and previous != signature:
        st.session_state["q_page"] = 1
    sort = str(st.session_state.get("q_sort", "sla_due_at"))
    descending = bool(st.session_state.get("q_desc", False))
    networks = list(wb.config.networks)
    with wb.db.read() as session:  # the search runs once for the page, its count and the hidden matches
        found = case_search.search(wb.db, session, filt.text, networks)
    page = queues.queue_page(
        wb.db, filt, now, sort=sort, descending=descending, page=int(st.session_state.get("q_page", 1)),
        page_size=int(st.session_state.get("q_page_size", 50)), networks=networks, search=found,
    )
    st.session_state["q_page"] = page.page
    _write_url()

    breached_here = sum(1 for r in page.rows if r.breached(now))
    sla_hours = wb.config.policy.payout_sla_hours
    clocks = waiting_payouts(wb.db, [r.id for r in page.rows if r.status == CaseStatus.APPROVED.value], sla_hours)
    late_payouts = sum(1 for r in page.rows if tables.payout_overdue(r, now, clocks))
    st.caption(f"{page.total} matching case(s) · page {page.page} of {page.pages} · "
               f"{breached_here} past their SLA on this page (red; amber: due within 12 h)"
               + (f" · {late_payouts} approved payout(s) unpaid for more than {sla_hours} h" if late_payouts else ""))
    if found is not None:
        _hidden_note(wb, filt, now, found)
    if page.total == 1:
        only = page.rows[0].reference
        st.page_link(CASE_PAGE, label=f"Open {only}", query_params={"ref": only})
    shown = [(r.reference, r.version) for r in page.rows]
    if page.rows:
        _table(page.rows, now, clocks, shown)

    nav = st.columns([1, 1, 2, 4])
    nav[0].button("Previous", key="q_prev", on_click=_change_page, args=(-1,), disabled=page.page <= 1)
    nav[1].button("Next", key="q_next", on_click=_change_page, args=(1,), disabled=page.page >= page.pages)
    nav[2].number_input("Page", min_value=1, max_value=page.pages, step=1, key="q_page",
                        label_visibility="collapsed")
    nav[3].download_button(
        "Export the filtered cases (CSV)",
        data=lambda: queues.export_csv(wb.db, filt, now, sort=sort, descending=descending,
                                       networks=list(wb.config.networks)),
        file_name=f"cases-{now:%Y%m%d-%H%M}.csv", mime="text/csv", key="q_export", on_click="ignore",
    )

    st.button("Open the selected case", key="q_open", on_click=_open_selected, args=(shown,))
    if can(role, "assign"):
        with st.container(border=True):
            st.caption("Bulk assign the selected cases (each with the version shown here)")
            bulk = st.columns([3, 2])
            active = queues.operator_names(wb.db)
            bulk[0].selectbox("Assign to", [NOBODY, *active], key="q_bulk_assignee")
            bulk[1].button("Assign selected", key="q_bulk_assign", on_click=_bulk_assign, args=(shown,))


render()
