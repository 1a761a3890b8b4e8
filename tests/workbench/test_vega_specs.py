"""The dashboard's hand-written Vega-Lite specs (``app/workbench/vega_specs.py``) are valid Vega-Lite:
each is checked against the Vega-Lite JSON schema that Altair ships (the version Streamlit draws
with), as Altair's own validation did before; and each keeps what the page relies on (every bar
named, its figure written, one click selection named ``pick`` over the field the page reads back)."""

from __future__ import annotations

import json
from functools import cache
from importlib.resources import files
from typing import Any

import jsonschema
import pytest

from app.workbench import vega_specs
from app.workbench.vega_specs import PICK


@cache
def validator() -> jsonschema.Draft7Validator:
    schema = json.loads(files("altair.vegalite.v6.schema").joinpath("vega-lite-schema.json").read_text("utf-8"))
    return jsonschema.Draft7Validator(schema)


def check(spec: dict[str, Any]) -> dict[str, Any]:
    """The spec as Streamlit sends it (JSON), valid against the schema."""
    sent: dict[str, Any] = json.loads(json.dumps(spec))
    errors = sorted(validator().iter_errors(sent), key=lambda e: list(e.path))
    assert not errors, [f"{list(e.path)}: {e.message[:200]}" for e in errors[:5]]
    return sent


def selections(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [p for layer in spec["layer"] for p in layer.get("params", [])]


STATUS_ROWS = [{"status": "in_review", "cases": 1200, "label": "1,200", "backlog": "open"},
               {"status": "credited", "cases": 0, "label": "0", "backlog": "finished"}]


@pytest.mark.parametrize("horizontal", [True, False])
def test_labelled_bars(horizontal: bool) -> None:
    color = {"field": "backlog", "type": "nominal", "scale": {"domain": ["open", "finished"],
                                                              "range": ["#1f77b4", "#9aa5b1"]}}
    spec = check(vega_specs.labelled_bars(STATUS_ROWS, category="status", value="cases", label="label",
                                          horizontal=horizontal, sort=["in_review", "credited"], color=color,
                                          tooltip=["status", "cases"]))
    bars, text = spec["layer"]
    axis = "y" if horizontal else "x"
    assert bars["encoding"][axis]["axis"]["labelOverlap"] is False  # no label dropped
    assert bars["encoding"][axis]["sort"] == ["in_review", "credited"]
    assert text["encoding"]["text"]["field"] == "label"
    assert selections(spec) == [vega_specs.pick(["status"])] and selections(spec)[0]["name"] == PICK
    assert spec["data"]["values"] == STATUS_ROWS
    assert {t["field"]: t["type"] for t in bars["encoding"]["tooltip"]} == {"status": "nominal",
                                                                            "cases": "quantitative"}
    assert spec["height"] == (vega_specs.BAR * 2 + 30 if horizontal else 320)


def test_grouped_bars() -> None:
    rows = [{"age": "< 1 day", "SLA": sla, "cases": n, "label": f"{n:,}" if n else "", "pick": f"< 1 day|{sla}"}
            for sla, n in (("within SLA", 5), ("past SLA", 0))]
    spec = check(vega_specs.grouped_bars(
        rows, group="age", group_sort=["< 1 day", "1-3 days"], member="SLA", member_sort=["within SLA", "past SLA"],
        value="cases", label="label", pick_field="pick", colors=["#4c9f70", "#d9534f"], horizontal=False,
        value_title="cases", height=300, group_axis={"labelAngle": 0}, tooltip=["age", "SLA", "cases"]))
    assert spec["encoding"]["xOffset"]["field"] == "SLA" and spec["encoding"]["x"]["axis"]["labelOverlap"] is False
    assert selections(spec)[0]["select"]["fields"] == ["pick"]
    horizontal = check(vega_specs.grouped_bars(
        [{"operator": "maria", "measure": "decided", "cases": 3, "label": "3"}], group="operator",
        group_sort=["maria"], member="measure", member_sort=["decided", "acted on"], value="cases", label="label",
        pick_field="operator", colors=["#1f77b4", "#9ecae1"], horizontal=True, value_title="cases in 8 weeks",
        height=82))
    assert horizontal["encoding"]["yOffset"]["field"] == "measure"


@pytest.mark.parametrize("roomy", [True, False])
def test_day_bars(roomy: bool) -> None:
    rows = [{"date": "2026-12-01", "day": "12-01", "appeals": 4, "label": "4"}]
    spec = check(vega_specs.day_bars(rows, roomy=roomy))
    assert spec["encoding"]["x"]["axis"]["labelOverlap"] == (False if roomy else "parity")
    assert len(spec["layer"]) == (2 if roomy else 1)  # 90 days have no room for 90 figures


def test_trend_lines_and_paid_weeks() -> None:
    rows = [{"week": w, "category": c, "cases": n} for w in ("2026-11-23", "2026-11-30")
            for c, n in (("wrong_network", 3), ("unlisted_token", 0))]
    spec = check(vega_specs.trend_lines(rows, rows[2:], order=["wrong_network", "unlisted_token"]))
    _lines, ends = spec["layer"]
    assert ends["data"]["values"] == rows[2:] and ends["encoding"]["text"]["field"] == "category"
    assert selections(spec)[0]["select"]["fields"] == ["category"]
    paid = [{"week": "2026-11-30", "measure": m, "USD": 12.5, "label": "$12.50", "total": "$25.00"}
            for m in ("paid to the users", "fees")]
    spec = check(vega_specs.paid_week_bars(paid, [{"week": "2026-11-30", "USD": 25.0, "label": "$25.00"}],
                                           measures=["paid to the users", "fees"], colors=["#4c9f70", "#f0ad4e"]))
    assert spec["layer"][0]["encoding"]["y"]["stack"] is True
    assert spec["layer"][1]["encoding"]["text"]["field"] == "label"


def test_a_spec_that_is_not_vega_lite_is_caught() -> None:
    """The check above can fail: a misspelt mark type is refused by the schema."""
    spec = vega_specs.day_bars([{"date": "2026-12-01", "day": "12-01", "appeals": 1, "label": "1"}], roomy=True)
    spec["layer"][0]["mark"]["type"] = "barr"
    with pytest.raises(AssertionError):
        check(spec)
