"""Real local EVM chains for the tests: one anvil with chain id 1 (``ethereum``) and one with chain
id 56 (``bsc``), started once per test session on ephemeral loopback ports.

Every token the default configuration lists on those networks works at its configured (mainnet)
contract address, so the configuration the tests use is the shipped one with only the RPC URLs
changed. The other EVM networks of the default configuration are left out of the test
configuration: nothing runs for them, and a cross-network search must be able to answer.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import requests
from eth_utils.address import to_checksum_address
from web3.types import TxParams, Wei

from chains import devchain
from chains.devchain import DEV_ACCOUNTS, AnvilNode, SeedTransfer
from chains.evm import EvmAdapter
from recovery.config import Config, Network

#: network name -> chain id of the local test chains
TEST_CHAINS: Mapping[str, int] = MappingProxyType({"ethereum": 1, "bsc": 56})
#: the dev account that funds everything (owner of every test token)
FUNDER = DEV_ACCOUNTS[0]


def fresh_address() -> str:
    """A new random checksummed address (a deposit address, a stranger, ...)."""
    return str(to_checksum_address("0x" + secrets.token_hex(20)))


@dataclass
class EvmTestbed:
    """The running test chains and a configuration that points at them."""

    config: Config
    nodes: Mapping[str, AnvilNode]
    #: network -> symbol -> contract address of the listed tokens
    tokens: Mapping[str, Mapping[str, str]]
    _adapters: dict[str, EvmAdapter] = field(default_factory=dict)

    def url(self, network: str) -> str:
        return self.nodes[network].url

    def adapter(self, network: str) -> EvmAdapter:
        """One shared adapter per network (adapters are thread-safe and cache token metadata)."""
        if network not in self._adapters:
            self._adapters[network] = EvmAdapter(self.config.network(network))
        return self._adapters[network]

    def send_native(self, network: str, to: str, value: int, *, sender: str = FUNDER) -> str:
        return devchain.seed_transfers(self.url(network), [SeedTransfer(sender, to, value=value)])[0]

    def send_token(self, network: str, token: str, to: str, amount: int, *, sender: str = FUNDER) -> str:
        """``token`` is a listed symbol on ``network`` or a contract address."""
        contract = self.tokens[network].get(token, token)
        return devchain.seed_transfers(self.url(network), [SeedTransfer(sender, to, token=contract, amount=amount)])[0]

    def deploy(self, network: str, contract: str, *args: object) -> str:
        return devchain.deploy(devchain.web3_for(self.url(network)), contract, *args)

    def new_token(self, network: str, name: str, symbol: str, decimals: int, supply: int) -> str:
        """An unlisted token held by :data:`FUNDER`."""
        return self.deploy(network, "TestToken", name, symbol, decimals, FUNDER, supply)

    def mine(self, network: str, blocks: int = 1) -> None:
        devchain.mine(self.url(network), blocks)

    def transact(
        self, network: str, contract: str, address: str, function: str, *args: object,
        sender: str = FUNDER, value: int = 0,
    ) -> str:
        """Call ``function`` of the deployed ``contracts/<contract>.sol`` at ``address`` in a mined
        transaction (it must succeed); returns the transaction hash."""
        w3 = devchain.web3_for(self.url(network))
        handle = w3.eth.contract(address=to_checksum_address(address), abi=devchain.artifact(contract).abi)
        params: TxParams = {"from": to_checksum_address(sender), "value": Wei(value)}
        tx_hash = handle.functions[function](*args).transact(params)
        receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
        assert receipt["status"] == 1, f"{contract}.{function} failed"
        return tx_hash.to_0x_hex()


def _test_config(base: Config, urls: Mapping[str, str]) -> Config:
    evm_names = {n.name for n in base.networks_of_family("evm")}
    networks = {
        name: (net.model_copy(update={"rpc_urls": (urls[name],)}) if name in urls else net)
        for name, net in base.networks.items()
        if name in urls or name not in evm_names
    }
    assets = tuple(a for a in base.assets if a.network in networks)
    return dataclasses.replace(base, networks=MappingProxyType(networks), assets=assets)


@pytest.fixture(scope="session")
def evm_testbed(default_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmTestbed]:
    """The session's local chains (started on first use, stopped at the end)."""
    logs: Path = tmp_path_factory.mktemp("anvil")
    nodes: dict[str, AnvilNode] = {}
    try:
        for name, chain_id in TEST_CHAINS.items():
            nodes[name] = devchain.start_anvil(chain_id, log_path=logs / f"{name}.log")
        tokens: dict[str, Mapping[str, str]] = {}
        for name, node in nodes.items():
            installed = devchain.install_listed_tokens(node.url, default_config, name)
            for address in installed.values():
                devchain.mint(node.url, address, FUNDER, 10**30)
            tokens[name] = MappingProxyType(installed)
        config = _test_config(default_config, {name: node.url for name, node in nodes.items()})
        yield EvmTestbed(config, MappingProxyType(nodes), MappingProxyType(tokens))
    finally:
        for node in nodes.values():
            node.stop()


# --------------------------------------------------------------------------- misbehaving nodes


def network_variant(base: Network, *urls: str, **changes: object) -> Network:
    """``base`` with other ``rpc_urls`` and/or other keys (validated like the TOML entry)."""
    data = base.model_dump()
    data.update(base.model_extra or {})
    if urls:
        data["rpc_urls"] = list(urls)
    data.update(changes)
    return Network.model_validate(data)


def dead_url() -> str:
    """A loopback URL where nothing listens (a node that is down)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@dataclass(frozen=True)
class Reply:
    """What a :class:`LocalNode` answers: a status, headers and a body (bytes, text, or JSON)."""

    body: Any = b""
    status: int = 200
    headers: Mapping[str, str] = field(default_factory=dict)

    def encoded(self) -> bytes:
        if isinstance(self.body, bytes):
            return self.body
        if isinstance(self.body, str):
            return self.body.encode()
        return json.dumps(self.body).encode()


@dataclass(frozen=True)
class Received:
    """One request a :class:`LocalNode` received."""

    at: float
    body: Any

    @property
    def methods(self) -> list[str]:
        calls = self.body if isinstance(self.body, list) else [self.body]
        return [str(c.get("method")) for c in calls if isinstance(c, dict)]

    @property
    def is_batch(self) -> bool:
        return isinstance(self.body, list)


#: a behaviour sees the decoded request (and how many came before it); it answers, or returns None
#: to let the request through to the upstream node
Behaviour = Callable[[Any, int], "Reply | None"]


class LocalNode:
    """A real HTTP server on 127.0.0.1 (ephemeral port) in a thread, standing in for a node.

    Each POST goes to ``behaviour``; when that returns None (or there is no behaviour) the body is
    forwarded to ``upstream`` (a real anvil) and its answer returned unchanged. Every request is
    recorded in :attr:`received` (time and decoded body).
    """

    def __init__(self, behaviour: Behaviour | None = None, upstream: str | None = None) -> None:
        self.behaviour = behaviour
        self.upstream = upstream
        self.received: list[Received] = []
        self._lock = threading.Lock()
        self._session = requests.Session()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler())
        self._server.daemon_threads = True
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, name="local-node", daemon=True
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def methods(self) -> list[str]:
        """Every JSON-RPC method received, in order (batches flattened)."""
        with self._lock:
            return [m for r in self.received for m in r.methods]

    def __enter__(self) -> LocalNode:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._session.close()

    def _answer(self, raw: bytes) -> tuple[int, Mapping[str, str], bytes]:
        try:
            body = json.loads(raw)
        except ValueError:
            body = raw
        with self._lock:
            count = len(self.received)
            self.received.append(Received(time.monotonic(), body))
        reply = self.behaviour(body, count) if self.behaviour is not None else None
        if reply is not None:
            return reply.status, reply.headers, reply.encoded()
        if self.upstream is None:
            return 500, {}, b"no upstream"
        answer = self._session.post(self.upstream, data=raw, headers={"Content-Type": "application/json"}, timeout=60)
        return answer.status_code, {}, answer.content

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        node = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"
            disable_nagle_algorithm = True  # no 40 ms delayed-ACK stall between headers and body

            def log_message(self, format: str, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, headers, body = node._answer(raw)
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                for key, value in headers.items():
                    self.send_header(key, value)
                self.end_headers()
                # the client may have given up first (the timeout tests do this on purpose)
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self.wfile.write(body)

        return Handler


def rpc_error(request: Any, code: int, message: str) -> Reply:
    """A JSON-RPC error object for every call of ``request`` (a batch gets a list)."""
    calls = request if isinstance(request, list) else [request]
    errors = [{"jsonrpc": "2.0", "id": c.get("id"), "error": {"code": code, "message": message}} for c in calls]
    return Reply(errors if isinstance(request, list) else errors[0])
