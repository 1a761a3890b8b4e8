"""Audit: verify the hash chain of every case event; export the events (JSON lines)."""

from __future__ import annotations

import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from recovery import queues
from recovery.audit import verify_chain


def _verify() -> None:
    with current().db.read() as session:
        result = verify_chain(session)
    st.session_state["wb_audit_result"] = result


def render() -> None:
    if auth.signed_in() is None:
        return
    wb = current()
    st.title("Audit")
    st.caption("Every case event stores the SHA-256 of its content and of the event before it, across all "
               "cases. Verifying recomputes the whole chain and names the first event that was edited, deleted, "
               "reordered or is missing.")
    st.button("Verify the event chain", key="audit_verify", on_click=_verify, type="primary")
    result = st.session_state.get("wb_audit_result")
    if result is not None:
        if result.ok:
            st.success(f"The audit chain is intact: {result.events_checked} events verified.")
        else:
            st.error(f"The audit chain is broken at event {result.first_broken_id}.")
            st.text(result.problem or "")
    st.download_button(
        "Export all events (JSON lines)", data=lambda: "".join(queues.export_events_jsonl(wb.db)),
        file_name=f"audit-events-{wb.now():%Y%m%d-%H%M}.jsonl", mime="application/x-ndjson", key="audit_export",
        on_click="ignore",
    )
    st.subheader("Latest events")
    latest = queues.latest_events(wb.db, 50)
    ui.table(latest, ["id", "reference", "when", "actor", "actor_role", "action", "from_status", "to_status",
                      "details"], key="audit_latest", empty="No events yet.")


render()
