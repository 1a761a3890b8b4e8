"""The one place that changes a case.

Every change runs in one write transaction that: locks the case row, checks the caller's version
(a stale version is a Conflict, never a silent overwrite), checks the action against the
transition table and the actor's role, applies the change, bumps the version, and appends the
audit event. The API, the CLI and the workbench all call these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from sqlalchemy import func
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chains.base import Observation
from recovery import audit
from recovery.config import Config
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import Conflict, FieldError, Forbidden, InvalidTransition, NotFound, ValidationFailed
from recovery.intake import AppealDraft
from recovery.lifecycle import ACTIONS
from recovery.models import Case, CaseEvent, ChainObservation, ObservedTransfer
from recovery.rules import Decision
from recovery.vocabulary import CaseStatus, Category, Flag, Origin, Resolution, Role

Clock = Callable[[], datetime]

#: reason codes a rejection must carry; shown to the user in plain words
REJECTION_REASONS: dict[str, str] = {
    "not_recoverable": "The funds cannot be recovered from where they landed.",
    "not_our_address": "The transaction did not reach an address of this exchange.",
    "ownership_not_proven": "We could not confirm that you own the sending address.",
    "not_economical": "The recovery would cost more than the amount.",
    "expired": "The deposit is older than the recovery window.",
    "duplicate": "This deposit is already handled in another appeal.",
    "counterfeit_token": "The token is a counterfeit imitating a listed asset.",
    "user_withdrew": "You withdrew the appeal.",
    "other": "See the message from the appeal team.",
}


@dataclass(frozen=True)
class Actor:
    """Who acts: an operator (by username and role), a user (by user id), or the system."""

    name: str
    role: Role

    @property
    def is_operator(self) -> bool:
        return self.role in (Role.SPECIALIST, Role.APPROVER, Role.ADMIN, Role.AUDITOR)


SYSTEM = Actor("system", Role.SYSTEM)


@dataclass(frozen=True)
class CaseView:
    """A case with its events, detached from the session."""

    case: Case
    events: list[CaseEvent] = field(default_factory=list)


@dataclass(frozen=True)
class CaseFilter:
    status: str | None = None
    category: str | None = None
    network: str | None = None
    user_id: str | None = None
    assignee: str | None = None
    origin: str | None = None


#: categories that mean "ask the chain again later" rather than a verdict
PENDING_CATEGORIES = frozenset({Category.TX_NOT_FOUND, Category.AWAITING_CONFIRMATIONS})


def decision_status(decision: Decision) -> CaseStatus:
    """Where a decided case goes: back to the chain queue, or to a person."""
    return CaseStatus.AWAITING_CHAIN if decision.category in PENDING_CATEGORIES else CaseStatus.IN_REVIEW


def decision_signature(data: Mapping[str, Any]) -> dict[str, Any]:
    """The parts of a stored decision whose change is worth an audit event (not confirmations)."""
    transfers = data.get("transfers") or []
    fee = data.get("fee") or {}
    return {
        "category": data.get("category"),
        "recoverable": data.get("recoverable"),
        "resolution": data.get("resolution"),
        "flags": sorted(data.get("flags") or []),
        "network": data.get("network"),
        "amount": data.get("amount"),
        "fee": fee.get("fee"),
        "credited_user_id": data.get("credited_user_id"),
        "transfers": sorted(str(t.get("index")) + ":" + str(t.get("recipient")) for t in transfers),
    }


def record_observations(session: Session, observations: Iterable[Observation], now: datetime) -> list[dict[str, Any]]:
    """Upsert the latest observation per (network, tx) and its transfers; return the reorgs seen.

    A reorg is a transaction whose stored block hash differs from the new one (or that vanished
    from a block it was in): the block it was in has been replaced.
    """
    reorgs: list[dict[str, Any]] = []
    for obs in observations:
        stored = session.exec(
            select(ChainObservation).where(
                ChainObservation.network == obs.network, ChainObservation.tx_hash == obs.tx_hash
            )
        ).first()
        if stored is not None and stored.block_hash and stored.block_hash != obs.block_hash:
            reorgs.append({"network": obs.network, "tx_hash": obs.tx_hash, "old_block_hash": stored.block_hash,
                           "new_block_hash": obs.block_hash, "old_block": stored.block_number,
                           "new_block": obs.block_number})
        if stored is not None and (stored.status, stored.block_hash, stored.confirmations) == (
            obs.status.value, obs.block_hash, obs.confirmations
        ):
            continue
        moved = stored is None or stored.block_hash != obs.block_hash  # read before ``row`` (== stored) changes
        row = stored or ChainObservation(network=obs.network, tx_hash=obs.tx_hash, status=obs.status.value)
        row.status = obs.status.value
        row.block_number = obs.block_number
        row.block_hash = obs.block_hash
        row.confirmations = obs.confirmations
        row.evidence = obs.to_json()
        row.observed_at = now
        session.add(row)
        if moved:
            existing = {
                t.transfer_index: t
                for t in session.exec(
                    select(ObservedTransfer).where(
                        ObservedTransfer.network == obs.network, ObservedTransfer.tx_hash == obs.tx_hash
                    )
                ).all()
            }
            for transfer in obs.transfers:
                item = existing.pop(transfer.index, None) or ObservedTransfer(
                    network=obs.network, tx_hash=obs.tx_hash, transfer_index=transfer.index, kind="", sender="",
                    recipient="", amount_base_units=Decimal(0),
                )
                item.kind = transfer.kind.value
                item.contract = transfer.contract
                item.sender = transfer.sender
                item.recipient = transfer.recipient
                item.amount_base_units = Decimal(transfer.amount)
                item.memo = transfer.memo
                item.block_number = obs.block_number
                item.block_hash = obs.block_hash
                session.add(item)
            for gone in existing.values():
                session.delete(gone)
    session.flush()
    return reorgs


def reference_for(case_id: int) -> str:
    return f"RC-{case_id:06d}"


class CaseService:
    def __init__(self, db: Database, config: Config, clock: Clock = utcnow) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    # ------------------------------------------------------------------ reads
    def get(self, reference: str, *, for_user: str | None = None) -> CaseView:
        """One case with its events. ``for_user`` hides other users' cases (as if absent)."""
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            if case is None or (for_user is not None and case.user_id != for_user):
                raise NotFound(f"no case {reference}")
            events = list(
                session.exec(
                    select(CaseEvent).where(CaseEvent.case_id == case.id).order_by(col(CaseEvent.id))
                ).all()
            )
            return CaseView(case=case, events=events)

    def list_cases(self, filters: CaseFilter = CaseFilter(), *, limit: int = 100, offset: int = 0) -> list[Case]:
        with self.db.read() as session:
            query = select(Case)
            for name in ("status", "category", "network", "user_id", "assignee", "origin"):
                value = getattr(filters, name)
                if value is not None:
                    query = query.where(getattr(Case, name) == value)
            query = query.order_by(col(Case.id)).offset(offset).limit(limit)
            return list(session.exec(query).all())

    def count(self, filters: CaseFilter = CaseFilter()) -> int:
        with self.db.read() as session:
            query = select(func.count()).select_from(Case)
            for name in ("status", "category", "network", "user_id", "assignee", "origin"):
                value = getattr(filters, name)
                if value is not None:
                    query = query.where(getattr(Case, name) == value)
            return int(session.exec(query).one())

    # ------------------------------------------------------------------ creation
    def submit(self, draft: AppealDraft, actor: Actor, *, origin: Origin = Origin.APPEAL) -> tuple[Case, bool]:
        """Open a case, or return the caller's existing one for the same (network, tx_hash).

        Returns (case, created). Another user's case for the same transaction is accepted and
        both are flagged ``contested``.
        """
        rule = ACTIONS["submit"]
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role} cannot open cases")
        if actor.role is Role.USER and actor.name != draft.user_id:
            raise Forbidden("users open appeals for themselves only")
        now = self.clock()
        try:
            with self.db.write() as session:
                existing = self._find_existing(session, draft)
                if existing is not None:
                    return existing, False
                case = Case(
                    user_id=draft.user_id,
                    origin=origin.value,
                    network=draft.network,
                    asset=draft.asset,
                    tx_hash=draft.tx_hash,
                    deposit_address=draft.deposit_address,
                    memo=draft.memo,
                    claimed_amount=draft.claimed_amount,
                    status=CaseStatus.SUBMITTED.value,
                    flags=[],
                    created_at=now,
                    updated_at=now,
                    sla_due_at=now + timedelta(hours=self.config.policy.sla_hours),
                    version=1,
                )
                session.add(case)
                session.flush()
                assert case.id is not None
                case.reference = reference_for(case.id)
                others = self._other_appeals(session, case)
                if others:
                    case.flags = sorted({*case.flags, Flag.CONTESTED.value})
                session.add(case)
                session.flush()
                audit.append_event(
                    session,
                    case_id=case.id,
                    actor=actor.name,
                    actor_role=actor.role.value,
                    action="submit",
                    from_status=None,
                    to_status=CaseStatus.SUBMITTED.value,
                    details={
                        "origin": origin.value,
                        "network": draft.network,
                        "asset": draft.asset,
                        "tx_hash": draft.tx_hash,
                        "deposit_address": draft.deposit_address,
                        "memo": draft.memo,
                        "claimed_amount": draft.claimed_amount,
                    },
                    now=now,
                )
                for other in others:
                    if Flag.CONTESTED.value not in other.flags:
                        self._flag(session, other, Flag.CONTESTED, {"by_case": case.reference}, now)
                return case, True
        except IntegrityError:
            # A concurrent submit of the same (user, network, tx_hash) won the race: return it.
            with self.db.read() as session:
                existing = self._find_existing(session, draft)
                if existing is None:
                    raise
                return existing, False

    @staticmethod
    def _find_existing(session: Session, draft: AppealDraft) -> Case | None:
        return session.exec(
            select(Case).where(
                Case.user_id == draft.user_id, Case.network == draft.network, Case.tx_hash == draft.tx_hash
            )
        ).first()

    @staticmethod
    def _other_appeals(session: Session, case: Case) -> list[Case]:
        return list(
            session.exec(
                select(Case)
                .where(Case.network == case.network, Case.tx_hash == case.tx_hash, Case.id != case.id)
                .with_for_update()
            ).all()
        )

    def _flag(self, session: Session, case: Case, flag: Flag, details: Mapping[str, Any], now: datetime) -> None:
        assert case.id is not None
        case.flags = sorted({*case.flags, flag.value})
        case.version += 1
        case.updated_at = now
        session.add(case)
        audit.append_event(
            session,
            case_id=case.id,
            actor=SYSTEM.name,
            actor_role=SYSTEM.role.value,
            action="flag",
            from_status=case.status,
            to_status=case.status,
            details={"flag": flag.value, **details},
            now=now,
        )

    # ------------------------------------------------------------------ the one transition path
    def act(
        self,
        reference: str,
        action: str,
        actor: Actor,
        *,
        expected_version: int,
        details: Mapping[str, Any] | None = None,
        to_status: CaseStatus | None = None,
        mutate: Callable[[Session, Case], Mapping[str, Any] | None] | None = None,
    ) -> Case:
        """Apply ``action`` to a case, or raise without changing anything.

        ``mutate`` changes fields of the locked case and may return extra audit details; the
        status target comes from the transition table unless the action lets the caller choose
        (``chain_result``).
        """
        rule = ACTIONS.get(action)
        if rule is None:
            raise InvalidTransition(f"unknown action {action!r}")
        details = dict(details or {})
        missing = [key for key in rule.requires if details.get(key) in (None, "")]
        if missing:
            raise ValidationFailed([FieldError(key, "is required for " + action) for key in missing])
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role.value} may not {action}")
        now = self.clock()
        with self.db.write() as session:
            case = self._lock(session, reference)
            if actor.role is Role.USER and case.user_id != actor.name:
                raise NotFound(f"no case {reference}")
            if case.version != expected_version:
                raise Conflict(
                    f"{reference} was changed by someone else (you saw version {expected_version}, "
                    f"it is now {case.version}); reload and try again",
                    current_version=case.version,
                )
            current = CaseStatus(case.status)
            if current not in rule.moves:
                raise InvalidTransition(f"cannot {action} a case that is {current.value}")
            target = rule.moves[current]
            if to_status is not None:
                if target is not None and to_status is not target:
                    raise InvalidTransition(f"{action} moves {current.value} to {target.value}, not {to_status.value}")
                target = to_status
            extra = mutate(session, case) if mutate is not None else None
            if extra:
                details.update(extra)
            new_status = target or current
            case.status = new_status.value
            case.version += 1
            case.updated_at = now
            finished = (CaseStatus.REFUNDED, CaseStatus.CREDITED, CaseStatus.REJECTED)
            if new_status in finished and case.resolved_at is None:
                case.resolved_at = now
            session.add(case)
            assert case.id is not None
            try:
                session.flush()
            except IntegrityError as exc:
                raise Conflict(f"{reference}: {action} conflicts with another case: {exc.orig}") from None
            audit.append_event(
                session,
                case_id=case.id,
                actor=actor.name,
                actor_role=actor.role.value,
                action=action,
                from_status=current.value,
                to_status=new_status.value,
                details=details,
                now=now,
            )
            return case

    @staticmethod
    def _lock(session: Session, reference: str) -> Case:
        case = session.exec(select(Case).where(Case.reference == reference).with_for_update()).first()
        if case is None:
            raise NotFound(f"no case {reference}")
        return case

    # ------------------------------------------------------------------ named actions
    def assign(self, reference: str, assignee: str | None, actor: Actor, *, expected_version: int) -> Case:
        def change(_session: Session, case: Case) -> dict[str, Any]:
            previous = case.assignee
            case.assignee = assignee or None
            return {"previous_assignee": previous}

        return self.act(
            reference, "assign", actor, expected_version=expected_version,
            details={"assignee": assignee or "-"}, mutate=change,
        )

    def note(self, reference: str, text: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(reference, "note", actor, expected_version=expected_version, details={"text": text})

    def request_info(self, reference: str, message: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(
            reference, "request_info", actor, expected_version=expected_version, details={"message": message}
        )

    def provide_info(self, reference: str, message: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(
            reference, "provide_info", actor, expected_version=expected_version, details={"message": message}
        )

    def override_category(
        self, reference: str, category: str, reason: str, actor: Actor, *, expected_version: int
    ) -> Case:
        if category not in {c.value for c in Category}:
            raise ValidationFailed([FieldError("category", f"unknown category {category!r}")])

        def change(_session: Session, case: Case) -> dict[str, Any]:
            previous = case.category
            case.category_override = category
            case.category = category
            return {"previous_category": previous}

        return self.act(
            reference, "override_category", actor, expected_version=expected_version,
            details={"category": category, "reason": reason}, mutate=change,
        )

    def approve(self, reference: str, actor: Actor, *, expected_version: int, comment: str = "") -> Case:
        def check(session: Session, case: Case) -> dict[str, Any]:
            if case.resolution not in (Resolution.CREDIT.value, Resolution.REFUND.value):
                raise InvalidTransition(
                    f"{reference} has no credit or refund to approve (resolution {case.resolution or 'none'}); "
                    "reject it or override the category"
                )
            four_eyes = self._needs_four_eyes(case)
            if four_eyes:
                if actor.role not in (Role.APPROVER, Role.ADMIN):
                    raise Forbidden(
                        f"{reference} is worth {case.value_usd} USD, above the "
                        f"{self.config.policy.four_eyes_above_usd} USD threshold: an approver must approve it"
                    )
                preparers = self._preparers(session, case)
                if actor.name in preparers:
                    raise Forbidden(
                        f"{reference}: four-eyes rule: {actor.name} prepared this case and cannot also approve it"
                    )
            return {"four_eyes": four_eyes, "value_usd": case.value_usd, "resolution": case.resolution}

        return self.act(
            reference, "approve", actor, expected_version=expected_version,
            details={"comment": comment} if comment else {}, mutate=check,
        )

    def _needs_four_eyes(self, case: Case) -> bool:
        policy = self.config.policy
        if case.resolution not in policy.four_eyes_resolutions:
            return False
        # An unknown value is treated as above the threshold: it needs a second person.
        return case.value_usd is None or case.value_usd > policy.four_eyes_above_usd

    @staticmethod
    def _preparers(session: Session, case: Case) -> set[str]:
        """The assignee and every operator who shaped the decision of this case."""
        shaping = ("override_category", "request_info", "assign", "chain_result", "provide_info", "note")
        rows = session.exec(
            select(CaseEvent.actor).where(
                CaseEvent.case_id == case.id,
                col(CaseEvent.action).in_(shaping),
                CaseEvent.actor_role != Role.SYSTEM.value,
            )
        ).all()
        people = set(rows)
        if case.assignee:
            people.add(case.assignee)
        return people

    def reject(
        self, reference: str, reason_code: str, actor: Actor, *, expected_version: int, message: str = ""
    ) -> Case:
        if reason_code not in REJECTION_REASONS:
            raise ValidationFailed(
                [FieldError("reason_code", f"must be one of {', '.join(REJECTION_REASONS)}")]
            )
        return self.act(
            reference, "reject", actor, expected_version=expected_version,
            details={"reason_code": reason_code, "message": message},
        )

    def record_refund(
        self,
        reference: str,
        refund_tx_hash: str,
        actor: Actor,
        *,
        expected_version: int,
        refund_address: str | None = None,
        refund_network: str | None = None,
    ) -> Case:
        from chains import addresses
        from chains.base import InvalidChainInput

        def change(session: Session, case: Case) -> dict[str, Any]:
            if case.resolution != Resolution.REFUND.value:
                raise InvalidTransition(f"{reference} is resolved by {case.resolution}, not a refund")
            if case.refund_tx_hash:
                raise Conflict(f"{reference} already has refund transaction {case.refund_tx_hash}")
            network = self.config.network(refund_network or case.network)
            try:
                tx_hash = addresses.normalize_tx_hash(network.family, refund_tx_hash.strip())
                address = (
                    addresses.normalize_address(network.family, refund_address.strip(), field="refund_address")
                    if refund_address
                    else case.refund_address
                )
            except InvalidChainInput as exc:
                raise ValidationFailed([FieldError(exc.field if exc.field != "tx_hash" else "refund_tx_hash",
                                                   exc.message)]) from None
            clash = session.exec(select(Case.reference).where(Case.refund_tx_hash == tx_hash)).first()
            if clash is not None:
                raise Conflict(f"refund transaction {tx_hash} already closes {clash}")
            case.refund_tx_hash = tx_hash
            case.refund_network = network.name
            case.refund_address = address
            return {"refund_tx_hash": tx_hash, "refund_network": network.name, "refund_address": address}

        return self.act(
            reference, "record_refund", actor, expected_version=expected_version,
            details={"refund_tx_hash": refund_tx_hash}, mutate=change,
        )

    def mark_credited(self, reference: str, actor: Actor, *, expected_version: int, ledger_reference: str = "") -> Case:
        def check(_session: Session, case: Case) -> dict[str, Any]:
            if case.resolution != Resolution.CREDIT.value:
                raise InvalidTransition(f"{reference} is resolved by {case.resolution}, not a credit")
            return {"credited_user_id": case.credited_user_id, "net_amount": case.net_amount, "asset": case.asset}

        return self.act(
            reference, "mark_credited", actor, expected_version=expected_version,
            details={"ledger_reference": ledger_reference} if ledger_reference else {}, mutate=check,
        )

    def close(self, reference: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(reference, "close", actor, expected_version=expected_version)

    def withdraw(self, reference: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(reference, "withdraw", actor, expected_version=expected_version)

    def reopen(self, reference: str, reason: str, actor: Actor, *, expected_version: int) -> Case:
        def change(_session: Session, case: Case) -> None:
            case.resolved_at = None

        return self.act(
            reference, "reopen", actor, expected_version=expected_version, details={"reason": reason}, mutate=change
        )

    # ------------------------------------------------------------------ chain results
    def apply_decision(
        self,
        reference: str,
        decision: Decision | None,
        actor: Actor,
        *,
        expected_version: int,
        observations: Mapping[str, Observation] | None = None,
        unavailable: Mapping[str, str] | None = None,
    ) -> tuple[Case, bool]:
        """Record what the chains say about a case; returns (case, changed).

        ``decision`` None means the chains could not give a conclusive answer (a node down, a
        hash missing while another network of the family did not answer): the case waits in
        ``awaiting_chain`` and is never called "not found". A decision identical to the stored
        one only updates the re-check bookkeeping (no event, no version bump), so re-checks do
        not grow the audit log.
        """
        rule = ACTIONS["chain_result"]
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role.value} may not record chain results")
        now = self.clock()
        with self.db.write() as session:
            case = self._lock(session, reference)
            if case.version != expected_version:
                raise Conflict(
                    f"{reference} was changed by someone else (you saw version {expected_version}, "
                    f"it is now {case.version})",
                    current_version=case.version,
                )
            current = CaseStatus(case.status)
            if current not in rule.moves:
                raise InvalidTransition(f"chain results do not apply to a case that is {current.value}")
            case.last_checked_at = now
            case.check_count += 1
            reorgs = record_observations(session, (observations or {}).values(), now)
            if decision is None:
                target: CaseStatus = CaseStatus.AWAITING_CHAIN if current is CaseStatus.SUBMITTED else current
                if target is current:
                    session.add(case)
                    return case, False
                details: dict[str, Any] = {"outcome": "chain_unavailable", "unavailable": dict(unavailable or {})}
            else:
                target = decision_status(decision)
                signature = decision_signature(decision.to_json())
                previous = decision_signature(case.decision) if case.decision else None
                if signature == previous and target is current and not reorgs:
                    session.add(case)
                    return case, False
                self._store_decision(case, decision, now)
                details = {
                    "outcome": "decided",
                    "category": decision.category.value,
                    "recoverable": decision.recoverable.value,
                    "resolution": decision.resolution.value,
                    "flags": [f.value for f in decision.flags],
                    "network": decision.network,
                    "amount": decision.amount,
                    "fee": decision.fee_amount,
                    "rules_version": decision.rules_version,
                }
                if previous is not None and signature != previous:
                    details["previous"] = {k: previous.get(k) for k in ("category", "recoverable", "resolution")}
            if reorgs:
                details["reorg"] = reorgs
            case.status = target.value
            case.version += 1
            case.updated_at = now
            session.add(case)
            assert case.id is not None
            audit.append_event(
                session,
                case_id=case.id,
                actor=actor.name,
                actor_role=actor.role.value,
                action="chain_result",
                from_status=current.value,
                to_status=target.value,
                details=details,
                now=now,
            )
            return case, True

    @staticmethod
    def _store_decision(case: Case, decision: Decision, now: datetime) -> None:
        case.decision = decision.to_json()
        case.category = case.category_override or decision.category.value
        case.recoverable = decision.recoverable.value
        case.resolution = decision.resolution.value
        kept = {f for f in case.flags if f == Flag.CONTESTED.value}
        case.flags = sorted(kept | {f.value for f in decision.flags})
        case.amount = decision.amount
        case.value_usd = decision.value_usd
        case.fee_amount = decision.fee_amount
        case.fee_usd = decision.fee.fee_value_usd if decision.fee is not None else None
        case.fee_asset = decision.asset if decision.fee is not None else None
        case.net_amount = decision.net_amount
        case.credited_user_id = decision.credited_user_id
        if decision.network is not None:
            case.deposit_network = case.deposit_network or decision.network
        if decision.resolution is Resolution.REFUND and decision.refund_address and not case.refund_tx_hash:
            case.refund_address = decision.refund_address
            case.refund_network = decision.network
        if case.first_decided_at is None and decision.category not in PENDING_CATEGORIES:
            case.first_decided_at = now

    def events(self, references: Iterable[str]) -> dict[str, list[CaseEvent]]:
        with self.db.read() as session:
            rows = session.exec(
                select(Case.reference, CaseEvent)
                .join(CaseEvent, col(CaseEvent.case_id) == Case.id)
                .where(col(Case.reference).in_(list(references)))
                .order_by(col(CaseEvent.id))
            ).all()
            result: dict[str, list[CaseEvent]] = {}
            for reference, event in rows:
                result.setdefault(str(reference), []).append(event)
            return result


def money(value: Decimal | None) -> str | None:
    from recovery.dbtypes import decimal_text

    return decimal_text(value) if value is not None else None
