"""Every EVM category and flag from real transactions on the local anvil chains.

One module-scoped fixture deploys the contracts it needs (an unlisted token, counterfeit "USDT"s,
a forwarding contract, a multi-transfer contract, a contract deposit wallet), sends every
scenario's transaction in one batch per chain, mines past the confirmation depth, sends the
still-unconfirmed ones, and gathers the evidence the way the product does (``ChainGateway``: the
claimed network first, the other EVM networks where the hash is not there). Each parametrized
test then only classifies: the chain part runs once.

The exchange's books are one registry for all scenarios (alice, bob and carol hold addresses issued
for ethereum, carol's is a contract; dave's was issued for ethereum and bsc); the same books in
the database (``SqlRegistry`` on SQLite and PostgreSQL) must give the same decisions.

Memo categories (``missing_memo``, ``wrong_memo``) and ``partial_payment`` do not exist on EVM
chains (no memos; a successful ERC-20 transfer delivers exactly its amount): test_rules.py covers
them from observations.
"""

from __future__ import annotations

import dataclasses
import json
import re
import secrets
from collections.abc import Callable, Mapping
from dataclasses import KW_ONLY, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from eth_abi.abi import encode as abi_encode
from web3 import Web3

from app.demo.chainworld import TxSpec, forward, impersonate, send_all, token_transfer
from chains import addresses
from chains.base import Observation
from recovery.checking import ChainEvidence, ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.models import CreditedDeposit as CreditedRow
from recovery.models import DepositAddress as AddressRow
from recovery.registry import CreditedDeposit, DepositAddress, InMemoryRegistry, Registry
from recovery.rules import Appeal, Decision, classify, user_view
from recovery.sql_registry import SqlRegistry
from recovery.vocabulary import PAYOUT_FLAGS, USER_VISIBLE_FLAGS, Category, Flag, Recoverable, Resolution
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.rules import with_asset, with_network
from tests.rules.test_rules import assert_reasons_match_the_verdict

pytestmark = pytest.mark.anvil

D = Decimal
C = Category
R = Recoverable
S = Resolution
F = Flag

USDT6 = 10**6  # USDT/USDC on ethereum have 6 decimals
E18 = 10**18  # ETH, BNB, and USDT/USDC on bsc: 18 decimals
#: "not asserted" marker for optional expectations
ANY: Any = object()


# --------------------------------------------------------------------------- the world on chain


@dataclass(frozen=True)
class World:
    """Addresses and contracts the scenarios send to and from."""

    testbed: EvmTestbed
    #: user -> deposit address
    address: Mapping[str, str]
    stranger: str
    #: a wallet holding ether but no tokens: its token transfers revert
    empty_wallet: str
    #: network -> unlisted "PEPE" token
    pepe: Mapping[str, str]
    #: network -> counterfeit "USDT" token ("Tether USD")
    fake_usdt: Mapping[str, str]
    forwarder: str
    multi: str

    def token(self, network: str, symbol: str) -> str:
        return self.testbed.tokens[network][symbol]


def _call(signature: str, types: list[str], values: list[Any]) -> str:
    return "0x" + (Web3.keccak(text=signature)[:4] + abi_encode(types, values)).hex()


def usdt(network: str, to: str, units: int, *, sender: str = FUNDER, symbol: str = "USDT") -> Callable[[World], TxSpec]:
    return lambda w: token_transfer(network, sender, w.token(network, symbol), w.address.get(to, to), units)


def native(network: str, to: str, wei: int) -> Callable[[World], TxSpec]:
    return lambda w: TxSpec(network, FUNDER, w.address.get(to, to), value=wei)


def pepe(network: str, to: str, units: int) -> Callable[[World], TxSpec]:
    return lambda w: token_transfer(network, FUNDER, w.pepe[network], w.address[to], units)


def fake_usdt(network: str, to: str, units: int) -> Callable[[World], TxSpec]:
    return lambda w: token_transfer(network, FUNDER, w.fake_usdt[network], w.address[to], units)


def to_stranger(w: World) -> TxSpec:
    return token_transfer("ethereum", FUNDER, w.token("ethereum", "USDT"), w.stranger, 100 * USDT6)


def reverted_transfer(w: World) -> TxSpec:
    """A USDT transfer from a wallet that holds none: mined, reverted, nothing moved."""
    return token_transfer("ethereum", w.empty_wallet, w.token("ethereum", "USDT"), w.address["alice"], 100 * USDT6)


def forwarded(w: World) -> TxSpec:
    """2 ETH to the Forwarder, which passes it on to alice: only a trace shows it."""
    return forward("ethereum", FUNDER, w.forwarder, w.address["alice"], 2 * E18)


def forwarded_many(w: World) -> TxSpec:
    """One contract call splitting 3 ETH: 1 to bob, 2 to alice (two internal transfers)."""
    data = _call("forwardMany(address[],uint256[])", ["address[]", "uint256[]"],
                 [[w.address["bob"], w.address["alice"]], [E18, 2 * E18]])
    return TxSpec("ethereum", FUNDER, w.forwarder, value=3 * E18, data=data, gas=150_000)


def multi_transfer(w: World) -> TxSpec:
    """7 USDT to bob and 25 USDC to alice in one MultiTransfer call."""
    data = _call(
        "multiTransfer(address[],address[],uint256[])",
        ["address[]", "address[]", "uint256[]"],
        [[w.token("ethereum", "USDT"), w.token("ethereum", "USDC")], [w.address["bob"], w.address["alice"]],
         [7 * USDT6, 25 * USDT6]],
    )
    return TxSpec("ethereum", FUNDER, w.multi, data=data, gas=300_000)


def real_beside_fake(w: World) -> TxSpec:
    """A fake "USDT" (first) and the real USDT (second) to alice in one MultiTransfer call."""
    data = _call(
        "multiTransfer(address[],address[],uint256[])",
        ["address[]", "address[]", "uint256[]"],
        [[w.fake_usdt["ethereum"], w.token("ethereum", "USDT")], [w.address["alice"]] * 2, [100 * USDT6] * 2],
    )
    return TxSpec("ethereum", FUNDER, w.multi, data=data, gas=300_000)


# --------------------------------------------------------------------------- the scenarios


def recovery_on_bsc(mode: str) -> Callable[[Config], Config]:
    return lambda config: with_network(config, "bsc", recovery=mode)


@dataclass(frozen=True)
class Scenario:
    id: str
    #: the transaction to send; None: a hash that was never sent
    tx: Callable[[World], TxSpec] | None
    category: Category
    recoverable: Recoverable
    resolution: Resolution
    flags: frozenset[Flag] = frozenset()
    _: KW_ONLY
    # ---- expected amounts (always given)
    #: in asset units; None = no amount (nothing moved, nothing ours)
    amount: str | None
    #: fee in asset units; None = no fee breakdown, or the fee is undetermined (no price)
    fee: str | None
    # ---- the appeal
    user: str = "alice"
    network: str = "ethereum"
    #: a symbol, or a function of the world (an unlisted token's contract)
    asset: str | Callable[[World], str] = "USDT"
    claimed_amount: Decimal | None = None
    other_appellants: frozenset[str] = frozenset()
    #: appeal filed this many days after the transaction was mined (decided the same day)
    days_later: float = 1
    # ---- the books and the configuration
    #: credits recorded for this scenario's transaction: (user, asset, amount)
    credits: tuple[tuple[str, str, str], ...] = ()
    config: Callable[[Config], Config] | None = None
    prices: Callable[[World], dict[tuple[str, str], Decimal]] | None = None
    #: sent after the confirmation blocks (still unconfirmed when classified)
    late: bool = False
    # ---- expectations
    credited: str | None = None
    #: net in asset units (fee + net == amount is checked for every decision)
    net: str | None = ANY
    #: where the transaction was found, when not on the network it was sent on
    found_on: str | None = ANY
    also: tuple[Category, ...] | None = ANY
    reasons: frozenset[str] = frozenset()


SCENARIOS: list[Scenario] = [
    # ------------------------------------------------------------------ unattributed_deposit
    Scenario(
        "unattributed_deposit-to-an-exchange-wallet", usdt("ethereum", "hot", 100 * 10**6),
        C.UNATTRIBUTED_DEPOSIT, R.CONDITIONAL, S.CREDIT,
        credited="alice", amount="100", fee="0", net="100",  # no fee rule names the category
        reasons=frozenset({"unattributed_deposit", "ownership_proof"}),
    ),
    # ------------------------------------------------------------------ uncredited_valid
    Scenario(
        "uncredited_valid-usdt-ethereum", usdt("ethereum", "alice", 100 * USDT6),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        credited="alice", amount="100", fee="0", net="100", found_on="ethereum", also=(),
        reasons=frozenset({"found", "transfer", "uncredited_valid", "fee"}),
    ),
    Scenario(
        "uncredited_valid-native-eth", native("ethereum", "alice", E18 // 2),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        asset="ETH", credited="alice", amount="0.5", fee="0", net="0.5",
    ),
    Scenario(
        "uncredited_valid-usdt-bsc-18-decimals", usdt("bsc", "dave", 50 * E18),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        user="dave", network="bsc", credited="dave", amount="50", fee="0", net="50", found_on="bsc",
    ),
    Scenario(
        "uncredited_valid-claimed-wrong-network-but-issued-for-both", usdt("bsc", "dave", 60 * E18),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        user="dave", network="ethereum", credited="dave", amount="60", fee="0", found_on="bsc", also=(),
        reasons=frozenset({"found_elsewhere"}),
    ),
    # ------------------------------------------------------------------ tx_not_found
    Scenario(
        "tx_not_found-on-any-evm-network", None,
        C.TX_NOT_FOUND, R.NO, S.NONE,
        amount=None, fee=None, net=None, found_on=None, also=(), reasons=frozenset({"tx_not_found"}),
    ),
    # ------------------------------------------------------------------ awaiting_confirmations
    Scenario(
        "awaiting_confirmations-one-block", usdt("ethereum", "alice", 100 * USDT6),
        C.AWAITING_CONFIRMATIONS, R.CONDITIONAL, S.NONE,
        late=True, amount="100", fee="0", found_on="ethereum", also=(),
        reasons=frozenset({"awaiting_confirmations"}),
    ),
    # ------------------------------------------------------------------ tx_failed
    Scenario(
        "tx_failed-reverted-token-transfer", reverted_transfer,
        C.TX_FAILED, R.NO, S.NONE,
        amount=None, fee=None, net=None, found_on="ethereum", also=(), reasons=frozenset({"tx_failed"}),
    ),
    # ------------------------------------------------------------------ not_our_address
    Scenario(
        "not_our_address-paid-a-stranger", to_stranger,
        C.NOT_OUR_ADDRESS, R.NO, S.NONE,
        amount=None, fee=None, found_on="ethereum", reasons=frozenset({"not_our_address", "address_claim_differs"}),
    ),
    # ------------------------------------------------------------------ already_credited
    Scenario(
        "already_credited", usdt("ethereum", "alice", 100 * USDT6),
        C.ALREADY_CREDITED, R.NO, S.NONE,
        credits=(("alice", "USDT", "100"),), amount="100", fee="0", also=(),
        reasons=frozenset({"already_credited"}),
    ),
    Scenario(
        "already_credited-to-another-user", usdt("ethereum", "alice", 100 * USDT6),
        C.ALREADY_CREDITED, R.NO, S.NONE, frozenset({F.CREDITED_TO_OTHER_USER}),
        amount="100", fee="0", credits=(("mallory", "usdt", "100"),), reasons=frozenset({"credited_to_other_user"}),
    ),
    Scenario(
        "already_credited-beats-wrong_network", usdt("bsc", "alice", 200 * E18),
        C.ALREADY_CREDITED, R.NO, S.NONE,
        amount="200", fee="0", credits=(("alice", "USDT", "200"),), found_on="bsc", also=(C.WRONG_NETWORK,),
    ),
    # ------------------------------------------------------------------ counterfeit_token
    Scenario(
        "counterfeit_token-fake-usdt", fake_usdt("ethereum", "alice", 5000 * USDT6),
        C.COUNTERFEIT_TOKEN, R.NO, S.NONE, frozenset({F.COUNTERFEIT}),
        amount="5000", fee="0", also=(C.UNLISTED_TOKEN,), reasons=frozenset({"counterfeit_token"}),
    ),
    Scenario(
        "counterfeit_token-beats-wrong_network", fake_usdt("bsc", "alice", 5000 * E18),
        C.COUNTERFEIT_TOKEN, R.NO, S.NONE, frozenset({F.COUNTERFEIT}),
        amount="5000", fee="0", found_on="bsc", also=(C.WRONG_NETWORK, C.UNLISTED_TOKEN),
    ),
    # ------------------------------------------------------------------ wrong_network
    Scenario(
        "wrong_network-eoa-direct", usdt("bsc", "alice", 200 * E18),
        C.WRONG_NETWORK, R.YES, S.CREDIT,
        credited="alice", amount="200", fee="20", net="180", found_on="bsc", also=(),  # 5% of 100 -> minimum 20
        reasons=frozenset({"found_elsewhere", "wrong_network", "fee"}),
    ),
    Scenario(
        "wrong_network-percent-above-free-band", usdt("bsc", "alice", 1000 * E18),
        C.WRONG_NETWORK, R.YES, S.CREDIT,
        network="bsc", credited="alice", amount="1000", fee="45", net="955",  # 5% of (1000 - 100)
        reasons=frozenset({"found", "wrong_network"}),
    ),
    Scenario(
        "wrong_network-native-bnb", native("bsc", "alice", E18 // 2),
        C.WRONG_NETWORK, R.YES, S.CREDIT,
        asset="BNB", credited="alice", amount="0.5",
        fee="0.033333333333333334", net="0.466666666666666666",  # 20 USD at 600, rounded up
    ),
    Scenario(
        "wrong_network-contract-deposit-address", usdt("bsc", "carol", 200 * E18),
        C.WRONG_NETWORK, R.NO, S.NONE,
        fee="20", user="carol", amount="200", found_on="bsc", reasons=frozenset({"wrong_network"}),
    ),
    Scenario(
        "wrong_network-recovery-conditional", usdt("bsc", "alice", 200 * E18),
        C.WRONG_NETWORK, R.CONDITIONAL, S.CREDIT,
        amount="200", config=recovery_on_bsc("conditional"), credited="alice", fee="20", net="180",
    ),
    Scenario(
        "wrong_network-recovery-none", usdt("bsc", "alice", 200 * E18),
        C.WRONG_NETWORK, R.NO, S.NONE,
        amount="200", fee="20", config=recovery_on_bsc("none"),
    ),
    Scenario(
        "wrong_network-expired", usdt("bsc", "alice", 200 * E18),
        C.WRONG_NETWORK, R.NO, S.NONE, frozenset({F.EXPIRED}),
        amount="200", fee="20", days_later=200, reasons=frozenset({"expired"}),  # the rule's max_age_days is 180
    ),
    Scenario(
        "wrong_network-not_economical", usdt("bsc", "alice", 30 * E18),
        C.WRONG_NETWORK, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}),
        amount="30", fee="20", net="10", reasons=frozenset({"not_economical"}),  # 30 USD < 50 USD
    ),
    Scenario(
        "wrong_network-of-unlisted-token-is-a-refund", pepe("bsc", "alice", 1000 * E18),
        C.WRONG_NETWORK, R.CONDITIONAL, S.REFUND,
        amount="1000", asset=lambda w: w.pepe["bsc"], fee=None, net=None, also=(C.UNLISTED_TOKEN,),
        reasons=frozenset({"no_price"}),
    ),
    # ------------------------------------------------------------------ unlisted_token
    Scenario(
        "unlisted_token-no-price", pepe("ethereum", "alice", 1000 * E18),
        C.UNLISTED_TOKEN, R.CONDITIONAL, S.REFUND,
        asset=lambda w: w.pepe["ethereum"], amount="1000", fee=None, net=None, also=(),
        reasons=frozenset({"unlisted_token", "no_price"}),
    ),
    Scenario(
        "unlisted_token-priced", pepe("ethereum", "alice", 1000 * E18),
        C.UNLISTED_TOKEN, R.YES, S.REFUND,
        asset=lambda w: w.pepe["ethereum"], prices=lambda w: {("ethereum", w.pepe["ethereum"]): D("0.5")},
        amount="1000", fee="160", net="840",  # 80 USD flat at 0.5 USD
    ),
    Scenario(
        "unlisted_token-not_economical", pepe("ethereum", "alice", 1000 * E18),
        C.UNLISTED_TOKEN, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}),
        asset=lambda w: w.pepe["ethereum"], prices=lambda w: {("ethereum", w.pepe["ethereum"]): D("0.01")},
        # 10 USD is under the 100 USD minimum, and the 80 USD fee is capped at the amount
        amount="1000", fee="1000", net="0",
    ),
    # ------------------------------------------------------------------ deposit_suspended
    Scenario(
        "deposit_suspended-asset", usdt("ethereum", "alice", 100 * USDT6),
        C.DEPOSIT_SUSPENDED, R.CONDITIONAL, S.CREDIT,
        config=lambda c: with_asset(c, "ethereum", "USDT", deposits_enabled=False),
        credited="alice", amount="100", fee="0", also=(), reasons=frozenset({"deposit_suspended"}),
    ),
    Scenario(
        "deposit_suspended-network", usdt("bsc", "dave", 50 * E18),
        C.DEPOSIT_SUSPENDED, R.CONDITIONAL, S.CREDIT,
        amount="50", user="dave", network="bsc", config=lambda c: with_network(c, "bsc", deposits_enabled=False),
        credited="dave", fee="0",
    ),
    # ------------------------------------------------------------------ below_minimum
    Scenario(
        "below_minimum-eth", native("ethereum", "alice", 5 * 10**14),  # 0.0005 ETH, minimum 0.001
        C.BELOW_MINIMUM, R.YES, S.CREDIT,
        asset="ETH", credited="alice", amount="0.0005",
        fee="0.000333333333333334", net="0.000166666666666666",  # 1 USD at 3000, rounded up
        reasons=frozenset({"below_minimum"}),
    ),
    Scenario(
        "below_minimum-exactly-the-minimum-is-valid", usdt("ethereum", "alice", USDT6),
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        credited="alice", amount="1", fee="0", also=(),
    ),
    Scenario(
        "below_minimum-fee-eats-it", usdt("ethereum", "alice", USDT6 // 2),
        C.BELOW_MINIMUM, R.NO, S.NONE, frozenset({F.NOT_ECONOMICAL}),
        amount="0.5", fee="0.5", net="0",
    ),
    # ------------------------------------------------------------------ internal_transfer
    Scenario(
        "internal_transfer-forwarder", forwarded,
        C.INTERNAL_TRANSFER, R.YES, S.CREDIT,
        asset="ETH", credited="alice", amount="2", fee="0", net="2", also=(),
        reasons=frozenset({"internal_transfer"}),
    ),
    Scenario(
        "internal_transfer-split-picks-the-appellants", forwarded_many,
        C.INTERNAL_TRANSFER, R.YES, S.CREDIT,
        asset="ETH", credited="alice", amount="2", fee="0",
        reasons=frozenset({"internal_transfer", "other_transfers"}),
    ),
    # ------------------------------------------------------------------ flags
    Scenario(
        "contested", usdt("ethereum", "alice", 100 * USDT6),
        C.UNCREDITED_VALID, R.YES, S.CREDIT, frozenset({F.CONTESTED}),
        other_appellants=frozenset({"mallory"}),
        amount="100", fee="0", credited="alice", reasons=frozenset({"contested"}),
    ),
    Scenario(
        "amount_mismatch", usdt("ethereum", "alice", 100 * USDT6),
        C.UNCREDITED_VALID, R.YES, S.CREDIT, frozenset({F.AMOUNT_MISMATCH}),
        fee="0", claimed_amount=D(150), credited="alice", amount="100", reasons=frozenset({"amount_mismatch"}),
    ),
    Scenario(
        "other_users_address-reads-like-not-ours", usdt("ethereum", "bob", 100 * USDT6),
        C.NOT_OUR_ADDRESS, R.NO, S.NONE, frozenset({F.OTHER_USERS_ADDRESS}),
        amount=None, fee=None, credited=None, reasons=frozenset({"not_our_address", "other_users_address"}),
    ),
    Scenario(
        "multi_transfer-picks-the-appellants", multi_transfer,
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        asset="USDC", credited="alice", amount="25", fee="0", reasons=frozenset({"other_transfers"}),
    ),
    Scenario(
        "multi_transfer-real-usdt-beside-a-fake-one", real_beside_fake,
        C.UNCREDITED_VALID, R.YES, S.CREDIT,
        credited="alice", amount="100", fee="0", also=(), reasons=frozenset({"other_transfers"}),
    ),
]

#: impossible on EVM chains (memos, partial payments, replace-by-fee, answers the EVM adapter cannot
#: read) or set by the refund proof, not the rules; covered in test_rules.py and the payout tests
NOT_ON_EVM_CATEGORIES = frozenset({C.MISSING_MEMO, C.WRONG_MEMO})
NOT_ON_EVM_FLAGS = frozenset({F.PARTIAL_PAYMENT, F.REPLACEABLE, F.UNRECOGNISED_CHAIN_DATA}) | PAYOUT_FLAGS


# --------------------------------------------------------------------------- building it all once


@dataclass
class Built:
    world: World
    #: scenario id -> transaction hash
    hashes: dict[str, str]
    evidence: dict[str, ChainEvidence]
    registry: InMemoryRegistry
    addresses: list[DepositAddress]
    credits: list[CreditedDeposit]
    #: scenario id -> when it is appealed and decided (its block's time + days_later)
    decided_at: dict[str, datetime]
    #: scenario id -> the network its transaction was sent on
    sent_on: dict[str, str]
    gateway_asked: dict[str, list[str]] = field(default_factory=dict)

    def observations(self, s: Scenario) -> dict[str, Observation]:
        return self.evidence[s.id].observations

    def config(self, s: Scenario) -> Config:
        base = self.world.testbed.config
        return s.config(base) if s.config is not None else base

    def appeal(self, s: Scenario) -> Appeal:
        asset = s.asset(self.world) if callable(s.asset) else s.asset
        return Appeal(
            user_id=s.user,
            network=s.network,
            tx_hash=self.hashes[s.id],
            asset=asset,
            deposit_address=self.world.address.get(s.user),
            claimed_amount=s.claimed_amount,
            submitted_at=self.decided_at[s.id],
            other_appellants=s.other_appellants,
        )

    def decide(self, s: Scenario, registry: Registry | None = None) -> Decision:
        prices = s.prices(self.world) if s.prices is not None else None
        return classify(self.appeal(s), self.observations(s), registry or self.registry, self.config(s),
                        self.decided_at[s.id], prices=prices)


def _deploy_world(testbed: EvmTestbed) -> World:
    # "hot" is an exchange wallet: held by no user (imported with kind wallet and an empty user_id)
    address = {"alice": fresh_address(), "bob": fresh_address(), "dave": fresh_address(), "hot": fresh_address()}
    # carol's deposit address is a contract (a sweeping wallet) that exists on ethereum only
    address["carol"] = testbed.deploy("ethereum", "Forwarder", FUNDER)
    empty = fresh_address()
    impersonate(testbed.url("ethereum"), empty)
    networks = ("ethereum", "bsc")
    return World(
        testbed=testbed,
        address=address,
        stranger=fresh_address(),
        empty_wallet=empty,
        pepe={n: testbed.new_token(n, "Pepe", "PEPE", 18, 10**40) for n in networks},
        fake_usdt={n: testbed.new_token(n, "Tether USD", "USDT", 6 if n == "ethereum" else 18, 10**40)
                   for n in networks},
        forwarder=testbed.deploy("ethereum", "Forwarder", FUNDER),
        multi=testbed.deploy("ethereum", "MultiTransfer"),
    )


def _books(world: World, hashes: Mapping[str, str]) -> tuple[list[DepositAddress], list[CreditedDeposit]]:
    a = world.address
    rows = [
        # stored lower-case: the registry must still match the checksummed form the adapter reports
        DepositAddress("alice", "ethereum", a["alice"].lower(), None, "eoa"),
        DepositAddress("bob", "ethereum", a["bob"], None, "eoa"),
        DepositAddress("carol", "ethereum", a["carol"], None, "contract"),
        DepositAddress("dave", "ethereum", a["dave"], None, "eoa"),
        DepositAddress("dave", "bsc", a["dave"], None, "eoa"),
        DepositAddress("", "ethereum", a["hot"], None, "eoa"),
    ]
    credits = []
    for s in SCENARIOS:
        if s.tx is None:
            continue
        network = s.tx(world).network
        for user, asset, amount in s.credits:
            credits.append(CreditedDeposit(network, hashes[s.id], user, asset, D(amount)))
    return rows, credits


@pytest.fixture(scope="module")
def built(evm_testbed: EvmTestbed) -> Built:
    world = _deploy_world(evm_testbed)
    # MultiTransfer pulls from the funder: approve it first (same sender, so mined before the call)
    approvals = [
        TxSpec("ethereum", FUNDER, token,
               data=_call("approve(address,uint256)", ["address", "uint256"], [world.multi, 2**256 - 1]), gas=100_000)
        for token in (world.token("ethereum", "USDT"), world.token("ethereum", "USDC"), world.fake_usdt["ethereum"])
    ]
    specs = {s.id: s.tx(world) for s in SCENARIOS if s.tx is not None}
    hashes: dict[str, str] = {}
    for late in (False, True):
        for network in ("ethereum", "bsc"):
            batch = [(s.id, specs[s.id]) for s in SCENARIOS
                     if s.late is late and s.id in specs and specs[s.id].network == network]
            prefix = approvals if network == "ethereum" and not late else []
            sent = send_all(evm_testbed.url(network), [*prefix, *(spec for _, spec in batch)])
            hashes.update(zip((sid for sid, _ in batch), sent[len(prefix):], strict=True))
        if not late:  # everything so far gets the depth both networks require (12 and 15)
            for network in ("ethereum", "bsc"):
                evm_testbed.mine(network, 20)
    for s in SCENARIOS:
        if s.tx is None:
            hashes[s.id] = "0x" + secrets.token_hex(32)

    gateway = ChainGateway(evm_testbed.config)
    keys = {s.id: (s.network, hashes[s.id]) for s in SCENARIOS}
    evidence = gateway.evidence(list(dict.fromkeys(keys.values())))
    by_id = {sid: evidence[key] for sid, key in keys.items()}
    for sid, ev in by_id.items():
        assert ev.conclusive, f"{sid}: the local chains did not answer: {ev.unavailable}"

    def mined_at(ev: ChainEvidence) -> datetime | None:
        return next((o.timestamp for o in ev.observations.values() if o.found and o.timestamp), None)

    latest = max(t for t in map(mined_at, by_id.values()) if t is not None)
    decided_at = {s.id: (mined_at(by_id[s.id]) or latest) + timedelta(days=s.days_later) for s in SCENARIOS}
    rows, credits = _books(world, hashes)
    sent_on = {sid: spec.network for sid, spec in specs.items()}
    return Built(world, hashes, by_id, InMemoryRegistry(rows, credits), rows, credits, decided_at, sent_on)


# --------------------------------------------------------------------------- the table


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_scenario(s: Scenario, built: Built) -> None:
    d = built.decide(s)
    texts = [r.text for r in d.reasons]
    assert (d.category, d.recoverable, d.resolution) == (s.category, s.recoverable, s.resolution), texts
    assert set(d.flags) == set(s.flags), texts
    assert d.credited_user_id == s.credited
    if s.amount is not ANY:
        assert d.amount == (D(s.amount) if s.amount is not None else None)
    if s.fee is not ANY:
        assert (d.fee.fee if d.fee is not None else None) == (D(s.fee) if s.fee is not None else None)
    if s.net is not ANY:
        assert (d.fee.net if d.fee is not None else None) == (D(s.net) if s.net is not None else None)
    if d.fee is not None and d.fee.fee is not None:
        assert d.fee.net is not None and d.fee.fee >= 0 and d.fee.fee + d.fee.net == d.amount
    sent_on = built.sent_on.get(s.id)
    assert d.network == (sent_on if s.found_on is ANY else s.found_on)
    if s.also is not ANY:
        assert d.also == s.also
    codes = {r.code for r in d.reasons}
    assert s.reasons <= codes, f"missing reasons {s.reasons - codes}: {texts}"
    assert d.tx_hash == built.hashes[s.id] and d.claimed_network == s.network
    if d.recoverable is R.NO:
        assert d.resolution is S.NONE
    if d.resolution is not S.CREDIT:
        assert d.credited_user_id is None
    if d.resolution is S.REFUND:
        assert d.refund_address == FUNDER  # back to whoever sent it
    if d.resolution is S.CREDIT:
        # a credit goes to the owner by our books, or (no owner: an exchange wallet) needs proof of ownership
        owners = {t.owner_user_id for t in d.transfers}
        assert owners == {d.credited_user_id} or (owners == {None} and d.ownership_proof is not None)
    if d.ownership_proof is not None:
        assert d.resolution is S.CREDIT and d.credited_user_id == s.user


@pytest.mark.parametrize("s", SCENARIOS, ids=[s.id for s in SCENARIOS])
def test_reasons_are_readable_and_the_user_view_is_private(s: Scenario, built: Built) -> None:
    d = built.decide(s)
    assert d.reasons
    for reason in d.reasons:
        assert reason.text[0].isupper() or reason.text[0].isdigit(), reason.text
        assert reason.text.endswith("."), reason.text
        assert len(reason.text) < 400, reason.text
        prose = re.sub(r"\b0x[0-9a-fA-F]+\b", "<hex>", reason.text)  # addresses and hashes are not numbers
        assert not re.search(r"\bNone\b|[{}]|Decimal\(|\d[eE][+-]?\d|\d\.\d*0\b", prose), reason.text
        json.dumps(reason.evidence)
    assert_reasons_match_the_verdict(d)
    assert Decision.from_json(json.loads(json.dumps(d.to_json()))) == d
    view = json.dumps(user_view(d))
    for other in ("alice", "bob", "carol", "dave", "mallory"):
        if other != s.user:
            assert other not in view
    assert set(user_view(d)["flags"]) <= {f.value for f in USER_VISIBLE_FLAGS}


def test_every_evm_category_and_flag_is_covered() -> None:
    assert {s.category for s in SCENARIOS} == set(Category) - NOT_ON_EVM_CATEGORIES
    assert {f for s in SCENARIOS for f in s.flags} == set(Flag) - NOT_ON_EVM_FLAGS


@pytest.mark.postgres
def test_sql_registry_gives_the_same_decisions(built: Built, database: Database) -> None:
    """The same books in the database (addresses normalized as the imports store them)."""
    with database.write() as session:
        for row in built.addresses:
            session.add(AddressRow(user_id=row.user_id, network=row.network, memo=row.memo or "", kind=row.kind,
                                   address=addresses.normalize_address("evm", row.address)))
        for credit in built.credits:
            session.add(CreditedRow(network=credit.network, tx_hash=credit.tx_hash, user_id=credit.user_id,
                                    asset=credit.asset, amount=credit.amount))
    with database.read() as session:
        for s in SCENARIOS:
            sql = built.decide(s, SqlRegistry(session, built.config(s)))
            assert sql.to_json() == built.decide(s).to_json(), s.id


# --------------------------------------------------------------------------- what the decisions say


def by_id(scenario_id: str) -> Scenario:
    return next(s for s in SCENARIOS if s.id == scenario_id)


def test_the_gateway_asks_other_networks_only_when_the_claimed_one_has_nothing(built: Built) -> None:
    on_claimed = built.evidence["uncredited_valid-usdt-ethereum"]
    assert set(on_claimed.observations) == {"ethereum"}
    elsewhere = built.evidence["wrong_network-eoa-direct"]
    assert set(elsewhere.observations) == {"ethereum", "bsc"}
    assert not elsewhere.observations["ethereum"].found and elsewhere.observations["bsc"].found
    nowhere = built.decide(by_id("tx_not_found-on-any-evm-network"))
    reason = next(r for r in nowhere.reasons if r.code == "tx_not_found")
    assert reason.evidence["networks_checked"] == ["ethereum", "bsc"]


def test_wrong_network_names_both_networks_and_the_fee_terms(built: Built) -> None:
    d = built.decide(by_id("wrong_network-eoa-direct"))
    reason = next(r for r in d.reasons if r.code == "wrong_network")
    assert reason.evidence["landed_on"] == "bsc" and reason.evidence["issued_for"] == ["ethereum"]
    assert reason.evidence["kind"] == "eoa" and "recovered" in reason.text
    assert d.fee is not None and d.fee.value_usd == D(200) and d.fee.percent_term_usd == D(5)
    assert d.fee.fee_usd == D(20) and d.fee.fee_value_usd == D(20)
    fee = next(r for r in d.reasons if r.code == "fee")
    assert "5% of the value above 100 USD" in fee.text and "net 180 USDT" in fee.text
    assert d.transfers[0].recipient == built.world.address["alice"] and d.transfers[0].issued_for == ("ethereum",)


def test_contract_deposit_address_is_not_recoverable_on_another_network(built: Built) -> None:
    d = built.decide(by_id("wrong_network-contract-deposit-address"))
    reason = next(r for r in d.reasons if r.code == "wrong_network")
    assert reason.evidence["kind"] == "contract" and "not recoverable" in reason.text


def test_counterfeit_reason_warns_of_the_scam_and_names_the_real_token(built: Built) -> None:
    d = built.decide(by_id("counterfeit_token-fake-usdt"))
    reason = next(r for r in d.reasons if r.code == "counterfeit_token")
    real = built.world.token("ethereum", "USDT")
    assert "scam" in reason.text and real in reason.text
    assert reason.evidence["contract"] == built.world.fake_usdt["ethereum"]
    assert (reason.evidence["token_symbol"], reason.evidence["token_name"]) == ("USDT", "Tether USD")
    assert d.asset == built.world.fake_usdt["ethereum"] and d.refund_address is None


def test_failed_transaction_moved_nothing(built: Built) -> None:
    d = built.decide(by_id("tx_failed-reverted-token-transfer"))
    assert d.transfers == () and d.amount is None and d.fee is None
    obs = built.evidence["tx_failed-reverted-token-transfer"].observations["ethereum"]
    attempted = obs.details["attempted"]["token_transfer"]
    assert attempted["recipient"] == built.world.address["alice"]


def test_internal_transfer_comes_from_the_contract(built: Built) -> None:
    d = built.decide(by_id("internal_transfer-forwarder"))
    (ref,) = d.transfers
    assert ref.internal and ref.sender == built.world.forwarder and ref.kind == "native"
    assert d.asset == "ETH" and d.value_usd == D(6000)
    split = built.decide(by_id("internal_transfer-split-picks-the-appellants"))
    other = next(r for r in split.reasons if r.code == "other_transfers")
    assert len(other.evidence["other_transfer_indexes"]) == 1


def test_unlisted_token_refund_values_it_at_the_given_price(built: Built) -> None:
    d = built.decide(by_id("unlisted_token-priced"))
    assert d.refund_address == FUNDER and d.value_usd == D(500)
    assert d.fee is not None and d.fee.fee_usd == D(80) and d.fee.fee_value_usd == D(80)
    assert d.asset == built.world.pepe["ethereum"] and d.transfers[0].symbol == "PEPE"


def test_another_customers_address_reads_like_not_ours_and_only_the_team_sees_the_owner(built: Built) -> None:
    d = built.decide(by_id("other_users_address-reads-like-not-ours"))
    public = [r for r in d.reasons if not r.internal]
    assert any(r.code == "not_our_address" and "deposit address of your account" in r.text for r in public)
    assert all("bob" not in json.dumps(r.evidence) for r in public)
    [internal] = [r for r in d.reasons if r.code == "other_users_address"]
    assert internal.internal and internal.evidence["owner_user_ids"] == ["bob"]


def test_expiry_counts_from_the_appeal_not_the_decision(built: Built) -> None:
    s = by_id("wrong_network-expired")
    mined = built.observations(s)["bsc"].timestamp
    assert mined is not None
    on_time = dataclasses.replace(built.appeal(s), submitted_at=mined + timedelta(days=179))
    d = classify(on_time, built.observations(s), built.registry, built.config(s), built.decided_at[s.id])
    assert (d.recoverable, d.flags) == (R.YES, ())
