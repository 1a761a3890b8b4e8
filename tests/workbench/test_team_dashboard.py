"""The team lead's dashboard sections (``app/workbench/team_sections.py``) through the Dashboard page
(AppTest, the seeded workbench): every bar named and counted, a click on a chart (its selection) or
on a chart's link opens the queue filtered to those cases, the weekly trend per category, the
throughput per operator, the value recovered by payout date, money to the cent."""

from __future__ import annotations

import json
from datetime import date, timedelta
from decimal import Decimal
from typing import Any

from streamlit.testing.v1 import AppTest

from app.workbench import queue_url, team_sections
from app.workbench.context import Workbench
from app.workbench.team_sections import GOTO_KEY
from app.workbench.vega_specs import PICK
from recovery import queues, team_reads
from recovery.i18n import translator
from tests.workbench.conftest import frame_with, signed_in_app
from tests.workbench.seed import World

DASHBOARD = "views/dashboard.py"
CHOICES = queue_url.Choices(networks=["ethereum", "bsc", "polygon", "arbitrum"], assets=["USDT", "USDC"],
                            operators=["sara", "tom", "alice"])


def links(at: AppTest) -> dict[str, str]:
    return {str(e.proto.label): str(e.proto.query_string) for e in at.get("page_link")}


def specs(at: AppTest) -> list[dict[str, Any]]:
    return [json.loads(e.proto.spec) for e in at.get("vega_lite_chart")]


def test_every_link_is_a_queue_address_the_queue_understands() -> None:
    for params in [team_sections.status_params("in_review"), team_sections.category_params("wrong_network"),
                   team_sections.age_params("1-2 weeks|past SLA"), team_sections.trend_params("unlisted_token"),
                   team_sections.operator_params("sara"), team_sections.network_paid_params("bsc"),
                   team_sections.category_paid_params("wrong_network"), team_sections.day_params("2026-12-01"),
                   team_sections.paid_week_params("2026-11-30")]:
        assert params is not None
        state = queue_url.from_params(params, CHOICES)
        # what the queue reads back from the address is what the link asked for
        assert queue_url.to_params(state) == params, params
    assert team_sections.age_params("1-2 weeks|past SLA") == {
        "status": "submitted,awaiting_chain,in_review,needs_info", "age": "1-4 weeks", "sla": "breached"}
    assert team_sections.category_params(team_reads.UNCLASSIFIED) is None  # the queue has no such filter


def test_a_chart_selection_names_the_queue_to_open() -> None:
    state = {"selection": {PICK: [{"category": "wrong_network", "cases": 3}]}}
    assert team_sections.selected_params(state, "category", team_sections.category_params) == {
        "category": "wrong_network"}
    unclassified = {"selection": {PICK: [{"category": "unclassified"}]}}
    assert team_sections.selected_params(unclassified, "category", team_sections.category_params) is None
    assert team_sections.selected_params({"selection": {PICK: []}}, "category", team_sections.category_params) is None
    assert team_sections.selected_params(None, "category", team_sections.category_params) is None


def test_money_is_formatted_to_the_cent() -> None:
    assert team_sections.usd(Decimal("5.00000000000001")) == "$5.00"
    assert team_sections.usd(Decimal("1234.5")) == translator("en").usd(Decimal("1234.5")) == "$1,234.50"


def test_the_backlog_charts_name_and_count_every_bar_and_link_to_the_queue(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara", DASHBOARD)
    assert not at.exception, at.exception
    data = queues.dashboard(wb.db, wb.now(), days=30)
    found = links(at)
    for category, n in data.backlog_by_category.items():
        if category != team_reads.UNCLASSIFIED:
            assert found[f"{category} ({n:,})"] == f"category={category}"
    assert found[f"in_review ({data.by_status['in_review']:,})"] == "status=in_review"
    # the backlog chart: no label dropped (labelOverlap off) and each bar's count written by it
    backlog = next(s for s in specs(at) if "category" in json.dumps(s) and "layer" in s
                   and any(layer.get("mark", {}).get("type") == "text" for layer in s["layer"]))
    bar, text = backlog["layer"]
    assert bar["encoding"]["y"]["axis"]["labelOverlap"] is False
    assert text["encoding"]["text"]["field"] == "label"


def test_a_click_on_a_chart_opens_the_filtered_queue(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara", DASHBOARD)
    # what the chart's on_select callback leaves when a bar is clicked; the next run goes to the queue
    at.session_state[GOTO_KEY] = team_sections.category_params("unlisted_token")
    at.run()
    assert [t.value for t in at.title] == ["Queue"]
    assert at.multiselect(key="q_category").value == ["unlisted_token"]
    assert at.query_params == {"category": "unlisted_token"}
    shown = list(frame_with(at, "reference")["reference"])
    assert world.unlisted in shown and world.small not in shown


def test_the_team_weeks(wb: Workbench, world: World) -> None:
    at = signed_in_app("alice", DASHBOARD)
    now = wb.now()
    metrics = {str(m.label): str(m.value) for m in at.metric}
    paid = team_reads.recovered(wb.db, now, weeks=8).total()
    # the seeded credit (300 USDT, approved by alice, booked by tom a day ago) and nothing else
    assert (paid.cases, paid.value_usd) == (1, Decimal(300))
    assert metrics["Cases paid out"] == "1" and metrics["Value recovered"] == "$300.00"
    assert metrics["Fees"] == "$0.00" and metrics["Paid to the users"] == "$300.00"
    throughput = frame_with(at, "acted on")
    by_operator = {row["operator"]: (row["decided"], row["acted on"]) for _i, row in throughput.iterrows()}
    expected: dict[str, tuple[int, int]] = {}
    for row in team_reads.throughput(wb.db, now, weeks=8):
        decided, acted = expected.get(row.operator, (0, 0))
        expected[row.operator] = (decided + row.decided, acted + row.acted)
    assert by_operator == expected and by_operator["alice"][0] == 1  # alice approved the credited case
    found = links(at)
    assert found["sara's open cases"] == "assignee=sara"
    assert found["paid on ethereum"] == "network=ethereum&status=credited%2Crefunded"
    trend = frame_with(at, "total")
    assert int(trend["total"].sum()) == sum(r.cases for r in team_reads.category_trend(wb.db, now, weeks=8))
    money = frame_with(at, "to the users")
    assert set(money["value"]) <= {"$300.00", "$0.00"}
    at.selectbox(key="dash_team_weeks").set_value(4).run()
    assert not at.exception
    # the week the credit was paid in opens the queue of the cases paid out that week: the credited case
    week = team_reads.week_of(wb.now() - timedelta(days=1)).isoformat()
    link = found[f"paid in the week of {week} (1)"]
    assert link == queue_url.query_string(team_sections.paid_week_params(week))
    at.session_state[GOTO_KEY] = team_sections.paid_week_params(week)
    at.run()
    assert [t.value for t in at.title] == ["Queue"]
    assert list(frame_with(at, "reference")["reference"]) == [world.credited]
    assert at.date_input(key="q_paid").value == (date.fromisoformat(week), date.fromisoformat(week) + timedelta(days=6))
