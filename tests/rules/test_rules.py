"""Table-driven tests of every category and flag, from Observation objects (no chain needed).

The anvil-backed scenarios (real transactions, real adapter) live in test_scenarios_anvil.py.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Context, Decimal

import pytest

from chains.base import Observation, TxStatus, not_found
from recovery.config import Config
from recovery.registry import CreditedDeposit, DepositAddress, InMemoryRegistry
from recovery.rules import (
    _BASE_OUTCOME,
    RULES_VERSION,
    Appeal,
    Decision,
    classify,
    imitated_asset,
    user_reasons,
    user_view,
)
from recovery.vocabulary import (
    CATEGORY_ORDER,
    PAYOUT_FLAGS,
    USER_VISIBLE_FLAGS,
    Category,
    Flag,
    Recoverable,
    Resolution,
)
from tests.rules import (
    CONFIG,
    FAKE_TOKEN,
    NOW,
    PEPE,
    SENDER,
    STRANGER,
    TX,
    contract_of,
    evm_address,
    evm_lookups,
    native,
    seen,
    token,
    with_asset,
    with_network,
)

D = Decimal
C = Category
R = Recoverable
S = Resolution
F = Flag

ALICE = evm_address("alice")
BOB = evm_address("bob")
CAROL_CONTRACT = evm_address("carol-forwarder")
HOT_WALLET = evm_address("exchange-hot-wallet")
SHARED_XRP = "rExchangeSharedDepositAddressXRP1"
SHARED_XLM = "G" + "EXCHANGESHAREDXLM" * 3 + "ABCD"
ETH_USDT = contract_of("ethereum", "USDT")
BSC_USDT = contract_of("bsc", "USDT")
ARB_USDT = contract_of("arbitrum", "USDT")
USDT6 = 10**6
WEI = 10**18


def books(*credits: CreditedDeposit, without_user: str | None = None) -> InMemoryRegistry:
    """The exchange's deposit addresses (and any credits); ``without_user``: as if that user held none."""
    rows = [
        # alice's EVM address was issued for ethereum only; stored lower-case on purpose
        DepositAddress("alice", "ethereum", ALICE.lower(), None, "eoa"),
        DepositAddress("bob", "ethereum", BOB, None, "eoa"),
        DepositAddress("carol", "ethereum", CAROL_CONTRACT, None, "contract"),
        DepositAddress("alice", "xrpl", SHARED_XRP, "1001", "eoa"),
        DepositAddress("bob", "xrpl", SHARED_XRP, "2002", "eoa"),
        DepositAddress("alice", "stellar", SHARED_XLM, "7", "eoa"),
        # an exchange wallet: imported with kind wallet and no user
        DepositAddress("", "ethereum", HOT_WALLET, None, "eoa"),
    ]
    return InMemoryRegistry(addresses=[r for r in rows if r.user_id != without_user], credited=credits)


def appeal(**changes: object) -> Appeal:
    base: dict[str, object] = {
        "user_id": "alice",
        "network": "ethereum",
        "tx_hash": TX,
        "asset": "USDT",
        "deposit_address": ALICE,
        "submitted_at": NOW,
    }
    base.update(changes)
    return Appeal(**base)  # type: ignore[arg-type]


def xrp_appeal(**changes: object) -> Appeal:
    return appeal(network="xrpl", asset="XRP", deposit_address=SHARED_XRP, **changes)


@dataclass
class Scenario:
    id: str
    observations: dict[str, Observation]
    category: Category
    recoverable: Recoverable
    resolution: Resolution
    flags: frozenset[Flag] = frozenset()
    appeal: Appeal = field(default_factory=appeal)
    registry: InMemoryRegistry = field(default_factory=books)
    config: Config = CONFIG
    prices: dict[tuple[str, str], Decimal] | None = None
    #: expected fee and net in asset units; "-" = no fee breakdown, None = fee undetermined
    fee: str | None = "-"
    net: str | None = "-"
    amount: str | None = "-"
    credited_user: str | None = "-"
    also: tuple[Category, ...] | None = None
    reasons: frozenset[str] = frozenset()


def usdt_to(address: str, amount: int = 100, **kw: object) -> dict[str, Observation]:
    return evm_lookups(seen("ethereum", token(ETH_USDT, address, amount * USDT6), **kw))  # type: ignore[arg-type]


SCENARIOS = [
    # ------------------------------------------------------------------ uncredited_valid
    Scenario(
        "uncredited_valid_usdt",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        fee="0", net="100", amount="100", credited_user="alice", also=(),
        reasons=frozenset({"found", "transfer", "uncredited_valid", "fee"}),
    ),
    Scenario(
        "uncredited_valid_native_eth",
        evm_lookups(seen("ethereum", native(ALICE, WEI // 2))),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        appeal=appeal(asset="ETH"), fee="0", net="0.5", amount="0.5", credited_user="alice",
    ),
    # ------------------------------------------------------------------ tx_not_found
    Scenario(
        "tx_not_found_anywhere",
        evm_lookups(None),
        C.TX_NOT_FOUND, R.NO, S.NONE,
        amount=None, credited_user=None, reasons=frozenset({"tx_not_found"}),
    ),
    Scenario(
        "tx_not_found_only_claimed_checked",
        {"ethereum": not_found("ethereum", TX)},
        C.TX_NOT_FOUND, R.NO, S.NONE,
        reasons=frozenset({"tx_not_found", "not_checked"}),
    ),
    # ------------------------------------------------------------------ awaiting_confirmations
    Scenario(
        "awaiting_confirmations",
        usdt_to(ALICE, confirmations=3),
        C.AWAITING_CONFIRMATIONS, R.CONDITIONAL, S.NONE,
        amount="100", credited_user=None, also=(), reasons=frozenset({"awaiting_confirmations"}),
    ),
    Scenario(
        "awaiting_pending_in_mempool",
        evm_lookups(seen("ethereum", confirmations=0, status=TxStatus.PENDING)),
        C.AWAITING_CONFIRMATIONS, R.CONDITIONAL, S.NONE, also=(),
    ),
    Scenario(
        "awaiting_beats_failed",
        evm_lookups(seen("ethereum", token(ETH_USDT, ALICE, USDT6), status=TxStatus.FAILED, confirmations=2)),
        C.AWAITING_CONFIRMATIONS, R.CONDITIONAL, S.NONE, also=(C.TX_FAILED,),
    ),
    Scenario(
        # an unconfirmed transaction its sender can still replace (Bitcoin RBF): flagged, never paid
        "awaiting_replaceable",
        evm_lookups(
            seen("ethereum", token(ETH_USDT, ALICE, USDT6), status=TxStatus.PENDING, confirmations=0,
                 details={"replaceable": True})
        ),
        C.AWAITING_CONFIRMATIONS, R.CONDITIONAL, S.NONE, flags=frozenset({F.REPLACEABLE}),
        credited_user=None, reasons=frozenset({"awaiting_confirmations", "replaceable"}),
    ),
    # ------------------------------------------------------------------ unrecognised chain data
    Scenario(
        # the adapter could not read part of the answer: a person reads it, nothing is paid on it
        "unclear_transaction_is_never_paid",
        usdt_to(ALICE, status=TxStatus.UNCLEAR,
                details={"unrecognised": ["ret[0].contractRet is 'NEW_CODE', which TRON does not document"],
                         "raw": {"ret": [{"contractRet": "NEW_CODE"}]}}),
        C.UNCREDITED_VALID, R.CONDITIONAL, S.NONE, flags=frozenset({F.UNRECOGNISED_CHAIN_DATA}),
        credited_user=None, reasons=frozenset({"unrecognised_chain_data", "unrecognised_chain_data_detail"}),
    ),
    Scenario(
        # unclear beats a refund too: no payout of any kind follows from unread data
        "unclear_unlisted_token_is_not_refunded",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 10**18, symbol="PEPE", decimals=18),
                         status=TxStatus.UNCLEAR, details={"unrecognised": ["log 3 has an unknown topic"]})),
        C.UNLISTED_TOKEN, R.CONDITIONAL, S.NONE, flags=frozenset({F.UNRECOGNISED_CHAIN_DATA}),
        appeal=appeal(asset="PEPE"), credited_user=None,
    ),
    # ------------------------------------------------------------------ tx_failed
    Scenario(
        "tx_failed",
        evm_lookups(seen("ethereum", status=TxStatus.FAILED)),
        C.TX_FAILED, R.NO, S.NONE, amount=None, reasons=frozenset({"tx_failed"}),
    ),
    # ------------------------------------------------------------------ not_our_address
    Scenario(
        "not_our_address",
        usdt_to(STRANGER),
        C.NOT_OUR_ADDRESS, R.NO, S.NONE,
        amount=None, credited_user=None, reasons=frozenset({"not_our_address", "address_claim_differs"}),
    ),
    Scenario(
        "not_our_address_no_transfer",
        evm_lookups(seen("ethereum")),
        C.NOT_OUR_ADDRESS, R.NO, S.NONE,
    ),
    # ------------------------------------------------------------------ already_credited
    Scenario(
        "already_credited",
        usdt_to(ALICE),
        C.ALREADY_CREDITED, R.NO, S.NONE,
        registry=books(CreditedDeposit("ethereum", TX.upper().replace("0X", "0x"), "alice", "USDT", D(100))),
        fee="0", net="100", credited_user=None, reasons=frozenset({"already_credited"}),
    ),
    Scenario(
        "already_credited_to_another_user",
        usdt_to(ALICE),
        C.ALREADY_CREDITED, R.NO, S.NONE, frozenset({F.CREDITED_TO_OTHER_USER}),
        registry=books(CreditedDeposit("ethereum", TX, "mallory", "usdt", D(100))),
    ),
    Scenario(
        "already_credited_beats_wrong_network",
        evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 200 * WEI))),
        C.ALREADY_CREDITED, R.NO, S.NONE,
        registry=books(CreditedDeposit("bsc", TX, "alice", "USDT", D(200))),
        also=(C.WRONG_NETWORK,),
    ),
    Scenario(
        "credit_of_another_transaction_does_not_count",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        registry=books(CreditedDeposit("ethereum", "0x" + "ef" * 32, "alice", "USDT", D(100))),
    ),
    # ------------------------------------------------------------------ counterfeit_token
    Scenario(
        "counterfeit_usdt",
        evm_lookups(seen("ethereum", token(FAKE_TOKEN, ALICE, 5000 * USDT6, symbol="USDT", decimals=6))),
        C.COUNTERFEIT_TOKEN, R.NO, S.NONE, frozenset({F.COUNTERFEIT}),
        also=(C.UNLISTED_TOKEN,), credited_user=None, reasons=frozenset({"counterfeit_token"}),
    ),
    Scenario(
        "counterfeit_beats_wrong_network",
        evm_lookups(seen("bsc", token(FAKE_TOKEN, ALICE, 5000 * WEI, symbol="USDT", decimals=18))),
        C.COUNTERFEIT_TOKEN, R.NO, S.NONE, frozenset({F.COUNTERFEIT}),
        also=(C.WRONG_NETWORK, C.UNLISTED_TOKEN),
    ),
    # ------------------------------------------------------------------ wrong_network
    Scenario(
        "wrong_network_direct_eoa",
        evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 200 * WEI))),
        C.WRONG_NETWORK, R.YES, S.CREDIT,
        fee="20", net="180", amount="200", credited_user="alice", also=(),
        reasons=frozenset({"found_elsewhere", "wrong_network", "fee"}),
    ),
    Scenario(
        "wrong_network_claimed_on_landing_network",
        evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 1000 * WEI))),
        C.WRONG_NETWORK, R.YES, S.CREDIT,
        appeal=appeal(network="bsc"), fee="45", net="955",  # 5% of (1000 - 100)
        reasons=frozenset({"found", "wrong_network"}),
    ),
    Scenario(
        "wrong_network_conditional_network",
        evm_lookups(seen("arbitrum", token(ARB_USDT, ALICE, 200 * USDT6))),
        C.WRONG_NETWORK, R.CONDITIONAL, S.CREDIT, fee="20", net="180", credited_user="alice",
    ),
    Scenario(
        "wrong_network_contract_address",
        evm_lookups(seen("bsc", token(BSC_USDT, CAROL_CONTRACT, 200 * WEI))),
        # carol's address: to alice it reads like an address that is not ours (issue 18)
        C.NOT_OUR_ADDRESS, R.NO, S.NONE, frozenset({F.OTHER_USERS_ADDRESS}),
        credited_user=None, reasons=frozenset({"not_our_address", "other_users_address"}),
    ),
    Scenario(
        "wrong_network_contract_address_own",
        evm_lookups(seen("bsc", token(BSC_USDT, CAROL_CONTRACT, 200 * WEI))),
        C.WRONG_NETWORK, R.NO, S.NONE,
        appeal=appeal(user_id="carol", deposit_address=CAROL_CONTRACT),
    ),
    Scenario(
        "wrong_network_recovery_none",
        evm_lookups(seen("polygon", token(contract_of("polygon", "USDT"), ALICE, 200 * USDT6))),
        C.WRONG_NETWORK, R.NO, S.NONE,
        config=with_network(CONFIG, "polygon", recovery="none"),
    ),
    Scenario(
        "wrong_network_expired",
        evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 200 * WEI), age_days=200)),
        C.WRONG_NETWORK, R.NO, S.NONE, frozenset({F.EXPIRED}), reasons=frozenset({"expired"}),
    ),
    Scenario(
        "wrong_network_not_economical",
        evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 30 * WEI))),
        C.WRONG_NETWORK, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}),
        fee="20", net="10", reasons=frozenset({"not_economical"}),
    ),
    Scenario(
        "wrong_network_of_unlisted_token_is_a_refund",
        evm_lookups(seen("bsc", token(PEPE, ALICE, 1000 * WEI, symbol="PEPE", decimals=18))),
        C.WRONG_NETWORK, R.CONDITIONAL, S.REFUND,
        also=(C.UNLISTED_TOKEN,), fee=None, net=None, reasons=frozenset({"no_price"}),
    ),
    # ------------------------------------------------------------------ unlisted_token
    Scenario(
        "unlisted_token_no_price",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 1000 * WEI, symbol="PEPE", decimals=18))),
        C.UNLISTED_TOKEN, R.CONDITIONAL, S.REFUND,
        appeal=appeal(asset="PEPE"), fee=None, net=None, amount="1000",
        reasons=frozenset({"unlisted_token", "no_price"}),
    ),
    Scenario(
        "unlisted_token_priced",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 1000 * WEI, symbol="PEPE", decimals=18))),
        C.UNLISTED_TOKEN, R.YES, S.REFUND,
        prices={("ethereum", PEPE.lower()): D("0.5")}, fee="160", net="840",  # 80 USD at 0.5
    ),
    Scenario(
        "unlisted_token_not_worth_it",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 1000 * WEI, symbol="PEPE", decimals=18))),
        C.UNLISTED_TOKEN, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}),
        prices={("ethereum", PEPE): D("0.01")},  # 10 USD < 100 USD minimum; the 80 USD fee eats it
    ),
    Scenario(
        "unlisted_token_decimals_unknown",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 1000 * WEI, symbol="PEPE"))),
        C.UNLISTED_TOKEN, R.CONDITIONAL, S.REFUND,
        amount=None, reasons=frozenset({"decimals_unknown"}),
    ),
    Scenario(
        "unlisted_lookalike_suffix_is_not_counterfeit",
        evm_lookups(seen("ethereum", token(PEPE, ALICE, 1000 * USDT6, symbol="USDT0", decimals=6))),
        C.UNLISTED_TOKEN, R.CONDITIONAL, S.REFUND,
    ),
    # ------------------------------------------------------------------ memos
    Scenario(
        "missing_memo",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6, sender="rSender"))},
        C.MISSING_MEMO, R.CONDITIONAL, S.CREDIT,
        appeal=xrp_appeal(), fee="20", net="80", amount="100", credited_user="alice",  # 40 USD at 2 USD
        reasons=frozenset({"missing_memo"}),
    ),
    Scenario(
        "wrong_memo_unknown",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="99999")},
        C.WRONG_MEMO, R.CONDITIONAL, S.CREDIT, appeal=xrp_appeal(), fee="20", credited_user="alice",
        reasons=frozenset({"wrong_memo", "memo_unmatched"}),
    ),
    Scenario(
        "wrong_memo_with_space",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="10 01")},
        C.WRONG_MEMO, R.CONDITIONAL, S.CREDIT, appeal=xrp_appeal(), reasons=frozenset({"memo_malformed"}),
    ),
    Scenario(
        "wrong_memo_with_letters",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6, memo="1001a"))},
        C.WRONG_MEMO, R.CONDITIONAL, S.CREDIT, appeal=xrp_appeal(), reasons=frozenset({"memo_malformed"}),
    ),
    Scenario(
        "wrong_memo_of_another_user",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="2002")},
        # bob's memo: alice is credited only once she proves she sent it (bob's own appeal needs no proof)
        C.WRONG_MEMO, R.CONDITIONAL, S.CREDIT,
        appeal=xrp_appeal(), credited_user="alice",
        reasons=frozenset({"wrong_memo", "memo_other_user", "memo_owner", "ownership_proof"}),
    ),
    Scenario(
        "wrong_memo_of_another_user_credited_to_them",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="2002")},
        # already credited to bob: still a wrong memo that needs alice's proof (and a freeze on bob)
        C.WRONG_MEMO, R.CONDITIONAL, S.CREDIT, frozenset({F.CREDITED_TO_OTHER_USER}),
        registry=books(CreditedDeposit("xrpl", TX, "bob", "XRP", D(100))),
        appeal=xrp_appeal(), credited_user="alice",
        reasons=frozenset({"wrong_memo", "memo_other_user", "credited_to_other_user", "ownership_proof"}),
    ),
    # ------------------------------------------------------------------ unattributed_deposit
    Scenario(
        "unattributed_deposit_to_an_exchange_wallet",
        usdt_to(HOT_WALLET),
        C.UNATTRIBUTED_DEPOSIT, R.CONDITIONAL, S.CREDIT, credited_user="alice",
        reasons=frozenset({"unattributed_deposit", "ownership_proof"}),
    ),
    Scenario(
        "unattributed_deposit_nobody_appealed_is_refunded",
        usdt_to(HOT_WALLET),
        C.UNATTRIBUTED_DEPOSIT, R.CONDITIONAL, S.REFUND, appeal=appeal(user_id=f"shared:ethereum:{HOT_WALLET}"),
        credited_user=None, reasons=frozenset({"unattributed_deposit"}),
    ),
    Scenario(
        "memo_on_transaction_is_right",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="1001")},
        C.UNCREDITED_VALID, R.YES, S.CREDIT, appeal=xrp_appeal(), fee="0", credited_user="alice",
    ),
    Scenario(
        "memo_on_transfer_is_right",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6, memo="1001"), memo=None)},
        C.UNCREDITED_VALID, R.YES, S.CREDIT, appeal=xrp_appeal(), credited_user="alice",
    ),
    Scenario(
        "memo_owner_appealing_is_valid",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="2002")},
        C.UNCREDITED_VALID, R.YES, S.CREDIT, appeal=xrp_appeal(user_id="bob"), credited_user="bob",
    ),
    Scenario(
        "memo_id_compares_by_value",
        {"stellar": seen("stellar", native(SHARED_XLM, 100 * 10**7), memo="007")},
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        appeal=appeal(network="stellar", asset="XLM", deposit_address=SHARED_XLM), credited_user="alice",
    ),
    # ------------------------------------------------------------------ deposit_suspended
    Scenario(
        "deposit_suspended_asset",
        usdt_to(ALICE),
        C.DEPOSIT_SUSPENDED, R.CONDITIONAL, S.CREDIT,
        config=with_asset(CONFIG, "ethereum", "USDT", deposits_enabled=False), fee="0", credited_user="alice",
        reasons=frozenset({"deposit_suspended"}),
    ),
    Scenario(
        "deposit_suspended_network",
        usdt_to(ALICE),
        C.DEPOSIT_SUSPENDED, R.CONDITIONAL, S.CREDIT,
        config=with_network(CONFIG, "ethereum", deposits_enabled=False),
    ),
    # ------------------------------------------------------------------ below_minimum
    Scenario(
        "below_minimum_eth",
        evm_lookups(seen("ethereum", native(ALICE, 5 * 10**14))),  # 0.0005 ETH, minimum 0.001
        C.BELOW_MINIMUM, R.YES, S.CREDIT,
        appeal=appeal(asset="ETH"),
        fee="0.000333333333333334", net="0.000166666666666666", amount="0.0005", credited_user="alice",
        reasons=frozenset({"below_minimum"}),
    ),
    Scenario(
        "below_minimum_fee_eats_it",
        evm_lookups(seen("ethereum", token(ETH_USDT, ALICE, USDT6 // 2))),
        C.BELOW_MINIMUM, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}), fee="0.5", net="0",
    ),
    # ------------------------------------------------------------------ internal_transfer
    Scenario(
        "internal_transfer",
        evm_lookups(seen("ethereum", native(ALICE, 2 * WEI, internal=True))),
        C.INTERNAL_TRANSFER, R.YES, S.CREDIT,
        appeal=appeal(asset="ETH"), fee="0", net="2", credited_user="alice", also=(),
        reasons=frozenset({"internal_transfer"}),
    ),
    # ------------------------------------------------------------------ flags
    Scenario(
        "contested",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT, frozenset({F.CONTESTED}),
        appeal=appeal(other_appellants=frozenset({"alice", "mallory"})), reasons=frozenset({"contested"}),
    ),
    Scenario(
        "own_id_in_appellants_is_not_contested",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        appeal=appeal(other_appellants=frozenset({"alice"})),
    ),
    Scenario(
        "amount_mismatch",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT, frozenset({F.AMOUNT_MISMATCH}),
        appeal=appeal(claimed_amount=D("150")), amount="100", reasons=frozenset({"amount_mismatch"}),
    ),
    Scenario(
        "claimed_amount_with_trailing_zeros_matches",
        usdt_to(ALICE),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        appeal=appeal(claimed_amount=D("100.000")),
    ),
    Scenario(
        "partial_payment",
        {"xrpl": seen("xrpl", native(SHARED_XRP, 60 * USDT6), memo="1001", details={"partial_payment": True})},
        C.UNCREDITED_VALID, R.YES, S.CREDIT, frozenset({F.PARTIAL_PAYMENT, F.AMOUNT_MISMATCH}),
        appeal=xrp_appeal(claimed_amount=D(100)), amount="60", reasons=frozenset({"partial_payment"}),
    ),
    Scenario(
        "other_users_address",
        usdt_to(BOB),
        # bob's own deposit address: to alice it reads like an address that is not ours; bob is
        # credited through his own case
        C.NOT_OUR_ADDRESS, R.NO, S.NONE, frozenset({F.OTHER_USERS_ADDRESS}),
        credited_user=None, reasons=frozenset({"not_our_address", "other_users_address"}),
    ),
    # ------------------------------------------------------------------ several transfers in one transaction
    Scenario(
        "multi_transfer_picks_the_appellants",
        evm_lookups(
            seen("ethereum", token(ETH_USDT, BOB, 7 * USDT6, index=0), native(ALICE, WEI, index=1),
                 token(ETH_USDT, STRANGER, 9 * USDT6, index=2))
        ),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        appeal=appeal(asset="ETH"), amount="1", credited_user="alice", reasons=frozenset({"other_transfers"}),
    ),
    Scenario(
        "real_usdt_beside_a_counterfeit_is_chosen",  # the listed USDT, not the first thing calling itself USDT
        evm_lookups(
            seen("ethereum", token(FAKE_TOKEN, ALICE, 100 * USDT6, index=0, symbol="USDT", decimals=6),
                 token(ETH_USDT, ALICE, 100 * USDT6, index=1))
        ),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        amount="100", credited_user="alice", reasons=frozenset({"other_transfers"}),
    ),
    Scenario(
        "multi_transfer_same_asset_is_summed",
        evm_lookups(
            seen("ethereum", token(ETH_USDT, ALICE, 40 * USDT6, index=3), token(ETH_USDT, ALICE, 60 * USDT6, index=5))
        ),
        C.UNCREDITED_VALID, R.YES, S.CREDIT, amount="100",
    ),
]


def run(s: Scenario) -> Decision:
    return classify(s.appeal, s.observations, s.registry, s.config, NOW, prices=s.prices)


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(s: Scenario) -> None:
    d = run(s)
    assert (d.category, d.recoverable, d.resolution) == (s.category, s.recoverable, s.resolution)
    assert set(d.flags) == set(s.flags)
    if s.also is not None:
        assert d.also == s.also
    if s.amount != "-":
        assert d.amount == (D(s.amount) if s.amount is not None else None)
    if s.fee != "-":
        assert d.fee is not None
        assert d.fee.fee == (D(s.fee) if s.fee is not None else None)
    if s.net != "-":
        assert d.fee is not None
        assert d.fee.net == (D(s.net) if s.net is not None else None)
    if s.credited_user != "-":
        assert d.credited_user_id == s.credited_user
    codes = {r.code for r in d.reasons}
    assert s.reasons <= codes, f"missing reasons {s.reasons - codes}: {[r.text for r in d.reasons]}"
    if d.resolution is not S.CREDIT:
        assert d.credited_user_id is None
    if d.recoverable is R.NO:
        assert d.resolution is S.NONE


def test_every_category_and_flag_is_covered() -> None:
    categories = {s.category for s in SCENARIOS}
    flags = {f for s in SCENARIOS for f in s.flags}
    assert categories == set(Category)
    assert flags == set(Flag) - PAYOUT_FLAGS  # those come from the refund proof, not the rules


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_decision_json_round_trip(s: Scenario) -> None:
    d = run(s)
    data = d.to_json()
    text = json.dumps(data)  # only JSON types inside
    assert Decision.from_json(json.loads(text)) == d
    assert data["rules_version"] == f"{RULES_VERSION}+{CONFIG.digest[:12]}"
    if d.amount is not None:
        assert data["amount"] == format(d.amount, "f")


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_reasons_are_readable_sentences(s: Scenario) -> None:
    d = run(s)
    assert d.reasons
    for reason in d.reasons:
        assert reason.text[0].isupper() or reason.text[0].isdigit(), reason.text
        assert reason.text.endswith("."), reason.text
        assert len(reason.text) < 400, reason.text
        prose = re.sub(r"\b0x[0-9a-fA-F]+\b", "<hex>", reason.text)  # addresses and hashes are not numbers
        assert not re.search(r"\bNone\b|[{}]|Decimal\(|\d[eE][+-]?\d|\d\.\d*0\b", prose), reason.text
        json.dumps(reason.evidence)
    assert_reasons_match_the_verdict(d)


def assert_reasons_match_the_verdict(d: Decision) -> None:
    """No sentence promises what the decision does not give."""
    texts = [r.text for r in d.reasons]
    if d.recoverable is not R.YES:
        assert not any("can be recovered" in t for t in texts), texts
    if d.recoverable is R.NO and F.NOT_ECONOMICAL not in d.flags:
        assert not any(re.search(r"\bnet \d", t) for t in texts), texts  # no net amount for nothing recovered
    assert not any("no charge, so nothing is charged" in t for t in texts), texts


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_user_view_hides_other_users(s: Scenario) -> None:
    d = run(s)
    view = user_view(d)
    text = json.dumps(view)
    for other in ("bob", "mallory", "carol"):
        if other != s.appeal.user_id:
            assert other not in text
    assert set(view["flags"]) <= {f.value for f in USER_VISIBLE_FLAGS}
    assert all("internal" not in r for r in user_reasons(d))


def test_another_customers_address_reads_to_the_appellant_like_an_address_not_ours() -> None:
    """Issue 18: an appeal by anyone who copied a hash must not learn that the receiving address is
    another customer's: the user view is the same as when the address is nobody's here."""
    s = next(s for s in SCENARIOS if s.id == "other_users_address")
    at_bob = run(s)
    not_ours = classify(s.appeal, s.observations, books(without_user="bob"), s.config, NOW)
    assert not_ours.category is C.NOT_OUR_ADDRESS
    assert user_view(at_bob) == user_view(not_ours)
    assert "your account" in " ".join(r["text"] for r in user_reasons(at_bob))
    assert at_bob.credited_user_id is None and at_bob.ownership_proof is None
    internal = [r for r in at_bob.reasons if r.internal]
    assert any(r.evidence.get("owner_user_ids") == ["bob"] for r in internal)
    # bob's own appeal of the same transfer is credited to him, with no proof asked
    own = classify(appeal(user_id="bob", deposit_address=BOB), s.observations, s.registry, s.config, NOW)
    assert (own.category, own.credited_user_id, own.ownership_proof) == (C.UNCREDITED_VALID, "bob", None)


def test_a_transfer_to_the_appellant_is_chosen_over_one_to_another_customer() -> None:
    """An appeal that names another customer's address, for a transaction that also pays the
    appellant's own, is about the appellant's transfer."""
    obs = evm_lookups(seen("ethereum", token(ETH_USDT, BOB, 50 * USDT6), token(ETH_USDT, ALICE, 70 * USDT6)))
    d = classify(appeal(deposit_address=BOB), obs, books(), CONFIG, NOW)
    assert (d.category, d.credited_user_id, d.amount) == (C.UNCREDITED_VALID, "alice", D(70))


def test_counterfeit_reason_warns_of_the_scam() -> None:
    d = run(next(s for s in SCENARIOS if s.id == "counterfeit_usdt"))
    reason = next(r for r in d.reasons if r.code == "counterfeit_token")
    assert "scam" in reason.text and ETH_USDT in reason.text
    assert reason.evidence["imitates"] == "USDT"
    assert d.refund_address is None


def test_unlisted_token_refund_goes_to_the_sender() -> None:
    d = run(next(s for s in SCENARIOS if s.id == "unlisted_token_priced"))
    assert d.refund_address == SENDER
    assert d.value_usd == D(500)
    assert d.fee is not None and d.fee.fee_usd == D(80) and d.fee.fee_value_usd == D(80)


def test_fee_breakdown_names_the_rule() -> None:
    d = run(next(s for s in SCENARIOS if s.id == "wrong_network_direct_eoa"))
    assert d.fee is not None
    rule = CONFIG.fees[d.fee.rule_index or 0]
    assert (rule.category, d.fee.rule_category, d.fee.rule_network) == ("wrong_network", "wrong_network", "*")
    assert d.fee.percent_term_usd == D(5) and d.fee.fee_usd == D(20) and d.fee.value_usd == D(200)
    fee_reason = next(r for r in d.reasons if r.code == "fee")
    assert "5%" in fee_reason.text and "at least 20 USD" in fee_reason.text and "net 180 USDT" in fee_reason.text


def test_wrong_network_reason_names_both_networks() -> None:
    d = run(next(s for s in SCENARIOS if s.id == "wrong_network_direct_eoa"))
    reason = next(r for r in d.reasons if r.code == "wrong_network")
    assert reason.evidence["landed_on"] == "bsc" and reason.evidence["issued_for"] == ["ethereum"]
    assert d.network == "bsc" and d.claimed_network == "ethereum"
    assert [t.index for t in d.transfers] == [0] and d.transfers[0].issued_for == ("ethereum",)


def test_multi_transfer_reports_the_transfers_it_is_about() -> None:
    d = run(next(s for s in SCENARIOS if s.id == "multi_transfer_same_asset_is_summed"))
    assert [t.index for t in d.transfers] == [3, 5]
    assert [t.amount for t in d.transfers] == [D(40), D(60)]


def test_found_on_another_network_than_claimed_uses_that_network() -> None:
    obs = evm_lookups(seen("polygon", token(contract_of("polygon", "USDT"), ALICE, 200 * USDT6)))
    d = classify(appeal(), obs, books(), CONFIG, NOW)
    assert d.network == "polygon"
    assert {r.code for r in d.reasons} >= {"found_elsewhere", "wrong_network"}


def test_observations_of_other_families_are_ignored() -> None:
    obs = {"ethereum": not_found("ethereum", TX), "xrpl": seen("xrpl", native(SHARED_XRP, USDT6), memo="1001")}
    d = classify(appeal(), obs, books(), CONFIG, NOW)
    assert d.category is C.TX_NOT_FOUND


def test_expiry_counts_from_the_appeal_date() -> None:
    """A deposit 170 days old when appealed is not expired, even if decided 20 days later."""
    from datetime import timedelta

    obs = evm_lookups(seen("bsc", token(BSC_USDT, ALICE, 200 * WEI), age_days=190))
    on_time = classify(appeal(submitted_at=NOW - timedelta(days=20)), obs, books(), CONFIG, NOW)
    assert Flag.EXPIRED not in on_time.flags and on_time.recoverable is R.YES
    late = classify(appeal(submitted_at=None), obs, books(), CONFIG, NOW)
    assert Flag.EXPIRED in late.flags and late.recoverable is R.NO


def test_naive_now_is_refused() -> None:
    with pytest.raises(ValueError, match="timezone"):
        classify(appeal(), usdt_to(ALICE), books(), CONFIG, datetime(2026, 1, 1))  # noqa: DTZ001


def test_huge_amount_is_exact() -> None:
    units = 2**256 - 1
    obs = evm_lookups(seen("ethereum", native(ALICE, units)))
    d = classify(appeal(asset="ETH"), obs, books(), CONFIG, NOW)
    assert d.amount is not None and d.amount.scaleb(18, Context(prec=100)) == units
    assert d.to_json()["transfers"][0]["amount_units"] == str(units)


def test_every_category_has_an_outcome() -> None:
    assert set(_BASE_OUTCOME) == set(CATEGORY_ORDER)


def test_price_override_changes_value_not_config() -> None:
    d = classify(appeal(), usdt_to(ALICE), books(), CONFIG, NOW, prices={("ethereum", "usdt"): D("0.99")})
    assert d.value_usd == D("99.00")


@pytest.mark.parametrize(
    ("symbol", "name", "imitates"),
    [
        ("USDT", None, "USDT"),
        ("usdt ", None, "USDT"),
        ("USD\N{CYRILLIC CAPITAL LETTER TE}", None, "USDT"),
        ("\N{FULLWIDTH LATIN CAPITAL LETTER U}SDT", None, "USDT"),
        ("U$DT", None, "USDT"),
        ("$USDT", None, "USDT"),
        ("USD\N{TUGRIK SIGN}", None, "USDT"),
        ("U.S.D.C", None, "USDC"),
        ("XYZ", "usdc", "USDC"),
        ("\N{GREEK CAPITAL LETTER EPSILON}TH", None, "ETH"),
        ("USD\u200bT", None, "USDT"),  # zero-width space
        ("USDT0", None, None),
        ("PEPE", "Pepe", None),
        (None, None, None),
    ],
)
def test_imitated_asset(symbol: str | None, name: str | None, imitates: str | None) -> None:
    found = imitated_asset(symbol, name, CONFIG.assets_on("ethereum"))
    assert (found.symbol if found else None) == imitates


def test_registry_matches_evm_addresses_case_insensitively() -> None:
    reg = books()
    assert reg.addresses_at("ethereum", ALICE)[0].user_id == "alice"
    assert reg.addresses_at("ethereum", ALICE.upper().replace("0X", "0x"))
    assert reg.addresses_at("bsc", ALICE) == []
    assert reg.is_shared("xrpl", SHARED_XRP) and not reg.is_shared("ethereum", ALICE)
    # non-EVM addresses compare exactly
    assert reg.addresses_at("xrpl", SHARED_XRP.lower()) == []


def test_registry_refuses_duplicate_rows() -> None:
    with pytest.raises(ValueError, match="duplicate"):
        InMemoryRegistry([DepositAddress("a", "ethereum", ALICE, None, "eoa"),
                          DepositAddress("b", "ethereum", ALICE.lower(), None, "eoa")])


def test_registry_refuses_unknown_kind() -> None:
    with pytest.raises(ValueError, match="kind"):
        DepositAddress("a", "ethereum", ALICE, None, "multisig")  # type: ignore[arg-type]


def test_sentences_name_the_asset_and_whom_a_credit_is_for() -> None:
    credited = run(next(s for s in SCENARIOS if s.id == "already_credited_to_another_user"))  # recorded as "usdt"
    assert "already credited (100 USDT)" in next(r.text for r in credited.reasons if r.code == "already_credited")
    mismatch = run(next(s for s in SCENARIOS if s.id == "amount_mismatch"))
    text = next(r.text for r in mismatch.reasons if r.code == "amount_mismatch")
    assert "claims 150 USDT, but 100 USDT arrived" in text


def test_a_memo_of_nobody_and_a_memo_of_another_user_read_the_same_to_the_appellant() -> None:
    """Issue 18: the user-facing memo sentence never tells whether the memo is another account's."""
    def memo_reasons(scenario_id: str) -> list[dict[str, object]]:
        decision = run(next(s for s in SCENARIOS if s.id == scenario_id))
        return [r for r in user_reasons(decision) if r["code"] in ("wrong_memo", "memo_other_user", "memo_unmatched")]

    nobody, another = memo_reasons("wrong_memo_unknown"), memo_reasons("wrong_memo_of_another_user")
    assert [r["code"] for r in nobody] == [r["code"] for r in another] == ["wrong_memo"]
    assert str(nobody[0]["text"]).replace("99999", "M") == str(another[0]["text"]).replace("2002", "M")


def test_a_memo_of_another_user_reads_like_a_memo_of_nobody_with_the_same_proof_request() -> None:
    """Issue 18: one transfer with memo 2002, decided for alice against books where 2002 is bob's
    (credited to him or not) and where it is nobody's: the appellant sees the same view and gets the
    same proof request; only the team's internal reasons differ."""
    obs = {"xrpl": seen("xrpl", native(SHARED_XRP, 100 * USDT6), memo="2002")}
    nobody = classify(xrp_appeal(), obs, books(without_user="bob"), CONFIG, NOW)
    bobs = classify(xrp_appeal(), obs, books(), CONFIG, NOW)
    credited = classify(xrp_appeal(), obs, books(CreditedDeposit("xrpl", TX, "bob", "XRP", D(100))), CONFIG, NOW)
    assert "memo_unmatched" in {r.code for r in nobody.reasons}
    for decision in (bobs, credited):
        assert user_view(decision) == user_view(nobody)
        assert decision.ownership_proof == nobody.ownership_proof is not None
        assert decision.credited_user_id == "alice"
    assert F.CREDITED_TO_OTHER_USER in credited.flags
    freeze = next(r for r in credited.reasons if r.code == "credited_to_other_user")
    assert freeze.internal and "freeze" in freeze.text and freeze.evidence["credited_user_ids"] == ["bob"]
    # bob's own appeal of his memo is credited to him without proof
    own = classify(xrp_appeal(user_id="bob"), obs, books(), CONFIG, NOW)
    assert (own.category, own.credited_user_id, own.ownership_proof) == (C.UNCREDITED_VALID, "bob", None)


def test_a_credit_of_more_than_28_digits_is_summed_exactly() -> None:
    """The credited total is added up in the exact context: in the default one (28 digits) a credit
    of exactly what arrived read as a different amount ("credit_amount_differs")."""
    units = 1_234_567_890_123_456_789_012_345_678_901  # 31 digits of USDT's 6-decimal base units
    credit = CreditedDeposit("ethereum", TX, "alice", "USDT", Decimal("1234567890123456789012345.678901"))
    decision = classify(appeal(), evm_lookups(seen("ethereum", token(ETH_USDT, ALICE, units))), books(credit),
                        CONFIG, NOW)
    assert decision.category is C.ALREADY_CREDITED
    codes = {r.code for r in decision.reasons}
    assert "already_credited" in codes and "credit_amount_differs" not in codes
    [said] = [r for r in decision.reasons if r.code == "already_credited"]
    assert said.evidence["credited_amount"] == "1234567890123456789012345.678901"
