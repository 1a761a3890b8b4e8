"""The measures an exchange's appeal desk is judged by, per ISO week and per category.

Every case belongs to the ISO week it was opened in (a cohort: the figures of a recent week fill in
as its cases finish) and to its current category (``unclassified`` before the first answer of the
chains). For each (week, category), and for each week over all categories (category ``all``):

- **time to first response**: from the opening of the case to the first event its user sees
  (:data:`recovery.public.TIMELINE_EVENTS`, without the user's own acts: the filing itself, a claim,
  an answer, a withdrawal). Usually the chain check's verdict (seconds through the API) or the
  ``awaiting_chain`` notice; median and 90th percentile (nearest rank) over the cases that had one.
- **time to resolution**: from the opening to ``resolved_at`` (credited, refunded or rejected; a
  reopened case counts again only once it is resolved again); median and p90 over the resolved cases.
- **first-contact resolution**: the share of the resolved cases that were resolved without an
  information request (``request_info``) to the user.
- **CSAT**: over the cases the user rated (``feedback`` events, ``recovery.feedback``): the mean
  score (1-5, to two decimals) and the share of 4s and 5s.
- **decided automatically**: over the cases with a decision (their first ``approve``, ``reject`` or
  ``close_unanswered``), the share whose first decision was made with no person (actor role
  ``system``, as :data:`recovery.services.SYSTEM` records it). Approvals and rejections need an
  operator today (``recovery.lifecycle``), so this counts the cases the system closed for want of
  an answer, and any automatic decision added later.

The computation (:func:`compute`) is a pure function of one :class:`CaseFacts` per case;
:func:`read_facts` reads those in two statements (the window's cases from
``ix_cases_dashboard_window`` alone, and one aggregate over their events through the events'
``case_id`` index, the times as epoch seconds computed by the database); :func:`csv_text` is the
export.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any, NamedTuple

from sqlalchemy import and_, bindparam, case, func
from sqlalchemy import select as core_select

from recovery.db import Database
from recovery.models import Case, CaseEvent
from recovery.public import TIMELINE_EVENTS
from recovery.queues import Percentiles, _epoch, percentiles

#: the user's own acts: not a response of the desk
USER_ACTIONS = frozenset({"submit", "claim", "provide_info", "withdraw"})
#: the events that answer a user (what their timeline shows, without their own acts)
RESPONSE_ACTIONS: tuple[str, ...] = tuple(sorted(set(TIMELINE_EVENTS) - USER_ACTIONS))
INFO_REQUEST = "request_info"
#: the events that decide an appeal (the first one counts)
DECIDING_ACTIONS: tuple[str, ...] = ("approve", "close_unanswered", "reject")
FEEDBACK_ACTION = "feedback"
SYSTEM_ROLE = "system"
#: the category of every case of a week, in the per-week rows
ALL = "all"
UNCLASSIFIED = "unclassified"
#: the share of ratings that count as satisfied
SATISFIED_SCORES = frozenset({4, 5})


class CaseFacts(NamedTuple):
    """What the measures need of one case (times in seconds since 1970, UTC)."""

    case_id: int
    opened: float
    category: str | None
    first_response: float | None = None
    resolved: float | None = None
    asked_for_info: bool = False
    #: None: not decided; else whether its first decision was made by no person
    decided_by_system: bool | None = None
    #: the user's rating (1-5), if given
    score: int | None = None


def iso_week(epoch_seconds: float) -> str:
    """``2026-W49``: the ISO year and week of a UTC instant."""
    year, week, _ = datetime.fromtimestamp(epoch_seconds, UTC).isocalendar()
    return f"{year}-W{week:02d}"


def week_start(moment: datetime) -> datetime:
    """Monday 00:00 UTC of the ISO week of ``moment``."""
    day = moment.astimezone(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    return day - timedelta(days=day.weekday())


def _percent(part: int, whole: int) -> Decimal | None:
    if whole == 0:
        return None
    return (Decimal(100) * part / whole).quantize(Decimal("0.1"), ROUND_HALF_UP)


@dataclass
class Metrics:
    """The measures of one (week, category)."""

    week: str
    category: str
    cases: int = 0
    first_response: Percentiles = field(default_factory=lambda: Percentiles(0, None, None))
    resolution: Percentiles = field(default_factory=lambda: Percentiles(0, None, None))
    resolved: int = 0
    resolved_first_contact: int = 0
    rated: int = 0
    score_total: int = 0
    satisfied: int = 0
    decided: int = 0
    decided_automatically: int = 0

    @property
    def first_contact_percent(self) -> Decimal | None:
        return _percent(self.resolved_first_contact, self.resolved)

    @property
    def csat_mean(self) -> Decimal | None:
        if self.rated == 0:
            return None
        return (Decimal(self.score_total) / self.rated).quantize(Decimal("0.01"), ROUND_HALF_UP)

    @property
    def csat_percent(self) -> Decimal | None:
        return _percent(self.satisfied, self.rated)

    @property
    def automatic_percent(self) -> Decimal | None:
        return _percent(self.decided_automatically, self.decided)

    def record(self) -> dict[str, Any]:
        """The row as the table and the CSV show it (hours, percentages; empty where nothing counts)."""
        return {
            "week": self.week, "category": self.category, "cases": self.cases,
            "first response cases": self.first_response.count,
            "first response median h": self.first_response.median_hours,
            "first response p90 h": self.first_response.p90_hours,
            "resolved": self.resolved,
            "resolution median h": self.resolution.median_hours, "resolution p90 h": self.resolution.p90_hours,
            "first-contact resolved": self.resolved_first_contact,
            "first-contact resolution %": self.first_contact_percent,
            "rated": self.rated, "CSAT mean": self.csat_mean, "CSAT 4-5 %": self.csat_percent,
            "decided": self.decided, "decided automatically": self.decided_automatically,
            "decided automatically %": self.automatic_percent,
        }


#: the columns of :meth:`Metrics.record`, in order (the table's and the CSV's)
COLUMNS: tuple[str, ...] = tuple(Metrics("", "").record())


#: seconds in a week, and the Monday 00:00 UTC all ISO weeks are counted from (5 January 1970)
_WEEK = 7 * 86400
_A_MONDAY = 4 * 86400


def _monday(epoch_seconds: float) -> int:
    """The start (Monday 00:00 UTC, epoch seconds) of the ISO week of an instant."""
    return int(epoch_seconds - (epoch_seconds - _A_MONDAY) % _WEEK)


class _Group:
    """A group's running figures (one pass over the facts)."""

    __slots__ = ("automatic", "cases", "decided", "first_contact", "resolutions", "responses", "satisfied", "scores")

    def __init__(self) -> None:
        self.cases = self.first_contact = self.satisfied = self.decided = self.automatic = 0
        self.responses: list[float] = []
        self.resolutions: list[float] = []
        self.scores: list[int] = []

    def add(self, fact: CaseFacts) -> None:
        self.cases += 1
        if fact.first_response is not None:
            self.responses.append(max(0.0, fact.first_response - fact.opened))
        if fact.resolved is not None:
            self.resolutions.append(max(0.0, fact.resolved - fact.opened))
            if not fact.asked_for_info:
                self.first_contact += 1
        if fact.score is not None:
            self.scores.append(fact.score)
            if fact.score in SATISFIED_SCORES:
                self.satisfied += 1
        if fact.decided_by_system is not None:
            self.decided += 1
            if fact.decided_by_system:
                self.automatic += 1

    def metrics(self, week: str, category: str) -> Metrics:
        return Metrics(
            week, category, cases=self.cases, first_response=percentiles(self.responses),
            resolution=percentiles(self.resolutions), resolved=len(self.resolutions),
            resolved_first_contact=self.first_contact, rated=len(self.scores), score_total=sum(self.scores),
            satisfied=self.satisfied, decided=self.decided, decided_automatically=self.automatic,
        )


def measure(week: str, category: str, members: Iterable[CaseFacts]) -> Metrics:
    """The measures of one group of cases."""
    group = _Group()
    for fact in members:
        group.add(fact)
    return group.metrics(week, category)


def compute(facts: Iterable[CaseFacts]) -> list[Metrics]:
    """The measures per (ISO week, category) and per week (category ``all``), oldest week first, the
    ``all`` row before the categories (by name). Pure: the same facts give the same rows."""
    groups: dict[tuple[int, str], _Group] = {}
    for fact in facts:
        monday = _monday(fact.opened)
        for key in ((monday, fact.category or UNCLASSIFIED), (monday, ALL)):
            group = groups.get(key)
            if group is None:
                group = groups[key] = _Group()
            group.add(fact)
    weeks = {monday: iso_week(monday) for monday, _ in groups}
    rows = [group.metrics(weeks[monday], category) for (monday, category), group in groups.items()]
    rows.sort(key=lambda r: (r.week, r.category != ALL, r.category))
    return rows


def overall(facts: Iterable[CaseFacts], label: str = "all weeks") -> Metrics:
    """The measures of every case of ``facts`` together (the window's headline figures)."""
    return measure(label, ALL, facts)


def csv_text(rows: Sequence[Metrics]) -> str:
    """The rows as CSV (a header of :data:`COLUMNS`; empty cells where nothing counts)."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for row in rows:
        writer.writerow(["" if value is None else value for value in row.record().values()])
    return out.getvalue()


_CASES = Case.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]


def _statement(db: Database) -> Any:
    """One row per case opened since ``:since`` (whose ids are ``:first_case_id`` on): its times as
    epoch seconds, its category, and from its events, aggregated per case over a range of the
    events' ``case_id`` index: the id of the first response, whether information was asked, the ids
    of its first decision and first decision by a person, and the id of its rating. The events'
    columns read there (``id``, ``action``, ``actor_role``) come before ``details`` in the row, so a
    long decision stored in an event is not read; the first response's time and the rating's score
    are then read for one event each."""
    e, c = _EVENTS.c, _CASES.c
    deciding = e.action.in_(DECIDING_ACTIONS)
    per_case = (
        core_select(
            e.case_id.label("case_id"),
            func.min(case((e.action.in_(RESPONSE_ACTIONS), e.id))).label("first_response"),
            func.max(case((e.action == INFO_REQUEST, 1), else_=0)).label("asked"),
            func.min(case((deciding, e.id))).label("decision"),
            func.min(case((and_(deciding, e.actor_role != SYSTEM_ROLE), e.id))).label("by_person"),
            func.min(case((e.action == FEEDBACK_ACTION, e.id))).label("rating"),
        )
        .where(e.case_id >= bindparam("first_case_id"))
        .group_by(e.case_id)
        .subquery("per_case")
    )
    response, rating = _EVENTS.alias("response"), _EVENTS.alias("rating")
    return (
        core_select(
            c.id, _epoch(db, c.created_at), c.category, _epoch(db, c.resolved_at),
            _epoch(db, response.c.created_at), per_case.c.asked, per_case.c.decision, per_case.c.by_person,
            rating.c.details["score"].as_integer(),
        )
        .select_from(
            _CASES.outerjoin(per_case, per_case.c.case_id == c.id)
            .outerjoin(response, response.c.id == per_case.c.first_response)
            .outerjoin(rating, rating.c.id == per_case.c.rating)
        )
        .where(c.created_at >= bindparam("since"), c.id >= bindparam("first_case_id"))
    )


def read_facts(db: Database, since: datetime) -> list[CaseFacts]:
    """:class:`CaseFacts` of every case opened at or after ``since``, in one statement (after one
    for the window's first case id: case ids follow the filing order). The cases come from
    ``ix_cases_dashboard_window`` alone (``created_at``, ``category``, ``resolved_at``, ``id``); the
    events as :func:`_statement` says. A few thousand rows per 4 weeks at 100,000 cases a year."""
    c = _CASES.c
    with db.read() as session:
        connection = session.connection()
        first_case_id = connection.execute(
            core_select(func.min(c.id + 0)).where(c.created_at >= since)  # ``+ 0``: as ``queues._window``
        ).scalar()
        if first_case_id is None:
            return []
        rows = connection.execute(_statement(db), {"since": since, "first_case_id": int(first_case_id)}).all()
    facts = []
    for case_id, opened, category, resolved, responded, asked, decision, by_person, score in rows:
        facts.append(CaseFacts(
            case_id, float(opened), category, None if responded is None else float(responded),
            None if resolved is None else float(resolved), bool(asked),
            None if decision is None else (by_person is None or by_person > decision),
            None if score is None else int(score),
        ))
    return facts


def service_metrics(db: Database, now: datetime, *, weeks: int = 4) -> list[Metrics]:
    """The measures of the cases opened in the last ``weeks`` ISO weeks (this one included)."""
    since = week_start(now) - timedelta(weeks=weeks - 1)
    return compute(read_facts(db, since))
