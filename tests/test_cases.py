"""The service layer on SQLite and PostgreSQL: creation, idempotency, transitions, roles, versions."""

from __future__ import annotations

import secrets
import threading
from decimal import Decimal

import pytest
from eth_account import Account
from sqlmodel import select

from recovery.errors import Conflict, Forbidden, InvalidTransition, NotFound, ValidationFailed
from recovery.intake import AppealDraft, validate_appeal
from recovery.lifecycle import ACTIONS, allowed_actions
from recovery.models import Case, CaseEvent
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import CaseStatus, Role

SPECIALIST = Actor("sam", Role.SPECIALIST)
APPROVER = Actor("alex", Role.APPROVER)
AUDITOR = Actor("audrey", Role.AUDITOR)


def new_draft(user: str = "user-1", network: str = "ethereum", tx_hash: str | None = None) -> AppealDraft:
    return AppealDraft(
        user_id=user,
        network=network,
        asset="USDT",
        tx_hash=tx_hash or "0x" + secrets.token_hex(32),
        deposit_address=Account.create().address,
        memo=None,
        claimed_amount=Decimal("125.5"),
    )


def events_of(service: CaseService, reference: str) -> list[CaseEvent]:
    return service.get(reference).events


def test_submit_opens_a_case_with_a_reference_and_an_event(service: CaseService, clock) -> None:  # type: ignore[no-untyped-def]
    case, created = service.submit(new_draft(), Actor("user-1", Role.USER))
    assert created
    assert case.reference == f"RC-{case.id:06d}"
    assert case.status == CaseStatus.SUBMITTED
    assert case.version == 1
    assert case.sla_due_at is not None and (case.sla_due_at - clock.now).total_seconds() == 72 * 3600
    stored = service.get(case.reference)
    assert stored.case.claimed_amount == Decimal("125.5")
    [event] = stored.events
    assert (event.action, event.from_status, event.to_status, event.actor) == ("submit", None, "submitted", "user-1")
    assert event.details["claimed_amount"] == "125.5"


def test_same_user_same_transaction_returns_the_existing_case(service: CaseService) -> None:
    draft = new_draft()
    first, created = service.submit(draft, Actor("user-1", Role.USER))
    again, created_again = service.submit(draft, Actor("user-1", Role.USER))
    assert created and not created_again
    assert again.reference == first.reference
    assert service.count() == 1
    assert len(events_of(service, first.reference or "")) == 1


def test_another_users_appeal_for_the_same_transaction_is_contested(service: CaseService) -> None:
    tx = "0x" + secrets.token_hex(32)
    first, _ = service.submit(new_draft("user-1", tx_hash=tx), Actor("user-1", Role.USER))
    second, created = service.submit(new_draft("user-2", tx_hash=tx), Actor("user-2", Role.USER))
    assert created
    assert "contested" in second.flags
    first_now = service.get(first.reference or "")
    assert "contested" in first_now.case.flags
    assert first_now.case.version == 2
    assert [e.action for e in first_now.events] == ["submit", "flag"]


def test_users_open_appeals_only_for_themselves(service: CaseService) -> None:
    with pytest.raises(Forbidden):
        service.submit(new_draft("user-1"), Actor("user-2", Role.USER))
    with pytest.raises(Forbidden):
        service.submit(new_draft("user-1"), AUDITOR)
    assert service.count() == 0


def test_stale_version_is_a_conflict_and_changes_nothing(service: CaseService) -> None:
    case, _ = service.submit(new_draft(), SYSTEM)
    ref = case.reference or ""
    service.assign(ref, "sam", SPECIALIST, expected_version=1)
    with pytest.raises(Conflict) as caught:
        service.assign(ref, "kim", SPECIALIST, expected_version=1)
    assert caught.value.current_version == 2
    view = service.get(ref)
    assert view.case.assignee == "sam" and view.case.version == 2
    assert [e.action for e in view.events] == ["submit", "assign"]


def test_roles_are_checked_for_every_action(service: CaseService) -> None:
    case, _ = service.submit(new_draft(), SYSTEM)
    ref = case.reference or ""
    with pytest.raises(Forbidden):
        service.assign(ref, "audrey", AUDITOR, expected_version=1)
    with pytest.raises(Forbidden):
        service.note(ref, "hi", Actor("user-1", Role.USER), expected_version=1)
    with pytest.raises(Forbidden):
        service.act(ref, "refund_confirmed", SPECIALIST, expected_version=1)
    assert service.get(ref).case.version == 1


def test_transitions_follow_the_table(service: CaseService) -> None:
    case, _ = service.submit(new_draft(), SYSTEM)
    ref = case.reference or ""
    with pytest.raises(InvalidTransition, match="cannot approve a case that is submitted"):
        service.approve(ref, APPROVER, expected_version=1)
    with pytest.raises(InvalidTransition):
        service.provide_info(ref, "here", Actor("user-1", Role.USER), expected_version=1)
    moved = service.act(ref, "chain_result", SYSTEM, expected_version=1, to_status=CaseStatus.IN_REVIEW)
    assert moved.status == CaseStatus.IN_REVIEW
    asked = service.request_info(ref, "Please send a screenshot of the withdrawal.", SPECIALIST, expected_version=2)
    assert asked.status == CaseStatus.NEEDS_INFO
    answered = service.provide_info(ref, "attached", Actor("user-1", Role.USER), expected_version=3)
    assert answered.status == CaseStatus.IN_REVIEW
    rejected = service.reject(ref, "ownership_not_proven", SPECIALIST, expected_version=4)
    assert rejected.status == CaseStatus.REJECTED and rejected.resolved_at is not None
    closed = service.close(ref, SYSTEM, expected_version=5)
    assert closed.status == CaseStatus.CLOSED
    statuses = [(e.from_status, e.to_status) for e in service.get(ref).events]
    assert statuses == [
        (None, "submitted"), ("submitted", "in_review"), ("in_review", "needs_info"),
        ("needs_info", "in_review"), ("in_review", "rejected"), ("rejected", "closed"),
    ]


def test_a_user_cannot_act_on_another_users_case(service: CaseService) -> None:
    case, _ = service.submit(new_draft("user-1"), SYSTEM)
    with pytest.raises(NotFound):
        service.withdraw(case.reference or "", Actor("user-2", Role.USER), expected_version=1)
    with pytest.raises(NotFound):
        service.get(case.reference or "", for_user="user-2")


def test_required_details_are_named(service: CaseService) -> None:
    case, _ = service.submit(new_draft(), SYSTEM)
    with pytest.raises(ValidationFailed) as caught:
        service.reject(case.reference or "", "", SPECIALIST, expected_version=1)
    assert caught.value.errors[0].field == "reason_code"
    with pytest.raises(ValidationFailed) as caught:
        service.override_category(case.reference or "", "wrong_network", "", SPECIALIST, expected_version=1)
    assert [e.field for e in caught.value.errors] == ["reason"]


def test_concurrent_actors_on_one_case_do_not_clobber_each_other(service: CaseService) -> None:
    case, _ = service.submit(new_draft(), SYSTEM)
    ref = case.reference or ""
    outcomes: list[str] = []
    lock = threading.Lock()
    barrier = threading.Barrier(8)

    def worker(index: int) -> None:
        barrier.wait()
        try:
            service.assign(ref, f"op{index}", SPECIALIST, expected_version=1)
            result = f"ok:op{index}"
        except Conflict:
            result = "conflict"
        with lock:
            outcomes.append(result)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    winners = [o for o in outcomes if o.startswith("ok")]
    assert len(outcomes) == 8 and len(winners) == 1 and outcomes.count("conflict") == 7
    view = service.get(ref)
    assert view.case.version == 2 and f"ok:{view.case.assignee}" == winners[0]
    assert [e.action for e in view.events] == ["submit", "assign"]


def test_concurrent_submissions_of_the_same_appeal_make_one_case(service: CaseService) -> None:
    draft = new_draft()
    results: list[bool] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        barrier.wait()
        _, created = service.submit(draft, Actor(draft.user_id, Role.USER))
        results.append(created)

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert sorted(results) == [False] * 5 + [True]
    with service.db.read() as session:
        assert len(session.exec(select(Case)).all()) == 1


def test_auditors_have_no_actions_and_the_table_is_consistent() -> None:
    for status in CaseStatus:
        assert allowed_actions(status, Role.AUDITOR) == []
    for name, rule in ACTIONS.items():
        for source, target in rule.moves.items():
            assert isinstance(source, CaseStatus), name
            assert target is None or isinstance(target, CaseStatus), name
    assert "approve" not in allowed_actions(CaseStatus.SUBMITTED, Role.APPROVER)
    assert "approve" in allowed_actions(CaseStatus.IN_REVIEW, Role.SPECIALIST)


def test_intake_validation_names_every_bad_field(default_config) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValidationFailed) as caught:
        validate_appeal(
            default_config,
            {"network": "ethereum", "asset": "US DT!", "tx_hash": "0x1234", "deposit_address": "0xnothex",
             "amount": "-3", "memo": "123"},
            user_id="user-1",
        )
    fields = sorted(e.field for e in caught.value.errors)
    assert fields == ["amount", "asset", "deposit_address", "memo", "tx_hash"]
    with pytest.raises(ValidationFailed) as caught:
        validate_appeal(default_config, {"network": "dogechain"}, user_id="user-1")
    assert {e.field for e in caught.value.errors} == {"network", "asset", "tx_hash", "deposit_address"}


def test_intake_normalizes_for_the_network(default_config) -> None:  # type: ignore[no-untyped-def]
    address = Account.create().address
    tx = "0x" + secrets.token_hex(32).upper()
    draft = validate_appeal(
        default_config,
        {"network": "bsc", "asset": "usdt", "tx_hash": tx[:2] + tx[2:], "deposit_address": address.lower(),
         "amount": "10.50"},
        user_id="user-9",
    )
    assert draft.asset == "USDT"
    assert draft.deposit_address == address
    assert draft.tx_hash == tx.lower().replace("0X", "0x")
    assert draft.claimed_amount == Decimal("10.50")
    unlisted = validate_appeal(
        default_config,
        {"network": "bsc", "asset": address.lower(), "tx_hash": tx, "deposit_address": address},
        user_id="user-9",
    )
    assert unlisted.asset == address  # an unlisted token by its contract, checksummed


@pytest.mark.parametrize(("category", "flags", "code"), [
    ("tx_failed", [], "tx_failed"),
    ("tx_not_found", [], "tx_not_found"),
    ("already_credited", [], "already_credited"),
    ("not_our_address", ["other_users_address"], "not_our_address"),
    ("missing_memo", [], "ownership_not_proven"),
    ("wrong_network", ["expired"], "expired"),
    ("unlisted_token", ["not_economical"], "not_economical"),
    ("wrong_network", [], "not_recoverable"),
])
def test_a_rejection_carries_the_reason_that_matches_the_finding(category: str, flags: list[str], code: str) -> None:
    """Issue 21: a failed transaction is rejected as tx_failed, never as other; an already credited
    deposit as already_credited, never as duplicate."""
    from recovery.services import REJECTION_REASONS, rejection_reason_for

    case = Case(user_id="u", network="ethereum", asset="USDT", tx_hash="0x" + "ab" * 32,
                deposit_address="0x" + "11" * 20, status="in_review", category=category, flags=flags)
    assert rejection_reason_for(case) == code
    assert code in REJECTION_REASONS
