"""The tables. Amounts are exact decimals (asset units) or integer base units; never floats.

Every table's pydantic configuration is ``defer_build``: pydantic builds a table's validator and
serializer when one is first used (``model_validate``, ``model_dump``, a JSON schema), not when
this module is imported. A table model is constructed without validation (SQLModel's rule for
``table=True``) and SQLAlchemy's loading never uses them, so a command that only reads rows never
builds them (issue 20: about a tenth of this module's import time). The configuration goes in the
class body: SQLModel drops a ``defer_build=True`` class keyword.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from sqlalchemy import JSON, BigInteger, Column, Index, Integer, Text, UniqueConstraint, text
from sqlmodel import Field, SQLModel

from recovery.dbtypes import ExactDecimal, UTCDateTime, utcnow

if TYPE_CHECKING:
    from sqlmodel._compat import SQLModelConfig


#: pydantic builds a table's validator and serializer on first use (see the module's docstring)
DEFERRED: SQLModelConfig = {"defer_build": True}


def _money(nullable: bool = True) -> Any:
    return Field(default=None, sa_type=ExactDecimal, nullable=nullable)


def _when(nullable: bool = True, index: bool = False) -> Any:
    return Field(default=None, sa_type=UTCDateTime, nullable=nullable, index=index)


#: the columns the queue's search looks for part of an identifier in (recovery/case_search.py)
FRAGMENT_COLUMNS = ("reference", "user_id", "tx_hash", "deposit_address", "refund_tx_hash")
#: tables that exist on PostgreSQL only, outside these models: ``case_fragments``, a copy of each
#: case's ``FRAGMENT_COLUMNS`` kept by triggers on ``cases``, with their trigram index (migration
#: 0015; ``recovery/case_search.py`` reads it)
POSTGRESQL_ONLY_TABLES = frozenset({"case_fragments"})


class Case(SQLModel, table=True):
    """An appeal (or a detected stray deposit) and everything decided about it."""

    model_config = DEFERRED

    __tablename__ = "cases"
    __table_args__ = (
        UniqueConstraint("user_id", "network", "tx_hash", name="uq_cases_user_network_tx"),
        Index("ix_cases_network_tx", "network", "tx_hash"),
        Index("ix_cases_status_created", "status", "created_at"),
        Index("ix_cases_origin", "origin"),  # the queue's origin filter (see migration 0009)
        # the queue's search (see migration 0012): a whole deposit address, and parts of identifiers
        # read from the index alone (the rows carry their decision JSON)
        Index("ix_cases_search", "deposit_address", "tx_hash", "refund_tx_hash", "reference", "user_id", "id"),
        # parts of those identifiers, by their trigrams: on PostgreSQL, on a copy of them kept apart
        # (``POSTGRESQL_ONLY_TABLES``, migration 0015), so that a status change does not write them
        # every column the dashboard reads from the cases of its window, led by the one that selects
        # them: the window is answered from the index alone (see migration 0010)
        Index("ix_cases_dashboard_window", "created_at", "status", "origin", "resolution", "category", "network",
              "deposit_network", "tx_hash", "sla_due_at", "resolved_at", "value_usd", "fee_usd", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    reference: str | None = Field(default=None, unique=True, index=True, max_length=20)
    user_id: str = Field(max_length=128)  # indexed as the leading column of uq_cases_user_network_tx
    origin: str = Field(default="appeal", max_length=16)
    network: str = Field(max_length=40)
    deposit_network: str | None = Field(default=None, max_length=40)
    asset: str = Field(max_length=128)
    tx_hash: str = Field(max_length=128)
    deposit_address: str = Field(max_length=128)
    memo: str | None = Field(default=None, max_length=256)
    claimed_amount: Decimal | None = _money()

    status: str = Field(max_length=20)  # indexed as the leading column of ix_cases_status_created
    category: str | None = Field(default=None, index=True, max_length=40)
    recoverable: str | None = Field(default=None, max_length=16)
    resolution: str | None = Field(default=None, max_length=16)
    flags: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    decision: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    category_override: str | None = Field(default=None, max_length=40)

    amount: Decimal | None = _money()
    value_usd: Decimal | None = _money()
    fee_amount: Decimal | None = _money()
    fee_asset: str | None = Field(default=None, max_length=128)
    fee_usd: Decimal | None = _money()
    net_amount: Decimal | None = _money()
    credited_user_id: str | None = Field(default=None, max_length=128)

    refund_network: str | None = Field(default=None, max_length=40)
    refund_address: str | None = Field(default=None, max_length=128)
    refund_tx_hash: str | None = Field(default=None, unique=True, max_length=128)

    assignee: str | None = Field(default=None, index=True, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    sla_due_at: datetime | None = _when(index=True)
    first_decided_at: datetime | None = _when()
    resolved_at: datetime | None = _when()
    last_checked_at: datetime | None = _when()
    check_count: int = Field(default=0)
    version: int = Field(default=1, nullable=False)
    #: when a specialist last sent the case for approval (cleared by a payout change or a reopen)
    approval_requested_at: datetime | None = _when()
    #: operator changes to the payout (to_address, memo) applied at the next approval
    payout_override: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))

    # not indexed: lease stamps are then heap-only updates in PostgreSQL (see migration 0003)
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _when()


#: the events of the team's operators (``ix_case_events_operator_time``'s condition, as written by the reads)
OPERATOR_EVENTS = "actor_role IN ('specialist', 'approver', 'admin')"
#: the refunds proven on chain (``ix_case_events_refund_confirmed``'s condition)
REFUND_CONFIRMED = "action = 'refund_confirmed'"


class CaseEvent(SQLModel, table=True):
    """Append-only audit trail; each event's hash covers the previous event of the whole log."""

    model_config = DEFERRED

    __tablename__ = "case_events"
    __table_args__ = (
        # the dashboard's first decisions (see migration 0010 and recovery.queues.DECIDING_CONDITION)
        Index("ix_case_events_decisions", "case_id", "created_at", "action",
              sqlite_where=text("action IN ('approve', 'reject')"),
              postgresql_where=text("action IN ('approve', 'reject')")),
        # the team's throughput per operator and week (migration 0013, recovery.team_reads.throughput)
        Index("ix_case_events_operator_time", "created_at", "actor_role", "actor", "action", "case_id",
              sqlite_where=text(OPERATOR_EVENTS), postgresql_where=text(OPERATOR_EVENTS)),
        # the refunds proven on chain, by time (migration 0013, recovery.team_reads.paid_cases)
        Index("ix_case_events_refund_confirmed", "created_at", "action", "case_id",
              sqlite_where=text(REFUND_CONFIRMED), postgresql_where=text(REFUND_CONFIRMED)),
    )

    id: int | None = Field(default=None, sa_column=Column(Integer, primary_key=True, autoincrement=True))
    #: None for events about no case (operators, imports)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    actor: str = Field(max_length=128)
    actor_role: str = Field(max_length=16)
    action: str = Field(max_length=40)
    from_status: str | None = Field(default=None, max_length=20)
    to_status: str | None = Field(default=None, max_length=20)
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    prev_hash: str = Field(max_length=64)
    hash: str = Field(max_length=64, unique=True)
    #: the audit key that signed this event (None: written before the chain was keyed)
    key_id: str | None = Field(default=None, max_length=32)


class AuditHead(SQLModel, table=True):
    """One row: the newest event's id and hash. Locking it serializes appends to the chain."""

    model_config = DEFERRED

    __tablename__ = "audit_head"

    id: int = Field(default=1, primary_key=True)
    last_event_id: int | None = Field(default=None)
    last_hash: str = Field(max_length=64)
    #: events up to this id were written before the chain was keyed (plain SHA-256); every later
    #: event must carry a key id and an HMAC. Signed (``keyed_from_mac``, by ``keyed_from_key``) so
    #: that nobody without the key can move the cut-over.
    keyed_from_id: int = Field(default=0)
    keyed_from_key: str | None = Field(default=None, max_length=32)
    keyed_from_mac: str | None = Field(default=None, max_length=64)


class Payout(SQLModel, table=True):
    """The exact payout a case's approval fixed (credit to an account, or refund on chain).

    ``state``: ``approved`` (waiting to be paid), ``executed`` (credit recorded, or refund
    transaction recorded), ``confirmed`` (refund proven on chain), ``mismatch`` (the recorded
    refund did not prove the payout), ``cancelled`` (superseded by a payout change, a rejection or
    a failed refund before anything was paid). See :mod:`recovery.payouts`.
    """

    model_config = DEFERRED

    __tablename__ = "payouts"
    __table_args__ = (
        Index("ix_payouts_state", "state", "network"),
        # the credits booked in a window (migration 0013, recovery.team_reads.paid_cases)
        Index("ix_payouts_paid", "kind", "state", "executed_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    kind: str = Field(max_length=16)
    state: str = Field(max_length=16)
    #: where the funds are (the network the deposit landed on)
    network: str = Field(max_length=40)
    asset: str = Field(max_length=160)
    contract: str | None = Field(default=None, max_length=160)
    decimals: int
    from_address: str | None = Field(default=None, max_length=128)
    to_address: str | None = Field(default=None, max_length=128)
    to_user_id: str | None = Field(default=None, max_length=128)
    amount: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    amount_units: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    memo: str | None = Field(default=None, max_length=256)
    approved_by: str = Field(max_length=64)
    approved_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    executed_by: str | None = Field(default=None, max_length=64)
    executed_at: datetime | None = _when()
    ledger_reference: str | None = Field(default=None, max_length=128)
    refund_tx_hash: str | None = Field(default=None, unique=True, max_length=128)
    proof: dict[str, Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))


class PaidTransfer(SQLModel, table=True):
    """A deposit transfer some payout paid out: the key makes "paid at most once" a database rule."""

    model_config = DEFERRED

    __tablename__ = "paid_transfers"
    __table_args__ = (UniqueConstraint("network", "tx_hash", "transfer_index", name="uq_paid_transfer"),)

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    transfer_index: int = Field(sa_type=BigInteger, nullable=False)
    payout_id: int = Field(foreign_key="payouts.id", index=True)
    case_id: int = Field(foreign_key="cases.id", index=True)
    paid_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class DepositAddress(SQLModel, table=True):
    """A deposit address we hold; on shared-address networks one row per user memo."""

    model_config = DEFERRED

    __tablename__ = "deposit_addresses"
    __table_args__ = (UniqueConstraint("network", "address", "memo", name="uq_deposit_address"),)

    id: int | None = Field(default=None, primary_key=True)
    user_id: str = Field(index=True, max_length=128)
    network: str = Field(max_length=40)
    address: str = Field(index=True, max_length=128)
    #: empty string where the address carries no memo (keeps the unique key NULL-free)
    memo: str = Field(default="", max_length=256)
    kind: str = Field(max_length=16)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class CreditedDeposit(SQLModel, table=True):
    """Deposits the exchange already credited (imported from its ledger)."""

    model_config = DEFERRED

    __tablename__ = "credited_deposits"
    __table_args__ = (
        UniqueConstraint("network", "tx_hash", "user_id", "asset", name="uq_credited_deposit"),
        Index("ix_credited_network_tx", "network", "tx_hash"),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    user_id: str = Field(max_length=128)
    asset: str = Field(max_length=128)
    amount: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    imported_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


class ChainObservation(SQLModel, table=True):
    """The latest answer of one network about one transaction, with its full evidence."""

    model_config = DEFERRED

    __tablename__ = "chain_observations"
    __table_args__ = (
        UniqueConstraint("network", "tx_hash", name="uq_observation"),
        # the dashboard's deposit times, from the index alone (see migration 0010)
        Index("ix_chain_observations_block_time", "tx_hash", "network", "block_time"),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    status: str = Field(max_length=16)
    block_number: int | None = Field(default=None)
    block_hash: str | None = Field(default=None, max_length=128)
    confirmations: int = Field(default=0)
    evidence: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    observed_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    #: the block's time (``Observation.timestamp``; also in ``evidence["timestamp"]``), None when not in a block
    block_time: datetime | None = _when()


class ObservedTransfer(SQLModel, table=True):
    """One transfer inside an observed transaction, keyed so a reorg or a duplicate is visible."""

    model_config = DEFERRED

    __tablename__ = "observed_transfers"
    __table_args__ = (
        UniqueConstraint("network", "tx_hash", "transfer_index", name="uq_observed_transfer"),
        Index("ix_observed_recipient", "network", "recipient"),
        Index("ix_observed_transfers_sender", "sender"),  # the queue's search by sender (see migration 0012)
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    transfer_index: int
    kind: str = Field(max_length=16)
    contract: str | None = Field(default=None, max_length=160)
    sender: str = Field(max_length=128)
    recipient: str = Field(max_length=128)
    amount_base_units: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    memo: str | None = Field(default=None, max_length=256)
    block_number: int | None = Field(default=None)
    block_hash: str | None = Field(default=None, max_length=128)


class Operator(SQLModel, table=True):
    """A workbench account. Passwords are argon2id hashes.

    Sign-in (``recovery/operators.py``): an optional TOTP second factor (``totp_secret``, base32;
    ``totp_last_step`` is the time step of the last code accepted, so a code is accepted once);
    single sign-on identities are matched by (``oidc_issuer``, ``oidc_subject``), or by ``email``
    when the provider says it is verified. All of these are set by an admin (audited).
    """

    model_config = DEFERRED

    __tablename__ = "operators"
    __table_args__ = (
        UniqueConstraint("oidc_issuer", "oidc_subject", name="uq_operators_oidc"),
        UniqueConstraint("email", name="uq_operators_email"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(unique=True, index=True, max_length=64)
    password_hash: str = Field(max_length=256)
    role: str = Field(max_length=16)
    active: bool = Field(default=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    last_login_at: datetime | None = _when()
    email: str | None = Field(default=None, max_length=254)
    oidc_issuer: str | None = Field(default=None, max_length=512)
    oidc_subject: str | None = Field(default=None, max_length=255)
    totp_secret: str | None = Field(default=None, max_length=64)
    totp_enrolled_at: datetime | None = _when()
    totp_last_step: int | None = Field(default=None, sa_type=BigInteger)


class SignInFailure(SQLModel, table=True):
    """One failed sign-in (a wrong password or code, an unknown or disabled account): counted per
    attempted account name and per client address for the backoff and the lock
    (``recovery/operators.py``). Rows older than a day are pruned; the audit log keeps every attempt."""

    model_config = DEFERRED

    __tablename__ = "sign_in_failures"
    __table_args__ = (
        Index("ix_sign_in_failures_username", "username", "at"),
        Index("ix_sign_in_failures_client", "client", "at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    username: str = Field(max_length=64)
    client: str = Field(max_length=128)
    at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class SavedView(SQLModel, table=True):
    """An operator's own named set of queue filters (``recovery/saved_views.py``): the queue's URL
    query string, as the page writes it (``app/workbench/views/queue.py``)."""

    model_config = DEFERRED

    __tablename__ = "saved_views"
    __table_args__ = (UniqueConstraint("operator", "name", name="uq_saved_views_operator_name"),)

    id: int | None = Field(default=None, primary_key=True)
    #: the operator's username (a view is theirs alone)
    operator: str = Field(max_length=64)
    name: str = Field(max_length=80)
    query: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


# --------------------------------------------------------------------------- proactive detection (recovery scan)


class ScanCursor(SQLModel, table=True):
    """How far one deposit address has been scanned on one network (``recovery scan``).

    ``scanned_to`` is the last block (ledger, slot) scanned, inclusive; None before the first
    chunk. It only moves forward once every transfer of the chunk is recorded, so a scanner killed
    mid-chunk scans that chunk again (idempotently) and never leaves a gap. The lease columns let
    several scanners share the addresses on PostgreSQL.
    """

    model_config = DEFERRED

    __tablename__ = "scan_cursors"
    __table_args__ = (UniqueConstraint("network", "address", name="uq_scan_cursor"),)

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    address: str = Field(max_length=128)
    first_block: int = Field(default=0, sa_type=BigInteger, nullable=False)
    scanned_to: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    scanned_at: datetime | None = _when()
    last_error: str | None = Field(default=None, max_length=500)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    lease_owner: str | None = Field(default=None, max_length=80)
    lease_expires_at: datetime | None = _when(index=True)


class ScanFinding(SQLModel, table=True):
    """One incoming transfer the scan found to an address we hold that was not credited.

    ``outcome``: ``opened`` (a detected case is about it: ``case_id``), ``appealed`` (a case for it
    existed already), ``dust`` and ``counterfeit`` (recorded, not opened, to keep the queue clean),
    ``ignored`` (the rules engine gave a category that needs no case, e.g. ``already_credited``).
    Keyed by (network, tx, kind, index) so re-scanning a range never records a transfer twice.
    """

    model_config = DEFERRED

    __tablename__ = "scan_findings"
    __table_args__ = (
        UniqueConstraint("network", "tx_hash", "kind", "transfer_index", name="uq_scan_finding"),
        Index("ix_scan_findings_outcome", "outcome", "detected_at"),
        Index("ix_scan_findings_recipient", "network", "recipient"),
    )

    id: int | None = Field(default=None, primary_key=True)
    network: str = Field(max_length=40)
    tx_hash: str = Field(max_length=128)
    kind: str = Field(max_length=16)
    transfer_index: int = Field(sa_type=BigInteger, nullable=False)
    sender: str = Field(max_length=128)
    recipient: str = Field(max_length=128)
    memo: str | None = Field(default=None, max_length=256)
    contract: str | None = Field(default=None, max_length=160)
    #: listed symbol, else the token contract
    asset: str = Field(max_length=160)
    amount_base_units: Decimal = Field(sa_type=ExactDecimal, nullable=False)
    amount: Decimal | None = _money()
    value_usd: Decimal | None = _money()
    block_number: int | None = Field(default=None, sa_type=BigInteger, nullable=True)
    block_hash: str | None = Field(default=None, max_length=128)
    block_time: datetime | None = _when()
    category: str | None = Field(default=None, max_length=40)
    outcome: str = Field(max_length=16)
    user_id: str | None = Field(default=None, max_length=128)
    case_id: int | None = Field(default=None, foreign_key="cases.id", index=True)
    detected_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


# --------------------------------------------------------------------------- status webhooks (recovery/webhooks.py)


class WebhookOutbox(SQLModel, table=True):
    """One user-visible event of a case, to deliver to one webhook URL (``recovery webhooks deliver``).

    Written in the transaction of the change it reports (``recovery/webhook_outbox.py``): a change
    that rolls back leaves no row, a committed one always has its rows. ``body`` is the exact JSON
    sent, fixed when queued (a retry sends the same bytes, signed afresh); ``event_id`` is the same
    for every URL of one event (receivers de-duplicate by it). ``state``: ``pending``,
    ``delivered`` or ``dead`` (retried for 24 hours without a 2xx). The row of a (case, URL) with
    the lowest id that is still pending is the only one of that pair that may be sent (order per
    case); ``leased_by``/``leased_until`` hold it for one worker while it is sent.
    """

    model_config = DEFERRED

    __tablename__ = "webhook_outbox"
    __table_args__ = (
        UniqueConstraint("event_id", "url", name="uq_webhook_outbox_event_url"),
        # the pending rows in id order: a claim reads them from the oldest and stops at its batch
        Index("ix_webhook_outbox_pending", "id", sqlite_where=text("state = 'pending'"),
              postgresql_where=text("state = 'pending'")),
        Index("ix_webhook_outbox_case", "case_id", "url", "state", "id"),
    )

    id: int | None = Field(default=None, primary_key=True)
    event_id: str = Field(max_length=40)
    url: str = Field(max_length=2048)
    case_id: int = Field(foreign_key="cases.id")
    audit_event_id: int | None = Field(default=None)
    event_type: str = Field(max_length=40)
    reference: str = Field(max_length=20)
    body: str = Field(sa_type=Text, nullable=False)
    created_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    state: str = Field(default="pending", max_length=16)
    attempts: int = Field(default=0)
    next_attempt_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    leased_by: str | None = Field(default=None, max_length=120)
    leased_until: datetime | None = _when()
    last_attempt_at: datetime | None = _when()
    last_status: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=500)
    delivered_at: datetime | None = _when()
