"""Eight people (threads) acting on the same cases at once, through the service layer, on SQLite
and PostgreSQL: only allowed transitions happen, each exactly once, and every loser is told."""

from __future__ import annotations

import random
import threading
from collections import Counter
from decimal import Decimal
from typing import Any

from sqlmodel import Session

from recovery.audit import verify_chain
from recovery.config import Config
from recovery.errors import Conflict, InvalidTransition
from recovery.lifecycle import ACTIONS
from recovery.models import Case
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import CaseStatus, Role
from tests.test_cases import new_draft

THREADS = 8
CASES = 12
ROUNDS = 40
PEOPLE = [Actor(f"spec{i}", Role.SPECIALIST) for i in range(4)] + [Actor(f"appr{i}", Role.APPROVER) for i in range(4)]


def decision_paying(case: Case, units: int, config: Config) -> dict[str, Any]:
    """The stored decision of a USDT deposit of ``units`` to the case's address (what a payout reads)."""
    listed = config.asset_by_symbol(case.network, "USDT")
    assert listed is not None
    contract = str(listed.contract)
    transfer = {"network": case.network, "tx_hash": case.tx_hash, "index": 0, "kind": "token",
                "sender": "0x" + "5e" * 20, "recipient": case.deposit_address, "contract": contract,
                "amount_units": str(units), "amount": str(Decimal(units).scaleb(-6))}
    return {"transfers": [transfer], "asset": "USDT", "refund_address": transfer["sender"]}


def in_review(service: CaseService) -> list[str]:
    """Cases the chain check put in review with a small credit to approve (below four-eyes)."""
    references = []
    for i in range(CASES):
        case, _ = service.submit(new_draft(user=f"user-{i}"), SYSTEM)

        def decide(_session: Session, c: Case) -> dict[str, Any]:
            c.resolution, c.recoverable, c.category = "credit", "yes", "uncredited_valid"
            c.value_usd = c.amount = c.net_amount = Decimal("50")
            c.credited_user_id, c.deposit_network = c.user_id, c.network
            c.decision = decision_paying(c, 50 * 10**6, service.config)
            return {"category": c.category}

        service.act(case.reference or "", "chain_result", SYSTEM, expected_version=case.version,
                    to_status=CaseStatus.IN_REVIEW, mutate=decide)
        references.append(case.reference or "")
    return references


def test_eight_threads_make_only_allowed_transitions_once_each(service: CaseService) -> None:
    references = in_review(service)
    barrier = threading.Barrier(THREADS)
    outcomes: Counter[str] = Counter()
    wins: list[tuple[str, str]] = []
    lock = threading.Lock()
    errors: list[BaseException] = []

    def worker(index: int) -> None:
        rng = random.Random(index)
        actor = PEOPLE[index]
        barrier.wait()
        try:
            for _ in range(ROUNDS):
                reference = rng.choice(references)
                version = service.get(reference).case.version
                action = rng.choice(["approve", "reject", "assign"])
                try:
                    if action == "approve":
                        service.approve(reference, actor, expected_version=version)
                    elif action == "reject":
                        service.reject(reference, "other", actor, expected_version=version)
                    else:
                        service.assign(reference, actor.name, actor, expected_version=version)
                except Conflict:
                    result = "conflict"
                except InvalidTransition:
                    result = "invalid"
                else:
                    result = "ok"
                    with lock:
                        wins.append((reference, action))
                with lock:
                    outcomes[result] += 1
        except BaseException as exc:  # surfaced below: a thread must not die silently
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors, errors
    assert outcomes["conflict"] > 0 and outcomes["ok"] > CASES, outcomes  # they really raced

    won = {ref: Counter(action for r, action in wins if r == ref) for ref in references}
    for reference in references:
        view = service.get(reference)
        acted = [e for e in view.events if e.action in ("approve", "reject", "assign")]
        # every success left exactly one event, and every event is a success someone was told of
        assert Counter(e.action for e in acted) == won[reference]
        # the path is allowed by the table, and no status was entered twice
        path = [e.to_status for e in view.events if e.from_status != e.to_status]
        assert len(path) == len(set(path)), path
        for event in view.events:
            rule = ACTIONS[event.action]
            if event.from_status is not None and rule.moves:
                assert CaseStatus(event.from_status) in rule.moves, event
        assert won[reference]["approve"] <= 1 and won[reference]["reject"] <= 1
        assert view.case.status == view.events[-1].to_status
        assert view.case.version == len(view.events)
    with service.db.read() as session:
        assert verify_chain(session).ok
