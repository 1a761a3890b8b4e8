"""The queue table: one row per case, SLA state spelled out and coloured."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import pandas as pd

from app.workbench import ui
from recovery.queues import ACTIVE_STATUSES, QueueRow

COLUMNS = ["reference", "status", "category", "network", "asset", "user", "assignee", "flags", "value USD", "age",
           "SLA"]
OVERDUE = "background-color: #f8d7da"
DUE_SOON = "background-color: #fff3cd"


def sla_text(row: QueueRow, now: datetime) -> str:
    if row.sla_due_at is None or row.status not in ACTIVE_STATUSES:
        return "-"
    if row.breached(now):
        return "overdue " + ui.duration(now - row.sla_due_at)
    return "due in " + ui.duration(row.sla_due_at - now)


def queue_frame(rows: list[QueueRow], now: datetime) -> pd.DataFrame:
    records: list[dict[str, Any]] = [
        {
            "reference": row.reference,
            "status": row.status,
            "category": row.category or "-",
            "network": row.network,
            "asset": row.asset,
            "user": row.user_id,
            "assignee": row.assignee or "-",
            "flags": ", ".join(row.flags) or "-",
            "value USD": ui.money(row.value_usd),
            "age": ui.duration(now - row.created_at),
            "SLA": sla_text(row, now),
        }
        for row in rows
    ]
    return pd.DataFrame(records, columns=COLUMNS)


def row_colors(rows: list[QueueRow], now: datetime) -> list[str]:
    """Red past the SLA, amber when due within 12 hours."""
    return [OVERDUE if r.breached(now) else DUE_SOON if r.due_soon(now) else "" for r in rows]


def queue_table(rows: list[QueueRow], now: datetime) -> Any:
    colors = row_colors(rows, now)
    return queue_frame(rows, now).style.apply(lambda _column: colors, axis=0, subset=["age", "SLA"])
