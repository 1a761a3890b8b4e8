"""The case page's summary line and money figures (recovery.case_summary): pure, for every category,
resolution and the statuses a case goes through."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest

from recovery.case_summary import fee_rule_text, money_view, short, summary_line
from recovery.config import Config
from recovery.fees import compute_fee, match_rule
from recovery.models import Case
from recovery.valuation import Valuation
from recovery.vocabulary import CaseStatus, Category, Flag, Recoverable, Resolution

SENDER = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"
USER = "user-0019"


def fee_json(config: Config, category: str, network: str, asset: str, amount: str, decimals: int,
             price: str | None) -> dict[str, Any]:
    matched = match_rule(config.fees, category, network, [asset])
    return compute_fee(matched, Decimal(amount), decimals, Decimal(price) if price else None).to_json()


def make(config: Config, category: Category, *, recoverable: Recoverable = Recoverable.YES,
         resolution: Resolution = Resolution.CREDIT, status: CaseStatus = CaseStatus.IN_REVIEW,
         network: str = "ethereum", found: str | None = "ethereum", asset: str = "USDT", amount: str = "500",
         decimals: int = 6, price: str | None = "1", flags: tuple[Flag, ...] = (), proof: bool = False) -> Case:
    fee = fee_json(config, category.value, found or network, asset, amount, decimals, price) if found else None
    decision: dict[str, Any] = {
        "category": category.value, "recoverable": recoverable.value, "resolution": resolution.value,
        "network": found, "asset": asset, "amount": amount, "fee": fee,
        "transfers": [{"network": found, "tx_hash": "0x" + "ab" * 32, "index": 0, "sender": SENDER,
                       "recipient": "0x" + "cd" * 20, "amount": amount, "contract": None}] if found else [],
        "refund_address": SENDER if resolution is Resolution.REFUND else None,
        **({"ownership_proof": {"kinds": ["signed_message"]}} if proof else {}),
    }
    return Case(
        id=1, reference="RC-000001", user_id=USER, network=network, asset=asset, tx_hash="0x" + "ab" * 32,
        deposit_address="0x" + "cd" * 20, status=status.value, category=category.value,
        recoverable=recoverable.value, resolution=resolution.value, flags=[f.value for f in flags],
        decision=decision, amount=Decimal(amount) if found else None,
        value_usd=Decimal(fee["value_usd"]) if fee and fee["value_usd"] else None,
        fee_amount=Decimal(fee["fee"]) if fee and fee["fee"] else None,
        net_amount=Decimal(fee["net"]) if fee and fee["net"] else None,
        fee_usd=Decimal(fee["fee_value_usd"]) if fee and fee["fee_value_usd"] else None,
        credited_user_id=USER if resolution is Resolution.CREDIT else None,
        created_at=datetime(2026, 12, 1, tzinfo=UTC), updated_at=datetime(2026, 12, 1, tzinfo=UTC),
    )


def test_the_issue_s_example(default_config: Config) -> None:
    """2,275.09 USDT sent on Polygon to our Ethereum address: 5% above 100 USD = 108.7545, charged as
    108.7545 rounded up to USDT's 6 decimals; here the fee is written to the asset's decimals."""
    case = make(default_config, Category.WRONG_NETWORK, network="ethereum", found="polygon", amount="2275.09")
    assert case.fee_amount == Decimal("108.7545") and case.net_amount == Decimal("2166.3355")
    assert summary_line(case, default_config) == (
        "2,275.09 USDT sent on Polygon to our Ethereum address; recoverable; fee 108.7545; "
        "credit 2,166.3355 to user-0019 after approval")
    money = money_view(case, default_config)
    assert (money.payable, money.fee_state, money.fee, money.net, money.fee_usd) == (
        True, "set", "108.7545", "2,166.3355", "$108.75")


def test_an_expired_unrecoverable_case_shows_no_fee_and_no_net(default_config: Config) -> None:
    """The issue's missing-memo case: expired, not recoverable, but a fee and a net were shown."""
    case = make(default_config, Category.MISSING_MEMO, recoverable=Recoverable.NO, resolution=Resolution.NONE,
                network="xrpl", found="xrpl", asset="XRP", amount="1419.2426", decimals=6, price="2",
                flags=(Flag.EXPIRED,))
    assert case.fee_amount is not None and case.net_amount is not None  # the engine computed them...
    money = money_view(case, default_config)
    assert (money.payable, money.fee, money.net, money.fee_state) == (False, None, None, "none")
    assert money.note is not None and "expired" in money.note
    line = summary_line(case, default_config)
    assert line == "1,419.2426 XRP sent on XRP Ledger; not recoverable (expired); nothing to pay"
    assert "fee" not in line and "net" not in line


def test_an_unlisted_token_without_a_price_says_why_there_is_no_fee(default_config: Config) -> None:
    contract = "0x" + "5e" * 20
    case = make(default_config, Category.UNLISTED_TOKEN, recoverable=Recoverable.CONDITIONAL,
                resolution=Resolution.REFUND, asset=contract, amount="25", decimals=18, price=None)
    assert (case.fee_amount, case.value_usd) == (None, None)
    money = money_view(case, default_config)
    assert (money.payable, money.fee_state, money.fee, money.net) == (True, "undetermined", None, None)
    assert money.note is not None and "80 USD flat" in money.note and "set a valuation" in money.note
    assert summary_line(case, default_config) == (
        "25 0x5e5e…5e5e sent on Ethereum; recoverable once valued; fee not set: no USD price (80 USD flat (at most "
        "500 USD)); refund to 0xf39F…2266 after a valuation and approval")


def test_a_valued_unlisted_token_shows_the_valued_fee(default_config: Config) -> None:
    case = make(default_config, Category.UNLISTED_TOKEN, recoverable=Recoverable.CONDITIONAL,
                resolution=Resolution.REFUND, asset="PEPE", amount="5000", decimals=18, price=None)
    valued = compute_fee(match_rule(default_config.fees, "unlisted_token", "ethereum", ["PEPE"]), Decimal(5000), 18,
                         Decimal("0.1"))
    assert case.decision is not None
    case.decision["valuation"] = Valuation(Decimal("0.1"), "DEX", "thin", "sara", "2026-12-07T10:00:00+00:00",
                                           "unlisted_token", valued).to_json()
    case.fee_amount, case.net_amount, case.value_usd, case.fee_usd = valued.fee, valued.net, valued.value_usd, \
        valued.fee_value_usd
    money = money_view(case, default_config)
    assert (money.fee_state, money.fee, money.net, money.value_usd) == ("valued", "800", "4,200", "$500.00")
    assert money.note == "fee from a manual valuation: 0.1 USD per unit (DEX), set by sara"
    assert summary_line(case, default_config) == (
        "5,000 PEPE sent on Ethereum; recoverable if a person confirms it; fee 800 at a manual valuation; "
        "refund 4,200 to 0xf39F…2266 after approval")


@pytest.mark.parametrize(("status", "ending"), [
    (CaseStatus.IN_REVIEW, "credit 480 to user-0019 after approval"),
    (CaseStatus.NEEDS_INFO, "credit 480 to user-0019 after approval; waiting for the user's answer"),
    (CaseStatus.APPROVED, "credit 480 to user-0019 approved, to be booked"),
    (CaseStatus.CREDITED, "credited 480 to user-0019"),
    (CaseStatus.CLOSED, "closed"),
    (CaseStatus.REJECTED, "rejected"),
])
def test_a_credit_through_its_statuses(default_config: Config, status: CaseStatus, ending: str) -> None:
    case = make(default_config, Category.WRONG_NETWORK, found="bsc", amount="500", decimals=18, status=status)
    line = summary_line(case, default_config)
    assert line.startswith("500 USDT sent on BNB Smart Chain to our Ethereum address; recoverable; ")
    assert line.endswith(ending), line
    if status is CaseStatus.REJECTED:
        assert "fee" not in line and not money_view(case, default_config).payable


@pytest.mark.parametrize(("status", "ending"), [
    (CaseStatus.APPROVED, "refund 4,920 to 0xf39F…2266 approved, to be paid"),
    (CaseStatus.REFUND_PENDING, "refund of 4,920 to 0xf39F…2266 sent; proving it on chain"),
    (CaseStatus.REFUNDED, "refunded 4,920 to 0xf39F…2266"),
])
def test_a_refund_through_its_statuses(default_config: Config, status: CaseStatus, ending: str) -> None:
    case = make(default_config, Category.UNLISTED_TOKEN, resolution=Resolution.REFUND, asset="PEPE",
                amount="5000", decimals=18, price="1", status=status)
    assert summary_line(case, default_config).endswith(ending)


def test_cases_before_a_decision_and_without_a_payout(default_config: Config) -> None:
    waiting = make(default_config, Category.TX_NOT_FOUND, recoverable=Recoverable.NO, resolution=Resolution.NONE,
                   status=CaseStatus.AWAITING_CHAIN, found=None)
    assert summary_line(waiting, default_config) == (
        "Transaction of USDT on Ethereum not found on the chains yet; waiting for the chain check")
    confirming = make(default_config, Category.AWAITING_CONFIRMATIONS, recoverable=Recoverable.CONDITIONAL,
                      resolution=Resolution.NONE, status=CaseStatus.AWAITING_CHAIN)
    assert summary_line(confirming, default_config) == (
        "500 USDT sent on Ethereum; waiting for confirmations; not decided yet")
    failed = make(default_config, Category.TX_FAILED, recoverable=Recoverable.NO, resolution=Resolution.NONE)
    assert summary_line(failed, default_config) == (
        "Transaction failed on Ethereum: nothing was sent; not recoverable; nothing to pay")
    ours = make(default_config, Category.NOT_OUR_ADDRESS, recoverable=Recoverable.NO, resolution=Resolution.NONE)
    assert summary_line(ours, default_config) == (
        "500 USDT sent on Ethereum to an address that is not ours; not recoverable; nothing to pay")
    credited = make(default_config, Category.ALREADY_CREDITED, recoverable=Recoverable.NO,
                    resolution=Resolution.NONE)
    assert summary_line(credited, default_config) == "500 USDT sent on Ethereum; already credited; nothing to pay"
    fake = make(default_config, Category.COUNTERFEIT_TOKEN, recoverable=Recoverable.NO, resolution=Resolution.NONE,
                flags=(Flag.COUNTERFEIT,))
    assert summary_line(fake, default_config) == (
        "500 USDT of a counterfeit token imitating USDT sent on Ethereum; not recoverable; nothing to pay")
    assert "counterfeit" in (money_view(fake, default_config).note or "")
    free = make(default_config, Category.UNCREDITED_VALID)
    assert summary_line(free, default_config) == (
        "500 USDT sent on Ethereum; recoverable; no fee; credit 500 to user-0019 after approval")
    memo = make(default_config, Category.WRONG_MEMO, recoverable=Recoverable.CONDITIONAL, network="xrpl",
                found="xrpl", asset="XRP", amount="100", decimals=6, price="1", proof=True)
    assert summary_line(memo, default_config) == (
        "100 XRP sent on XRP Ledger; recoverable once the appellant proves they sent it; fee 40; "
        "credit 60 to user-0019 after approval")
    dust = make(default_config, Category.BELOW_MINIMUM, amount="0.5", price="1", flags=(Flag.NOT_ECONOMICAL,),
                recoverable=Recoverable.NO, resolution=Resolution.NONE)
    assert summary_line(dust, default_config) == "0.5 USDT sent on Ethereum; not recoverable (not economical); " \
                                                 "nothing to pay"
    assert "not economical" in (money_view(dust, default_config).note or "")


@pytest.mark.parametrize("category", list(Category))
@pytest.mark.parametrize("resolution", list(Resolution))
@pytest.mark.parametrize("recoverable", list(Recoverable))
def test_every_category_and_resolution_has_a_line_that_never_shows_money_that_is_not_paid(
    default_config: Config, category: Category, resolution: Resolution, recoverable: Recoverable
) -> None:
    case = make(default_config, category, resolution=resolution, recoverable=recoverable)
    line = summary_line(case, default_config)
    money = money_view(case, default_config)
    assert line and "None" not in line and "\n" not in line
    paying = resolution in (Resolution.CREDIT, Resolution.REFUND) and recoverable is not Recoverable.NO
    assert money.payable is paying
    if not paying:
        assert (money.fee, money.net) == (None, None) and money.note
        assert "fee " not in line and " net " not in line
    else:
        assert money.fee is not None and money.net is not None


def test_the_fee_rule_in_words_and_short_forms(default_config: Config) -> None:
    wrong = fee_json(default_config, "wrong_network", "bsc", "USDT", "10", 18, "1")
    assert fee_rule_text(wrong) == "5% of the value above 100 USD (at least 20 USD, at most 500 USD)"
    assert fee_rule_text(fee_json(default_config, "tx_failed", "bsc", "USDT", "10", 18, "1")) == "no charge"
    assert fee_rule_text(None) is None
    assert short(SENDER) == "0xf39F…2266" and short("RC-1") == "RC-1" and short(None) == "-"
