"""Dashboard: backlog, ages and SLA, payouts (waiting, past their own SLA, refunds to prove, mismatches),
decision and resolution times, the service metrics per ISO week and category (first response,
resolution, first-contact resolution, CSAT, decided automatically; CSV export), detected vs appealed
cases and the time from the deposit to the case, intake; then the team lead's weeks
(``app/workbench/team_sections.py``): cases opened per week and category, throughput per
operator, value and fees by payout date. Every bar is named and counted, and a click on it opens
the queue filtered to its cases.

The figures come from ``recovery/queues.py::dashboard``: counts by status, one pass over the open
cases, and one statement for the window's cases (aggregated in SQL, with one narrow row per case for
the percentiles); the charts get a few dozen rows. Money is summed exactly; it becomes a float only
as a bar height.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from decimal import Decimal

import streamlit as st

from app.workbench import auth, team_sections, ui
from app.workbench.context import Workbench, current
from app.workbench.payout_reads import payout_sla
from recovery import queues, service_metrics
from recovery.db import Database
from recovery.dbtypes import decimal_text
from recovery.queues import ACTIVE_STATUSES, APPEALED, OriginRow, QueueFilter
from recovery.service_metrics import Metrics
from recovery.vocabulary import CaseStatus, Flag, Origin

#: the dashboard's windows, in days (the cost of the window's figures grows with it)
WINDOWS = (7, 30, 90)


def _hours(value: float | None) -> str:
    if value is None:
        return "-"
    return f"{value:.1f} h" if value < 48 else f"{value / 24:.1f} d"


#: the rows of the origin table: detected, all appeals, then each kind of appeal
ORIGIN_ROWS: dict[str, str] = {
    Origin.DETECTED.value: "detected (by the scan)",
    APPEALED: "appealed (all)",
    Origin.APPEAL.value: "· by the user",
    Origin.INTAKE.value: "· filed by an operator",
}


def _origin_record(label: str, row: OriginRow) -> dict[str, object]:
    wait = row.deposit_to_case
    return {"origin": label, "cases": row.cases, "share": f"{row.share_percent:.1f} %", "open": row.open,
            "finished": row.finished, "deposit to case, median": _hours(wait.median_hours),
            "deposit to case, p90": _hours(wait.p90_hours), "deposit time known": wait.count,
            "deposit time unknown": row.unknown_deposit}


def _origins(data: queues.Dashboard, days: int) -> None:
    """Detected against appealed cases, and how long after the deposit each kind was opened."""
    st.subheader(f"Detected and appealed cases (filed in the last {days} days)")
    detected, appealed = data.origin(Origin.DETECTED.value), data.origin(APPEALED)
    waited = ("From the block the deposit landed in (the scan's record, else the chain check's) to the "
              "opening of the case.")
    cells = st.columns(4)
    cells[0].metric("Detected by the scan", f"{detected.cases} ({detected.share_percent:.1f} %)",
                    help=f"Opened by `recovery scan` before anyone appealed; {detected.open} still open.")
    cells[1].metric("Appealed", f"{appealed.cases} ({appealed.share_percent:.1f} %)",
                    help=f"Filed by the user or by an operator for the user; {appealed.open} still open.")
    cells[2].metric("Deposit to case, detected (median)", _hours(detected.deposit_to_case.median_hours), help=waited)
    cells[3].metric("Deposit to case, appealed (median)", _hours(appealed.deposit_to_case.median_hours), help=waited)
    ui.table([_origin_record(label, data.origin(name)) for name, label in ORIGIN_ROWS.items()],
             ["origin", "cases", "share", "open", "finished", "deposit to case, median", "deposit to case, p90",
              "deposit time known", "deposit time unknown"], key="dash_origins")
    st.caption("Deposit time unknown: the transaction was not found on the chain yet, or never checked. "
               "A case opened before its transaction was in a block counts as 0.")


def _payouts(wb: Workbench, now: datetime) -> None:
    """Approved but unpaid payouts against their own SLA, refunds waiting for their proof, payout problems."""
    hours = wb.config.policy.payout_sla_hours
    sla = payout_sla(wb.db, now, hours)
    pending = queues.queue_page(wb.db, QueueFilter(statuses=(CaseStatus.REFUND_PENDING.value,)), now, page_size=1)
    mismatched = queues.queue_page(wb.db, QueueFilter(statuses=ACTIVE_STATUSES, flags=(Flag.REFUND_MISMATCH.value,)),
                                   now, page_size=1)
    st.subheader("Payouts")
    cells = st.columns(4)
    cells[0].metric("Payouts waiting", sla.waiting, help="Approved credits and refunds not recorded as paid yet.")
    cells[1].metric("Payouts past their SLA", sla.overdue,
                    help=f"Approved more than {hours} h ago (policy payout_sla_hours) and still not paid.")
    cells[2].metric("Refunds awaiting proof", pending.total,
                    help="Refund transaction recorded; the re-check proves it on chain before the case is refunded.")
    cells[3].metric("Refund mismatches open", mismatched.total,
                    help="The recorded refund did not prove the approved payout (flag refund_mismatch).")
    if sla.oldest_overdue:
        st.caption(f"Payouts approved more than {hours} h ago and not paid yet, oldest first:")
        ui.table(
            [{"reference": p.reference, "kind": p.kind, "network": p.network, "asset": p.asset,
              "amount": decimal_text(p.amount), "approved by": p.approved_by, "approved": p.clock.approved_at,
              "overdue by": ui.duration(now - p.clock.due_at)} for p in sla.oldest_overdue],
            ["reference", "kind", "network", "asset", "amount", "approved by", "approved", "overdue by"],
            key="dash_payouts_overdue",
        )


#: the service metrics' windows, in ISO weeks (this one included)
METRIC_WEEKS = (4, 8, 13)
#: how long the service metrics are reused (weekly figures: every rerun of the page, every member
#: of the team and every choice of the page's other widgets within this time read them once)
METRICS_CACHE_SECONDS = 300


@st.cache_data(ttl=METRICS_CACHE_SECONDS, max_entries=32, show_spinner=False)
def _metrics(_db: Database, database: str, since: datetime, period: int) -> tuple[list[Metrics], Metrics]:
    """The rows and the window's headline figures, kept per database, window and 5-minute period of
    the workbench's clock (``period``: also right when the clock is simulated)."""
    facts = service_metrics.read_facts(_db, since)
    return service_metrics.compute(facts), service_metrics.overall(facts)


def _percent(value: Decimal | None) -> str:
    return "-" if value is None else f"{value} %"


def _service_metrics(wb: Workbench, now: datetime) -> None:
    """First response, resolution, first-contact resolution, CSAT and the share decided automatically,
    per ISO week and category (``recovery/service_metrics.py``), with the CSV export."""
    head = st.columns([4, 1])
    head[0].subheader("Service metrics (appeals by the ISO week they were opened in)")
    weeks = int(head[1].selectbox("Weeks", METRIC_WEEKS, index=0, format_func=lambda w: f"last {w} weeks",
                                  key="dash_metric_weeks"))
    since = service_metrics.week_start(now) - timedelta(weeks=weeks - 1)
    rows, total = _metrics(wb.db, str(wb.db.engine.url), since, int(now.timestamp()) // METRICS_CACHE_SECONDS)
    cells = st.columns(5)
    cells[0].metric("Time to first response (median)", _hours(total.first_response.median_hours),
                    help="From the appeal to the first thing its user sees after filing (the chain check's "
                         "verdict, a question, a decision...).")
    cells[1].metric("Time to resolution (median)", _hours(total.resolution.median_hours),
                    help="From the appeal to the credit, the refund or the rejection.")
    cells[2].metric("First-contact resolution", _percent(total.first_contact_percent),
                    help="Resolved cases that were resolved without asking the user for information.")
    cells[3].metric("CSAT", "-" if total.csat_mean is None else f"{total.csat_mean} / 5",
                    help=f"The users' ratings of their finished cases: the mean, and "
                         f"{_percent(total.csat_percent)} gave 4 or 5 ({total.rated} rated).")
    cells[4].metric("Decided automatically", _percent(total.automatic_percent),
                    help="Cases whose first decision (approval, rejection, closing unanswered) was made "
                         "by the system, not a person.")
    records = [row.record() for row in rows]
    st.caption("Per week, all categories:")
    ui.table([r for r in records if r["category"] == service_metrics.ALL], service_metrics.COLUMNS,
             key="dash_metrics_weeks", empty="No appeal was opened in these weeks.")
    st.caption("Per week and category:")
    ui.table([r for r in records if r["category"] != service_metrics.ALL], service_metrics.COLUMNS,
             key="dash_metrics_categories", empty="No appeal was opened in these weeks.", max_rows=30)
    st.download_button(
        "Export the service metrics (CSV)", data=service_metrics.csv_text(rows),
        file_name=f"service-metrics-{now:%Y%m%d}-{weeks}w.csv", mime="text/csv", key="dash_metrics_export",
        on_click="ignore",
    )


def render() -> None:
    if auth.signed_in() is None:
        return
    team_sections.go_to_queue_if_asked()
    wb = current()
    now = wb.now()
    head = st.columns([4, 1])
    head[0].title("Dashboard")
    days = int(head[1].selectbox("Appeals filed in the last", WINDOWS, index=1, format_func=lambda d: f"{d} days",
                                 key="dash_days"))
    # The page's reads are independent of one another and spend their time in the database (which
    # releases the GIL): the team's weeks are read in a worker thread, and the window's figures in
    # another, while this thread reads and draws the rest (about the time of the longest read, not
    # the sum). Nothing in a worker calls Streamlit.
    with ThreadPoolExecutor(max_workers=2, thread_name_prefix="dashboard-read") as reads:
        team = reads.submit(team_sections.read_team_weeks, wb.db, now, team_sections.chosen_weeks())
        window = reads.submit(queues.dashboard, wb.db, now, days=days)
        _draw(wb, now, days, window, team)


def _draw(wb: Workbench, now: datetime, days: int, window: Future[queues.Dashboard],
          team: Future[team_sections.TeamWeeks]) -> None:
    """The page, top to bottom; the window's figures are drawn at the top once their read is over
    (the payouts and the service metrics are read and drawn below them meanwhile)."""
    top = st.container()
    _payouts(wb, now)
    _service_metrics(wb, now)
    data = window.result()
    with top:
        _headline(data, days)
    _origins(data, days)

    left, right = st.columns(2)
    with left:
        st.subheader("Cases by status")
        team_sections.status_chart(data.by_status, ACTIVE_STATUSES)
    with right:
        st.subheader("Open backlog by category")
        team_sections.backlog_chart(data.backlog_by_category)
    st.caption("A click on a bar, or on its link under the chart, opens those cases in the queue.")

    left, right = st.columns(2)
    with left:
        st.subheader("Age of the cases awaiting a decision")
        team_sections.age_chart(data.age_buckets)
    with right:
        st.subheader(f"Appeals per day ({days} days)")
        team_sections.per_day_chart(data.per_day)

    team_sections.team_section(wb, now, team.result())


def _headline(data: queues.Dashboard, days: int) -> None:
    """The backlog and the window's decision and resolution times."""
    sla = data.sla
    open_backlog = sum(data.by_status.get(s, 0) for s in ACTIVE_STATUSES)
    top = st.columns(4)
    top[0].metric("Open backlog", open_backlog, help="Cases the team still owes something (up to the payout).")
    top[1].metric("Awaiting a decision", sla.awaiting, help="Submitted, awaiting the chain, in review or "
                                                            "waiting for the user.")
    top[2].metric("Past their SLA", sla.breached, help="Awaiting a decision after their SLA due time.")
    top[3].metric("Due within 12 h", sla.due_soon)
    st.caption(f"Appeals filed in the last {days} days:")
    times = st.columns(5)
    decided = "From the appeal to its first approval or rejection."
    resolved = "From the appeal to the credit, the refund or the rejection."
    times[0].metric("Decided late", f"{sla.decided_late} of {sla.decided}", help="Decided after the SLA due time.")
    times[1].metric("First decision, median", _hours(data.first_decision.median_hours), help=decided)
    times[2].metric("First decision, p90", _hours(data.first_decision.p90_hours), help=decided)
    times[3].metric("Resolution, median", _hours(data.resolution.median_hours), help=resolved)
    times[4].metric("Resolution, p90", _hours(data.resolution.p90_hours), help=resolved)

render()
