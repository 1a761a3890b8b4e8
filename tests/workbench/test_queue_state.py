"""Queue page (issue 23): find anything through every status, the state kept in the page's address,
references that open their case, the "found on" column, saved views per operator."""

from __future__ import annotations

from datetime import date
from typing import Any

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from app.workbench import queue_url
from app.workbench.context import Workbench
from recovery import saved_views
from recovery.models import ObservedTransfer
from recovery.queues import ACTIVE_STATUSES
from tests.workbench.conftest import MAIN, frame_with, markdown_texts, signed_in_app
from tests.workbench.seed import OPERATORS, World

QUEUE = "views/queue.py"


def references(at: AppTest) -> list[str]:
    try:
        return list(frame_with(at, "reference")["reference"])
    except AssertionError:
        return []


def caption(at: AppTest) -> str:
    return next(str(c.value) for c in at.caption if "matching case" in str(c.value))


def hidden_note(at: AppTest) -> str:
    return next((str(i.value) for i in at.info if "more in" in str(i.value)), "")


def sender_of(wb: Workbench, reference: str) -> str:
    tx_hash = wb.cases.get(reference).case.tx_hash
    with wb.db.read() as session:
        return str(session.exec(select(ObservedTransfer.sender).where(ObservedTransfer.tx_hash == tx_hash)).first())


def open_with(username: str, params: dict[str, str]) -> AppTest:
    """A new session opened on the queue's address with these parameters (a reload, a shared link)."""
    import time

    from app.workbench import auth

    at = AppTest.from_file(str(MAIN), default_timeout=60)
    now = time.time()
    at.session_state[auth.SESSION_KEY] = auth.SignedIn(username, OPERATORS[username].value, "password", now, now)
    at.query_params = dict(params)
    at.run()
    return at


def page_links(at: AppTest) -> list[tuple[str, Any]]:
    return [(str(e.proto.label), e.proto.query_string) for e in at.get("page_link")]


def test_a_credited_case_is_found_by_its_hash_and_the_hidden_match_is_announced(wb: Workbench, world: World) -> None:
    tx_hash = wb.cases.get(world.credited).case.tx_hash
    at = signed_in_app("sara")
    at.text_input(key="q_text").input(tx_hash.upper().replace("0X", "0x")).run()
    assert caption(at).startswith("0 matching case(s)")
    assert hidden_note(at).startswith("1 more in finished statuses (1 credited)")
    at.button(key="q_include_hidden").click().run()
    assert references(at) == [world.credited]
    assert "credited" in at.multiselect(key="q_status").value
    assert hidden_note(at) == ""
    # one match: a link that opens it
    assert page_links(at) == [(f"Open {world.credited}", f"ref={world.credited}")]
    assert at.query_params["q"] == tx_hash.upper().replace("0X", "0x")


def test_a_case_is_found_by_the_address_it_was_sent_from(wb: Workbench, world: World) -> None:
    sender = sender_of(wb, world.credited)
    assert sender.startswith("0x") and sender != sender.lower()  # stored with its EIP-55 checksum
    at = signed_in_app("sara")
    at.text_input(key="q_text").input(sender.lower()).run()
    shown = set(references(at))
    assert world.credited not in shown and shown  # the open cases sent from the same address
    assert "credited" in hidden_note(at)
    at.button(key="q_include_hidden").click().run()
    assert world.credited in references(at)
    # the finished statuses can also be chosen at once with the status filter cleared
    at = open_with("sara", {"q": sender, "status": "all"})
    assert world.credited in references(at) and hidden_note(at) == ""


def test_the_page_writes_its_state_into_the_address(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    assert at.query_params == {}  # the defaults: a clean address
    at.multiselect(key="q_status").set_value(["in_review"])
    at.selectbox(key="q_sort").set_value("value_usd")
    at.toggle(key="q_desc").set_value(True)
    at.text_input(key="q_text").input("user-")
    at.selectbox(key="q_assignee").set_value("(me)").run()
    assert at.query_params == {"status": "in_review", "assignee": "me", "q": "user-", "sort": "value_usd",
                               "desc": "1"}
    assert references(at) == [world.big]


def test_a_shared_link_or_a_reload_shows_the_same_queue(wb: Workbench, world: World) -> None:
    params = {"status": "in_review", "q": "user-", "sort": "value_usd", "desc": "1", "size": "25"}
    at = open_with("tom", params)
    assert at.multiselect(key="q_status").value == ["in_review"]
    assert at.text_input(key="q_text").value == "user-"
    assert at.selectbox(key="q_sort").value == "value_usd" and at.toggle(key="q_desc").value
    assert at.selectbox(key="q_page_size").value == 25
    shown = references(at)
    assert shown[:2] == [world.big, world.small] and world.credited not in shown
    assert at.query_params == params
    # nonsense in an address is dropped, never an error
    at = open_with("tom", {"status": "open,in_review", "sort": "id; drop", "size": "7", "page": "x", "age": "?"})
    assert not at.exception
    assert at.multiselect(key="q_status").value == ["in_review"]
    assert at.selectbox(key="q_sort").value == "sla_due_at" and at.selectbox(key="q_page_size").value == 50


def test_back_from_a_case_keeps_the_filters(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.multiselect(key="q_status").set_value(["in_review"])
    at.multiselect(key="q_origin").set_value(["detected"]).run()
    filtered = references(at)
    assert set(filtered) == set(world.detected)
    address = dict(at.query_params)
    at.text_input(key="q_goto").input(world.detected[0])
    at.button(key="q_go").click().run()
    assert [t.value for t in at.title] == [f"Case {world.detected[0]}"]
    assert at.query_params.get("ref") == world.detected[0]
    # the browser's back button: the queue's address again
    at.query_params = address
    at.switch_page(QUEUE).run()
    assert references(at) == filtered
    assert at.multiselect(key="q_origin").value == ["detected"]
    # and through the sidebar (an address without parameters), the session's last queue
    at.switch_page("views/case.py").run()
    at.query_params = {}
    at.switch_page(QUEUE).run()
    assert references(at) == filtered


def test_paging_is_kept_in_the_address(wb: Workbench, world: World) -> None:
    at = open_with("sara", {"status": "all", "size": "25"})
    assert caption(at).startswith("12 matching case(s) · page 1 of 1")
    at = open_with("sara", {"status": "all", "page": "2", "size": "25"})
    assert caption(at).startswith("12 matching case(s) · page 1 of 1")  # past the end: the last page
    assert "page" not in at.query_params


def test_the_found_on_column_says_where_the_funds_are(wb: Workbench, world: World) -> None:
    at = open_with("sara", {"origin": "detected"})
    frame = frame_with(at, "found on")
    found = dict(zip(frame["reference"], frame["found on"], strict=True))
    claimed = dict(zip(frame["reference"], frame["network"], strict=True))
    for reference in world.detected:
        assert found[reference] == wb.cases.get(reference).case.deposit_network
    assert found[world.detected[0]] == "bsc" and claimed[world.detected[0]] == "bsc"
    assert list(frame.columns)[:6] == ["reference", "status", "category", "network", "found on", "asset"]


def test_built_in_views(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.selectbox(key="q_view").set_value("Waiting for approval").run()
    assert references(at) == [world.big]
    assert at.query_params == {"status": "in_review", "approval": "1"}
    at.selectbox(key="q_view").set_value("My overdue").run()
    assert references(at) == [] and caption(at).startswith("0 matching")
    at.selectbox(key="q_view").set_value("Overdue (everyone)").run()
    assert set(references(at)) == set(world.overdue)
    assert at.selectbox(key="q_view").value == "(choose a view)"


def test_saved_views_are_each_operators_own(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.multiselect(key="q_origin").set_value(["detected"])
    at.text_input(key="q_view_name").input("  stray   deposits ")
    at.button(key="q_view_save").click().run()
    assert any("View saved." in t for t in markdown_texts(at))
    assert [(v.name, v.query) for v in saved_views.list_views(wb.db, "sara")] == [
        ("stray deposits", "origin=detected")]
    assert "★ stray deposits" in at.selectbox(key="q_view").options
    assert saved_views.list_views(wb.db, "tom") == []
    assert "★ stray deposits" not in signed_in_app("tom").selectbox(key="q_view").options
    # chosen later, in a new session: the filters come back
    at = signed_in_app("sara")
    assert set(references(at)) != set(world.detected)
    at.selectbox(key="q_view").set_value("★ stray deposits").run()
    assert set(references(at)) == set(world.detected)
    # saved again under the same name: replaced; then deleted
    at.multiselect(key="q_origin").set_value(["appeal"])
    at.text_input(key="q_view_name").input("stray deposits")
    at.button(key="q_view_save").click().run()
    assert [v.query for v in saved_views.list_views(wb.db, "sara")] == ["origin=appeal"]
    at.selectbox(key="q_view_delete").set_value("stray deposits")
    at.button(key="q_view_delete_button").click().run()
    assert saved_views.list_views(wb.db, "sara") == []
    # a view needs a name
    at.text_input(key="q_view_name").input("   ")
    at.button(key="q_view_save").click().run()
    assert any("not saved" in str(w.value) for w in at.warning)


def test_the_address_round_trip() -> None:
    choices = queue_url.Choices(networks=["ethereum", "bsc"], assets=["USDT"], operators=["sara"])
    state = queue_url.defaults()
    assert queue_url.to_params(state) == {}
    state.update(q_status=[], q_network=["bsc"], q_assignee="sara", q_age="1-3 days", q_text=" 0xAB ",
                 q_page=3, q_page_size=100, q_approval=True)
    params = queue_url.to_params(state)
    assert params == {"status": "all", "network": "bsc", "assignee": "sara", "age": "1-3 days", "approval": "1",
                      "q": "0xAB", "size": "100", "page": "3"}
    back = queue_url.from_params(params, choices)
    assert back["q_status"] == [] and back["q_network"] == ["bsc"] and back["q_text"] == "0xAB"
    assert queue_url.to_params(back) == params
    assert queue_url.parse_query(queue_url.query_string(params)) == params
    assert queue_url.from_params({"assignee": "mallory"}, choices)["q_assignee"] == queue_url.ANYONE
    assert queue_url.from_params({}, choices)["q_status"] == list(ACTIVE_STATUSES)

def test_days_in_the_address() -> None:
    choices = queue_url.Choices(networks=["ethereum"], assets=["USDT"], operators=[])
    back = queue_url.from_params({"filed": "2026-12-01", "paid": "2026-11-30..2026-12-06"}, choices)
    assert back["q_filed"] == (date(2026, 12, 1), date(2026, 12, 1))
    assert back["q_paid"] == (date(2026, 11, 30), date(2026, 12, 6))
    assert queue_url.to_params(back) == {"filed": "2026-12-01", "paid": "2026-11-30..2026-12-06"}
    # a range being picked (one day chosen so far) is that day; none is no filter
    assert queue_url.to_params({**queue_url.defaults(), "q_paid": (date(2026, 12, 2),)}) == {"paid": "2026-12-02"}
    assert queue_url.day_range((date(2026, 12, 2),)) == (date(2026, 12, 2), date(2026, 12, 2))
    assert queue_url.day_range(()) is None
    # backwards, not a date or something else: dropped, never an error
    for bad in ("2026-12-06..2026-11-30", "yesterday", "2026-13-01", "2026-12-01..", "'; drop"):
        assert queue_url.from_params({"filed": bad, "paid": bad}, choices)["q_filed"] == ()


@pytest.mark.parametrize("role_user", ["ari", "bob"])
def test_every_role_can_search_and_save_views(wb: Workbench, world: World, role_user: str) -> None:
    at = open_with(role_user, {"q": world.rejected.lower()})
    assert caption(at).startswith("0 matching") and "1 rejected" in hidden_note(at)
    assert "q_view_save" in {b.key for b in at.button}
