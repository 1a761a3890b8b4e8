"""Exact sums of money columns in SQL, on both databases: PostgreSQL sums its NUMERIC; SQLite, whose
arithmetic would turn the stored decimal text into floats, lists the texts of a group for Python to
add as ``Decimal``. :func:`money_total` goes into the SELECT, :func:`exact_sum` reads what it gave."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import String, cast, func

from recovery.db import Database


def money_total(db: Database, column: Any) -> Any:
    """A group's amounts, exactly, as text."""
    if db.is_sqlite:
        return func.group_concat(column, ",")
    return cast(func.sum(column), String)


def exact_sum(db: Database, total: str | None) -> Decimal:
    """The ``Decimal`` sum of what :func:`money_total` gave for a group (0 for none)."""
    if total is None:
        return Decimal(0)
    if db.is_sqlite:
        return sum((Decimal(value) for value in total.split(",") if value), Decimal(0))
    return Decimal(total)
