"""Payouts (recovery.payouts through the service layer) on real anvil chains, on SQLite and PostgreSQL.

Every rule is attacked: refunds really sent from our deposit addresses (anvil impersonation) to the
wrong place, short, in another token, from a stranger; hashes that prove nothing; one transfer
appealed twice; a case paid, closed, reopened and approved again; the approver paying.
"""

from __future__ import annotations

import threading
from decimal import Decimal

import pytest
from sqlmodel import col, select

from app.demo.chainworld import impersonate, random_hash, send_all, token_transfer
from recovery.checking import ChainGateway
from recovery.db import Database
from recovery.errors import Conflict, Forbidden, InvalidTransition, ValidationFailed
from recovery.intake import validate_appeal
from recovery.models import CaseEvent, CreditedDeposit, PaidTransfer, Payout
from recovery.recheck import Recheck, RecheckOptions, RecheckSummary
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.test_batch_recheck import appeal, user_address

SPECIALIST = Actor("maria", Role.SPECIALIST)
OTHER_SPECIALIST = Actor("sam", Role.SPECIALIST)
APPROVER = Actor("omar", Role.APPROVER)
SECOND_APPROVER = Actor("olga", Role.APPROVER)
ADMIN = Actor("ada", Role.ADMIN)
PEPE_UNITS = 5000 * 10**18
#: PEPE has no price: a specialist values it at PEPE_PRICE (5000 PEPE = 500 USD), so the unlisted-token
#: rule's 80 USD flat fee is 800 PEPE and the refund is the rest (recovery.valuation)
PEPE_PRICE = "0.1"
PEPE_NET_UNITS = 4200 * 10**18


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> CaseService:
    return CaseService(database, evm_testbed.config, clock)


def recheck(service: CaseService) -> RecheckSummary:
    if isinstance(service.clock, Clock):
        service.clock.advance(minutes=5)
    return Recheck(service, ChainGateway(service.config), RecheckOptions()).run()


def version(service: CaseService, reference: str) -> int:
    return service.get(reference).case.version


def decided(service: CaseService, testbed: EvmTestbed, user: str, token: str, amount: int) -> tuple[str, str, str]:
    """A deposit of ``amount`` of ``token`` (a listed symbol or a contract) from FUNDER to a new
    address of ``user`` on ethereum, appealed and decided; returns (reference, tx hash, address)."""
    address = user_address(service, user)
    tx = testbed.send_token("ethereum", token, address, amount)
    testbed.mine("ethereum", 12)
    reference = appeal(service, user, "ethereum", token, tx, address)
    recheck(service)
    assert service.get(reference).case.status == "in_review"
    return reference, tx, address


def approved_refund(service: CaseService, testbed: EvmTestbed, user: str,
                    units: int = PEPE_UNITS) -> tuple[str, str, str]:
    """An unlisted-token deposit (refund, value unknown: four eyes), valued, sent and approved."""
    token = testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**40)
    reference, _tx, address = decided(service, testbed, user, token, units)
    service.set_valuation(reference, SPECIALIST, expected_version=version(service, reference), price_usd=PEPE_PRICE,
                          source="test quote", reason="no listed price")
    service.send_for_approval(reference, SPECIALIST, expected_version=version(service, reference))
    service.approve(reference, APPROVER, expected_version=version(service, reference))
    return reference, token, address


def pay(testbed: EvmTestbed, sender: str, token: str, to: str, units: int) -> str:
    url = testbed.url("ethereum")
    impersonate(url, sender)
    [tx] = send_all(url, [token_transfer("ethereum", sender, token, to, units)])
    return tx


def settle(service: CaseService, testbed: EvmTestbed) -> RecheckSummary:
    testbed.mine("ethereum", 12)
    return recheck(service)


# ----------------------------------------------------------------------------------------------- the payout


def test_approval_fixes_the_exact_payout(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, "carol")
    payout = cases.payout(reference)
    assert payout is not None and payout.state == "approved"
    assert (payout.kind, payout.network, payout.decimals) == ("refund", "ethereum", 18)
    assert (payout.contract or "").lower() == token.lower()
    assert (payout.from_address.lower(), payout.to_address.lower()) == (address.lower(), FUNDER.lower())  # type: ignore[union-attr]
    assert (payout.amount_units, payout.amount, payout.approved_by) == (Decimal(PEPE_NET_UNITS), Decimal(4200),
                                                                        "omar")
    [approval] = [e for e in cases.get(reference).events if e.action == "approve"]
    assert approval.details["payout"]["amount_units"] == str(PEPE_NET_UNITS)
    # no price: the fee comes from the specialist's valuation, the rest goes back
    assert approval.details["payout"]["fee_undetermined"] is False
    assert approval.details["valuation"]["price_usd"] == PEPE_PRICE
    assert [r.id for _c, r in cases.payouts_waiting(kind="refund")] == [payout.id]


def test_the_payout_of_an_amount_wider_than_28_digits_is_exact(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    """1.2 trillion of an 18-decimal token (31 digits): the default decimal context rounded the stored
    net amount and its base units, so the payout would not have been what arrived minus the fee."""
    units = 1_234_567_890_123_123_456_789_012_345_679
    reference, _token, _address = approved_refund(cases, evm_testbed, "whale", units)
    payout = cases.payout(reference)
    assert payout is not None
    net_units = units - 800 * 10**18  # the unlisted-token rule's 80 USD flat fee at 0.1 USD
    assert payout.amount_units == Decimal(net_units)
    assert payout.amount == Decimal("1234567889323.123456789012345679")  # written out: "- 800" would round
    assert cases.get(reference).case.amount == Decimal("1234567890123.123456789012345679")


def test_a_refund_that_pays_what_was_approved_is_refunded(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, "dora")
    refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS)
    cases.record_refund(reference, refund, SPECIALIST, expected_version=version(cases, reference))
    summary = settle(cases, evm_testbed)
    case = cases.get(reference).case
    assert (summary.refunds_confirmed, case.status, case.flags) == (1, "refunded", [])
    payout = cases.payout(reference)
    assert payout is not None and payout.state == "confirmed" and payout.proof is not None
    assert payout.proof["outcome"] == "confirmed"


@pytest.mark.parametrize("attack", ["another_address", "short", "another_token", "from_a_stranger"])
def test_a_refund_that_does_not_prove_the_payout_is_never_refunded(
    cases: CaseService, evm_testbed: EvmTestbed, attack: str
) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, f"eve-{attack}")
    if attack == "another_address":
        refund = pay(evm_testbed, address, token, fresh_address(), PEPE_NET_UNITS)
    elif attack == "short":
        refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS - 1)
    elif attack == "another_token":
        other = evm_testbed.new_token("ethereum", "Other", "OTH", 18, 10**30)
        evm_testbed.send_token("ethereum", other, address, PEPE_NET_UNITS)
        refund = pay(evm_testbed, address, other, FUNDER, PEPE_NET_UNITS)
    else:  # the right token and amount to the right address, but not from an address we hold
        stranger = fresh_address()
        evm_testbed.send_token("ethereum", token, stranger, PEPE_NET_UNITS)
        refund = pay(evm_testbed, stranger, token, FUNDER, PEPE_NET_UNITS)
    cases.record_refund(reference, refund, SPECIALIST, expected_version=version(cases, reference))
    summary = settle(cases, evm_testbed)
    case = cases.get(reference).case
    assert summary.refunds_mismatched == 1 and summary.refunds_confirmed == 0
    assert (case.status, "refund_mismatch" in case.flags) == ("in_review", True)
    last = cases.get(reference).events[-1]
    assert last.action == "refund_mismatch"
    assert last.details["expected"]["amount_units"] == str(PEPE_NET_UNITS) and last.details["problems"]
    payout = cases.payout(reference)
    assert payout is not None and payout.state == "mismatch"
    # not in the hand-off list, and not approvable again by the same person
    assert all(c.reference != reference for c, _ in cases.payouts_waiting())
    assert recheck(cases).changed == 0  # a person must look: the re-check does not move it again


def test_an_overpaid_refund_is_refunded_and_flagged(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, "fay")
    evm_testbed.send_token("ethereum", token, address, 10**18)  # the deposit address holds a little more
    refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS + 10**18)
    cases.record_refund(reference, refund, SPECIALIST, expected_version=version(cases, reference))
    settle(cases, evm_testbed)
    case = cases.get(reference).case
    assert (case.status, case.flags) == ("refunded", ["refund_overpaid"])


def test_hashes_that_prove_nothing_are_refused_when_recorded(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    first, token, address = approved_refund(cases, evm_testbed, "gil")
    second, _token2, _address2 = approved_refund(cases, evm_testbed, "gus")
    deposit_tx = cases.get(first).case.tx_hash
    before = version(cases, first)
    with pytest.raises(Conflict, match="deposit transaction"):
        cases.record_refund(first, deposit_tx, SPECIALIST, expected_version=before)
    with pytest.raises(Conflict, match="deposit transaction"):  # another case's deposit, any case
        cases.record_refund(first, cases.get(second).case.tx_hash, SPECIALIST, expected_version=before)
    refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS)
    cases.record_refund(first, refund, SPECIALIST, expected_version=before)
    with pytest.raises(Conflict, match="already closes"):
        cases.record_refund(second, refund, SPECIALIST, expected_version=version(cases, second))
    assert cases.get(second).case.status == "approved" and version(cases, first) == before + 1


def test_overdue_refund_is_flagged(cases: CaseService, evm_testbed: EvmTestbed, clock: Clock) -> None:
    reference, _token, _address = approved_refund(cases, evm_testbed, "hal")
    cases.record_refund(reference, random_hash(), SPECIALIST, expected_version=version(cases, reference))
    assert recheck(cases).refunds_overdue == 0
    clock.advance(hours=cases.config.policy.refund_overdue_hours)
    summary = recheck(cases)
    case = cases.get(reference).case
    assert (summary.refunds_overdue, case.status, case.flags) == (1, "refund_pending", ["refund_overdue"])
    assert recheck(cases).refunds_overdue == 0  # flagged once


def test_a_payout_change_needs_a_new_approval_by_someone_else(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, "ida")
    new_home = fresh_address()
    with pytest.raises(ValidationFailed, match="payout change"):  # not through the back door
        cases.record_refund(reference, random_hash(), SPECIALIST, expected_version=version(cases, reference),
                            refund_address=new_home)
    changed = cases.change_payout(reference, SPECIALIST, expected_version=version(cases, reference),
                                  reason="the sender's exchange asked for its hot wallet", to_address=new_home)
    assert changed.status == "in_review" and cases.payout(reference) is None
    sent = cases.send_for_approval(reference, OTHER_SPECIALIST, expected_version=changed.version)
    with pytest.raises(Forbidden, match="changed the payout"):
        cases.approve(reference, Actor("maria", Role.ADMIN), expected_version=sent.version)
    cases.approve(reference, SECOND_APPROVER, expected_version=sent.version)
    payout = cases.payout(reference)
    assert payout is not None and payout.to_address and payout.to_address.lower() == new_home.lower()
    refund = pay(evm_testbed, address, token, new_home, PEPE_NET_UNITS)
    cases.record_refund(reference, refund, SPECIALIST, expected_version=version(cases, reference))
    settle(cases, evm_testbed)
    assert cases.get(reference).case.status == "refunded"


# ----------------------------------------------------------------------------------------------- paid once


def test_one_transfer_appealed_on_two_networks_is_paid_once(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    address = user_address(cases, "jo", ("ethereum", "bsc"))
    tx = evm_testbed.send_token("bsc", "USDT", address, 200 * 10**18)
    evm_testbed.mine("bsc", 20)
    claimed_eth = appeal(cases, "jo", "ethereum", "USDT", tx, address)
    claimed_bsc = appeal(cases, "jo", "bsc", "USDT", tx, address)
    recheck(cases)
    for reference in (claimed_eth, claimed_bsc):
        assert cases.get(reference).case.resolution == "credit", reference
    cases.approve(claimed_eth, APPROVER, expected_version=version(cases, claimed_eth))
    with pytest.raises(Conflict, match=claimed_eth):
        cases.approve(claimed_bsc, SECOND_APPROVER, expected_version=version(cases, claimed_bsc))
    cases.mark_credited(claimed_eth, SPECIALIST, expected_version=version(cases, claimed_eth), ledger_reference="L-1")
    assert cases.get(claimed_bsc).case.status == "in_review"
    with cases.db.read() as session:
        [held] = session.exec(select(PaidTransfer)).all()
        assert (held.network, held.tx_hash) == ("bsc", tx.lower())


def test_credited_closed_reopened_is_never_paid_again(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, tx, address = decided(cases, evm_testbed, "kim", "USDT", 2000 * 10**6)  # above the threshold
    with pytest.raises(Forbidden, match="send it for approval"):
        cases.approve(reference, APPROVER, expected_version=version(cases, reference))
    cases.send_for_approval(reference, SPECIALIST, expected_version=version(cases, reference))
    cases.approve(reference, APPROVER, expected_version=version(cases, reference))
    with pytest.raises(Forbidden, match="approved this payout"):
        cases.mark_credited(reference, APPROVER, expected_version=version(cases, reference), ledger_reference="L-2")
    with pytest.raises(ValidationFailed, match="ledger_reference"):
        cases.mark_credited(reference, SPECIALIST, expected_version=version(cases, reference))
    cases.mark_credited(reference, SPECIALIST, expected_version=version(cases, reference), ledger_reference="L-2")
    with cases.db.read() as session:  # the book is written in the same transaction
        [book] = session.exec(select(CreditedDeposit).where(CreditedDeposit.tx_hash == tx)).all()
        assert (book.user_id, book.asset, book.amount) == ("kim", "USDT", Decimal(2000))
    cases.close(reference, SPECIALIST, expected_version=version(cases, reference))
    cases.reopen(reference, "customer says it is missing", SECOND_APPROVER, expected_version=version(cases, reference))
    cases.send_for_approval(reference, OTHER_SPECIALIST, expected_version=version(cases, reference))
    with pytest.raises(Forbidden, match="prepared"):  # reopening is preparing
        cases.approve(reference, SECOND_APPROVER, expected_version=version(cases, reference))
    with pytest.raises(Conflict, match="already paid"):
        cases.approve(reference, APPROVER, expected_version=version(cases, reference))
    # a later appeal of the same transfer is already credited
    other = appeal(cases, "kim", "bsc", "USDT", tx, address)
    recheck(cases)
    assert cases.get(other).case.category == "already_credited"


def test_notes_and_assignment_do_not_bar_the_approver(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, _tx, _address = decided(cases, evm_testbed, "lea", "USDT", 3000 * 10**6)
    cases.note(reference, "looked at it", APPROVER, expected_version=version(cases, reference))
    cases.assign(reference, "omar", APPROVER, expected_version=version(cases, reference))
    cases.send_for_approval(reference, SPECIALIST, expected_version=version(cases, reference), comment="all good")
    approved = cases.approve(reference, APPROVER, expected_version=version(cases, reference))
    assert approved.status == "approved"


def test_an_intake_filer_cannot_approve_above_the_threshold(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    address = user_address(cases, "max")
    tx = evm_testbed.send_token("ethereum", "USDT", address, 9000 * 10**6)
    evm_testbed.mine("ethereum", 12)
    draft = validate_appeal(cases.config, {"network": "ethereum", "asset": "USDT", "tx_hash": tx,
                                           "deposit_address": address}, "max")
    case, _ = cases.submit(draft, ADMIN)  # filed by an admin on the user's behalf (intake)
    reference = case.reference or ""
    recheck(cases)
    cases.send_for_approval(reference, ADMIN, expected_version=version(cases, reference))
    with pytest.raises(Forbidden, match="prepared"):
        cases.approve(reference, ADMIN, expected_version=version(cases, reference))
    assert cases.approve(reference, APPROVER, expected_version=version(cases, reference)).status == "approved"


def test_two_workers_confirming_one_refund_settle_it_once(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, token, address = approved_refund(cases, evm_testbed, "ned")
    refund = pay(evm_testbed, address, token, FUNDER, PEPE_NET_UNITS)
    recorded = cases.record_refund(reference, refund, SPECIALIST, expected_version=version(cases, reference))
    evm_testbed.mine("ethereum", 12)
    observation = ChainGateway(cases.config).adapter("ethereum").lookup(refund)
    outcomes: list[str] = []
    start = threading.Barrier(2)

    def worker() -> None:
        start.wait()
        try:
            _case, outcome = cases.settle_refund(reference, observation, expected_version=recorded.version)
            outcomes.append(outcome)
        except Conflict:
            outcomes.append("conflict")

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["confirmed", "conflict"]
    with cases.db.read() as session:
        confirmations = session.exec(select(CaseEvent).where(CaseEvent.action == "refund_confirmed")).all()
        payouts = session.exec(select(Payout).where(col(Payout.refund_tx_hash) == refund.lower())).all()
    assert len(confirmations) == 1 and [p.state for p in payouts] == ["confirmed"]
    assert cases.get(reference).case.status == "refunded"


def test_a_refund_cannot_be_recorded_before_approval_or_twice(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    reference, _tx, _address = decided(cases, evm_testbed, "ola", token, PEPE_UNITS)
    with pytest.raises(InvalidTransition):
        cases.record_refund(reference, random_hash(), SPECIALIST, expected_version=version(cases, reference))
