"""Money and times as plain values, with nothing but the standard library: the exact decimal forms
and the JSON form of details, cases and events. :mod:`recovery.dbtypes` stores money with these;
the read commands that never import SQLAlchemy (:mod:`recovery.case_rows`) print with them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import Decimal
from enum import Enum
from typing import Any


def canonical_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (``1.500`` -> ``1.5``)."""
    if value == value.to_integral_value():
        return value.quantize(Decimal(1))
    return value.normalize()


def decimal_text(value: Decimal) -> str:
    """A plain decimal string for JSON and CSV (never ``1E+2``)."""
    return format(canonical_decimal(value), "f")


def jsonable(value: Any) -> Any:
    """Details as plain JSON: Decimals as plain strings, datetimes in UTC ISO form, enums as values (the
    audit events' details, and the JSON the CLI prints of cases and events)."""
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = [jsonable(v) for v in value]
        return sorted(items, key=str) if isinstance(value, set | frozenset) else items
    if isinstance(value, float):
        raise TypeError("floats are not allowed in audit details; use Decimal or str")
    return value
