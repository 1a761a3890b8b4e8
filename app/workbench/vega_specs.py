"""The dashboard's charts as Vega-Lite specifications written as plain dicts (no Altair).

Altair builds a chart through its JSON-schema classes and validates it on every conversion: at the
dashboard's seven charts that was about half a second of each run of the page. The specs here are
the same Vega-Lite, written directly: every bar named on its axis (``labelOverlap`` off) with its
figure written by it, and one click selection named :data:`PICK` that ``st.vega_lite_chart`` hands
back to the page (``app/workbench/team_sections.py``). Pure functions: rows in, a dict out; the
values must be JSON numbers and strings (money is turned into a float only as a bar's height by the
caller, and written exactly in the label beside it).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

#: the selection's name in every clickable chart
PICK = "pick"
#: pixels per bar of a horizontal chart: every label fits
BAR = 26

Rows = Sequence[Mapping[str, Any]]


def pick(fields: Sequence[str]) -> dict[str, Any]:
    """A click on a mark selects its values of ``fields`` (the chart's selection :data:`PICK`)."""
    return {"name": PICK, "select": {"type": "point", "on": "click", "clear": False, "fields": list(fields)}}


def field_type(rows: Rows, field: str) -> str:
    """``quantitative`` for a column of numbers, else ``nominal``."""
    values = [row.get(field) for row in rows if row.get(field) is not None]
    numeric = bool(values) and all(isinstance(v, int | float) and not isinstance(v, bool) for v in values)
    return "quantitative" if numeric else "nominal"


def tooltips(rows: Rows, fields: Sequence[str | Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Tooltip entries: a column's name (typed from its values), or an entry written out."""
    return [dict(f) if isinstance(f, Mapping) else {"field": f, "type": field_type(rows, f)} for f in fields]


def labelled_bars(rows: Rows, *, category: str, value: str, label: str, horizontal: bool,
                  sort: Sequence[str] | str | None = None, color: Mapping[str, Any] | None = None,
                  title: str = "cases", tooltip: Sequence[str] = ()) -> dict[str, Any]:
    """Bars with every category named on its axis (no label dropped for lack of room) and its figure
    written at the bar's end (``label``: the text column). A click selects the bar's ``category``."""
    along, across = ("y", "x") if horizontal else ("x", "y")
    axis = {"labelOverlap": False, "labelLimit": 260, "title": None, "labelAngle": 0 if horizontal else -40}
    position = {
        along: {"field": category, "type": "nominal", "sort": list(sort) if isinstance(sort, Sequence)
                and not isinstance(sort, str) else (sort or f"-{across}"), "axis": axis},
        across: {"field": value, "type": "quantitative", "title": title},
    }
    bars: dict[str, Any] = {
        "mark": {"type": "bar", "cursor": "pointer"},
        "params": [pick([category])],
        "encoding": {**position, "tooltip": tooltips(rows, list(tooltip) or [category, label])},
    }
    if color is not None:
        bars["encoding"]["color"] = dict(color)
    text = {
        "mark": {"type": "text", "align": "left" if horizontal else "center",
                 "baseline": "middle" if horizontal else "bottom", "dx": 3 if horizontal else 0,
                 "dy": 0 if horizontal else -3},
        "encoding": {**position, "text": {"field": label, "type": "nominal"}},
    }
    height = BAR * len(rows) + 30 if horizontal else 320
    return {"data": {"values": list(rows)}, "height": height, "layer": [bars, text]}


def grouped_bars(rows: Rows, *, group: str, group_sort: Sequence[str], member: str, member_sort: Sequence[str],
                 value: str, label: str, pick_field: str, colors: Sequence[str], horizontal: bool,
                 value_title: str, height: int, group_axis: Mapping[str, Any] | None = None,
                 tooltip: Sequence[str] = (), text_mark: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Bars side by side within each ``group`` (one per ``member``, coloured), each with its figure; a
    click selects the bar's ``pick_field``."""
    along, across, offset = ("y", "x", "yOffset") if horizontal else ("x", "y", "xOffset")
    axis = {"labelOverlap": False, **(group_axis or {})}
    encoding = {
        along: {"field": group, "type": "nominal", "sort": list(group_sort), "title": None, "axis": axis},
        offset: {"field": member, "type": "nominal", "sort": list(member_sort)},
        across: {"field": value, "type": "quantitative", "title": value_title},
    }
    bars = {
        "mark": {"type": "bar", "cursor": "pointer"},
        "params": [pick([pick_field])],
        "encoding": {"color": {"field": member, "type": "nominal", "sort": list(member_sort),
                               "scale": {"domain": list(member_sort), "range": list(colors)}},
                     "tooltip": tooltips(rows, list(tooltip) or [group, member, value])},
    }
    text = {"mark": dict(text_mark or ({"type": "text", "align": "left", "dx": 3, "fontSize": 10} if horizontal
                                       else {"type": "text", "baseline": "bottom", "dy": -3})),
            "encoding": {"text": {"field": label, "type": "nominal"}}}
    return {"data": {"values": list(rows)}, "height": height, "encoding": encoding, "layer": [bars, text]}


def day_bars(rows: Rows, *, roomy: bool) -> dict[str, Any]:
    """Appeals per day (``day``, ``appeals``, ``label``, ``date``): every day named where they fit
    (``roomy``), else every other one; a click selects the bar's ``date``."""
    axis = {"labelAngle": -60, "labelOverlap": False if roomy else "parity"}
    encoding = {"x": {"field": "day", "type": "ordinal", "title": None, "axis": axis},
                "y": {"field": "appeals", "type": "quantitative", "title": "appeals"}}
    layers: list[dict[str, Any]] = [{
        "mark": {"type": "bar", "cursor": "pointer"}, "params": [pick(["date"])],
        "encoding": {"tooltip": tooltips(rows, ["date", "appeals"])},
    }]
    if roomy:
        layers.append({"mark": {"type": "text", "baseline": "bottom", "dy": -2, "fontSize": 9},
                       "encoding": {"text": {"field": "label", "type": "nominal"}}})
    return {"data": {"values": list(rows)}, "height": 300, "encoding": encoding, "layer": layers}


def trend_lines(rows: Rows, last_week: Rows, *, order: Sequence[str]) -> dict[str, Any]:
    """Cases opened per week (``week``, ``category``, ``cases``), a line per category named at its end;
    a click on a point selects its ``category``."""
    x = {"field": "week", "type": "ordinal", "title": "week (Monday)", "axis": {"labelAngle": 0, "labelOverlap": False}}
    y = {"field": "cases", "type": "quantitative", "title": "cases opened"}
    color = {"field": "category", "type": "nominal", "sort": list(order)}
    lines = {
        "mark": {"type": "line", "point": {"size": 60, "cursor": "pointer"}},
        "params": [pick(["category"])],
        "encoding": {"x": x, "y": y, "color": {**color, "legend": {"title": "category", "labelLimit": 260,
                                                                   "symbolLimit": 0}},
                     "tooltip": tooltips(rows, ["week", "category", "cases"])},
    }
    ends = {
        "data": {"values": list(last_week)},
        "mark": {"type": "text", "align": "left", "dx": 6, "fontSize": 10},
        "encoding": {"x": {"field": "week", "type": "ordinal"}, "y": {"field": "cases", "type": "quantitative"},
                     "color": {**color, "legend": None}, "text": {"field": "category", "type": "nominal"}},
    }
    return {"data": {"values": list(rows)}, "height": 360, "layer": [lines, ends]}


def paid_week_bars(rows: Rows, week_totals: Rows, *, measures: Sequence[str], colors: Sequence[str]) -> dict[str, Any]:
    """The value recovered per payout week, stacked by ``measure`` (``week``, ``measure``, ``USD``,
    ``label``, ``total``), each week's total written above it (``week_totals``: ``week``, ``USD``,
    ``label``); a click selects the bar's ``week``."""
    x = {"field": "week", "type": "ordinal", "title": "week of the payout (Monday)",
         "axis": {"labelAngle": 0, "labelOverlap": False}}
    bars = {
        "mark": {"type": "bar", "cursor": "pointer"},
        "params": [pick(["week"])],
        "encoding": {
            "x": x,
            "y": {"field": "USD", "type": "quantitative", "stack": True, "title": "USD"},
            "color": {"field": "measure", "type": "nominal", "sort": list(measures),
                      "scale": {"domain": list(measures), "range": list(colors)}},
            "tooltip": [{"field": "week", "type": "ordinal"}, {"field": "measure", "type": "nominal"},
                        {"field": "label", "type": "nominal"},
                        {"field": "total", "type": "nominal", "title": "value recovered"}],
        },
    }
    tops = {
        "data": {"values": list(week_totals)},
        "mark": {"type": "text", "baseline": "bottom", "dy": -3},
        "encoding": {"x": {"field": "week", "type": "ordinal"}, "y": {"field": "USD", "type": "quantitative"},
                     "text": {"field": "label", "type": "nominal"}},
    }
    return {"data": {"values": list(rows)}, "height": 320, "layer": [bars, tops]}
