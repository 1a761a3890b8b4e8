"""Payout rules: what an approval fixes, who may approve and pay, and the on-chain proof of a refund.

The service layer (:mod:`recovery.services`) calls these inside its write transactions; nothing here
commits. The rules, each enforced whatever the front end:

1. **One payout per transfer.** Approving a payout inserts one ``paid_transfers`` row per deposit
   transfer the case is about; the table's unique key (network, transaction, transfer index) makes
   a second approval or payment of the same transfer fail in the database, on SQLite and PostgreSQL
   alike. The rows go only when an unpaid payout is cancelled (a payout change, a rejection); once
   paid they stay, so a reopened case cannot be paid again. A credit writes the credited-deposits
   book in the same transaction, so the next appeal of that transfer is ``already_credited``.
2. **The approved payout is fixed at approval** (:func:`plan_payout`): network where the funds are,
   asset and contract, decimals, our from-address, the to-address (refund) or account (credit), the
   amount in base units, the memo. Changing it (:func:`override_payout`) is an action of its own
   that sends the case back for approval by someone other than the person who changed it.
3. **A refund is proven on chain before ``refunded``** (:func:`verify_refund`): succeeded, with the
   network's confirmations, and holding a transfer of the approved asset from an address we hold to
   the approved address of at least the approved amount. Anything else is a mismatch.
4. **Four eyes.** Whoever shaped the decision (:data:`PREPARING_ACTIONS`) is a preparer; above the
   threshold the approver is not a preparer and the case must have been sent for approval; at any
   value the person who pays is not the person who approved.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, select

from chains.base import AssetKind, Observation, TxStatus
from recovery.config import Config
from recovery.errors import Conflict, FieldError, Forbidden, InvalidTransition, ValidationFailed
from recovery.models import Case, CaseEvent, CreditedDeposit, PaidTransfer, Payout
from recovery.plain_values import EXACT
from recovery.registry import address_key, tx_key
from recovery.vocabulary import Resolution, Role

__all__ = [
    "LIVE_STATES",
    "PREPARING_ACTIONS",
    "PayoutPlan",
    "RefundVerdict",
    "active_payout",
    "approve_payout",
    "cancel_payouts",
    "execute_credit",
    "execute_refund",
    "override_payout",
    "plan_payout",
    "preparers",
    "release_failed_refund",
    "verify_refund",
]

APPROVED = "approved"
EXECUTED = "executed"
CONFIRMED = "confirmed"
MISMATCH = "mismatch"
CANCELLED = "cancelled"
#: states in which a payout holds its transfers: nobody else may be approved for them
LIVE_STATES = frozenset({APPROVED, EXECUTED, CONFIRMED, MISMATCH})

#: audit actions that shape a decision: whoever did one of them on a case is one of its preparers
#: (filing it as intake is a ``submit`` by an operator). Notes, assignment, reading and re-checks
#: are not preparing.
PREPARING_ACTIONS = frozenset(
    {"submit", "claim", "override_category", "reopen", "change_payout", "accept_evidence", "send_for_approval",
     "set_valuation"}
)
_OPERATOR_ROLES = frozenset({Role.SPECIALIST.value, Role.APPROVER.value, Role.ADMIN.value})


@dataclass(frozen=True)
class PayoutPlan:
    """The exact payout an approval fixes (see the module docstring, rule 2)."""

    kind: Resolution
    network: str
    asset: str
    contract: str | None
    decimals: int
    from_address: str | None
    to_address: str | None
    to_user_id: str | None
    amount: Decimal
    amount_units: int
    memo: str | None
    #: (network, tx_hash, transfer index) of every deposit transfer this payout pays out
    transfers: tuple[tuple[str, str, int], ...] = field(default_factory=tuple)
    #: no fee could be computed (the asset has no price): the whole deposit is paid out
    fee_undetermined: bool = False

    def describe(self) -> dict[str, Any]:
        return {
            "kind": self.kind.value,
            "network": self.network,
            "asset": self.asset,
            "contract": self.contract,
            "decimals": self.decimals,
            "from_address": self.from_address,
            "to_address": self.to_address,
            "to_user_id": self.to_user_id,
            "amount": self.amount,
            "amount_units": str(self.amount_units),
            "memo": self.memo,
            "fee_undetermined": self.fee_undetermined,
        }


def _decimals_of(refs: Sequence[Mapping[str, Any]], config: Config, network: str, contract: str | None) -> int | None:
    listed = None
    if contract is None:
        try:
            listed = config.native_asset(network)
        except KeyError:
            listed = None
    else:
        listed = config.asset_by_contract(network, contract)
    if listed is not None:
        return listed.decimals
    for ref in refs:  # the engine's own amount and base units give the decimals exactly
        amount, units = ref.get("amount"), ref.get("amount_units")
        if amount in (None, "") or units in (None, ""):
            continue
        value, base = Decimal(str(amount)), int(str(units))
        for decimals in range(0, 37):
            if value.scaleb(decimals, context=EXACT) == base:
                return decimals
    return None


def plan_payout(case: Case, config: Config) -> PayoutPlan:
    """The payout the case's decision (and any audited payout change) calls for, or a clear refusal."""
    decision = case.decision or {}
    resolution = case.resolution
    if resolution not in (Resolution.CREDIT.value, Resolution.REFUND.value):
        raise InvalidTransition(
            f"{case.reference} has no credit or refund to approve (resolution {resolution or 'none'}); "
            "reject it or override the category"
        )
    refs = [r for r in decision.get("transfers") or [] if isinstance(r, Mapping)]
    if not refs:
        raise InvalidTransition(f"{case.reference}: the decision names no deposit transfer to pay out")
    network = str(refs[0].get("network") or case.deposit_network or case.network)
    contracts = {r.get("contract") for r in refs}
    if len(contracts) != 1 or {str(r.get("network")) for r in refs} != {network}:
        raise InvalidTransition(f"{case.reference}: the transfers are of several assets or networks; pay them apart")
    contract = contracts.pop()
    decimals = _decimals_of(refs, config, network, contract)
    if decimals is None:
        raise InvalidTransition(
            f"{case.reference}: the token's decimals are unknown, so no exact payout can be fixed; value it first"
        )
    gross_units = sum(int(str(r.get("amount_units") or 0)) for r in refs)
    net = case.net_amount
    fee_undetermined = net is None
    if net is None:
        if case.fee_amount is not None:
            raise InvalidTransition(f"{case.reference}: the net amount is not determined")
        # no fee could be computed (no price for the asset): the whole deposit is paid out, which the
        # payout states (fee_undetermined); an unknown value always needs two people (four eyes)
        net = Decimal(gross_units).scaleb(-decimals, context=EXACT)
    scaled = net.scaleb(decimals, context=EXACT)  # the default context rounds past 28 digits
    if scaled != scaled.to_integral_value() or scaled <= 0:
        raise InvalidTransition(f"{case.reference}: the net amount {net} is not a positive amount of base units")
    units = int(scaled)
    if units > gross_units:
        raise InvalidTransition(f"{case.reference}: the payout ({units}) exceeds what arrived ({gross_units})")
    override = case.payout_override or {}
    recipients = {str(r.get("recipient")) for r in refs}
    from_address = recipients.pop() if len(recipients) == 1 else None
    asset = str(decision.get("asset") or case.asset)
    transfers = tuple((network, tx_key(str(r["tx_hash"])), int(r["index"])) for r in refs)
    if resolution == Resolution.CREDIT.value:
        if not case.credited_user_id:
            raise InvalidTransition(f"{case.reference}: the decision names no account to credit")
        return PayoutPlan(Resolution.CREDIT, network, asset, contract, decimals, from_address, None,
                          case.credited_user_id, net, units, None, transfers, fee_undetermined)
    to_address = override.get("to_address") or decision.get("refund_address")
    if not to_address:
        raise InvalidTransition(f"{case.reference}: the decision names no refund address")
    memo = override.get("memo") or None
    return PayoutPlan(Resolution.REFUND, network, asset, contract, decimals, from_address, str(to_address),
                      None, net, units, memo, transfers, fee_undetermined)


# ------------------------------------------------------------------------------------------ who

def preparers(session: Session, case: Case) -> set[str]:
    """Every operator who shaped this case's decision (see :data:`PREPARING_ACTIONS`)."""
    rows = session.exec(
        select(CaseEvent.actor).where(
            CaseEvent.case_id == case.id,
            col(CaseEvent.action).in_(sorted(PREPARING_ACTIONS)),
            col(CaseEvent.actor_role).in_(sorted(_OPERATOR_ROLES)),
        )
    ).all()
    return set(rows)


def payout_changers(session: Session, case: Case) -> set[str]:
    """Who changed the payout since the case was last approved (they may not approve it again)."""
    rows = session.exec(
        select(CaseEvent.actor, CaseEvent.action).where(
            CaseEvent.case_id == case.id, col(CaseEvent.action).in_(["change_payout", "approve"])
        ).order_by(col(CaseEvent.id))
    ).all()
    changers: set[str] = set()
    for actor, action in rows:
        if action == "approve":
            changers = set()
        else:
            changers.add(actor)
    return changers


# ------------------------------------------------------------------------------------------ rows

def active_payout(session: Session, case_id: int | None) -> Payout | None:
    """The case's live payout (newest), if any."""
    return session.exec(
        select(Payout)
        .where(Payout.case_id == case_id, col(Payout.state).in_(sorted(LIVE_STATES)))
        .order_by(col(Payout.id).desc())
    ).first()


def cancel_payouts(session: Session, case: Case, *, states: Iterable[str] = (APPROVED,)) -> list[int]:
    """Cancel the case's unpaid payouts (a payout change, a rejection) and free their transfers."""
    rows = session.exec(
        select(Payout).where(Payout.case_id == case.id, col(Payout.state).in_(sorted(states)))
    ).all()
    ids = [r.id for r in rows if r.id is not None]
    for row in rows:
        row.state = CANCELLED
        session.add(row)
    if ids:
        for held in session.exec(select(PaidTransfer).where(col(PaidTransfer.payout_id).in_(ids))).all():
            session.delete(held)
        session.flush()
    return ids


def _holders(session: Session, case: Case, transfers: Sequence[tuple[str, str, int]]) -> list[str]:
    """References of other cases whose payout holds one of these transfers."""
    if not transfers:
        return []
    wanted = set(transfers)
    rows = session.exec(
        select(PaidTransfer, Case.reference)
        .join(Case, col(Case.id) == PaidTransfer.case_id)
        .where(col(PaidTransfer.tx_hash).in_(sorted({t[1] for t in transfers})))
    ).all()
    return sorted({
        str(ref) for row, ref in rows
        if (row.network, row.tx_hash, row.transfer_index) in wanted and row.case_id != case.id
    })


def approve_payout(session: Session, case: Case, plan: PayoutPlan, approver: str, now: datetime) -> Payout:
    """Fix ``plan`` as the case's payout and hold its transfers (the database key refuses a transfer
    another payout holds); refused once the case was paid."""
    paid = session.exec(
        select(Payout).where(Payout.case_id == case.id, col(Payout.state).in_([EXECUTED, CONFIRMED]))
    ).first()
    if paid is not None:
        raise Conflict(
            f"{case.reference} was already paid (payout {paid.id}, {paid.state}); a transfer is paid only once"
        )
    holders = _holders(session, case, plan.transfers)
    if holders:
        raise Conflict(
            f"{case.reference}: the same deposit transfer is already paid out or approved in {', '.join(holders)}; "
            "one transfer is paid once: reject this case as a duplicate or handle it in that case"
        )
    cancel_payouts(session, case)
    assert case.id is not None
    row = Payout(
        case_id=case.id, kind=plan.kind.value, state=APPROVED, network=plan.network, asset=plan.asset,
        contract=plan.contract, decimals=plan.decimals, from_address=plan.from_address, to_address=plan.to_address,
        to_user_id=plan.to_user_id, amount=plan.amount, amount_units=Decimal(plan.amount_units), memo=plan.memo,
        approved_by=approver, approved_at=now,
    )
    session.add(row)
    session.flush()
    assert row.id is not None
    # a refund that did not prove its payout (mismatch) keeps its record; its hold passes to the new payout
    held = {
        (h.network, h.tx_hash, h.transfer_index): h
        for h in session.exec(select(PaidTransfer).where(PaidTransfer.case_id == case.id)).all()
    }
    for network, tx_hash, index in plan.transfers:
        mine = held.get((network, tx_hash, index))
        if mine is not None:
            mine.payout_id = row.id
            mine.paid_at = now
            session.add(mine)
        else:
            session.add(PaidTransfer(network=network, tx_hash=tx_hash, transfer_index=index, payout_id=row.id,
                                     case_id=case.id, paid_at=now))
    reference = case.reference  # read before the flush: a failed flush expires the session's objects
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(
            f"{reference}: a deposit transfer of this case is already paid out or approved in another case "
            "(one payout per transfer)"
        ) from None
    return row


def _approved(session: Session, case: Case, kind: Resolution) -> Payout:
    row = session.exec(
        select(Payout).where(Payout.case_id == case.id, Payout.state == APPROVED).order_by(col(Payout.id).desc())
    ).first()
    if row is None or row.kind != kind.value:
        raise InvalidTransition(f"{case.reference} has no approved {kind.value} waiting to be paid")
    return row


def _four_eyes_at_payment(row: Payout, executor: str) -> None:
    if row.approved_by == executor:
        raise Forbidden(
            f"payout {row.id}: four-eyes rule: {executor} approved this payout and cannot also record it as paid"
        )


def execute_credit(session: Session, case: Case, executor: str, now: datetime, ledger_reference: str) -> Payout:
    """Record the approved credit as done, and write the credited-deposits book in the same transaction."""
    if not ledger_reference.strip():
        raise ValidationFailed([FieldError("ledger_reference", "is required: the ledger entry of the credit")])
    row = _approved(session, case, Resolution.CREDIT)
    _four_eyes_at_payment(row, executor)
    refs = (case.decision or {}).get("transfers") or []
    for tx_hash in sorted({str(r["tx_hash"]) for r in refs}):
        session.add(CreditedDeposit(network=row.network, tx_hash=tx_hash, user_id=row.to_user_id or "",
                                    asset=row.asset, amount=row.amount, imported_at=now))
    reference = case.reference
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"{reference}: the credited-deposits book already holds this credit") from None
    row.state = EXECUTED
    row.executed_by = executor
    row.executed_at = now
    row.ledger_reference = ledger_reference.strip()
    session.add(row)
    return row


def execute_refund(session: Session, case: Case, refund_tx_hash: str, executor: str, now: datetime) -> Payout:
    """Record the refund transaction of the approved refund (the re-check proves it on chain)."""
    row = _approved(session, case, Resolution.REFUND)
    _four_eyes_at_payment(row, executor)
    key = tx_key(refund_tx_hash)
    forms = sorted({key, refund_tx_hash, key.upper()})
    deposit = session.exec(select(Case.reference).where(col(Case.tx_hash).in_(forms))).first()
    if deposit is not None:
        raise Conflict(f"{refund_tx_hash} is the deposit transaction of {deposit}, not a refund")
    used = session.exec(
        select(Case.reference).join(Payout, col(Case.id) == Payout.case_id).where(col(Payout.refund_tx_hash).in_(forms))
    ).first()
    if used is not None:
        raise Conflict(f"refund transaction {refund_tx_hash} already closes {used}")
    row.state = EXECUTED
    row.executed_by = executor
    row.executed_at = now
    row.refund_tx_hash = key
    session.add(row)
    try:
        session.flush()
    except IntegrityError:
        raise Conflict(f"refund transaction {refund_tx_hash} already closes another case") from None
    return row


def override_payout(case: Case, changes: Mapping[str, str | None]) -> dict[str, Any]:
    """Record a payout change on the case (applied at the next approval); returns before/after."""
    before = dict(case.payout_override or {})
    after = dict(before)
    for key, value in changes.items():
        if value is None:
            continue
        after[key] = value.strip() or None
    case.payout_override = after
    return {"before": before, "after": after}


def release_failed_refund(session: Session, row: Payout) -> None:
    """A refund that failed on chain moved nothing: the approved payout (still holding its
    transfers) waits for a new transaction."""
    row.state = APPROVED
    row.refund_tx_hash = None
    row.executed_by = None
    row.executed_at = None
    session.add(row)


# ------------------------------------------------------------------------------------------ proof

@dataclass(frozen=True)
class RefundVerdict:
    """What the refund transaction proves. ``outcome``: ``confirmed``, ``overpaid`` (confirmed, more
    than approved), ``pending`` (not final yet), ``failed`` (failed on chain: nothing moved),
    ``mismatch`` (final, but not the approved payout). ``expected``/``found`` explain a mismatch."""

    outcome: str
    expected: Mapping[str, Any]
    found: Mapping[str, Any]
    problems: tuple[str, ...] = ()


def expected_of(row: Payout) -> dict[str, Any]:
    return {
        "network": row.network, "asset": row.asset, "contract": row.contract, "to_address": row.to_address,
        "amount_units": str(int(row.amount_units)), "memo": row.memo, "from": "an address we hold",
    }


def verify_refund(row: Payout, obs: Observation | None, required_confirmations: int,
                  ours: Callable[[str], bool]) -> RefundVerdict:
    """Does ``obs`` (the recorded refund transaction) prove the approved payout ``row``?"""
    expected = expected_of(row)
    if obs is None or obs.status is TxStatus.NOT_FOUND:
        return RefundVerdict("pending", expected, {"status": "not_found"})
    found: dict[str, Any] = {
        "status": obs.status.value, "confirmations": obs.confirmations, "block_number": obs.block_number,
        "transfers": [
            {"kind": t.kind.value, "contract": t.contract, "sender": t.sender, "recipient": t.recipient,
             "amount_units": str(t.amount), "memo": t.memo}
            for t in obs.transfers
        ],
    }
    unconfirmed = obs.status is TxStatus.SUCCESS and obs.confirmations < required_confirmations
    if obs.status is TxStatus.PENDING or unconfirmed:
        return RefundVerdict("pending", expected, found)
    if obs.status is TxStatus.FAILED:
        return RefundVerdict("failed", expected, found, ("the transaction failed on chain",))
    if obs.status is not TxStatus.SUCCESS:
        return RefundVerdict("mismatch", expected, found, (f"the network's answer is {obs.status.value}",))
    want_contract = address_key(row.contract) if row.contract else None
    to_key = address_key(row.to_address or "")
    problems: list[str] = []
    matching = []
    for t in obs.transfers:
        same_asset = (t.contract is None and want_contract is None and t.kind is AssetKind.NATIVE) or (
            want_contract is not None and t.contract is not None and address_key(t.contract) == want_contract
        )
        if not same_asset or address_key(t.recipient) != to_key:
            continue
        if not ours(t.sender):
            problems.append(f"transfer {t.index} to the approved address comes from {t.sender}, not an address we hold")
            continue
        if row.memo and (t.memo or obs.memo) != row.memo:
            problems.append(f"transfer {t.index} carries memo {t.memo or obs.memo!r}, not the approved {row.memo!r}")
            continue
        matching.append(t)
    if not matching and not problems:
        problems.append("no transfer of the approved asset to the approved address")
    paid = sum(t.amount for t in matching)
    approved = int(row.amount_units)
    if matching and paid < approved:
        problems.append(f"it paid {paid} base units, less than the approved {approved}")
    if problems:
        return RefundVerdict("mismatch", expected, found, tuple(problems))
    return RefundVerdict("overpaid" if paid > approved else "confirmed", expected, found)
