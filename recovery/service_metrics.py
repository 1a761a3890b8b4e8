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
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import and_, case, func
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


@dataclass(frozen=True)
class CaseFacts:
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


def measure(week: str, category: str, members: Sequence[CaseFacts]) -> Metrics:
    """The measures of one group of cases."""
    row = Metrics(week, category, cases=len(members))
    responses = [max(0.0, f.first_response - f.opened) for f in members if f.first_response is not None]
    resolutions = [max(0.0, f.resolved - f.opened) for f in members if f.resolved is not None]
    row.first_response = percentiles(responses)
    row.resolution = percentiles(resolutions)
    row.resolved = len(resolutions)
    row.resolved_first_contact = sum(1 for f in members if f.resolved is not None and not f.asked_for_info)
    scores = [f.score for f in members if f.score is not None]
    row.rated, row.score_total = len(scores), sum(scores)
    row.satisfied = sum(1 for score in scores if score in SATISFIED_SCORES)
    row.decided = sum(1 for f in members if f.decided_by_system is not None)
    row.decided_automatically = sum(1 for f in members if f.decided_by_system)
    return row


def compute(facts: Iterable[CaseFacts]) -> list[Metrics]:
    """The measures per (ISO week, category) and per week (category ``all``), oldest week first, the
    ``all`` row before the categories (by name). Pure: the same facts give the same rows."""
    groups: dict[tuple[str, str], list[CaseFacts]] = defaultdict(list)
    for fact in facts:
        week = iso_week(fact.opened)
        groups[(week, fact.category or UNCLASSIFIED)].append(fact)
        groups[(week, ALL)].append(fact)
    rows = [measure(week, category, members) for (week, category), members in groups.items()]
    rows.sort(key=lambda r: (r.week, r.category != ALL, r.category))
    return rows


def overall(facts: Sequence[CaseFacts], label: str = "all weeks") -> Metrics:
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


def read_facts(db: Database, since: datetime) -> list[CaseFacts]:
    """:class:`CaseFacts` of every case opened at or after ``since``. Two statements: the cases (their
    ids follow the filing order; ``created_at``, ``category``, ``resolved_at`` and ``id`` are columns of
    ``ix_cases_dashboard_window``, so the rows themselves are not read), then one aggregate per case
    over the events of those cases (a range of the events' ``case_id`` index)."""
    e = _EVENTS.c
    with db.read() as session:
        connection = session.connection()
        cases = connection.execute(
            core_select(_CASES.c.id, _epoch(db, _CASES.c.created_at), _CASES.c.category,
                        _epoch(db, _CASES.c.resolved_at))
            .where(_CASES.c.created_at >= since)
        ).all()
        if not cases:
            return []
        first_id = min(int(row[0]) for row in cases)
        deciding = e.action.in_(DECIDING_ACTIONS)
        aggregates = connection.execute(
            core_select(
                e.case_id,
                func.min(case((e.action.in_(RESPONSE_ACTIONS), _epoch(db, e.created_at)))),
                func.max(case((e.action == INFO_REQUEST, 1), else_=0)),
                func.min(case((deciding, e.id))),
                func.min(case((and_(deciding, e.actor_role != SYSTEM_ROLE), e.id))),
                func.min(case((e.action == FEEDBACK_ACTION, e.details["score"].as_integer()))),
            )
            .where(e.case_id >= first_id)
            .group_by(e.case_id)
        ).all()
    by_case = {int(row[0]): row for row in aggregates}
    facts = []
    for case_id, opened, category, resolved in cases:
        found = by_case.get(int(case_id))
        if found is None:
            facts.append(CaseFacts(int(case_id), float(opened), category, resolved=resolved))
            continue
        _, responded, asked, decision, human, score = found
        decided_by_system = None if decision is None else (human is None or int(human) > int(decision))
        facts.append(CaseFacts(
            int(case_id), float(opened), category, first_response=None if responded is None else float(responded),
            resolved=None if resolved is None else float(resolved), asked_for_info=bool(asked),
            decided_by_system=decided_by_system, score=None if score is None else int(score),
        ))
    return facts


def service_metrics(db: Database, now: datetime, *, weeks: int = 4) -> list[Metrics]:
    """The measures of the cases opened in the last ``weeks`` ISO weeks (this one included)."""
    since = week_start(now) - timedelta(weeks=weeks - 1)
    return compute(read_facts(db, since))
