"""JSON columns are written and read with orjson, without ever rounding a wide integer."""

from __future__ import annotations

import json
from typing import Any

import pytest

from recovery.db import json_text
from recovery.public import json_loads

WIDE = 2**200 + 12345


@pytest.mark.parametrize("value", [
    {"a": 1, "b": [1, 2, None], "c": "é", "d": True},
    {"amount_units": WIDE, "memo": "12345678901234567890123"},
    {"n": -(2**63), "m": 2**64 - 1},
    [],
    "text",
    None,
])
def test_json_columns_round_trip_exactly(value: Any) -> None:
    text = json_text(value)

    assert json.loads(text) == value
    assert json_loads(text) == value
    assert json_loads(text.encode()) == value


def test_a_wide_integer_is_never_read_as_a_float() -> None:
    read = json_loads(json.dumps({"units": WIDE}))

    assert read["units"] == WIDE and isinstance(read["units"], int)


def test_integer_keys_are_written_as_text_as_the_standard_library_does() -> None:
    assert json.loads(json_text({1: "x"})) == {"1": "x"}
