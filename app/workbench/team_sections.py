"""The team lead's dashboard sections: charts where every bar carries its label and its figure, and a
click on a bar (or on its link below the chart) opens the queue filtered to those cases; the weekly
trend per category, the throughput per operator and the value recovered by payout date
(``recovery/team_reads.py``); money to the cent (``recovery/i18n.py``).

A click on a bar reruns the page with the chart's selection (Streamlit's ``on_select``); its
callback notes the queue's URL parameters (``app/workbench/queue_url.py``) and the next run switches
to the Queue page with them, in the same session. Every chart also lists its links
(``st.page_link``), for the keyboard and for cases a chart cannot show.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from functools import partial
from typing import Any

import pandas as pd
import streamlit as st

from app.workbench import vega_specs
from app.workbench.context import Workbench
from app.workbench.vega_specs import BAR, PICK
from recovery import team_reads
from recovery.db import Database
from recovery.i18n import translator
from recovery.queues import AGE_BUCKETS, AWAITING_DECISION
from recovery.team_reads import UNCLASSIFIED, WEEK_CHOICES, Recovered
from recovery.vocabulary import CaseStatus

QUEUE_PAGE = "views/queue.py"
#: session key: the queue parameters a click on a chart asked for (the next run goes there)
GOTO_KEY = "wb_dash_goto_queue"
#: the statuses of cases whose money went back to the user
PAID_STATUSES = f"{CaseStatus.CREDITED.value},{CaseStatus.REFUNDED.value}"
#: the dashboard's age buckets -> the queue's age choice that holds them
AGE_PARAM: dict[str, str] = {"< 1 day": "under 1 day", "1-3 days": "1-3 days", "3-7 days": "3-7 days",
                             "1-2 weeks": "1-4 weeks", "2-4 weeks": "1-4 weeks", "> 4 weeks": "over 4 weeks"}
assert set(AGE_PARAM) == {label for label, _ in AGE_BUCKETS}


def usd(value: Decimal) -> str:
    """Dollars to the cent (``$1,234.50``)."""
    return translator("en").usd(value)


# ------------------------------------------------------------------------------------ the way to the queue
def go_to_queue_if_asked() -> None:
    """Switch to the queue a chart was clicked for (call before anything else renders)."""
    params = st.session_state.pop(GOTO_KEY, None)
    if params is not None:
        st.switch_page(QUEUE_PAGE, query_params=dict(params))


def selected_params(state: Any, field: str,
                    params_of: Callable[[str], dict[str, str] | None]) -> dict[str, str] | None:
    """The queue parameters of the bar a chart's selection state names (None: nothing to open)."""
    try:
        points = state["selection"][PICK] if state is not None else []
    except (KeyError, TypeError):
        return None
    for point in points or []:
        value = point.get(field) if isinstance(point, Mapping) else None
        params = params_of(str(value)) if value is not None else None
        if params is not None:
            return params
    return None


def _picked(key: str, field: str, params_of: Callable[[str], dict[str, str] | None]) -> None:
    params = selected_params(st.session_state.get(key), field, params_of)
    if params is not None:
        st.session_state[GOTO_KEY] = params


def queue_links(items: Sequence[tuple[str, dict[str, str] | None]], *, label: str = "Open in the queue") -> None:
    """The chart's links, folded: one per bar that has a queue filter."""
    links = [(text, params) for text, params in items if params is not None]
    if not links:
        return
    with st.expander(label):
        cells = st.columns(3)
        for n, (text, params) in enumerate(links):
            with cells[n % 3]:
                st.page_link(QUEUE_PAGE, label=text, query_params=params)


def clickable(spec: dict[str, Any], key: str, field: str,
              params_of: Callable[[str], dict[str, str] | None]) -> None:
    """Show the Vega-Lite ``spec`` (``app/workbench/vega_specs.py``: its selection is ``pick``); a click
    on a bar opens the queue with ``params_of(the bar's field value)``."""
    go_to_queue_if_asked()
    st.vega_lite_chart(spec, width="stretch", key=key, on_select=partial(_picked, key, field, params_of),
                       selection_mode=PICK)


# ------------------------------------------------------------------------------------ the backlog charts
def status_params(status: str) -> dict[str, str]:
    return {"status": status}


def category_params(category: str) -> dict[str, str] | None:
    """The open cases of one category (the queue's default statuses); none for unclassified cases
    (the queue has no filter for "no category")."""
    return None if category == UNCLASSIFIED else {"category": category}


def status_chart(by_status: Mapping[str, int], active: Sequence[str]) -> None:
    """Cases by status (open in blue, finished in grey), each bar named and counted; a click opens them."""
    order = [s.value for s in CaseStatus]
    rows = [{"status": s, "cases": int(by_status.get(s, 0)), "label": f"{int(by_status.get(s, 0)):,}",
             "backlog": "open" if s in active else "finished"} for s in order]
    color = {"field": "backlog", "type": "nominal",
             "scale": {"domain": ["open", "finished"], "range": ["#1f77b4", "#9aa5b1"]}}
    chart = vega_specs.labelled_bars(rows, category="status", value="cases", label="label", horizontal=True,
                                     sort=order, color=color, tooltip=["status", "cases", "backlog"])
    clickable(chart, "dash_chart_status", "status", status_params)
    queue_links([(f"{s} ({int(by_status.get(s, 0)):,})", status_params(s)) for s in order])


def backlog_chart(backlog_by_category: Mapping[str, int]) -> None:
    """The open backlog per category, largest first, every bar named and counted; a click opens them."""
    rows = sorted(backlog_by_category.items(), key=lambda item: (-item[1], item[0]))
    if not rows:
        st.caption("No open cases.")
        return
    chart = vega_specs.labelled_bars([{"category": c, "cases": int(n), "label": f"{n:,}"} for c, n in rows],
                                     category="category", value="cases", label="label", horizontal=True,
                                     sort=[c for c, _ in rows], tooltip=["category", "cases"])
    clickable(chart, "dash_chart_backlog", "category", category_params)
    queue_links([(f"{c} ({n:,})", category_params(c)) for c, n in rows])


def age_params(key: str) -> dict[str, str] | None:
    """``key``: ``<bucket>|within SLA`` or ``<bucket>|past SLA``: the cases awaiting a decision of
    that age (the queue's nearest age choice) and SLA state."""
    bucket, _, sla = key.partition("|")
    if bucket not in AGE_PARAM:
        return None
    return {"status": ",".join(AWAITING_DECISION), "age": AGE_PARAM[bucket],
            "sla": "breached" if sla == "past SLA" else "not breached"}


def age_chart(age_buckets: Sequence[tuple[str, int, int]]) -> None:
    """Age of the cases awaiting a decision, within and past their SLA, each bar counted."""
    rows = []
    for label, ok, late in age_buckets:
        rows.append({"age": label, "SLA": "within SLA", "cases": ok, "label": f"{ok:,}" if ok else "",
                     "pick": f"{label}|within SLA"})
        rows.append({"age": label, "SLA": "past SLA", "cases": late, "label": f"{late:,}" if late else "",
                     "pick": f"{label}|past SLA"})
    chart = vega_specs.grouped_bars(
        rows, group="age", group_sort=[label for label, _ in AGE_BUCKETS], member="SLA",
        member_sort=["within SLA", "past SLA"], value="cases", label="label", pick_field="pick",
        colors=["#4c9f70", "#d9534f"], horizontal=False, value_title="cases", height=300,
        group_axis={"labelAngle": -25}, tooltip=["age", "SLA", "cases"])
    clickable(chart, "dash_chart_age", "pick", age_params)
    queue_links([(_age_link(label, sla, n), age_params(f"{label}|{sla}"))
                 for label, ok, late in age_buckets for sla, n in (("within SLA", ok), ("past SLA", late)) if n])


def _age_link(label: str, sla: str, cases: int) -> str:
    """A bucket's link names the queue's wider age choice where the two differ (1-2 and 2-4 weeks)."""
    wider = AGE_PARAM[label]
    return f"{label}, {sla} ({cases:,})" + ("" if wider in (label, "under 1 day", "over 4 weeks")
                                           else f": the queue's {wider}")


def day_params(day: str) -> dict[str, str]:
    """The appeals filed that day (``YYYY-MM-DD``), in any status."""
    return {"status": "all", "filed": day}


def per_day_chart(per_day: Sequence[tuple[str, int]]) -> None:
    """Appeals filed per day, each day named and its bar counted (up to a month: 90 bars have no room for
    90 figures, the axis then names every other day and the tooltip gives each); a click opens the
    cases filed that day."""
    rows = [{"date": d, "day": d[5:], "appeals": int(n), "label": f"{n:,}" if n else ""} for d, n in per_day]
    clickable(vega_specs.day_bars(rows, roomy=len(per_day) <= 31), "dash_chart_days", "date", day_params)


# ------------------------------------------------------------------------------------ the team's weeks
def trend_params(category: str) -> dict[str, str] | None:
    return None if category == UNCLASSIFIED else {"category": category, "status": "all"}


def operator_params(operator: str) -> dict[str, str]:
    """The operator's open cases (the queue's assignee filter)."""
    return {"assignee": operator}


def network_paid_params(network: str) -> dict[str, str]:
    return {"network": network, "status": PAID_STATUSES}


def paid_week_params(week: str) -> dict[str, str]:
    """The cases paid out in the ISO week that starts on ``week`` (its Monday, ``YYYY-MM-DD``), in any
    status (a credited case stays paid whatever happens to it next)."""
    monday = date.fromisoformat(week)
    return {"status": "all", "paid": f"{week}..{(monday + timedelta(days=6)).isoformat()}"}


def category_paid_params(category: str) -> dict[str, str] | None:
    return None if category == UNCLASSIFIED else {"category": category, "status": PAID_STATUSES}


def _category_trend(weeks: int, trend: Sequence[team_reads.CategoryWeek]) -> None:
    st.subheader(f"Cases opened per week and category (last {weeks} weeks)")
    if not trend:
        st.caption("No case was opened in these weeks.")
        return
    rows: list[dict[str, str | int]] = [{"week": r.week.isoformat(), "category": r.category, "cases": r.cases}
                                        for r in trend]
    frame = pd.DataFrame(rows)
    totals = frame.groupby("category")["cases"].sum().sort_values(ascending=False)
    order = list(totals.index)
    last_week = max(r.week for r in trend).isoformat()
    chart = vega_specs.trend_lines(rows, [r for r in rows if r["week"] == last_week], order=order)
    clickable(chart, "dash_chart_trend", "category", trend_params)
    table = frame.pivot_table(index="category", columns="week", values="cases", aggfunc="sum").reindex(order)
    table.insert(0, "total", totals.reindex(order))
    st.dataframe(table.reset_index(), hide_index=True, width="stretch", key="dash_trend_table",
                 height=38 + 35 * len(table))
    queue_links([(f"{c} ({int(totals[c]):,} in {weeks} weeks, any status)", trend_params(c)) for c in order])


def _throughput(weeks: int, rows: Sequence[team_reads.OperatorWeek]) -> None:
    st.subheader(f"Throughput per operator (last {weeks} weeks)")
    if not rows:
        st.caption("No operator acted on a case in these weeks.")
        return
    st.caption("Decided: cases the operator approved or rejected that week. Acted on: cases they did anything to "
               "(a note, an assignment, a question, a payout...). A click on a bar opens the operator's open cases.")
    frame = pd.DataFrame([{"week": r.week.isoformat(), "operator": r.operator, "decided": r.decided,
                           "acted on": r.acted, "actions": r.actions} for r in rows])
    totals = frame.groupby("operator")[["decided", "acted on", "actions"]].sum().sort_values(
        ["decided", "acted on"], ascending=False)
    order = list(totals.index)
    measures = ["decided", "acted on"]
    bars = [{"operator": str(op), "measure": m, "cases": int(totals.loc[op, m]), "label": f"{int(totals.loc[op, m]):,}"}
            for op in order for m in measures]
    chart = vega_specs.grouped_bars(
        bars, group="operator", group_sort=[str(op) for op in order], member="measure", member_sort=measures,
        value="cases", label="label", pick_field="operator", colors=["#1f77b4", "#9ecae1"], horizontal=True,
        value_title=f"cases in {weeks} weeks", height=2 * BAR * len(order) + 30, group_axis={"labelLimit": 200},
        tooltip=["operator", "measure", "cases"])
    clickable(chart, "dash_chart_throughput", "operator", operator_params)
    per_week = frame.pivot_table(index="operator", columns="week", values="decided", aggfunc="sum",
                                 fill_value=0).reindex(order)
    table = totals.join(per_week.add_prefix("decided, week of "))
    st.dataframe(table.reset_index(), hide_index=True, width="stretch", key="dash_throughput_table",
                 height=38 + 35 * len(table))
    queue_links([(f"{op}'s open cases", operator_params(op)) for op in order])


def _money_rows(rows: Sequence[Recovered], name: str) -> pd.DataFrame:
    return pd.DataFrame([{name: r.key, "cases": r.cases, "value": usd(r.value_usd), "fees": usd(r.fee_usd),
                          "to the users": usd(r.net_usd), "value unknown": r.unvalued} for r in rows])


def _recovered(weeks: int, data: team_reads.RecoveredWeeks) -> None:
    st.subheader(f"Recovered value and fees by payout date (last {weeks} weeks)")
    total = data.total()
    cells = st.columns(4)
    cells[0].metric("Cases paid out", f"{total.cases:,}",
                    help="Credits booked and refunds proven on chain in these weeks (by the payout's date, not "
                         "the appeal's).")
    cells[1].metric("Value recovered", usd(total.value_usd), help="The deposits' USD value at the decision.")
    cells[2].metric("Fees", usd(total.fee_usd))
    cells[3].metric("Paid to the users", usd(total.net_usd), help="The value less the fees.")
    if total.unvalued:
        st.caption(f"{total.unvalued} paid case(s) of unknown value are counted, not summed.")
    if not data.groups:
        st.caption("Nothing was paid out in these weeks.")
        return
    by_week = data.by_week()
    rows = []
    for r in by_week:
        rows.append({"week": r.key, "measure": "paid to the users", "USD": float(r.net_usd), "label": usd(r.net_usd),
                     "total": usd(r.value_usd)})
        rows.append({"week": r.key, "measure": "fees", "USD": float(r.fee_usd), "label": usd(r.fee_usd),
                     "total": usd(r.value_usd)})
    week_totals = [{"week": r.key, "USD": float(r.value_usd), "label": usd(r.value_usd) if r.cases else ""}
                   for r in by_week]
    chart = vega_specs.paid_week_bars(rows, week_totals, measures=["paid to the users", "fees"],
                                      colors=["#4c9f70", "#f0ad4e"])
    clickable(chart, "dash_chart_paid_weeks", "week", paid_week_params)
    queue_links([(f"paid in the week of {r.key} ({r.cases:,})", paid_week_params(r.key)) for r in by_week if r.cases])
    st.caption("Each bar: the value recovered that week (written above it), what went to the users and the fees. "
               "A click opens the cases paid out that week.")
    st.dataframe(_money_rows(by_week, "week"), hide_index=True, width="stretch", key="dash_paid_weeks",
                 height=38 + 35 * len(by_week))
    left, right = st.columns(2)
    with left:
        st.caption("by network (where the funds were paid from)")
        networks = data.by_network()
        st.dataframe(_money_rows(networks, "network"), hide_index=True, width="stretch", key="dash_paid_networks")
        queue_links([(f"paid on {r.key}", network_paid_params(r.key)) for r in networks])
    with right:
        st.caption("by category")
        categories = data.by_category()
        st.dataframe(_money_rows(categories, "category"), hide_index=True, width="stretch",
                     key="dash_paid_categories")
        queue_links([(f"paid, {r.key}", category_paid_params(r.key)) for r in categories])


#: the weeks the team section opens with
DEFAULT_WEEKS = 8
assert DEFAULT_WEEKS in WEEK_CHOICES


@dataclass(frozen=True)
class TeamWeeks:
    """The team section's figures for one choice of weeks (read without Streamlit: the dashboard reads
    them in a worker thread while it draws the rest)."""

    weeks: int
    trend: list[team_reads.CategoryWeek]
    throughput: list[team_reads.OperatorWeek]
    recovered: team_reads.RecoveredWeeks


def read_team_weeks(db: Database, now: datetime, weeks: int) -> TeamWeeks:
    return TeamWeeks(weeks, team_reads.category_trend(db, now, weeks=weeks),
                     team_reads.throughput(db, now, weeks=weeks), team_reads.recovered(db, now, weeks=weeks))


def chosen_weeks() -> int:
    """The weeks the section's choice holds (before the widget is drawn: the reads start first)."""
    weeks = st.session_state.get("dash_team_weeks", DEFAULT_WEEKS)
    return weeks if weeks in WEEK_CHOICES else DEFAULT_WEEKS


def team_section(wb: Workbench, now: datetime, read: TeamWeeks | None = None) -> None:
    """The team lead's weeks: the trend per category, the throughput per operator, the value recovered
    by payout date (one choice of weeks for all three); ``read``: the figures already read for the
    chosen weeks (else they are read here)."""
    go_to_queue_if_asked()
    head = st.columns([4, 1])
    head[0].header("The team's weeks")
    weeks = int(head[1].selectbox("Weeks", WEEK_CHOICES, index=WEEK_CHOICES.index(DEFAULT_WEEKS),
                                  format_func=lambda w: f"last {w} weeks", key="dash_team_weeks"))
    st.caption("ISO weeks (Monday to Sunday, UTC), this one included.")
    figures = read if read is not None and read.weeks == weeks else read_team_weeks(wb.db, now, weeks)
    _category_trend(weeks, figures.trend)
    _throughput(weeks, figures.throughput)
    _recovered(weeks, figures.recovered)
