"""Issue 22: the service metrics (``recovery.service_metrics``) per ISO week and category, checked
against hand-computed values on cases worked through the service layer on a simulated clock (both
databases), and on the demo's data against a per-case computation from the audit events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from sqlmodel import col, select

from recovery import feedback
from recovery.config import load_config
from recovery.db import Database, connect
from recovery.models import Case, CaseEvent
from recovery.service_metrics import (
    ALL,
    COLUMNS,
    DECIDING_ACTIONS,
    RESPONSE_ACTIONS,
    CaseFacts,
    Metrics,
    compute,
    csv_text,
    read_facts,
    service_metrics,
)
from recovery.services import SYSTEM, Actor, CaseService
from recovery.settings import REPO_ROOT
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import fresh_address
from tests.support.demo import demo_copy
from tests.test_evidence import appeal

MARIA = Actor("maria", Role.SPECIALIST)
#: Monday 2 November 2026, 08:00 UTC: ISO week 2026-W45
T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)


class Desk:
    """Cases worked through the service layer; every act at the time the test sets."""

    def __init__(self, service: CaseService, clock: Clock) -> None:
        self.service, self.clock = service, clock
        self.refs: dict[str, str] = {}
        self.hashes = iter(f"0x{n:064x}" for n in range(1, 1000))

    def at(self, hours: float) -> Desk:
        self.clock.now = T0 + timedelta(hours=hours)
        return self

    def version(self, name: str) -> int:
        return self.service.get(self.refs[name]).case.version

    def file(self, name: str) -> None:
        self.refs[name] = appeal(self.service, name, "ethereum", "USDT", next(self.hashes), fresh_address())

    def unavailable(self, name: str) -> None:  # the chain check could not reach a node: awaiting_chain
        self.service.apply_decision(self.refs[name], None, SYSTEM, expected_version=self.version(name),
                                    unavailable={"ethereum": "connection refused"})

    def classify(self, name: str, category: str) -> None:
        self.service.override_category(self.refs[name], category, "seen on the explorer", MARIA,
                                       expected_version=self.version(name))

    def ask(self, name: str) -> None:
        self.service.request_info(self.refs[name], "Which wallet did you send from?", MARIA,
                                  expected_version=self.version(name))

    def answer(self, name: str) -> None:
        self.service.provide_info(self.refs[name], "My own wallet.", Actor(name, Role.USER),
                                  expected_version=self.version(name))

    def reject(self, name: str) -> None:
        self.service.reject(self.refs[name], "other", MARIA, expected_version=self.version(name))

    def rate(self, name: str, score: int) -> None:
        feedback.give(self.service, self.refs[name], name, {"score": score}, expected_version=self.version(name))


def work_the_desk(service: CaseService, clock: Clock) -> Desk:
    """Five cases (names are users), in time order:

    - alice (W45, wrong_network): checked 2 h after filing (no node: awaiting_chain), rejected at 10 h,
      rated 5;
    - bob (W45, wrong_network): filed at 1 h, checked 30 min later, asked for information at 5 h,
      answered at 6 h, rejected at 25 h (24 h after filing), rated 3;
    - carol (W45, unlisted_token): filed at 2 h, checked 1 h later, asked at 4 h, reminded, closed
      unanswered by the system 336 h after the question, rated 2;
    - dave (W45, never checked, unclassified): filed at 3 h, nothing else;
    - erin (W46, unclassified): filed on the next Monday, rejected 30 minutes later, not rated.
    """
    desk = Desk(service, clock)
    desk.at(0).file("alice")
    desk.at(1).file("bob")
    desk.at(1.5).unavailable("bob")
    desk.at(2).unavailable("alice")
    desk.at(2).file("carol")
    desk.at(3).unavailable("carol")
    desk.at(3).file("dave")
    desk.at(3.2).classify("alice", "wrong_network")
    desk.at(3.2).classify("bob", "wrong_network")
    desk.at(3.2).classify("carol", "unlisted_token")
    desk.at(4).ask("carol")
    desk.at(5).ask("bob")
    desk.at(6).answer("bob")
    desk.at(10).reject("alice")
    desk.at(11).rate("alice", 5)
    desk.at(25).reject("bob")
    desk.at(26).rate("bob", 3)
    desk.at(4 + 72 + 1)
    assert service.sweep_questions()["reminded"] == [desk.refs["carol"]]
    desk.at(7 * 24).file("erin")
    desk.at(7 * 24 + 0.5).reject("erin")
    desk.at(4 + 336 + 1)
    assert service.sweep_questions()["closed"] == [desk.refs["carol"]]
    desk.at(4 + 336 + 2).rate("carol", 2)
    return desk


def by_key(rows: Sequence[Metrics]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(row.week, row.category): row.record() for row in rows}


def test_hand_computed_values(database: Database, default_config: Any) -> None:
    clock = Clock(T0)
    service = CaseService(database, default_config, clock)
    work_the_desk(service, clock)

    rows = service_metrics(database, T0 + timedelta(days=20), weeks=4)
    got = by_key(rows)
    assert list(got) == [("2026-W45", ALL), ("2026-W45", "unclassified"), ("2026-W45", "unlisted_token"),
                         ("2026-W45", "wrong_network"), ("2026-W46", ALL), ("2026-W46", "unclassified")]
    d = Decimal
    assert got[("2026-W45", "wrong_network")] == {
        "week": "2026-W45", "category": "wrong_network", "cases": 2,
        # alice 2 h, bob 0.5 h: nearest rank
        "first response cases": 2, "first response median h": 0.5, "first response p90 h": 2.0,
        "resolved": 2, "resolution median h": 10.0, "resolution p90 h": 24.0,
        "first-contact resolved": 1, "first-contact resolution %": d("50.0"),  # bob was asked
        "rated": 2, "CSAT mean": d("4.00"), "CSAT 4-5 %": d("50.0"),
        "decided": 2, "decided automatically": 0, "decided automatically %": d("0.0"),
    }
    assert got[("2026-W45", "unlisted_token")] == {
        "week": "2026-W45", "category": "unlisted_token", "cases": 1,
        "first response cases": 1, "first response median h": 1.0, "first response p90 h": 1.0,
        "resolved": 0, "resolution median h": None, "resolution p90 h": None,
        "first-contact resolved": 0, "first-contact resolution %": None,
        "rated": 1, "CSAT mean": d("2.00"), "CSAT 4-5 %": d("0.0"),
        # closed unanswered by the system: decided with no person
        "decided": 1, "decided automatically": 1, "decided automatically %": d("100.0"),
    }
    assert got[("2026-W45", "unclassified")] == {
        "week": "2026-W45", "category": "unclassified", "cases": 1,
        "first response cases": 0, "first response median h": None, "first response p90 h": None,
        "resolved": 0, "resolution median h": None, "resolution p90 h": None,
        "first-contact resolved": 0, "first-contact resolution %": None,
        "rated": 0, "CSAT mean": None, "CSAT 4-5 %": None,
        "decided": 0, "decided automatically": 0, "decided automatically %": None,
    }
    assert got[("2026-W45", ALL)] == {
        "week": "2026-W45", "category": ALL, "cases": 4,
        "first response cases": 3, "first response median h": 1.0, "first response p90 h": 2.0,
        "resolved": 2, "resolution median h": 10.0, "resolution p90 h": 24.0,
        "first-contact resolved": 1, "first-contact resolution %": d("50.0"),
        "rated": 3, "CSAT mean": d("3.33"), "CSAT 4-5 %": d("33.3"),  # 10 / 3; one of three
        "decided": 3, "decided automatically": 1, "decided automatically %": d("33.3"),
    }
    # the rejection is what erin first saw (30 minutes), and it resolved her case at once
    assert got[("2026-W46", "unclassified")] == got[("2026-W46", ALL)] | {"category": "unclassified"} == {
        "week": "2026-W46", "category": "unclassified", "cases": 1,
        "first response cases": 1, "first response median h": 0.5, "first response p90 h": 0.5,
        "resolved": 1, "resolution median h": 0.5, "resolution p90 h": 0.5,
        "first-contact resolved": 1, "first-contact resolution %": d("100.0"),
        "rated": 0, "CSAT mean": None, "CSAT 4-5 %": None,
        "decided": 1, "decided automatically": 0, "decided automatically %": d("0.0"),
    }
    # a window that starts in W46 sees erin only
    assert {key[0] for key in by_key(service_metrics(database, T0 + timedelta(days=8), weeks=1))} == {"2026-W46"}

    lines = csv_text(rows).splitlines()
    assert lines[0].split(",") == list(COLUMNS)
    assert lines[1].startswith("2026-W45,all,4,3,1.0,2.0,2,10.0,24.0,1,50.0,3,3.33,33.3,3,1,33.3")
    assert lines[2] == "2026-W45,unclassified,1,0,,,0,,,0,,0,,,0,0,"


def reference_facts(db: Database, since: datetime) -> list[CaseFacts]:
    """The same facts, case by case from the ORM's events (what the SQL aggregate replaces)."""
    facts = []
    with db.read() as session:
        cases = session.exec(select(Case).where(col(Case.created_at) >= since).order_by(col(Case.id))).all()
        for case in cases:
            events = session.exec(select(CaseEvent).where(CaseEvent.case_id == case.id)
                                  .order_by(col(CaseEvent.id))).all()
            responses = [e.created_at for e in events if e.action in RESPONSE_ACTIONS]
            decisions = [e for e in events if e.action in DECIDING_ACTIONS]
            scores = [e.details["score"] for e in events if e.action == feedback.FEEDBACK_ACTION]
            facts.append(CaseFacts(
                case.id or 0, case.created_at.timestamp(), case.category,
                first_response=min(responses).timestamp() if responses else None,
                resolved=case.resolved_at.timestamp() if case.resolved_at else None,
                asked_for_info=any(e.action == "request_info" for e in events),
                decided_by_system=decisions[0].actor_role == "system" if decisions else None,
                score=scores[0] if scores else None,
            ))
    return facts


def rounded(facts: Sequence[CaseFacts]) -> list[CaseFacts]:
    """The facts with their times to the millisecond (SQLite's julian days are floats)."""
    def ms(value: float | None) -> float | None:
        return None if value is None else round(value, 3)

    return [f._replace(opened=round(f.opened, 3), first_response=ms(f.first_response), resolved=ms(f.resolved))
            for f in facts]


def same_rows(left: Sequence[Metrics], right: Sequence[Metrics]) -> None:
    assert [r.record() for r in left] == [r.record() for r in right]


@pytest.fixture(scope="module")
def demo_database(demo_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A private copy of the session's demo run (this module's test adds ratings to it)."""
    return demo_copy(demo_run, tmp_path_factory.mktemp("demo-metrics"))


def test_on_the_demo_data(demo_database: dict[str, Any]) -> None:
    db = connect(demo_database["database_url"])
    try:
        since = datetime(2000, 1, 1, tzinfo=UTC)
        facts = read_facts(db, since)
        assert len(facts) == demo_database["cases"]
        assert rounded(sorted(facts, key=lambda f: f.case_id)) == rounded(reference_facts(db, since))
        rows = compute(facts)
        weeks = [r for r in rows if r.category == ALL]
        assert len(weeks) >= 4  # 28 simulated days
        assert sum(r.cases for r in weeks) == demo_database["cases"]
        assert sum(r.resolved for r in weeks) > 0 and sum(r.first_response.count for r in weeks) > 0
        assert sum(r.decided for r in weeks) > 0
        for row in rows:
            assert row.resolved_first_contact <= row.resolved <= row.cases
            assert row.decided_automatically <= row.decided <= row.cases
            if row.resolution.count:
                assert row.resolution.median_hours is not None and row.resolution.p90_hours is not None
                assert 0 <= row.resolution.median_hours <= row.resolution.p90_hours
        categories = {r.category for r in rows} - {ALL}
        assert {"uncredited_valid", "wrong_network"} <= categories

        # the users rate some of the finished cases: CSAT appears, and SQL and the reference still agree
        service = CaseService(db, load_config(REPO_ROOT / "config"))
        with db.read() as session:
            ended = session.exec(select(Case.reference, Case.user_id, Case.version)
                                 .where(col(Case.status).in_(feedback.ENDED_STATUSES)).order_by(col(Case.id))).all()
        assert len(ended) >= 5
        for position, (reference, user, version) in enumerate(ended[:10]):
            feedback.give(service, reference or "", user, {"score": position % 5 + 1}, expected_version=version)
        rated = compute(read_facts(db, since))
        same_rows(rated, compute(reference_facts(db, since)))
        assert sum(r.rated for r in rated if r.category == ALL) == min(10, len(ended))
    finally:
        db.dispose()


def test_compute_is_pure_and_empty_is_empty() -> None:
    assert compute([]) == []
    monday = T0.timestamp()
    facts = [CaseFacts(1, monday, None), CaseFacts(2, monday + 3600, "tx_failed", first_response=monday + 7200)]
    assert [r.record() for r in compute(facts)] == [r.record() for r in compute(list(reversed(facts)))]
