"""The Audit page's reads (``recovery/audit_reads.py``) on both databases: the events of five cases
worked through the service layer on a simulated clock (``tests/test_service_metrics.py``'s desk),
filtered by actor, case, action and UTC days, paged, and exported as CSV and JSON lines; every
expected value counted by hand from the desk's timeline."""

from __future__ import annotations

import csv
import io
import json
from datetime import date, timedelta
from typing import Any

import pytest

from recovery.audit_reads import AuditFilter, audit_page, count_events, export_csv, export_events, export_jsonl
from recovery.db import Database
from recovery.services import CaseService
from tests.conftest import Clock
from tests.test_service_metrics import T0, Desk, work_the_desk

#: maria's actions on the desk, newest first: the three rejections (erin at 168.5 h, bob at 25 h,
#: alice at 10 h), the questions to bob (5 h) and carol (4 h), the three categories (3.2 h)
MARIA_NEWEST_FIRST = ["reject", "reject", "reject", "request_info", "request_info", "override_category",
                      "override_category", "override_category"]


@pytest.fixture
def desk(database: Database, default_config: Any) -> Desk:
    clock = Clock(T0)
    return work_the_desk(CaseService(database, default_config, clock), clock)


def test_filter_by_actor_and_action(database: Database, desk: Desk) -> None:
    page = audit_page(database, AuditFilter(actor="maria"))
    assert page.total == 8 and [r.action for r in page.rows] == MARIA_NEWEST_FIRST
    assert [r.id for r in page.rows] == sorted((r.id for r in page.rows), reverse=True)
    assert {r.actor_role for r in page.rows} == {"specialist"}
    rejections = audit_page(database, AuditFilter(actor="maria", actions=("reject",)))
    assert [r.reference for r in rejections.rows] == [desk.refs[n] for n in ("erin", "bob", "alice")]
    assert [r.created_at for r in rejections.rows] == [T0 + timedelta(hours=h) for h in (168.5, 25, 10)]
    assert rejections.rows[0].details["reason_code"] == "other"
    # several actions, anyone: the desk's 3 rejections and 2 questions (the system closed carol's case)
    assert count_events(database, AuditFilter(actions=("reject", "request_info"))) == 5
    assert count_events(database, AuditFilter(actor="nobody")) == 0


def test_filter_by_case(database: Database, desk: Desk) -> None:
    bob = audit_page(database, AuditFilter(reference=desk.refs["bob"].lower()))  # any letter case
    # filed, checked (no node), category, asked, answered, rejected, rated
    assert [r.action for r in reversed(bob.rows)] == ["submit", "chain_result", "override_category", "request_info",
                                                      "provide_info", "reject", "feedback"]
    assert {r.reference for r in bob.rows} == {desk.refs["bob"]}
    assert [r.actor for r in reversed(bob.rows)] == ["bob", "system", "maria", "maria", "bob", "maria", "bob"]
    assert audit_page(database, AuditFilter(reference="RC-999999")).total == 0
    assert count_events(database, AuditFilter(reference=desk.refs["bob"], actor="bob")) == 3


def test_filter_by_utc_days_both_ends_included(database: Database, desk: Desk) -> None:
    monday = T0.date() + timedelta(days=7)  # 2026-11-09: erin filed at 08:00 and rejected at 08:30
    day = audit_page(database, AuditFilter(since=monday, until=monday))
    assert [(r.actor, r.action) for r in day.rows] == [("maria", "reject"), ("erin", "submit")]
    # the first day, 2 November: four filings, three checks, three categories, two questions, bob's
    # answer, alice's rejection and her rating (bob's rejection is at 09:00 the next day)
    assert count_events(database, AuditFilter(until=T0.date())) == 4 + 3 + 3 + 2 + 1 + 1 + 1
    assert count_events(database, AuditFilter(since=T0.date(), until=T0.date())) == 15
    # from the 9th: erin's two events, then carol closed unanswered (16th, 12:00) and her rating
    assert count_events(database, AuditFilter(since=monday)) == 4
    with pytest.raises(ValueError, match="after until"):
        AuditFilter(since=date(2026, 11, 10), until=date(2026, 11, 9))


def test_pages_newest_first_and_a_page_past_the_end(database: Database, desk: Desk) -> None:
    everything = audit_page(database, AuditFilter(), page_size=200)
    ids = [r.id for r in everything.rows]
    assert ids == sorted(ids, reverse=True) and everything.total == len(ids)
    first, second = (audit_page(database, AuditFilter(), page=n, page_size=5) for n in (1, 2))
    assert [r.id for r in first.rows + second.rows] == ids[:10]
    assert first.pages == -(-len(ids) // 5)
    last = audit_page(database, AuditFilter(), page=10_000, page_size=5)
    assert last.page == first.pages and [r.id for r in last.rows] == ids[(first.pages - 1) * 5:]
    with pytest.raises(ValueError):
        audit_page(database, AuditFilter(), page_size=10_000)


def test_exports_follow_the_filter_in_chain_order_and_stop_at_the_limit(database: Database, desk: Desk) -> None:
    filt = AuditFilter(actor="maria")
    lines = [json.loads(line) for line in export_jsonl(database, filt)]
    assert [e["action"] for e in lines] == list(reversed(MARIA_NEWEST_FIRST))
    assert all(len(e["hash"]) == 64 and e["created_at"].endswith("+00:00") for e in lines)
    rows = list(csv.reader(io.StringIO("".join(export_csv(database, filt)))))
    assert rows[0][:3] == ["id", "reference", "created_at"] and len(rows) == 9
    assert [json.loads(r[8]) for r in rows[1:]] == [e["details"] for e in lines]
    # bounded, read in batches
    assert [r.id for r in export_events(database, AuditFilter(), limit=7, batch=3)] == \
        [r.id for r in reversed(audit_page(database, AuditFilter(), page_size=200).rows)][:7]
    assert list(export_jsonl(database, AuditFilter(reference="RC-999999"))) == []


def test_a_formula_in_a_csv_cell_stays_text() -> None:
    from recovery.audit_reads import _csv_cell

    assert [_csv_cell(v) for v in ("=1+1", "@sum", "-2", "maria", None)] == ["'=1+1", "'@sum", "'-2", "maria", ""]
    assert _csv_cell({"b": 1, "a": "x"}) == '{"a": "x", "b": 1}'
