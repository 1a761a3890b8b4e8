"""The case state machine: which action may move a case from which status, and who may do it.

The table is data so that the services, the workbench (which buttons to show) and the tests read
the same source. Actions with ``to=None`` keep the status (assign, note, override, flag).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from recovery.vocabulary import CaseStatus as S
from recovery.vocabulary import Role as R

OPERATORS = frozenset({R.SPECIALIST, R.APPROVER, R.ADMIN})
OPEN = frozenset({S.SUBMITTED, S.AWAITING_CHAIN, S.IN_REVIEW, S.NEEDS_INFO})
TERMINAL = frozenset({S.CLOSED})
#: a case the team is done with: the user may rate it (``feedback``)
ENDED = frozenset({S.CREDITED, S.REFUNDED, S.REJECTED, S.CLOSED})


@dataclass(frozen=True)
class ActionRule:
    roles: frozenset[R]
    #: from-status -> to-status (None: status unchanged)
    moves: Mapping[S, S | None]
    #: detail keys the action must carry (e.g. a reason)
    requires: tuple[str, ...] = ()
    description: str = ""


def _same(statuses: frozenset[S]) -> dict[S, S | None]:
    return {status: None for status in statuses}


ACTIONS: dict[str, ActionRule] = {
    "submit": ActionRule(
        roles=frozenset({R.USER, R.SPECIALIST, R.ADMIN, R.SYSTEM}),
        moves={},  # creation: handled by the service, lands in SUBMITTED
        description="Open a case from an appeal, an intake or a detection.",
    ),
    "claim": ActionRule(
        roles=frozenset({R.USER, R.SPECIALIST, R.ADMIN}),
        moves={},  # part of a submit, never an action of its own: the service allows it on OPEN cases
        description="An appeal takes over a detected case held for a shared address (unmatched memo).",
    ),
    "chain_result": ActionRule(
        roles=frozenset({R.SYSTEM, R.SPECIALIST, R.APPROVER, R.ADMIN}),
        moves={
            S.SUBMITTED: None,  # target chosen by the decision: awaiting_chain or in_review
            S.AWAITING_CHAIN: None,
            S.IN_REVIEW: None,
        },
        description="Apply what the chains say: classify, price, and route the case.",
    ),
    "assign": ActionRule(
        roles=OPERATORS,
        moves=_same(OPEN | {S.APPROVED, S.REFUND_PENDING}),
        requires=("assignee",),
        description="Give the case to an operator.",
    ),
    "note": ActionRule(
        roles=OPERATORS,
        moves=_same(frozenset(S) - TERMINAL),
        requires=("text",),
        description="Internal note; never shown to the user.",
    ),
    "flag": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves=_same(frozenset(S) - TERMINAL),
        requires=("flag",),
        description="System marks the case (e.g. contested by another appeal).",
    ),
    "request_info": ActionRule(
        roles=OPERATORS,
        moves={S.IN_REVIEW: S.NEEDS_INFO, S.AWAITING_CHAIN: S.NEEDS_INFO},
        requires=("message",),
        description="Ask the user for something; the message is shown to them.",
    ),
    "provide_info": ActionRule(
        roles=frozenset({R.USER, R.SPECIALIST, R.ADMIN}),
        # from closed only for a case closed unanswered, within the grace period (the service checks)
        moves={S.NEEDS_INFO: S.IN_REVIEW, S.CLOSED: S.IN_REVIEW},
        requires=("message",),
        description="The user's answer (or a specialist recording it from chat); it also reopens a case "
                    "closed for want of an answer, within the grace period.",
    ),
    "remind_info": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves=_same(frozenset({S.NEEDS_INFO})),
        description="Remind the user of the open question (policy info_reminder_hours).",
    ),
    "close_unanswered": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves={S.NEEDS_INFO: S.CLOSED},
        description="Close a case whose question went unanswered (policy info_close_after_hours); the "
                    "user's answer reopens it within info_reopen_grace_hours.",
    ),
    "override_category": ActionRule(
        roles=OPERATORS,
        moves=_same(frozenset({S.IN_REVIEW, S.NEEDS_INFO, S.AWAITING_CHAIN})),
        requires=("category", "reason"),
        description="Replace the engine's category, with a mandatory reason.",
    ),
    "set_valuation": ActionRule(
        roles=OPERATORS,
        moves=_same(frozenset({S.IN_REVIEW, S.NEEDS_INFO})),
        requires=("price_usd", "source", "reason"),
        description="Set the USD price of an asset without one (its source and a reason): the fee is recomputed "
                    "from the fee policy; it counts as preparing the case, so someone else approves it "
                    "(recovery.valuation).",
    ),
    "send_for_approval": ActionRule(
        roles=OPERATORS,
        moves=_same(frozenset({S.IN_REVIEW})),
        description="The preparer sends the case to an approver (listed on the Approvals page).",
    ),
    "approve": ActionRule(
        roles=OPERATORS,
        moves={S.IN_REVIEW: S.APPROVED},
        description="Agree to credit or refund and fix the exact payout; above the threshold a second person.",
    ),
    "change_payout": ActionRule(
        roles=OPERATORS,
        moves={S.APPROVED: S.IN_REVIEW, S.IN_REVIEW: None},
        requires=("reason",),
        description="Change the payout (refund address, memo); it must be approved again by someone else.",
    ),
    "reject": ActionRule(
        roles=OPERATORS,
        moves={s: S.REJECTED for s in OPEN} | {S.APPROVED: S.REJECTED},
        requires=("reason_code",),
        description="Refuse the appeal with a reason code shown to the user.",
    ),
    "record_refund": ActionRule(
        roles=OPERATORS,
        moves={S.APPROVED: S.REFUND_PENDING},
        requires=("refund_tx_hash",),
        description="Record the refund transaction; the re-check confirms it on chain.",
    ),
    "refund_confirmed": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves={S.REFUND_PENDING: S.REFUNDED},
        description="The refund transaction is confirmed on chain.",
    ),
    "refund_failed": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves={S.REFUND_PENDING: S.APPROVED},
        description="The refund transaction failed on chain; back to approved.",
    ),
    "refund_mismatch": ActionRule(
        roles=frozenset({R.SYSTEM}),
        moves={S.REFUND_PENDING: S.IN_REVIEW},
        description="The recorded refund does not prove the approved payout; a person must look.",
    ),
    "mark_credited": ActionRule(
        roles=OPERATORS,
        moves={S.APPROVED: S.CREDITED},
        description="The amount was credited to the owner's account.",
    ),
    "submit_evidence": ActionRule(
        roles=frozenset({R.USER, R.SPECIALIST, R.APPROVER, R.ADMIN}),
        moves=_same(OPEN),
        requires=("kind",),
        description="Ownership evidence given (a signed message, verified or refused, or a withdrawal record).",
    ),
    "accept_evidence": ActionRule(
        roles=OPERATORS | {R.SYSTEM},
        moves=_same(OPEN),
        requires=("evidence_id",),
        description="Accept ownership evidence: the system for a verified signature, a specialist for a "
                    "document (which counts as preparing the case).",
    ),
    "reject_evidence": ActionRule(
        roles=OPERATORS,
        moves=_same(OPEN),
        requires=("evidence_id", "reason"),
        description="Reject a withdrawal record, with a reason.",
    ),
    "close": ActionRule(
        roles=OPERATORS | {R.SYSTEM},
        moves={S.REFUNDED: S.CLOSED, S.CREDITED: S.CLOSED, S.REJECTED: S.CLOSED},
        description="Archive a finished case.",
    ),
    "feedback": ActionRule(
        roles=frozenset({R.USER}),
        moves=_same(ENDED),
        requires=("score",),
        description="The user rates a finished case (a score 1-5 and an optional comment), once; no status "
                    "change (recovery.feedback).",
    ),
    "withdraw": ActionRule(
        roles=frozenset({R.USER}),
        moves={s: S.CLOSED for s in OPEN},
        description="The user withdraws their appeal.",
    ),
    "reopen": ActionRule(
        roles=frozenset({R.APPROVER, R.ADMIN}),
        moves={S.REJECTED: S.IN_REVIEW, S.CLOSED: S.IN_REVIEW},
        requires=("reason",),
        description="Take a rejected or closed case back into review.",
    ),
}


def allowed_actions(status: S, role: R) -> list[str]:
    """Actions this role may take on a case in this status (for buttons and help)."""
    return [
        name
        for name, rule in ACTIONS.items()
        if role in rule.roles and status in rule.moves
    ]


def all_transitions() -> set[tuple[S, S]]:
    """Every (from, to) status pair the table allows, for tests and documentation."""
    pairs: set[tuple[S, S]] = set()
    for rule in ACTIONS.values():
        for source, target in rule.moves.items():
            if target is not None:
                pairs.add((source, target))
    pairs |= {(S.SUBMITTED, S.AWAITING_CHAIN), (S.SUBMITTED, S.IN_REVIEW), (S.AWAITING_CHAIN, S.IN_REVIEW),
              (S.IN_REVIEW, S.AWAITING_CHAIN)}
    return pairs
