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
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
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
from recovery.config import Config, Policy
from recovery.db import Database
from recovery.dbtypes import decimal_text
from recovery.evidence import MEDIA_TYPES
from recovery.feedback import ENDED_STATUSES, FEEDBACK_ACTION
from recovery.i18n import DEFAULT_LANGUAGE, Translator, catalog, to_cents, to_decimals, translator
from recovery.intake import AppealDraft
from recovery.models import Case, CaseEvent
from recovery.rules import public_evidence
from recovery.services import CLAIM_ACTION, REJECTION_REASONS, case_for_appeal
from recovery.user_text import NEXT_STEPS, REJECTIONS, STATUS_LABELS, TIMELINE, Facts, decimal_or_none, reason_text
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

ENGLISH = translator(DEFAULT_LANGUAGE)

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
    "set_valuation": "fee_set",
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
        valued = isinstance(data.get("valuation"), Mapping)  # the team set the price the engine lacked
        for reason in reasons:
            code, text, evidence = reason["code"], reason["text"], reason.get("evidence") or {}
            if not isinstance(code, str) or not isinstance(text, str) or not isinstance(evidence, Mapping):
                raise TypeError("reason")
            if not reason.get("internal", False) and not (valued and code == "no_price"):
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


def fee_quote(case: CaseRecord, decision: _UserDecision | None, decimals: int | None = None) -> dict[str, Any] | None:
    """``{amount, asset, usd, breakdown}`` of the current decision, or None before one exists: the
    amount to the asset's decimals, ``usd`` to the cent (the breakdown keeps the rule's exact terms)."""
    if decision is None or decision.fee_terms is None:
        return None
    terms = decision.fee_terms
    breakdown = {key: _canonical(terms.get(key)) for key in FEE_TERMS}
    asset = case.fee_asset or decision.asset
    amount = case.fee_amount if case.fee_amount is not None else decimal_or_none(terms.get("fee"))
    usd = case.fee_usd if case.fee_usd is not None else decimal_or_none(breakdown.get("fee_value_usd"))
    same_unit = asset in (None, decision.asset)
    return {
        "amount": _figure(amount, decimals if same_unit else None) if amount is not None
        else _canonical(terms.get("fee")),
        "asset": asset,
        "usd": format(to_cents(usd), "f") if usd is not None else None,
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


def _checked_entry(details: Mapping[str, Any], tr: Translator) -> dict[str, Any]:
    if details.get("outcome") == "decided":
        category = details.get("category")
        return {"event": "checked", "category": category if isinstance(category, str) else None,
                "message": tr.text(TIMELINE["checked"])}
    return {"event": "awaiting_chain", "category": None, "message": tr.text(TIMELINE["awaiting_chain"])}


def _detected_entry(details: Mapping[str, Any], tr: Translator) -> dict[str, Any]:
    """The opening of a case ``recovery scan`` found: where the deposit landed and what comes next."""
    network = details.get("network")
    where = network if isinstance(network, str) and network else "chain"
    key = "detected_shared" if details.get("shared_address") is True else "detected"
    return {"event": "detected", "message": tr.text(TIMELINE[key], network=where)}


def _team_message(event: EventRecord, events: Sequence[EventRecord], tr: Translator,
                  policy: Policy | None) -> str | None:
    """What the team (or the system on its behalf) said in a conversation event, in the user's
    language where the words are ours: a reminder and an unanswered close are written again from
    their dates; a question whose text is a template's (or any catalogued sentence) is translated;
    a specialist's own words are shown as written."""
    details = event.details or {}
    message = details.get("message")
    if not isinstance(message, str):
        return None
    if policy is not None and event.action == replies.REMINDED:
        asked = next((e for e in reversed(events) if e.action == replies.ASKED and e.created_at <= event.created_at),
                     None)
        if asked is not None:
            return tr.text(TIMELINE["reminder"], asked=tr.day(asked.created_at),
                           closes=tr.day(replies.close_due(asked.created_at, policy)))
    if policy is not None and event.action == replies.CLOSED_UNANSWERED:
        return tr.text(TIMELINE["closed_unanswered"], until=tr.day(replies.reopen_until(event.created_at, policy)))
    if event.action == replies.ASKED:
        return tr.text(message.strip()) if message.strip() in catalog(tr.language) else message
    return message


def timeline(events: Sequence[EventRecord], tr: Translator = ENGLISH,
             policy: Policy | None = None) -> list[dict[str, Any]]:
    """The events that concern the user, oldest first; never who acted or any internal detail."""
    entries: list[dict[str, Any]] = []
    for event in events:
        name = TIMELINE_EVENTS.get(event.action)
        if name is None:
            continue
        details = event.details or {}
        default = TIMELINE.get(name)
        entry: dict[str, Any] = {"at": _when(event.created_at), "event": name, "status": event.to_status,
                                 "message": tr.text(default) if default is not None else None, "category": None,
                                 "reason_code": None, "refund_tx_hash": None}
        if event.action == "submit" and details.get("origin") == Origin.DETECTED.value:
            entry.update(_detected_entry(details, tr))
        elif event.action == CLAIM_ACTION:
            entry["message"] = tr.text(TIMELINE["claimed"])
        elif event.action == "chain_result":
            if details.get("outcome") != "decided" and event.from_status == event.to_status:
                continue
            entry.update(_checked_entry(details, tr))
        elif event.action in ("request_info", "remind_info", "close_unanswered"):
            entry["message"] = _team_message(event, events, tr, policy)
        elif event.action == "provide_info":  # the user's own words, as they wrote them
            message = details.get("message")
            entry["message"] = message if isinstance(message, str) else tr.text(TIMELINE["information_provided"])
        elif event.action == "reject":
            code = details.get("reason_code")
            code = code if isinstance(code, str) and code in REJECTION_REASONS else "other"
            message = details.get("message")
            entry["reason_code"] = code
            entry["message"] = message if isinstance(message, str) and message else tr.text(REJECTIONS[code])
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


def conversation(events: Sequence[EventRecord], tr: Translator = ENGLISH,
                 policy: Policy | None = None) -> list[dict[str, Any]]:
    """The team's questions and reminders and the user's answers, oldest first (never who wrote them)."""
    entries = []
    for event in events:
        kind = _CONVERSATION.get(event.action)
        details = event.details or {}
        message = details.get("message")
        if kind is None or not isinstance(message, str):
            continue
        if kind[0] == "team":
            message = _team_message(event, events, tr, policy) or message
        entries.append({"at": _when(event.created_at), "by": kind[0], "kind": kind[1], "message": message,
                        "attachments": _attachments(details)})
    return entries


def open_question(case: CaseRecord, events: Sequence[EventRecord], config: Config | None,
                  tr: Translator = ENGLISH) -> dict[str, Any] | None:
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
        closes_at = replies.reopen_until(last.created_at, policy)
    elif policy is not None:
        reminded = any(e.action == replies.REMINDED for e in events if e.created_at >= asked.created_at)
        if not reminded:
            reminder_at = replies.reminder_due(asked.created_at, policy)
        closes_at = replies.close_due(asked.created_at, policy)
    return {"message": _team_message(asked, events, tr, policy), "asked_at": _when(asked.created_at),
            "reminder_at": _when(reminder_at) if reminder_at is not None else None,
            "closes_at": _when(closes_at) if closes_at is not None else None}


def rating(case: CaseRecord, events: Sequence[EventRecord]) -> tuple[dict[str, Any] | None, bool]:
    """The user's rating of a finished appeal (``{score, given_at}``) and whether they may still
    give one (``POST …/feedback``: once, on a finished case)."""
    given = next((e for e in events if e.action == FEEDBACK_ACTION), None)
    score = (given.details or {}).get("score") if given is not None else None
    shown = None
    if given is not None and isinstance(score, int):
        shown = {"score": score, "given_at": _when(given.created_at)}
    return shown, given is None and case.status in ENDED_STATUSES


def _moment(value: datetime | str | None) -> datetime | None:
    if value is None:
        return None
    return datetime.fromisoformat(value) if isinstance(value, str) else value


def next_step(case: CaseRecord, question: Mapping[str, Any] | None, config: Config | None,
              tr: Translator = ENGLISH) -> str:
    """What happens next, in one sentence, with a date where there is one."""
    status = case.status
    policy = config.policy if config is not None else None

    def say(key: str, **params: Any) -> str:
        return tr.text(NEXT_STEPS[key], **params)

    if status in ("submitted", "awaiting_chain", "refund_pending", "refunded", "credited", "rejected"):
        return say(status)
    if status == "in_review":
        recoverable = "_recoverable" if case.recoverable in ("yes", "conditional") else ""
        if case.sla_due_at is not None:
            return say(f"review{recoverable}_by", date=tr.day(case.sla_due_at))
        return say(f"review{recoverable}")
    if status == "needs_info":
        closes = _moment(question.get("closes_at")) if question else None
        return say("answer_by", date=tr.day(closes)) if closes is not None else say("answer")
    if status == "approved":
        hours = policy.payout_sla_hours if policy is not None else 24
        return say("refund_within" if case.resolution == "refund" else "credit_within", hours=hours)
    if question is not None:  # closed unanswered: the answer reopens it
        reopen_by = _moment(question.get("closes_at"))
        return say("reopen_by", date=tr.day(reopen_by)) if reopen_by is not None else say("reopen")
    return say("closed")


def _asset_decimals(config: Config | None, network: str | None, asset: str | None) -> int | None:
    if config is None or network is None or asset is None or network not in config.networks:
        return None
    listed = config.asset_by_symbol(network, asset) or config.asset_by_contract(network, asset)
    return listed.decimals if listed is not None else None


def _facts(case: CaseRecord, decision: _UserDecision | None, config: Config | None, found: str | None) -> Facts:
    unit = (decision.asset if decision is not None else None) or case.asset
    return Facts(
        network=found, claimed_network=case.network, unit=unit,
        decimals=_asset_decimals(config, found or case.network, unit),
        category=case.category, recoverable=case.recoverable,
        fee_amount=case.fee_amount, fee_unit=case.fee_asset, fee_usd=case.fee_usd, net_amount=case.net_amount,
    )


def _figure(value: Decimal | None, decimals: int | None) -> str | None:
    """A machine-readable amount: exact, to the asset's decimals where they are known, no trailing zeros."""
    return decimal_text(to_decimals(value, decimals)) if value is not None else None


def _display(case: CaseRecord, facts: Facts, fee: Mapping[str, Any] | None, claimed_decimals: int | None,
             tr: Translator) -> dict[str, Any]:
    """The amounts as the user reads them, in their locale (the machine fields stay exact)."""
    def amount(value: Decimal | None, unit: str | None = facts.unit) -> str | None:
        return tr.amount(value, facts.decimals, unit) if value is not None else None

    fee_usd = decimal_or_none(fee.get("usd")) if fee is not None else None
    fee_amount = decimal_or_none(fee.get("amount")) if fee is not None else None
    fee_unit = (fee.get("asset") if fee is not None else None) or facts.unit
    same_unit = fee_unit == facts.unit
    return {
        "claimed_amount": tr.amount(case.claimed_amount, claimed_decimals, case.asset)
        if case.claimed_amount is not None else None,
        "amount": amount(case.amount),
        "fee": tr.amount(fee_amount, facts.decimals if same_unit else None, fee_unit) if fee_amount is not None
        else None,
        "fee_usd": tr.usd(fee_usd) if fee_usd is not None else None,
        "net_amount": amount(case.net_amount),
    }


def appeal_view(case: CaseRecord, events: Sequence[EventRecord], config: Config | None = None,
                language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """The appeal as its owner sees it, its sentences in ``language`` (``recovery.i18n.LANGUAGES``).
    Decimal amounts are strings (to the asset's decimals; USD to the cent); times are UTC ISO 8601;
    ``display`` has the amounts formatted for the language."""
    tr = translator(language)
    decision = _user_decision(case)
    found = case.deposit_network or (decision.network if decision is not None else None)
    # the explorer of the network where the funds are (a wrong-network deposit is not on the claimed one)
    network = config.networks.get(found or case.network) if config is not None else None
    flags = decision.flags if decision is not None else []
    flags = sorted({*flags, *(f for f in case.flags if f in {v.value for v in USER_VISIBLE_FLAGS})})
    policy = config.policy if config is not None else None
    question = open_question(case, events, config, tr)
    facts = _facts(case, decision, config, found)
    fee = fee_quote(case, decision, facts.decimals)
    reasons = [
        {"code": r["code"], "text": reason_text(r["code"], r["evidence"], facts, tr), "evidence": r["evidence"]}
        for r in (decision.reasons if decision is not None else [])
    ]
    status_label = STATUS_LABELS.get(case.status)
    feedback, can_rate = rating(case, events)
    return {
        "reference": case.reference or "",
        "status": case.status,
        "status_label": tr.text(status_label) if status_label is not None else case.status,
        "next_step": next_step(case, question, config, tr),
        "language": tr.language,
        "origin": case.origin if case.origin == Origin.DETECTED.value else Origin.APPEAL.value,
        "network": case.network,
        "asset": case.asset,
        "tx_hash": case.tx_hash,
        "deposit_address": case.deposit_address,
        "memo": case.memo,
        "claimed_amount": _text(case.claimed_amount),
        "found_on_network": found,
        "amount": _figure(case.amount, facts.decimals),
        "category": case.category,
        "recoverable": case.recoverable,
        "resolution": case.resolution,
        "flags": flags,
        "fee": fee,
        "net_amount": _figure(case.net_amount, facts.decimals),
        "display": _display(case, facts, fee, _asset_decimals(config, case.network, case.asset), tr),
        "reasons": reasons,
        "refund_tx_hash": case.refund_tx_hash,
        "refund_network": case.refund_network if case.refund_tx_hash else None,
        "explorer_url": network.explorer_link(case.tx_hash) if network is not None else None,
        "timeline": timeline(events, tr, policy),
        "open_question": question,
        "conversation": conversation(events, tr, policy),
        "feedback": feedback,
        "can_rate": can_rate,
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


#: answers the appeal reader remembers (each keeps the raw rows it was made of: a few KiB)
VIEW_CACHE_SIZE = 2048


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
        self._views: OrderedDict[tuple[Any, ...], bytes] = OrderedDict()
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

    def _fetch(self, user_id: str, reference: str) -> list[tuple[Any, ...]]:
        """The statement's raw rows, as the SQLite driver gives them (only on the raw path)."""
        assert self._raw is not None
        sql, _processors = self._raw
        dbapi = getattr(self._local, "connection", None)
        if dbapi is None:  # one read-only connection per thread, kept: no pool checkout per read
            dbapi = self._local.connection = self.engine.raw_connection()
            with self._guard:
                self._held.append(dbapi)
        cursor = dbapi.cursor()
        try:
            cursor.execute(sql, (reference, user_id))
            return list(cursor.fetchall())
        finally:
            cursor.close()

    def _converted(self, raw_rows: list[tuple[Any, ...]]) -> list[dict[str, Any]]:
        assert self._raw is not None
        if not raw_rows:
            return []
        _sql, processors = self._raw
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

    def _rows(self, user_id: str, reference: str) -> list[dict[str, Any]]:
        if self._raw is None:
            with self.engine.connect() as connection:
                result = connection.execute(_OWN_CASE_WITH_EVENTS, {"reference": reference, "user_id": user_id})
                return [dict(row._mapping) for row in result]
        return self._converted(self._fetch(user_id, reference))

    @staticmethod
    def _records(rows: list[dict[str, Any]]) -> tuple[CaseRecord, list[EventRecord]]:
        first = rows[0]
        case = SimpleNamespace(**{name: first[name] for name in _CASE_COLUMNS})
        events = [
            SimpleNamespace(**{name: row["event_" + name] for name in _EVENT_COLUMNS})
            for row in rows
            if row["event_id"] is not None
        ]
        return cast(CaseRecord, case), cast(list[EventRecord], events)

    def load_own(self, user_id: str, reference: str) -> tuple[CaseRecord, list[EventRecord]] | None:
        """The user's case and its events; another user's case is None, exactly like a missing one."""
        rows = self._rows(user_id, reference)
        return self._records(rows) if rows else None

    def own_view(self, user_id: str, reference: str, language: str,
                 render: Callable[[CaseRecord, list[EventRecord], str], bytes]) -> bytes | None:
        """The user's appeal as ``render`` writes it (the API: the view in ``language``, checked and
        encoded), or None for a case that is missing or another user's.

        On the raw path (the embedded database) the answer is remembered against everything it was
        made of: the user, the reference, the language, the renderer and every raw column of the
        case and of each of its events exactly as read. A case read again unchanged answers with the
        same bytes without being converted, rendered, checked or encoded again; a change to any
        column or a new event is a different key, so nothing stale is ever served (the view depends
        on nothing else: no clock). At most ``VIEW_CACHE_SIZE`` answers are kept, least recently used
        first out.
        """
        if self._raw is None:
            found = self.load_own(user_id, reference)
            return render(found[0], found[1], language) if found is not None else None
        raw_rows = self._fetch(user_id, reference)
        if not raw_rows:
            return None
        key = (user_id, reference, language, render, tuple(raw_rows))
        with self._guard:
            body = self._views.get(key)
            if body is not None:
                self._views.move_to_end(key)
                return body
        case, events = self._records(self._converted(raw_rows))
        body = render(case, events, language)
        with self._guard:
            self._views[key] = body
            while len(self._views) > VIEW_CACHE_SIZE:
                self._views.popitem(last=False)
        return body

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
