"""The fixed codes shared by the rules engine, the case model and every front end.

These strings are a public contract (API, CLI JSON, workbench, fee rules): never rename one.
"""

from __future__ import annotations

from enum import StrEnum


class Category(StrEnum):
    """Appeal categories, in precedence order: where several apply, the first one wins."""

    TX_NOT_FOUND = "tx_not_found"
    AWAITING_CONFIRMATIONS = "awaiting_confirmations"
    TX_FAILED = "tx_failed"
    NOT_OUR_ADDRESS = "not_our_address"
    ALREADY_CREDITED = "already_credited"
    COUNTERFEIT_TOKEN = "counterfeit_token"
    WRONG_NETWORK = "wrong_network"
    UNLISTED_TOKEN = "unlisted_token"
    MISSING_MEMO = "missing_memo"
    WRONG_MEMO = "wrong_memo"
    #: a deposit to an address we hold that belongs to no user (an exchange wallet: hot, cold,
    #: withdrawal): credit to an appellant who proves they sent it, otherwise refund to the sender
    UNATTRIBUTED_DEPOSIT = "unattributed_deposit"
    DEPOSIT_SUSPENDED = "deposit_suspended"
    BELOW_MINIMUM = "below_minimum"
    INTERNAL_TRANSFER = "internal_transfer"
    UNCREDITED_VALID = "uncredited_valid"


CATEGORY_ORDER: tuple[Category, ...] = tuple(Category)


class Recoverable(StrEnum):
    YES = "yes"
    NO = "no"
    CONDITIONAL = "conditional"


class Resolution(StrEnum):
    CREDIT = "credit"
    REFUND = "refund"
    NONE = "none"


class Flag(StrEnum):
    CONTESTED = "contested"
    AMOUNT_MISMATCH = "amount_mismatch"
    PARTIAL_PAYMENT = "partial_payment"
    EXPIRED = "expired"
    NOT_ECONOMICAL = "not_economical"
    CREDITED_TO_OTHER_USER = "credited_to_other_user"
    OTHER_USERS_ADDRESS = "other_users_address"
    COUNTERFEIT = "counterfeit"
    #: the chain's answer held something the adapter could not read with certainty (TxStatus.UNCLEAR)
    UNRECOGNISED_CHAIN_DATA = "unrecognised_chain_data"
    #: an unconfirmed transaction its sender may still replace (Bitcoin RBF): never credited before
    #: it confirms
    REPLACEABLE = "replaceable"
    #: the recorded refund transaction does not prove the approved payout (recipient, asset, amount, sender)
    REFUND_MISMATCH = "refund_mismatch"
    #: the recorded refund is still not proven on chain after ``policy.refund_overdue_hours``
    REFUND_OVERDUE = "refund_overdue"
    #: the refund proven on chain paid more than the approved amount
    REFUND_OVERPAID = "refund_overpaid"


#: Flags a case gets from its payout (the re-check's refund proof), not from the rules engine; a
#: new decision keeps them.
PAYOUT_FLAGS: frozenset[Flag] = frozenset({Flag.REFUND_MISMATCH, Flag.REFUND_OVERDUE, Flag.REFUND_OVERPAID})

#: Flags a user may see on their own appeal; the others are for the appeal team only.
USER_VISIBLE_FLAGS: frozenset[Flag] = frozenset(
    {Flag.AMOUNT_MISMATCH, Flag.PARTIAL_PAYMENT, Flag.EXPIRED, Flag.NOT_ECONOMICAL}
)


class CaseStatus(StrEnum):
    SUBMITTED = "submitted"
    AWAITING_CHAIN = "awaiting_chain"
    IN_REVIEW = "in_review"
    NEEDS_INFO = "needs_info"
    APPROVED = "approved"
    REFUND_PENDING = "refund_pending"
    REFUNDED = "refunded"
    CREDITED = "credited"
    REJECTED = "rejected"
    CLOSED = "closed"


class Role(StrEnum):
    """Who acts on a case. Operators hold one of the first four; the other two are not accounts."""

    SPECIALIST = "specialist"
    APPROVER = "approver"
    ADMIN = "admin"
    AUDITOR = "auditor"
    SYSTEM = "system"
    USER = "user"


OPERATOR_ROLES: tuple[Role, ...] = (Role.SPECIALIST, Role.APPROVER, Role.ADMIN, Role.AUDITOR)


class Origin(StrEnum):
    APPEAL = "appeal"
    DETECTED = "detected"
    INTAKE = "intake"
