"""The TRON twin of an EVM deposit address: the same 20 bytes, the same key, another network.

A transfer on TRON to the twin of an EVM key we hold (``eoa``) reached us on the wrong network and
belongs to the key's owner; the twin of a contract is nobody's (a contract exists only where it
was deployed). Observations are built in code, as in test_rules.py; the database-backed registries
(the API's and the re-check's) are exercised on SQLite and PostgreSQL.
"""

from __future__ import annotations

from decimal import Decimal

import pytest

from chains.addresses import evm_to_tron
from recovery.checking import BatchRegistry, ChainEvidence
from recovery.db import Database
from recovery.models import DepositAddress as AddressRow
from recovery.registry import DepositAddress, InMemoryRegistry, Registry
from recovery.rules import Appeal, Decision, classify, user_reasons
from recovery.sql_registry import SqlRegistry
from recovery.vocabulary import Category, Flag, Recoverable, Resolution
from tests.rules import CONFIG, NOW, SENDER, contract_of, evm_address, native, seen, token

ALICE = evm_address("alice")  # an EVM key of alice's, issued for ethereum
VAULT = evm_address("carol-forwarder")  # carol's forwarder contract on ethereum
ZOE_TRON = evm_to_tron(evm_address("zoe-tron"))  # a TRON deposit address of zoe's
TRON_USDT = contract_of("tron", "USDT")
TRON_TX = "ab" * 32
TRON_SENDER = evm_to_tron(SENDER)
USDT6 = 10**6


def books() -> InMemoryRegistry:
    return InMemoryRegistry(addresses=[
        DepositAddress("alice", "ethereum", ALICE.lower(), None, "eoa"),  # stored lower-case on purpose
        DepositAddress("alice", "bsc", ALICE, None, "eoa"),
        DepositAddress("carol", "ethereum", VAULT, None, "contract"),
        DepositAddress("zoe", "tron", ZOE_TRON, None, "eoa"),
    ])


def usdt_on_tron(to: str, amount: int = 200) -> dict[str, object]:
    return {"tron": seen("tron", token(TRON_USDT, to, amount * USDT6, sender=TRON_SENDER), tx_hash=TRON_TX)}


def decide(to: str, registry: Registry, *, user: str = "alice", amount: int = 200) -> Decision:
    appeal = Appeal(user_id=user, network="tron", tx_hash=TRON_TX, asset="USDT", deposit_address=to,
                    submitted_at=NOW)
    return classify(appeal, usdt_on_tron(to, amount), registry, CONFIG, NOW)  # type: ignore[arg-type]


def test_a_transfer_to_the_twin_of_our_evm_key_is_a_wrong_network_deposit_of_its_owner() -> None:
    twin = evm_to_tron(ALICE)
    decision = decide(twin, books())
    assert (decision.category, decision.recoverable, decision.resolution) == (
        Category.WRONG_NETWORK, Recoverable.YES, Resolution.CREDIT)  # tron's recovery is "direct"
    assert decision.credited_user_id == "alice" and decision.network == "tron"
    assert decision.amount == Decimal(200) and decision.asset == "USDT"
    [ref] = decision.transfers
    assert (ref.owner_user_id, ref.issued_for, ref.recipient) == ("alice", ("bsc", "ethereum"), twin)
    [reason] = [r for r in decision.reasons if r.code == "wrong_network"]
    assert reason.evidence["evm_address"].lower() == ALICE.lower()
    assert reason.evidence["issued_for"] == ["bsc", "ethereum"] and reason.evidence["kind"] == "eoa"
    assert twin in reason.text and "tron form of" in reason.text and "can be recovered" in reason.text
    assert Flag.OTHER_USERS_ADDRESS not in decision.flags
    assert "wrong_network" in {r["code"] for r in user_reasons(decision)}


def test_the_detected_case_and_another_users_appeal_name_the_key_owner() -> None:
    twin = evm_to_tron(ALICE)
    # `recovery scan` classifies as if the owner appealed; another user's appeal reads like an
    # address that is not ours (issue 18), and only the team's internal reason names the owner
    mallory = decide(twin, books(), user="mallory")
    assert mallory.category is Category.NOT_OUR_ADDRESS and mallory.credited_user_id is None
    assert Flag.OTHER_USERS_ADDRESS in mallory.flags
    [internal] = [r for r in mallory.reasons if r.code == "other_users_address"]
    assert internal.internal and internal.evidence["owner_user_ids"] == ["alice"]
    assert [r["code"] for r in user_reasons(mallory)] == ["found", "not_our_address"]
    alice = decide(twin, books())
    assert alice.category is Category.WRONG_NETWORK and alice.credited_user_id == "alice"


def test_the_twin_of_a_contract_is_nobodys() -> None:
    decision = decide(evm_to_tron(VAULT), books(), user="carol")
    assert decision.category is Category.NOT_OUR_ADDRESS
    assert decision.credited_user_id is None and not decision.transfers


def test_an_unknown_twin_is_not_ours() -> None:
    decision = decide(evm_to_tron(evm_address("stranger")), books())
    assert decision.category is Category.NOT_OUR_ADDRESS


def test_a_tron_deposit_address_is_judged_as_itself() -> None:
    decision = decide(ZOE_TRON, books(), user="zoe")
    assert decision.category is Category.UNCREDITED_VALID and decision.credited_user_id == "zoe"
    assert not [r for r in decision.reasons if r.code == "wrong_network"]


def test_native_trx_to_the_twin() -> None:
    twin = evm_to_tron(ALICE)
    observations = {"tron": seen("tron", native(twin, 800 * USDT6, sender=TRON_SENDER), tx_hash=TRON_TX)}
    appeal = Appeal(user_id="alice", network="tron", tx_hash=TRON_TX, asset="TRX", submitted_at=NOW)
    decision = classify(appeal, observations, books(), CONFIG, NOW)
    assert (decision.category, decision.recoverable, decision.credited_user_id) == (
        Category.WRONG_NETWORK, Recoverable.YES, "alice")
    assert (decision.asset, decision.amount) == ("TRX", Decimal(800))


@pytest.mark.parametrize("kind", ["sql", "batch"])
def test_the_database_registries_find_the_twin(database: Database, kind: str) -> None:
    with database.write() as session:
        session.add(AddressRow(user_id="alice", network="ethereum", address=ALICE, kind="eoa"))
        session.add(AddressRow(user_id="carol", network="ethereum", address=VAULT, kind="contract"))
    with database.read() as session:
        for to, category, owner in ((evm_to_tron(ALICE), Category.WRONG_NETWORK, "alice"),
                                    (evm_to_tron(VAULT), Category.NOT_OUR_ADDRESS, None)):
            observations = usdt_on_tron(to)
            registry: Registry
            if kind == "sql":
                registry = SqlRegistry(session, CONFIG)
            else:
                evidence = ChainEvidence("tron", TRON_TX, observations=observations)  # type: ignore[arg-type]
                registry = BatchRegistry(session, CONFIG, [evidence])
            decision = decide(to, registry)
            assert (decision.category, decision.credited_user_id) == (category, owner), to
