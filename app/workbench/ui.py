"""Rendering helpers shared by the pages.

The one rule: text that came from a user, an operator or a chain (messages, notes, token
symbols, references typed in a box, error details that quote input) never goes through Markdown
or HTML. It is shown with ``st.text``/``st.code`` or inside dataframes; Markdown-rendering calls
(``st.markdown``, ``st.error``, titles, captions, labels) only ever receive fixed text or values
the system generated and validated (references, status codes, network names from the config).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pandas as pd
import streamlit as st

from recovery.dbtypes import decimal_text
from recovery.errors import Conflict, Forbidden, InvalidTransition, NotFound, ServiceError, ValidationFailed

FLASH_KEY = "wb_flash"


@dataclass(frozen=True)
class Flash:
    kind: str  # success | info | warning | error
    title: str  # fixed text only (rendered as Markdown)
    details: tuple[str, ...] = field(default_factory=tuple)  # shown verbatim


def flash(kind: str, title: str, details: Iterable[str] = ()) -> None:
    """Queue a message for the next render of the page (actions run in callbacks before it)."""
    st.session_state.setdefault(FLASH_KEY, []).append(Flash(kind, title, tuple(details)))


def show_flashes() -> None:
    for item in st.session_state.pop(FLASH_KEY, []):
        show = {"success": st.success, "info": st.info, "warning": st.warning}.get(item.kind, st.error)
        show(item.title)
        for line in item.details:
            st.text(line)


def service_error(exc: ServiceError, *, seen_version: int | None = None) -> None:
    """Turn a refusal of the service layer into a message the operator can act on."""
    if isinstance(exc, Conflict) and exc.current_version is not None:
        flash(
            "warning",
            "Someone else changed this case since you opened it, so nothing was changed. "
            "The page now shows the current case: review it and try again.",
            [f"You saw version {seen_version}; it is now version {exc.current_version}."]
            if seen_version is not None else [str(exc)],
        )
    elif isinstance(exc, ValidationFailed):
        flash("error", "Please correct the following and try again:", [str(e) for e in exc.errors])
    elif isinstance(exc, Forbidden):
        flash("error", "Not allowed:", [str(exc)])
    elif isinstance(exc, InvalidTransition):
        flash("error", "This action does not apply to the case as it is now:", [str(exc)])
    elif isinstance(exc, NotFound):
        flash("error", "Not found:", [str(exc)])
    else:
        flash("error", "The action failed:", [str(exc)])


# ------------------------------------------------------------------------------- formatting
def money(value: Decimal | None, unit: str = "") -> str:
    if value is None:
        return "-"
    text = decimal_text(value)
    return f"{text} {unit}".strip()


def usd(value: Decimal | None) -> str:
    if value is None:
        return "-"
    return f"{value.quantize(Decimal('0.01')):,} USD"


def when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value is not None else "-"


def duration(delta: timedelta) -> str:
    seconds = int(delta.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    if days:
        return f"{sign}{days}d {hours}h"
    return f"{sign}{hours}h {rest // 60}m"


def field_table(rows: Sequence[tuple[str, Any]], *, key: str | None = None) -> None:
    """Label/value pairs as a two-column table (values shown as plain text, never Markdown)."""
    frame = pd.DataFrame(
        [{"field": label, "value": "-" if value is None or value == "" else str(value)} for label, value in rows]
    )
    st.dataframe(frame, hide_index=True, width="stretch", key=key, height=38 + 35 * max(1, len(rows)),
                 column_config={"field": st.column_config.TextColumn(width="small")})


def table(rows: Sequence[Mapping[str, Any]], columns: Sequence[str], *, key: str | None = None,
          empty: str = "Nothing here.", max_rows: int = 20) -> None:
    if not rows:
        st.caption(empty)
        return
    frame = pd.DataFrame([{c: _cell(row.get(c)) for c in columns} for row in rows], columns=list(columns))
    st.dataframe(frame, hide_index=True, width="stretch", key=key, height=38 + 35 * min(len(rows), max_rows))


def _cell(value: Any) -> str:
    """Every cell as text: mixed columns stay displayable and nothing is interpreted."""
    if value is None:
        return "-"
    if isinstance(value, Decimal):
        return decimal_text(value)
    if isinstance(value, datetime):
        return when(value)
    if isinstance(value, list | tuple):
        return ", ".join(str(v) for v in value)
    if isinstance(value, dict):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def open_case(reference: str) -> None:
    """Make ``reference`` the case the Case page shows (call from a callback, then switch page)."""
    st.session_state["wb_case_ref"] = reference.strip().upper()
    st.session_state.pop("case_ref_input", None)
