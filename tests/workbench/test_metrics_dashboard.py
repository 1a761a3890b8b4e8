"""Issue 22: the dashboard's service metrics (first response, resolution, first-contact resolution,
CSAT, decided automatically) per ISO week and category, and their CSV export, on the seeded world."""

from __future__ import annotations

from datetime import timedelta

from app.workbench.context import Workbench
from recovery import feedback, service_metrics
from tests.workbench.conftest import frame_with, markdown_texts, signed_in_app
from tests.workbench.seed import World


def test_the_dashboard_shows_the_service_metrics_and_exports_them(wb: Workbench, world: World) -> None:
    # the users of the two finished cases rate them
    for reference, score in ((world.credited, 5), (world.rejected, 2)):
        case = wb.cases.get(reference).case
        feedback.give(wb.cases, reference, case.user_id, {"score": score, "comment": "Rated from the test."},
                      expected_version=case.version)

    at = signed_in_app("ari", "views/dashboard.py")
    assert not at.exception
    assert "Service metrics (appeals by the ISO week they were opened in)" in markdown_texts(at)
    now = wb.now()
    facts = service_metrics.read_facts(wb.db, service_metrics.week_start(now) - timedelta(weeks=3))
    total = service_metrics.overall(facts)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["CSAT"] == "3.50 / 5" == f"{total.csat_mean} / 5"
    assert metrics["First-contact resolution"] == "100.0 %"  # both finished cases without a question
    assert metrics["Decided automatically"] == "0.0 %"  # a person approved one and rejected the other
    median = total.first_response.median_hours
    assert median is not None and metrics["Time to first response (median)"] == f"{median:.1f} h"

    weeks = frame_with(at, "first response median h")
    expected = [row.record() for row in service_metrics.compute(facts)]
    shown_weeks = weeks.to_dict("records")
    assert [r["week"] for r in shown_weeks] == [r["week"] for r in expected if r["category"] == "all"]
    assert sum(int(r["cases"]) for r in shown_weeks) == len(facts) == 12
    assert sum(int(r["rated"]) for r in shown_weeks) == 2
    by_category = [f for f in at.dataframe if "first response median h" in f.value.columns][1].value
    assert set(by_category["category"]) == {r["category"] for r in expected if r["category"] != "all"}
    assert "dash_metrics_export" in [d.key for d in at.get("download_button")]
    # the export is the module's CSV of the same rows
    exported = service_metrics.csv_text(service_metrics.compute(facts))
    assert exported.splitlines()[0].startswith("week,category,cases,first response cases")
    assert len(exported.splitlines()) == 1 + len(expected)

    at.selectbox(key="dash_metric_weeks").set_value(13).run()
    assert not at.exception
    assert sum(int(r) for r in frame_with(at, "first response median h")["cases"]) == 12


def test_no_cases_in_the_window_says_so(wb: Workbench, world: World, wb_clock: object) -> None:
    wb_clock.advance(days=120)  # type: ignore[attr-defined]
    at = signed_in_app("ari", "views/dashboard.py")
    assert not at.exception
    assert "No appeal was opened in these weeks." in markdown_texts(at)
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["CSAT"] == "-" and metrics["Time to first response (median)"] == "-"
