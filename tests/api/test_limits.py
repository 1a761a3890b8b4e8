"""Body-size limit, per-user rate limit, CORS, and the JSON shape of every error."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import text

from app.api_settings import ApiSettings
from recovery.config import Config
from recovery.db import Database, connect
from recovery.services import CaseService
from tests.api.conftest import SECRET, ApiWorld, TestClient, WorldFactory, bearer, make_client


def appeal(world: ApiWorld, user: str = "alice") -> dict[str, Any]:
    return {"network": "ethereum", "asset": "USDT", "tx_hash": "0x" + secrets.token_hex(32),
            "deposit_address": world.addresses[user]}


@pytest.fixture
def client(sqlite_db: Database, default_config: Config) -> Iterator[TestClient]:
    with make_client(CaseService(sqlite_db, default_config), ApiSettings(jwt_secret=SECRET)) as test_client:
        yield test_client


def assert_error(response: Any, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/json")
    body: dict[str, Any] = response.json()
    assert body["code"] == code and body["message"]
    assert "Traceback" not in response.text and 'File "' not in response.text
    return body


# ------------------------------------------------------------------------------------ body size

def test_bodies_over_16_kib_are_refused_before_anything_is_read(client: TestClient, sqlite_db: Database) -> None:
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    padding = "x" * (16 * 1024)
    declared = client.post("/v1/appeals", content=f'{{"memo": "{padding}"}}'.encode(), headers=headers)
    chunked = client.post("/v1/appeals", content=iter([b'{"memo": "', padding.encode(), b'"}']), headers=headers)
    unauthenticated = client.post("/v1/appeals", content=padding.encode() * 2, headers={"Content-Type": "text/plain"})

    assert_error(declared, 413, "payload_too_large")
    assert_error(chunked, 413, "payload_too_large")
    assert_error(unauthenticated, 413, "payload_too_large")
    with sqlite_db.read() as session:
        assert session.execute(text("SELECT count(*) FROM cases")).scalar_one() == 0


def test_a_body_just_under_the_limit_reaches_validation(client: TestClient) -> None:
    headers = {**bearer("alice"), "Content-Type": "application/json"}
    body = b'{"memo": "' + b"x" * (16 * 1024 - 12) + b'"}'
    assert len(body) <= 16 * 1024
    response = client.post("/v1/appeals", content=body, headers=headers)
    errors = assert_error(response, 422, "validation_failed")["errors"]
    assert {"network", "asset", "tx_hash", "deposit_address", "memo"} == {e["field"] for e in errors}


# ------------------------------------------------------------------------------------ rate limit

def test_appeal_creation_is_rate_limited_per_user_with_retry_after(make_world: WorldFactory) -> None:
    world = make_world(rate_limit=3, rate_window_seconds=3600)
    created = [world.post("alice", appeal(world)) for _ in range(3)]
    assert [r.status_code for r in created] == [201, 201, 201]

    refused = world.post("alice", appeal(world))

    body = assert_error(refused, 429, "rate_limited")
    retry_after = int(refused.headers["retry-after"])
    assert 3590 <= retry_after <= 3600 and body["retry_after"] == retry_after
    assert len(world.cases()) == 3
    # Resending an existing appeal is not a new one: still answered.
    first = created[0].json()
    resent = world.post("alice", {k: first[k] for k in ("network", "asset", "tx_hash", "deposit_address")})
    assert resent.status_code == 200 and resent.json()["reference"] == first["reference"]
    # Another user is not affected.
    assert world.post("bob", appeal(world, "bob")).status_code == 201
    # Once the oldest appeal leaves the window, one more is allowed.
    world.clock.advance(seconds=3601)
    assert world.post("alice", appeal(world)).status_code == 201
    assert world.post("alice", appeal(world)).status_code == 201
    assert world.post("alice", appeal(world)).status_code == 201
    assert world.post("alice", appeal(world)).status_code == 429


def test_concurrent_requests_of_one_user_cannot_pass_the_limit(make_world: WorldFactory) -> None:
    world = make_world(rate_limit=3)
    bodies = [appeal(world) for _ in range(8)]
    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = sorted(pool.map(lambda body: world.post("alice", body).status_code, bodies))
    assert statuses == [201] * 3 + [429] * 5
    assert len(world.cases()) == 3


# ------------------------------------------------------------------------------------ CORS

def test_no_cross_origin_access_by_default(client: TestClient) -> None:
    response = client.get("/v1/networks", headers={"Origin": "https://form.example"})
    preflight = client.options("/v1/appeals", headers={"Origin": "https://form.example",
                                                       "Access-Control-Request-Method": "POST"})
    assert "access-control-allow-origin" not in response.headers
    assert "access-control-allow-origin" not in preflight.headers


def test_configured_origins_may_call_the_api(sqlite_db: Database, default_config: Config,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_API_CORS_ORIGINS", "https://form.example, https://m.form.example")
    settings = ApiSettings(jwt_secret=SECRET)
    assert settings.cors_origins == ("https://form.example", "https://m.form.example")
    with make_client(CaseService(sqlite_db, default_config), settings) as client:
        allowed = client.options("/v1/appeals", headers={
            "Origin": "https://form.example", "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization, content-type"})
        other = client.options("/v1/appeals", headers={"Origin": "https://evil.example",
                                                       "Access-Control-Request-Method": "POST"})
        simple = client.get("/v1/networks", headers={"Origin": "https://form.example"})

    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://form.example"
    assert "authorization" in allowed.headers["access-control-allow-headers"].lower()
    assert other.status_code == 400 and "access-control-allow-origin" not in other.headers
    assert simple.headers["access-control-allow-origin"] == "https://form.example"


def test_wildcard_origin_is_refused() -> None:
    with pytest.raises(ValueError, match="not allowed"):
        ApiSettings(jwt_secret=SECRET, cors_origins="*")


# ------------------------------------------------------------------------------------ errors

def test_unknown_paths_and_methods_are_json_errors(client: TestClient) -> None:
    assert_error(client.get("/v2/nothing"), 404, "not_found")
    method = assert_error(client.delete("/v1/appeals"), 405, "method_not_allowed")
    assert method
    assert client.delete("/v1/appeals").headers["allow"]


def test_a_database_that_is_down_is_503_without_details(default_config: Config) -> None:
    down = connect("postgresql+psycopg://recovery@127.0.0.1:1/recovery")
    with make_client(CaseService(down, default_config), ApiSettings(jwt_secret=SECRET)) as client:
        response = client.get("/v1/appeals", headers=bearer("alice"))
    body = assert_error(response, 503, "service_unavailable")
    assert "127.0.0.1" not in response.text and "psycopg" not in response.text
    assert body == {"code": "service_unavailable", "message": body["message"]}
    down.dispose()


def test_an_unexpected_failure_is_500_without_a_stack_trace(sqlite_db: Database, default_config: Config) -> None:
    service = CaseService(sqlite_db, default_config)
    with make_client(service, ApiSettings(jwt_secret=SECRET, check_timeout_seconds=0.5)) as ok_client:
        created = ok_client.post("/v1/appeals", json={
            "network": "tron", "asset": "USDT", "tx_hash": "ab" * 32,
            "deposit_address": "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"}, headers=bearer("alice"))
    assert created.status_code == 201, created.text
    with sqlite_db.write() as session:  # a row no code path writes: a status outside the vocabulary
        session.execute(text("UPDATE cases SET status = 'corrupted'"))

    client = make_client(service, ApiSettings(jwt_secret=SECRET), raise_server_exceptions=False)
    response = client.get(f"/v1/appeals/{created.json()['reference']}", headers=bearer("alice"))

    assert assert_error(response, 500, "internal_error") == {"code": "internal_error",
                                                             "message": "internal error; it has been logged"}
    client.close()
