"""What a user may see of their own appeal (the JSON API's appeal object).

Built from whitelists, never by removing fields from an internal view: only the flags a user may
see (``amount_mismatch``, ``partial_payment``, ``expired``, ``not_economical``), the reasons that are
not internal (with no user ids in their evidence), the fee quote, and a timeline made of the
events that concern the user. Operator names, internal notes, assignments, category overrides,
other users (``contested``, owners, credits to others) and node errors never appear.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from types import SimpleNamespace
from typing import Any, Protocol, cast

import orjson
from sqlalchemy import bindparam, create_engine, func
from sqlalchemy import event as sa_event
from sqlalchemy import select as core_select
from sqlmodel import Session, col, select

from recovery import replies
from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import decimal_text
from recovery.evidence import MEDIA_TYPES
from recovery.intake import AppealDraft
from recovery.models import Case, CaseEvent
from recovery.rules import public_evidence
from recovery.services import CLAIM_ACTION, REJECTION_REASONS, case_for_appeal
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

#: audit action -> user-facing timeline event; actions not listed here are never shown. A case
#: ``recovery scan`` opened starts with the system's ``submit`` (origin ``detected``), shown as
#: ``detected``; an appeal that took over a case held for a shared address (``claim``) as ``submitted``.
TIMELINE_EVENTS: Mapping[str, str] = {
    "submit": "submitted",
    CLAIM_ACTION: "submitted",
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
    "remind_info": "information_reminder",
    "close_unanswered": "closed",
}

_MESSAGES: Mapping[str, str] = {
    "submitted": "Appeal received.",
    "detected": ("We found this deposit on {network} and opened this case for you: you do not need to file an "
                 "appeal. We check it on chain and the appeal team reviews it; each step and the decision "
                 "appear here."),
    "detected_shared": ("We found this deposit on {network}: it reached a shared deposit address without a memo "
                        "that identifies an account, so we opened this case to hold it until its sender comes "
                        "forward."),
    "claimed": ("Appeal received and linked to the case we opened for this deposit; the appeal team will "
                "confirm that you sent it before crediting it to your account."),
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
    origin: str
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
    sla_due_at: datetime | None
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


@dataclass(frozen=True)
class _UserDecision:
    """The parts of a stored decision a user may see, read straight from its JSON.

    Only what the view shows is read (the full ``Decision.from_json`` parses every transfer and
    amount of the evidence, which the user never sees); a decision whose shape is wrong is treated as
    no decision, as before.
    """

    network: str | None
    asset: str | None
    flags: list[str]
    reasons: list[dict[str, Any]]
    fee_terms: Mapping[str, Any] | None


_VISIBLE_FLAG_VALUES = frozenset(flag.value for flag in USER_VISIBLE_FLAGS)


def _optional_text(data: Mapping[str, Any], key: str) -> str | None:
    value = data.get(key)
    if value is not None and not isinstance(value, str):
        raise TypeError(key)
    return value


def _user_decision(case: CaseRecord) -> _UserDecision | None:
    data = case.decision
    if not data:
        return None
    try:
        if not isinstance(data, Mapping):
            raise TypeError("decision")
        flags = data.get("flags") or []
        reasons = data.get("reasons") or []
        fee = data.get("fee")
        if not isinstance(flags, list) or not isinstance(reasons, list) or not isinstance(fee, Mapping | None):
            raise TypeError("decision")
        shown = []
        for reason in reasons:
            code, text, evidence = reason["code"], reason["text"], reason.get("evidence") or {}
            if not isinstance(code, str) or not isinstance(text, str) or not isinstance(evidence, Mapping):
                raise TypeError("reason")
            if not reason.get("internal", False):
                shown.append({"code": code, "text": text, "evidence": public_evidence(evidence)})
        return _UserDecision(
            network=_optional_text(data, "network"),
            asset=_optional_text(data, "asset"),
            flags=[flag for flag in flags if isinstance(flag, str) and flag in _VISIBLE_FLAG_VALUES],
            reasons=shown,
            fee_terms=fee,
        )
    except (KeyError, TypeError, ValueError):
        return None


def fee_quote(case: CaseRecord, decision: _UserDecision | None) -> dict[str, Any] | None:
    """``{amount, asset, usd, breakdown}`` of the current decision, or None before one exists."""
    if decision is None or decision.fee_terms is None:
        return None
    terms = decision.fee_terms
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
        return _canonical_text(value)
    return value


@lru_cache(maxsize=8192)
def _canonical_text(value: str) -> str:
    try:
        return decimal_text(Decimal(value))
    except ArithmeticError:
        return value


def _checked_entry(details: Mapping[str, Any]) -> dict[str, Any]:
    if details.get("outcome") == "decided":
        category = details.get("category")
        return {"event": "checked", "category": category if isinstance(category, str) else None,
                "message": "The transaction was looked up on chain."}
    return {"event": "awaiting_chain", "category": None,
            "message": "The chain did not answer in time; it will be checked again automatically."}


def _detected_entry(details: Mapping[str, Any]) -> dict[str, Any]:
    """The opening of a case ``recovery scan`` found: where the deposit landed and what comes next."""
    network = details.get("network")
    where = network if isinstance(network, str) and network else "chain"
    key = "detected_shared" if details.get("shared_address") is True else "detected"
    return {"event": "detected", "message": _MESSAGES[key].format(network=where)}


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
        if event.action == "submit" and details.get("origin") == Origin.DETECTED.value:
            entry.update(_detected_entry(details))
        elif event.action == CLAIM_ACTION:
            entry["message"] = _MESSAGES["claimed"]
        elif event.action == "chain_result":
            if details.get("outcome") != "decided" and event.from_status == event.to_status:
                continue
            entry.update(_checked_entry(details))
        elif event.action in ("request_info", "provide_info", "remind_info", "close_unanswered"):
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


#: the conversation's audit actions: (who, what)
_CONVERSATION: Mapping[str, tuple[str, str]] = {
    "request_info": ("team", "question"),
    "remind_info": ("team", "reminder"),
    "provide_info": ("you", "answer"),
    "close_unanswered": ("team", "closed_unanswered"),
}


def _attachments(details: Mapping[str, Any]) -> list[dict[str, Any]]:
    shown = []
    for item in details.get("attachments") or []:
        if isinstance(item, Mapping) and item.get("media_type") in MEDIA_TYPES and isinstance(
                item.get("sha256"), str) and isinstance(item.get("size"), int):
            name = item.get("file_name")
            shown.append({"file_name": name if isinstance(name, str) else None, "media_type": item["media_type"],
                          "size": item["size"], "sha256": item["sha256"]})
    return shown


def conversation(events: Iterable[EventRecord]) -> list[dict[str, Any]]:
    """The team's questions and reminders and the user's answers, oldest first (never who wrote them)."""
    entries = []
    for event in events:
        kind = _CONVERSATION.get(event.action)
        details = event.details or {}
        message = details.get("message")
        if kind is None or not isinstance(message, str):
            continue
        entries.append({"at": _when(event.created_at), "by": kind[0], "kind": kind[1], "message": message,
                        "attachments": _attachments(details)})
    return entries


def open_question(case: CaseRecord, events: Sequence[EventRecord], config: Config | None) -> dict[str, Any] | None:
    """The question waiting for an answer (``needs_info``), or the one whose answer would reopen a
    case closed unanswered; with the dates of the reminder and of the closing (or of the end of the
    grace period) where the policy is known."""
    asked = next((e for e in reversed(events) if e.action == "request_info"), None)
    if asked is None or not isinstance((asked.details or {}).get("message"), str):
        return None
    last = events[-1] if events else None
    closed_unanswered = case.status == "closed" and last is not None and last.action == "close_unanswered"
    if case.status != "needs_info" and not closed_unanswered:
        return None
    policy = config.policy if config is not None else None
    reminder_at = closes_at = None
    if policy is not None and closed_unanswered and last is not None:
        closes_at = _when(replies.reopen_until(last.created_at, policy))
    elif policy is not None:
        reminded = any(e.action == replies.REMINDED for e in events if e.created_at >= asked.created_at)
        if not reminded:
            reminder_at = _when(replies.reminder_due(asked.created_at, policy))
        closes_at = _when(replies.close_due(asked.created_at, policy))
    return {"message": asked.details["message"], "asked_at": _when(asked.created_at), "reminder_at": reminder_at,
            "closes_at": closes_at}


#: each status in a few words a worried user understands (the raw ``status`` stays for machines)
STATUS_LABELS: Mapping[str, str] = {
    "submitted": "Received",
    "awaiting_chain": "Waiting for the network",
    "in_review": "Being reviewed",
    "needs_info": "Waiting for your answer",
    "approved": "Approved",
    "refund_pending": "Refund on its way",
    "refunded": "Refunded",
    "credited": "Credited",
    "rejected": "Not recoverable",
    "closed": "Closed",
}


def _day(value: datetime | str | None) -> str | None:
    if value is None:
        return None
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.astimezone(UTC).strftime("%d %B %Y")


def next_step(case: CaseRecord, question: Mapping[str, Any] | None, config: Config | None) -> str:
    """What happens next, in one sentence, with a date where there is one."""
    status = case.status
    policy = config.policy if config is not None else None
    if status == "submitted":
        return "We are looking the transaction up on its network; this usually takes a few minutes."
    if status == "awaiting_chain":
        return ("We will check again when the network confirms it, usually within 30 minutes; you do not "
                "need to do anything.")
    if status == "in_review":
        by = f" by {_day(case.sla_due_at)}" if case.sla_due_at is not None else " shortly"
        if case.recoverable in ("yes", "conditional"):
            return f"An approver reviews recoverable deposits: expect a decision{by}."
        return f"A specialist reviews your appeal: expect an answer{by}."
    if status == "needs_info":
        closes = _day(question.get("closes_at")) if question else None
        until = f" by {closes}" if closes else ""
        return f"Please answer our question below{until}; without an answer we close the appeal."
    if status == "approved":
        within = f" within {policy.payout_sla_hours} hours" if policy is not None else " soon"
        if case.resolution == "refund":
            return f"The refund will be sent to the sending address{within}."
        return f"The amount will be credited to your account{within}."
    if status == "refund_pending":
        return "The refund was sent; it completes once the network confirms it."
    if status == "refunded":
        return "Nothing more to do: the refund is confirmed on the network."
    if status == "credited":
        return "Nothing more to do: the amount is in your account."
    if status == "rejected":
        return "Nothing more can be done for this deposit; the reason is below."
    if question is not None:  # closed unanswered: the answer reopens it
        reopen_by = _day(question.get("closes_at"))
        return f"Answer our question below{f' by {reopen_by}' if reopen_by else ''} and we will reopen your appeal."
    return "This appeal is closed."


def appeal_view(case: CaseRecord, events: Sequence[EventRecord], config: Config | None = None) -> dict[str, Any]:
    """The appeal as its owner sees it. Decimal amounts are strings; times are UTC ISO 8601."""
    decision = _user_decision(case)
    found = case.deposit_network or (decision.network if decision is not None else None)
    # the explorer of the network where the funds are (a wrong-network deposit is not on the claimed one)
    network = config.networks.get(found or case.network) if config is not None else None
    flags = decision.flags if decision is not None else []
    flags = sorted({*flags, *(f for f in case.flags if f in {v.value for v in USER_VISIBLE_FLAGS})})
    question = open_question(case, events, config)
    return {
        "reference": case.reference or "",
        "status": case.status,
        "status_label": STATUS_LABELS.get(case.status, case.status),
        "next_step": next_step(case, question, config),
        "origin": case.origin if case.origin == Origin.DETECTED.value else Origin.APPEAL.value,
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
        "reasons": decision.reasons if decision is not None else [],
        "refund_tx_hash": case.refund_tx_hash,
        "refund_network": case.refund_network if case.refund_tx_hash else None,
        "explorer_url": network.explorer_link(case.tx_hash) if network is not None else None,
        "timeline": timeline(events),
        "open_question": question,
        "conversation": conversation(events),
        "created_at": _when(case.created_at),
        "updated_at": _when(case.updated_at),
    }


# ---------------------------------------------------------------------------------------- reads

_CASES = Case.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]
#: the columns the view reads, and no others (operator names and internal notes are not even loaded)
_CASE_COLUMNS = tuple(name for name in CaseRecord.__annotations__)
_EVENT_COLUMNS = tuple(name for name in EventRecord.__annotations__)
_OWN_CASE_WITH_EVENTS = (
    core_select(
        _CASES.c.id,
        *(_CASES.c[name] for name in _CASE_COLUMNS),
        *(_EVENTS.c[name].label("event_" + name) for name in ("id", *_EVENT_COLUMNS)),
    )
    .select_from(_CASES.outerjoin(_EVENTS, _EVENTS.c.case_id == _CASES.c.id))
    .where(_CASES.c.reference == bindparam("reference"), _CASES.c.user_id == bindparam("user_id"))
    .order_by(_EVENTS.c.id)
)
_SELECTED = tuple(column.name for column in _OWN_CASE_WITH_EVENTS.selected_columns)
_EVENT_POSITIONS = tuple(i for i, name in enumerate(_SELECTED) if name.startswith("event_"))


def json_loads(text: str | bytes) -> Any:
    """orjson's parser (faster than the standard library's on the stored decisions).

    orjson turns an integer wider than 64 bits into a float without a word; any text with a run of
    20 or more digits (a number that may be that wide, or merely a long digit string) is parsed by
    the standard library instead, so no number is ever rounded. (The run is found by mapping every
    byte to a digit or a blank and searching in C: a regular expression cost 20 µs per decision.)
    """
    raw = text.encode() if isinstance(text, str) else text
    if _DIGIT_RUN in raw.translate(_DIGITS_AS_NINES):
        return json.loads(text)
    return orjson.loads(raw)


_DIGITS_AS_NINES = bytes(ord("9") if ord("0") <= i <= ord("9") else ord(" ") for i in range(256))
_DIGIT_RUN = b"9" * 20


def _reader_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA busy_timeout=1000")
    cursor.execute("PRAGMA query_only=ON")
    cursor.close()


class AppealReader:
    """The hot read path of the user-facing API: one statement per appeal, plain rows, no ORM.

    On SQLite it reads through an engine of its own: read-only connections (``query_only``, busy
    wait at most 1 s) that run the precompiled SELECT on the DBAPI cursor, without the explicit
    ``BEGIN`` and the rollback that the shared engine's write-ready connections need; WAL readers
    never wait for the writer. On PostgreSQL it runs the same statement on the shared engine.
    """

    def __init__(self, db: Database, *, pool_size: int = 4) -> None:
        self.db = db
        database = db.engine.url.database
        in_memory = database in (None, "", ":memory:") or "mode=memory" in str(db.engine.url)
        file_backed = db.is_sqlite and not in_memory
        #: cheap enough to run on an event loop: an embedded database file, no network
        self.inline = file_backed
        self._raw: tuple[str, list[Any]] | None = None
        self._local = threading.local()
        self._held: list[Any] = []
        self._guard = threading.Lock()
        if file_backed:
            self.engine = create_engine(
                db.engine.url, connect_args={"check_same_thread": False, "timeout": 1},
                pool_size=pool_size, max_overflow=pool_size, pool_reset_on_return=None,
                json_deserializer=json_loads,
            )
            sa_event.listen(self.engine, "connect", _reader_pragmas)
            self._own_engine = True
            # One precompiled statement run on the DBAPI cursor; each column's value converted by
            # the processor SQLAlchemy itself would apply (decimals, UTC datetimes, JSON).
            dialect = self.engine.dialect
            processors = [column.type.dialect_impl(dialect).result_processor(dialect, None)
                          for column in _OWN_CASE_WITH_EVENTS.selected_columns]
            self._raw = (str(_OWN_CASE_WITH_EVENTS.compile(dialect=dialect)), processors)
        else:
            self.engine = db.engine
            self._own_engine = False

    def _rows(self, user_id: str, reference: str) -> list[dict[str, Any]]:
        if self._raw is None:
            with self.engine.connect() as connection:
                result = connection.execute(_OWN_CASE_WITH_EVENTS, {"reference": reference, "user_id": user_id})
                return [dict(row._mapping) for row in result]
        sql, processors = self._raw
        dbapi = getattr(self._local, "connection", None)
        if dbapi is None:  # one read-only connection per thread, kept: no pool checkout per read
            dbapi = self._local.connection = self.engine.raw_connection()
            with self._guard:
                self._held.append(dbapi)
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, (reference, user_id))
            raw_rows = cursor.fetchall()
        finally:
            cursor.close()
        if not raw_rows:
            return []
        # The case's columns repeat on every row of the join: convert them once (the decision's
        # JSON is the largest value read), then only the event columns of each row.
        first = {name: (value if convert is None or value is None else convert(value))
                 for name, convert, value in zip(_SELECTED, processors, raw_rows[0], strict=True)}
        rows = [first]
        for raw in raw_rows[1:]:
            row = dict(first)
            for position in _EVENT_POSITIONS:
                value, convert = raw[position], processors[position]
                row[_SELECTED[position]] = value if convert is None or value is None else convert(value)
            rows.append(row)
        return rows

    def load_own(self, user_id: str, reference: str) -> tuple[CaseRecord, list[EventRecord]] | None:
        """The user's case and its events; another user's case is None, exactly like a missing one."""
        rows = self._rows(user_id, reference)
        if not rows:
            return None
        first = rows[0]
        case = SimpleNamespace(**{name: first[name] for name in _CASE_COLUMNS})
        events = [
            SimpleNamespace(**{name: row["event_" + name] for name in _EVENT_COLUMNS})
            for row in rows
            if row["event_id"] is not None
        ]
        return cast(CaseRecord, case), cast(list[EventRecord], events)

    def close(self) -> None:
        with self._guard:
            held, self._held = self._held, []
        for connection in held:
            connection.close()
        if self._own_engine:
            self.engine.dispose()


def own_events(session: Session, case_ids: Sequence[int]) -> dict[int, list[CaseEvent]]:
    if not case_ids:
        return {}
    rows = session.exec(
        select(CaseEvent).where(col(CaseEvent.case_id).in_(list(case_ids))).order_by(col(CaseEvent.id))
    ).all()
    result: dict[int, list[CaseEvent]] = {case_id: [] for case_id in case_ids}
    for event in rows:
        if event.case_id is not None:
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


def find_existing(session: Session, config: Config, draft: AppealDraft) -> Case | None:
    """The case this appeal joins, if any, exactly as :meth:`CaseService.submit` decides
    (:func:`recovery.services.case_for_appeal`): the user's own appeal for this transfer (the
    idempotency key), a case ``recovery scan`` opened for them for it on any network of the family,
    or a detected case held for a shared address where they hold a memo (not theirs yet: the
    appeal claims it through the service). Looked up before the per-user rate limit: joining is not
    a new appeal."""
    return case_for_appeal(session, config, draft)


def appeals_created_since(session: Session, user_id: str, since: datetime) -> list[datetime]:
    """Creation times of the user's appeals after ``since``, oldest first (for the rate limit)."""
    return list(
        session.exec(
            select(Case.created_at)
            .where(Case.user_id == user_id, Case.origin == Origin.APPEAL.value, Case.created_at > since)
            .order_by(col(Case.created_at))
        ).all()
    )
