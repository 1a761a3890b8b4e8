"""Manual valuation: a USD price set by an operator for an asset the configuration has no price for.

An unlisted token (or any asset without a price) leaves a fee rule such as "80 USD flat" or "5% of
the value" undetermined: the engine cannot turn USD into tokens. Before this, such a case was paid
out whole, with no fee ever set. Now:

- ``set_valuation`` (an audited case action, a specialist's: it counts as preparing the case) takes
  a price, its source and a reason; the fee is recomputed from the fee policy with that price
  (:func:`recovery.fees.compute_fee`, the rule the category matches now) and written to the case's
  value, fee and net columns as a decision's fee is. The valuation itself is kept beside the
  engine's decision (``decision["valuation"]``) and in the audit event; the engine's own fee
  breakdown is left as it was, so an identical re-check keeps the valuation and a different one
  (a new decision) voids it.
- ``approve`` refuses a fee-bearing case of unknown value (:func:`approval_check`, on every path:
  the service is the only way to approve): no valuation, a valuation that no audited event of the
  current decision backs (an edited row), one made for another category, or one at which the
  recovery is not economical. Whoever set the valuation never approves the case, at any value, and
  a manually valued case always needs an approver who did not prepare it, once sent for approval
  (:func:`manually_valued`, read by the service's four-eyes rule): a specialist cannot set a tiny
  price to zero the fee and approve alone.

Money is Decimal throughout; a price is positive, finite, at most 8 decimal places (so every value
and fee fits the database's 30 decimal places exactly) and below 10^12 USD.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from sqlmodel import Session, col, select

from recovery.config import Config
from recovery.errors import FieldError, Forbidden, InvalidTransition, ValidationFailed
from recovery.fees import FeeBreakdown, compute_fee, dec_text, match_rule, parse_dec
from recovery.models import Case, CaseEvent
from recovery.vocabulary import Flag, Resolution

__all__ = [
    "SET_VALUATION",
    "Valuation",
    "approval_check",
    "current_valuation",
    "engine_fee",
    "fee_undetermined",
    "manually_valued",
    "needs_valuation",
    "parse_price",
    "valuation_change",
]

SET_VALUATION = "set_valuation"
#: the decision key holding the current valuation (the engine never writes it; a new decision drops it)
DECISION_KEY = "valuation"
PAYING = frozenset({Resolution.CREDIT.value, Resolution.REFUND.value})
MAX_PRICE = Decimal("1e12")
PRICE_PLACES = 8
SOURCE_MAX = 200
REASON_MAX = 2000


@dataclass(frozen=True)
class Valuation:
    """A price set by an operator, and the fee it gives."""

    price_usd: Decimal
    source: str
    reason: str
    by: str
    at: str  # ISO time
    category: str | None
    fee: FeeBreakdown

    def to_json(self) -> dict[str, Any]:
        return {"price_usd": dec_text(self.price_usd), "source": self.source, "reason": self.reason, "by": self.by,
                "at": self.at, "category": self.category, "fee": self.fee.to_json()}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Valuation:
        price = parse_dec(data.get("price_usd"))
        if price is None:
            raise ValueError("price_usd is required")
        return cls(price, str(data.get("source") or ""), str(data.get("reason") or ""), str(data.get("by") or ""),
                   str(data.get("at") or ""), data.get("category"), FeeBreakdown.from_json(data["fee"]))


# ------------------------------------------------------------------------------------------- reads
def engine_fee(case: Case) -> FeeBreakdown | None:
    """The engine's fee breakdown of the case's decision (never the valuation's)."""
    data = (case.decision or {}).get("fee")
    if not isinstance(data, Mapping):
        return None
    try:
        return FeeBreakdown.from_json(data)
    except (KeyError, ValueError, TypeError, InvalidOperation):
        return None


def fee_undetermined(case: Case) -> bool:
    """A credit or refund whose fee the engine could not set (no price): it needs a valuation."""
    if case.resolution not in PAYING:
        return False
    fee = engine_fee(case)
    return fee is not None and fee.fee is None


def current_valuation(case: Case) -> Valuation | None:
    data = (case.decision or {}).get(DECISION_KEY)
    if not isinstance(data, Mapping):
        return None
    try:
        return Valuation.from_json(data)
    except (KeyError, ValueError, TypeError, InvalidOperation):
        return None


def manually_valued(case: Case) -> bool:
    """The case's value comes from an operator's price, not the configuration's: four eyes always."""
    return fee_undetermined(case) and current_valuation(case) is not None


def needs_valuation(case: Case) -> bool:
    """Approval is refused until a valuation is set (see :func:`approval_check` for the full check)."""
    return fee_undetermined(case) and current_valuation(case) is None


# ------------------------------------------------------------------------------------------- input
def parse_price(value: str | Decimal | None) -> Decimal:
    """A USD price from an operator: positive, finite, at most 8 decimal places, below 10^12.
    Anything else is refused naming the field ``price_usd``."""
    def bad(message: str) -> ValidationFailed:
        return ValidationFailed([FieldError("price_usd", message)])

    if isinstance(value, float | bool):
        raise bad("give the price as a decimal string, never a float")
    text = str(value if value is not None else "").strip()
    if not text:
        raise bad("is required: the USD price of one unit of the asset")
    if len(text) > 40:
        raise bad("is longer than 40 characters")
    try:
        price = Decimal(text)
    except InvalidOperation:
        raise bad(f"{text!r} is not a decimal number") from None
    if not price.is_finite():
        raise bad("must be a finite number")
    if price <= 0:
        raise bad("must be positive")
    if price >= MAX_PRICE:
        raise bad("must be below 1,000,000,000,000 USD")
    places = Decimal(1).scaleb(-PRICE_PLACES)
    if price != price.quantize(places):
        raise bad(f"has more than {PRICE_PLACES} decimal places")
    return price.quantize(places).normalize()


def _text(field: str, value: str | None, limit: int, what: str) -> str:
    text = (value or "").strip()
    if not text:
        raise ValidationFailed([FieldError(field, f"is required: {what}")])
    if len(text) > limit:
        raise ValidationFailed([FieldError(field, f"is longer than {limit} characters")])
    return text


def checked_input(price: str | Decimal | None, source: str | None, reason: str | None) -> tuple[Decimal, str, str]:
    """Every field of a valuation checked at once (each bad one named)."""
    errors: list[FieldError] = []
    values: list[Any] = []
    for check in (lambda: parse_price(price),
                  lambda: _text("source", source, SOURCE_MAX, "where the price comes from (a venue, a quote)"),
                  lambda: _text("reason", reason, REASON_MAX, "why this price is right")):
        try:
            values.append(check())
        except ValidationFailed as exc:
            errors += exc.errors
    if errors:
        raise ValidationFailed(errors)
    return values[0], values[1], values[2]


# ------------------------------------------------------------------------------------------- write
def valued_fee(case: Case, config: Config, price: Decimal) -> FeeBreakdown:
    """The fee the fee policy gives the case's category, network and asset at ``price``."""
    decision = case.decision or {}
    fee = engine_fee(case)
    if fee is None:
        raise InvalidTransition(f"{case.reference}: the decision has no amount to value (the token's decimals are "
                                "unknown)")
    refs = [r for r in decision.get("transfers") or () if isinstance(r, Mapping)]
    network = str((refs[0].get("network") if refs else None) or decision.get("network") or case.deposit_network
                  or case.network)
    ids = [str(decision.get("asset") or case.asset)]
    ids += sorted({str(r["contract"]) for r in refs if r.get("contract")})
    matched = match_rule(config.fees, str(case.category or decision.get("category") or ""), network, ids)
    return compute_fee(matched, fee.amount, fee.decimals, price)


def valuation_change(case: Case, config: Config, *, price: Decimal, source: str, reason: str, by: str,
                     now: datetime) -> dict[str, Any]:
    """Set the valuation on the locked ``case`` (inside the service's ``act``); returns the audit
    details: the price, its source and reason, the fee and net it gives, and what they replace."""
    if case.resolution not in PAYING:
        raise InvalidTransition(f"{case.reference} pays nothing out (resolution {case.resolution or 'none'}): "
                                "there is no fee to value")
    if not fee_undetermined(case):
        raise InvalidTransition(f"{case.reference}: the fee is already determined from the configured price; "
                                "a valuation is only for an asset without a price")
    breakdown = valued_fee(case, config, price)
    previous = current_valuation(case)
    valuation = Valuation(price, source, reason, by, now.isoformat(), case.category, breakdown)
    before = {"value_usd": case.value_usd, "fee_amount": case.fee_amount, "fee_usd": case.fee_usd,
              "net_amount": case.net_amount}
    case.decision = {**(case.decision or {}), DECISION_KEY: valuation.to_json()}
    case.value_usd = breakdown.value_usd
    case.fee_amount = breakdown.fee
    case.fee_usd = breakdown.fee_value_usd
    case.fee_asset = str((case.decision or {}).get("asset") or case.asset) if breakdown.fee is not None else None
    case.net_amount = breakdown.net
    if breakdown.not_economical:
        case.flags = sorted({*case.flags, Flag.NOT_ECONOMICAL.value})
    return {
        "asset": (case.decision or {}).get("asset") or case.asset,
        "category": case.category,
        "value_usd": breakdown.value_usd,
        "fee_usd": breakdown.fee_usd,
        "fee": breakdown.fee,
        "fee_value_usd": breakdown.fee_value_usd,
        "net": breakdown.net,
        "not_economical": breakdown.not_economical,
        "rule_index": breakdown.rule_index,
        "before": before,
        **({"previous": {"price_usd": previous.price_usd, "by": previous.by}} if previous is not None else {}),
    }


# ------------------------------------------------------------------------------------------- approval
def _backing_event(session: Session, case: Case) -> tuple[CaseEvent | None, set[str]]:
    """The last set_valuation event of the current decision (after the last decided chain result),
    and everyone who set a valuation for that decision."""
    rows = session.exec(
        select(CaseEvent).where(CaseEvent.case_id == case.id,
                                col(CaseEvent.action).in_([SET_VALUATION, "chain_result"]))
        .order_by(col(CaseEvent.id))
    ).all()
    last: CaseEvent | None = None
    valuers: set[str] = set()
    for event in rows:
        if event.action == "chain_result":
            if (event.details or {}).get("outcome") == "decided":
                last, valuers = None, set()
            continue
        last = event
        valuers.add(event.actor)
    return last, valuers


def _same(a: Any, b: Any) -> bool:
    left, right = parse_dec(a), parse_dec(b)
    return left == right


def approval_check(session: Session, case: Case, approver: str) -> dict[str, Any]:
    """Refuse the approval of a fee-bearing case of unknown value that has no sound valuation, or by
    whoever set it; returns what the approve event records of the valuation (nothing when none is
    needed)."""
    if not fee_undetermined(case):
        return {}
    reference = case.reference
    valuation = current_valuation(case)
    if valuation is None:
        fee = engine_fee(case)
        rule = "its fee rule" if fee is None or fee.rule_index is None else f"fees.toml #{fee.rule_index + 1}"
        raise InvalidTransition(
            f"{reference}: the asset has no USD price, so the fee of {rule} is not set: set a valuation (price, "
            "source, reason) before approving; someone else then approves it"
        )
    event, valuers = _backing_event(session, case)
    details = (event.details or {}) if event is not None else {}
    if event is None or not (
        _same(details.get("price_usd"), valuation.price_usd) and _same(details.get("fee"), valuation.fee.fee)
        and _same(details.get("net"), valuation.fee.net) and _same(case.fee_amount, valuation.fee.fee)
        and _same(case.net_amount, valuation.fee.net) and _same(case.value_usd, valuation.fee.value_usd)
    ):
        raise InvalidTransition(
            f"{reference}: the valuation on the case does not match its audited set_valuation event: set the "
            "valuation again"
        )
    if valuation.category != case.category:
        raise InvalidTransition(
            f"{reference}: the valuation was made for category {valuation.category}, the case is now "
            f"{case.category}: set the valuation again"
        )
    if approver in valuers:
        raise Forbidden(f"{reference}: four-eyes rule: {approver} set the valuation and cannot also approve it")
    if valuation.fee.not_economical:
        raise InvalidTransition(
            f"{reference}: at the valuation of {dec_text(valuation.price_usd)} USD the recovery is not economical "
            "(the value is under the fee rule's minimum, or the fee takes the whole amount): reject it as "
            "not_economical, or set another valuation"
        )
    return {"valuation": {"price_usd": valuation.price_usd, "source": valuation.source, "by": valuation.by,
                          "set_by": sorted(valuers), "event_id": event.id, "fee": valuation.fee.fee,
                          "net": valuation.fee.net, "value_usd": valuation.fee.value_usd}}
