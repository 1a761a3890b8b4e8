"""What the pages read about payouts (issue 17): the approved payout of a case and its history, who
prepared a case and who sent it for approval, and the payout SLA of approved but unpaid cases.

Everything here reads; every change goes through ``CaseService``. Who counts as a preparer or as a
payout changer is asked of :mod:`recovery.payouts` itself (the functions the service's four-eyes
checks call), so a page never disagrees with the rule it explains.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlmodel import Session, col, select

from recovery import payouts
from recovery.db import Database
from recovery.models import Case, CaseEvent, Payout
from recovery.vocabulary import CaseStatus, Resolution

#: a payout row waiting to be paid (``Payout.state``)
WAITING = "approved"
RESOLUTIONS = (Resolution.CREDIT.value, Resolution.REFUND.value)


@dataclass(frozen=True)
class ApprovalRequest:
    """The standing "send for approval" of a case: its last one after its last approval."""

    case_id: int
    sent_by: str
    sent_at: datetime
    comment: str


@dataclass(frozen=True)
class CasePayouts:
    """A case's payouts and the four-eyes facts its actions depend on."""

    #: the live payout (approved, executed, confirmed or mismatch), as ``CaseService.payout`` returns it
    live: Payout | None
    #: every payout of the case, oldest first (cancelled ones included)
    history: list[Payout] = field(default_factory=list)
    #: operators who shaped the decision (``payouts.PREPARING_ACTIONS``)
    preparers: set[str] = field(default_factory=set)
    #: operators who changed the payout since the last approval (they may not approve it)
    changers: set[str] = field(default_factory=set)
    request: ApprovalRequest | None = None


def requests_for(session: Session, cases: Sequence[Case]) -> dict[int, ApprovalRequest]:
    """The standing approval request of each case: sent (``approval_requested_at`` set: a payout
    change or a reopen clears it) and not answered by an approval since."""
    ids = [c.id for c in cases if c.id is not None and c.approval_requested_at is not None]
    if not ids:
        return {}
    rows = session.exec(
        select(CaseEvent).where(col(CaseEvent.case_id).in_(ids),
                                col(CaseEvent.action).in_(["send_for_approval", "approve"]))
        .order_by(col(CaseEvent.id))
    ).all()
    found: dict[int, ApprovalRequest] = {}
    for event in rows:
        assert event.case_id is not None
        if event.action == "approve":
            found.pop(event.case_id, None)
        else:
            comment = event.details.get("comment") if isinstance(event.details, dict) else None
            found[event.case_id] = ApprovalRequest(event.case_id, event.actor, event.created_at, str(comment or ""))
    return found


def case_payouts(db: Database, case: Case) -> CasePayouts:
    with db.read() as session:
        history = list(session.exec(
            select(Payout).where(Payout.case_id == case.id).order_by(col(Payout.id))
        ).all())
        live = payouts.active_payout(session, case.id)
        return CasePayouts(
            live=live, history=history, preparers=payouts.preparers(session, case),
            changers=payouts.payout_changers(session, case), request=requests_for(session, [case]).get(case.id or 0),
        )


@dataclass(frozen=True)
class SentCase:
    """A case on the Approvals page."""

    case: Case
    request: ApprovalRequest
    #: preparers and payout changers: none of them may approve it above the threshold
    preparers: set[str]
    changers: set[str]


def sent_for_approval(db: Database) -> list[SentCase]:
    """Cases in review sent for approval (and not approved since), largest value first (unknown
    values last)."""
    with db.read() as session:
        cases = list(session.exec(
            select(Case).where(Case.status == CaseStatus.IN_REVIEW.value,
                               col(Case.approval_requested_at).is_not(None),
                               col(Case.resolution).in_(RESOLUTIONS))
        ).all())
        requests = requests_for(session, cases)
        sent = [
            SentCase(case, requests[case.id], payouts.preparers(session, case), payouts.payout_changers(session, case))
            for case in cases if case.id in requests
        ]
    # money is exact text on SQLite: sort here, with Decimal
    sent.sort(key=lambda s: (s.case.value_usd is None, -(s.case.value_usd or Decimal(0)), s.case.id or 0))
    return sent


# ------------------------------------------------------------------------------ payout SLA
@dataclass(frozen=True)
class PayoutClock:
    """How long an approved payout has waited against ``policy.payout_sla_hours``."""

    approved_at: datetime
    sla_hours: int

    @property
    def due_at(self) -> datetime:
        return self.approved_at + timedelta(hours=self.sla_hours)

    def overdue(self, now: datetime) -> bool:
        return now > self.due_at


def waiting_payouts(db: Database, case_ids: Sequence[int], sla_hours: int) -> dict[int, PayoutClock]:
    """The approved, unpaid payout of each of these cases (those that have one)."""
    if not case_ids:
        return {}
    with db.read() as session:
        rows = session.exec(
            select(Payout.case_id, Payout.approved_at)
            .where(col(Payout.case_id).in_(list(case_ids)), Payout.state == WAITING)
        ).all()
    return {int(case_id): PayoutClock(approved_at, sla_hours) for case_id, approved_at in rows}


@dataclass(frozen=True)
class WaitingPayout:
    reference: str
    kind: str
    network: str
    asset: str
    amount: Decimal
    approved_by: str
    clock: PayoutClock


@dataclass(frozen=True)
class PayoutSla:
    waiting: int  # approved payouts not paid yet
    overdue: int  # of those, past the payout SLA
    oldest_overdue: list[WaitingPayout]  # the first ``limit`` of those, oldest approval first


def payout_sla(db: Database, now: datetime, sla_hours: int, *, limit: int = 50) -> PayoutSla:
    """Approved but unpaid payouts (cases still ``approved``), and those past the payout SLA."""
    waiting = (Payout.state == WAITING, Case.status == CaseStatus.APPROVED.value)
    late = col(Payout.approved_at) < now - timedelta(hours=sla_hours)
    with db.read() as session:
        def count(*where: Any) -> int:
            query = select(func.count()).select_from(Payout).join(Case, col(Case.id) == Payout.case_id)
            return int(session.exec(query.where(*where)).one())

        total, overdue = count(*waiting), count(*waiting, late)
        rows = session.exec(
            select(Case.reference, Payout).join(Payout, col(Payout.case_id) == Case.id)
            .where(*waiting, late).order_by(col(Payout.approved_at), col(Payout.id)).limit(limit)
        ).all()
    return PayoutSla(total, overdue, [
        WaitingPayout(str(reference), row.kind, row.network, row.asset, row.amount, row.approved_by,
                      PayoutClock(row.approved_at, sla_hours))
        for reference, row in rows
    ])
