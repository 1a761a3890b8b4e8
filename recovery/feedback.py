"""The user's rating of a finished case: a score 1-5 and an optional comment, once per case.

It is an audit event of its own (action ``feedback``, details ``{"score", "comment"}``) appended
through :meth:`recovery.services.CaseService.act`: the same transaction, case lock, version check
(a stale version is a ``Conflict``), transition-table check (``recovery.lifecycle``: users only, on
``credited``, ``refunded``, ``rejected`` and ``closed`` cases, no status change) and keyed audit
chain as every other change. "Once" is checked under the case lock, so two concurrent ratings of one
case give one event and one ``FeedbackAlreadyGiven``.

The event is not part of the user's timeline (``recovery.public.TIMELINE_EVENTS`` does not name it),
so no webhook is sent for it either; the service metrics (``recovery.service_metrics``) read it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlmodel import Session, col, select

from recovery.errors import FieldError, InvalidTransition, ServiceError, ValidationFailed
from recovery.lifecycle import ENDED
from recovery.models import Case, CaseEvent
from recovery.vocabulary import Role

#: the audit action of a rating
FEEDBACK_ACTION = "feedback"
MIN_SCORE, MAX_SCORE = 1, 5
MAX_COMMENT_CHARS = 2000
#: the statuses in which a case may be rated (the team is done with it)
ENDED_STATUSES: tuple[str, ...] = tuple(sorted(s.value for s in ENDED))


class FeedbackAlreadyGiven(ServiceError):
    code = "feedback_already_given"


class NotFinished(ServiceError):
    code = "not_finished"


@dataclass(frozen=True)
class Feedback:
    reference: str
    score: int
    comment: str | None
    given_at: datetime


def checked(raw: Mapping[str, Any]) -> tuple[int, str | None]:
    """``score`` and ``comment`` of a rating, or ``ValidationFailed`` naming every bad field (and
    every unknown one)."""
    errors = [FieldError(str(key)[:40], "unknown field; the fields are score, comment")
              for key in raw if key not in ("score", "comment")]
    score = raw.get("score")
    if score is None:
        errors.append(FieldError("score", f"is required: a whole number from {MIN_SCORE} to {MAX_SCORE}"))
    elif isinstance(score, bool) or not isinstance(score, int) or not MIN_SCORE <= score <= MAX_SCORE:
        errors.append(FieldError("score", f"must be a whole number from {MIN_SCORE} to {MAX_SCORE}"))
    comment = raw.get("comment")
    if comment is not None:
        if not isinstance(comment, str):
            errors.append(FieldError("comment", "must be a string"))
        elif "\x00" in comment:
            errors.append(FieldError("comment", "must not contain NUL characters"))
        elif len(comment) > MAX_COMMENT_CHARS:
            errors.append(FieldError("comment", f"is longer than {MAX_COMMENT_CHARS} characters"))
        else:
            comment = comment.strip() or None
    if errors:
        raise ValidationFailed(errors)
    assert isinstance(score, int)
    return score, comment if isinstance(comment, str) else None


def given(session: Session, case_id: int) -> CaseEvent | None:
    """The case's rating event, if it was rated (through the events' ``case_id`` index)."""
    return session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case_id, CaseEvent.action == FEEDBACK_ACTION)
        .order_by(col(CaseEvent.id)).limit(1)
    ).first()


def refusal(session: Session, case: Case) -> ServiceError | None:
    """Why this case cannot be rated now (not finished, already rated), or None."""
    if case.status not in ENDED_STATUSES:
        return NotFinished(f"{case.reference} is {case.status}: it can be rated once it is finished "
                           f"({', '.join(ENDED_STATUSES)})")
    assert case.id is not None
    if given(session, case.id) is not None:
        return FeedbackAlreadyGiven(f"{case.reference} was already rated")
    return None


def give(service: Any, reference: str, user_id: str, raw: Mapping[str, Any], *, expected_version: int) -> Feedback:
    """Record the user's rating of their finished case through ``service.act`` (a
    :class:`recovery.services.CaseService`). Raises ``ValidationFailed`` (bad score or comment),
    ``NotFound`` (not the user's case), ``Conflict`` (stale version), ``NotFinished`` or
    ``FeedbackAlreadyGiven``; nothing is written then."""
    from recovery.services import Actor

    score, comment = checked(raw)

    def once(session: Session, case: Case) -> None:
        problem = refusal(session, case)  # under the case lock: two ratings at once give one event
        if problem is not None:
            raise problem

    try:
        case = service.act(reference, FEEDBACK_ACTION, Actor(user_id, Role.USER), expected_version=expected_version,
                           details={"score": score, "comment": comment}, mutate=once)
    except InvalidTransition as exc:  # the transition table: the case is not finished
        raise NotFinished(f"{reference}: {exc}") from None
    assert isinstance(case, Case)
    return Feedback(reference, score, comment, case.updated_at)
