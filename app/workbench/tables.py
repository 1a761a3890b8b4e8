"""The queue table: one row per case, SLA state spelled out and coloured.

An approved case waiting for its payout shows the payout SLA (``policy.payout_sla_hours`` from its
approval) instead of the decision SLA, which no longer runs once a person decided.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st

from app.workbench import ui
from app.workbench.payout_reads import PayoutClock
from recovery.queues import ACTIVE_STATUSES, QueueRow
from recovery.vocabulary import CaseStatus

#: case id -> the payout SLA clock of its approved, unpaid payout
PayoutClocks = Mapping[int, PayoutClock]

COLUMNS = ["reference", "status", "category", "network", "found on", "asset", "user", "origin", "assignee", "flags",
           "value USD", "age", "SLA"]
#: pixels per character of the table's font, and the cell's padding
CHAR_PX = 7.5
PAD_PX = 26
OVERDUE = "background-color: #f8d7da"
DUE_SOON = "background-color: #fff3cd"


def payout_clock(row: QueueRow, clocks: PayoutClocks | None) -> PayoutClock | None:
    if not clocks or row.status != CaseStatus.APPROVED.value:
        return None
    return clocks.get(row.id)


def sla_text(row: QueueRow, now: datetime, clocks: PayoutClocks | None = None) -> str:
    clock = payout_clock(row, clocks)
    if clock is not None:
        waited = ui.duration(now - clock.approved_at)
        if clock.overdue(now):
            return f"payout overdue {ui.duration(now - clock.due_at)} (approved {waited} ago)"
        return f"payout due in {ui.duration(clock.due_at - now)} (approved {waited} ago)"
    if row.sla_due_at is None or row.status not in ACTIVE_STATUSES:
        return "-"
    if row.breached(now):
        return "overdue " + ui.duration(now - row.sla_due_at)
    return "due in " + ui.duration(row.sla_due_at - now)


def queue_frame(rows: list[QueueRow], now: datetime, clocks: PayoutClocks | None = None) -> pd.DataFrame:
    records: list[dict[str, Any]] = [
        {
            "reference": row.reference,
            "status": row.status,
            "category": row.category or "-",
            "network": row.network,
            # where the funds were found: the claimed network unless the chain check found them elsewhere
            "found on": row.deposit_network or "-",
            "asset": row.asset,
            "user": row.user_id,
            "origin": row.origin,
            "assignee": row.assignee or "-",
            "flags": ", ".join(row.flags) or "-",
            "value USD": ui.money(row.value_usd),
            "age": ui.duration(now - row.created_at),
            "SLA": sla_text(row, now, clocks),
        }
        for row in rows
    ]
    return pd.DataFrame(records, columns=COLUMNS)


def payout_overdue(row: QueueRow, now: datetime, clocks: PayoutClocks | None) -> bool:
    clock = payout_clock(row, clocks)
    return clock is not None and clock.overdue(now)


def row_colors(rows: list[QueueRow], now: datetime, clocks: PayoutClocks | None = None) -> list[str]:
    """Red past the SLA (the payout SLA for an approved case), amber when due within 12 hours."""
    return [OVERDUE if r.breached(now) or payout_overdue(r, now, clocks) else DUE_SOON if r.due_soon(now) else ""
            for r in rows]


def queue_table(rows: list[QueueRow], now: datetime, clocks: PayoutClocks | None = None) -> Any:
    colors = row_colors(rows, now, clocks)
    return queue_frame(rows, now, clocks).style.apply(lambda _column: colors, axis=0, subset=["age", "SLA"])


def column_config(frame: pd.DataFrame) -> dict[str, Any]:
    """Column configs that fit each column to its longest value (header included) so that no status,
    flag or SLA is cut; the reference stays in view when the table scrolls sideways."""
    config: dict[str, Any] = {}
    for name in frame.columns:
        longest = max([len(str(name)), *(len(str(v)) for v in frame[name])])
        width = int(longest * CHAR_PX + PAD_PX)
        if name == "value USD":
            config[name] = st.column_config.TextColumn(name, width=width, alignment="right")
        else:
            config[name] = st.column_config.TextColumn(name, width=width)
    config["reference"] = st.column_config.TextColumn(
        "reference", width=config["reference"]["width"], pinned=True,
        help="Click a reference to open the case.")
    return config

