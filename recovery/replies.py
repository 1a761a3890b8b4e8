"""The user's side of a question the appeal team asked (``needs_info``): the answer's text and
attachments, the SLA clock paused while the case waits for the user, and when a reminder is due or
the case is closed for want of an answer (policy ``info_reminder_hours``,
``info_close_after_hours``, ``info_reopen_grace_hours``).

Attachments are PDF, PNG or JPEG by their content (magic bytes), at most 5 MiB each and
:data:`MAX_ATTACHMENTS` per answer, stored once per SHA-256 in the store of the ownership evidence
(``evidence_documents``); the answer's audit event names each by its hash. The state changes
themselves go through :class:`recovery.services.CaseService` (``request_info``, ``provide_info``,
``remind_info``, ``close_unanswered``); this module holds what they check and compute.
"""

from __future__ import annotations

import hashlib
import unicodedata
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from sqlmodel import Session, col, select

from recovery.config import Policy
from recovery.errors import FieldError, ValidationFailed
from recovery.evidence import MAX_DOCUMENT_BYTES, detect_media_type
from recovery.evidence_records import EvidenceDocument
from recovery.models import Case, CaseEvent

#: attachments one answer may carry
MAX_ATTACHMENTS: Final = 5
#: characters an answer (or a question) may have
MAX_MESSAGE_CHARS: Final = 4000
#: the audit actions of the conversation, as the user-facing view names them
ASKED: Final = "request_info"
ANSWERED: Final = "provide_info"
REMINDED: Final = "remind_info"
CLOSED_UNANSWERED: Final = "close_unanswered"


@dataclass(frozen=True)
class Attachment:
    """A file the user attached to an answer, as received."""

    content: bytes
    declared_type: str | None = None
    file_name: str | None = None


def checked_message(text: Any, field: str = "message") -> str:
    """The answer's text, stripped: 1 to 4,000 characters, no control characters but line breaks and tabs."""
    if not isinstance(text, str):
        raise ValidationFailed([FieldError(field, "must be text")])
    stripped: str = text.strip()
    if not stripped:
        raise ValidationFailed([FieldError(field, "must not be empty")])
    if len(stripped) > MAX_MESSAGE_CHARS:
        raise ValidationFailed([FieldError(field, f"is {len(stripped)} characters, more than {MAX_MESSAGE_CHARS}")])
    if any(unicodedata.category(c) == "Cc" and c not in "\n\t" for c in stripped):
        raise ValidationFailed([FieldError(field, "contains control characters")])
    return stripped


@dataclass(frozen=True)
class CheckedAttachment:
    content: bytes
    media_type: str
    sha256: str
    file_name: str | None

    def facts(self) -> dict[str, Any]:
        """What the audit event and the views record of it (never the bytes)."""
        return {"sha256": self.sha256, "media_type": self.media_type, "size": len(self.content),
                "file_name": self.file_name}


def checked_attachments(files: Sequence[Attachment]) -> list[CheckedAttachment]:
    """Every file checked by its content; all problems at once, each naming ``files[i]``."""
    if len(files) > MAX_ATTACHMENTS:
        raise ValidationFailed([FieldError("files", f"{len(files)} files, more than the {MAX_ATTACHMENTS} allowed")])
    problems: list[FieldError] = []
    checked: list[CheckedAttachment] = []
    for i, item in enumerate(files):
        field = f"files[{i}]"
        size = len(item.content)
        detected = detect_media_type(item.content)
        declared = (item.declared_type or "").split(";", 1)[0].strip().lower()
        if size == 0:
            problems.append(FieldError(field, "is empty"))
        elif size > MAX_DOCUMENT_BYTES:
            problems.append(FieldError(field, f"is {size} bytes, more than the {MAX_DOCUMENT_BYTES} bytes (5 MiB) "
                                              "allowed"))
        elif detected is None:
            problems.append(FieldError(field, "is not a PDF, PNG or JPEG document (checked by its content, not its "
                                              "name)"))
        elif declared and declared not in ("application/octet-stream", detected):
            problems.append(FieldError(field, f"its content is {detected}, not {declared} as declared"))
        else:
            name = " ".join((item.file_name or "").split())[:200] or None
            checked.append(CheckedAttachment(item.content, detected, hashlib.sha256(item.content).hexdigest(), name))
    if problems:
        raise ValidationFailed(problems)
    return checked


def store_documents(session: Session, attachments: Sequence[CheckedAttachment], now: datetime) -> list[dict[str, Any]]:
    """Store each attachment once per SHA-256 (in the caller's transaction); their facts."""
    for item in attachments:
        if session.get(EvidenceDocument, item.sha256) is None:
            session.add(EvidenceDocument(sha256=item.sha256, media_type=item.media_type, size=len(item.content),
                                         content=item.content, created_at=now))
            session.flush()
    return [item.facts() for item in attachments]


def last_event(session: Session, case_id: int | None, actions: Sequence[str] | None = None) -> CaseEvent | None:
    """The case's newest event (of one of ``actions``)."""
    query = select(CaseEvent).where(CaseEvent.case_id == case_id)
    if actions is not None:
        query = query.where(col(CaseEvent.action).in_(list(actions)))
    return session.exec(query.order_by(col(CaseEvent.id).desc()).limit(1)).first()


def pause_sla(case: Case, now: datetime) -> dict[str, Any]:
    """Stop the SLA clock of a case that now waits for the user: the time left is kept in the
    question's audit event and given back when the answer comes."""
    if case.sla_due_at is None:
        return {}
    left = max(0, int((case.sla_due_at - now).total_seconds()))
    case.sla_due_at = None
    return {"sla_remaining_seconds": left}


def resume_sla(case: Case, asked: Mapping[str, Any] | None, now: datetime, policy: Policy) -> dict[str, Any]:
    """Start the clock again with the time it had left when the question was asked (a question
    asked before the pause existed: a full SLA period)."""
    if case.sla_due_at is not None:
        return {}
    left = (asked or {}).get("sla_remaining_seconds")
    seconds = left if isinstance(left, int) and left >= 0 else policy.sla_hours * 3600
    case.sla_due_at = now + timedelta(seconds=seconds)
    return {"sla_resumed_seconds": seconds}


def reminder_due(asked_at: datetime, policy: Policy) -> datetime:
    """When an unanswered question gets its reminder."""
    return asked_at + timedelta(hours=policy.info_reminder_hours)


def close_due(asked_at: datetime, policy: Policy) -> datetime:
    """When a case whose question is still unanswered is closed."""
    return asked_at + timedelta(hours=policy.info_close_after_hours)


def reopen_until(closed_at: datetime, policy: Policy) -> datetime:
    """Until when the user's answer reopens a case closed unanswered."""
    return closed_at + timedelta(hours=policy.info_reopen_grace_hours)


def reopen_check(closed: CaseEvent | None, now: datetime, policy: Policy) -> str | None:
    """Why an answer may not reopen this closed case, or None when it may."""
    if closed is None or closed.action != CLOSED_UNANSWERED:
        return "the case is closed; only a case closed for want of an answer is reopened by one"
    limit = reopen_until(closed.created_at, policy)
    if now > limit:
        return (f"the case was closed unanswered on {closed.created_at:%Y-%m-%d}; an answer reopens it only "
                f"until {limit:%Y-%m-%d}")
    return None


def due_for(asked_at: datetime, reminded: bool, now: datetime, policy: Policy) -> str | None:
    """``close`` once the question is ``info_close_after_hours`` old, ``remind`` once it is
    ``info_reminder_hours`` old and no reminder was sent since, else None."""
    if now >= close_due(asked_at, policy):
        return "close"
    if not reminded and now >= reminder_due(asked_at, policy):
        return "remind"
    return None


def reminder_text(asked_at: datetime, policy: Policy) -> str:
    closes = close_due(asked_at, policy)
    return (f"We are still waiting for your answer to our question of {asked_at:%Y-%m-%d}. If we do not hear "
            f"from you by {closes:%Y-%m-%d}, we will close your appeal; you can still answer afterwards to reopen it.")


def closing_text(closed_at: datetime, policy: Policy) -> str:
    until = reopen_until(closed_at, policy)
    return (f"We closed your appeal because our question was not answered. Answer it by {until:%Y-%m-%d} and "
            "we will reopen your appeal.")
