"""Money and times as plain values, with nothing but the standard library: the exact decimal forms
and the JSON form of details, cases and events. :mod:`recovery.dbtypes` stores money with these;
the read commands that never import SQLAlchemy (:mod:`recovery.case_rows`) print with them."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from decimal import (
    MAX_EMAX,
    MIN_EMIN,
    ROUND_HALF_EVEN,
    Context,
    Decimal,
    DivisionByZero,
    Inexact,
    InvalidOperation,
    Overflow,
)
from enum import Enum
from typing import Any, Final

#: a context in which any rounding is an error (prec 400 holds any uint256 amount at any scale)
EXACT: Final = Context(
    prec=400,
    rounding=ROUND_HALF_EVEN,
    traps=[InvalidOperation, DivisionByZero, Overflow, Inexact],
    Emax=999_999,
    Emin=-999_999,
)


_ONE: Final = Decimal(1)


def exact_context() -> Context:
    """A context in which any rounding is an error: +, -, * of money must be exact (a fresh copy:
    building one from its arguments cost six times as much, several times per decision)."""
    return EXACT.copy()


def canonical_decimal(value: Decimal) -> Decimal:
    """Drop trailing zeros without switching to exponent notation (``1.500`` -> ``1.5``), exactly.

    In a context as wide as the value: the default one (28 digits) rounded a 30-digit amount (a
    large-supply token with 18 decimals) and refused an integer of 29 digits or more.
    """
    if not value.is_finite():
        return value
    try:  # EXACT holds any amount the tables hold (400 digits), without building a context per call
        return _without_trailing_zeros(value, EXACT)
    except (Inexact, InvalidOperation):  # wider still: a context sized to the value
        _, digits, exponent = value.as_tuple()
        assert isinstance(exponent, int)
        return _without_trailing_zeros(value, Context(prec=len(digits) + max(exponent, 0) + 1, Emax=MAX_EMAX,
                                                      Emin=MIN_EMIN))


def _without_trailing_zeros(value: Decimal, context: Context) -> Decimal:
    if value == value.to_integral_value(context=context):
        return value.quantize(_ONE, context=context)
    return value.normalize(context=context)


def plain_decimal_text(value: Decimal) -> str:
    """``format(value, "f")``, exactly: ``str`` where it has no exponent (the same digits, in half the
    time: a decision writes some twenty amounts), else the ``f`` format."""
    text = str(value)
    return text if "E" not in text else format(value, "f")


def decimal_text(value: Decimal) -> str:
    """A plain decimal string for JSON and CSV (never ``1E+2``)."""
    return plain_decimal_text(canonical_decimal(value))


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
