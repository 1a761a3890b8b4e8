"""What goes into the webhook outbox: the events of a case its user can see, as signed-to-be JSON.

Called where every case event is appended (:func:`recovery.audit.append_event`,
:func:`recovery.services.append_events`), inside the caller's transaction: the outbox rows commit
with the change or not at all. With no ``RECOVERY_WEBHOOK_URLS`` it returns at once (one settings
lookup): nothing is queued and nothing is built (the batch re-check's cost stays what it was).

An event is sent when its user sees it: its audit action makes an entry of the appeal's timeline
(:data:`recovery.public.TIMELINE_EVENTS`, as :func:`recovery.public.timeline` shows them), or it
moves the case to another status. A ``chain_result`` is sent when it changes what the user last
got pushed of the decision (status, category, amounts, flags, the public reasons, the fee quote:
:data:`DECISION_KEYS`); a re-decision that changed only what the appeal team reads (internal
reasons, another appellant of the same transfer) is not pushed. The body is
``{"id", "type", "reference", "user_id", "occurred_at", "appeal"}`` where ``appeal`` is
:func:`recovery.public.appeal_view` (the whitelisted user view: internal reasons, operators, other
users never appear) of the case as the transaction leaves it, with the timeline up to the event;
``type`` is the timeline's name for it (``status_changed`` for a status move the timeline does not
name). Cases held for a shared address (no user yet) send nothing. This module is imported with the
audit log: it loads the public view only when something is queued.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime
from types import SimpleNamespace
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import func, insert
from sqlalchemy import select as core_select

from recovery.models import Case, CaseEvent, WebhookOutbox

if TYPE_CHECKING:
    from sqlmodel import Session

    from recovery.config import Config
    from recovery.settings import Settings

#: ``session.info`` key of the configuration the appeal view is built with (the service layer sets
#: it on its write sessions; without it the view lacks the policy dates and explorer links)
CONFIG_KEY = "recovery.config"
#: the ``type`` of a status move that is not a timeline entry (a payout change, a refund mismatch)
STATUS_CHANGED = "status_changed"

CHAIN_RESULT = "chain_result"
#: the parts of the appeal view a chain result decides: a re-decision that leaves them as the user
#: last saw them (a finding only the appeal team reads changed) is not pushed
DECISION_KEYS = ("status", "found_on_network", "amount", "category", "recoverable", "resolution", "flags", "fee",
                 "net_amount", "reasons")

_CASES = Case.__table__  # type: ignore[attr-defined]
_EVENTS = CaseEvent.__table__  # type: ignore[attr-defined]
_OUTBOX = WebhookOutbox.__table__  # type: ignore[attr-defined]


class EventLike(Protocol):
    """The columns of an appended audit event this module reads (a ``CaseEvent`` or a plain row)."""

    @property
    def id(self) -> int | None: ...
    @property
    def case_id(self) -> int | None: ...
    @property
    def action(self) -> str: ...
    @property
    def from_status(self) -> str | None: ...
    @property
    def to_status(self) -> str | None: ...
    @property
    def details(self) -> Any: ...
    @property
    def created_at(self) -> datetime: ...


def targets() -> tuple[str, ...]:
    """The configured webhook URLs (``RECOVERY_WEBHOOK_URLS``); empty: webhooks are off. About
    0.3 µs (the settings are imported on the first call only: an import statement costs 4 µs)."""
    read = _SETTINGS[0]
    if read is None:
        from recovery.settings import get_settings

        read = _SETTINGS[0] = get_settings
    return read().webhook_targets


#: ``recovery.settings.get_settings``, once :func:`targets` first ran
_SETTINGS: list[Callable[[], Settings] | None] = [None]


def event_type(event: EventLike) -> str | None:
    """The webhook ``type`` of an audit event, or None when its user does not see it."""
    from recovery.public import TIMELINE_EVENTS, timeline

    if event.case_id is None:
        return None
    if event.action in TIMELINE_EVENTS:
        entries = timeline([cast(Any, event)])
        if entries:
            return str(entries[0]["event"])
    if event.from_status is not None and event.to_status is not None and event.from_status != event.to_status:
        return STATUS_CHANGED
    return None


def decision_part(view: Mapping[str, Any]) -> dict[str, Any]:
    """What a chain result decides for the user in an appeal view: the status and the public decision."""
    return {key: view.get(key) for key in DECISION_KEYS}


def _last_pushed(session: Session, case_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The appeal view of the last event queued for each of these cases (any URL), if any."""
    if not case_ids:
        return {}
    latest = (core_select(func.max(_OUTBOX.c.id)).where(_OUTBOX.c.case_id.in_(case_ids))
              .group_by(_OUTBOX.c.case_id).scalar_subquery())
    rows = session.connection().execute(core_select(_OUTBOX.c.case_id, _OUTBOX.c.body).where(_OUTBOX.c.id.in_(latest)))
    return {row.case_id: json.loads(row.body)["appeal"] for row in rows}


def new_event_id() -> str:
    return "evt_" + uuid.uuid4().hex


def body_text(data: dict[str, Any]) -> str:
    """The exact JSON sent (compact, UTF-8 characters kept as they are)."""
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))


def enqueue(session: Session, events: Sequence[EventLike], urls: Sequence[str] | None = None) -> int:
    """Queue the user-visible ones among ``events`` (just appended in ``session``'s transaction) for
    every webhook URL; returns how many rows were written. Nothing at all when no URL is configured."""
    urls = targets() if urls is None else tuple(urls)
    if not urls or not events:
        return 0
    typed = [(event, kind) for event in events if (kind := event_type(event)) is not None]
    if not typed:
        return 0
    from recovery.public import CaseRecord, EventRecord, appeal_view
    from recovery.services import is_shared_owner

    case_ids = sorted({cast(int, event.case_id) for event, _ in typed})
    case_columns = [name for name in CaseRecord.__annotations__]
    event_columns = [name for name in EventRecord.__annotations__]
    connection = session.connection()
    cases = {
        row.id: row
        for row in connection.execute(
            core_select(_CASES.c.id, _CASES.c.user_id, *(_CASES.c[name] for name in case_columns))
            .where(_CASES.c.id.in_(case_ids))
        )
    }
    history: dict[int, list[Any]] = {case_id: [] for case_id in case_ids}
    for row in connection.execute(
        core_select(_EVENTS.c.id, _EVENTS.c.case_id, *(_EVENTS.c[name] for name in event_columns))
        .where(_EVENTS.c.case_id.in_(case_ids)).order_by(_EVENTS.c.id)
    ):
        history[row.case_id].append(row)
    config: Config | None = session.info.get(CONFIG_KEY)
    pushed = _last_pushed(session, sorted({cast(int, e.case_id) for e, _ in typed if e.action == CHAIN_RESULT}))
    rows: list[dict[str, Any]] = []
    for event, kind in typed:
        case_row = cases.get(event.case_id)
        if case_row is None or is_shared_owner(case_row.user_id):
            continue
        case = SimpleNamespace(**{name: getattr(case_row, name) for name in case_columns})
        seen = [SimpleNamespace(**{name: getattr(e, name) for name in event_columns})
                for e in history[case_row.id] if event.id is None or e.id <= event.id]
        view = appeal_view(cast(CaseRecord, case), cast(list[EventRecord], seen), config)
        before = pushed.get(case_row.id)
        pushed[case_row.id] = view
        if event.action == CHAIN_RESULT and before is not None and decision_part(before) == decision_part(view):
            continue  # decided again, the same for the user (only internal findings changed): nothing to push
        occurred = event.created_at.astimezone(UTC)
        event_id = new_event_id()
        body = body_text({
            "id": event_id,
            "type": kind,
            "reference": case.reference,
            "user_id": case_row.user_id,
            "occurred_at": occurred.isoformat(),
            "appeal": view,
        })
        for url in urls:
            rows.append({
                "event_id": event_id, "url": url, "case_id": case_row.id, "audit_event_id": event.id,
                "event_type": kind, "reference": case.reference or "", "body": body, "created_at": occurred,
                "state": "pending", "attempts": 0, "next_attempt_at": occurred, "leased_by": None,
                "leased_until": None, "last_attempt_at": None, "last_status": None, "last_error": None,
                "delivered_at": None,
            })
    if rows:
        session.execute(insert(_OUTBOX), rows)
    return len(rows)
