"""Issue 22: each network's live state on ``GET /v1/networks`` (``recovery.network_state``), from real
anvil nodes: a node stopped under the API makes its network ``unavailable`` (through the API's own
chain check and through ``recovery recheck``) while the others stay ``ok``; a backlog of deposits
waiting for their confirmations makes a network ``delayed``. Both databases."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlmodel import col, select

from app.api_settings import ApiSettings
from chains import devchain
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.models import CaseEvent, DepositAddress
from recovery.network_state import NetworkStatePolicy, first_event_since, read_states
from recovery.recheck import Recheck, RecheckOptions
from recovery.services import SYSTEM, CaseService
from tests.api.conftest import SECRET, bearer, make_client
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address, network_variant
from tests.test_evidence import appeal


@dataclasses.dataclass
class Form:
    """The API over the parametrized database, with a clock the test moves."""

    service: CaseService
    client: TestClient
    clock: Clock
    addresses: dict[str, str]

    def networks(self) -> dict[str, dict[str, Any]]:
        reply = self.client.get("/v1/networks")
        assert reply.status_code == 200, reply.text
        age = int(reply.headers["cache-control"].removeprefix("public, max-age="))
        assert reply.headers["cache-control"].startswith("public, max-age=") and 0 <= age <= 30
        return {n["name"]: n for n in reply.json()["networks"]}

    def states(self) -> dict[str, str]:
        return {name: n["state"] for name, n in self.networks().items()}

    def file(self, user: str, network: str, tx_hash: str, asset: str = "USDT") -> dict[str, Any]:
        reply = self.client.post("/v1/appeals", headers=bearer(user), json={
            "network": network, "asset": asset, "tx_hash": tx_hash, "deposit_address": self.addresses[user]})
        assert reply.status_code == 201, reply.text
        return dict(reply.json())


def build_form(database: Database, config: Config) -> Iterator[Form]:
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    service = CaseService(database, config, clock)
    addresses = {user: fresh_address() for user in ("alice", "bob")}
    with database.write() as session:
        for user, address in addresses.items():
            session.add(DepositAddress(user_id=user, network="ethereum", address=address, kind="eoa"))
    client = make_client(service, ApiSettings(jwt_secret=SECRET, check_timeout_seconds=10), ChainGateway(config))
    client.__enter__()
    try:
        yield Form(service, client, clock, addresses)
    finally:
        client.__exit__(None, None, None)


@pytest.fixture
def bsc_node(tmp_path: Path) -> Iterator[devchain.AnvilNode]:
    """An anvil of our own for BNB Smart Chain (chain id 56), which the test stops."""
    node = devchain.start_anvil(56, log_path=tmp_path / "bsc.log")
    try:
        yield node
    finally:
        node.stop()


def with_bsc_at(config: Config, url: str) -> Config:
    bsc = network_variant(config.network("bsc"), url, retry_attempts=1, connect_timeout_seconds=0.5)
    return dataclasses.replace(config, networks=MappingProxyType({**config.networks, "bsc": bsc}))


def random_hash() -> str:
    return "0x" + secrets.token_hex(32)


def test_a_stopped_node_makes_its_network_unavailable_and_the_others_stay_ok(
    database: Database, evm_testbed: EvmTestbed, bsc_node: devchain.AnvilNode
) -> None:
    config = with_bsc_at(evm_testbed.config, bsc_node.url)
    form = next(iter_form := build_form(database, config))
    try:
        tx = evm_testbed.send_token("ethereum", "USDT", form.addresses["alice"], 40 * 10**6)
        evm_testbed.mine("ethereum", 12)
        assert form.file("alice", "ethereum", tx)["status"] == "in_review"  # ethereum answered
        before = form.networks()
        assert {n["state"] for n in before.values()} == {"ok"}
        assert before["bsc"]["state_message"].startswith("BSC deposits are checked as usual")

        bsc_node.stop()  # the node is down: the next appeal on BSC cannot be checked
        filed = form.file("bob", "bsc", random_hash())
        assert filed["status"] == "awaiting_chain"
        with database.read() as session:
            [event] = session.exec(select(CaseEvent).where(CaseEvent.action == "chain_result",
                                                           CaseEvent.to_status == "awaiting_chain")).all()
        assert event.details["outcome"] == "chain_unavailable" and "bsc" in event.details["unavailable"]

        # the answer is served for 30 s at most, then computed again
        assert form.states()["bsc"] == "ok"
        form.clock.advance(seconds=31)
        now = form.networks()
        assert now["bsc"]["state"] == "unavailable"
        assert now["bsc"]["state_message"] == ("BSC cannot be reached right now: you can still file your appeal, "
                                               "it will be checked as soon as the network answers.")
        assert {name: n["state"] for name, n in now.items() if name != "bsc"} == {
            name: "ok" for name in config.networks if name != "bsc"}
        # the form's user reads it in their language (the state stays a code)
        spanish = form.client.get("/v1/networks", headers={"Accept-Language": "es-AR"})
        assert spanish.headers["content-language"] == "es" and "accept-language" in spanish.headers["vary"].lower()
        bsc = next(n for n in spanish.json()["networks"] if n["name"] == "bsc")
        assert bsc["state"] == "unavailable"
        assert bsc["state_message"] == ("No se puede acceder a BSC en este momento: aún puede presentar su "
                                        "reclamación, que se comprobará en cuanto la red responda.")

        # 16 minutes without a check: the evidence has left the window
        form.clock.advance(minutes=16)
        assert form.states()["bsc"] == "ok"
        # `recovery recheck` looks again, cannot reach the node, and leaves the case untouched but checked
        summary = Recheck(form.service, ChainGateway(config), RecheckOptions(processes=0)).run()
        assert summary.unavailable_networks["bsc"] >= 1
        form.clock.advance(seconds=31)
        states = form.states()
        assert states["bsc"] == "unavailable" and states["ethereum"] == "ok"
    finally:
        next(iter_form, None)


def test_recheck_alone_finds_the_network_down(database: Database, evm_testbed: EvmTestbed,
                                              bsc_node: devchain.AnvilNode) -> None:
    """A case filed without the API's check (an intake, a library caller) and a re-check against a
    stopped node: the re-check records no event, the case's bookkeeping is the evidence."""
    config = with_bsc_at(evm_testbed.config, bsc_node.url)
    clock = Clock(datetime.now(UTC).replace(microsecond=0))
    service = CaseService(database, config, clock)
    address = fresh_address()
    bsc_node.stop()
    reference = appeal(service, "carol", "bsc", "USDT", random_hash(), address)
    with database.read() as session:
        assert read_states(session, config, clock())["bsc"].state == "ok"  # never checked yet
    clock.advance(minutes=1)
    Recheck(service, ChainGateway(config), RecheckOptions(processes=0)).run()
    assert service.get(reference).case.status == "submitted"  # untouched: no event
    with database.read() as session:
        states = read_states(session, config, clock())
    assert states["bsc"].state == "unavailable" and states["bsc"].unavailable_since == clock()
    assert {s.state for name, s in states.items() if name != "bsc"} == {"ok"}


def test_a_backlog_of_unconfirmed_deposits_makes_the_network_delayed(database: Database,
                                                                     evm_testbed: EvmTestbed) -> None:
    form = next(iter_form := build_form(database, evm_testbed.config))
    try:
        for amount in (10, 20, 30):  # each is mined in its own block: fewer than ethereum's 12 confirmations
            tx = evm_testbed.send_token("ethereum", "USDT", form.addresses["alice"], amount * 10**6)
            filed = form.file("alice", "ethereum", tx)
            assert (filed["status"], filed["category"]) == ("awaiting_chain", "awaiting_confirmations")
        assert form.states()["ethereum"] == "ok"  # waiting, but not for long yet
        form.clock.advance(minutes=61)
        networks = form.networks()
        assert networks["ethereum"]["state"] == "delayed"
        assert networks["ethereum"]["state_message"] == (
            "Ethereum deposits are delayed, your appeal will be checked as soon as the network answers.")
        assert networks["bsc"]["state"] == "ok"
    finally:
        next(iter_form, None)


def test_the_window_starts_at_the_right_event_and_the_thresholds_apply(
    database: Database, default_config: Config
) -> None:
    """``first_event_since`` (a binary search over the events' ids) on events written a minute apart,
    and the thresholds of :class:`NetworkStatePolicy` on cases waiting for the chain."""
    start = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
    clock = Clock(start)
    service = CaseService(database, default_config, clock)
    references = []
    for minute in range(9):
        clock.now = start + timedelta(minutes=minute)
        references.append(appeal(service, f"user{minute}", "bsc", "USDT", random_hash(), fresh_address()))
    with database.read() as session:
        ids = list(session.exec(select(CaseEvent.id).where(col(CaseEvent.case_id).is_not(None))
                                .order_by(col(CaseEvent.id))).all())
        for minute in range(9):
            assert first_event_since(session, start + timedelta(minutes=minute, seconds=-1)) == ids[minute]
        assert first_event_since(session, start + timedelta(minutes=20)) is None
    # three of them could not be checked on bsc: awaiting_chain, never classified
    for reference in references[:3]:
        version = service.get(reference).case.version
        service.apply_decision(reference, None, SYSTEM, expected_version=version, unavailable={"bsc": "refused"})
    now = clock()
    with database.read() as session:
        assert read_states(session, default_config, now)["bsc"].state == "unavailable"
        later = now + timedelta(minutes=16)
        assert read_states(session, default_config, later)["bsc"].state == "ok"
        strict = NetworkStatePolicy(delayed_after=timedelta(minutes=5), delayed_min_cases=3)
        assert read_states(session, default_config, later, strict)["bsc"].state == "delayed"
        small = NetworkStatePolicy(backlog_cases=3)
        assert read_states(session, default_config, later, small)["bsc"].state == "delayed"
        assert read_states(session, default_config, later)["bsc"].waiting == 3
        # two days on, they are that transfer's problem, not the network's
        days_later = now + timedelta(days=2)
        assert read_states(session, default_config, days_later, strict)["bsc"].state == "ok"
        assert read_states(session, default_config, days_later)["bsc"].waiting == 0
