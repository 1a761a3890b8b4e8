"""Audit: verify the hash chain of every event; the events filtered by actor, case, action and dates,
paged in SQL (``recovery/audit_reads.py``), exported as CSV or JSON lines; the whole chain exported.

The filters live in the page's address (``?actor=maria&case=RC-000012&action=approve,reject&from=
2026-11-01&to=2026-11-30&size=100&page=2``): back, reload and a shared link show the same events.
Every cell is plain text (an actor may be a user's id; details quote what operators typed); the
details of one event open as JSON when its row is selected.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from datetime import date
from typing import Any

import pandas as pd
import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import Workbench, current
from recovery import audit_reads, queues
from recovery.audit import verify_chain
from recovery.audit_reads import PAGE_SIZES, AuditFilter, AuditPage, AuditRow

CASE_PAGE = "views/case.py"
#: the page's URL parameters -> widget keys
PARAMS: dict[str, str] = {"actor": "au_actor", "case": "au_case", "action": "au_actions", "from": "au_from",
                          "to": "au_to", "size": "au_size", "page": "au_page"}
#: session key: the parameters the page last wrote to the address
URL_KEY = "wb_audit_url"
DEFAULT_SIZE = 50
#: the details column shows this many characters of the JSON (the whole of it: select the row)
DETAILS_CHARS = 160


def _verify() -> None:
    with current().db.read() as session:
        result = verify_chain(session)
    st.session_state["wb_audit_result"] = result


# ------------------------------------------------------------------------------------ the address
def _day(value: str) -> date | None:
    try:
        return date.fromisoformat(value.strip())
    except ValueError:
        return None


def from_params(params: Mapping[str, Any]) -> dict[str, Any]:
    """The widget values an address asks for (anything invalid is dropped: the default stands)."""
    def one(name: str) -> str:
        value = params.get(name, "")
        return str(value[-1] if isinstance(value, list) and value else value or "").strip()

    state: dict[str, Any] = {"au_actor": None, "au_case": "", "au_actions": [], "au_from": None, "au_to": None,
                             "au_size": DEFAULT_SIZE, "au_page": 1}
    actor = one("actor")[:audit_reads.MAX_TEXT]
    state["au_actor"] = actor or None
    state["au_case"] = one("case")[:20].upper()
    state["au_actions"] = [a for a in dict.fromkeys(p.strip() for p in one("action").split(",")) if 0 < len(a) <= 40]
    state["au_from"], state["au_to"] = _day(one("from")), _day(one("to"))
    if state["au_from"] and state["au_to"] and state["au_from"] > state["au_to"]:
        state["au_to"] = None
    size = one("size")
    if size.isdigit() and int(size) in PAGE_SIZES:
        state["au_size"] = int(size)
    page = one("page")
    if page.isdigit() and int(page) >= 1:
        state["au_page"] = min(int(page), 1_000_000)
    return state


def to_params(state: Mapping[str, Any]) -> dict[str, str]:
    """The address of the widgets' values (only what differs from the default)."""
    params: dict[str, str] = {}
    if state.get("au_actor"):
        params["actor"] = str(state["au_actor"]).strip()
    if str(state.get("au_case") or "").strip():
        params["case"] = str(state["au_case"]).strip().upper()
    if state.get("au_actions"):
        params["action"] = ",".join(state["au_actions"])
    for key, name in (("au_from", "from"), ("au_to", "to")):
        if isinstance(state.get(key), date):
            params[name] = state[key].isoformat()
    if int(state.get("au_size") or DEFAULT_SIZE) != DEFAULT_SIZE:
        params["size"] = str(state["au_size"])
    if int(state.get("au_page") or 1) > 1:
        params["page"] = str(state["au_page"])
    return {k: v for k, v in params.items() if v}


def _own(params: Mapping[str, Any]) -> dict[str, str]:
    return {name: str(params[name]) for name in PARAMS if name in params and params[name] != ""}


def _restore() -> None:
    """Set the widgets from the address when it changed under the page (opened from a link, back,
    reload) or when the page's widgets are gone (it was left: the last state written comes back)."""
    state = st.session_state
    here = _own(st.query_params.to_dict())
    last = state.get(URL_KEY)
    gone = "au_size" not in state
    if here != last and (here or not gone):
        wanted = from_params(here)
    elif gone:
        wanted = from_params(last or {})
    else:
        return
    for key, value in wanted.items():
        state[key] = value
    state["wb_audit_signature"] = _signature()  # the page the address asks for is kept


def _write_url() -> None:
    params = to_params({key: st.session_state.get(key) for key in PARAMS.values()})
    if _own(st.query_params.to_dict()) != params:
        st.query_params.from_dict(params)
    st.session_state[URL_KEY] = params


def _signature() -> tuple[Any, ...]:
    state = st.session_state
    return (state.get("au_actor"), str(state.get("au_case") or "").strip().upper(),
            tuple(state.get("au_actions") or ()), state.get("au_from"), state.get("au_to"), state.get("au_size"))


def _clear() -> None:
    for key, value in from_params({}).items():
        st.session_state[key] = value


# ------------------------------------------------------------------------------------ the events
def _filter() -> AuditFilter | None:
    state = st.session_state
    since, until = state.get("au_from"), state.get("au_to")
    if isinstance(since, date) and isinstance(until, date) and since > until:
        st.warning("The first day is after the last day: no event can match.")
        return None
    return AuditFilter(actor=str(state.get("au_actor") or "").strip(),
                       reference=str(state.get("au_case") or "").strip().upper(),
                       actions=tuple(state.get("au_actions") or ()), since=since, until=until)


def _details_text(details: dict[str, Any]) -> str:
    text = json.dumps(details, ensure_ascii=False, sort_keys=True)
    return text if len(text) <= DETAILS_CHARS else text[:DETAILS_CHARS - 1] + "…"


def _frame(rows: list[AuditRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [{"id": r.id, "when": ui.when(r.created_at), "case": r.reference or "-", "actor": r.actor,
          "actor_role": r.actor_role, "action": r.action,
          "status": f"{r.from_status or '-'} → {r.to_status or '-'}" if r.from_status or r.to_status else "-",
          "details": _details_text(r.details)} for r in rows],
        columns=["id", "when", "case", "actor", "actor_role", "action", "status", "details"],
    )


def _filters(wb: Workbench) -> None:
    state = st.session_state
    actors = audit_reads.actors(wb.db)
    if state.get("au_actor") and state["au_actor"] not in actors:
        actors = sorted({*actors, str(state["au_actor"])})
    actions = audit_reads.known_actions()
    actions = sorted({*actions, *(state.get("au_actions") or ())})
    row = st.columns([2, 2, 3, 2, 2])
    row[0].selectbox("Actor", actors, index=None, key="au_actor", placeholder="anyone", accept_new_options=True,
                     help="An operator, system, or any name typed in (a user's id).")
    row[1].text_input("Case", key="au_case", placeholder="RC-000123", max_chars=20)
    row[2].multiselect("Action", actions, key="au_actions", placeholder="any action", accept_new_options=True)
    row[3].date_input("From (UTC day)", value=None, key="au_from", format="YYYY-MM-DD")
    row[4].date_input("To (UTC day, included)", value=None, key="au_to", format="YYYY-MM-DD")


def _pager(page: AuditPage) -> None:
    state = st.session_state
    state["au_page"] = page.page
    cells = st.columns([3, 1, 1])
    first = (page.page - 1) * page.page_size + 1
    shown = f"events {first:,} to {first + len(page.rows) - 1:,}" if page.rows else "no event"
    cells[0].caption(f"{page.total:,} matching event(s), newest first; page {page.page:,} of {page.pages:,}: "
                     f"{shown}.")
    cells[1].number_input("Page", min_value=1, max_value=page.pages, step=1, key="au_page")
    cells[2].selectbox("Per page", list(PAGE_SIZES), key="au_size")


def _selected(page: AuditPage) -> None:
    """The full details of the event selected in the table, and its case."""
    selection = st.session_state.get("au_table")
    rows = list(getattr(getattr(selection, "selection", None), "rows", []) or []) if selection is not None else []
    if not rows and isinstance(selection, Mapping):
        rows = list(selection.get("selection", {}).get("rows", []))
    if not rows or rows[0] >= len(page.rows):
        st.caption("Select a row to read its details in full.")
        return
    event = page.rows[rows[0]]
    with st.expander(f"Event {event.id}: {event.action} by {event.actor}", expanded=True):
        ui.field_table([("when", ui.when(event.created_at)), ("actor", f"{event.actor} ({event.actor_role})"),
                        ("case", event.reference), ("from status", event.from_status),
                        ("to status", event.to_status), ("hash", event.hash)], key="au_event_fields")
        st.json(event.details, expanded=True)
        if event.reference:
            st.page_link(CASE_PAGE, label=f"Open {event.reference}", query_params={"ref": event.reference})


def _exports(wb: Workbench, filt: AuditFilter, total: int) -> None:
    limit = audit_reads.EXPORT_LIMIT
    stamp = f"{wb.now():%Y%m%d-%H%M}"
    cut = total > limit
    note = (f"The first {limit:,} of {total:,} events (oldest first): narrow the filter for the rest."
            if cut else f"{total:,} event(s), oldest first.")
    cells = st.columns([1, 1, 3])
    cells[0].download_button(
        "Export the filtered events (CSV)", data=lambda: "".join(audit_reads.export_csv(wb.db, filt)),
        file_name=f"audit-events-{stamp}.csv", mime="text/csv", key="au_export_csv", on_click="ignore",
        disabled=total == 0, help=note,
    )
    cells[1].download_button(
        "Export the filtered events (JSON lines)", data=lambda: "".join(audit_reads.export_jsonl(wb.db, filt)),
        file_name=f"audit-events-{stamp}.jsonl", mime="application/x-ndjson", key="au_export_jsonl",
        on_click="ignore", disabled=total == 0, help=note,
    )
    if cut:
        cells[2].warning(note)


def render() -> None:
    if auth.signed_in() is None:
        return
    wb = current()
    st.title("Audit")
    st.caption("Every event (case actions, sign-ins, operator changes, imports, key rotations) is signed with "
               "the audit key over its content and the event before it, across all cases. Verifying "
               "recomputes the whole chain and names the first event that was edited, deleted, reordered or is "
               "missing.")
    top = st.columns([1, 1, 2])
    top[0].button("Verify the event chain", key="audit_verify", on_click=_verify, type="primary")
    top[1].download_button(
        "Export the whole chain (JSON lines)", data=lambda: "".join(queues.export_events_jsonl(wb.db)),
        file_name=f"audit-events-{wb.now():%Y%m%d-%H%M}.jsonl", mime="application/x-ndjson", key="audit_export",
        on_click="ignore",
    )
    result = st.session_state.get("wb_audit_result")
    if result is not None:
        if result.ok:
            st.success(f"The audit chain is intact: {result.events_checked} events verified.")
        else:
            st.error(f"The audit chain is broken at event {result.first_broken_id}.")
            st.text(result.problem or "")

    st.subheader("Events")
    _restore()
    _filters(wb)
    signature = _signature()
    if st.session_state.get("wb_audit_signature") != signature:  # a changed filter starts at page 1
        st.session_state["wb_audit_signature"] = signature
        st.session_state["au_page"] = 1
    st.button("Clear the filters", key="au_clear", on_click=_clear)
    filt = _filter()
    if filt is None:
        _write_url()
        return
    page = audit_reads.audit_page(wb.db, filt, page=int(st.session_state.get("au_page") or 1),
                                  page_size=int(st.session_state.get("au_size") or DEFAULT_SIZE))
    _pager(page)
    _write_url()
    if not page.rows:
        st.caption("No event matches these filters." if not filt.is_empty else "No events yet.")
    else:
        frame = _frame(page.rows)
        st.dataframe(frame, hide_index=True, width="stretch", key="au_table", on_select="rerun",
                     selection_mode="single-row", height=38 + 35 * min(len(page.rows), 25),
                     column_config={"id": st.column_config.NumberColumn(format="%d", width="small"),
                                    "details": st.column_config.TextColumn(width="large")})
        _selected(page)
    _exports(wb, filt, page.total)


render()
