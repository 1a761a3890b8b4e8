"""The API over a real database (SQLite and PostgreSQL) and the real local anvil chains."""

from __future__ import annotations

import dataclasses
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import MappingProxyType
from typing import Any

import jwt
import pytest
from sqlmodel import col, func, select

from app.api import create_app
from app.api_settings import ApiSettings
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.imports import import_addresses
from recovery.models import Case, CaseEvent
from recovery.services import CaseService
from tests.conftest import new_database
from tests.fixtures_anvil import EvmTestbed, fresh_address

with warnings.catch_warnings():
    warnings.simplefilter("ignore")  # starlette suggests httpx2; httpx is what the project ships
    from starlette.testclient import TestClient as TestClient

SECRET = "api-test-secret-" + "k" * 48
USERS = ("alice", "bob", "carol")


def token(sub: Any = "alice", *, secret: str = SECRET, algorithm: str = "HS256", expires_in: float = 300,
          **claims: Any) -> str:
    now = int(time.time())
    payload: dict[str, Any] = {"sub": sub, "iat": now, "exp": int(now + expires_in), **claims}
    return jwt.encode({k: v for k, v in payload.items() if v is not None}, secret, algorithm=algorithm)


def bearer(sub: str = "alice", **kwargs: Any) -> dict[str, str]:
    return {"Authorization": f"Bearer {token(sub, **kwargs)}"}


class MovableClock:
    """Real time plus an offset the test can move forward (for the rate-limit window)."""

    def __init__(self) -> None:
        self.offset = timedelta(0)

    def __call__(self) -> datetime:
        return datetime.now(UTC) + self.offset

    def advance(self, **delta: float) -> None:
        self.offset += timedelta(**delta)


@dataclass
class ApiWorld:
    client: TestClient
    service: CaseService
    db: Database
    testbed: EvmTestbed
    clock: MovableClock
    #: user -> their Ethereum deposit address (an EOA, so valid on every EVM network)
    addresses: dict[str, str] = field(default_factory=dict)

    def post(self, user: str, body: Any, **kwargs: Any) -> Any:
        return self.client.post("/v1/appeals", json=body, headers=bearer(user), **kwargs)

    def get(self, user: str, path: str) -> Any:
        return self.client.get(path, headers=bearer(user))

    def cases(self) -> list[Case]:
        with self.db.read() as session:
            return list(session.exec(select(Case).order_by(Case.id)).all())  # type: ignore[arg-type]

    def event_count(self) -> int:
        """Events about cases (the import of the world's addresses is an event about no case)."""
        with self.db.read() as session:
            return int(session.exec(select(func.count()).select_from(CaseEvent)
                                    .where(col(CaseEvent.case_id).is_not(None))).one())

    def usdt_deposit(self, user: str, amount_units: int, *, network: str = "ethereum", confirm: bool = True) -> str:
        """A real USDT transfer to the user's deposit address; mined past the confirmations if ``confirm``."""
        tx_hash = self.testbed.send_token(network, "USDT", self.addresses[user], amount_units)
        if confirm:
            self.testbed.mine(network, self.testbed.config.network(network).confirmations)
        return tx_hash


def import_deposit_addresses(db: Database, config: Config, folder: Path) -> dict[str, str]:
    addresses = {user: fresh_address() for user in USERS}
    path = folder / "addresses.csv"
    lines = ["user_id,network,address,memo,kind"] + [f"{u},ethereum,{a},,eoa" for u, a in addresses.items()]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    import_addresses(db, config, path)
    return addresses


def make_client(service: CaseService, settings: ApiSettings, gateway: ChainGateway | None = None,
                *, raise_server_exceptions: bool = True) -> TestClient:
    app = create_app(service, settings, gateway=gateway)
    return TestClient(app, raise_server_exceptions=raise_server_exceptions)


def gateway_for(testbed: EvmTestbed) -> ChainGateway:
    """A gateway using the testbed's shared adapters (the other networks are not asked for EVM hashes)."""
    return ChainGateway(testbed.config, adapters={name: testbed.adapter(name) for name in testbed.nodes})


WorldFactory = Callable[..., ApiWorld]


@pytest.fixture
def make_world(database: Database, evm_testbed: EvmTestbed, tmp_path: Path) -> Iterator[WorldFactory]:
    """Build the API over the parametrized database and the anvil chains, with settings overrides."""
    clients: list[TestClient] = []
    addresses = import_deposit_addresses(database, evm_testbed.config, tmp_path)

    def build(**overrides: Any) -> ApiWorld:
        clock = MovableClock()
        service = CaseService(database, evm_testbed.config, clock)
        settings = ApiSettings(jwt_secret=SECRET, **overrides)
        client = make_client(service, settings, gateway_for(evm_testbed))
        client.__enter__()  # runs the app's lifespan (its shutdown closes the read connections)
        clients.append(client)
        return ApiWorld(client, service, database, evm_testbed, clock, dict(addresses))

    yield build
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def world(make_world: WorldFactory) -> ApiWorld:
    return make_world()


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """One SQLite database, for tests whose subject is not storage (auth, limits, CORS)."""
    yield from new_database("sqlite", request, tmp_path)


class SilentNode:
    """A TCP server that accepts connections and never answers: a hung chain node."""

    def __init__(self) -> None:
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(64)
        self.sock.settimeout(0.2)
        self.connections: list[socket.socket] = []
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.sock.getsockname()[1]}"

    def _serve(self) -> None:
        while not self.stopped.is_set():
            try:
                conn, _ = self.sock.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            self.connections.append(conn)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        for conn in self.connections:
            conn.close()
        self.sock.close()


@pytest.fixture
def silent_node() -> Iterator[SilentNode]:
    node = SilentNode()
    yield node
    node.close()


def config_with_urls(config: Config, urls: dict[str, str]) -> Config:
    networks = {name: (net.model_copy(update={"rpc_urls": (urls[name],)}) if name in urls else net)
                for name, net in config.networks.items()}
    return dataclasses.replace(config, networks=MappingProxyType(networks))
