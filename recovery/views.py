"""Plain-JSON shapes of a case for the operator read-outs (CLI, exports). Decimal amounts are strings."""

from __future__ import annotations

from typing import Any

from recovery.case_rows import CASE_KEYS, EVENT_KEYS
from recovery.dbtypes import jsonable
from recovery.models import Case, CaseEvent


def case_json(case: Case) -> dict[str, Any]:
    data: dict[str, Any] = {key: getattr(case, key) for key in CASE_KEYS}
    data["flags"] = list(case.flags)
    result = jsonable(data)
    assert isinstance(result, dict)
    return result


def event_json(event: CaseEvent) -> dict[str, Any]:
    result = jsonable({key: getattr(event, key) for key in EVENT_KEYS})
    assert isinstance(result, dict)
    return result
