"""Appeals through the API against real anvil chains and a real database (SQLite and PostgreSQL)."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from xrpl.wallet import Wallet

from app.api_settings import ApiSettings
from recovery.checking import ChainGateway
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import (
    SECRET,
    ApiWorld,
    SilentNode,
    WorldFactory,
    bearer,
    config_with_urls,
    make_client,
)

APPEAL_FIELDS = {
    "reference", "status", "network", "asset", "tx_hash", "deposit_address", "category", "recoverable",
    "resolution", "flags", "fee", "net_amount", "reasons", "refund_tx_hash", "timeline", "created_at", "updated_at",
}


XRP_ADDRESS = Wallet.create().classic_address


def usdt_appeal(world: ApiWorld, user: str, tx_hash: str, *, network: str = "ethereum", **extra: Any) -> dict[str, Any]:
    return {"network": network, "asset": "USDT", "tx_hash": tx_hash, "deposit_address": world.addresses[user],
            **extra}


def random_hash() -> str:
    return "0x" + secrets.token_hex(32)


def test_valid_usdt_deposit_is_classified_in_the_response(world: ApiWorld) -> None:
    tx_hash = world.usdt_deposit("alice", 250 * 10**6)

    response = world.post("alice", usdt_appeal(world, "alice", tx_hash, amount="250"))

    assert response.status_code == 201, response.text
    appeal = response.json()
    assert set(appeal) >= APPEAL_FIELDS
    assert response.headers["location"] == f"/v1/appeals/{appeal['reference']}"
    assert appeal["status"] == "in_review"
    assert (appeal["category"], appeal["recoverable"], appeal["resolution"]) == ("uncredited_valid", "yes", "credit")
    assert appeal["found_on_network"] == "ethereum"
    assert appeal["amount"] == "250" and appeal["claimed_amount"] == "250"
    assert appeal["fee"]["amount"] == "0" and appeal["fee"]["asset"] == "USDT" and appeal["fee"]["usd"] == "0.00"
    assert appeal["net_amount"] == "250"
    assert appeal["flags"] == []
    assert {r["code"] for r in appeal["reasons"]} >= {"found", "uncredited_valid", "fee"}
    assert [e["event"] for e in appeal["timeline"]] == ["submitted", "checked"]
    assert appeal["timeline"][1]["category"] == "uncredited_valid"

    again = world.get("alice", f"/v1/appeals/{appeal['reference']}")
    assert again.status_code == 200
    assert again.json() == appeal
    listed = world.get("alice", "/v1/appeals").json()
    assert listed["total"] == 1 and listed["appeals"] == [appeal]


def test_wrong_network_appeal_carries_the_fee_quote(world: ApiWorld) -> None:
    # USDT on BNB Smart Chain to the address alice got for Ethereum (an EOA: same key on bsc).
    tx_hash = world.usdt_deposit("alice", 500 * 10**18, network="bsc")

    response = world.post("alice", usdt_appeal(world, "alice", tx_hash, network="bsc", amount="500"))

    assert response.status_code == 201, response.text
    appeal = response.json()
    assert appeal["category"] == "wrong_network" and appeal["recoverable"] == "yes"
    # 5% of the value above 100 USD = 20 USD, at least 20 USD.
    assert appeal["fee"]["amount"] == "20" and appeal["fee"]["usd"] == "20.00" and appeal["fee"]["asset"] == "USDT"
    breakdown = appeal["fee"]["breakdown"]
    assert (breakdown["percent"], breakdown["free_below_usd"], breakdown["min_usd"]) == ("0.05", "100", "20")
    assert breakdown["value_usd"] == "500" and breakdown["net"] == "480"
    assert appeal["net_amount"] == "480"
    assert any(r["code"] == "wrong_network" for r in appeal["reasons"])


def test_unconfirmed_deposit_waits_for_the_chain(world: ApiWorld) -> None:
    tx_hash = world.usdt_deposit("alice", 30 * 10**6, confirm=False)

    appeal = world.post("alice", usdt_appeal(world, "alice", tx_hash)).json()

    assert appeal["status"] == "awaiting_chain"
    assert appeal["category"] == "awaiting_confirmations"


def test_a_hung_node_gives_awaiting_chain_within_the_check_timeout(
    world: ApiWorld, silent_node: SilentNode
) -> None:
    config = config_with_urls(world.testbed.config, {"ethereum": silent_node.url, "bsc": silent_node.url})
    service = CaseService(world.db, config, world.clock)
    client = make_client(service, ApiSettings(jwt_secret=SECRET, check_timeout_seconds=0.5),
                         ChainGateway(config))
    started = time.monotonic()

    response = client.post("/v1/appeals", json=usdt_appeal(world, "alice", random_hash()), headers=bearer("alice"))

    elapsed = time.monotonic() - started
    assert response.status_code == 201, response.text
    appeal = response.json()
    assert appeal["status"] == "awaiting_chain"
    assert appeal["category"] is None and appeal["fee"] is None
    assert [e["event"] for e in appeal["timeline"]] == ["submitted", "awaiting_chain"]
    # The node never answers (the transport would wait 10 s per attempt): the check is cut at 0.5 s.
    assert elapsed < 5, elapsed
    client.close()


def test_resending_the_same_transfer_returns_the_existing_appeal(world: ApiWorld) -> None:
    tx_hash = world.usdt_deposit("alice", 40 * 10**6)
    first = world.post("alice", usdt_appeal(world, "alice", tx_hash, amount="40"))
    events = world.event_count()

    # Same network and hash, spelled in upper case and with another amount: still the same appeal.
    second = world.post("alice", usdt_appeal(world, "alice", "0x" + tx_hash[2:].upper(), amount="41"))

    assert (first.status_code, second.status_code) == (201, 200)
    assert second.json()["reference"] == first.json()["reference"]
    assert second.json()["claimed_amount"] == "40"
    assert len(world.cases()) == 1
    assert world.event_count() == events


def test_two_users_appealing_one_transfer_are_both_accepted_and_contested(world: ApiWorld) -> None:
    tx_hash = world.usdt_deposit("alice", 75 * 10**6)
    body = usdt_appeal(world, "alice", tx_hash)

    alice = world.post("alice", body)
    bob = world.post("bob", body)

    assert (alice.status_code, bob.status_code) == (201, 201)
    assert alice.json()["reference"] != bob.json()["reference"]
    cases = {c.user_id: c for c in world.cases()}
    assert set(cases) == {"alice", "bob"}
    assert all("contested" in c.flags for c in cases.values())
    # The review flag and the other appellant stay internal.
    for user, other in (("alice", "bob"), ("bob", "alice")):
        reference = cases[user].reference
        text = world.get(user, f"/v1/appeals/{reference}").text
        assert "contested" not in text
        assert other not in text
        assert world.get(user, "/v1/appeals").json()["total"] == 1


@pytest.mark.parametrize(
    ("body", "bad_fields"),
    [
        (
            {"network": "ethereum", "asset": "US DT!", "tx_hash": "0x1234", "deposit_address": "0xnothex",
             "memo": "7", "amount": "-5"},
            {"asset", "tx_hash", "deposit_address", "memo", "amount"},
        ),
        ({"network": "dogecoin", "asset": "USDT", "tx_hash": "ab", "deposit_address": "x"}, {"network"}),
        ({}, {"network", "asset", "tx_hash", "deposit_address"}),
        (
            {"network": "ethereum", "asset": "USDT", "tx_hash": "0x" + "ab" * 32,
             "deposit_address": "0x" + "11" * 20, "amount": 12.5, "user_id": "mallory"},
            {"amount", "user_id"},
        ),
        (
            {"network": "xrpl", "asset": "XRP", "tx_hash": "AB" * 32, "deposit_address": XRP_ADDRESS,
             "memo": "12 34", "amount": "1e3"},
            {"memo", "amount"},
        ),
        ({"network": ["ethereum"], "asset": 5, "tx_hash": None, "deposit_address": True}, {"network", "asset",
                                                                                          "tx_hash",
                                                                                          "deposit_address"}),
        ({"network": "ethereum", "asset": "USDT", "tx_hash": "0x" + "ab" * 32, "deposit_address": "0x" + "1" * 200},
         {"deposit_address"}),
        ({"network": "stellar", "asset": "XLM", "tx_hash": "ab" * 32, "deposit_address": "G" + "A" * 55,
          "memo": "a\x00b"}, {"memo", "deposit_address"}),
    ],
)
def test_invalid_appeals_name_each_bad_field_and_store_nothing(
    world: ApiWorld, body: dict[str, Any], bad_fields: set[str]
) -> None:
    response = world.post("alice", body)

    assert response.status_code == 422, response.text
    error = response.json()
    assert error["code"] == "validation_failed"
    assert {e["field"] for e in error["errors"]} == bad_fields
    assert all(e["message"] for e in error["errors"])
    assert world.cases() == []
    assert world.event_count() == 0


def test_malformed_bodies_are_refused_without_storing(world: ApiWorld) -> None:
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    not_json = world.client.post("/v1/appeals", content=b'{"network": "ethereum",', headers=headers)
    not_object = world.client.post("/v1/appeals", content=b'["ethereum"]', headers=headers)
    form = world.client.post("/v1/appeals", data={"network": "ethereum"}, headers=bearer("alice"))

    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_json")
    assert (not_object.status_code, not_object.json()["code"]) == (422, "validation_failed")
    assert not_object.json()["errors"][0]["field"] == "body"
    assert (form.status_code, form.json()["code"]) == (415, "unsupported_media_type")
    assert world.cases() == []


def test_another_users_appeal_is_404_exactly_like_a_missing_one(world: ApiWorld) -> None:
    alice = world.post("alice", usdt_appeal(world, "alice", random_hash())).json()

    foreign = world.get("bob", f"/v1/appeals/{alice['reference']}")
    missing = world.get("bob", "/v1/appeals/RC-999999")
    garbage = world.get("bob", "/v1/appeals/%00%27%20or%201=1")

    assert foreign.status_code == missing.status_code == garbage.status_code == 404
    assert foreign.json() == missing.json() == garbage.json() == {"code": "not_found", "message": "no such appeal"}
    assert world.get("bob", "/v1/appeals").json() == {"appeals": [], "total": 0, "limit": 50, "offset": 0}


def test_list_is_newest_first_and_paginated(world: ApiWorld) -> None:
    references = [world.post("alice", usdt_appeal(world, "alice", random_hash())).json()["reference"]
                  for _ in range(3)]

    page = world.get("alice", "/v1/appeals?limit=2").json()
    rest = world.get("alice", "/v1/appeals?limit=2&offset=2").json()
    bad = world.get("alice", "/v1/appeals?limit=0&offset=-1")

    assert [a["reference"] for a in page["appeals"]] == references[::-1][:2]
    assert [a["reference"] for a in rest["appeals"]] == references[:1]
    assert page["total"] == rest["total"] == 3
    assert bad.status_code == 422
    assert {e["field"] for e in bad.json()["errors"]} == {"limit", "offset"}


def test_the_timeline_shows_the_user_what_concerns_them_and_nothing_internal(world: ApiWorld) -> None:
    tx_hash = world.usdt_deposit("alice", 60 * 10**6)
    appeal = world.post("alice", usdt_appeal(world, "alice", tx_hash)).json()
    reference = appeal["reference"]
    service = world.service
    specialist = Actor("sam.specialist", Role.SPECIALIST)

    def version() -> int:
        return service.get(reference).case.version

    service.assign(reference, "sam.specialist", specialist, expected_version=version())
    service.note(reference, "internal: user looks like a reseller", specialist, expected_version=version())
    service.request_info(reference, "Please send a screenshot of the withdrawal.", specialist,
                         expected_version=version())
    service.provide_info(reference, "Here it is.", Actor("alice", Role.USER), expected_version=version())
    service.reject(reference, "ownership_not_proven", specialist, expected_version=version())

    shown = world.get("alice", f"/v1/appeals/{reference}")

    body = shown.json()
    events = [e["event"] for e in body["timeline"]]
    assert events == ["submitted", "checked", "information_requested", "information_provided", "rejected"]
    assert body["status"] == "rejected"
    assert body["timeline"][2]["message"] == "Please send a screenshot of the withdrawal."
    assert body["timeline"][4]["reason_code"] == "ownership_not_proven"
    assert "confirm that you sent" in body["timeline"][4]["message"]
    assert "sam.specialist" not in shown.text and "reseller" not in shown.text
    assert "specialist" not in shown.text and "system" not in shown.text


def test_networks_are_public_with_memo_rules_and_format_hints(make_world: WorldFactory) -> None:
    world = make_world()
    response = world.client.get("/v1/networks")

    assert response.status_code == 200
    networks = {n["name"]: n for n in response.json()["networks"]}
    assert {"ethereum", "bsc", "xrpl", "stellar"} <= set(networks)
    eth = networks["ethereum"]
    assert eth["memo_required"] is False and eth["memo_format"] == "none"
    assert eth["address_pattern"] == r"^0x[0-9a-fA-F]{40}$"
    assert {"USDT", "USDC", "ETH"} <= {a["symbol"] for a in eth["assets"]}
    usdt = next(a for a in eth["assets"] if a["symbol"] == "USDT")
    assert usdt["contract"] == "0xdAC17F958D2ee523a2206206994597C13D831ec7" and usdt["decimals"] == 6
    assert networks["xrpl"]["memo_required"] is True and networks["xrpl"]["memo_format"] == "uint32"
    assert "0 to 4294967295" in networks["xrpl"]["memo_hint"]
    assert response.headers["cache-control"].startswith("public")
