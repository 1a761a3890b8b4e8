"""Property: across random sequences of actions by random operators, no transfer is ever paid twice
and no case is paid without two different people (approver and payer), on both databases.

Cases come in pairs that name the same deposit transfer (one user appealing one transfer on two
networks of a family), with credits and refunds, below and above the four-eyes threshold.
"""

from __future__ import annotations

import secrets
from collections import Counter
from decimal import Decimal
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import Session, col, select

from recovery.errors import ServiceError
from recovery.models import Case, CaseEvent, PaidTransfer, Payout
from recovery.payouts import PREPARING_ACTIONS
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import CaseStatus, Role
from tests.faults.test_concurrency import decision_paying
from tests.test_cases import new_draft

OPERATORS = [Actor("spec-a", Role.SPECIALIST), Actor("appr-a", Role.APPROVER), Actor("appr-b", Role.APPROVER),
             Actor("admin-a", Role.ADMIN)]
#: what someone might try on a case in each status (a random walk that reaches payments often)
TRIES = {
    "in_review": ["send_for_approval", "approve", "approve", "change_payout", "reject"],
    "approved": ["mark_credited", "record_refund", "change_payout", "reject", "approve"],
    "credited": ["close", "approve", "mark_credited"],
    "refund_pending": ["record_refund", "approve", "close"],
    "rejected": ["reopen", "close"],
    "closed": ["reopen", "approve"],
}


def open_pair(service: CaseService, *, refund: bool, value: Decimal) -> list[str]:
    """Two cases of one user about one ethereum transfer (claimed on ethereum and on bsc), in review."""
    tx = "0x" + secrets.token_hex(32)
    user = "user-" + secrets.token_hex(3)
    references = []
    for claimed in ("ethereum", "bsc"):
        case, _ = service.submit(new_draft(user=user, network=claimed, tx_hash=tx), Actor(user, Role.USER))

        def decide(_session: Session, c: Case, claimed: str = claimed) -> dict[str, Any]:
            c.resolution = "refund" if refund else "credit"
            c.recoverable, c.category = "yes", "unlisted_token" if refund else "uncredited_valid"
            c.value_usd = c.amount = c.net_amount = value
            c.credited_user_id = None if refund else c.user_id
            c.network, c.deposit_network = claimed, "ethereum"
            c.decision = decision_paying(c, int(value.scaleb(6)), service.config)
            c.decision["transfers"][0]["network"] = "ethereum"
            return {"category": c.category}

        service.act(case.reference or "", "chain_result", SYSTEM, expected_version=case.version,
                    to_status=CaseStatus.IN_REVIEW, mutate=decide)
        references.append(case.reference or "")
    return references


def attempt(service: CaseService, choice: int, reference: str, actor: Actor) -> None:
    case = service.get(reference).case
    version = case.version
    tries = TRIES.get(case.status, ["approve"])
    action = tries[choice % len(tries)]
    try:
        if action == "send_for_approval":
            service.send_for_approval(reference, actor, expected_version=version)
        elif action == "approve":
            service.approve(reference, actor, expected_version=version)
        elif action == "mark_credited":
            service.mark_credited(reference, actor, expected_version=version, ledger_reference="L-" + reference)
        elif action == "record_refund":
            service.record_refund(reference, "0x" + secrets.token_hex(32), actor, expected_version=version)
        elif action == "reject":
            service.reject(reference, "other", actor, expected_version=version)
        elif action == "close":
            service.close(reference, actor, expected_version=version)
        elif action == "reopen":
            service.reopen(reference, "check again", actor, expected_version=version)
        else:
            service.change_payout(reference, actor, expected_version=version, reason="new wallet",
                                  to_address="0x" + secrets.token_hex(20))
    except ServiceError:
        pass  # refused by a rule: that is allowed, nothing may have changed


def check_invariants(service: CaseService) -> None:
    with service.db.read() as session:
        paid = session.exec(select(Payout, Case).join(Case, col(Case.id) == Payout.case_id)
                            .where(col(Payout.state).in_(["executed", "confirmed", "mismatch"]))).all()
        per_transfer: Counter[tuple[str, str, int]] = Counter()
        for payout, case in paid:
            assert payout.executed_by and payout.executed_by != payout.approved_by, (case.reference, payout)
            for ref in (case.decision or {}).get("transfers") or []:
                per_transfer[(payout.network, str(ref["tx_hash"]).lower(), int(ref["index"]))] += 1
        assert all(n == 1 for n in per_transfer.values()), per_transfer
        held = session.exec(select(PaidTransfer)).all()
        assert len({(h.network, h.tx_hash, h.transfer_index) for h in held}) == len(held)
        events = session.exec(select(CaseEvent).order_by(col(CaseEvent.id))).all()
        cases = {c.id: c for c in session.exec(select(Case)).all()}
    preparers: dict[int | None, set[str]] = {}
    for event in events:
        if event.action in PREPARING_ACTIONS and event.actor_role in ("specialist", "approver", "admin"):
            preparers.setdefault(event.case_id, set()).add(event.actor)
        if event.action == "approve" and event.details.get("four_eyes"):
            assert event.actor not in preparers.get(event.case_id, set()), (cases[event.case_id].reference, event)
            assert event.actor_role in ("approver", "admin")


steps = st.lists(st.tuples(st.integers(0, 59), st.integers(0, 3), st.sampled_from(OPERATORS)),
                 min_size=5, max_size=40)


def test_no_transfer_paid_twice_and_never_by_one_person(service: CaseService) -> None:
    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(plan=steps, refund=st.booleans(), big=st.booleans())
    def run(plan: list[tuple[int, int, Actor]], refund: bool, big: bool) -> None:
        value = Decimal("5000") if big else Decimal("50")
        references = open_pair(service, refund=refund, value=value) + open_pair(service, refund=not refund,
                                                                                 value=value)
        for choice, which, actor in plan:
            attempt(service, choice, references[which], actor)
        check_invariants(service)

    run()
