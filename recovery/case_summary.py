"""A case in one line, and its money figures as the decision allows them (pure: no I/O).

:func:`summary_line` says what happened and what comes next, for example::

    2,275.09 USDT sent on Polygon to our Ethereum address; recoverable; fee 108.75; credit 2,166.34 to
    user-0019 after approval

:func:`money_view` says which money figures the page may show: a fee and a net amount only where
something is paid out (an expired, uneconomical or unrecoverable case shows neither, and says why),
and for a fee the engine could not set (no price) the rule it would apply and the valuation it
waits for. Amounts are in asset units, to the asset's decimals (``recovery.i18n``'s English
translator writes them).

:func:`cases_from_sender` is the one read here: other cases whose deposit came from the same
sender address (the observed transfers' sender, then the cases of those transactions).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, col, select

from recovery.config import Config
from recovery.fees import FeeBreakdown, parse_dec
from recovery.i18n import translator
from recovery.models import Case, ObservedTransfer
from recovery.rules import fee_formula
from recovery.valuation import current_valuation, engine_fee
from recovery.vocabulary import CaseStatus, Category, Flag, Recoverable, Resolution

__all__ = [
    "MoneyView",
    "SenderCase",
    "asset_label",
    "cases_from_sender",
    "decimals_of",
    "fee_rule_text",
    "money_view",
    "network_title",
    "sender_of",
    "short",
    "summary_line",
]

#: how the shipped networks are called in sentences (others: their configured name)
NETWORK_TITLES: Mapping[str, str] = {
    "ethereum": "Ethereum", "bsc": "BNB Smart Chain", "polygon": "Polygon", "arbitrum": "Arbitrum",
    "tron": "TRON", "xrpl": "XRP Ledger", "stellar": "Stellar", "solana": "Solana", "bitcoin": "Bitcoin",
    "cosmos": "Cosmos Hub",
}
PAYING = frozenset({Resolution.CREDIT.value, Resolution.REFUND.value})
_EN = translator("en")


def network_title(name: str | None) -> str:
    if not name:
        return "an unknown network"
    return NETWORK_TITLES.get(name, name)


def short(text: str | None, keep: int = 6) -> str:
    """A long hash or address shortened for a sentence (``0xf39F…2266``); the page shows it whole."""
    if not text:
        return "-"
    return text if len(text) <= 2 * keep + 2 else f"{text[:keep]}…{text[-4:]}"


def asset_label(case: Case) -> str:
    """The listed symbol, or the token's contract shortened (an unlisted token is named by its contract)."""
    asset = str((case.decision or {}).get("asset") or case.asset or "")
    return short(asset) if len(asset) > 14 else asset


def decimals_of(case: Case, config: Config | None) -> int | None:
    """The asset's decimals: the decision's fee breakdown, else the configuration's listing."""
    fee = (case.decision or {}).get("fee")
    if isinstance(fee, Mapping) and isinstance(fee.get("decimals"), int):
        return int(fee["decimals"])
    if config is None:
        return None
    network = (case.decision or {}).get("network") or case.deposit_network or case.network
    asset = str((case.decision or {}).get("asset") or case.asset or "")
    try:
        listed = config.asset_by_symbol(network, asset) or config.asset_by_contract(network, asset)
    except (KeyError, ValueError):
        listed = None
    return listed.decimals if listed is not None else None


def _amount(value: Decimal | None, decimals: int | None, unit: str | None = None) -> str:
    if value is None:
        return "-"
    return _EN.amount(value, decimals, unit)


def fee_rule_text(fee: FeeBreakdown | Mapping[str, Any] | None) -> str | None:
    """The fee rule in words ("80 USD flat (at most 500 USD)"), as the reasons word it."""
    if fee is None:
        return None
    if isinstance(fee, Mapping):
        try:
            fee = FeeBreakdown.from_json(fee)
        except (KeyError, ValueError, TypeError, InvalidOperation):
            return None
    if fee.rule_index is None:
        return "no fee rule applies"
    return fee_formula(fee, _EN.number)[0]


@dataclass(frozen=True)
class MoneyView:
    """The money figures a case may show, formatted, and why others are not shown."""

    #: something is (or will be) paid out: a credit or a refund the decision has not ruled out
    payable: bool
    amount: str
    #: "set" (a fee from the configured price), "free", "valued" (from a manual valuation),
    #: "undetermined" (no price: a valuation is needed) or "none" (nothing is paid out)
    fee_state: str
    fee: str | None
    net: str | None
    fee_usd: str | None
    value_usd: str | None
    #: why no fee and no net are shown, or why the fee is not set
    note: str | None
    rule: str | None
    decimals: int | None


def _not_payable_reason(case: Case) -> str:
    flags = set(case.flags or [])
    if case.status == CaseStatus.REJECTED.value:
        return "the appeal was rejected: nothing is paid"
    if Flag.EXPIRED.value in flags:
        return "expired: older than the recovery window, so nothing is paid and no fee is charged"
    if Flag.NOT_ECONOMICAL.value in flags and case.recoverable == Recoverable.NO.value:
        return "not economical: the fee would take the whole amount or the value is too low, so nothing is paid"
    if Flag.COUNTERFEIT.value in flags or case.category == Category.COUNTERFEIT_TOKEN.value:
        return "a counterfeit token: never credited, no fee"
    if case.category in (Category.TX_NOT_FOUND.value, Category.AWAITING_CONFIRMATIONS.value) or case.category is None:
        return "not decided yet: no fee until the transaction is found and confirmed"
    if case.recoverable == Recoverable.NO.value:
        return "not recoverable: nothing is paid and no fee is charged"
    return "nothing is paid out for this decision, so no fee is charged"


def money_view(case: Case, config: Config | None) -> MoneyView:
    decimals = decimals_of(case, config)
    amount = _amount(case.amount, decimals, asset_label(case)) if case.amount is not None else "-"
    breakdown = engine_fee(case)
    rule = fee_rule_text(breakdown)
    payable = case.resolution in PAYING and case.recoverable != Recoverable.NO.value and case.status not in (
        CaseStatus.REJECTED.value,)
    value_usd = _EN.usd(case.value_usd) if case.value_usd is not None else None
    if not payable:
        return MoneyView(False, amount, "none", None, None, None, value_usd, _not_payable_reason(case), rule,
                         decimals)
    valued = current_valuation(case)
    fee_usd = _EN.usd(case.fee_usd) if case.fee_usd is not None else None
    fee = _amount(case.fee_amount, decimals) if case.fee_amount is not None else None
    net = _amount(case.net_amount, decimals) if case.net_amount is not None else None
    if breakdown is not None and breakdown.fee is None:
        if valued is None:
            return MoneyView(True, amount, "undetermined", None, None, None, None,
                             f"no USD price for this asset: the fee ({rule or 'its rule'}) cannot be set; set a "
                             "valuation (price, source, reason) before approval", rule, decimals)
        return MoneyView(True, amount, "valued", fee, net, fee_usd, value_usd,
                         f"fee from a manual valuation: {_EN.number(valued.price_usd)} USD per unit "
                         f"({valued.source}), set by {valued.by}", rule, decimals)
    if case.fee_amount is not None and case.fee_amount == 0:
        return MoneyView(True, amount, "free", fee, net, fee_usd, value_usd, None, rule, decimals)
    return MoneyView(True, amount, "set", fee, net, fee_usd, value_usd, None, rule, decimals)


def sender_of(case: Case) -> str | None:
    """The sending address of the case's deposit transfer, as the chain reported it."""
    for ref in (case.decision or {}).get("transfers") or ():
        if isinstance(ref, Mapping) and ref.get("sender"):
            return str(ref["sender"])
    return None


def _where(case: Case) -> str:
    decision = case.decision or {}
    found = decision.get("network")
    claimed = case.network
    if found and found != claimed:
        return f"sent on {network_title(found)} to our {network_title(claimed)} address"
    return f"sent on {network_title(found or claimed)}"


def _verdict(case: Case) -> str:
    flags = set(case.flags or [])
    recoverable = case.recoverable
    if recoverable == Recoverable.YES.value:
        return "recoverable"
    if recoverable == Recoverable.CONDITIONAL.value:
        proof = (case.decision or {}).get("ownership_proof")
        if proof:
            return "recoverable once the appellant proves they sent it"
        fee = engine_fee(case)
        if fee is not None and fee.fee is None and current_valuation(case) is None:
            return "recoverable once valued"
        return "recoverable if a person confirms it"
    why = []
    if Flag.EXPIRED.value in flags:
        why.append("expired")
    if Flag.NOT_ECONOMICAL.value in flags:
        why.append("not economical")
    return "not recoverable" + (f" ({', '.join(why)})" if why else "")


def _next(case: Case, money: MoneyView, payout_state: str | None) -> str:
    """What is paid, to whom, and what it waits for."""
    status = case.status
    resolution = case.resolution
    who = (f"to {case.credited_user_id}" if resolution == Resolution.CREDIT.value
           else f"to {short((case.decision or {}).get('refund_address') or case.refund_address)}")
    verb = "credit" if resolution == Resolution.CREDIT.value else "refund"
    net = money.net if money.net is not None else money.amount
    if status == CaseStatus.REJECTED.value:
        return "rejected"
    if status == CaseStatus.CLOSED.value:
        return "closed"
    if status == CaseStatus.CREDITED.value:
        return f"credited {net} {who}"
    if status == CaseStatus.REFUNDED.value:
        return f"refunded {net} {who}"
    if status == CaseStatus.REFUND_PENDING.value:
        return f"refund of {net} {who} sent; proving it on chain"
    if status == CaseStatus.APPROVED.value:
        state = "to be booked" if resolution == Resolution.CREDIT.value else "to be paid"
        if payout_state == "mismatch":
            state = "the recorded refund does not match"
        return f"{verb} {net} {who} approved, {state}"
    if not money.payable:
        return "nothing to pay"
    if money.fee_state == "undetermined":
        return f"{verb} {who} after a valuation and approval"
    return f"{verb} {net} {who} after approval"


def _fee_part(money: MoneyView) -> str | None:
    if not money.payable:
        return None
    if money.fee_state == "free":
        return "no fee"
    if money.fee_state == "undetermined":
        return f"fee not set: no USD price ({money.rule})" if money.rule else "fee not set: no USD price"
    if money.fee_state == "valued":
        return f"fee {money.fee} at a manual valuation"
    return f"fee {money.fee}" if money.fee is not None else None


def summary_line(case: Case, config: Config | None, *, payout_state: str | None = None) -> str:
    """The case in one line: what arrived where, the verdict, the fee and what happens next."""
    money = money_view(case, config)
    category = case.category
    status = case.status
    asset = asset_label(case)
    if status in (CaseStatus.SUBMITTED.value, CaseStatus.AWAITING_CHAIN.value) and category in (
            None, Category.TX_NOT_FOUND.value, Category.AWAITING_CONFIRMATIONS.value):
        claimed = f"{case.asset} on {network_title(case.network)}"
        if category == Category.AWAITING_CONFIRMATIONS.value:
            return f"{money.amount} {_where(case)}; waiting for confirmations; not decided yet"
        if category == Category.TX_NOT_FOUND.value:
            return f"Transaction of {claimed} not found on the chains yet; waiting for the chain check"
        return f"Appeal for {claimed}; waiting for the chain check"
    head: str
    if category == Category.TX_NOT_FOUND.value:
        head = f"Transaction of {case.asset} not found on {network_title(case.network)} or its related networks"
    elif category == Category.TX_FAILED.value:
        return (f"Transaction failed on {network_title((case.decision or {}).get('network') or case.network)}: "
                f"nothing was sent; not recoverable; nothing to pay" + _closing(case))
    elif category == Category.NOT_OUR_ADDRESS.value:
        head = f"{money.amount} sent on {network_title((case.decision or {}).get('network') or case.network)} " \
               "to an address that is not ours"
    elif category == Category.COUNTERFEIT_TOKEN.value:
        head = f"{money.amount} of a counterfeit token imitating {case.asset} {_where(case)}"
    elif category == Category.ALREADY_CREDITED.value:
        return f"{money.amount} {_where(case)}; already credited; nothing to pay" + _closing(case)
    else:
        head = f"{money.amount} {_where(case)}" if money.amount != "-" else f"{asset} {_where(case)}"
    parts = [head, _verdict(case)]
    fee = _fee_part(money)
    if fee:
        parts.append(fee)
    parts.append(_next(case, money, payout_state))
    if status == CaseStatus.NEEDS_INFO.value:
        parts.append("waiting for the user's answer")
    return "; ".join(parts)


def _closing(case: Case) -> str:
    if case.status in (CaseStatus.REJECTED.value, CaseStatus.CLOSED.value):
        return f"; {case.status}"
    return ""


# ------------------------------------------------------------------------------------------ the read
@dataclass(frozen=True)
class SenderCase:
    reference: str
    status: str
    category: str | None
    network: str
    asset: str
    amount: Decimal | None
    created_at: datetime


def cases_from_sender(session: Session, case: Case, networks: Sequence[str], *,
                      limit: int = 10) -> tuple[str | None, list[SenderCase]]:
    """(sender, other cases whose deposit came from it, newest first, at most ``limit``).

    Two indexed reads: the observed transfers by sender (``ix_observed_transfers_sender``), then
    the cases of those transactions by (network, tx_hash) over ``networks`` (every configured one:
    a case is filed on the network the user names, not always where the deposit landed), which
    reads ``ix_cases_network_tx``.
    """
    sender = sender_of(case)
    if sender is None:
        return None, []
    seen = session.exec(
        select(ObservedTransfer.network, ObservedTransfer.tx_hash).where(ObservedTransfer.sender == sender)
        .distinct().limit(500)
    ).all()
    hashes = sorted({tx for _network, tx in seen})
    if not hashes:
        return sender, []
    rows: Sequence[Case] = session.exec(
        select(Case).where(col(Case.network).in_(sorted(set(networks))), col(Case.tx_hash).in_(hashes),
                           Case.id != case.id)
        .order_by(col(Case.created_at).desc(), col(Case.id).desc()).limit(limit)
    ).all()
    return sender, [
        SenderCase(c.reference or "", c.status, c.category, c.network, c.asset, _dec(c.amount), c.created_at)
        for c in rows
    ]


def _dec(value: Any) -> Decimal | None:
    return parse_dec(value) if value is not None else None
