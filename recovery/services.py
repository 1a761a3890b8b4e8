"""The one place that changes a case.

Every change runs in one write transaction that: locks the case row, checks the caller's version
(a stale version is a Conflict, never a silent overwrite), checks the action against the
transition table and the actor's role, applies the change, bumps the version, and appends the
audit event. The API, the CLI and the workbench all call these functions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, or_, update
from sqlalchemy import select as core_select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm.attributes import set_committed_value
from sqlmodel import Session, SQLModel, col, select

from chains.base import Observation
from recovery import audit, case_reads, evidence, payouts, replies, valuation, webhook_outbox
from recovery.case_reads import CaseFilter as CaseFilter  # re-exported: the service layer's public names
from recovery.case_reads import CaseView as CaseView
from recovery.config import Config
from recovery.db import Database, execute_rows
from recovery.dbtypes import jsonable, utcnow
from recovery.errors import (
    Conflict,
    FieldError,
    Forbidden,
    InvalidTransition,
    NotFound,
    ServiceError,
    ValidationFailed,
)
from recovery.fees import parse_dec
from recovery.intake import AppealDraft
from recovery.lifecycle import ACTIONS, OPEN
from recovery.models import AuditHead, Case, CaseEvent, ChainObservation, DepositAddress, ObservedTransfer, Payout
from recovery.registry import address_key
from recovery.rules import Decision
from recovery.vocabulary import PAYOUT_FLAGS, CaseStatus, Category, Flag, Origin, Resolution, Role

Clock = Callable[[], datetime]

_PAYOUT_FLAG_VALUES = frozenset(f.value for f in PAYOUT_FLAGS)

#: reason codes a rejection must carry; shown to the user in plain words
REJECTION_REASONS: dict[str, str] = {
    "not_recoverable": "The funds cannot be recovered from where they landed.",
    # the same words whether the address is nobody's here or another customer's (issue 18)
    "not_our_address": "The transaction did not reach a deposit address of your account.",
    "ownership_not_proven": "We could not confirm that you own the sending address.",
    "not_economical": "The recovery would cost more than the amount.",
    "expired": "The deposit is older than the recovery window.",
    "duplicate": "This deposit is already handled in another appeal.",
    "counterfeit_token": "The token is a counterfeit imitating a listed asset.",
    "user_withdrew": "You withdrew the appeal.",
    "tx_not_found": "We could not find this transaction on the network you named or on the related networks.",
    "tx_failed": "The transaction failed on the network: nothing was sent, only the network fee was paid.",
    "already_credited": "This deposit was already credited; nothing more is due for it.",
    "other": "See the message from the appeal team.",
}

#: the rejection reason that follows from a case's finding (category first, then its flags)
_REJECTION_BY_CATEGORY: Mapping[str, str] = {
    Category.TX_NOT_FOUND.value: "tx_not_found",
    Category.TX_FAILED.value: "tx_failed",
    Category.NOT_OUR_ADDRESS.value: "not_our_address",
    Category.ALREADY_CREDITED.value: "already_credited",
    Category.COUNTERFEIT_TOKEN.value: "counterfeit_token",
    Category.MISSING_MEMO.value: "ownership_not_proven",
    Category.WRONG_MEMO.value: "ownership_not_proven",
    Category.UNATTRIBUTED_DEPOSIT.value: "ownership_not_proven",
}


def rejection_reason_for(case: Case) -> str:
    """The reason code a rejection of this case carries unless the operator chooses another: the
    one that matches the finding (a failed transaction is ``tx_failed``, never ``other``)."""
    flags = set(case.flags or [])
    if Flag.EXPIRED.value in flags:
        return "expired"
    if Flag.NOT_ECONOMICAL.value in flags:
        return "not_economical"
    return _REJECTION_BY_CATEGORY.get(case.category or "", "not_recoverable")


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
class PendingEvent:
    """An audit event to append (see :func:`append_events`)."""

    case_id: int
    actor: Actor
    action: str
    from_status: str | None
    to_status: str | None
    details: Mapping[str, Any]


@dataclass(frozen=True)
class ChainUpdate:
    """What the chains say about one case, for :meth:`CaseService.apply_decisions`.

    ``decision`` is the engine's decision as the case row stores it (:meth:`Decision.to_json`):
    the batch re-check's worker processes send it to the writing process in that form, plain
    JSON that costs a fraction of the objects to pass between processes."""

    reference: str
    decision: Mapping[str, Any] | None
    expected_version: int
    observations: Mapping[str, Observation] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ChainApplied:
    """The result for one :class:`ChainUpdate`: the case after it, or the error that left it untouched.

    ``case`` is the ORM object after the change when it was asked for (``full_cases``); ``status``
    and ``category`` are always set for an applied update.
    """

    reference: str
    case: Case | None
    changed: bool
    error: ServiceError | None = None
    #: the transaction moved to another block (or out of its block) since the last check
    reorgs: tuple[dict[str, Any], ...] = ()
    status: str | None = None
    category: str | None = None


@dataclass
class LockedCase:
    """The columns of a locked case that applying a chain result reads and writes, as a plain row
    (the batch path loads no ORM object: building and refreshing hundreds of them per batch cost
    more than the rest of the write)."""

    id: int | None
    reference: str | None
    version: int
    status: str
    category: str | None
    check_count: int
    decision: dict[str, Any] | None
    flags: list[str]
    category_override: str | None
    deposit_network: str | None
    refund_tx_hash: str | None
    first_decided_at: datetime | None
    lease_owner: str | None


_LOCKED_COLUMNS = tuple(f.name for f in fields(LockedCase))


#: categories that mean "ask the chain again later" rather than a verdict
PENDING_CATEGORIES = frozenset({Category.TX_NOT_FOUND, Category.AWAITING_CONFIRMATIONS})


def decision_status(decision: Mapping[str, Any]) -> CaseStatus:
    """Where a decided case goes (its decision as stored, :meth:`Decision.to_json`): back to the chain
    queue, or to a person."""
    return CaseStatus.AWAITING_CHAIN if Category(decision["category"]) in PENDING_CATEGORIES else CaseStatus.IN_REVIEW


def _decided_block(decision: Mapping[str, Any] | None) -> tuple[str, str, int | None] | None:
    """(network, block hash, block number) where a stored decision found the transaction, if anywhere."""
    for reason in (decision or {}).get("reasons") or ():
        if isinstance(reason, Mapping) and reason.get("code") in ("found", "found_elsewhere"):
            evidence = reason.get("evidence") or {}
            network, block_hash, block = evidence.get("network"), evidence.get("block_hash"), evidence.get("block")
            if isinstance(network, str) and isinstance(block_hash, str):
                return network, block_hash, block if isinstance(block, int) else None
    return None


def _case_reorg(
    decision: Mapping[str, Any] | None, observations: Mapping[str, Observation]
) -> tuple[dict[str, Any], ...]:
    """The reorg this case's own decision shows: the transaction is no longer in the block it was
    decided on (another block, back in the mempool, or gone)."""
    before = _decided_block(decision)
    if before is None:
        return ()
    network, old_hash, old_block = before
    obs = observations.get(network)
    if obs is None:
        return ()
    new_hash = obs.block_hash if obs.found else None
    if new_hash == old_hash:
        return ()
    return ({"network": network, "tx_hash": obs.tx_hash, "old_block_hash": old_hash, "new_block_hash": new_hash,
             "old_block": old_block, "new_block": obs.block_number if obs.found else None},)


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


ObservationKey = tuple[str, str]  # (network, normalized tx hash)


def upsert(session: Session, model: type[SQLModel], rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Insert rows (all with the same columns) in one statement; a row another writer inserted
    meanwhile under the same unique ``keys`` is updated instead (two runners on PostgreSQL may meet
    on one transaction through two appeals of it). Rows go in key order, so writers lock alike."""
    table = table_of(model)
    rows = sorted(rows, key=lambda row: tuple(str(row[k]) for k in keys))
    dialect = session.get_bind().dialect.name
    statement: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects import postgresql  # imported when first used (start-up)

        statement = postgresql.insert(table)
    elif dialect == "sqlite":
        from sqlalchemy.dialects import sqlite

        statement = sqlite.insert(table)
    else:  # pragma: no cover - only the two supported databases
        session.connection().execute(insert(table), rows)
        return
    changing = [name for name in rows[0] if name not in keys]
    statement = statement.on_conflict_do_update(
        index_elements=list(keys), set_={name: statement.excluded[name] for name in changing}
    )
    execute_rows(session, statement, rows)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model: multi-row inserts through it skip the ORM's per-object work."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, Table)
    return table


def record_observations(session: Session, observations: Iterable[Observation], now: datetime) -> list[dict[str, Any]]:
    """Upsert the latest observation per (network, tx) and its transfers; return the reorgs seen.

    A reorg is a transaction whose stored block hash differs from the new one (or that vanished
    from a block it was in): the block it was in has been replaced.
    """
    return [r for found in record_observations_many(session, observations, now).values() for r in found]


def record_observations_many(
    session: Session, observations: Iterable[Observation], now: datetime
) -> dict[ObservationKey, list[dict[str, Any]]]:
    """:func:`record_observations` for many transactions in a constant number of queries.

    Returns the reorgs per (network, tx hash). A "not found" answer is stored only where the
    transaction used to sit in a block (it vanished: a reorg); elsewhere "not found" is no evidence.
    """
    latest = {(o.network, o.tx_hash): o for o in observations}
    if not latest:
        return {}
    stored = {
        (row.network, row.tx_hash): row
        for row in session.exec(
            select(ChainObservation).where(
                col(ChainObservation.tx_hash).in_({h for _, h in latest}),
                col(ChainObservation.network).in_({n for n, _ in latest}),
            )
        ).all()
    }
    reorgs: dict[ObservationKey, list[dict[str, Any]]] = {}
    changed: list[tuple[ObservationKey, Observation, ChainObservation | None]] = []
    for key, obs in latest.items():
        row = stored.get(key)
        if not obs.found and (row is None or not row.block_hash):
            continue
        if row is not None and row.block_hash and row.block_hash != obs.block_hash:
            reorgs[key] = [{"network": obs.network, "tx_hash": obs.tx_hash, "old_block_hash": row.block_hash,
                            "new_block_hash": obs.block_hash, "old_block": row.block_number,
                            "new_block": obs.block_number}]
        if row is not None and (row.status, row.block_hash, row.confirmations) == (
            obs.status.value, obs.block_hash, obs.confirmations
        ):
            continue
        changed.append((key, obs, row))
    moved = [(key, obs) for key, obs, row in changed if row is None or row.block_hash != obs.block_hash]
    existing: dict[ObservationKey, dict[int, ObservedTransfer]] = {}
    if moved:
        for item in session.exec(
            select(ObservedTransfer).where(
                col(ObservedTransfer.tx_hash).in_({h for (_, h), _ in moved}),
                col(ObservedTransfer.network).in_({n for (n, _), _ in moved}),
            )
        ).all():
            existing.setdefault((item.network, item.tx_hash), {})[item.transfer_index] = item
    fresh: list[dict[str, Any]] = []
    for _key, obs, row in changed:
        values: dict[str, Any] = {
            "status": obs.status.value, "block_number": obs.block_number, "block_hash": obs.block_hash,
            "confirmations": obs.confirmations, "evidence": obs.to_json(), "observed_at": now,
            "block_time": obs.timestamp,
        }
        if row is None:  # new rows go in one multi-row INSERT, without ORM objects
            fresh.append({"network": obs.network, "tx_hash": obs.tx_hash, **values})
        else:
            for name, value in values.items():
                setattr(row, name, value)
            session.add(row)
    if fresh:
        upsert(session, ChainObservation, fresh, ("network", "tx_hash"))
    new_transfers: list[dict[str, Any]] = []
    for key, obs in moved:
        old: dict[int, ObservedTransfer] = existing.get(key, {})
        for transfer in obs.transfers:
            item_values: dict[str, Any] = {
                "kind": transfer.kind.value, "contract": transfer.contract, "sender": transfer.sender,
                "recipient": transfer.recipient, "amount_base_units": Decimal(transfer.amount), "memo": transfer.memo,
                "block_number": obs.block_number, "block_hash": obs.block_hash,
            }
            if transfer.index not in old:
                new_transfers.append({"network": obs.network, "tx_hash": obs.tx_hash,
                                      "transfer_index": transfer.index, **item_values})
                continue
            item = old.pop(transfer.index)
            for name, value in item_values.items():
                setattr(item, name, value)
            session.add(item)
        for gone in old.values():
            session.delete(gone)
    if new_transfers:
        upsert(session, ObservedTransfer, new_transfers, ("network", "tx_hash", "transfer_index"))
    session.flush()
    return reorgs


@dataclass
class _EventRow:
    """The columns of one audit event; :func:`recovery.audit.event_hash` reads exactly these."""

    id: int
    case_id: int | None
    actor: str
    actor_role: str
    action: str
    from_status: str | None
    to_status: str | None
    details: Any
    created_at: datetime
    prev_hash: str
    hash: str = ""
    key_id: str | None = None


def append_events(session: Session, items: Sequence[PendingEvent], now: datetime) -> int:
    """Append events to the audit chain in one go; returns how many.

    The head is locked once and each event hashes the one before it with
    :func:`recovery.audit.event_hash`, exactly as :func:`recovery.audit.append_event` chains them
    (``recovery audit verify`` checks both). The rows go in one multi-row INSERT.
    """
    if not items:
        return 0
    head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).first()
    if head is None:
        audit.ensure_head(session)
        head = session.exec(select(AuditHead).where(AuditHead.id == 1).with_for_update()).one()
    last_id = head.last_event_id or 0
    last_hash = head.last_hash
    key = audit.current_keyring().current
    rows: list[dict[str, Any]] = []
    appended: list[_EventRow] = []
    for item in items:
        last_id += 1
        row = _EventRow(
            id=last_id, case_id=item.case_id, actor=item.actor.name, actor_role=item.actor.role.value,
            action=item.action, from_status=item.from_status, to_status=item.to_status,
            details=jsonable(dict(item.details)), created_at=now.astimezone(UTC), prev_hash=last_hash,
            key_id=key.id,
        )
        row.hash = last_hash = audit.event_hash(cast(CaseEvent, row), key)
        rows.append(row.__dict__)
        appended.append(row)
    execute_rows(session, insert(table_of(CaseEvent)), rows)
    webhook_outbox.enqueue(session, appended)  # the users' webhooks, in this transaction (none: no cost)
    head.last_event_id = last_id
    head.last_hash = last_hash
    session.add(head)
    session.flush()
    return len(rows)


def update_cases(session: Session, changes: Sequence[tuple[Case | LockedCase, Mapping[str, Any]]]) -> None:
    """Write new values to locked cases: one executemany UPDATE per set of changed columns, then the
    loaded objects take the values as their committed state (the ORM writes nothing more; a plain
    :class:`LockedCase` simply takes them)."""
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for case, values in changes:
        keys = tuple(sorted(values))
        groups.setdefault(keys, []).append({"case_id_": case.id, **{f"new_{k}": v for k, v in values.items()}})
    table = table_of(Case)
    for keys, rows in groups.items():
        if keys:
            statement = (update(table).where(table.c.id == bindparam("case_id_"))
                         .values({k: bindparam(f"new_{k}") for k in keys}))
            execute_rows(session, statement, rows)
    for case, values in changes:
        if isinstance(case, LockedCase):
            for key, value in values.items():
                if key in _LOCKED_COLUMNS:
                    setattr(case, key, value)
            continue
        for key, value in values.items():
            set_committed_value(case, key, value)


def _appeal_details(draft: AppealDraft) -> dict[str, Any]:
    """What an appeal said, as audit details (submit and claim events)."""
    return {
        "network": draft.network,
        "asset": draft.asset,
        "tx_hash": draft.tx_hash,
        "deposit_address": draft.deposit_address,
        "memo": draft.memo,
        "claimed_amount": draft.claimed_amount,
    }


def reference_for(case_id: int) -> str:
    return f"RC-{case_id:06d}"


#: The user of a detected case whose owner is unknown: a transfer to a shared (memo) address whose
#: memo is missing or names no account is held under ``shared:<network>:<address>`` until the user
#: who sent it appeals (see :meth:`CaseService.submit`). Never a real user id (the API refuses it).
SHARED_OWNER_PREFIX = "shared:"


def shared_owner(network: str, address: str) -> str:
    """The placeholder user of a detected case at a shared address."""
    return f"{SHARED_OWNER_PREFIX}{network}:{address}"[:128]


def is_shared_owner(user_id: str) -> bool:
    return user_id.startswith(SHARED_OWNER_PREFIX)


#: the audit action of an appeal that takes over a detected case held for a shared address
CLAIM_ACTION = "claim"


def case_for_appeal(session: Session, config: Config, draft: AppealDraft, *, claims: bool = True,
                    lock: bool = False) -> Case | None:
    """The case an appeal for ``draft`` joins instead of opening a new one, if any. In this order:

    1. the user's own case for the same (network, tx_hash): the idempotency key;
    2. a case ``recovery scan`` opened for this user for the transaction on any network of the
       claimed network's family (it was opened where the deposit landed, the user may name the
       network they meant);
    3. with ``claims``: an open detected case for the transaction held for a shared address
       (``shared:<network>:<address>``: the memo was missing or named no account) where the user
       holds a deposit memo of their own, unless the user already has a case for the transaction on
       that network. The appeal claims it (see :meth:`CaseService.submit`).

    One indexed query (network, tx_hash) for the three; one more for the user's deposit addresses
    only when a shared case exists. ``lock`` locks the shared candidates (the claim's write).
    """
    claimed = config.networks.get(draft.network)
    family = [n.name for n in config.networks_of_family(claimed.family)] if claimed else [draft.network]
    query = (
        select(Case)
        .where(Case.tx_hash == draft.tx_hash, col(Case.network).in_(family),
               or_(col(Case.user_id) == draft.user_id, col(Case.user_id).startswith(SHARED_OWNER_PREFIX)))
        .order_by(col(Case.id))
    )
    if lock:
        query = query.with_for_update()
    rows = list(session.exec(query).all())
    own = [c for c in rows if c.user_id == draft.user_id]
    for case in own:
        if case.network == draft.network:
            return case
    for case in own:
        if case.origin == Origin.DETECTED.value:
            return case
    if not claims or is_shared_owner(draft.user_id):
        return None
    taken = {c.network for c in own}
    shared = [c for c in rows if is_shared_owner(c.user_id) and c.origin == Origin.DETECTED.value
              and CaseStatus(c.status) in OPEN and c.network not in taken]
    if not shared:
        return None
    held = {
        (row.network, address_key(row.address))
        for row in session.exec(
            select(DepositAddress).where(DepositAddress.user_id == draft.user_id,
                                         col(DepositAddress.network).in_({c.network for c in shared}))
        ).all()
        if row.memo
    }
    mine = [c for c in shared if (c.network, address_key(c.deposit_address)) in held]
    if not mine:
        return None
    wanted = address_key(draft.deposit_address)
    return min(mine, key=lambda c: (address_key(c.deposit_address) != wanted, c.network != draft.network, c.id))


class CaseService:
    def __init__(self, db: Database, config: Config, clock: Clock = utcnow) -> None:
        self.db = db
        self.config = config
        self.clock = clock

    @contextmanager
    def _write(self) -> Iterator[Session]:
        """A write transaction of this service: the webhook outbox builds the user's view with its
        configuration (see :mod:`recovery.webhook_outbox`)."""
        with self.db.write() as session:
            session.info[webhook_outbox.CONFIG_KEY] = self.config
            yield session

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

    def payout(self, reference: str) -> Payout | None:
        """The case's live payout (approved, paid, proven or mismatched), if any."""
        with self.db.read() as session:
            case_id = session.exec(select(Case.id).where(Case.reference == reference)).first()
            if case_id is None:
                raise NotFound(f"no case {reference}")
            return payouts.active_payout(session, case_id)

    def payouts_waiting(self, *, kind: str | None = None, network: str | None = None) -> list[tuple[Case, Payout]]:
        """Approved payouts not paid yet (oldest approval first), with their cases."""
        with self.db.read() as session:
            query = (
                select(Case, Payout).join(Payout, col(Payout.case_id) == Case.id)
                .where(Payout.state == "approved", Case.status == CaseStatus.APPROVED.value)
                .order_by(col(Payout.approved_at), col(Payout.id))
            )
            if kind is not None:
                query = query.where(Payout.kind == kind)
            if network is not None:
                query = query.where(Payout.network == network)
            return [(case, row) for case, row in session.exec(query).all()]

    def list_cases(self, filters: CaseFilter | None = None, *, limit: int = 100, offset: int = 0) -> list[Case]:
        with self.db.read() as session:
            return case_reads.read_cases(session, filters or CaseFilter(), limit=limit, offset=offset)

    def count(self, filters: CaseFilter | None = None) -> int:
        with self.db.read() as session:
            return case_reads.count_cases(session, filters or CaseFilter())

    # ------------------------------------------------------------------ creation
    def submit(self, draft: AppealDraft, actor: Actor, *, origin: Origin = Origin.APPEAL) -> tuple[Case, bool]:
        """Open a case, or return the one this appeal joins (see :func:`case_for_appeal`).

        Returns (case, created). The caller's existing case for the same (network, tx_hash), or a
        case ``recovery scan`` opened for them for this transaction on any network of the family,
        is returned as it is (nothing written). An appeal (not the system's) for a transfer the
        scan holds for a shared address, where the appellant holds a memo, claims that case: it
        becomes the appellant's, with a ``claim`` audit event naming the placeholder it replaced
        (``created`` is False; the caller re-checks it: the decision was made for no one). Another
        user's case for the same transaction is accepted and both are flagged ``contested``.
        """
        rule = ACTIONS["submit"]
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role} cannot open cases")
        if actor.role is Role.USER and actor.name != draft.user_id:
            raise Forbidden("users open appeals for themselves only")
        if is_shared_owner(draft.user_id) and actor.role is not Role.SYSTEM:
            raise ValidationFailed([FieldError("user_id", f"{SHARED_OWNER_PREFIX}... is reserved for the system")])
        now = self.clock()
        try:
            with self._write() as session:
                existing = self._find_existing(session, draft, actor)
                if existing is not None:
                    if is_shared_owner(existing.user_id) and not is_shared_owner(draft.user_id):
                        return self._claim(session, existing, draft, actor, now), False
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
                        **({"shared_address": True} if is_shared_owner(draft.user_id) else {}),
                        **_appeal_details(draft),
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
                existing = case_for_appeal(session, self.config, draft, claims=False)
                if existing is None:
                    raise
                return existing, False

    def _find_existing(self, session: Session, draft: AppealDraft, actor: Actor) -> Case | None:
        # The system (the scan) never claims a shared case: a transaction with one transfer under
        # an unknown memo and another under a user's memo is two findings, not one claim.
        return case_for_appeal(session, self.config, draft, claims=actor.role is not Role.SYSTEM,
                               lock=self.db.is_postgresql)

    def _claim(self, session: Session, case: Case, draft: AppealDraft, actor: Actor, now: datetime) -> Case:
        """The appellant takes over a detected case held for a shared address (in the submit's
        transaction, the case row locked): it becomes theirs, their claimed amount is recorded, and
        a credit the stored decision meant for the placeholder now names them (the re-check that
        follows rewrites the decision itself). Audited as ``claim`` with the placeholder replaced."""
        assert case.id is not None
        rule = ACTIONS[CLAIM_ACTION]
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role.value} may not claim a case held for a shared address")
        if CaseStatus(case.status) not in OPEN:
            raise InvalidTransition(f"a case that is {case.status} cannot be claimed")
        previous = case.user_id
        status = case.status
        values: dict[str, Any] = {"user_id": draft.user_id, "version": case.version + 1, "updated_at": now}
        if case.claimed_amount is None and draft.claimed_amount is not None:
            values["claimed_amount"] = draft.claimed_amount
        if case.credited_user_id == previous:
            values["credited_user_id"] = draft.user_id
        update_cases(session, [(case, values)])
        audit.append_event(
            session,
            case_id=case.id,
            actor=actor.name,
            actor_role=actor.role.value,
            action=CLAIM_ACTION,
            from_status=status,
            to_status=status,
            details={
                "origin": Origin.APPEAL.value,
                "previous_user_id": previous,
                "user_id": draft.user_id,
                **_appeal_details(draft),
            },
            now=now,
        )
        return case

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
        with self._write() as session:
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

    def request_info(self, reference: str, message: str, actor: Actor, *, expected_version: int,
                     template: str | None = None) -> Case:
        """Ask the user a question (shown to them as it is written); the SLA clock stops until
        the answer (``recovery.replies``)."""
        text = replies.checked_message(message)

        def pause(_session: Session, case: Case) -> dict[str, Any]:
            return replies.pause_sla(case, self.clock())

        return self.act(
            reference, "request_info", actor, expected_version=expected_version,
            details={"message": text, **({"template": template} if template else {})}, mutate=pause,
        )

    def provide_info(self, reference: str, message: str, actor: Actor, *, expected_version: int,
                     attachments: Sequence[replies.Attachment] = ()) -> Case:
        """The answer to the open question, with optional attachments (checked by their content and
        stored with the answer, in one transaction): back to review, the SLA clock running again
        with the time it had left. It also reopens a case closed for want of an answer, within
        ``policy.info_reopen_grace_hours``."""
        text = replies.checked_message(message)
        files = replies.checked_attachments(attachments)

        def answer(session: Session, case: Case) -> dict[str, Any]:
            now = self.clock()
            extra: dict[str, Any] = {}
            if case.status == CaseStatus.CLOSED.value:
                refused = replies.reopen_check(replies.last_event(session, case.id), now, self.config.policy)
                if refused is not None:
                    raise InvalidTransition(f"{reference}: {refused}")
                extra["reopened"] = True
            asked = replies.last_event(session, case.id, [replies.ASKED])
            extra.update(replies.resume_sla(case, asked.details if asked is not None else None, now,
                                            self.config.policy))
            if files:
                extra["attachments"] = replies.store_documents(session, files, now)
            return extra

        return self.act(
            reference, "provide_info", actor, expected_version=expected_version, details={"message": text},
            mutate=answer,
        )

    def sweep_questions(self) -> dict[str, list[str]]:
        """Remind the users of questions ``info_reminder_hours`` old (once) and close the cases whose
        question is ``info_close_after_hours`` old, as the system; returns the references by what
        was done. A case someone changed meanwhile is left for the next sweep."""
        now = self.clock()
        policy = self.config.policy
        done: dict[str, list[str]] = {"reminded": [], "closed": []}
        with self.db.read() as session:
            waiting = session.exec(
                select(Case.reference, Case.version, Case.id).where(Case.status == CaseStatus.NEEDS_INFO.value)
            ).all()
            plans: list[tuple[str, int, str, datetime]] = []
            for reference, version, case_id in waiting:
                asked = replies.last_event(session, case_id, [replies.ASKED, replies.REMINDED])
                if asked is None:
                    continue
                if asked.action == replies.REMINDED:
                    question = replies.last_event(session, case_id, [replies.ASKED])
                    asked_at, reminded = (question or asked).created_at, True
                else:
                    asked_at, reminded = asked.created_at, False
                due = replies.due_for(asked_at, reminded, now, policy)
                if due is not None and reference is not None:
                    plans.append((reference, version, due, asked_at))
        for reference, version, due, asked_at in plans:
            try:
                if due == "remind":
                    self.act(reference, replies.REMINDED, SYSTEM, expected_version=version,
                             details={"message": replies.reminder_text(asked_at, policy)})
                    done["reminded"].append(reference)
                else:
                    self.act(reference, replies.CLOSED_UNANSWERED, SYSTEM, expected_version=version,
                             details={"message": replies.closing_text(now, policy),
                                      "reason_code": "no_answer"})
                    done["closed"].append(reference)
            except (Conflict, InvalidTransition):
                continue  # someone acted on it meanwhile: the next sweep looks again
        return done

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

    def send_for_approval(self, reference: str, actor: Actor, *, expected_version: int, comment: str = "") -> Case:
        """The preparer hands the case to an approver; it then shows on the Approvals page."""

        def mark(_session: Session, case: Case) -> dict[str, Any]:
            if case.resolution not in (Resolution.CREDIT.value, Resolution.REFUND.value):
                raise InvalidTransition(
                    f"{reference} has no credit or refund to approve (resolution {case.resolution or 'none'})"
                )
            case.approval_requested_at = self.clock()
            return {}

        return self.act(
            reference, "send_for_approval", actor, expected_version=expected_version,
            details={"comment": comment} if comment else {}, mutate=mark,
        )

    def approve(self, reference: str, actor: Actor, *, expected_version: int, comment: str = "") -> Case:
        """Approve the case's credit or refund and fix its exact payout (see :mod:`recovery.payouts`)."""

        def check(session: Session, case: Case) -> dict[str, Any]:
            plan = payouts.plan_payout(case, self.config)
            if actor.name in payouts.payout_changers(session, case):
                raise Forbidden(
                    f"{reference}: four-eyes rule: {actor.name} changed the payout and cannot also approve it"
                )
            four_eyes = self._needs_four_eyes(case)
            preparers = payouts.preparers(session, case)
            if four_eyes:
                if actor.role not in (Role.APPROVER, Role.ADMIN):
                    worth = ("its value comes from a manual valuation" if valuation.manually_valued(case)
                             else f"is worth {case.value_usd} USD, above the "
                                  f"{self.config.policy.four_eyes_above_usd} USD threshold")
                    raise Forbidden(f"{reference} {worth}: an approver must approve it")
                if actor.name in preparers:
                    raise Forbidden(
                        f"{reference}: four-eyes rule: {actor.name} prepared this case and cannot also approve it"
                    )
                if case.approval_requested_at is None:
                    raise Forbidden(
                        f"{reference} is above the {self.config.policy.four_eyes_above_usd} USD threshold: "
                        "the specialist who prepared it must send it for approval first"
                    )
            # a credit that does not follow from our books needs accepted ownership evidence, and
            # whoever accepted a withdrawal record does not approve it (recovery.evidence)
            proof = evidence.approval_check(session, case, self.config, actor.name, actor.role)
            # a fee-bearing case of unknown value needs an audited valuation, set by someone else
            valued = valuation.approval_check(session, case, actor.name)
            row = payouts.approve_payout(session, case, plan, actor.name, self.clock())
            case.approval_requested_at = None  # the request is answered; approving again needs a new one
            return {
                "four_eyes": four_eyes, "value_usd": case.value_usd, "resolution": case.resolution,
                "payout_id": row.id, "payout": plan.describe(), "preparers": sorted(preparers), **proof, **valued,
            }

        return self.act(
            reference, "approve", actor, expected_version=expected_version,
            details={"comment": comment} if comment else {}, mutate=check,
        )

    def _needs_four_eyes(self, case: Case) -> bool:
        policy = self.config.policy
        if case.resolution not in policy.four_eyes_resolutions:
            return False
        # An unknown value, or one an operator set by hand, is treated as above the threshold: it
        # needs a second person.
        return (case.value_usd is None or valuation.manually_valued(case)
                or case.value_usd > policy.four_eyes_above_usd)

    def set_valuation(self, reference: str, actor: Actor, *, expected_version: int, price_usd: str | Decimal,
                      source: str, reason: str) -> Case:
        """Set the USD price of an asset without one: the fee is recomputed from the fee policy
        (:mod:`recovery.valuation`); it counts as preparing the case, so someone else approves it."""
        price, source_text, reason_text = valuation.checked_input(price_usd, source, reason)

        def value(_session: Session, case: Case) -> dict[str, Any]:
            return valuation.valuation_change(case, self.config, price=price, source=source_text,
                                              reason=reason_text, by=actor.name, now=self.clock())

        return self.act(
            reference, valuation.SET_VALUATION, actor, expected_version=expected_version,
            details={"price_usd": price, "source": source_text, "reason": reason_text}, mutate=value,
        )

    def change_payout(
        self,
        reference: str,
        actor: Actor,
        *,
        expected_version: int,
        reason: str,
        to_address: str | None = None,
        memo: str | None = None,
    ) -> Case:
        """Change the refund address or memo; an approved case goes back to review and must be
        approved again by someone other than ``actor``."""
        from chains import addresses
        from chains.base import InvalidChainInput

        def change(session: Session, case: Case) -> dict[str, Any]:
            if case.resolution != Resolution.REFUND.value:
                raise InvalidTransition(f"{reference} is resolved by {case.resolution}: only a refund's payout changes")
            network = self.config.network(case.deposit_network or case.network)
            address = None
            if to_address is not None and to_address.strip():
                try:
                    address = addresses.normalize_address(network.family, to_address.strip(), field="to_address")
                except InvalidChainInput as exc:
                    raise ValidationFailed([FieldError(exc.field, exc.message)]) from None
            if memo is not None and len(memo) > 256:
                raise ValidationFailed([FieldError("memo", "is longer than 256 characters")])
            if address is None and memo is None:
                raise ValidationFailed([FieldError("to_address", "give a new refund address or memo")])
            cancelled = payouts.cancel_payouts(session, case)
            case.approval_requested_at = None
            return {**payouts.override_payout(case, {"to_address": address, "memo": memo}),
                    "cancelled_payouts": cancelled}

        return self.act(
            reference, "change_payout", actor, expected_version=expected_version,
            details={"reason": reason}, mutate=change,
        )

    def reject(
        self, reference: str, reason_code: str | None, actor: Actor, *, expected_version: int, message: str = ""
    ) -> Case:
        """Reject with ``reason_code`` (None: the code that follows from the finding,
        :func:`rejection_reason_for`); the user reads its plain words, or ``message`` when given."""
        if reason_code is not None and reason_code not in REJECTION_REASONS:
            raise ValidationFailed(
                [FieldError("reason_code", f"must be one of {', '.join(REJECTION_REASONS)}")]
            )

        if reason_code is None:
            # read at the version the caller saw: if the case changed since, the act below is a conflict
            with self.db.read() as session:
                seen = session.exec(select(Case).where(Case.reference == reference)).first()
            if seen is None:
                raise NotFound(f"no case {reference}")
            reason_code = rejection_reason_for(seen)

        def cancel(session: Session, case: Case) -> dict[str, Any]:
            cancelled = payouts.cancel_payouts(session, case)
            return {"cancelled_payouts": cancelled} if cancelled else {}

        return self.act(
            reference, "reject", actor, expected_version=expected_version,
            details={"reason_code": reason_code, "message": message}, mutate=cancel,
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
        """Record the transaction that paid the approved refund; the re-check proves it on chain.

        The refund goes where the approval fixed it: ``refund_address``/``refund_network``, if
        given, must equal the approved payout (a different address is a payout change)."""
        from chains import addresses
        from chains.base import InvalidChainInput

        def change(session: Session, case: Case) -> dict[str, Any]:
            if case.resolution != Resolution.REFUND.value:
                raise InvalidTransition(f"{reference} is resolved by {case.resolution}, not a refund")
            approved = payouts.active_payout(session, case.id)
            if approved is None or approved.state != "approved":
                raise InvalidTransition(f"{reference} has no approved refund waiting to be paid")
            network = self.config.network(approved.network)
            if refund_network and refund_network != approved.network:
                raise ValidationFailed([FieldError(
                    "refund_network", f"the approved refund is on {approved.network}; change the payout first")])
            try:
                tx_hash = addresses.normalize_tx_hash(network.family, refund_tx_hash.strip())
                if refund_address and refund_address.strip():
                    given = addresses.normalize_address(network.family, refund_address.strip(), field="refund_address")
                    if address_key(given) != address_key(approved.to_address or ""):
                        raise ValidationFailed([FieldError(
                            "refund_address",
                            f"the approved refund goes to {approved.to_address}; a new address is a payout change "
                            "that must be approved again")])
            except InvalidChainInput as exc:
                raise ValidationFailed([FieldError(exc.field if exc.field != "tx_hash" else "refund_tx_hash",
                                                   exc.message)]) from None
            clash = session.exec(select(Case.reference).where(Case.refund_tx_hash == tx_hash)).first()
            if clash is not None:
                raise Conflict(f"refund transaction {tx_hash} already closes {clash}")
            row = payouts.execute_refund(session, case, tx_hash, actor.name, self.clock())
            case.refund_tx_hash = tx_hash
            case.refund_network = row.network
            case.refund_address = row.to_address
            return {"refund_tx_hash": tx_hash, "refund_network": row.network, "refund_address": row.to_address,
                    "payout_id": row.id, "approved_by": row.approved_by}

        return self.act(
            reference, "record_refund", actor, expected_version=expected_version,
            details={"refund_tx_hash": refund_tx_hash}, mutate=change,
        )

    def mark_credited(self, reference: str, actor: Actor, *, expected_version: int, ledger_reference: str = "") -> Case:
        """Record that the approved credit was booked (``ledger_reference``: the ledger entry)."""

        def book(session: Session, case: Case) -> dict[str, Any]:
            if case.resolution != Resolution.CREDIT.value:
                raise InvalidTransition(f"{reference} is resolved by {case.resolution}, not a credit")
            evidence.credit_check(session, case, self.config)
            row = payouts.execute_credit(session, case, actor.name, self.clock(), ledger_reference)
            return {"credited_user_id": row.to_user_id, "net_amount": row.amount, "asset": row.asset,
                    "amount_units": str(int(row.amount_units)), "payout_id": row.id, "approved_by": row.approved_by}

        return self.act(
            reference, "mark_credited", actor, expected_version=expected_version,
            details={"ledger_reference": ledger_reference}, mutate=book,
        )

    def settle_refund(self, reference: str, observation: Observation | None, *, expected_version: int) -> tuple[
            Case | None, str]:
        """Apply what the chain says about a case's recorded refund (the re-check calls this).

        Returns (the case if it changed, outcome): ``confirmed``/``overpaid`` (refunded),
        ``failed`` (back to approved), ``mismatch`` (back to review, flag refund_mismatch),
        ``overdue`` (flag refund_overdue), ``pending`` (nothing changed)."""
        now = self.clock()
        with self.db.read() as session:
            case = session.exec(select(Case).where(Case.reference == reference)).first()
            if case is None:
                raise NotFound(f"no case {reference}")
            row = session.exec(
                select(Payout).where(Payout.case_id == case.id, Payout.state == "executed", Payout.kind == "refund")
            ).first()
            if row is None:
                raise InvalidTransition(f"{reference} has no recorded refund to prove")
            network = self.config.network(row.network)
            family = [n.name for n in self.config.networks_of_family(network.family)]
            senders = {address_key(t.sender) for t in (observation.transfers if observation else ())}
            held = {
                address_key(a) for a in session.exec(
                    select(DepositAddress.address).where(col(DepositAddress.network).in_(family))
                ).all()
            } if senders else set()
            payout_id = row.id
            flags = list(case.flags)
        held |= {address_key(row.from_address)} if row.from_address else set()
        verdict = payouts.verify_refund(row, observation, network.confirmations, lambda a: address_key(a) in held)
        proof = {"outcome": verdict.outcome, "expected": dict(verdict.expected), "found": dict(verdict.found),
                 "problems": list(verdict.problems), "refund_tx_hash": row.refund_tx_hash}

        def settle(session: Session, case_row: Case, state: str, flag: Flag | None) -> dict[str, Any]:
            payout_row = session.get(Payout, payout_id)
            assert payout_row is not None
            if payout_row.state != "executed":
                raise Conflict(f"{reference}: its refund was settled meanwhile")
            if state == "approved":
                payouts.release_failed_refund(session, payout_row)
                case_row.refund_tx_hash = None
                proof["failed_refund_tx_hash"] = proof["refund_tx_hash"]
            else:
                payout_row.state = state
            payout_row.proof = jsonable(proof)
            session.add(payout_row)
            if flag is not None:
                case_row.flags = sorted({*case_row.flags, flag.value})
            return proof

        if verdict.outcome in ("confirmed", "overpaid"):
            flag = Flag.REFUND_OVERPAID if verdict.outcome == "overpaid" else None
            action, state = "refund_confirmed", "confirmed"
        elif verdict.outcome == "failed":
            action, state, flag = "refund_failed", "approved", None
        elif verdict.outcome == "mismatch":
            action, state, flag = "refund_mismatch", "mismatch", Flag.REFUND_MISMATCH
        else:
            overdue_at = (row.executed_at or now) + timedelta(hours=self.config.policy.refund_overdue_hours)
            if now < overdue_at or Flag.REFUND_OVERDUE.value in flags:
                return None, "pending"

            def mark(_session: Session, case_row: Case) -> dict[str, Any]:
                case_row.flags = sorted({*case_row.flags, Flag.REFUND_OVERDUE.value})
                return {"refund_tx_hash": row.refund_tx_hash, "recorded_at": row.executed_at, "found": proof["found"]}

            updated = self.act(reference, "flag", SYSTEM, expected_version=expected_version,
                               details={"flag": Flag.REFUND_OVERDUE.value}, mutate=mark)
            return updated, "overdue"
        updated = self.act(
            reference, action, SYSTEM, expected_version=expected_version,
            mutate=lambda session, case_row: settle(session, case_row, state, flag),
        )
        return updated, verdict.outcome

    def close(self, reference: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(reference, "close", actor, expected_version=expected_version)

    def withdraw(self, reference: str, actor: Actor, *, expected_version: int) -> Case:
        return self.act(reference, "withdraw", actor, expected_version=expected_version)

    def reopen(self, reference: str, reason: str, actor: Actor, *, expected_version: int) -> Case:
        def change(_session: Session, case: Case) -> None:
            case.resolved_at = None
            case.approval_requested_at = None

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
        stored = decision.to_json() if decision is not None else None
        update = ChainUpdate(reference, stored, expected_version, observations or {}, unavailable or {})
        [result] = self.apply_decisions([update], actor)
        if result.error is not None:
            raise result.error
        assert result.case is not None
        return result.case, result.changed

    def apply_decisions(
        self, updates: Sequence[ChainUpdate], actor: Actor, *, full_cases: bool = True,
        release_lease_of: str | None = None,
    ) -> list[ChainApplied]:
        """:meth:`apply_decision` for many cases in one transaction (the batch re-check's path).

        Each case is checked on its own (version, status): one that fails is reported in its
        result and left untouched, the others are applied. Observations, decisions and audit events
        are written in a constant number of statements; everything commits together or not at all.
        With ``full_cases`` False the results carry the new status and category but no ORM object.
        ``release_lease_of``: a re-check runner's lease on each applied case is cleared in the same
        row update (only where that runner still holds it, read under the row lock): one row
        version fewer per case than a release afterwards, on every index of the cases table.
        """
        rule = ACTIONS["chain_result"]
        if actor.role not in rule.roles:
            raise Forbidden(f"a {actor.role.value} may not record chain results")
        if not updates:
            return []
        now = self.clock()
        references = {u.reference for u in updates}
        with self._write() as session:
            cases: dict[str | None, Case | LockedCase]
            if full_cases:
                cases = {
                    c.reference: c
                    for c in session.exec(
                        select(Case).where(col(Case.reference).in_(references)).order_by(col(Case.id)).with_for_update()
                    ).all()
                }
            else:
                table = table_of(Case)
                rows = session.connection().execute(
                    core_select(*(table.c[name] for name in _LOCKED_COLUMNS))
                    .where(table.c.reference.in_(references))
                    .order_by(table.c.id)
                    .with_for_update()
                )
                cases = {row.reference: LockedCase(*row) for row in rows}
            accepted: list[tuple[int, ChainUpdate, Case | LockedCase]] = []
            errors: dict[int, ServiceError] = {}
            taken: set[str] = set()
            for position, update in enumerate(updates):
                case = cases.get(update.reference)
                if case is None:
                    errors[position] = NotFound(f"no case {update.reference}")
                elif case.version != update.expected_version or update.reference in taken:
                    errors[position] = Conflict(
                        f"{update.reference} was changed by someone else (you saw version {update.expected_version}, "
                        f"it is now {case.version})",
                        current_version=case.version,
                    )
                elif CaseStatus(case.status) not in rule.moves:
                    errors[position] = InvalidTransition(
                        f"chain results do not apply to a case that is {case.status}")
                else:
                    accepted.append((position, update, case))
                    taken.add(update.reference)  # the same case twice in one batch: the second is stale
            reorgs = record_observations_many(
                session, [o for _, update, _ in accepted for o in update.observations.values()], now
            )
            results: dict[int, ChainApplied] = {}
            pending: list[PendingEvent] = []
            changes: list[tuple[Case | LockedCase, dict[str, Any]]] = []
            for position, update, case in accepted:
                seen = tuple(r for o in update.observations.values() for r in reorgs.get((o.network, o.tx_hash), ()))
                # The stored observation is shared: when another case (a contested one, checked in an
                # earlier batch) already recorded the new block, this case still saw the old one.
                seen = seen or _case_reorg(case.decision, update.observations)
                values, event = self._chain_result(case, update, list(seen), actor, now)
                if release_lease_of is not None and case.lease_owner == release_lease_of:
                    values.update(lease_owner=None, lease_expires_at=None)
                if event is not None:
                    pending.append(event)
                changes.append((case, values))
                results[position] = ChainApplied(
                    update.reference, case if isinstance(case, Case) else None, event is not None, reorgs=seen,
                    status=values.get("status", case.status), category=values.get("category", case.category),
                )
            update_cases(session, changes)
            append_events(session, pending, now)
        return [
            results.get(i) or ChainApplied(u.reference, None, False, error=errors[i]) for i, u in enumerate(updates)
        ]

    def _chain_result(
        self, case: Case | LockedCase, update: ChainUpdate, reorgs: list[dict[str, Any]], actor: Actor, now: datetime
    ) -> tuple[dict[str, Any], PendingEvent | None]:
        """What one chain result changes on the locked case, and the audit event to append (None:
        bookkeeping only). The case itself is not touched here (see :func:`update_cases`)."""
        current = CaseStatus(case.status)
        decision = update.decision
        values: dict[str, Any] = {"last_checked_at": now, "check_count": case.check_count + 1}
        if decision is None:
            target: CaseStatus = CaseStatus.AWAITING_CHAIN if current is CaseStatus.SUBMITTED else current
            if target is current:
                return values, None
            details: dict[str, Any] = {"outcome": "chain_unavailable", "unavailable": dict(update.unavailable)}
        else:
            target = decision_status(decision)
            signature = decision_signature(decision)
            previous = decision_signature(case.decision) if case.decision else None
            if signature == previous and target is current and not reorgs:
                return values, None
            values.update(self._decision_values(case, decision, now))
            fee = decision.get("fee")
            details = {
                "outcome": "decided",
                "category": decision["category"],
                "recoverable": decision["recoverable"],
                "resolution": decision["resolution"],
                "flags": list(decision.get("flags") or ()),
                "network": decision.get("network"),
                "credited_user_id": decision.get("credited_user_id"),
                "amount": parse_dec(decision.get("amount")),
                "fee": parse_dec(fee["fee"]) if fee is not None else None,
                "rules_version": decision["rules_version"],
            }
            if previous is not None and signature != previous:
                details["previous"] = {k: previous.get(k) for k in ("category", "recoverable", "resolution")}
        if reorgs:
            details["reorg"] = reorgs
        values.update(status=target.value, version=case.version + 1, updated_at=now)
        assert case.id is not None
        return values, PendingEvent(case.id, actor, "chain_result", current.value, target.value, details)

    @staticmethod
    def _decision_values(case: Case | LockedCase, decision: Mapping[str, Any], now: datetime) -> dict[str, Any]:
        """The case fields a decision (as stored: :meth:`Decision.to_json`) sets."""
        kept = {f for f in case.flags if f == Flag.CONTESTED.value or f in _PAYOUT_FLAG_VALUES}
        fee = decision.get("fee")
        network = decision.get("network")
        values: dict[str, Any] = {
            "decision": dict(decision),
            "category": case.category_override or decision["category"],
            "recoverable": decision["recoverable"],
            "resolution": decision["resolution"],
            "flags": sorted(kept | set(decision.get("flags") or ())),
            "amount": parse_dec(decision.get("amount")),
            "value_usd": parse_dec(decision.get("value_usd")),
            "fee_amount": parse_dec(fee["fee"]) if fee is not None else None,
            "fee_usd": parse_dec(fee["fee_value_usd"]) if fee is not None else None,
            "fee_asset": decision.get("asset") if fee is not None else None,
            "net_amount": parse_dec(fee["net"]) if fee is not None else None,
            "credited_user_id": decision.get("credited_user_id"),
        }
        if network is not None:
            values["deposit_network"] = case.deposit_network or network
        refund_address = decision.get("refund_address")
        if decision["resolution"] == Resolution.REFUND.value and refund_address and not case.refund_tx_hash:
            values["refund_address"] = refund_address
            values["refund_network"] = network
        if case.first_decided_at is None and Category(decision["category"]) not in PENDING_CATEGORIES:
            values["first_decided_at"] = now
        return values

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
