"""Queue page: filters, sorting, SQL paging, SLA highlight, bulk assign, opening a case, export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from typing import Any

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest

from app.workbench import tables, ui
from app.workbench.context import Workbench
from app.workbench.payout_reads import waiting_payouts
from recovery import queues
from recovery.intake import validate_appeal
from recovery.models import Case
from recovery.queues import QueueFilter
from recovery.services import Actor
from recovery.vocabulary import CaseStatus, Role
from tests.conftest import Clock
from tests.fixtures_anvil import fresh_address
from tests.workbench.conftest import frame_with, markdown_texts, plain_texts, signed_in_app
from tests.workbench.seed import SARA, World

BOB = Actor("bob", Role.APPROVER)

QUEUE = "views/queue.py"


def references(at: AppTest) -> list[str]:
    return list(frame_with(at, "reference")["reference"])


def caption(at: AppTest) -> str:
    return next(str(c.value) for c in at.caption if "matching case" in str(c.value))


def test_default_queue_is_the_open_backlog_most_urgent_first(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    assert not at.exception
    shown = references(at)
    finished = {world.credited, world.rejected}
    assert finished.isdisjoint(shown)
    appealed = {world.small, world.big, world.unlisted, *world.contested, world.not_found, *world.overdue}
    assert set(shown) == appealed | set(world.detected)
    # most urgent first: the two overdue cases lead, and say so
    assert shown[:2] == list(world.overdue)
    sla = list(frame_with(at, "SLA")["SLA"])
    assert sla[0].startswith("overdue") and sla[1].startswith("overdue")
    assert all(s.startswith("due in") for s in sla[2:])
    assert caption(at).startswith("10 matching case(s) · page 1 of 1 · 2 past their SLA")
    # each case says how it was opened
    origins = dict(zip(references(at), frame_with(at, "origin")["origin"], strict=True))
    assert origins == {**dict.fromkeys(appealed, "appeal"), **dict.fromkeys(world.detected, "detected")}


def test_overdue_rows_are_highlighted(wb: Workbench, world: World) -> None:
    now = wb.now()
    page = queues.queue_page(wb.db, QueueFilter(statuses=queues.ACTIVE_STATUSES), now)
    styles = tables.queue_table(page.rows, now)._compute().ctx
    overdue_rows = {i for i, row in enumerate(page.rows) if row.reference in world.overdue}
    red = {row for (row, _col), style in styles.items() if ("background-color", "#f8d7da") in style}
    assert red == overdue_rows
    # due within 12 hours: amber
    soon = page.rows[-1]
    later = now + (soon.sla_due_at - now) - queues.DUE_SOON / 2 if soon.sla_due_at else now
    assert tables.row_colors([soon], later) == [tables.DUE_SOON]


def test_approved_unpaid_cases_show_their_payout_sla(wb: Workbench, world: World, wb_clock: Clock) -> None:
    hours = wb.config.policy.payout_sla_hours
    wb.cases.approve(world.small, BOB, expected_version=wb.cases.get(world.small).case.version)

    def small_sla(at: AppTest) -> str:
        frame = frame_with(at, "reference")
        return str(frame[frame["reference"] == world.small]["SLA"].iloc[0])

    wb_clock.advance(hours=3)
    at = signed_in_app("sara")
    assert small_sla(at) == f"payout due in {ui.duration(timedelta(hours=hours - 3))} (approved 3h 0m ago)"
    assert "approved payout(s) unpaid" not in caption(at)
    wb_clock.advance(hours=hours)
    at = signed_in_app("sara")
    assert small_sla(at) == f"payout overdue 3h 0m (approved {ui.duration(timedelta(hours=hours + 3))} ago)"
    assert caption(at).endswith(f" · 1 approved payout(s) unpaid for more than {hours} h")
    # marked red like a case past its SLA
    now = wb.now()
    page = queues.queue_page(wb.db, QueueFilter(statuses=(CaseStatus.APPROVED.value,)), now)
    clocks = waiting_payouts(wb.db, [r.id for r in page.rows], hours)
    assert [r.reference for r in page.rows] == [world.small]
    assert tables.row_colors(page.rows, now, clocks) == [tables.OVERDUE]
    assert tables.row_colors(page.rows, now) == [""], "without the payout clocks, no decision SLA runs"


@pytest.mark.parametrize("flag", ["refund_mismatch", "refund_overdue", "refund_overpaid"])
def test_the_payout_flags_are_queue_filters(wb: Workbench, world: World, flag: str) -> None:
    options = signed_in_app("sara").multiselect(key="q_flags").options
    assert flag in options
    with wb.db.write() as session:  # as the re-check's refund proof sets it (recovery.services.settle_refund)
        case = session.exec(select(Case).where(Case.reference == world.unlisted)).one()
        case.flags = sorted({*case.flags, flag})
        session.add(case)
    at = signed_in_app("sara")
    at.multiselect(key="q_flags").set_value([flag]).run()
    assert references(at) == [world.unlisted]
    assert caption(at).startswith("1 matching case(s)")


@pytest.mark.parametrize(("widget", "value", "expected"), [
    ("q_status", ["in_review"], "in_review"),
    ("q_flags", ["contested"], "contested"),
    ("q_sla", "breached", "overdue"),
    ("q_assignee", "sara", "big"),
    ("q_assignee", "(me)", "big"),
    ("q_age", "over 4 weeks", "none"),
    ("q_network", ["bsc"], "detected on bsc"),
    ("q_origin", ["detected"], "detected"),
    ("q_origin", ["appeal"], "appealed"),
    ("q_origin", ["appeal", "detected"], "open"),
    ("q_origin", ["intake"], "none"),
])
def test_filters(wb: Workbench, world: World, widget: str, value: object, expected: str) -> None:
    at = signed_in_app("sara")
    if isinstance(value, list):
        at.multiselect(key=widget).set_value(value).run()
    else:
        at.selectbox(key=widget).set_value(value).run()
    appealed = {world.small, world.big, world.unlisted, *world.contested, world.not_found, *world.overdue}
    want = {
        "in_review": {world.small, world.big, world.unlisted, *world.contested, *world.detected},
        "detected on bsc": {world.detected[0]},  # a detected case is opened where the deposit landed
        "detected": set(world.detected),
        "appealed": appealed,
        "open": appealed | set(world.detected),
        "contested": set(world.contested),
        "overdue": set(world.overdue),
        "big": {world.big},
        "none": set(),
    }[expected]
    if want:
        assert set(references(at)) == want
    else:
        assert not any(list(f.value.columns) == ["reference"] for f in at.dataframe)
        assert caption(at).startswith("0 matching case(s)")


def test_free_text_search_finds_hash_address_user_and_reference(wb: Workbench, world: World) -> None:
    case = wb.cases.get(world.big).case
    for text in (case.tx_hash[5:17].upper(), case.deposit_address.lower(), "USER-2", world.big.lower()):
        at = signed_in_app("sara")
        at.text_input(key="q_text").input(text).run()
        assert references(at) == [world.big], text
    at = signed_in_app("sara")
    at.text_input(key="q_text").input("%").run()  # a LIKE wildcard is searched for literally
    assert caption(at).startswith("0 matching")


def test_sorting_by_value_largest_first(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.multiselect(key="q_status").set_value(["in_review"])
    at.selectbox(key="q_sort").set_value("value_usd")
    at.toggle(key="q_desc").set_value(True).run()
    shown = references(at)
    # 5000, 500, 40, 40 with the unknown value last
    assert shown[:2] == [world.big, world.small] and shown[-1] == world.unlisted


def test_paging_happens_in_sql(wb: Workbench, world: World, wb_clock: Clock) -> None:
    facts_address = fresh_address()
    for i in range(60):
        draft = validate_appeal(wb.config, {"network": "bsc", "asset": "USDT", "tx_hash": "0x" + f"{i:064x}",
                                            "deposit_address": facts_address}, f"bulk-{i}")
        wb.cases.submit(draft, Actor(f"bulk-{i}", Role.USER))
    at = signed_in_app("sara")
    at.selectbox(key="q_page_size").set_value(25).run()
    assert caption(at).startswith("70 matching case(s) · page 1 of 3")
    first = references(at)
    assert len(first) == 25
    at.button(key="q_next").click().run()
    second = references(at)
    assert len(second) == 25 and not set(first) & set(second)
    at.number_input(key="q_page").set_value(3).run()
    assert len(references(at)) == 20
    assert at.button(key="q_next").disabled
    # changing a filter goes back to page 1
    at.multiselect(key="q_network").set_value(["bsc"]).run()
    assert caption(at).startswith("61 matching case(s) · page 1 of 3")


def select_rows(at: AppTest, rows: list[int]) -> None:
    at.session_state["q_table"] = {"selection": {"rows": rows, "columns": [], "cells": []}}


def test_bulk_assign_uses_the_versions_shown_and_reports_conflicts(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    shown = references(at)
    picks = [shown.index(world.small), shown.index(world.not_found), shown.index(world.unlisted)]
    # someone changes one of them after the page was drawn
    case = wb.cases.get(world.unlisted).case
    wb.cases.note(world.unlisted, "looking at it", Actor("tom", Role.SPECIALIST), expected_version=case.version)
    select_rows(at, picks)
    at.selectbox(key="q_bulk_assignee").set_value("tom")
    at.button(key="q_bulk_assign").click().run()
    assert wb.cases.get(world.small).case.assignee == "tom"
    assert wb.cases.get(world.not_found).case.assignee == "tom"
    assert wb.cases.get(world.unlisted).case.assignee is None
    assert any("Assigned 2 case(s)." in t for t in markdown_texts(at))
    assert any(t.startswith("to tom: ") for t in plain_texts(at))
    assert any("1 case(s) were not assigned" in str(w.value) for w in at.warning)
    assert any(world.unlisted in str(t.value) and "changed by someone else" in str(t.value) for t in at.text)


def test_bulk_assign_without_a_selection_says_so(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    at.button(key="q_bulk_assign").click().run()
    assert any("Select one or more cases" in str(w.value) for w in at.warning)


def test_auditors_get_no_bulk_assign(wb: Workbench, world: World) -> None:
    at = signed_in_app("ari")
    assert references(at)
    keys = {b.key for b in at.button}
    assert "q_bulk_assign" not in keys and "q_open" in keys


def test_open_the_selected_case_and_go_to_a_reference(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    select_rows(at, [references(at).index(world.big)])
    at.button(key="q_open").click().run()
    assert [t.value for t in at.title] == [f"Case {world.big}"]
    at = signed_in_app("sara")
    at.text_input(key="q_goto").input(world.small.lower())
    at.button(key="q_go").click().run()
    assert [t.value for t in at.title] == [f"Case {world.small}"]


def test_export_is_the_whole_filtered_set(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara")
    assert "q_export" in [d.key for d in at.get("download_button")]
    rows = list(csv.reader(io.StringIO(queues.export_csv(wb.db, QueueFilter(statuses=("in_review",)), wb.now()))))
    assert rows[0] == list(queues.EXPORT_COLUMNS)
    exported = {r[0] for r in rows[1:]}
    assert exported == {world.small, world.big, world.unlisted, *world.contested, *world.detected}
    big = next(r for r in rows[1:] if r[0] == world.big)
    record = dict(zip(rows[0], big, strict=True))
    assert record["value_usd"] == "5000" and record["assignee"] == "sara" and record["sla_breached"] == "no"


def test_export_keeps_formula_like_text_inert() -> None:
    assert queues._csv_cell("=HYPERLINK(\"http://x\")") == "'=HYPERLINK(\"http://x\")"
    assert queues._csv_cell("user-1") == "user-1"


def test_queue_page_on_both_backends(seeded_any: tuple[Workbench, World]) -> None:
    wb, world = seeded_any
    now = wb.now()
    page = queues.queue_page(wb.db, QueueFilter(), now, sort="created_at", page=2, page_size=4)
    assert page.total == 12 and page.pages == 3 and len(page.rows) == 4
    everything = queues.queue_page(wb.db, QueueFilter(), now, sort="created_at", page_size=100).rows
    assert [r.reference for r in page.rows] == [r.reference for r in everything[4:8]]
    assert [r.reference for r in queues.queue_page(wb.db, QueueFilter(flags=("contested",)), now).rows] == list(
        world.contested)
    assert {r.reference for r in queues.queue_page(wb.db, QueueFilter(sla_breached=True), now).rows} == set(
        world.overdue)
    by_value = queues.queue_page(wb.db, QueueFilter(statuses=("in_review",)), now, sort="value_usd",
                                 descending=True).rows
    assert [r.value_usd for r in by_value][:2] == [5000, 500]
    unassigned = queues.queue_page(wb.db, QueueFilter(assignee=queues.UNASSIGNED), now, page_size=100).rows
    assert world.big not in {r.reference for r in unassigned} and world.small in {r.reference for r in unassigned}
    assert queues.queue_page(wb.db, QueueFilter(text=world.big[-6:]), now).rows[0].reference == world.big
    with pytest.raises(ValueError, match="sort"):
        queues.queue_page(wb.db, QueueFilter(), now, sort="id; drop table cases")
    assert SARA.name == "sara"


def test_origin_filter_on_both_backends(seeded_any: tuple[Workbench, World]) -> None:
    wb, world = seeded_any
    now = wb.now()
    appealed = {world.small, world.big, world.unlisted, *world.contested, world.credited, world.rejected,
                world.not_found, *world.overdue}
    detected = set(world.detected)

    def shown(**filters: Any) -> set[str]:
        page = queues.queue_page(wb.db, QueueFilter(**filters), now, page_size=100)
        assert page.total == len(page.rows)
        return {r.reference for r in page.rows}

    assert shown(origins=("detected",)) == detected
    assert shown(origins=("appeal",)) == appealed
    assert shown(origins=("appeal", "detected")) == appealed | detected == shown()
    assert shown(origins=("intake",)) == set()
    # with the other filters, the search and SQL paging
    assert shown(origins=("detected",), networks=("bsc",)) == {world.detected[0]}
    assert shown(origins=("appeal",), statuses=("in_review",)) == {world.small, world.big, world.unlisted,
                                                                   *world.contested}
    assert shown(origins=("detected",), text=world.big[-6:]) == set()
    assert shown(origins=("detected",), text=world.detected[1][-6:]) == {world.detected[1]}
    pages = [queues.queue_page(wb.db, QueueFilter(origins=("detected",)), now, sort="created_at", page=n,
                               page_size=1) for n in (1, 2)]
    assert [(p.total, p.pages, len(p.rows)) for p in pages] == [(2, 2, 1), (2, 2, 1)]
    assert {p.rows[0].reference for p in pages} == detected
    # the export is the filtered set, with its origin
    rows = list(csv.reader(io.StringIO(queues.export_csv(wb.db, QueueFilter(origins=("detected",)), now))))
    origin = rows[0].index("origin")
    assert {r[0]: r[origin] for r in rows[1:]} == dict.fromkeys(detected, "detected")


@pytest.mark.parametrize(("filters", "message"), [
    ({"origins": ("scan",)}, "origins: 'scan' not among appeal, detected, intake"),
    ({"statuses": ("open",)}, "statuses: 'open' not among submitted"),
    ({"flags": ("contested", "urgent")}, "flags: 'urgent' not among"),
    ({"min_age_days": -1}, "min_age_days: must be 0 or more"),
])
def test_filter_values_outside_the_vocabulary_are_refused_by_name(filters: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        QueueFilter(**filters)
