"""Ownership evidence through the service layer (recovery.evidence), on SQLite and PostgreSQL.

Deposits are real: on anvil, a key generated here with eth_account sends USDT to an exchange wallet
(an unattributed deposit); on the XRP Ledger, the recorded 329.1748 XRP payment to a shared address
under a tag nobody holds (the replay server). Keys are made in the tests with each family's library.
"""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType

import pytest
from eth_account import Account
from eth_account.messages import encode_defunct
from sqlmodel import col, select
from xrpl.core import keypairs

from app.demo.chainworld import impersonate
from recovery.audit import verify_chain
from recovery.audit_rows import rows_against_events
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.errors import Forbidden, InvalidTransition
from recovery.evidence import EvidenceRefused, EvidenceService, detect_media_type
from recovery.evidence_records import EvidenceDocument, OwnershipEvidence
from recovery.intake import validate_appeal
from recovery.models import Case, CaseEvent, ChainObservation, DepositAddress
from recovery.recheck import Recheck, RecheckOptions
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address

MARIA = Actor("maria", Role.SPECIALIST)
SAM = Actor("sam", Role.SPECIALIST)
OMAR = Actor("omar", Role.APPROVER)
USDT = 10**6

#: the recorded XRP Ledger payment: 329.1748 XRP to a shared address with tag 1288227521 (nobody's)
SHARED_XRPL = "rsRy14FvipgqudiGmptJBhr1RtpsgfzKMM"
XRPL_TX = "225B05E7CC17C3F6F58EFA0F2D11C655FEC282922ED4808C267F5615ED56A572"
XRPL_SENDER = "rUYHZ71yXAS54ZQNvvooLX7rFtZydXjnP"

PDF = b"%PDF-1.7\n1 0 obj << /Type /Catalog >> endobj\ntrailer << /Root 1 0 R >>\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + b"\x00" * 64


# ------------------------------------------------------------------------------------------ helpers


def recheck(service: CaseService) -> None:
    if isinstance(service.clock, Clock):
        service.clock.advance(minutes=5)
    Recheck(service, ChainGateway(service.config), RecheckOptions()).run()


def appeal(service: CaseService, user: str, network: str, asset: str, tx_hash: str, address: str,
           memo: str | None = None) -> str:
    raw = {"network": network, "asset": asset, "tx_hash": tx_hash, "deposit_address": address}
    if memo:
        raw["memo"] = memo
    case, _ = service.submit(validate_appeal(service.config, raw, user), Actor(user, Role.USER))
    return case.reference or ""


def version(service: CaseService, reference: str) -> int:
    return service.get(reference).case.version


def events(service: CaseService, reference: str, action: str) -> list[CaseEvent]:
    return [e for e in service.get(reference).events if e.action == action]


def audit_is_whole(db: Database) -> None:
    with db.read() as session:
        assert verify_chain(session).ok
        assert rows_against_events(session) == []


def eth_sign(key: bytes, message: str) -> str:
    return "0x" + bytes(Account.sign_message(encode_defunct(text=message), key).signature).hex()


@dataclasses.dataclass
class Wallet:
    """An EVM deposit to an exchange wallet, sent from a key generated here, appealed and decided."""

    service: CaseService
    evidence: EvidenceService
    reference: str
    key: bytes
    sender: str
    tx_hash: str


@pytest.fixture
def wallet(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> Wallet:
    service = CaseService(database, evm_testbed.config, clock)
    account = Account.create()
    hot = fresh_address()
    with database.write() as session:  # an exchange wallet: kind wallet, no user
        session.add(DepositAddress(user_id="", network="ethereum", address=hot, kind="wallet"))
    evm_testbed.send_native("ethereum", account.address, 10**18)
    evm_testbed.send_token("ethereum", "USDT", account.address, 100 * USDT)
    impersonate(evm_testbed.url("ethereum"), account.address)
    tx = evm_testbed.send_token("ethereum", "USDT", hot, 100 * USDT, sender=account.address)
    evm_testbed.mine("ethereum", 12)
    reference = appeal(service, "alice", "ethereum", "USDT", tx, hot)
    recheck(service)
    return Wallet(service, EvidenceService(database, service.config, clock), reference, bytes(account.key),
                  account.address, tx)


def xrpl_config(replay_config: Config) -> Config:
    return dataclasses.replace(
        replay_config, networks=MappingProxyType({"xrpl": replay_config.network("xrpl")}),
        assets=tuple(a for a in replay_config.assets if a.network == "xrpl"),
        fees=tuple(f for f in replay_config.fees if f.network in ("*", "xrpl")))


@pytest.fixture
def xrpl(database: Database, replay_config: Config) -> tuple[CaseService, EvidenceService]:
    clock = Clock(datetime(2025, 9, 1, tzinfo=UTC))  # a week after the recorded payment: not expired
    config = xrpl_config(replay_config)
    with database.write() as session:  # two users hold tags at the shared address; 1288227521 is nobody's
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
        session.add(DepositAddress(user_id="ada", network="xrpl", address=SHARED_XRPL, memo="5", kind="eoa"))
    return CaseService(database, config, clock), EvidenceService(database, config, clock)


# ------------------------------------------------------------------------------------------ when proof is needed


def test_an_unattributed_deposit_needs_proof_and_the_decision_says_which(wallet: Wallet) -> None:
    case = wallet.service.get(wallet.reference).case
    assert (case.category, case.resolution, case.credited_user_id) == ("unattributed_deposit", "credit", "alice")
    assert case.decision is not None
    proof = case.decision["ownership_proof"]
    assert proof["kinds"] == ["signed_message", "withdrawal_record"]
    assert proof["sender"].lower() == wallet.sender.lower()
    [reason] = [r for r in case.decision["reasons"] if r["code"] == "ownership_proof"]
    assert reason["text"].startswith("Prove that you sent this deposit: ") and not reason["internal"]
    own = wallet.evidence.ownership(wallet.reference, for_user="alice")
    assert (own.required, own.status, own.kinds) == (True, "missing", ("signed_message", "withdrawal_record"))


def test_approval_is_refused_without_evidence_naming_it(wallet: Wallet) -> None:
    with pytest.raises(InvalidTransition, match="ownership not proven") as refused:
        wallet.service.approve(wallet.reference, MARIA, expected_version=version(wallet.service, wallet.reference))
    assert "signed_message or withdrawal_record" in str(refused.value) and "none was given" in str(refused.value)
    assert events(wallet.service, wallet.reference, "approve") == []


def test_a_signature_by_the_sender_is_accepted_by_the_system_and_the_case_can_be_approved(wallet: Wallet) -> None:
    own = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    message = own.challenge.message
    assert wallet.reference in message and wallet.tx_hash in message and own.challenge.nonce in message
    before = version(wallet.service, wallet.reference)
    row = wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER,
                                           signature=eth_sign(wallet.key, message))
    assert (row.kind, row.status, row.reviewer) == ("signed_message", "accepted", "system")
    assert row.verification is not None and row.verification["verified"] is True
    assert str(row.verification["recovered"]).lower() == wallet.sender.lower()
    [given] = events(wallet.service, wallet.reference, "submit_evidence")
    [accepted] = events(wallet.service, wallet.reference, "accept_evidence")
    assert (given.actor, given.details["outcome"]) == ("alice", "verified")
    assert (accepted.actor_role, accepted.details["verification"]["method"]) == ("system", "eip191")
    assert version(wallet.service, wallet.reference) == before + 2
    assert wallet.evidence.ownership(wallet.reference, for_user="alice").status == "accepted"
    # the system's acceptance is not preparing: the specialist may approve (below the threshold)
    case = wallet.service.approve(wallet.reference, MARIA, expected_version=version(wallet.service, wallet.reference))
    assert case.status == "approved"
    [approval] = events(wallet.service, wallet.reference, "approve")
    assert approval.details["ownership_evidence"] == [row.id]
    audit_is_whole(wallet.service.db)


def test_a_signature_by_another_key_is_refused_and_only_the_attempt_is_kept(wallet: Wallet) -> None:
    own = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    other = Account.create()
    with pytest.raises(EvidenceRefused, match="signed by another key") as refused:
        wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER,
                                         signature=eth_sign(bytes(other.key), own.challenge.message))
    assert refused.value.errors[0].field == "signature"
    [attempt] = events(wallet.service, wallet.reference, "submit_evidence")
    assert attempt.details["outcome"] == "refused" and attempt.details["verification"]["verified"] is False
    with wallet.service.db.read() as session:
        assert session.exec(select(OwnershipEvidence)).all() == []
    # the challenge was not used up by a failed attempt: the sender may still sign it
    row = wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER,
                                           signature=eth_sign(wallet.key, own.challenge.message))
    assert row.status == "accepted"
    audit_is_whole(wallet.service.db)


def test_a_signature_over_another_message_is_refused(wallet: Wallet) -> None:
    own = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    tampered = own.challenge.message.replace(wallet.reference, "RC-999999")
    with pytest.raises(EvidenceRefused, match="signed by another key"):
        wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER,
                                         signature=eth_sign(wallet.key, tampered))
    with pytest.raises(InvalidTransition, match="ownership not proven"):
        wallet.service.approve(wallet.reference, MARIA, expected_version=version(wallet.service, wallet.reference))


def test_an_expired_challenge_is_refused(wallet: Wallet) -> None:
    own = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    assert isinstance(wallet.service.clock, Clock)
    wallet.service.clock.advance(minutes=31)
    with pytest.raises(EvidenceRefused, match="expired") as refused:
        wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER,
                                         signature=eth_sign(wallet.key, own.challenge.message))
    assert refused.value.errors[0].field == "challenge"
    fresh = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert fresh.challenge is not None and fresh.challenge.nonce != own.challenge.nonce


def test_a_used_challenge_is_refused(wallet: Wallet) -> None:
    own = wallet.evidence.ownership(wallet.reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    signature = eth_sign(wallet.key, own.challenge.message)
    wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER, signature=signature)
    with pytest.raises(EvidenceRefused, match="already used"):
        wallet.evidence.submit_signature(wallet.reference, "alice", Role.USER, signature=signature)
    assert len(events(wallet.service, wallet.reference, "accept_evidence")) == 1


def test_another_user_cannot_give_evidence_for_a_case(wallet: Wallet) -> None:
    from recovery.errors import NotFound

    with pytest.raises(NotFound):
        wallet.evidence.ownership(wallet.reference, for_user="mallory", issue_challenge=True)
    with pytest.raises(NotFound):
        wallet.evidence.submit_signature(wallet.reference, "mallory", Role.USER, signature="0x00")


# ------------------------------------------------------------------------------------------ the XRP Ledger, recorded


def test_two_appellants_for_one_memo_less_transfer_each_need_proof(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    ada = appeal(service, "ada", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="5")
    recheck(service)
    for reference, user in ((zoe, "zoe"), (ada, "ada")):
        case = service.get(reference).case
        assert (case.category, case.credited_user_id, "contested" in case.flags) == ("wrong_memo", user, True)
        own = evidence.ownership(reference, for_user=user, issue_challenge=True)
        assert own.required and own.status == "missing" and own.challenge is not None
        assert XRPL_SENDER in own.challenge.message
        # the user-facing reasons never say whose the memo is
        assert case.decision is not None
        public = " ".join(r["text"] for r in case.decision["reasons"] if not r["internal"])
        assert "another account" not in public and "Prove that you sent this deposit:" in public
    # neither holds the sender's key: a key of their own (made with xrpl-py) is refused
    public_key, private_key = keypairs.derive_keypair(keypairs.generate_seed())
    own = evidence.ownership(zoe, for_user="zoe", issue_challenge=True)
    assert own.challenge is not None
    signature = keypairs.sign(own.challenge.message.encode().hex(), private_key)
    with pytest.raises(EvidenceRefused, match="signed by another key") as refused:
        evidence.submit_signature(zoe, "zoe", Role.USER, signature=signature, public_key=public_key)
    assert refused.value.errors[0].field == "signature"
    # zoe sends the sending platform's withdrawal record; maria accepts it (preparing the case)
    record = evidence.submit_document(zoe, "zoe", Role.USER, content=PDF, declared_type="application/pdf",
                                      file_name="withdrawal.pdf")
    assert (record.status, record.media_type) == ("submitted", "application/pdf")
    with pytest.raises(InvalidTransition, match="waiting for review"):
        service.approve(zoe, SAM, expected_version=version(service, zoe))
    evidence.accept(zoe, record.id or 0, "maria", Role.SPECIALIST)
    with pytest.raises(Forbidden, match="accepted the ownership evidence"):
        service.approve(zoe, MARIA, expected_version=version(service, zoe))
    # ada proves nothing: her approval stays refused
    with pytest.raises(InvalidTransition, match="ownership not proven"):
        service.approve(ada, SAM, expected_version=version(service, ada))
    case = service.approve(zoe, SAM, expected_version=version(service, zoe))
    assert (case.status, case.credited_user_id) == ("approved", "zoe")
    audit_is_whole(database)


def test_two_appellants_who_both_prove_one_transfer_go_to_an_approver(
    xrpl: tuple[CaseService, EvidenceService],
) -> None:
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    ada = appeal(service, "ada", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="5")
    recheck(service)
    for reference, user in ((zoe, "zoe"), (ada, "ada")):
        record = evidence.submit_document(reference, user, Role.USER, content=PNG, declared_type="image/png")
        evidence.accept(reference, record.id or 0, "maria", Role.SPECIALIST)
    with pytest.raises(Forbidden, match="an approver decides, with both proofs side by side"):
        service.approve(zoe, SAM, expected_version=version(service, zoe))
    case = service.approve(zoe, OMAR, expected_version=version(service, zoe))
    assert case.status == "approved"
    [approval] = events(service, zoe, "approve")
    assert approval.details["competing_proofs"] == [ada]
    from recovery.errors import Conflict

    with pytest.raises(Conflict, match="one transfer is paid once"):  # one payout per transfer
        service.approve(ada, OMAR, expected_version=version(service, ada))


@pytest.mark.parametrize(("content", "declared", "problem"), [
    (b"MZ\x90\x00" + b"\x00" * 60, "application/pdf", "is not a PDF, PNG or JPEG"),  # an executable named .pdf
    (PNG, "application/pdf", "its content is image/png, not application/pdf"),  # a PNG declared as a PDF
    (b"%PDF-" + b"x" * (5 * 1024 * 1024), "application/pdf", "more than the 5242880 bytes"),
    (b"", "application/pdf", "is empty"),
])
def test_a_document_that_is_not_what_it_says_is_refused(
    xrpl: tuple[CaseService, EvidenceService], database: Database, content: bytes, declared: str, problem: str
) -> None:
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    with pytest.raises(EvidenceRefused, match=problem) as refused:
        evidence.submit_document(zoe, "zoe", Role.USER, content=content, declared_type=declared)
    assert refused.value.errors[0].field == "file"
    with database.read() as session:
        assert session.exec(select(EvidenceDocument)).all() == []
        assert session.exec(select(OwnershipEvidence)).all() == []
    [attempt] = events(service, zoe, "submit_evidence")
    assert attempt.details["outcome"] == "refused"


def test_a_rejected_record_is_kept_with_its_reason_and_the_document_outside_the_cases_table(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    record = evidence.submit_document(zoe, "zoe", Role.USER, content=PDF)
    with pytest.raises(Forbidden):
        evidence.reject(zoe, record.id or 0, "zoe", Role.USER, reason="no")
    rejected = evidence.reject(zoe, record.id or 0, "maria", Role.SPECIALIST, reason="names another transaction")
    assert (rejected.status, rejected.reviewer, rejected.reason) == ("rejected", "maria", "names another transaction")
    assert evidence.ownership(zoe, for_user="zoe").status == "rejected"
    with pytest.raises(InvalidTransition, match="already rejected"):
        evidence.accept(zoe, record.id or 0, "sam", Role.SPECIALIST)
    [event] = events(service, zoe, "reject_evidence")
    assert (event.actor, event.details["reason"]) == ("maria", "names another transaction")
    document = evidence.document(record.document_sha256 or "")
    assert document is not None and document.content == PDF and detect_media_type(document.content) == "application/pdf"
    with database.read() as session:
        case = session.exec(select(Case).where(Case.reference == zoe)).one()
        assert PDF not in repr(case.model_dump()).encode()
        assert session.exec(select(CaseEvent).where(col(CaseEvent.action) == "reject_evidence")).one()
    audit_is_whole(database)


def test_the_owner_of_a_memo_needs_no_proof_even_when_contested(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    service, evidence = xrpl
    with database.write() as session:  # the recorded tag is bob's
        session.add(DepositAddress(user_id="bob", network="xrpl", address=SHARED_XRPL, memo="1288227521",
                                   kind="eoa"))
    bob = appeal(service, "bob", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="1288227521")
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    case = service.get(bob).case
    assert (case.category, case.credited_user_id, "contested" in case.flags) == ("uncredited_valid", "bob", True)
    assert evidence.ownership(bob, for_user="bob").status == "not_required"
    assert service.approve(bob, MARIA, expected_version=version(service, bob)).status == "approved"
    # zoe's appeal of bob's tag reads to her like a tag of nobody's (issue 18): she is credited only
    # with accepted proof, which never holds up bob's own credit
    assert service.get(zoe).case.credited_user_id == "zoe"
    assert evidence.ownership(zoe, for_user="zoe").required is True
    with pytest.raises(InvalidTransition, match="ownership not proven"):
        service.approve(zoe, MARIA, expected_version=version(service, zoe))


def test_the_evidence_migration_goes_down_and_up_again(database: Database) -> None:
    from sqlalchemy import inspect

    from recovery import migrate

    tables = {"ownership_challenges", "ownership_evidence", "evidence_documents"}
    assert tables <= set(inspect(database.engine).get_table_names())
    migrate.downgrade(database, "0007_sign_in")
    assert not tables & set(inspect(database.engine).get_table_names())
    migrate.upgrade(database)
    assert tables <= set(inspect(database.engine).get_table_names())
    assert migrate.current_revision(database) == migrate.head_revision()


def test_two_appellants_who_prove_different_parts_of_one_transaction_each_get_theirs(two_parts: TwoParts) -> None:
    """One MultiTransfer call pays two exchange wallets; each appellant proves their own part."""
    service, evidence, mine, theirs = two_parts.service, two_parts.evidence, two_parts.mine, two_parts.theirs
    for reference, user in ((mine, "alice"), (theirs, "bob")):
        case = service.get(reference).case
        assert (case.category, case.credited_user_id) == ("unattributed_deposit", user)
        record = evidence.submit_document(reference, user, Role.USER, content=PDF)
        evidence.accept(reference, record.id or 0, "maria", Role.SPECIALIST)
    # different transfers: no competing proofs, a specialist approves each, each paid its own part
    for reference, amount in ((mine, 10), (theirs, 20)):
        case = service.approve(reference, SAM, expected_version=version(service, reference))
        assert case.status == "approved"
        [approval] = events(service, reference, "approve")
        assert "competing_proofs" not in approval.details
        assert approval.details["payout"]["amount_units"] == str(amount * USDT)


# ------------------------------------------------------------------------------------------ the database insider


def test_evidence_written_into_the_database_does_not_open_the_approval(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    """Someone with write access to the database (no audit key) inserts an accepted signature for
    zoe's memo-less credit, then forges the accept event with a plain hash: approval is refused."""
    service, _ = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    with database.write() as session:
        case = session.exec(select(Case).where(Case.reference == zoe)).one()
        row = OwnershipEvidence(case_id=case.id or 0, kind="signed_message", status="accepted", submitted_by="zoe",
                                submitted_at=service.clock(), sender=XRPL_SENDER, signature="00",
                                reviewer="system", reviewed_at=service.clock())
        session.add(row)
        session.flush()
        forged_id = row.id
    with pytest.raises(InvalidTransition, match="no signed audit event shows its acceptance"):
        service.approve(zoe, MARIA, expected_version=version(service, zoe))
    # an accept event appended with a hash made without the key does not help either
    with database.write() as session:
        case = session.exec(select(Case).where(Case.reference == zoe)).one()
        last = session.exec(select(CaseEvent).order_by(col(CaseEvent.id).desc())).first()
        assert last is not None
        forged = CaseEvent(id=(last.id or 0) + 1, case_id=case.id or 0, actor="system", actor_role="system",
                           action="accept_evidence",
                           from_status=case.status, to_status=case.status,
                           details={"evidence_id": forged_id, "kind": "signed_message"},
                           created_at=service.clock(), prev_hash=last.hash, hash="0" * 64, key_id=last.key_id)
        session.add(forged)
    with pytest.raises(InvalidTransition, match="no signed audit event shows its acceptance"):
        service.approve(zoe, OMAR, expected_version=version(service, zoe))
    assert events(service, zoe, "approve") == []


def test_a_rejected_record_turned_accepted_in_the_database_is_not_evidence(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    record = evidence.submit_document(zoe, "zoe", Role.USER, content=PDF)
    evidence.reject(zoe, record.id or 0, "maria", Role.SPECIALIST, reason="names another transaction")
    with database.write() as session:
        row = session.get(OwnershipEvidence, record.id)
        assert row is not None
        row.status, row.reviewer = "accepted", "sam"
        session.add(row)
    with pytest.raises(InvalidTransition, match="no signed audit event shows its acceptance"):
        service.approve(zoe, OMAR, expected_version=version(service, zoe))


def test_a_record_accepted_then_swapped_in_the_database_stops_the_credit(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    """Approved on a genuine acceptance; the row then changed (another document): the credit is not
    booked. Nor may whoever gave a record review it."""
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    mine = evidence.submit_document(zoe, "maria", Role.SPECIALIST, content=PDF)
    with pytest.raises(Forbidden, match="cannot also review it"):
        evidence.accept(zoe, mine.id or 0, "maria", Role.SPECIALIST)
    evidence.accept(zoe, mine.id or 0, "sam", Role.SPECIALIST)
    with pytest.raises(Forbidden, match="four-eyes"):  # the one who gave it does not approve it either
        service.approve(zoe, Actor("maria", Role.APPROVER), expected_version=version(service, zoe))
    service.approve(zoe, OMAR, expected_version=version(service, zoe))
    other = hashlib.sha256(PNG).hexdigest()
    with database.write() as session:  # another document, and the accepted row pointed at it
        session.add(EvidenceDocument(sha256=other, media_type="image/png", size=len(PNG), content=PNG,
                                     created_at=service.clock()))
        session.flush()
        row = session.get(OwnershipEvidence, mine.id)
        assert row is not None
        row.document_sha256 = other
        session.add(row)
    with pytest.raises(InvalidTransition, match="booking this credit needs"):
        service.mark_credited(zoe, MARIA, expected_version=version(service, zoe), ledger_reference="L-1")
    assert service.get(zoe).case.status == "approved"


# ------------------------------------------------------------------------------------------ the XRP Ledger signing key


def test_the_deposits_signing_key_reaches_the_verifier(
    xrpl: tuple[CaseService, EvidenceService], database: Database, fixtures_dir: Path
) -> None:
    """The recorded payment's SigningPubKey goes from the adapter, through the stored chain
    observation, to the verifier (and into the audited verification): a key of zoe's own, which is
    not that key and does not derive the sender, is still refused."""
    from tests.chains.test_xrpl import recorded_tx

    recorded = recorded_tx(fixtures_dir, "ledger_expanded_txs_with_destination_tags.json", XRPL_TX)["SigningPubKey"]
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    with database.read() as session:
        stored = session.exec(select(ChainObservation).where(ChainObservation.tx_hash == XRPL_TX)).one()
        assert stored.evidence["details"]["signing_pub_key"] == recorded.upper()
    own = evidence.ownership(zoe, for_user="zoe", issue_challenge=True)
    assert own.challenge is not None
    public_key, private_key = keypairs.derive_keypair(keypairs.generate_seed())
    signature = keypairs.sign(own.challenge.message.encode().hex(), private_key)
    with pytest.raises(EvidenceRefused, match="not the key that signed the deposit transaction"):
        evidence.submit_signature(zoe, "zoe", Role.USER, signature=signature, public_key=public_key)
    [attempt] = events(service, zoe, "submit_evidence")
    assert attempt.details["verification"]["tx_signing_key"] == recorded.upper()
    assert attempt.details["requirement"]["sender"] == XRPL_SENDER


# ------------------------------------------------------------------------------ the challenge names whom it pays


def test_the_challenge_names_the_exchange_and_the_account_to_credit(
    wallet: Wallet, database: Database, clock: Clock
) -> None:
    """A support scammer (bob) appeals alice's deposit and asks its sender to sign his challenge: the
    message says which exchange and which account it pays. A signature over another case's (another
    account's) challenge is refused, and so is a challenge issued under another exchange name."""
    service = wallet.service
    named = EvidenceService(database, service.config, clock, exchange_name="  Example Exchange ")
    hot = service.get(wallet.reference).case.deposit_address
    bob = appeal(service, "bob", "ethereum", "USDT", wallet.tx_hash, hot)
    recheck(service)
    assert service.get(bob).case.credited_user_id == "bob"
    mine = named.ownership(wallet.reference, for_user="alice", issue_challenge=True).challenge
    theirs = named.ownership(bob, for_user="bob", issue_challenge=True).challenge
    assert mine is not None and theirs is not None
    first = mine.message.splitlines()[0]
    assert "Example Exchange" in first and "account alice" in first
    assert "Exchange: Example Exchange\nAccount: alice\n" in mine.message
    assert "Exchange: Example Exchange\nAccount: bob\n" in theirs.message and bob in theirs.message
    # the sender's signature over alice's challenge proves nothing for bob's case, nor the reverse
    with pytest.raises(EvidenceRefused, match="signed by another key"):
        named.submit_signature(bob, "bob", Role.USER, signature=eth_sign(wallet.key, mine.message))
    with pytest.raises(EvidenceRefused, match="signed by another key"):
        named.submit_signature(wallet.reference, "alice", Role.USER, signature=eth_sign(wallet.key, theirs.message))
    # a service that calls the exchange something else does not take a challenge issued under the old name
    renamed = EvidenceService(database, service.config, clock, exchange_name="Other Exchange")
    with pytest.raises(EvidenceRefused, match="issued for another deposit or account") as refused:
        renamed.submit_signature(wallet.reference, "alice", Role.USER, signature=eth_sign(wallet.key, mine.message))
    assert refused.value.errors[0].field == "challenge"
    fresh = renamed.ownership(wallet.reference, for_user="alice", issue_challenge=True).challenge
    assert fresh is not None and "Exchange: Other Exchange\nAccount: alice\n" in fresh.message
    accepted = renamed.submit_signature(wallet.reference, "alice", Role.USER,
                                        signature=eth_sign(wallet.key, fresh.message))
    assert accepted.status == "accepted"
    audit_is_whole(database)


def test_the_exchange_name_is_one_printable_line(monkeypatch: pytest.MonkeyPatch, database: Database,
                                                default_config: Config) -> None:
    from pydantic import ValidationError

    from recovery.settings import Settings

    monkeypatch.delenv("RECOVERY_EXCHANGE_NAME", raising=False)
    assert Settings().exchange_name == "this exchange"
    monkeypatch.setenv("RECOVERY_EXCHANGE_NAME", "  Example Exchange\t")
    assert Settings().exchange_name == "Example Exchange"
    for bad in ("", "   ", "Example\nCase: RC-1", "Example\x1b[2J", "x" * 65):
        monkeypatch.setenv("RECOVERY_EXCHANGE_NAME", bad)
        with pytest.raises(ValidationError, match="RECOVERY_EXCHANGE_NAME"):
            Settings()
    with pytest.raises(ValueError, match="printable"):
        EvidenceService(database, default_config, exchange_name="Example\nAccount: mallory")


# ------------------------------------------------------------------------------ evidence of the current requirement


@dataclasses.dataclass
class TwoParts:
    """One MultiTransfer call paying two exchange wallets; alice appealed the first part, bob the second."""

    service: CaseService
    evidence: EvidenceService
    mine: str
    theirs: str


@pytest.fixture
def two_parts(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> TwoParts:
    from app.demo.chainworld import TxSpec, send_all
    from tests.fixtures_anvil import FUNDER
    from tests.rules.test_scenarios_anvil import _call

    service = CaseService(database, evm_testbed.config, clock)
    hot, cold = fresh_address(), fresh_address()
    with database.write() as session:
        for address in (hot, cold):
            session.add(DepositAddress(user_id="", network="ethereum", address=address, kind="wallet"))
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    multi = evm_testbed.deploy("ethereum", "MultiTransfer")
    approve = TxSpec("ethereum", FUNDER, usdt, gas=100_000,
                     data=_call("approve(address,uint256)", ["address", "uint256"], [multi, 2**256 - 1]))
    pay = TxSpec("ethereum", FUNDER, multi, gas=300_000, data=_call(
        "multiTransfer(address[],address[],uint256[])", ["address[]", "address[]", "uint256[]"],
        [[usdt, usdt], [hot, cold], [10 * USDT, 20 * USDT]]))
    _approved, tx = send_all(evm_testbed.url("ethereum"), [approve, pay])
    evm_testbed.mine("ethereum", 12)
    mine = appeal(service, "alice", "ethereum", "USDT", tx, hot)
    theirs = appeal(service, "bob", "ethereum", "USDT", tx, cold)
    recheck(service)
    return TwoParts(service, EvidenceService(database, evm_testbed.config, clock), mine, theirs)


def redecide_to_the_other_part(parts: TwoParts) -> None:
    """A re-decision of alice's case (through the re-check's path, ``apply_decision``) that names the
    other part of the transaction: the rules engine's decision for bob's part, credited to alice."""
    from recovery.rules import Decision
    from recovery.services import SYSTEM

    mine, theirs = (parts.service.get(r).case.decision for r in (parts.mine, parts.theirs))
    assert mine is not None and theirs is not None
    decision, other = Decision.from_json(mine), Decision.from_json(theirs)
    assert decision.ownership_proof is not None and other.ownership_proof is not None
    redecided = dataclasses.replace(decision, transfers=other.transfers, ownership_proof={
        **decision.ownership_proof, "transfer_indexes": list(other.ownership_proof["transfer_indexes"])})
    _case, changed = parts.service.apply_decision(parts.mine, redecided, SYSTEM,
                                                  expected_version=version(parts.service, parts.mine))
    assert changed


def test_after_a_re_decision_the_proof_of_the_former_requirement_no_longer_counts(
    two_parts: TwoParts, database: Database
) -> None:
    service, evidence, mine = two_parts.service, two_parts.evidence, two_parts.mine
    before = evidence.evidence(mine)[1]
    assert before is not None
    record = evidence.submit_document(mine, "alice", Role.USER, content=PDF)
    evidence.accept(mine, record.id or 0, "maria", Role.SPECIALIST)
    waiting = evidence.submit_document(mine, "alice", Role.USER, content=PNG, declared_type="image/png")
    [given, _second] = [e for e in events(service, mine, "submit_evidence")]
    [accepted] = events(service, mine, "accept_evidence")
    assert given.details["requirement"] == accepted.details["requirement"] == before.facts()
    own = evidence.ownership(mine, for_user="alice")
    assert (own.status, own.current) == ("accepted", frozenset({record.id, waiting.id}))
    assert evidence.waiting_references() == [mine]

    redecide_to_the_other_part(two_parts)
    need = evidence.evidence(mine)[1]
    assert need is not None and need.transfer_indexes != before.transfer_indexes
    assert (need.network, need.sender) == (before.network, before.sender)
    with pytest.raises(InvalidTransition, match="ownership not proven") as refused:
        service.approve(mine, SAM, expected_version=version(service, mine))
    assert f"evidence {record.id} proved {before.tx_hash}" in str(refused.value)
    assert "not what the case needs now" in str(refused.value) and "proves ownership again" in str(refused.value)
    assert "waiting for review" not in str(refused.value)  # the record given for the former part waits for nothing
    own = evidence.ownership(mine, for_user="alice", issue_challenge=True)
    assert (own.status, own.current, len(own.evidence)) == ("missing", frozenset(), 2)  # listed, not counted
    assert evidence.waiting_references() == []  # the workbench's "Evidence waiting" no longer lists it
    # the record given for the former part is not accepted for the new one; it may be rejected
    with pytest.raises(InvalidTransition, match=r"was given for .* the case now needs"):
        evidence.accept(mine, waiting.id or 0, "maria", Role.SPECIALIST)
    evidence.reject(mine, waiting.id or 0, "maria", Role.SPECIALIST, reason="about the former part")
    assert evidence.ownership(mine, for_user="alice").status == "rejected"

    # alice proves the part now asked for: it counts (bob proved that part too: an approver decides)
    again = evidence.submit_document(mine, "alice", Role.USER, content=PDF)
    evidence.accept(mine, again.id or 0, "maria", Role.SPECIALIST)
    assert evidence.ownership(mine, for_user="alice").current == frozenset({again.id})
    case = service.approve(mine, OMAR, expected_version=version(service, mine))
    assert case.status == "approved"
    [approval] = events(service, mine, "approve")
    assert approval.details["ownership_evidence"] == [again.id]
    assert approval.details["ownership_requirement"] == need.facts()
    audit_is_whole(database)


def test_a_proof_re_pointed_at_the_new_requirement_in_the_database_breaks_its_seal(
    two_parts: TwoParts, database: Database
) -> None:
    """After the re-decision an insider rewrites the acceptance event's requirement to the new one:
    its HMAC no longer verifies, so the proof counts for nothing, and audit verify says so."""
    service, evidence, mine = two_parts.service, two_parts.evidence, two_parts.mine
    record = evidence.submit_document(mine, "alice", Role.USER, content=PDF)
    evidence.accept(mine, record.id or 0, "maria", Role.SPECIALIST)
    redecide_to_the_other_part(two_parts)
    need = evidence.evidence(mine)[1]
    assert need is not None
    from tests.support.tamper import guard_off

    with guard_off(database), database.write() as session:  # a database administrator's edit
        event = session.exec(select(CaseEvent).where(CaseEvent.action == "accept_evidence")).one()
        event.details = {**(event.details or {}), "requirement": need.facts()}
        session.add(event)
    with pytest.raises(InvalidTransition, match="no signed audit event shows its acceptance"):
        service.approve(mine, OMAR, expected_version=version(service, mine))
    assert evidence.ownership(mine, for_user="alice").status == "missing"
    with database.read() as session:
        assert not verify_chain(session).ok


def test_a_proof_accepted_before_requirements_were_recorded_no_longer_counts(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    """A record accepted the way it was before this rule (its keyed accept event names no
    requirement) does not open the approval: the refusal says the appellant proves again, the
    ownership status is missing again and a new challenge is offered."""
    from recovery.evidence import _event

    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    record = evidence.submit_document(zoe, "zoe", Role.USER, content=PDF)
    with database.write() as session:  # maria's acceptance, written as the former code wrote it
        case = session.exec(select(Case).where(Case.reference == zoe)).one()
        row = session.get(OwnershipEvidence, record.id)
        assert row is not None
        row.status, row.reviewer, row.reviewed_at = "accepted", "maria", service.clock()
        session.add(row)
        _event(session, case, "maria", "specialist", "accept_evidence",
               {"evidence_id": row.id, "kind": row.kind, "sha256": row.document_sha256}, service.clock())
    with pytest.raises(InvalidTransition, match="records no requirement") as refused:
        service.approve(zoe, SAM, expected_version=version(service, zoe))
    assert "the appellant proves ownership again" in str(refused.value)
    own = evidence.ownership(zoe, for_user="zoe", issue_challenge=True)
    assert own.status == "missing" and own.challenge is not None and own.current == frozenset()
    again = evidence.submit_document(zoe, "zoe", Role.USER, content=PNG)
    evidence.accept(zoe, again.id or 0, "maria", Role.SPECIALIST)
    assert service.approve(zoe, SAM, expected_version=version(service, zoe)).status == "approved"
    audit_is_whole(database)


def test_booking_needs_the_proof_of_the_requirement_of_the_moment(
    xrpl: tuple[CaseService, EvidenceService], database: Database
) -> None:
    """Approved on a genuine proof; an insider then points the approved decision at another transfer
    (the credit no longer matches what was proven): the credit is not booked."""
    service, evidence = xrpl
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo="7")
    recheck(service)
    record = evidence.submit_document(zoe, "zoe", Role.USER, content=PDF)
    evidence.accept(zoe, record.id or 0, "maria", Role.SPECIALIST)
    service.approve(zoe, SAM, expected_version=version(service, zoe))
    with database.write() as session:
        case = session.exec(select(Case).where(Case.reference == zoe)).one()
        decision = dict(case.decision or {})
        decision["transfers"] = [{**t, "index": int(t["index"]) + 1} for t in decision["transfers"]]
        case.decision = decision
        session.add(case)
    with pytest.raises(InvalidTransition, match="booking this credit needs") as refused:
        service.mark_credited(zoe, MARIA, expected_version=version(service, zoe), ledger_reference="L-1")
    assert "not what the case needs now" in str(refused.value)
    assert service.get(zoe).case.status == "approved"


def test_a_requirement_is_answered_only_by_the_same_network_transaction_sender_and_transfers() -> None:
    """Hex hashes and EVM addresses compare whatever their case; nothing else is forgiven."""
    import secrets

    from recovery.evidence import Requirement

    sender = Account.create().address
    tx_hash = "0x" + secrets.token_hex(32)
    need = Requirement(network="ethereum", family="evm", tx_hash=tx_hash, sender=sender,
                       kinds=("signed_message", "withdrawal_record"), transfer_indexes=(2, 0))
    facts = need.facts()
    assert facts == {"network": "ethereum", "tx_hash": tx_hash, "sender": sender, "transfer_indexes": [0, 2]}
    assert need.answered_by(facts)
    assert need.answered_by({**facts, "tx_hash": tx_hash.upper().replace("0X", "0x"), "sender": sender.lower(),
                             "transfer_indexes": [2, 0]})
    for changed in ({"network": "bsc"}, {"tx_hash": "0x" + secrets.token_hex(32)},
                    {"sender": Account.create().address}, {"transfer_indexes": [0]}, {"transfer_indexes": [0, 1]},
                    {"transfer_indexes": ["0", "2"]}, {"transfer_indexes": [False, 2]}, {"sender": None},
                    {"transfer_indexes": None}):
        assert not need.answered_by({**facts, **changed}), changed
    assert not need.answered_by(None) and not need.answered_by({}) and not need.answered_by([facts])
