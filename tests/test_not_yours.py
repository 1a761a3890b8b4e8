"""Issue 18: anyone can copy a hash from an explorer and appeal it. What the appellant is told must
not depend on whether the receiving address or the memo is another customer's.

- At another customer's own deposit address the appeal reads exactly like one at an address that
  is not ours (``not_our_address``), credits nobody, and the owner still gets a case of their own
  from ``recovery scan``.
- With another customer's memo at a shared address the appeal reads exactly like one with a memo
  that names nobody (``wrong_memo``, the same proof request, the same fee), whether or not the
  owner was credited; the appellant is credited only once they prove they sent it.

Each world is built on one database by changing only the books between two appeals of the same
transfer, and compared through the JSON API the appeal form uses (both databases).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from fastapi.testclient import TestClient

from app.api_settings import ApiSettings
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.errors import InvalidTransition
from recovery.evidence import EvidenceService
from recovery.models import CreditedDeposit, DepositAddress
from recovery.scan import Scanner, ScanOptions
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import SECRET, bearer, make_client
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_evidence import SHARED_XRPL, XRPL_TX, appeal, recheck, version, xrpl_config

SAM = Actor("sam", Role.SPECIALIST)
RECORDED_TAG = "1288227521"
#: what differs between two users' appeals of one transfer whatever the books say
PER_APPEAL = ("reference", "created_at", "updated_at")


def seen_by_user(client: TestClient, reference: str, user: str) -> dict[str, Any]:
    """The appeal and its ownership request as the appeal form gets them, minus what is per appeal."""
    view = client.get(f"/v1/appeals/{reference}", headers=bearer(user))
    ownership = client.get(f"/v1/appeals/{reference}/ownership", headers=bearer(user))
    assert view.status_code == ownership.status_code == 200, (view.text, ownership.text)
    shown = {k: v for k, v in view.json().items() if k not in PER_APPEAL}
    shown["timeline"] = [{k: v for k, v in e.items() if k != "at"} for e in shown["timeline"]]
    asked = ownership.json()
    challenge = asked.pop("challenge", None)
    asked.pop("reference", None)
    if challenge is not None:  # the challenge names the case (and so differs); its shape does not
        asked["challenge_keys"] = sorted(challenge)
    return {"appeal": shown, "ownership": asked}


@pytest.fixture
def xrpl_world(database: Database, replay_config: Config) -> Iterator[tuple[CaseService, TestClient]]:
    clock = Clock(datetime(2025, 9, 1, tzinfo=UTC))  # a week after the recorded payment: not expired
    service = CaseService(database, xrpl_config(replay_config), clock)
    with database.write() as session:  # users holding tags at the shared address; the recorded tag is nobody's yet
        for user, tag in (("zoe", "7"), ("ada", "5"), ("eve", "3")):
            session.add(DepositAddress(user_id=user, network="xrpl", address=SHARED_XRPL, memo=tag, kind="eoa"))
    client = make_client(service, ApiSettings(jwt_secret=SECRET), gateway=ChainGateway(service.config))
    try:
        yield service, client
    finally:
        client.close()


def test_another_customers_memo_reads_like_a_memo_of_nobody(xrpl_world: tuple[CaseService, TestClient],
                                                            database: Database) -> None:
    service, client = xrpl_world
    # 1. the recorded tag names nobody: zoe's appeal
    zoe = appeal(service, "zoe", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo=RECORDED_TAG)
    recheck(service)
    nobody = seen_by_user(client, zoe, "zoe")
    assert nobody["appeal"]["category"] == "wrong_memo"
    assert nobody["ownership"]["required"] is True and nobody["ownership"]["status"] == "missing"

    # 2. the same tag is bob's (not credited): ada's appeal of the same transfer reads the same
    with database.write() as session:
        session.add(DepositAddress(user_id="bob", network="xrpl", address=SHARED_XRPL, memo=RECORDED_TAG,
                                   kind="eoa"))
    ada = appeal(service, "ada", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo=RECORDED_TAG)
    recheck(service)
    assert seen_by_user(client, ada, "ada") == nobody
    # by the books it is bob's: the team sees it, and ada is credited only with accepted proof
    case = service.get(ada).case
    assert case.decision is not None and case.credited_user_id == "ada"
    internal = {r["code"] for r in case.decision["reasons"] if r["internal"]}
    assert {"memo_other_user", "memo_owner"} <= internal
    with pytest.raises(InvalidTransition, match="ownership not proven"):
        service.approve(ada, SAM, expected_version=version(service, ada))
    # bob's own appeal of his tag is credited to him without proof
    bob = appeal(service, "bob", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo=RECORDED_TAG)
    recheck(service)
    own = service.get(bob).case
    assert (own.category, own.credited_user_id) == ("uncredited_valid", "bob")
    assert EvidenceService(database, service.config, service.clock).ownership(bob, for_user="bob").required is False

    # 3. credited to bob already: eve's appeal still reads the same (the team must freeze it on bob first)
    with database.write() as session:
        session.add(CreditedDeposit(network="xrpl", tx_hash=XRPL_TX, user_id="bob", asset="XRP",
                                    amount=Decimal("329.1748")))
    eve = appeal(service, "eve", "xrpl", "XRP", XRPL_TX, SHARED_XRPL, memo=RECORDED_TAG)
    recheck(service)
    assert seen_by_user(client, eve, "eve") == nobody
    frozen = service.get(eve).case
    assert frozen.decision is not None and "credited_to_other_user" in frozen.flags
    freeze = next(r for r in frozen.decision["reasons"] if r["code"] == "credited_to_other_user")
    assert freeze["internal"] and "freeze" in freeze["text"]


@dataclasses.dataclass
class Deposit:
    service: CaseService
    client: TestClient
    tx: str
    to: str


@pytest.fixture
def stray(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> Iterator[Deposit]:
    """100 USDT sent on anvil to an address that is nobody's at the exchange (yet)."""
    service = CaseService(database, evm_testbed.config, clock)
    to = fresh_address()
    tx = evm_testbed.send_token("ethereum", "USDT", to, 100 * 10**6)
    evm_testbed.mine("ethereum", 30)
    client = make_client(service, ApiSettings(jwt_secret=SECRET), gateway=ChainGateway(service.config))
    try:
        yield Deposit(service, client, tx, to)
    finally:
        client.close()


def test_another_customers_address_reads_like_one_not_ours_and_its_owner_still_gets_a_case(
    stray: Deposit, database: Database
) -> None:
    service, client = stray.service, stray.client
    # 1. the address is nobody's here: mallory (who copied the hash) is told so
    mallory = appeal(service, "mallory", "ethereum", "USDT", stray.tx, stray.to)
    recheck(service)
    not_ours = seen_by_user(client, mallory, "mallory")
    assert not_ours["appeal"]["category"] == "not_our_address"
    assert not_ours["ownership"]["required"] is False

    # 2. the address is bob's deposit address: nina's appeal of the same transfer reads the same
    with database.write() as session:
        session.add(DepositAddress(user_id="bob", network="ethereum", address=stray.to, kind="eoa"))
    nina = appeal(service, "nina", "ethereum", "USDT", stray.tx, stray.to)
    recheck(service)
    assert seen_by_user(client, nina, "nina") == not_ours
    case = service.get(nina).case
    assert (case.category, case.resolution, case.credited_user_id) == ("not_our_address", "none", None)
    assert case.decision is not None
    [owner] = [r for r in case.decision["reasons"] if r["code"] == "other_users_address"]
    assert owner["internal"] and owner["evidence"]["owner_user_ids"] == ["bob"]

    # 3. nina's appeal neither covers nor takes bob's deposit: the scan opens bob's own case
    service.clock.advance(minutes=5)  # type: ignore[attr-defined]
    summary = Scanner(service, ChainGateway(service.config), ScanOptions()).run()
    assert summary.opened == 1
    [detected] = [c for c in service.list_cases() if c.origin == "detected"]
    assert (detected.user_id, detected.tx_hash, detected.credited_user_id) == ("bob", stray.tx, "bob")
    assert "contested" in detected.flags and detected.category == "uncredited_valid"
    assert EvidenceService(database, service.config, service.clock).ownership(
        detected.reference or "", for_user="bob").required is False
