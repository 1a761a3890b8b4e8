"""The queue's state as URL query parameters, and back: filters, sort, page size, page, search.

Pure functions (no Streamlit): the page (``app/workbench/views/queue.py``) writes
:func:`to_params` of its widgets into ``st.query_params`` and reads :func:`from_params` of the
address when it is opened, reloaded, followed from a shared link or reached with the browser's
back button. Only what differs from the default is written; anything unknown or invalid in an
address is dropped (the default stands), never an error.

| parameter | widget | value |
|---|---|---|
| ``status`` | Status | comma-separated codes; ``all`` for any status (absent: the open statuses) |
| ``category``, ``network``, ``asset``, ``origin``, ``flags`` | the multiselects | comma-separated codes |
| ``assignee`` | Assignee | ``me``, ``none`` (unassigned) or a username |
| ``age``, ``sla`` | Age, SLA | the choice's label (``1-3 days``, ``breached``) |
| ``approval`` | Sent for approval | ``1`` |
| ``q`` | Search | the text |
| ``sort``, ``desc``, ``size``, ``page`` | Sort by, Descending, Per page, the page | key, ``1``, a size, a number |
| ``evidence`` | Evidence waiting | ``1`` |
| ``filed``, ``paid`` | Filed, Paid out (UTC) | ``2026-12-01`` or ``2026-11-30..2026-12-06`` (first and last day) |
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any
from urllib.parse import parse_qsl, urlencode

from recovery.queues import ACTIVE_STATUSES, SORT_KEYS
from recovery.vocabulary import CaseStatus, Category, Flag, Origin

AGE_CHOICES: dict[str, tuple[int | None, int | None]] = {
    "any age": (None, None),
    "under 1 day": (None, 1),
    "1-3 days": (1, 3),
    "3-7 days": (3, 7),
    "1-4 weeks": (7, 28),
    "over 4 weeks": (28, None),
}
SLA_CHOICES: dict[str, bool | None] = {"any": None, "breached": True, "not breached": False}
PAGE_SIZES: tuple[int, ...] = (25, 50, 100, 200)
ANYONE = "(anyone)"
ME = "(me)"
UNASSIGNED_LABEL = "(unassigned)"
MAX_TEXT = 256

#: the multiselects: widget key -> URL parameter
LISTS: dict[str, str] = {"q_status": "status", "q_category": "category", "q_network": "network",
                         "q_asset": "asset", "q_origin": "origin", "q_flags": "flags"}
#: every widget key the URL carries
KEYS: tuple[str, ...] = (*LISTS, "q_assignee", "q_age", "q_sla", "q_approval", "q_text", "q_sort", "q_desc",
                         "q_page_size", "q_page", "q_evidence_waiting", "q_filed", "q_paid")
#: the day ranges: widget key -> URL parameter (a widget holds a tuple of 0, 1 or 2 dates)
DAYS: dict[str, str] = {"q_filed": "filed", "q_paid": "paid"}
#: every URL parameter of the queue
PARAMS: tuple[str, ...] = (*LISTS.values(), "assignee", "age", "sla", "approval", "q", "sort", "desc", "size",
                           "page", "evidence", *DAYS.values())


@dataclass(frozen=True)
class Choices:
    """What the page offers (the configured networks and assets, the operators)."""

    networks: Sequence[str]
    assets: Sequence[str]
    operators: Sequence[str]

    def allowed(self, key: str) -> Sequence[str]:
        return {
            "q_status": [s.value for s in CaseStatus], "q_category": [c.value for c in Category],
            "q_network": list(self.networks), "q_asset": list(self.assets),
            "q_origin": [o.value for o in Origin], "q_flags": [f.value for f in Flag],
        }[key]


def defaults() -> dict[str, Any]:
    """Every widget's default value (the open backlog, most urgent first)."""
    return {
        "q_status": list(ACTIVE_STATUSES), "q_category": [], "q_network": [], "q_asset": [], "q_origin": [],
        "q_flags": [], "q_assignee": ANYONE, "q_age": "any age", "q_sla": "any", "q_approval": False,
        "q_text": "", "q_sort": SORT_KEYS[1], "q_desc": False, "q_page_size": 50, "q_page": 1, "q_filed": (),
        "q_paid": (),
        "q_evidence_waiting": False,
    }


def _truthy(value: str) -> bool:
    return value.strip().lower() in ("1", "true", "yes", "on")


def from_params(params: Mapping[str, str], choices: Choices) -> dict[str, Any]:
    """The widget values a URL's parameters ask for, over the defaults (invalid values ignored)."""
    state = defaults()
    for key, name in LISTS.items():
        if name not in params:
            continue
        raw = params[name].strip()
        if key == "q_status" and raw == "all":
            state[key] = []
            continue
        allowed = choices.allowed(key)
        wanted = [v for v in dict.fromkeys(p.strip() for p in raw.split(",")) if v in allowed]
        if wanted or not raw:
            state[key] = wanted
    assignee = params.get("assignee", "").strip()
    if assignee == "me":
        state["q_assignee"] = ME
    elif assignee == "none":
        state["q_assignee"] = UNASSIGNED_LABEL
    elif assignee in choices.operators:
        state["q_assignee"] = assignee
    if params.get("age") in AGE_CHOICES:
        state["q_age"] = params["age"]
    if params.get("sla") in SLA_CHOICES:
        state["q_sla"] = params["sla"]
    state["q_approval"] = _truthy(params.get("approval", ""))
    state["q_text"] = params.get("q", "").strip()[:MAX_TEXT]
    if params.get("sort") in SORT_KEYS:
        state["q_sort"] = params["sort"]
    state["q_desc"] = _truthy(params.get("desc", ""))
    size = params.get("size", "")
    if size.isdigit() and int(size) in PAGE_SIZES:
        state["q_page_size"] = int(size)
    page = params.get("page", "")
    if page.isdigit() and int(page) >= 1:
        state["q_page"] = min(int(page), 100_000)
    state["q_evidence_waiting"] = _truthy(params.get("evidence", ""))
    for key, name in DAYS.items():
        days = parse_days(params.get(name, ""))
        if days is not None:
            state[key] = days
    return state


def parse_days(text: str) -> tuple[date, date] | None:
    """``2026-12-01`` or ``2026-11-30..2026-12-06`` as (first, last); None if not that or backwards."""
    first, dots, last = text.strip().partition("..")
    try:
        days = (date.fromisoformat(first), date.fromisoformat(last if dots else first))
    except ValueError:
        return None
    return days if days[0] <= days[1] else None


def days_text(days: Sequence[date]) -> str:
    """A widget's 0, 1 or 2 dates as the parameter's text (one day alone, or first..last)."""
    if not days:
        return ""
    first, last = days[0], days[-1]
    return first.isoformat() if first == last else f"{first.isoformat()}..{last.isoformat()}"


def day_range(days: Sequence[date]) -> tuple[date, date] | None:
    """A widget's dates as the filter's (first, last); None for none (a range being picked has one)."""
    return (days[0], days[-1]) if days else None


def to_params(state: Mapping[str, Any]) -> dict[str, str]:
    """The URL parameters of the widgets' values: only what differs from the default."""
    base = defaults()
    params: dict[str, str] = {}
    for key, name in LISTS.items():
        value = list(state.get(key, base[key]))
        if value != base[key]:
            params[name] = ",".join(value) if value else ("all" if key == "q_status" else "")
    assignee = state.get("q_assignee", ANYONE)
    if assignee == ME:
        params["assignee"] = "me"
    elif assignee == UNASSIGNED_LABEL:
        params["assignee"] = "none"
    elif assignee != ANYONE:
        params["assignee"] = str(assignee)
    for key, name in (("q_age", "age"), ("q_sla", "sla"), ("q_sort", "sort")):
        if state.get(key, base[key]) != base[key]:
            params[name] = str(state[key])
    for key, name in (("q_approval", "approval"), ("q_desc", "desc"), ("q_evidence_waiting", "evidence")):
        if state.get(key):
            params[name] = "1"
    text = str(state.get("q_text", "")).strip()
    if text:
        params["q"] = text
    for key, name in DAYS.items():
        params[name] = days_text(tuple(state.get(key) or ()))
    if int(state.get("q_page_size", 50)) != base["q_page_size"]:
        params["size"] = str(state["q_page_size"])
    if int(state.get("q_page", 1)) > 1:
        params["page"] = str(state["q_page"])
    return {name: params[name] for name in PARAMS if name in params and params[name] != ""}


def query_string(params: Mapping[str, str]) -> str:
    """Parameters as a saved view stores them (``status=in_review&q=...``)."""
    return urlencode([(name, params[name]) for name in PARAMS if name in params])


def parse_query(query: str) -> dict[str, str]:
    return {name: value for name, value in parse_qsl(query, keep_blank_values=True) if name in PARAMS}


def queue_params(params: Mapping[str, Any]) -> dict[str, str]:
    """The queue's own parameters among a URL's (the last value of a repeated one)."""
    found: dict[str, str] = {}
    for name in PARAMS:
        if name in params:
            value = params[name]
            found[name] = str(value[-1] if isinstance(value, list) and value else value)
    return found
