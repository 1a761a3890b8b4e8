"""The Audit page (AppTest, the seeded workbench): filters by actor, case, action and days kept in
the page's address, paging, readable rows with the details of a selected event, the exports of the
filtered events."""

from __future__ import annotations

import json
import time
from datetime import timedelta

from streamlit.testing.v1 import AppTest

from app.workbench import auth
from app.workbench.context import Workbench
from recovery.audit_reads import AuditFilter, audit_page, count_events
from tests.workbench.conftest import MAIN, frame_with, signed_in_app
from tests.workbench.seed import OPERATORS, World

AUDIT = "views/audit.py"


def open_with(username: str, params: dict[str, str]) -> AppTest:
    """A new session opened on the Audit page's address with these parameters (a reload, a link)."""
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    now = time.time()
    at.session_state[auth.SESSION_KEY] = auth.SignedIn(username, OPERATORS[username].value, "password", now, now)
    at.run()
    at.query_params = dict(params)
    at.switch_page(AUDIT).run()
    assert not at.exception, at.exception
    return at


def shown(at: AppTest) -> list[int]:
    return [int(i) for i in frame_with(at, "actor_role")["id"]]


def caption(at: AppTest) -> str:
    return next(str(c.value) for c in at.caption if "matching event" in str(c.value))


def test_filters_come_from_the_address_and_match_the_database(wb: Workbench, world: World) -> None:
    at = open_with("ari", {"actor": "sara", "action": "send_for_approval,note"})
    expected = audit_page(wb.db, AuditFilter(actor="sara", actions=("send_for_approval", "note")))
    # sara sent the credited and the big case for approval and wrote the note on the small case
    assert expected.total == 3
    assert shown(at) == [r.id for r in expected.rows]
    frame = frame_with(at, "actor_role")
    assert set(frame["actor"]) == {"sara"} and set(frame["action"]) == {"send_for_approval", "note"}
    assert set(frame["case"]) == {world.credited, world.big, world.small}
    assert caption(at).startswith("3 matching event(s)")
    assert at.selectbox(key="au_actor").value == "sara"
    assert at.multiselect(key="au_actions").value == ["send_for_approval", "note"]


def test_the_page_writes_its_filters_into_the_address(wb: Workbench, world: World) -> None:
    at = signed_in_app("alice", AUDIT)
    assert at.query_params == {}
    at.text_input(key="au_case").input(world.credited.lower())
    today = wb.now().date()
    at.date_input(key="au_from").set_value(today - timedelta(days=3))
    at.date_input(key="au_to").set_value(today).run()
    assert not at.exception
    assert at.query_params == {"case": world.credited, "from": (today - timedelta(days=3)).isoformat(),
                               "to": today.isoformat()}
    actions = list(frame_with(at, "actor_role")["action"])
    assert actions[:3] == ["mark_credited", "approve", "send_for_approval"]  # newest first
    assert set(frame_with(at, "actor_role")["case"]) == {world.credited}
    # a shared link of that address shows the same events
    again = open_with("ada", dict(at.query_params))
    assert shown(again) == shown(at)


def test_paging_and_a_changed_filter_starts_at_page_one(wb: Workbench, world: World) -> None:
    total = count_events(wb.db, AuditFilter())
    assert total > 25
    at = open_with("ari", {"size": "25", "page": "2"})
    everything = audit_page(wb.db, AuditFilter(), page_size=200).rows
    assert shown(at) == [r.id for r in everything[25:50]]
    assert at.number_input(key="au_page").value == 2
    assert at.query_params == {"size": "25", "page": "2"}
    at.selectbox(key="au_actor").set_value("tom").run()
    assert at.number_input(key="au_page").value == 1 and "page" not in at.query_params
    # nonsense in an address is dropped, never an error; a page past the end shows the last one
    at = open_with("ari", {"size": "7", "page": "99999", "from": "yesterday", "action": ""})
    assert at.selectbox(key="au_size").value == 50
    assert at.number_input(key="au_page").value == -(-total // 50)


def test_details_are_a_column_of_plain_text(wb: Workbench, world: World) -> None:
    at = open_with("ari", {"case": world.small, "action": "note"})
    frame = frame_with(at, "actor_role")
    [event] = audit_page(wb.db, AuditFilter(reference=world.small, actions=("note",))).rows
    assert len(frame) == 1 and frame["details"][0] == json.dumps(event.details, ensure_ascii=False, sort_keys=True)
    assert frame["details"][0].startswith('{"text": "<script>')  # the hostile note is data in a cell
    assert not any("<script>" in str(m.value) for m in at.markdown)
    assert any("Select a row" in str(c.value) for c in at.caption)


def test_the_exports_are_offered_for_the_filter(wb: Workbench, world: World) -> None:
    at = open_with("ari", {"actor": "tom"})
    keys = {d.key: d for d in at.get("download_button")}
    assert {"au_export_csv", "au_export_jsonl", "audit_export"} <= set(keys)
    at = open_with("ari", {"actor": "nobody-at-all"})
    assert any("No event matches" in str(c.value) for c in at.caption)
    assert not at.exception
