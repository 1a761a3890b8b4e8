"""Read-side queries for the team lead's part of the dashboard, per ISO week (Monday 00:00 UTC):

- :func:`category_trend`: the cases opened each week, per category (``ix_cases_dashboard_window``
  answers it alone: ``created_at`` leads it and it holds ``category``);
- :func:`throughput`: per operator and week, the cases they decided (approved or rejected), the cases
  they acted on (any action of an operator on a case: notes, assignment, questions, payouts...) and
  their actions, counted in SQL from the audit events;
- :func:`recovered`: the value and fees of the cases paid out each week, by the date of the payout,
  not of the appeal: a credit when it was booked (``payouts.executed_at``, the time of its
  ``mark_credited`` event), a refund when the re-check proved it on chain (its ``refund_confirmed``
  event). A recorded refund not proven yet, a mismatch, a cancelled or an unpaid payout count nowhere.

Nothing here writes. Money is exact: the USD value and fee of each paid case are read as Decimals
and added up in Python (one row per paid case of the window).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import String, case, cast, distinct, func, literal, select, text, union_all
from sqlmodel import col

from recovery.db import Database
from recovery.exact_sums import exact_sum, money_total
from recovery.models import OPERATOR_EVENTS, REFUND_CONFIRMED, Case, CaseEvent, Payout
from recovery.utc_days import day_start
from recovery.vocabulary import Role

#: the weeks the dashboard's team section offers (this one included)
WEEK_CHOICES: tuple[int, ...] = (4, 8, 13)
#: a case with no category yet (not checked, or still awaiting the chain)
UNCLASSIFIED = "unclassified"
#: the actions that decide a case (as ``recovery.queues.DECIDING_ACTIONS``)
DECIDING: tuple[str, ...] = ("approve", "reject")
#: whose actions count as an operator's work (users and the system are not operators)
OPERATOR_ROLES: tuple[str, ...] = (Role.SPECIALIST.value, Role.APPROVER.value, Role.ADMIN.value)


def week_of(moment: datetime | date) -> date:
    """The Monday of the ISO week of ``moment`` (UTC)."""
    day = moment.astimezone(UTC).date() if isinstance(moment, datetime) else moment
    return day - timedelta(days=day.weekday())


def first_week(now: datetime, weeks: int) -> date:
    """The Monday of the first of the last ``weeks`` ISO weeks (this one included)."""
    if weeks < 1:
        raise ValueError("weeks: 1 or more")
    return week_of(now) - timedelta(weeks=weeks - 1)


def week_list(now: datetime, weeks: int) -> list[date]:
    start = first_week(now, weeks)
    return [start + timedelta(weeks=n) for n in range(weeks)]


def _week_sql(db: Database, column: Any) -> Any:
    """The Monday of a timestamp's ISO week as ``YYYY-MM-DD`` text, in SQL."""
    if db.is_sqlite:
        # stored as naive UTC text; the Monday on or before the day
        return func.date(column, "-6 days", "weekday 1")
    return func.to_char(func.date_trunc("week", func.timezone("UTC", column)), "YYYY-MM-DD")


def _day(value: Any) -> date:
    return value if isinstance(value, date) and not isinstance(value, datetime) else date.fromisoformat(str(value))


# ------------------------------------------------------------------------------------ category trend
@dataclass(frozen=True)
class CategoryWeek:
    week: date
    category: str
    cases: int


def category_trend(db: Database, now: datetime, *, weeks: int = 8) -> list[CategoryWeek]:
    """Cases opened per ISO week and category over the last ``weeks`` weeks, every (week, category)
    of a category seen in the window (0 where none was opened that week), by week then category."""
    since = day_start(first_week(now, weeks))
    week = _week_sql(db, col(Case.created_at))
    category = func.coalesce(col(Case.category), literal(UNCLASSIFIED))
    with db.read() as session:
        found = {
            (_day(w), str(c)): int(n)
            for w, c, n in session.execute(
                select(week, category, func.count()).where(col(Case.created_at) >= since)
                .group_by(week, category)
            ).all()
        }
    categories = sorted({c for _w, c in found})
    return [CategoryWeek(w, c, found.get((w, c), 0)) for w in week_list(now, weeks) for c in categories]


# ------------------------------------------------------------------------------------ throughput
# The reads write the partial indexes' own conditions (``recovery.models.OPERATOR_EVENTS`` and
# ``REFUND_CONFIRMED``, migration 0013) as literal text, so that both databases' planners see that the
# index holds every row the read asks for.
assert f"actor_role IN ({', '.join(repr(role) for role in OPERATOR_ROLES)})" == OPERATOR_EVENTS


@dataclass(frozen=True)
class OperatorWeek:
    week: date
    operator: str
    #: cases the operator approved or rejected that week
    decided: int
    #: cases the operator did anything to that week (deciding included)
    acted: int
    #: the operator's actions on cases that week
    actions: int


def throughput(db: Database, now: datetime, *, weeks: int = 8) -> list[OperatorWeek]:
    """Per operator (specialists, approvers, admins) and ISO week, over the last ``weeks`` weeks: the
    cases decided, the cases acted on and the actions; only the weeks in which the operator acted,
    by week then operator."""
    since = day_start(first_week(now, weeks))
    week = _week_sql(db, col(CaseEvent.created_at))
    deciding = case((col(CaseEvent.action).in_(DECIDING), col(CaseEvent.case_id)), else_=None)
    with db.read() as session:
        rows = session.execute(
            select(week, col(CaseEvent.actor), func.count(distinct(deciding)),
                   func.count(distinct(col(CaseEvent.case_id))), func.count())
            .where(col(CaseEvent.created_at) >= since, text(OPERATOR_EVENTS), col(CaseEvent.case_id).is_not(None))
            .group_by(week, col(CaseEvent.actor))
        ).all()
    return sorted((OperatorWeek(_day(w), str(a), int(d), int(c), int(n)) for w, a, d, c, n in rows),
                  key=lambda r: (r.week, r.operator))


# ------------------------------------------------------------------------------------ recovered value
@dataclass(frozen=True)
class PaidCase:
    """One case paid out in the window: its payout and its value."""

    case_id: int
    reference: str
    #: ``credit`` or ``refund``
    kind: str
    #: when the payout happened (see the module docstring)
    paid_at: datetime
    #: where the funds were paid from (the network the deposit landed on)
    network: str
    category: str
    #: the deposit's USD value (None: unknown, no price and no valuation)
    value_usd: Decimal | None
    fee_usd: Decimal | None
    #: the Monday of the payout's ISO week
    week: date

    @property
    def net_usd(self) -> Decimal | None:
        """What went back to the user, in USD (the value less the fee)."""
        return None if self.value_usd is None else self.value_usd - (self.fee_usd or Decimal(0))


def paid_in(since: datetime, until: datetime | None) -> Any:
    """The payouts of ``[since, until)`` as a subquery (``case_id``, ``kind``, ``paid_at``, ``network``):
    credits booked, refunds proven on chain."""
    credit_when, confirmed = col(Payout.executed_at), col(CaseEvent.created_at)
    credit_window = [credit_when >= since] + ([credit_when < until] if until is not None else [])
    refund_window = [confirmed >= since] + ([confirmed < until] if until is not None else [])
    # the credits booked in the window (``ix_payouts_paid``: a range of times)
    credits: Any = select(col(Payout.case_id).label("case_id"), col(Payout.kind).label("kind"),
                          credit_when.label("paid_at"), col(Payout.network).label("network")).where(
        col(Payout.kind) == "credit", col(Payout.state) == "executed", *credit_window)
    # the window's proofs first (``ix_case_events_refund_confirmed``: a range of times), then their payouts
    refunds = select(col(Payout.case_id), col(Payout.kind), confirmed, col(Payout.network)).select_from(
        CaseEvent).join(Payout, col(Payout.case_id) == col(CaseEvent.case_id)).where(
        text(REFUND_CONFIRMED), *refund_window, col(Payout.kind) == "refund",
        col(Payout.state) == "confirmed")
    return union_all(credits, refunds).subquery("paid")


def paid_cases(db: Database, since: datetime, until: datetime | None = None) -> list[PaidCase]:
    """Every case paid out in ``[since, until)``, by payout time then case: credits booked, refunds
    proven on chain."""
    paid = paid_in(since, until)
    query = (
        select(paid.c.case_id, col(Case.reference), paid.c.kind, paid.c.paid_at, paid.c.network,
               col(Case.category), cast(col(Case.value_usd), String), cast(col(Case.fee_usd), String))
        .join(Case, col(Case.id) == paid.c.case_id)
    )
    with db.read() as session:
        # a Core execution: the ORM's handling of rows that load no entities only costs time here
        rows = session.connection().execute(query).all()
    found = []
    for case_id, reference, kind, paid_at, network, category, value, fee in rows:
        when = paid_at if isinstance(paid_at, datetime) else datetime.fromisoformat(str(paid_at))
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
        found.append(PaidCase(int(case_id), str(reference), str(kind), when, str(network),
                              str(category or UNCLASSIFIED), _decimal(value), _decimal(fee), week_of(when)))
    found.sort(key=lambda p: (p.paid_at, p.case_id))
    return found


@dataclass(frozen=True)
class PaidGroup:
    """The cases paid out in one ISO week, of one kind, from one network, of one category."""

    week: date
    kind: str
    network: str
    category: str
    cases: int
    #: cases of unknown value (no price and no valuation): counted, not summed
    unvalued: int
    #: the exact sums of the valued cases' USD value and fee
    value_usd: Decimal
    fee_usd: Decimal


def paid_groups(db: Database, since: datetime, until: datetime | None = None) -> list[PaidGroup]:
    """The cases paid out in ``[since, until)`` (as :func:`paid_cases`), counted and summed exactly in SQL
    per ISO week of the payout, kind, network and category: a few hundred rows for any window."""

    paid = paid_in(since, until)
    week = _week_sql(db, paid.c.paid_at)
    category = func.coalesce(col(Case.category), literal(UNCLASSIFIED))
    valued = col(Case.value_usd).is_not(None)
    query = (
        select(week, paid.c.kind, paid.c.network, category, func.count(),
               func.sum(case((valued, 0), else_=1)),
               money_total(db, col(Case.value_usd)), money_total(db, case((valued, col(Case.fee_usd)), else_=None)))
        .join(Case, col(Case.id) == paid.c.case_id)
        .group_by(week, paid.c.kind, paid.c.network, category)
    )
    with db.read() as session:
        rows = session.connection().execute(query).all()
    return sorted((PaidGroup(_day(w), str(k), str(n), str(c), int(cases), int(unvalued), exact_sum(db, value),
                             exact_sum(db, fee)) for w, k, n, c, cases, unvalued, value, fee in rows),
                  key=lambda g: (g.week, g.kind, g.network, g.category))


def _decimal(value: Any) -> Decimal | None:
    """The stored exact text as a Decimal (the sums are exact whatever its exponent)."""
    return None if value is None else Decimal(value)


@dataclass(frozen=True)
class Recovered:
    """Paid cases added up under one key (a week, a network, a category...)."""

    key: str
    cases: int
    #: paid cases whose value is unknown (counted in ``cases``, not in the sums)
    unvalued: int
    value_usd: Decimal
    fee_usd: Decimal

    @property
    def net_usd(self) -> Decimal:
        return self.value_usd - self.fee_usd


def add_up(groups: Iterable[PaidGroup], key: Callable[[PaidGroup], str],
           keys: Iterable[str] = ()) -> list[Recovered]:
    """The paid groups summed exactly per ``key`` (every one of ``keys`` first, in their order, even
    with nothing paid; then the other keys found, sorted)."""
    fixed = list(dict.fromkeys(keys))
    sums: dict[str, list[Any]] = defaultdict(lambda: [0, 0, Decimal(0), Decimal(0)])
    for group in groups:
        entry = sums[key(group)]
        entry[0] += group.cases
        entry[1] += group.unvalued
        entry[2] += group.value_usd
        entry[3] += group.fee_usd
    order = fixed + sorted(k for k in sums if k not in fixed)
    return [Recovered(k, sums[k][0], sums[k][1], sums[k][2], sums[k][3]) for k in order]


@dataclass(frozen=True)
class RecoveredWeeks:
    weeks: list[date]
    groups: list[PaidGroup]

    @property
    def cases(self) -> int:
        return sum(g.cases for g in self.groups)

    def by_week(self) -> list[Recovered]:
        return add_up(self.groups, lambda g: g.week.isoformat(), [w.isoformat() for w in self.weeks])

    def by_network(self) -> list[Recovered]:
        return add_up(self.groups, lambda g: g.network)

    def by_category(self) -> list[Recovered]:
        return add_up(self.groups, lambda g: g.category)

    def by_kind(self) -> list[Recovered]:
        return add_up(self.groups, lambda g: g.kind, ["credit", "refund"])

    def total(self) -> Recovered:
        [whole] = add_up(self.groups, lambda _g: "all", ["all"])
        return whole


def recovered(db: Database, now: datetime, *, weeks: int = 8) -> RecoveredWeeks:
    """The cases paid out in the last ``weeks`` ISO weeks (this one included), by payout date."""
    return RecoveredWeeks(week_list(now, weeks), paid_groups(db, day_start(first_week(now, weeks))))
