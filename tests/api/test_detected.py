"""Cases `recovery scan` opened (origin ``detected``) as the user sees them through the API, on the
anvil chains and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import dataclasses
from types import MappingProxyType
from typing import Any

from sqlmodel import col, select

from chains import devchain
from recovery.checking import ChainGateway
from recovery.config import Config, Network
from recovery.intake import validate_appeal
from recovery.models import CaseEvent
from recovery.scan import Scanner, ScanOptions, ScanSummary
from recovery.services import SYSTEM, CaseService
from recovery.vocabulary import Origin
from tests.api.conftest import ApiWorld, WorldFactory, bearer


def scan_from_here(world: ApiWorld, network: str) -> Config:
    """The world's configuration with ``network`` scanned from its next block (this test's blocks only)."""
    base = world.service.config
    head = int(devchain.rpc(world.testbed.url(network)).call("eth_blockNumber"), 16)
    scanned = Network.model_validate({**base.network(network).model_dump(), "scan_start_block": head + 1})
    return dataclasses.replace(base, networks=MappingProxyType({**base.networks, network: scanned}))


def scan(world: ApiWorld, config: Config, network: str) -> ScanSummary:
    service = CaseService(world.db, config, world.clock)
    gateway = ChainGateway(config, adapters={name: world.testbed.adapter(name) for name in world.testbed.nodes})
    return Scanner(service, gateway, ScanOptions(network=network)).run()


def appeal_body(world: ApiWorld, user: str, tx_hash: str, network: str) -> dict[str, Any]:
    return {"network": network, "asset": "USDT", "tx_hash": tx_hash, "deposit_address": world.addresses[user]}


def test_an_appeal_for_a_detected_deposit_gets_the_detected_case_even_past_the_rate_limit(
    make_world: WorldFactory,
) -> None:
    world = make_world(rate_limit=1, rate_window_seconds=3600)
    # alice's one appeal of the hour is used up
    own_tx = world.usdt_deposit("alice", 30 * 10**6)
    own = world.post("alice", appeal_body(world, "alice", own_tx, "ethereum"))
    assert own.status_code == 201, own.text
    assert world.post("alice", appeal_body(world, "alice", world.usdt_deposit("alice", 10**6), "ethereum")
                      ).status_code == 429

    # she sends USDT on bsc to her ethereum deposit address; the scan finds it first
    config = scan_from_here(world, "bsc")
    stray = world.usdt_deposit("alice", 250 * 10**18, network="bsc")
    summary = scan(world, config, "bsc")
    assert summary.opened == 1 and summary.categories == {"wrong_network": 1}
    [detected] = [c for c in world.cases() if c.tx_hash == stray]
    assert (detected.user_id, detected.origin, detected.network) == ("alice", "detected", "bsc")
    events = world.event_count()

    # her appeal, on the network she believes she used and on the one she did: the detected case, 200
    for network in ("ethereum", "bsc"):
        reply = world.post("alice", appeal_body(world, "alice", stray, network))
        assert reply.status_code == 200, reply.text
        assert reply.headers["location"] == f"/v1/appeals/{detected.reference}"
        view = reply.json()
        assert (view["reference"], view["origin"], view["category"]) == (detected.reference, "detected",
                                                                         "wrong_network")
    assert world.event_count() == events  # joining writes nothing
    assert len([c for c in world.cases() if c.tx_hash == stray]) == 1

    # the hot read path and the list show the origin and what happened, with the same fields
    one = world.get("alice", f"/v1/appeals/{detected.reference}")
    assert one.status_code == 200
    view = one.json()
    assert view["origin"] == "detected" and view["found_on_network"] == "bsc"
    first, *rest = view["timeline"]
    assert (first["event"], first["status"]) == ("detected", "submitted")
    assert first["message"].startswith("We found this deposit on bsc and opened this case for you")
    assert [e["event"] for e in rest] == ["checked"]
    listed = world.get("alice", "/v1/appeals").json()
    assert {a["reference"]: a["origin"] for a in listed["appeals"]} == {
        detected.reference: "detected", own.json()["reference"]: "appeal"}
    assert {frozenset(a) for a in listed["appeals"]} == {frozenset(view)}

    # the limit still holds for a new transfer; another user's appeal is their own case
    assert world.post("alice", appeal_body(world, "alice", world.usdt_deposit("alice", 2 * 10**6), "ethereum")
                      ).status_code == 429
    bob = world.post("bob", appeal_body(world, "alice", stray, "bsc"))
    assert bob.status_code == 201 and bob.json()["reference"] != detected.reference
    assert bob.json()["origin"] == "appeal"
    assert world.get("bob", f"/v1/appeals/{detected.reference}").status_code == 404


def test_a_detected_case_opened_through_the_service_is_found_before_the_limit(make_world: WorldFactory) -> None:
    world = make_world(rate_limit=1, rate_window_seconds=3600)
    assert world.post("alice", appeal_body(world, "alice", world.usdt_deposit("alice", 5 * 10**6), "ethereum")
                      ).status_code == 201
    stray = world.usdt_deposit("alice", 80 * 10**18, network="bsc")
    # the system opens it on the network where it landed, as the scan does
    draft = validate_appeal(world.service.config, appeal_body(world, "alice", stray, "bsc"), "alice")
    detected, created = world.service.submit(draft, SYSTEM, origin=Origin.DETECTED)
    assert created

    reply = world.post("alice", appeal_body(world, "alice", stray, "ethereum"))
    assert reply.status_code == 200, reply.text
    assert (reply.json()["reference"], reply.json()["origin"]) == (detected.reference, "detected")
    assert reply.json()["timeline"][0]["event"] == "detected"
    with world.db.read() as session:
        actions = session.exec(select(CaseEvent.action).where(CaseEvent.case_id == detected.id)
                               .order_by(col(CaseEvent.id))).all()
    assert list(actions) == ["submit"]


def test_a_reserved_placeholder_subject_is_refused(world: ApiWorld) -> None:
    reply = world.client.get("/v1/appeals", headers=bearer("shared:xrpl:rSomeSharedAddress"))
    assert reply.status_code == 401 and reply.json()["code"] == "invalid_token"
