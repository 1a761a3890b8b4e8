"""The API while PostgreSQL is stopped and restarted: 503 with a JSON error, nothing half-stored,
and service again as soon as the database is back, without restarting the API."""

from __future__ import annotations

import secrets
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import jwt
import pytest
from sqlmodel import func, select

from app.api import create_app
from app.api_settings import ApiSettings
from recovery.db import Database
from recovery.models import Case
from recovery.services import CaseService
from tests.conftest import new_database
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.support.pgcluster import PgCluster

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

SECRET = "outage-test-secret-" + "x" * 40


def auth(user: str) -> dict[str, str]:
    issued = int(time.time())
    return {"Authorization": "Bearer " + jwt.encode({"sub": user, "iat": issued, "exp": issued + 600}, SECRET)}


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from new_database("postgresql", request, tmp_path)


def count_cases(db: Database) -> int:
    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(Case)).one())


def test_api_answers_503_while_postgresql_is_down_and_recovers(
    pg_db: Database, pg_cluster: PgCluster, evm_testbed: EvmTestbed
) -> None:
    service = CaseService(pg_db, evm_testbed.config)
    app = create_app(service, ApiSettings(jwt_secret=SECRET, check_timeout_seconds=2))
    client = TestClient(app, raise_server_exceptions=False)
    body = {"network": "ethereum", "asset": "USDT", "tx_hash": "0x" + secrets.token_hex(32),
            "deposit_address": fresh_address()}
    assert client.get("/v1/appeals", headers=auth("alice")).status_code == 200
    pg_cluster.stop_server()
    try:
        for method, path, payload in [("GET", "/v1/appeals", None), ("POST", "/v1/appeals", body),
                                      ("GET", "/v1/appeals/RC-000001", None)]:
            reply = client.request(method, path, json=payload, headers=auth("alice"))
            assert reply.status_code == 503, (path, reply.status_code, reply.text)
            assert reply.json()["code"] == "service_unavailable"
            assert "Traceback" not in reply.text
    finally:
        pg_cluster.start_server()
    assert count_cases(pg_db) == 0  # the POST during the outage stored nothing
    created = client.post("/v1/appeals", json=body, headers=auth("alice"))
    assert created.status_code == 201, created.text
    assert client.get("/v1/appeals", headers=auth("alice")).json()["appeals"][0]["tx_hash"] == body["tx_hash"]
