"""Fee arithmetic: worked examples, rule matching, and hypothesis properties."""

from __future__ import annotations

from decimal import Decimal, Inexact, localcontext
from fractions import Fraction

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from recovery.config import FeeRule
from recovery.fees import (
    FeeBreakdown,
    MatchedRule,
    amount_to_units,
    ceil_to_units,
    compute_fee,
    dec_text,
    exact_context,
    match_rule,
    units_to_amount,
    usd_fee,
)
from recovery.plain_values import canonical_decimal, decimal_text

D = Decimal

WRONG_NETWORK = FeeRule(
    category="wrong_network",
    percent=D("0.05"),
    free_below_usd=D(100),
    min_usd=D(20),
    max_usd=D(500),
    min_value_usd=D(50),
    max_age_days=180,
)
UNLISTED = FeeRule(category="unlisted_token", flat_usd=D(80), max_usd=D(500), min_value_usd=D(100))


def rule(r: FeeRule, index: int = 0) -> MatchedRule:
    return MatchedRule(index, r)


@pytest.mark.parametrize(
    ("amount", "decimals", "price", "fee_usd", "fee", "net"),
    [
        # 5% above the first 100 USD, clamped to [20, 500]
        ("1000", 6, "1", "45", "45", "955"),
        ("150", 18, "1", "20", "20", "130"),  # 2.5 USD raised to the minimum
        ("20000", 6, "1", "500", "500", "19500"),  # 995 USD capped at the maximum
        # 20 USD in ETH at 3000: 0.00666... rounded UP to 18 decimals
        ("0.1", 18, "3000", "20", "0.006666666666666667", "0.093333333333333333"),
        # 5% of (3 * 3000 - 100) = 445 USD in ETH: 0.148333... rounded up
        ("3", 18, "3000", "445", "0.148333333333333334", "2.851666666666666666"),
        # the fee would exceed the amount: capped, net zero
        ("10", 6, "1", "20", "10", "0"),
    ],
)
def test_wrong_network_fee_examples(amount: str, decimals: int, price: str, fee_usd: str, fee: str, net: str) -> None:
    result = compute_fee(rule(WRONG_NETWORK), D(amount), decimals, D(price))
    assert result.fee_usd == D(fee_usd)
    assert result.fee == D(fee)
    assert result.net == D(net)
    assert result.fee + result.net == D(amount)
    assert result.fee_value_usd == result.fee * D(price)


def test_fee_is_rounded_in_the_exchanges_favour() -> None:
    result = compute_fee(rule(WRONG_NETWORK), D("100"), 6, D("3"))  # 20 USD at 3 USD = 6.666666...
    assert result.fee == D("6.666667")
    assert result.fee_usd == D(20) and result.fee_value_usd == D("20.000001")
    assert result.net == D("93.333333")


def test_capped_fee_is_not_economical() -> None:
    result = compute_fee(rule(WRONG_NETWORK), D("10"), 6, D("1"))
    assert result.capped and result.eats_amount and result.not_economical
    assert result.below_min_value  # 10 USD < 50 USD


def test_fee_exactly_the_amount_eats_it() -> None:
    result = compute_fee(rule(WRONG_NETWORK), D("20"), 6, D("1"))
    assert not result.capped
    assert result.net == 0 and result.eats_amount


def test_value_under_min_value_is_not_economical_but_fee_fits() -> None:
    result = compute_fee(rule(WRONG_NETWORK), D("40"), 6, D("1"))
    assert result.fee == D(20) and result.net == D(20)
    assert result.below_min_value and not result.eats_amount and result.not_economical


def test_no_rule_means_free() -> None:
    result = compute_fee(None, D("12.5"), 6, D("1"))
    assert result.fee == 0 and result.net == D("12.5") and result.rule_index is None
    assert not result.not_economical


def test_no_price_percent_rule_is_undetermined() -> None:
    result = compute_fee(rule(WRONG_NETWORK), D("100"), 18, None)
    assert result.fee is None and result.net is None and result.fee_usd is None
    assert not result.determined and not result.not_economical
    assert any("manual valuation" in n for n in result.notes)


def test_no_price_flat_rule_knows_usd_but_not_asset_fee() -> None:
    result = compute_fee(rule(UNLISTED), D("100"), 18, None)
    assert result.fee_usd == D(80)
    assert result.fee is None


def test_zero_price_counts_as_no_price() -> None:
    result = compute_fee(rule(UNLISTED), D("100"), 18, D(0))
    assert result.price_usd is None and result.fee is None


def test_free_rule_without_price_is_zero() -> None:
    result = compute_fee(rule(FeeRule(category="uncredited_valid")), D("3"), 18, None)
    assert result.fee == 0 and result.net == D(3)


def test_amount_with_too_many_decimals_is_refused() -> None:
    with pytest.raises(ValueError, match="decimals"):
        compute_fee(None, D("1.1234567"), 6, D(1))


def test_negative_amount_is_refused() -> None:
    with pytest.raises(ValueError):
        compute_fee(None, D("-1"), 6, D(1))


def test_breakdown_json_round_trip() -> None:
    result = compute_fee(rule(WRONG_NETWORK, 9), D("0.1"), 18, D("3000"))
    data = result.to_json()
    assert data["fee"] == "0.006666666666666667"
    assert all(not isinstance(v, Decimal | float) for v in data.values())
    assert FeeBreakdown.from_json(data) == result


def test_units_conversion_is_exact_for_uint256() -> None:
    big = 2**256 - 1
    amount = units_to_amount(big, 18)
    assert format(amount, "f") == f"{str(big)[:-18]}.{str(big)[-18:]}"
    assert amount_to_units(amount, 18) == big


# --------------------------------------------------------------------------- matching


RULES = (
    FeeRule(category="wrong_network", network="bsc", asset="USDT", flat_usd=D(1)),
    FeeRule(category="wrong_network", network="bsc", flat_usd=D(2)),
    FeeRule(category="wrong_network", flat_usd=D(3)),
    FeeRule(category="*", flat_usd=D(9)),
    FeeRule(category="internal_transfer", network="polygon", flat_usd=D(5)),
)


@pytest.mark.parametrize(
    ("category", "network", "assets", "expected_index"),
    [
        ("wrong_network", "bsc", ["usdt"], 0),  # asset compares case-insensitively
        ("wrong_network", "bsc", ["BNB"], 1),
        ("wrong_network", "ethereum", ["USDT"], 2),
        ("unlisted_token", "ethereum", ["0xabc"], 3),  # catch-all
        ("uncredited_valid", "ethereum", ["ETH"], None),  # exchange's fault: catch-all does not charge
        ("internal_transfer", "ethereum", ["ETH"], None),
        ("internal_transfer", "polygon", ["POL"], 4),  # ... unless a rule names it
    ],
)
def test_match_rule_first_match(category: str, network: str, assets: list[str], expected_index: int | None) -> None:
    matched = match_rule(RULES, category, network, assets)
    assert (matched.index if matched else None) == expected_index


# --------------------------------------------------------------------------- properties

money = st.decimals(min_value=0, max_value=10**7, places=2, allow_nan=False, allow_infinity=False)
prices = st.builds(
    lambda mantissa, exponent: Decimal(mantissa).scaleb(exponent),
    st.integers(min_value=1, max_value=10**9),
    st.integers(min_value=-12, max_value=4),
)


@st.composite
def fee_rules(draw: st.DrawFn) -> FeeRule:
    min_usd = draw(money)
    max_usd = draw(st.none() | money.map(lambda m: m + min_usd))
    return FeeRule(
        category="wrong_network",
        flat_usd=draw(money),
        percent=draw(st.decimals(min_value=0, max_value=1, places=4)),
        free_below_usd=draw(money),
        min_usd=min_usd,
        max_usd=max_usd,
        min_value_usd=draw(money),
    )


@st.composite
def fee_cases(draw: st.DrawFn) -> tuple[FeeRule, int, int, Decimal]:
    decimals = draw(st.integers(min_value=0, max_value=36))
    units = draw(st.integers(min_value=0, max_value=10**40))
    return draw(fee_rules()), decimals, units, draw(prices)


def _exact_fee_units(fee_usd: Decimal, price: Decimal, decimals: int) -> int:
    quotient = Fraction(fee_usd) * 10**decimals / Fraction(price)
    return int(-(-quotient.numerator // quotient.denominator))


@settings(max_examples=400, deadline=None)
@given(fee_cases())
def test_fee_properties(case: tuple[FeeRule, int, int, Decimal]) -> None:
    fee_rule, decimals, units, price = case
    amount = units_to_amount(units, decimals)
    result = compute_fee(rule(fee_rule), amount, decimals, price)
    assert result.fee is not None and result.net is not None and result.fee_usd is not None
    # never negative, never above the amount, and the parts add up
    assert result.fee >= 0
    assert result.net >= 0
    assert result.fee <= amount
    with localcontext(exact_context()):  # the default 28-digit context would round a uint256 sum
        assert result.fee + result.net == amount
    # the fee sits on the asset's grid
    fee_units = amount_to_units(result.fee, decimals)
    # exact rounding: the smallest grid amount worth at least the USD fee, unless capped at the amount
    expected = _exact_fee_units(result.fee_usd, price, decimals)
    assert fee_units == min(expected, units)
    assert result.capped == (expected > units)
    if not result.capped:
        # rounded in the exchange's favour, by less than one base unit
        assert Fraction(result.fee) * Fraction(price) >= Fraction(result.fee_usd)
        if fee_units > 0:
            assert Fraction(fee_units - 1, 10**decimals) * Fraction(price) < Fraction(result.fee_usd)
    # the USD fee respects the clamp
    assert result.fee_usd >= fee_rule.min_usd
    if fee_rule.max_usd is not None:
        assert result.fee_usd <= fee_rule.max_usd


@settings(max_examples=300, deadline=None)
@given(fee_rules(), money, money)
def test_usd_fee_is_monotone_in_value(fee_rule: FeeRule, a: Decimal, b: Decimal) -> None:
    low, high = sorted((a, b))
    assert usd_fee(fee_rule, low)[1] <= usd_fee(fee_rule, high)[1]


@settings(max_examples=300, deadline=None)
@given(fee_cases(), st.integers(min_value=0, max_value=10**40))
def test_asset_fee_is_monotone_in_amount(case: tuple[FeeRule, int, int, Decimal], other_units: int) -> None:
    fee_rule, decimals, units, price = case
    low, high = sorted((units, other_units))
    fee_low = compute_fee(rule(fee_rule), units_to_amount(low, decimals), decimals, price).fee
    fee_high = compute_fee(rule(fee_rule), units_to_amount(high, decimals), decimals, price).fee
    assert fee_low is not None and fee_high is not None
    assert fee_low <= fee_high


@settings(max_examples=200, deadline=None)
@given(money, prices, st.integers(min_value=0, max_value=36))
def test_ceil_to_units_is_the_exact_ceiling(value: Decimal, price: Decimal, decimals: int) -> None:
    assume(value > 0)
    units = ceil_to_units(value, price, decimals)
    assert Fraction(units, 10**decimals) * Fraction(price) >= Fraction(value)
    assert Fraction(units - 1, 10**decimals) * Fraction(price) < Fraction(value)


@given(st.decimals(allow_nan=True, allow_infinity=True) | st.builds(
    lambda digits, exponent, negative: Decimal((negative, tuple(int(d) for d in str(digits)), exponent)),
    st.integers(0, 10**40), st.integers(-60, 30), st.integers(0, 1)))
@settings(max_examples=3000)
def test_the_plain_text_of_an_amount_is_the_f_format_exactly(value: Decimal) -> None:
    """``dec_text`` takes ``str`` where it has no exponent: the text stored and hashed must not change."""
    assert dec_text(value) == format(value, "f")
    if value.is_finite():
        assert decimal_text(value) == format(canonical_decimal(value), "f")


def test_the_exact_context_is_a_fresh_copy_each_time() -> None:
    first = exact_context()
    first.prec = 5  # a caller's change stays its own
    second = exact_context()
    assert second.prec == 400 and second is not first
    with localcontext(second), pytest.raises(Inexact):
        Decimal(1) / Decimal(3)
