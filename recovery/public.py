"""What a user may see of their own appeal (the JSON API's appeal object).

Built from whitelists, never by removing fields from an internal view: only the flags a user may
see (``amount_mismatch``, ``partial_payment``, ``expired``, ``not_economical``), the reasons that are
not internal (with no user ids in their evidence), the fee quote, and a timeline made of the
events that concern the user. Operator names, internal notes, assignments, category overrides,
other users (``contested``, owners, credits to others) and node errors never appear.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from decimal import Decimal
from types import SimpleNamespace
from typing import Any, Protocol, cast

from sqlalchemy import bindparam, func
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import decimal_text
from recovery.models import Case, CaseEvent
from recovery.rules import Decision, user_flags, user_reasons
from recovery.services import REJECTION_REASONS
from recovery.vocabulary import USER_VISIBLE_FLAGS, Origin

#: the user-facing fee breakdown: the terms of the quote (the rule's position in fees.toml is internal)
FEE_TERMS = (
    "amount",
    "price_usd",
    "value_usd",
    "flat_usd",
    "percent",
    "free_below_usd",
    "percent_term_usd",
    "min_usd",
    "max_usd",
    "fee_usd",
    "fee_value_usd",
    "net",
    "min_value_usd",
    "max_age_days",
    "capped",
    "below_min_value",
)

#: audit action -> user-facing timeline event; actions not listed here are never shown
TIMELINE_EVENTS: Mapping[str, str] = {
    "submit": "submitted",
    "chain_result": "checked",
    "request_info": "information_requested",
    "provide_info": "information_provided",
    "approve": "approved",
    "reject": "rejected",
    "record_refund": "refund_sent",
    "refund_confirmed": "refunded",
    "refund_failed": "refund_failed",
    "mark_credited": "credited",
    "close": "closed",
    "withdraw": "withdrawn",
    "reopen": "reopened",
}

_MESSAGES: Mapping[str, str] = {
    "submitted": "Appeal received.",
    "approved": "Your appeal was approved.",
    "refund_sent": "The refund was sent; it completes once the transaction is confirmed.",
    "refunded": "The refund transaction is confirmed.",
    "refund_failed": "The refund transaction failed on chain; it will be sent again.",
    "credited": "The amount was credited to the account.",
    "closed": "The appeal is closed.",
    "withdrawn": "You withdrew the appeal.",
    "reopened": "The appeal was reopened for review.",
}


class CaseRecord(Protocol):
    """The columns of a case the user-facing view reads (a ``Case`` or a plain row)."""

    reference: str | None
    status: str
    network: str
    deposit_network: str | None
    asset: str
    tx_hash: str
    deposit_address: str
    memo: str | None
    claimed_amount: Decimal | None
    category: str | None
    recoverable: str | None
    resolution: str | None
    flags: list[str]
    decision: dict[str, Any] | None
    amount: Decimal | None
    fee_amount: Decimal | None
    fee_asset: str | None
    fee_usd: Decimal | None
    net_amount: Decimal | None
    refund_network: str | None
    refund_tx_hash: str | None
    created_at: datetime
    updated_at: datetime


class EventRecord(Protocol):
    """The columns of an audit event the timeline reads (a ``CaseEvent`` or a plain row)."""

    action: str
    from_status: str | None
    to_status: str | None
    details: dict[str, Any]
    created_at: datetime


def _text(value: Decimal | None) -> str | None:
    return decimal_text(value) if value is not None else None


def _when(value: datetime) -> str:
    return value.astimezone(UTC).isoformat()


def _decision(case: CaseRecord) -> Decision | None:
    if not case.decision:
        return None
    try:
        return Decision.from_json(case.decision)
    except (KeyError, TypeError, ValueError):
        return None


def fee_quote(case: CaseRecord, decision: Decision | None) -> dict[str, Any] | None:
    """``{amount, asset, usd, breakdown}`` of the current decision, or None before one exists."""
    if decision is None or decision.fee is None:
        return None
    terms = decision.fee.to_json()
    breakdown = {key: _canonical(terms.get(key)) for key in FEE_TERMS}
    return {
        "amount": _text(case.fee_amount) if case.fee_amount is not None else _canonical(terms.get("fee")),
        "asset": case.fee_asset or decision.asset,
        "usd": _text(case.fee_usd) if case.fee_usd is not None else breakdown.get("fee_value_usd"),
        "breakdown": breakdown,
    }


def _canonical(value: Any) -> Any:
    """Decimal strings without trailing zeros ("20.000000" -> "20"); other values as they are."""
    if isinstance(value, str):
        try:
            return decimal_text(Decimal(value))
        except ArithmeticError:
            return value
    return value


def _checked_entry(details: Mapping[str, Any]) -> dict[str, Any]:
    if details.get("outcome") == "decided":
        category = details.get("category")
        return {"event": "checked", "category": category if isinstance(category, str) else None,
                "message": "The transaction was looked up on chain."}
    return {"event": "awaiting_chain", "category": None,
            "message": "The chain did not answer in time; it will be checked again automatically."}


def timeline(events: Iterable[EventRecord]) -> list[dict[str, Any]]:
    """The events that concern the user, oldest first; never who acted or any internal detail."""
    entries: list[dict[str, Any]] = []
    for event in events:
        name = TIMELINE_EVENTS.get(event.action)
        if name is None:
            continue
        details = event.details or {}
        entry: dict[str, Any] = {"at": _when(event.created_at), "event": name, "status": event.to_status,
                                 "message": _MESSAGES.get(name), "category": None, "reason_code": None,
                                 "refund_tx_hash": None}
        if event.action == "chain_result":
            if details.get("outcome") != "decided" and event.from_status == event.to_status:
                continue
            entry.update(_checked_entry(details))
        elif event.action in ("request_info", "provide_info"):
            message = details.get("message")
            entry["message"] = message if isinstance(message, str) else None
        elif event.action == "reject":
            code = details.get("reason_code")
            code = code if isinstance(code, str) and code in REJECTION_REASONS else "other"
            message = details.get("message")
            entry["reason_code"] = code
            entry["message"] = message if isinstance(message, str) and message else REJECTION_REASONS[code]
        elif event.action == "record_refund":
            refund = details.get("refund_tx_hash")
            entry["refund_tx_hash"] = refund if isinstance(refund, str) else None
        entries.append(entry)
    return entries


def appeal_view(case: CaseRecord, events: Sequence[EventRecord], config: Config | None = None) -> dict[str, Any]:
    """The appeal as its owner sees it. Decimal amounts are strings; times are UTC ISO 8601."""
    decision = _decision(case)
    network = config.networks.get(case.network) if config is not None else None
    found = case.deposit_network or (decision.network if decision is not None else None)
    flags = user_flags(decision) if decision is not None else []
    flags = sorted({*flags, *(f for f in case.flags if f in {v.value for v in USER_VISIBLE_FLAGS})})
    return {
        "reference": case.reference or "",
        "status": case.status,
        "network": case.network,
        "asset": case.asset,
        "tx_hash": case.tx_hash,
        "deposit_address": case.deposit_address,
        "memo": case.memo,
        "claimed_amount": _text(case.claimed_amount),
        "found_on_network": found,
        "amount": _text(case.amount),
        "category": case.category,
        "recoverable": case.recoverable,
        "resolution": case.resolution,
        "flags": flags,
        "fee": fee_quote(case, decision),
        "net_amount": _text(case.net_amount),
        "reasons": user_reasons(decision) if decision is not None else [],
        "refund_tx_hash": case.refund_tx_hash,
        "refund_network": case.refund_network if case.refund_tx_hash else None,
        "explorer_url": network.explorer_link(case.tx_hash) if network is not None else None,
        "timeline": timeline(events),
        "created_at": _when(case.created_at),
        "updated_at": _when(case.updated_at),
    }


# ---------------------------------------------------------------------------------------- reads

_CASES = Case.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]
_OWN_CASE = core_select(_CASES).where(_CASES.c.reference == bindparam("reference"),
                                      _CASES.c.user_id == bindparam("user_id"))
_CASE_EVENTS = core_select(_EVENTS).where(_EVENTS.c.case_id == bindparam("case_id")).order_by(_EVENTS.c.id)


def load_own(db: Database, user_id: str, reference: str) -> tuple[CaseRecord, list[EventRecord]] | None:
    """The user's case and its events as plain rows (the hot read path: no ORM objects built).

    Another user's case is None, exactly like a missing one.
    """
    with db.engine.connect() as connection:
        row = connection.execute(_OWN_CASE, {"reference": reference, "user_id": user_id}).mappings().first()
        if row is None:
            return None
        events = connection.execute(_CASE_EVENTS, {"case_id": row["id"]}).mappings().all()
    return (cast(CaseRecord, SimpleNamespace(**row)),
            [cast(EventRecord, SimpleNamespace(**event)) for event in events])


def own_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[CaseEvent]]:
    if not case_ids:
        return {}
    rows = session.exec(
        select(CaseEvent).where(col(CaseEvent.case_id).in_(list(case_ids))).order_by(col(CaseEvent.id))
    ).all()
    result: dict[int, list[CaseEvent]] = {case_id: [] for case_id in case_ids}
    for event in rows:
        result[event.case_id].append(event)
    return result


def list_own(session: Session, user_id: str, *, limit: int, offset: int) -> tuple[list[Case], int]:
    """The user's cases, newest first, and how many there are in all."""
    total = int(session.exec(select(func.count()).select_from(Case).where(Case.user_id == user_id)).one())
    cases = list(
        session.exec(
            select(Case).where(Case.user_id == user_id).order_by(col(Case.id).desc()).offset(offset).limit(limit)
        ).all()
    )
    return cases, total


def find_existing(session: Session, user_id: str, network: str, tx_hash: str) -> Case | None:
    """The user's own appeal for this transfer (the idempotency key), if any."""
    return session.exec(
        select(Case).where(Case.user_id == user_id, Case.network == network, Case.tx_hash == tx_hash)
    ).first()


def appeals_created_since(session: Session, user_id: str, since: datetime) -> list[datetime]:
    """Creation times of the user's appeals after ``since``, oldest first (for the rate limit)."""
    return list(
        session.exec(
            select(Case.created_at)
            .where(Case.user_id == user_id, Case.origin == Origin.APPEAL.value, Case.created_at > since)
            .order_by(col(Case.created_at))
        ).all()
    )
