"""Ownership evidence (issue 18): proof that the appellant sent the deposit, before a credit that does
not follow from our own books can be approved.

**When proof is required** (:func:`requirement`): the case's credit goes to an account that is not
the owner of the receiving address or memo (``recovery.rules.ownership_proof_needed``): a memo-less
or unmatched-memo deposit at a shared address, a deposit to an exchange wallet
(``unattributed_deposit``), a detected case taken over by a claim, and any contested credit of
that kind, for every appellant. At a user's own deposit address (or memo) the owner is credited
without proof, whoever else appealed.

**Kinds.**

- ``signed_message``: the user signs a challenge (:meth:`EvidenceService.ownership`: the exchange's
  name, setting ``RECOVERY_EXCHANGE_NAME``, the account to be credited, the case reference, the
  network, the transaction, the sender, a nonce and an expiry; single use; void once any of them
  changes) with the key of the address that sent the deposit.
  :func:`chains.ownership.verify_ownership` checks it (on the XRP Ledger also against the deposit's
  ``SigningPubKey`` from the stored chain observation, so a regular key proves it); a verified
  signature is accepted by the system (``submit_evidence`` by the user, ``accept_evidence`` by
  the system with the verification result); a refused one leaves only its attempt (a
  ``submit_evidence`` event with the result) and a clear error naming the field.
- ``withdrawal_record``: the sending platform's withdrawal record, PDF, PNG or JPEG (checked by its
  magic bytes), at most 5 MiB, stored by SHA-256 in ``evidence_documents`` (outside the cases
  table). A specialist accepts or rejects it with a reason; accepting counts as preparing the case
  (``accept_evidence`` is in ``recovery.payouts.PREPARING_ACTIONS``), and the person who accepted
  it never approves the case.

**Approval** (:func:`approval_check`, called by ``CaseService.approve``, so every front end) is
refused without accepted evidence, naming what is missing. Evidence counts for the requirement it
answered: every ``submit_evidence``, ``accept_evidence`` and ``reject_evidence`` event records it
(``requirement``: network, transaction, sender, transfer indexes), and an accepted row counts only
when the keyed event of its acceptance records the case's current :func:`requirement` (after a
re-decision that asks for another transfer, sender or network, the appellant proves again; a row
accepted before requirements were recorded counts no more). Booking (:func:`credit_check`) checks
the same. When two appellants both proved the
same transfer, the approval is an approver's (or an admin's), with both proofs listed in the
approve event.

Every attempt, acceptance and rejection is an audit event on the case (its version moves with it,
so ``audit verify`` replays it).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Final

from sqlmodel import Session, col, select

from chains.base import TxStatus
from recovery import audit
from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from recovery.evidence_records import EvidenceDocument, OwnershipChallenge, OwnershipEvidence
from recovery.lifecycle import ACTIONS
from recovery.models import Case, CaseEvent, ChainObservation
from recovery.registry import address_key, tx_key
from recovery.rules import WITHDRAWAL_RECORD, evidence_kinds, ownership_proof_needed
from recovery.vocabulary import CaseStatus, Role

__all__ = [
    "ACCEPTED",
    "CHALLENGE_MINUTES",
    "MAX_DOCUMENT_BYTES",
    "REJECTED",
    "SIGNED_MESSAGE",
    "SUBMITTED",
    "WITHDRAWAL_RECORD",
    "Challenge",
    "EvidenceRefused",
    "EvidenceService",
    "Ownership",
    "Requirement",
    "approval_check",
    "credit_check",
    "current_evidence",
    "detect_media_type",
    "proven_acceptances",
    "requirement",
]

SIGNED_MESSAGE: Final = "signed_message"
KINDS: Final = (SIGNED_MESSAGE, WITHDRAWAL_RECORD)

SUBMITTED: Final = "submitted"
ACCEPTED: Final = "accepted"
REJECTED: Final = "rejected"

#: how long a challenge may be signed
CHALLENGE_MINUTES: Final = 30
#: the largest document taken (the API raises its body limit to this for the ownership endpoint only)
MAX_DOCUMENT_BYTES: Final = 5 * 1024 * 1024
#: the reason the system gives when it accepts a verified signature
SYSTEM_NAME: Final = "system"

#: media types by their magic bytes: what the content is, whatever the file name or header says
_MAGIC: Final[tuple[tuple[bytes, str], ...]] = (
    (b"%PDF-", "application/pdf"),
    (b"\x89PNG\r\n\x1a\n", "image/png"),
    (b"\xff\xd8\xff", "image/jpeg"),
)
MEDIA_TYPES: Final = tuple(media for _, media in _MAGIC)

Clock = Callable[[], datetime]


def detect_media_type(content: bytes) -> str | None:
    """``application/pdf``, ``image/png`` or ``image/jpeg`` by the content's magic bytes, else None."""
    for magic, media in _MAGIC:
        if content.startswith(magic):
            return media
    return None


# ------------------------------------------------------------------------------------------ when


@dataclass(frozen=True)
class Requirement:
    """The evidence a case needs: a proof that ``sender`` sent ``tx_hash`` on ``network``."""

    network: str
    family: str
    tx_hash: str
    sender: str
    #: offered kinds: ``signed_message`` where the family can verify one for the sender, and
    #: ``withdrawal_record`` always
    kinds: tuple[str, ...]
    transfer_indexes: tuple[int, ...]
    #: why a signed message is not offered here, when it is not
    not_offered: str | None = None

    def describe(self) -> str:
        return (f"accepted ownership evidence ({' or '.join(self.kinds)}) that the appellant sent "
                f"{self.tx_hash} from {self.sender}")

    def facts(self) -> dict[str, Any]:
        """What a proof of this requirement proves, as the keyed audit events record it (the
        ``requirement`` of ``submit_evidence``, ``accept_evidence`` and ``reject_evidence``)."""
        return {"network": self.network, "tx_hash": self.tx_hash, "sender": self.sender,
                "transfer_indexes": sorted(self.transfer_indexes)}

    def answered_by(self, recorded: object) -> bool:
        """Whether ``recorded`` (an audit event's ``requirement``) is this requirement: the same
        network, transaction (:func:`tx_key`), sender (:func:`address_key`) and transfers."""
        if not isinstance(recorded, Mapping):
            return False
        network, tx_hash, sender = recorded.get("network"), recorded.get("tx_hash"), recorded.get("sender")
        indexes = recorded.get("transfer_indexes")
        if not (isinstance(tx_hash, str) and isinstance(sender, str) and isinstance(indexes, list)):
            return False
        if not all(isinstance(i, int) and not isinstance(i, bool) for i in indexes):
            return False
        return (network == self.network and tx_key(tx_hash) == tx_key(self.tx_hash)
                and address_key(sender) == address_key(self.sender)
                and sorted(indexes) == sorted(self.transfer_indexes))


def _described(recorded: Mapping[str, Any]) -> str:
    """A recorded requirement in words (for refusals)."""
    indexes = ", ".join(str(i) for i in recorded.get("transfer_indexes") or ())
    return (f"{recorded.get('tx_hash')} from {recorded.get('sender')} on {recorded.get('network')} "
            f"(transfer {indexes})")


def requirement(case: Case, config: Config) -> Requirement | None:
    """The ownership evidence the case's credit needs, or None (see the module docstring)."""
    decision = case.decision or {}
    refs = [r for r in decision.get("transfers") or [] if isinstance(r, Mapping)]
    if not refs:
        return None
    owners = {r.get("owner_user_id") for r in refs}
    owner = owners.pop() if len(owners) == 1 else None
    if not ownership_proof_needed(case.resolution, owner, case.credited_user_id):
        return None
    head = refs[0]
    network = str(head.get("network") or case.deposit_network or case.network)
    family = config.network(network).family if network in config.networks else ""
    senders = {str(r.get("sender") or "") for r in refs}
    sender = str(head.get("sender") or "")
    asked = decision.get("ownership_proof")
    if isinstance(asked, Mapping) and asked.get("kinds"):
        kinds = tuple(str(k) for k in asked["kinds"])
    else:
        kinds = tuple(evidence_kinds(family, sender)) if family else (WITHDRAWAL_RECORD,)
    not_offered = str(asked["not_offered"]) if isinstance(asked, Mapping) and asked.get("not_offered") else None
    if len(senders) != 1 and SIGNED_MESSAGE in kinds:  # one signature cannot prove several senders
        kinds = tuple(k for k in kinds if k != SIGNED_MESSAGE)
        not_offered = "the transfers come from several senders: one signature cannot prove them all"
    if SIGNED_MESSAGE not in kinds and not_offered is None and family:
        from chains.ownership import not_offered_reason

        not_offered = not_offered_reason(family, address=sender or None)
    return Requirement(
        network=network, family=family, tx_hash=str(head.get("tx_hash") or case.tx_hash), sender=sender,
        kinds=kinds, transfer_indexes=tuple(int(r.get("index", 0)) for r in refs), not_offered=not_offered,
    )


# ------------------------------------------------------------------------------------------ reads


@dataclass(frozen=True)
class Challenge:
    message: str
    expires_at: datetime
    nonce: str


@dataclass(frozen=True)
class Ownership:
    """What the API and the front ends show: ``status`` is ``not_required``, ``missing``,
    ``submitted``, ``accepted`` or ``rejected``."""

    reference: str
    required: bool
    status: str
    kinds: tuple[str, ...]
    requirement: Requirement | None
    challenge: Challenge | None
    evidence: tuple[OwnershipEvidence, ...] = field(default_factory=tuple)
    #: the ids of the evidence given for the current requirement: accepted (and proven by the keyed
    #: audit chain) or waiting for review. The others are listed but count for nothing any more
    #: (they proved what a former decision asked, or were rejected).
    current: frozenset[int] = field(default_factory=frozenset)


def status_of(required: bool, rows: Sequence[OwnershipEvidence], current: Collection[int] | None = None) -> str:
    """The ownership status. With ``current`` (:attr:`Ownership.current`), only those rows count as
    accepted or submitted: evidence for a former requirement leaves the status ``missing`` (or
    ``rejected`` when something was rejected)."""
    live = rows if current is None else [r for r in rows if r.id in current]
    if any(r.status == ACCEPTED for r in live):
        return ACCEPTED
    if not required:
        return "not_required"
    if any(r.status == SUBMITTED for r in live):
        return SUBMITTED
    if any(r.status == REJECTED for r in rows):
        return REJECTED
    return "missing"


def evidence_rows(session: Session, case_id: int | None) -> list[OwnershipEvidence]:
    return list(session.exec(
        select(OwnershipEvidence).where(OwnershipEvidence.case_id == case_id).order_by(col(OwnershipEvidence.id))
    ).all())


def _transfers(case: Case) -> set[tuple[str, str, int]]:
    refs = (case.decision or {}).get("transfers") or []
    return {(str(r.get("network")), tx_key(str(r.get("tx_hash"))), int(r.get("index", 0)))
            for r in refs if isinstance(r, Mapping)}


# ------------------------------------------------------------------------------------------ approval


def approval_check(session: Session, case: Case, config: Config, approver: str, role: Role) -> dict[str, Any]:
    """Refuse the approval of a case whose credit needs ownership evidence it does not have (inside
    the approval's transaction); returns what the approve event records about the evidence.

    An accepted row counts only when the keyed ``accept_evidence`` event that proves it
    (:func:`proven_acceptances`) records the requirement it answered and that is the case's current
    :func:`requirement` (network, transaction, sender, transfers), and its kind is still offered.
    """
    need = requirement(case, config)
    if need is None:
        return {}
    rows = evidence_rows(session, case.id)
    marked = [r for r in rows if r.status == ACCEPTED]
    proofs = _acceptances(session, case, marked)
    if marked and not proofs:
        raise InvalidTransition(
            f"{case.reference}: ownership not proven: evidence {', '.join(str(r.id) for r in marked)} is marked "
            "accepted, but no signed audit event shows its acceptance (changed in the database?); approval needs "
            f"{need.describe()}"
        )
    accepted = [r for r in marked if r.id in proofs and _counts(need, r, proofs[r.id])]
    if not accepted:
        waiting = sorted(_waiting(session, case, need, rows))
        state = "; ".join([
            *_stale(need, marked, proofs),
            *([f"evidence {', '.join(str(i) for i in waiting)} is waiting for review"] if waiting else []),
        ]) or ("none was accepted" if rows else "none was given")
        raise InvalidTransition(
            f"{case.reference}: ownership not proven: approval needs {need.describe()}; {state}"
        )
    reviewers = {r.reviewer for r in accepted if r.kind == WITHDRAWAL_RECORD and r.reviewer}
    reviewers |= {r.submitted_by for r in accepted if r.kind == WITHDRAWAL_RECORD}
    if approver in reviewers:
        raise Forbidden(
            f"{case.reference}: four-eyes rule: {approver} accepted the ownership evidence and cannot also approve it"
        )
    mine = _transfers(case)
    competing: list[str] = []
    others = session.exec(
        select(Case).where(col(Case.tx_hash).in_(sorted({case.tx_hash, tx_key(case.tx_hash)})), Case.id != case.id)
    ).all()
    for other in others:
        if not (_transfers(other) & mine):
            continue  # another part of the transaction: each appellant gets their own part
        if any(r.status == ACCEPTED for r in evidence_rows(session, other.id)):
            competing.append(str(other.reference))
    if competing and role not in (Role.APPROVER, Role.ADMIN):
        raise Forbidden(
            f"{case.reference}: {', '.join(competing)} also proved ownership of this transfer: an approver "
            "decides, with both proofs side by side"
        )
    return {"ownership_evidence": [r.id for r in accepted], "ownership_requirement": need.facts(),
            **({"competing_proofs": sorted(competing)} if competing else {})}


def _counts(need: Requirement, row: OwnershipEvidence, acceptance: Mapping[str, Any]) -> bool:
    """Whether a proven acceptance proves what the case needs now: its event's ``requirement`` is
    the current one and the row's kind is still offered."""
    return row.kind in need.kinds and need.answered_by(acceptance.get("requirement"))


def _stale(need: Requirement, marked: Sequence[OwnershipEvidence],
           proofs: Mapping[int, Mapping[str, Any]]) -> list[str]:
    """Why each proven acceptance that does not count no longer counts (one clause each)."""
    clauses: list[str] = []
    for row in marked:
        acceptance = proofs.get(row.id or 0)
        if acceptance is None or _counts(need, row, acceptance):
            continue
        recorded = acceptance.get("requirement")
        if not isinstance(recorded, Mapping):
            clauses.append(
                f"evidence {row.id} was accepted before evidence was tied to what it proves (its acceptance "
                "records no requirement), so it no longer counts: the appellant proves ownership again")
        elif not need.answered_by(recorded):
            clauses.append(
                f"evidence {row.id} proved {_described(recorded)}, not what the case needs now (a later decision "
                "changed it), so it no longer counts: the appellant proves ownership again")
        else:
            clauses.append(f"evidence {row.id} is a {row.kind}, which is no longer offered for this deposit"
                           f"{f' ({need.not_offered})' if need.not_offered else ''}: the appellant proves ownership "
                           "again")
    return clauses


def _keyed_events(session: Session, case: Case, actions: Sequence[str]) -> list[CaseEvent]:
    """The case's events of ``actions``, oldest first, whose HMAC verifies with a known audit key
    (an event written or changed without the key is not among them)."""
    ring = audit.current_keyring()
    found = session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id, col(CaseEvent.action).in_(actions))
        .order_by(col(CaseEvent.id))
    ).all()
    keyed: list[CaseEvent] = []
    for event in found:
        key = ring.get(event.key_id or "")
        if key is not None and hmac.compare_digest(audit.event_hash(event, key), event.hash):
            keyed.append(event)
    return keyed


def _acceptances(session: Session, case: Case, rows: Sequence[OwnershipEvidence]) -> dict[int, Mapping[str, Any]]:
    """For each row whose acceptance is in the keyed audit chain, the details of the
    ``accept_evidence`` event that proves it (see :func:`proven_acceptances`)."""
    if not rows:
        return {}
    events = _keyed_events(session, case, ("accept_evidence",))
    proven: dict[int, Mapping[str, Any]] = {}
    for row in rows:
        for event in events:
            details = event.details or {}
            if row.id is None or details.get("evidence_id") != row.id or event.actor != row.reviewer:
                continue
            if row.kind == WITHDRAWAL_RECORD and details.get("sha256") != row.document_sha256:
                continue
            proven[row.id] = details
            break
    return proven


def _submissions(session: Session, case: Case) -> dict[int, Mapping[str, Any]]:
    """The details of the keyed ``submit_evidence`` event that gave each row (by evidence id)."""
    given: dict[int, Mapping[str, Any]] = {}
    for event in _keyed_events(session, case, ("submit_evidence",)):
        details = event.details or {}
        evidence_id = details.get("evidence_id")
        if isinstance(evidence_id, int) and evidence_id not in given:
            given[evidence_id] = details
    return given


def _waiting(session: Session, case: Case, need: Requirement, rows: Sequence[OwnershipEvidence]) -> set[int]:
    """The submitted rows that may still prove the current requirement: all but those whose keyed
    submission recorded another requirement (a document given before that was recorded is judged
    by its reviewer against the case as it is)."""
    submitted = [r for r in rows if r.status == SUBMITTED and r.id is not None]
    if not submitted:
        return set()
    given = _submissions(session, case)
    waiting: set[int] = set()
    for row in submitted:
        assert row.id is not None
        recorded = given.get(row.id, {}).get("requirement")
        if row.kind in need.kinds and (recorded is None or need.answered_by(recorded)):
            waiting.add(row.id)
    return waiting


def current_evidence(session: Session, case: Case, need: Requirement | None,
                     rows: Sequence[OwnershipEvidence]) -> frozenset[int]:
    """The ids of the rows given for the case's current requirement (:attr:`Ownership.current`):
    accepted ones whose keyed acceptance records that requirement, and those waiting for review.
    With no requirement, every accepted or submitted row."""
    if need is None:
        return frozenset(r.id for r in rows if r.id is not None and r.status in (ACCEPTED, SUBMITTED))
    marked = [r for r in rows if r.status == ACCEPTED]
    proofs = _acceptances(session, case, marked)
    accepted = {r.id for r in marked if r.id in proofs and _counts(need, r, proofs[r.id])}
    return frozenset({i for i in accepted if i is not None} | _waiting(session, case, need, rows))


def proven_acceptances(session: Session, case: Case, rows: Sequence[OwnershipEvidence]) -> list[OwnershipEvidence]:
    """The accepted rows whose acceptance is in the keyed audit chain: an ``accept_evidence`` event
    of this case that names the row, by the row's reviewer (and, for a document, its SHA-256), whose
    HMAC verifies with a known audit key. A row inserted or edited in the database by someone
    without the key (an ``accepted`` status, another reviewer, another document) has none. Whether
    it proves the current requirement is :func:`approval_check`'s question (the event's
    ``requirement``)."""
    proofs = _acceptances(session, case, rows)
    return [r for r in rows if r.id in proofs]


def credit_check(session: Session, case: Case, config: Config) -> None:
    """Before a credit is booked: the evidence its credit needs is still accepted, proven by the
    audit chain, and for the requirement of the moment (a payout approved before this rule existed,
    a row changed since, or a proof of what a former decision asked, is refused)."""
    need = requirement(case, config)
    if need is None:
        return
    marked = [r for r in evidence_rows(session, case.id) if r.status == ACCEPTED]
    proofs = _acceptances(session, case, marked)
    if not any(r.id in proofs and _counts(need, r, proofs[r.id]) for r in marked):
        stale = _stale(need, marked, proofs)
        raise InvalidTransition(
            f"{case.reference}: ownership not proven: booking this credit needs {need.describe()}"
            f"{'; ' + '; '.join(stale) if stale else ''}; reopen the case and ask the appellant for it"
        )


# ------------------------------------------------------------------------------------------ writes


class EvidenceRefused(ValidationFailed):
    """Evidence refused (a bad signature, an expired or used challenge, a document that is not one);
    the attempt was recorded as an audit event and nothing else was stored."""

    code = "evidence_refused"


def _line(text: str) -> str:
    """``text`` as one printable line: anything else is escaped, so no value adds a line of its own."""
    return text if text.isprintable() else text.encode("unicode_escape").decode("ascii")


def _challenge_text(case: Case, need: Requirement, nonce: str, expires_at: datetime, exchange: str) -> str:
    """The message to sign. It names the exchange and the account to be credited (the case's user),
    so that whoever is asked to sign it sees whom a signature would pay; then the case, the deposit,
    a nonce and an expiry."""
    exchange, account = _line(exchange), _line(case.user_id)
    return (
        f"Deposit recovery at {exchange}: I sent this deposit and ask {exchange} to credit it to account "
        f"{account}. Sign this only if that account is yours.\n"
        f"Exchange: {exchange}\n"
        f"Account: {account}\n"
        f"Case: {case.reference}\n"
        f"Network: {need.network}\n"
        f"Transaction: {need.tx_hash}\n"
        f"Sender: {need.sender}\n"
        f"Nonce: {nonce}\n"
        f"Expires: {_aware(expires_at).astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    )


class EvidenceService:
    """Challenges, evidence and their review, over one database (see the module docstring)."""

    def __init__(self, db: Database, config: Config, clock: Clock = utcnow, *,
                 exchange_name: str | None = None) -> None:
        """``exchange_name``: what the challenges call the exchange (default: the setting
        ``RECOVERY_EXCHANGE_NAME``, itself "this exchange" when unset); one printable line."""
        from recovery.settings import check_exchange_name, get_settings

        self.db = db
        self.config = config
        self.clock = clock
        self.exchange_name = (check_exchange_name(exchange_name) if exchange_name is not None
                              else get_settings().exchange_name)

    # ---------------------------------------------------------------- reads
    def ownership(self, reference: str, *, for_user: str | None = None, issue_challenge: bool = False) -> Ownership:
        """The case's ownership evidence. ``for_user`` hides other users' cases (NotFound);
        ``issue_challenge`` gives the current challenge, making one when none is open (the API)."""
        with self.db.read() as session:
            found = self._ownership(session, reference, for_user, issue=False)
        if not issue_challenge or found.challenge is not None or not self._may_challenge(found):
            return found
        with self.db.write() as session:  # only when a challenge must be made: a plain read otherwise
            return self._ownership(session, reference, for_user, issue=True)

    @staticmethod
    def _may_challenge(found: Ownership) -> bool:
        return (found.requirement is not None and SIGNED_MESSAGE in found.requirement.kinds
                and found.status != ACCEPTED)

    def _ownership(self, session: Session, reference: str, for_user: str | None, *, issue: bool) -> Ownership:
        case = session.exec(select(Case).where(Case.reference == reference)).first()
        if case is None or (for_user is not None and case.user_id != for_user):
            raise NotFound(f"no case {reference}")
        need = requirement(case, self.config)
        rows = evidence_rows(session, case.id)
        live = current_evidence(session, case, need, rows)
        status = status_of(need is not None, rows, live)
        challenge = None
        if (need is not None and SIGNED_MESSAGE in need.kinds and status != ACCEPTED
                and CaseStatus(case.status) in ACTIONS["submit_evidence"].moves):
            current = self._current_challenge(session, case, need)
            if current is None and issue:
                current = self._issue(session, case, need)
            if current is not None:
                challenge = Challenge(current.message, current.expires_at, current.nonce)
        return Ownership(str(case.reference), need is not None, status, need.kinds if need else (), need, challenge,
                         tuple(rows), live)

    def _current_challenge(self, session: Session, case: Case, need: Requirement) -> OwnershipChallenge | None:
        latest = session.exec(
            select(OwnershipChallenge).where(OwnershipChallenge.case_id == case.id)
            .order_by(col(OwnershipChallenge.id).desc())
        ).first()
        if latest is None or latest.used_at is not None or _aware(latest.expires_at) <= self.clock():
            return None
        if not self._challenges(latest, case, need):
            return None
        return latest

    def _challenges(self, challenge: OwnershipChallenge, case: Case, need: Requirement) -> bool:
        """Whether ``challenge`` is the text this case would be asked to sign now: the same exchange,
        account, case, network, transaction and sender (a challenge issued before any of them
        changed asks for something else)."""
        if address_key(challenge.sender) != address_key(need.sender):
            return False
        if tx_key(challenge.tx_hash) != tx_key(need.tx_hash):
            return False
        return challenge.message == _challenge_text(case, need, challenge.nonce, challenge.expires_at,
                                                    self.exchange_name)

    def _issue(self, session: Session, case: Case, need: Requirement) -> OwnershipChallenge:
        now = self.clock()
        nonce = secrets.token_hex(16)
        expires = (now + timedelta(minutes=CHALLENGE_MINUTES)).replace(microsecond=0)
        row = OwnershipChallenge(case_id=case.id or 0, nonce=nonce, network=need.network, tx_hash=need.tx_hash,
                                 sender=need.sender,
                                 message=_challenge_text(case, need, nonce, expires, self.exchange_name),
                                 created_at=now, expires_at=expires)
        session.add(row)
        session.flush()
        return row

    def evidence(self, reference: str) -> tuple[Case, Requirement | None, list[OwnershipEvidence]]:
        """The case, what it needs, and every piece of evidence given (operators)."""
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            if case is None:
                raise NotFound(f"no case {reference}")
            return case, requirement(case, self.config), evidence_rows(session, case.id)

    def document(self, sha256: str) -> EvidenceDocument | None:
        with self.db.read() as session:
            return session.get(EvidenceDocument, sha256)

    def waiting_references(self) -> list[str]:
        """References of cases with a withdrawal record waiting for review (the workbench filter): a
        record given for what a former decision asked is not waiting for anything."""
        with self.db.read() as session:
            submitted = select(OwnershipEvidence.case_id).where(OwnershipEvidence.status == SUBMITTED)
            cases = session.exec(select(Case).where(col(Case.id).in_(submitted))).all()
            waiting: list[str] = []
            for case in cases:
                need = requirement(case, self.config)
                if need is None or _waiting(session, case, need, evidence_rows(session, case.id)):
                    waiting.append(str(case.reference))
            return sorted(waiting)

    # ---------------------------------------------------------------- the user gives evidence
    def submit_signature(self, reference: str, actor_name: str, actor_role: Role, *, signature: Any,
                         public_key: Any = None) -> OwnershipEvidence:
        """Verify a signature over the case's current challenge; accepted by the system when it is
        the sender's. Refused: :class:`EvidenceRefused` naming the field, the attempt audited."""
        from chains.ownership import verify_ownership

        def attempt(session: Session, case: Case, need: Requirement) -> tuple[dict[str, Any], OwnershipEvidence | None]:
            if SIGNED_MESSAGE not in need.kinds:
                return {"outcome": "refused", "field": "kind", "reason": (
                    f"signed messages are not offered for this deposit: {need.not_offered or 'no verifier'}; "
                    "send the withdrawal record instead")}, None
            latest = session.exec(
                select(OwnershipChallenge).where(OwnershipChallenge.case_id == case.id)
                .order_by(col(OwnershipChallenge.id).desc()).with_for_update()
            ).first()
            now = self.clock()
            if latest is None:
                return {"outcome": "refused", "field": "challenge",
                        "reason": "no challenge was issued for this case: get one first (GET …/ownership)"}, None
            if latest.used_at is not None:
                used = "the challenge was already used: a challenge proves one thing once; get a new one"
                return {"outcome": "refused", "field": "challenge", "challenge_id": latest.id, "reason": used}, None
            if _aware(latest.expires_at) <= now:
                expired = f"the challenge expired at {_aware(latest.expires_at).isoformat()}; get a new one"
                return {"outcome": "refused", "field": "challenge", "challenge_id": latest.id, "reason": expired}, None
            if not self._challenges(latest, case, need):
                return {"outcome": "refused", "field": "challenge", "challenge_id": latest.id,
                        "reason": "the challenge was issued for another deposit or account; get a new one"}, None
            signing_key = _transaction_signing_key(session, need) if need.family == "xrpl" else None
            result = verify_ownership(need.family, address=latest.sender, message=latest.message,
                                      signature=signature, public_key=public_key, tx_signing_key=signing_key)
            verification = {"verified": result.verified, "family": result.family, "address": result.address,
                            "method": result.method, "recovered": result.recovered, "reason": result.reason,
                            **({"tx_signing_key": signing_key} if signing_key else {})}
            if not result.verified:
                return {"outcome": "refused", "field": result.field or "signature", "reason": result.reason,
                        "challenge_id": latest.id, "verification": verification}, None
            latest.used_at = now
            session.add(latest)
            row = OwnershipEvidence(
                case_id=case.id or 0, kind=SIGNED_MESSAGE, status=ACCEPTED, submitted_by=actor_name, submitted_at=now,
                challenge_id=latest.id, sender=latest.sender, signature=str(signature).strip(),
                public_key=str(public_key).strip() if isinstance(public_key, str) and public_key.strip() else None,
                verification=verification, reviewer=SYSTEM_NAME, reviewed_at=now, reason=result.reason,
            )
            session.add(row)
            session.flush()
            return {"outcome": "verified", "challenge_id": latest.id, "evidence_id": row.id,
                    "verification": verification}, row

        return self._give(reference, actor_name, actor_role, SIGNED_MESSAGE, attempt)

    def submit_document(self, reference: str, actor_name: str, actor_role: Role, *, content: bytes,
                        declared_type: str | None = None, file_name: str | None = None) -> OwnershipEvidence:
        """Store a withdrawal record for a specialist's review; refused (audited) when it is not a
        PDF, PNG or JPEG by its content, is larger than 5 MiB, or is not what it declares."""

        def attempt(session: Session, case: Case, need: Requirement) -> tuple[dict[str, Any], OwnershipEvidence | None]:
            size = len(content)
            digest = hashlib.sha256(content).hexdigest()
            facts: dict[str, Any] = {"size": size, "sha256": digest, "declared_type": declared_type,
                                     "file_name": file_name}
            if WITHDRAWAL_RECORD not in need.kinds:
                return {"outcome": "refused", "field": "kind", "reason": "withdrawal records are not taken here",
                        **facts}, None
            if size == 0:
                return {"outcome": "refused", "field": "file", "reason": "is empty", **facts}, None
            if size > MAX_DOCUMENT_BYTES:
                return {"outcome": "refused", "field": "file",
                        "reason": f"is {size} bytes, more than the {MAX_DOCUMENT_BYTES} bytes (5 MiB) allowed",
                        **facts}, None
            detected = detect_media_type(content)
            if detected is None:
                return {"outcome": "refused", "field": "file",
                        "reason": "is not a PDF, PNG or JPEG document (checked by its content, not its name)",
                        **facts}, None
            declared = (declared_type or "").split(";", 1)[0].strip().lower()
            if declared and declared not in ("application/octet-stream", detected):
                return {"outcome": "refused", "field": "file",
                        "reason": f"its content is {detected}, not {declared} as declared", **facts}, None
            if session.get(EvidenceDocument, digest) is None:
                session.add(EvidenceDocument(sha256=digest, media_type=detected, size=size, content=content,
                                             created_at=self.clock()))
                session.flush()
            row = OwnershipEvidence(
                case_id=case.id or 0, kind=WITHDRAWAL_RECORD, status=SUBMITTED, submitted_by=actor_name,
                submitted_at=self.clock(), sender=need.sender, document_sha256=digest, media_type=detected,
                size=size, file_name=(file_name or "")[:200] or None,
            )
            session.add(row)
            session.flush()
            return {"outcome": "submitted", "evidence_id": row.id, **facts, "media_type": detected}, row

        return self._give(reference, actor_name, actor_role, WITHDRAWAL_RECORD, attempt)

    def _give(
        self,
        reference: str,
        actor_name: str,
        actor_role: Role,
        kind: str,
        attempt: Callable[[Session, Case, Requirement], tuple[dict[str, Any], OwnershipEvidence | None]],
    ) -> OwnershipEvidence:
        rule = ACTIONS["submit_evidence"]
        if actor_role not in rule.roles:
            raise Forbidden(f"a {actor_role.value} may not give ownership evidence")
        refusal: EvidenceRefused | None = None
        with self.db.write() as session:
            case = _lock(session, reference)
            if actor_role is Role.USER and case.user_id != actor_name:
                raise NotFound(f"no case {reference}")
            if CaseStatus(case.status) not in rule.moves:
                raise InvalidTransition(f"{reference} is {case.status}: ownership evidence is taken while it is open")
            need = requirement(case, self.config)
            if need is None:
                raise InvalidTransition(f"{reference} needs no ownership evidence")
            details, row = attempt(session, case, need)
            now = self.clock()
            answered = need.facts()  # what this evidence proves: kept in the keyed events (approval_check)
            _event(session, case, actor_name, actor_role.value, "submit_evidence",
                   {"kind": kind, **details, "requirement": answered}, now)
            if row is None:
                refusal = EvidenceRefused([FieldError(str(details.get("field") or "signature"),
                                                      str(details.get("reason")))])
            elif row.status == ACCEPTED:
                _event(session, case, SYSTEM_NAME, Role.SYSTEM.value, "accept_evidence",
                       {"evidence_id": row.id, "kind": kind, "verification": details.get("verification"),
                        "requirement": answered}, now)
        if refusal is not None:
            raise refusal  # after the commit: the attempt is kept, nothing else
        assert row is not None
        return row

    # ---------------------------------------------------------------- operators review
    def accept(self, reference: str, evidence_id: int, actor_name: str, actor_role: Role, *,
               expected_version: int | None = None, comment: str = "") -> OwnershipEvidence:
        """Accept a withdrawal record (it counts as preparing the case: the acceptor never approves it)."""
        return self._review(reference, evidence_id, actor_name, actor_role, ACCEPTED, comment, expected_version)

    def reject(self, reference: str, evidence_id: int, actor_name: str, actor_role: Role, *, reason: str,
               expected_version: int | None = None) -> OwnershipEvidence:
        """Reject a withdrawal record with a reason (kept in the audit event and on the evidence)."""
        if not reason or not reason.strip():
            raise ValidationFailed([FieldError("reason", "is required to reject evidence")])
        return self._review(reference, evidence_id, actor_name, actor_role, REJECTED, reason.strip(),
                            expected_version)

    def _review(self, reference: str, evidence_id: int, actor_name: str, actor_role: Role, outcome: str,
                text: str, expected_version: int | None) -> OwnershipEvidence:
        action = "accept_evidence" if outcome == ACCEPTED else "reject_evidence"
        rule = ACTIONS[action]
        if actor_role not in rule.roles or actor_role is Role.SYSTEM:
            raise Forbidden(f"a {actor_role.value} may not {action.replace('_', ' ')}")
        with self.db.write() as session:
            case = _lock(session, reference)
            if expected_version is not None and case.version != expected_version:
                raise Conflict(
                    f"{reference} was changed by someone else (you saw version {expected_version}, "
                    f"it is now {case.version}); reload and try again", current_version=case.version)
            if CaseStatus(case.status) not in rule.moves:
                raise InvalidTransition(f"cannot {action.replace('_', ' ')} on a case that is {case.status}")
            row = session.exec(
                select(OwnershipEvidence).where(OwnershipEvidence.id == evidence_id).with_for_update()
            ).first()
            if row is None or row.case_id != case.id:
                raise NotFound(f"{reference} has no evidence {evidence_id}")
            if row.status != SUBMITTED:
                raise InvalidTransition(f"evidence {evidence_id} of {reference} is already {row.status}")
            if row.submitted_by == actor_name:
                raise Forbidden(f"four-eyes rule: {actor_name} gave evidence {evidence_id} and cannot also review it")
            need = requirement(case, self.config)
            given = _submissions(session, case).get(evidence_id, {}).get("requirement")
            if outcome == ACCEPTED and need is not None and given is not None and not need.answered_by(given):
                raise InvalidTransition(
                    f"evidence {evidence_id} of {reference} was given for {_described(given)}; the case now needs "
                    f"{need.describe()}: reject it and ask the appellant for evidence of that")
            now = self.clock()
            row.status = outcome
            row.reviewer = actor_name
            row.reviewed_at = now
            row.reason = text or None
            session.add(row)
            details: dict[str, Any] = {"evidence_id": row.id, "kind": row.kind, "sha256": row.document_sha256,
                                       "requirement": need.facts() if need is not None else None}
            if outcome == REJECTED:
                details["reason"] = text
            elif text:
                details["comment"] = text
            _event(session, case, actor_name, actor_role.value, action, details, now)
            return row


def _transaction_signing_key(session: Session, need: Requirement) -> str | None:
    """The XRP Ledger deposit's ``SigningPubKey`` as the adapter recorded it (``details
    ["signing_pub_key"]`` of the stored chain observation, ``chains.xrpl``), when that observation
    is of this transaction, a success, and sent from the required sender; else None (then only a key
    deriving the sender proves it: a missing key never widens what is accepted)."""
    stored = session.exec(
        select(ChainObservation).where(
            ChainObservation.network == need.network,
            col(ChainObservation.tx_hash).in_(sorted({need.tx_hash, need.tx_hash.upper(), tx_key(need.tx_hash)})),
        )
    ).all()
    for row in stored:
        evidence = row.evidence or {}
        sender = evidence.get("sender")
        if (tx_key(row.tx_hash) != tx_key(need.tx_hash) or row.status != TxStatus.SUCCESS.value
                or not isinstance(sender, str) or address_key(sender) != address_key(need.sender)):
            continue
        details = evidence.get("details")
        key = details.get("signing_pub_key") if isinstance(details, Mapping) else None
        return key if isinstance(key, str) and key else None
    return None


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _lock(session: Session, reference: str) -> Case:
    case = session.exec(select(Case).where(Case.reference == reference).with_for_update()).first()
    if case is None:
        raise NotFound(f"no case {reference}")
    return case


def _event(session: Session, case: Case, actor: str, role: str, action: str, details: Mapping[str, Any],
           now: datetime) -> None:
    """An audit event on the case; the case's version moves with it (audit verify counts them)."""
    assert case.id is not None
    case.version += 1
    case.updated_at = now
    session.add(case)
    session.flush()
    audit.append_event(session, case_id=case.id, actor=actor, actor_role=role, action=action,
                       from_status=case.status, to_status=case.status, details=details, now=now)


def is_refusal(exc: ServiceError) -> bool:
    return isinstance(exc, EvidenceRefused)
