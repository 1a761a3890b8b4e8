"""Recovery fees: pure, exact Decimal arithmetic (no floats, no I/O).

    fee_usd = clamp(flat_usd + percent * max(0, value_usd - free_below_usd), min_usd, max_usd)

The USD fee is converted to the asset at its price and rounded *up* to the asset's decimals (in
the exchange's favour), then capped at the amount: ``fee + net == amount`` always holds and the fee
is never negative nor above the amount. A fee that would eat the whole amount, or a value under
the rule's ``min_value_usd``, makes the recovery not economical.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Any

from recovery.config import FeeRule
from recovery.plain_values import exact_context as exact_context  # re-exported: the money helpers' context
from recovery.plain_values import plain_decimal_text
from recovery.vocabulary import Category

#: Categories that are the exchange's own fault: only a rule naming the category charges them
#: (a catch-all ``category = "*"`` rule does not).
EXCHANGE_FAULT_CATEGORIES: frozenset[str] = frozenset(
    {Category.UNCREDITED_VALID.value, Category.INTERNAL_TRANSFER.value}
)

ZERO = Decimal(0)


def units_to_amount(units: int, decimals: int) -> Decimal:
    """Base units to asset units, exactly (``Decimal.scaleb`` in the default context rounds past 28 digits)."""
    if decimals < 0:
        raise ValueError("decimals must be >= 0")
    return Decimal(f"{int(units)}e-{decimals}")


def amount_to_units(amount: Decimal, decimals: int) -> int:
    """Asset units to base units; raises ValueError if the amount has more digits than the asset."""
    with localcontext(exact_context()):
        scaled = amount.scaleb(decimals)
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than {decimals} decimals")
    return int(scaled)


def ceil_to_units(value: Decimal, price: Decimal, decimals: int) -> int:
    """The smallest number of base units u with ``u / 10**decimals * price >= value``, exactly."""
    if price <= 0:
        raise ValueError("price must be positive")
    if value <= 0:
        return 0
    vn, vd = value.as_integer_ratio()
    pn, pd = price.as_integer_ratio()
    numerator = vn * pd * 10**decimals
    denominator = vd * pn
    return int(-(-numerator // denominator))


@dataclass(frozen=True, slots=True)
class MatchedRule:
    """The fee rule that matched, with its position in fees.toml (0-based)."""

    index: int
    rule: FeeRule

    def label(self) -> str:
        rule = self.rule
        return f"fees.toml #{self.index + 1} (category={rule.category}, network={rule.network}, asset={rule.asset})"


def match_rule(rules: Sequence[FeeRule], category: str, network: str, assets: Sequence[str]) -> MatchedRule | None:
    """First rule in file order matching the category, network and any of the asset identifiers.

    Asset identifiers (listed symbol, contract) compare case-insensitively. For the exchange's own
    faults (``EXCHANGE_FAULT_CATEGORIES``) a wildcard category does not match: they are free unless
    a rule names them.
    """
    wanted_assets = {a.casefold() for a in assets}
    for index, rule in enumerate(rules):
        if rule.category == "*" and category in EXCHANGE_FAULT_CATEGORIES:
            continue
        if rule.category not in ("*", category):
            continue
        if rule.network not in ("*", network):
            continue
        if rule.asset != "*" and rule.asset.casefold() not in wanted_assets:
            continue
        return MatchedRule(index, rule)
    return None


@dataclass(frozen=True, slots=True)
class FeeBreakdown:
    """Every term of one fee computation, for the decision and the user.

    USD terms are None when the asset has no price. ``fee`` and ``net`` are in asset units; they
    are None only when a non-zero USD fee cannot be converted (no price): manual valuation.
    """

    rule_index: int | None
    rule_category: str | None
    rule_network: str | None
    rule_asset: str | None
    amount: Decimal
    decimals: int
    price_usd: Decimal | None
    value_usd: Decimal | None
    flat_usd: Decimal
    percent: Decimal
    free_below_usd: Decimal
    percent_term_usd: Decimal | None
    min_usd: Decimal
    max_usd: Decimal | None
    #: clamp(flat + percent term, min, max), before conversion to the asset
    fee_usd: Decimal | None
    #: final fee in asset units, rounded up to the asset's decimals and capped at the amount
    fee: Decimal | None
    #: final fee valued in USD (fee * price)
    fee_value_usd: Decimal | None
    net: Decimal | None
    min_value_usd: Decimal
    max_age_days: int | None
    capped: bool
    below_min_value: bool
    notes: tuple[str, ...]

    @property
    def not_economical(self) -> bool:
        """The value is under the rule's minimum, or the fee eats the whole amount."""
        return self.below_min_value or self.eats_amount

    @property
    def eats_amount(self) -> bool:
        """The fee would take the whole amount (or more, then it was capped)."""
        return self.capped or (self.fee is not None and self.fee > 0 and self.fee >= self.amount)

    @property
    def determined(self) -> bool:
        return self.fee is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "rule_index": self.rule_index,
            "rule_category": self.rule_category,
            "rule_network": self.rule_network,
            "rule_asset": self.rule_asset,
            "amount": dec_text(self.amount),
            "decimals": self.decimals,
            "price_usd": dec_text(self.price_usd),
            "value_usd": dec_text(self.value_usd),
            "flat_usd": dec_text(self.flat_usd),
            "percent": dec_text(self.percent),
            "free_below_usd": dec_text(self.free_below_usd),
            "percent_term_usd": dec_text(self.percent_term_usd),
            "min_usd": dec_text(self.min_usd),
            "max_usd": dec_text(self.max_usd),
            "fee_usd": dec_text(self.fee_usd),
            "fee": dec_text(self.fee),
            "fee_value_usd": dec_text(self.fee_value_usd),
            "net": dec_text(self.net),
            "min_value_usd": dec_text(self.min_value_usd),
            "max_age_days": self.max_age_days,
            "capped": self.capped,
            "below_min_value": self.below_min_value,
            "notes": list(self.notes),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> FeeBreakdown:
        def req(key: str) -> Decimal:
            value = parse_dec(data[key])
            if value is None:
                raise ValueError(f"{key} is required")
            return value

        return cls(
            rule_index=data.get("rule_index"),
            rule_category=data.get("rule_category"),
            rule_network=data.get("rule_network"),
            rule_asset=data.get("rule_asset"),
            amount=req("amount"),
            decimals=int(data["decimals"]),
            price_usd=parse_dec(data.get("price_usd")),
            value_usd=parse_dec(data.get("value_usd")),
            flat_usd=req("flat_usd"),
            percent=req("percent"),
            free_below_usd=req("free_below_usd"),
            percent_term_usd=parse_dec(data.get("percent_term_usd")),
            min_usd=req("min_usd"),
            max_usd=parse_dec(data.get("max_usd")),
            fee_usd=parse_dec(data.get("fee_usd")),
            fee=parse_dec(data.get("fee")),
            fee_value_usd=parse_dec(data.get("fee_value_usd")),
            net=parse_dec(data.get("net")),
            min_value_usd=req("min_value_usd"),
            max_age_days=data.get("max_age_days"),
            capped=bool(data["capped"]),
            below_min_value=bool(data["below_min_value"]),
            notes=tuple(data.get("notes", ())),
        )


def dec_text(value: Decimal | None) -> str | None:
    """A plain decimal string (never exponent notation), exact; None stays None."""
    if value is None:
        return None
    return plain_decimal_text(value)


def parse_dec(value: Any) -> Decimal | None:
    if value is None:
        return None
    if isinstance(value, float | bool):
        raise TypeError("refusing a float or boolean as money")
    return Decimal(str(value))


def usd_fee(rule: FeeRule, value_usd: Decimal) -> tuple[Decimal, Decimal]:
    """(percent term, clamped USD fee) for a known value. Exact."""
    with localcontext(exact_context()):
        percent_term = rule.percent * max(ZERO, value_usd - rule.free_below_usd)
        raw = rule.flat_usd + percent_term
        fee = max(raw, rule.min_usd)
        if rule.max_usd is not None:
            fee = min(fee, rule.max_usd)
    return percent_term, fee


def compute_fee(
    matched: MatchedRule | None,
    amount: Decimal,
    decimals: int,
    price_usd: Decimal | None,
) -> FeeBreakdown:
    """Apply one fee rule (or none: free) to an amount in asset units.

    ``amount`` must fit the asset's decimals. A price of zero counts as no price.
    """
    if amount < 0:
        raise ValueError("amount must not be negative")
    amount_units = amount_to_units(amount, decimals)
    price = price_usd if price_usd is not None and price_usd > 0 else None
    notes: list[str] = []
    with localcontext(exact_context()):
        value_usd = amount * price if price is not None else None

    if matched is None:
        notes.append("No fee rule matches this category: no fee.")
        zero = Decimal(0)
        return FeeBreakdown(
            rule_index=None, rule_category=None, rule_network=None, rule_asset=None,
            amount=amount, decimals=decimals, price_usd=price, value_usd=value_usd,
            flat_usd=zero, percent=zero, free_below_usd=zero,
            percent_term_usd=zero if value_usd is not None else None,
            min_usd=zero, max_usd=None, fee_usd=zero, fee=units_to_amount(0, decimals),
            fee_value_usd=zero if price is not None else None, net=amount,
            min_value_usd=zero, max_age_days=None, capped=False, below_min_value=False,
            notes=tuple(notes),
        )

    rule = matched.rule
    percent_term: Decimal | None
    fee_usd: Decimal | None
    if value_usd is not None:
        percent_term, fee_usd = usd_fee(rule, value_usd)
    elif rule.percent == 0 or (rule.max_usd is not None and rule.max_usd == rule.min_usd):
        # The USD fee does not depend on the value: it is known even without a price.
        percent_term = None
        fee_usd = usd_fee(rule, ZERO)[1] if rule.percent == 0 else rule.min_usd
    else:
        percent_term = None
        fee_usd = None
        notes.append("The asset has no price: the percentage fee needs a manual valuation.")

    fee: Decimal | None = None
    net: Decimal | None = None
    fee_value_usd: Decimal | None = None
    capped = False
    if fee_usd is not None and fee_usd == 0:
        fee_units = 0
    elif fee_usd is not None and price is not None:
        fee_units = ceil_to_units(fee_usd, price, decimals)
    else:
        fee_units = -1
        if fee_usd is not None:
            notes.append(f"A fee of {dec_text(fee_usd)} USD cannot be converted to the asset without a price.")
    if fee_units >= 0:
        if fee_units > amount_units:
            fee_units = amount_units
            capped = True
            notes.append("The fee would exceed the amount: capped at the amount.")
        fee = units_to_amount(fee_units, decimals)
        net = units_to_amount(amount_units - fee_units, decimals)
        if price is not None:
            with localcontext(exact_context()):
                fee_value_usd = fee * price

    below_min_value = value_usd is not None and value_usd < rule.min_value_usd
    if below_min_value:
        notes.append(
            f"Value {dec_text(value_usd)} USD is under the rule's minimum of {dec_text(rule.min_value_usd)} USD."
        )
    return FeeBreakdown(
        rule_index=matched.index,
        rule_category=rule.category,
        rule_network=rule.network,
        rule_asset=rule.asset,
        amount=amount,
        decimals=decimals,
        price_usd=price,
        value_usd=value_usd,
        flat_usd=rule.flat_usd,
        percent=rule.percent,
        free_below_usd=rule.free_below_usd,
        percent_term_usd=percent_term,
        min_usd=rule.min_usd,
        max_usd=rule.max_usd,
        fee_usd=fee_usd,
        fee=fee,
        fee_value_usd=fee_value_usd,
        net=net,
        min_value_usd=rule.min_value_usd,
        max_age_days=rule.max_age_days,
        capped=capped,
        below_min_value=below_min_value,
        notes=tuple(notes),
    )
