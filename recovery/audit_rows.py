"""Rows follow events: replay each case's audit events and compare the result with its row.

Someone who can write the database but not the audit key can edit a case row (who is credited, the
status, the refund hash) without touching the chain; this check finds it. Each difference names
the case and the field. Fields an older event does not record (written before the event carried
them) are not compared.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from sqlmodel import Session, col, select

from recovery.models import Case, CaseEvent, Payout

__all__ = ["rows_against_events"]

_PAYOUT_FIELDS = ("network", "asset", "to_address", "to_user_id", "amount_units", "memo")


@dataclass
class _Replayed:
    events: int = 0
    status: str | None = None
    category: str | None = None
    override: str | None = None
    resolution: str | None = None
    credited_user_id: Any = field(default=None)
    credited_known: bool = False
    refund_tx_hash: str | None = None
    refund_known: bool = False
    approvals: dict[int, dict[str, Any]] = field(default_factory=dict)


def _events(session: Session, batch: int = 5000) -> Iterator[CaseEvent]:
    last = 0
    while True:
        rows = session.exec(select(CaseEvent).where(col(CaseEvent.id) > last).order_by(col(CaseEvent.id))
                            .limit(batch)).all()
        if not rows:
            return
        yield from rows
        last = rows[-1].id or last


def _replay(session: Session) -> dict[int, _Replayed]:
    states: dict[int, _Replayed] = {}
    for event in _events(session):
        if event.case_id is None:
            continue
        state = states.setdefault(event.case_id, _Replayed())
        state.events += 1
        if event.to_status is not None:
            state.status = event.to_status
        details = event.details or {}
        if event.action == "chain_result" and details.get("outcome") == "decided":
            state.category = state.override or details.get("category")
            state.resolution = details.get("resolution")
            if "credited_user_id" in details:
                state.credited_user_id, state.credited_known = details["credited_user_id"], True
        elif event.action == "override_category":
            state.override = state.category = details.get("category")
        elif event.action == "record_refund":
            state.refund_tx_hash, state.refund_known = details.get("refund_tx_hash"), True
        elif event.action == "refund_failed":
            state.refund_tx_hash, state.refund_known = None, True
        elif event.action == "approve" and isinstance(details.get("payout"), dict) and details.get("payout_id"):
            state.approvals[int(details["payout_id"])] = details["payout"]
    return states


def rows_against_events(session: Session) -> list[str]:
    """Every difference between a case row (and its payouts) and what its events say."""
    states = _replay(session)
    problems: list[str] = []
    cases = session.exec(select(Case).order_by(col(Case.id))).all()
    for case in cases:
        assert case.id is not None
        state = states.get(case.id)
        name = case.reference or f"case {case.id}"
        if state is None:
            problems.append(f"{name}: the row has no events at all")
            continue
        checks: list[tuple[str, Any, Any]] = [
            ("version", case.version, state.events), ("status", case.status, state.status),
        ]
        if state.category is not None:
            checks.append(("category", case.category, state.category))
        if state.resolution is not None:
            checks.append(("resolution", case.resolution, state.resolution))
        if state.credited_known:
            checks.append(("credited_user_id", case.credited_user_id, state.credited_user_id))
        if state.refund_known:
            checks.append(("refund_tx_hash", case.refund_tx_hash, state.refund_tx_hash))
        for field_name, row_value, event_value in checks:
            if row_value != event_value:
                problems.append(f"{name}: {field_name}: the row says {row_value!r}, its events say {event_value!r}")
    by_case = {c.id: c for c in cases}
    for payout in session.exec(select(Payout).order_by(col(Payout.id))).all():
        assert payout.id is not None
        state = states.get(payout.case_id)
        approved = state.approvals.get(payout.id) if state is not None else None
        owner = by_case.get(payout.case_id)
        name = f"{owner.reference if owner else payout.case_id} payout {payout.id}"
        if approved is None:
            problems.append(f"{name}: no approval event fixed this payout")
            continue
        for field_name in _PAYOUT_FIELDS:
            row_value = getattr(payout, field_name)
            row_text = str(int(row_value)) if field_name == "amount_units" else row_value
            if row_text != approved.get(field_name):
                problems.append(f"{name}: {field_name}: the row says {row_text!r}, its approval says "
                                f"{approved.get(field_name)!r}")
    return problems
