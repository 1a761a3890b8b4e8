"""Local EVM chains: anvil processes, the test contracts, and fast bulk seeding.

Used by ``recovery devchain up|down|status`` (one detached anvil per local EVM network of the
configuration, state in ``var/devchain/``), by the pytest fixtures (session-scoped anvils on
ephemeral ports that die with the test process), by the demo and by the benchmarks.

Tools come from the npm packages pinned in the repository's ``package.json``: the anvil binary
(``@foundry-rs/anvil-linux-amd64``, the registry package that ships the binary the
``@foundry-rs/anvil`` launcher runs) and ``solc`` + ``@openzeppelin/contracts`` for the
contracts in ``contracts/``, compiled offline into ``contracts/build/`` (``npm ci && npm run
compile``, or lazily by :func:`artifact`).
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import platform
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final, Literal, Protocol
from urllib.parse import urlparse

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware

from chains.network import Network
from chains.transport import JsonRpcError, RpcCall, Transport, TransportOptions

__all__ = [
    "DEV_ACCOUNTS",
    "DEV_MNEMONIC",
    "LOOPBACK_HOSTS",
    "AnvilNode",
    "Artifact",
    "ChainStatus",
    "Devchain",
    "DevchainError",
    "LocalChain",
    "SeedTransfer",
    "anvil_binary",
    "artifact",
    "deploy",
    "local_chains",
    "rpc",
    "seed_transfers",
    "start_anvil",
    "stop_pid",
    "wait_ready",
    "web3_for",
]

#: anvil's default mnemonic; its accounts are unlocked and funded with 10,000 coins each
DEV_MNEMONIC: Final = "test test test test test test test test test test test junk"
DEV_ACCOUNTS: Final[tuple[str, ...]] = (
    "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266",
    "0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
    "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC",
    "0x90F79bf6EB2c4f870365E785982E1f101E93b906",
    "0x15d34AAf54267DB7D7c367839AAf71A00a2C6A65",
    "0x9965507D1a55bcC2695C58ba16FB37d819B0A4dc",
    "0x976EA74026E726554dB657fA54763abd0C3a0aa9",
    "0x14dC79964da2C08b23698B3D3cc7Ca32193d9955",
    "0x23618e81E3f5cdF7f54C3d65f7FBc0aBf5B21E8f",
    "0xa0Ee7A142d267C1f36714E4a8F75612F20a79720",
)
LOOPBACK_HOSTS: Final = frozenset({"127.0.0.1", "localhost", "::1"})
#: the project's checkout (node_modules and contracts/ live there)
REPO_ROOT: Final = Path(__file__).resolve().parent.parent
CONTRACTS_DIR: Final = REPO_ROOT / "contracts"
BUILD_DIR: Final = CONTRACTS_DIR / "build"
_LISTENING: Final = re.compile(rb"Listening on ([0-9.:\[\]a-z]+):(\d+)")
_PLATFORMS: Final = {
    ("Linux", "x86_64"): "linux-amd64",
    ("Linux", "aarch64"): "linux-arm64",
    ("Darwin", "arm64"): "darwin-arm64",
    ("Darwin", "x86_64"): "darwin-amd64",
}
_PR_SET_PDEATHSIG: Final = 1


class TokenListing(Protocol):
    """A configured token as the local chains need it (``recovery.config.Asset`` is one)."""

    @property
    def symbol(self) -> str: ...

    @property
    def contract(self) -> str | None: ...

    @property
    def decimals(self) -> int: ...

    @property
    def model_extra(self) -> dict[str, Any] | None: ...


class LocalConfig(Protocol):
    """The part of the configuration the local chains read (``recovery.config.Config`` is one)."""

    def networks_of_family(self, family: str) -> Sequence[Network]: ...

    def assets_on(self, network: str) -> Sequence[TokenListing]: ...


class DevchainError(RuntimeError):
    """A local chain could not be started, reached, or seeded."""


# --------------------------------------------------------------------------- the anvil binary


def anvil_binary() -> Path:
    """The anvil executable: ``$RECOVERY_ANVIL_BIN``, else the one ``npm ci`` installed in
    ``node_modules``, else ``anvil`` on the PATH."""
    env = os.environ.get("RECOVERY_ANVIL_BIN")
    if env:
        path = Path(env)
        if not path.is_file():
            raise DevchainError(f"RECOVERY_ANVIL_BIN={env} is not a file")
        return path
    candidates = []
    suffix = _PLATFORMS.get((platform.system(), platform.machine()))
    if suffix:
        candidates.append(REPO_ROOT / "node_modules" / "@foundry-rs" / f"anvil-{suffix}" / "bin" / "anvil")
    candidates.append(REPO_ROOT / "node_modules" / ".bin" / "anvil")
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    found = shutil.which("anvil")
    if found:
        return Path(found)
    raise DevchainError(f"anvil not found: run `npm ci` in {REPO_ROOT} (or set RECOVERY_ANVIL_BIN)")


# --------------------------------------------------------------------------- processes


@dataclass(frozen=True, slots=True)
class AnvilNode:
    """A running anvil. ``process`` is set when this Python process started it."""

    chain_id: int
    host: str
    port: int
    pid: int
    log_path: Path
    process: subprocess.Popen[bytes] | None = field(default=None, compare=False, repr=False)
    #: the private home anvil keeps its state spill-over in (``~/.foundry/anvil/tmp``, gigabytes for
    #: a long run), removed by :meth:`stop`; None for a detached node (it keeps the user's home)
    home: Path | None = field(default=None, compare=False, repr=False)

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"

    def stop(self, timeout: float = 10.0) -> None:
        stop_pid(self.pid, timeout=timeout)
        if self.process is not None:
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        if self.home is not None:
            shutil.rmtree(self.home, ignore_errors=True)


def _die_with_parent() -> None:  # pragma: no cover - runs in the child between fork and exec
    with suppress(Exception):
        libc = ctypes.CDLL("libc.so.6", use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def start_anvil(
    chain_id: int,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    log_path: Path,
    detach: bool = False,
    extra_args: Sequence[str] = (),
    timeout: float = 30.0,
) -> AnvilNode:
    """Start anvil on ``host:port`` (port 0: an ephemeral port, read from anvil's banner) and wait
    until it answers ``eth_chainId`` with ``chain_id``.

    ``detach=False`` (tests): the node gets SIGTERM when this process dies, even by SIGKILL.
    ``detach=True`` (``recovery devchain up``): the node runs in its own session and outlives us.
    """
    if host not in LOOPBACK_HOSTS:
        raise DevchainError(f"refusing to bind anvil to {host}: local chains listen on loopback only")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    command = [
        str(anvil_binary()),
        "--host",
        host,
        "--port",
        str(port),
        "--chain-id",
        str(chain_id),
        "--mnemonic",
        DEV_MNEMONIC,
        "--accounts",
        str(len(DEV_ACCOUNTS)),
        *extra_args,
    ]
    # anvil spills old states to ~/.foundry/anvil/tmp and leaves them behind when it is stopped: an
    # attached node gets a home of its own, removed when it stops
    home = None if detach else Path(tempfile.mkdtemp(prefix="anvil-home-"))
    env = dict(os.environ, HOME=str(home)) if home is not None else None
    with log_path.open("wb") as log_file:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=detach,
            env=env,
            preexec_fn=None if detach or platform.system() != "Linux" else _die_with_parent,
        )
    try:
        bound_host, bound_port = _wait_for_banner(process, log_path, timeout)
        node = AnvilNode(chain_id, host, bound_port if port == 0 else port, process.pid, log_path, process, home)
        wait_ready(node.url, chain_id, timeout=timeout, process=process)
    except BaseException:
        stop_pid(process.pid)
        with suppress(subprocess.TimeoutExpired):
            process.wait(timeout=5)
        if home is not None:
            shutil.rmtree(home, ignore_errors=True)
        raise
    del bound_host
    return node


def _wait_for_banner(process: subprocess.Popen[bytes], log_path: Path, timeout: float) -> tuple[str, int]:
    deadline = time.monotonic() + timeout
    delay = 0.01
    while time.monotonic() < deadline:
        match = _LISTENING.search(log_path.read_bytes())
        if match:
            return match.group(1).decode(), int(match.group(2))
        if process.poll() is not None:
            tail = log_path.read_bytes()[-2000:].decode(errors="replace")
            raise DevchainError(f"anvil exited with status {process.returncode}:\n{tail}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise DevchainError(f"anvil did not start listening within {timeout:.0f}s (see {log_path})")


def wait_ready(
    url: str, chain_id: int | None = None, *, timeout: float = 30.0, process: subprocess.Popen[bytes] | None = None
) -> None:
    """Poll ``eth_chainId`` until the node answers (and with ``chain_id``), or raise."""
    transport = Transport("devchain", [url], TransportOptions(timeout=2.0, connect_timeout=1.0, attempts=1))
    deadline = time.monotonic() + timeout
    delay = 0.01
    last = "no answer"
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise DevchainError(f"the node at {url} exited with status {process.returncode}")
        try:
            answer = int(transport.call("eth_chainId"), 16)
        except Exception as exc:
            last = str(exc)
        else:
            if chain_id is None or answer == chain_id:
                return
            raise DevchainError(f"the node at {url} has chain id {answer}, expected {chain_id}")
        time.sleep(delay)
        delay = min(delay * 2, 0.2)
    raise DevchainError(f"the node at {url} was not ready within {timeout:.0f}s: {last}")


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    stat = Path(f"/proc/{pid}/stat")
    if stat.exists():  # a zombie is dead for our purposes
        with suppress(OSError, IndexError):
            return stat.read_text().rsplit(")", 1)[1].split()[0] != "Z"
    return True


def stop_pid(pid: int, *, timeout: float = 10.0) -> bool:
    """SIGTERM, wait (polling with a deadline), then SIGKILL. True if the process is gone."""
    if not pid_alive(pid):
        return True
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    with suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not pid_alive(pid):
            return True
        time.sleep(0.02)
    return False


def _is_anvil(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return pid_alive(pid)  # no /proc (macOS): trust the pid file
    return b"anvil" in cmdline


# --------------------------------------------------------------------------- `recovery devchain`


@dataclass(frozen=True, slots=True)
class LocalChain:
    """An EVM network of the configuration whose node is on this machine."""

    name: str
    chain_id: int
    host: str
    port: int

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def local_chains(config: LocalConfig) -> list[LocalChain]:
    """EVM networks with an ``rpc_urls`` entry on 127.0.0.1/localhost (the first such entry)."""
    chains = []
    for network in config.networks_of_family("evm"):
        for url in network.rpc_urls:
            parsed = urlparse(url)
            if parsed.hostname in LOOPBACK_HOSTS and parsed.scheme == "http":
                assert network.chain_id is not None  # the config loader requires it for evm
                host = "127.0.0.1" if parsed.hostname == "localhost" else parsed.hostname
                chains.append(LocalChain(network.name, network.chain_id, host, parsed.port or 80))
                break
    return chains


ChainState = Literal["running", "stopped", "started", "stopping failed", "port busy", "wrong chain"]


@dataclass(frozen=True, slots=True)
class ChainStatus:
    name: str
    chain_id: int
    url: str
    state: ChainState
    pid: int | None = None
    block: int | None = None
    log_path: Path | None = None
    detail: str = ""


class Devchain:
    """Start, stop and inspect one detached anvil per local EVM network of ``config``.

    State lives in ``state_dir`` (default ``var/devchain``): ``<network>.pid`` and ``<network>.log``.
    """

    def __init__(self, config: LocalConfig, state_dir: Path) -> None:
        self.config = config
        self.state_dir = state_dir
        self.chains = local_chains(config)

    def _pid_file(self, chain: LocalChain) -> Path:
        return self.state_dir / f"{chain.name}.pid"

    def _log(self, chain: LocalChain) -> Path:
        return self.state_dir / f"{chain.name}.log"

    def _pid(self, chain: LocalChain) -> int | None:
        try:
            pid = int(self._pid_file(chain).read_text().strip())
        except (OSError, ValueError):
            return None
        if pid_alive(pid) and _is_anvil(pid):
            return pid
        self._pid_file(chain).unlink(missing_ok=True)  # stale
        return None

    def _probe(self, chain: LocalChain) -> tuple[int | None, int | None, str]:
        """(chain id, block number, error) of whatever answers at the chain's URL."""
        transport = Transport("devchain", [chain.url], TransportOptions(timeout=2.0, connect_timeout=0.5, attempts=1))
        try:
            chain_id, block = transport.batch([("eth_chainId", []), ("eth_blockNumber", [])])
            return int(chain_id, 16), int(block, 16), ""
        except Exception as exc:
            return None, None, str(exc)

    def status(self) -> list[ChainStatus]:
        out = []
        for chain in self.chains:
            pid = self._pid(chain)
            chain_id, block, error = self._probe(chain)
            log_path = self._log(chain)
            if chain_id is None:
                state: ChainState = "stopped"
                detail = "process alive but not answering" if pid else ""
            elif chain_id != chain.chain_id:
                state, detail = "wrong chain", f"a node with chain id {chain_id} answers there"
            else:
                state = "running"
                detail = "" if pid else "not started by devchain (no pid file)"
            out.append(
                ChainStatus(
                    chain.name,
                    chain.chain_id,
                    chain.url,
                    state,
                    pid,
                    block,
                    log_path if log_path.exists() else None,
                    detail or error * (state != "stopped"),
                )
            )
        return out

    def up(self, *, timeout: float = 30.0) -> list[ChainStatus]:
        """Start every local chain not already running; idempotent."""
        self.state_dir.mkdir(parents=True, exist_ok=True)
        out = []
        for chain in self.chains:
            pid = self._pid(chain)
            chain_id, block, _ = self._probe(chain)
            if chain_id == chain.chain_id:
                out.append(ChainStatus(chain.name, chain.chain_id, chain.url, "running", pid, block, self._log(chain)))
                continue
            if chain_id is not None:
                out.append(
                    ChainStatus(
                        chain.name,
                        chain.chain_id,
                        chain.url,
                        "wrong chain",
                        pid,
                        detail=f"port {chain.port} answers with chain id {chain_id}",
                    )
                )
                continue
            if pid is not None:
                stop_pid(pid)
            try:
                node = start_anvil(
                    chain.chain_id,
                    port=chain.port,
                    host=chain.host,
                    log_path=self._log(chain),
                    detach=True,
                    timeout=timeout,
                )
            except DevchainError as exc:
                out.append(
                    ChainStatus(
                        chain.name,
                        chain.chain_id,
                        chain.url,
                        "port busy" if "in use" in str(exc).lower() else "stopped",
                        detail=str(exc),
                    )
                )
                continue
            self._pid_file(chain).write_text(f"{node.pid}\n")
            out.append(ChainStatus(chain.name, chain.chain_id, chain.url, "started", node.pid, 0, node.log_path))
        return out

    def down(self, *, timeout: float = 10.0) -> list[ChainStatus]:
        """Stop the anvils this devchain started (found through their pid files)."""
        out = []
        for chain in self.chains:
            pid = self._pid(chain)
            if pid is None:
                out.append(ChainStatus(chain.name, chain.chain_id, chain.url, "stopped"))
                continue
            gone = stop_pid(pid, timeout=timeout)
            if gone:
                self._pid_file(chain).unlink(missing_ok=True)
            out.append(
                ChainStatus(chain.name, chain.chain_id, chain.url, "stopped" if gone else "stopping failed", pid)
            )
        return out


# --------------------------------------------------------------------------- contracts


@dataclass(frozen=True, slots=True)
class Artifact:
    name: str
    abi: list[dict[str, Any]]
    bytecode: str


def _source_hash(source: Path) -> str:
    return hashlib.sha256(source.read_bytes()).hexdigest()


def compile_contracts() -> None:
    """Run ``node contracts/compile.mjs`` (solcjs from node_modules; offline)."""
    node = shutil.which("node")
    if node is None:
        raise DevchainError("node is not installed: it is needed to compile the test contracts")
    if not (REPO_ROOT / "node_modules" / "solc").is_dir():
        raise DevchainError(f"solc is not installed: run `npm ci` in {REPO_ROOT}")
    result = subprocess.run([node, str(CONTRACTS_DIR / "compile.mjs")], capture_output=True, check=False, cwd=REPO_ROOT)
    if result.returncode != 0:
        raise DevchainError(
            "compiling the contracts failed:\n" + (result.stderr or result.stdout).decode(errors="replace")
        )


def artifact(name: str) -> Artifact:
    """ABI and bytecode of ``contracts/<name>.sol``'s contract ``name``, compiled on first use
    (and again when the source changed since the build)."""
    source = CONTRACTS_DIR / f"{name}.sol"
    if not source.is_file():
        raise DevchainError(f"no contract source {source}")
    path = BUILD_DIR / f"{name}.json"
    for attempt in range(2):
        if path.is_file():
            data = json.loads(path.read_text())
            if data.get("sourceHash") == _source_hash(source):
                return Artifact(name, data["abi"], data["bytecode"])
        if attempt == 0:
            compile_contracts()
    raise DevchainError(f"compiling did not produce an up-to-date {path}")


def web3_for(url: str, *, poa: bool = False) -> Web3:
    """A plain web3 handle on a local node (with the PoA middleware if asked)."""
    w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": 30}))
    if poa:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3


def deploy(w3: Web3, name: str, *args: Any, sender: str = DEV_ACCOUNTS[0]) -> str:
    """Deploy ``contracts/<name>.sol`` from an unlocked dev account; returns its address."""
    art = artifact(name)
    factory = w3.eth.contract(abi=art.abi, bytecode=art.bytecode)
    tx_hash = factory.constructor(*args).transact({"from": to_checksum_address(sender)})
    receipt = w3.eth.wait_for_transaction_receipt(tx_hash, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1 or not receipt["contractAddress"]:
        raise DevchainError(f"deploying {name} failed: {dict(receipt)}")
    return str(receipt["contractAddress"])


# --------------------------------------------------------------------------- bulk seeding


def rpc(url: str, *, timeout: float = 60.0) -> Transport:
    """A transport on one local node, patient enough for large seeding batches."""
    return Transport("devchain", [url], TransportOptions(timeout=timeout, attempts=1, max_batch_size=1000))


@dataclass(frozen=True, slots=True)
class SeedTransfer:
    """One transfer to seed: native ``value`` (wei), or ``amount`` of ``token`` (base units)."""

    sender: str
    recipient: str
    value: int = 0
    token: str | None = None
    amount: int = 0
    gas: int | None = None


_TRANSFER_SELECTOR: Final = bytes.fromhex("a9059cbb")


def _transfer_data(recipient: str, amount: int) -> str:
    return "0x" + (_TRANSFER_SELECTOR + abi_encode(["address", "uint256"], [recipient, amount])).hex()


@contextmanager
def automine_off(transport: Transport) -> Iterator[None]:
    """Automine off for the block; back on afterwards, whatever happens."""
    transport.call("evm_setAutomine", [False])
    try:
        yield
    finally:
        transport.call("evm_setAutomine", [True])


def mine_until_empty(transport: Transport, *, max_blocks: int = 10_000) -> int:
    """``evm_mine`` until the node's pool holds no pending transaction; returns blocks mined."""
    for mined in range(max_blocks + 1):
        status = transport.call("txpool_status")
        if int(status["pending"], 16) == 0 and int(status["queued"], 16) == 0:
            return mined
        transport.call("evm_mine")
    raise DevchainError(f"the pool was not empty after {max_blocks} blocks")


def seed_transfers(
    url: str,
    transfers: Sequence[SeedTransfer],
    *,
    batch_size: int = 500,
    gas_price: int = 100 * 10**9,
) -> list[str]:
    """Send many transfers fast and mine them; returns their hashes in order.

    Automine off, explicit nonces, batched ``eth_sendTransaction`` (no gas estimation: native
    transfers use 21,000 gas, token transfers ``gas`` or 120,000), then ``evm_mine`` until the
    pool is empty. Senders must be unlocked (the dev accounts are). Some 2,000+ tx/s on anvil.
    """
    transport = rpc(url)
    senders = sorted({to_checksum_address(t.sender) for t in transfers})
    nonce_calls: list[RpcCall] = [("eth_getTransactionCount", [s, "pending"]) for s in senders]
    nonces = {s: int(n, 16) for s, n in zip(senders, transport.batch(nonce_calls), strict=True)}
    calls: list[RpcCall] = []
    for t in transfers:
        sender = to_checksum_address(t.sender)
        tx: dict[str, Any] = {"from": sender, "nonce": hex(nonces[sender]), "gasPrice": hex(gas_price)}
        nonces[sender] += 1
        if t.token is None:
            tx.update(to=to_checksum_address(t.recipient), value=hex(t.value), gas=hex(t.gas or 21_000))
        else:
            tx.update(
                to=to_checksum_address(t.token),
                value=hex(t.value),
                data=_transfer_data(to_checksum_address(t.recipient), t.amount),
                gas=hex(t.gas or 120_000),
            )
        calls.append(("eth_sendTransaction", [tx]))
    hashes: list[str] = []
    with automine_off(transport):
        try:
            for start in range(0, len(calls), batch_size):
                for reply in transport.batch(calls[start : start + batch_size]):
                    if isinstance(reply, JsonRpcError):
                        raise DevchainError(f"eth_sendTransaction failed: {reply.message}")
                    hashes.append(str(reply))
        except BaseException:
            with suppress(Exception):  # mine what was accepted: leave no half-sent batch in the pool
                mine_until_empty(transport)
            raise
        mine_until_empty(transport)
    return hashes


def snapshot(url: str) -> str:
    return str(rpc(url).call("evm_snapshot"))


def revert(url: str, snapshot_id: str) -> None:
    if rpc(url).call("evm_revert", [snapshot_id]) is not True:
        raise DevchainError(f"evm_revert({snapshot_id}) failed")


def mine(url: str, blocks: int = 1) -> None:
    """Mine ``blocks`` empty blocks at once (``anvil_mine``)."""
    rpc(url).call("anvil_mine", [hex(blocks)])


def balances(url: str, addresses: Sequence[str]) -> Mapping[str, int]:
    replies = rpc(url).batch([("eth_getBalance", [a, "latest"]) for a in addresses])
    return {a: int(r, 16) for a, r in zip(addresses, replies, strict=True)}


# --------------------------------------------------------------------------- listed tokens at their real addresses

#: storage slots of TestToken (OpenZeppelin 5 ERC20 + Ownable): _name, _symbol, _owner
_TOKEN_STATE_SLOTS: Final = (3, 4, 5)


def install_token(url: str, address: str, name: str, symbol: str, decimals: int) -> str:
    """Put a working ERC-20 (``contracts/TestToken.sol``) at ``address`` on a local node.

    The listed assets of the configuration carry their mainnet contract addresses; on a local
    chain nothing lives there. The token is deployed normally, then its runtime code (decimals is
    an immutable inside it) and its name, symbol and owner slots are copied to ``address`` with
    ``anvil_setCode``/``anvil_setStorageAt``. Balances start at zero: mint with :func:`mint`.
    """
    w3 = web3_for(url)
    temporary = deploy(w3, "TestToken", name, symbol, decimals, DEV_ACCOUNTS[0], 0)
    transport = rpc(url)
    target = to_checksum_address(address)
    code, *slots = transport.batch(
        [("eth_getCode", [temporary, "latest"])]
        + [("eth_getStorageAt", [temporary, hex(slot), "latest"]) for slot in _TOKEN_STATE_SLOTS]
    )
    writes: list[tuple[int, str]] = list(zip(_TOKEN_STATE_SLOTS, slots, strict=True))
    for slot, value in writes[:2]:  # name and symbol: a string over 31 bytes lives at keccak(slot)
        head = int(value, 16)
        if head & 1:
            base = int.from_bytes(Web3.keccak(slot.to_bytes(32, "big")), "big")
            data_slots = [base + i for i in range(((head - 1) // 2 + 31) // 32)]
            data = transport.batch([("eth_getStorageAt", [temporary, hex(n), "latest"]) for n in data_slots])
            writes.extend(zip(data_slots, data, strict=True))
    transport.call("anvil_setCode", [target, code])
    replies = transport.batch([("anvil_setStorageAt", [target, "0x" + format(n, "064x"), v]) for n, v in writes])
    failed = [r for r in replies if isinstance(r, JsonRpcError)]
    if failed:
        raise DevchainError(f"installing {symbol} at {target} failed: {failed[0].message}")
    return target


def mint(url: str, token: str, holder: str, amount: int) -> None:
    """Mint ``amount`` base units of a TestToken to ``holder`` (the first dev account owns them)."""
    w3 = web3_for(url)
    contract = w3.eth.contract(address=to_checksum_address(token), abi=artifact("TestToken").abi)
    tx = contract.functions.mint(to_checksum_address(holder), amount).transact({"from": DEV_ACCOUNTS[0]})
    receipt = w3.eth.wait_for_transaction_receipt(tx, timeout=30, poll_latency=0.01)
    if receipt["status"] != 1:
        raise DevchainError(f"minting {amount} of {token} failed")


def install_listed_tokens(url: str, config: LocalConfig, network: str) -> dict[str, str]:
    """Every token asset the configuration lists on ``network``, working at its configured contract
    address on the local node at ``url``; returns symbol -> address."""
    installed = {}
    for asset in config.assets_on(network):
        if asset.contract is None:
            continue
        extra = asset.model_extra or {}
        name = str(extra.get("name") or asset.symbol)
        installed[asset.symbol] = install_token(url, asset.contract, name, asset.symbol, asset.decimals)
    return installed
