"""Load on the appeal API served by uvicorn: requests per second and p50/p99 latency.

    python -m bench.api_load [--seconds 8] [--connections 16] [--transfers 3000]

In one run, against one server process (``uvicorn app.api:create_app_from_env --factory``, the
application ``recovery api`` serves, default settings: 20 appeals per user per hour, 3 s check):

- ``POST /v1/appeals`` with the chain check answered by an anvil this script starts (real USDT
  transfers to imported deposit addresses, confirmed; each appeal is classified in the request);
- ``GET /v1/appeals/{reference}`` on the appeals just created, each by its owner's token;
- ``GET /healthz``, a trivial endpoint of the same server: the framework's own limit.

The load comes from a separate process (asyncio, keep-alive HTTP/1.1 connections) so the server
has a core of its own. Any non-2xx answer or transport error counts as an error; the goal is none.
Prints the figures and the ratio GET / trivial (goal >= 0.5).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import requests
import tomli_w
from eth_utils.address import to_checksum_address

from app.demo.serving import free_port, wait_http
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from recovery import migrate
from recovery.config import load_config
from recovery.db import connect
from recovery.imports import import_addresses
from recovery.settings import REPO_ROOT

GOAL_GET_VS_TRIVIAL = 0.5
Request = tuple[str, str, dict[str, str], bytes]  # method, path, headers, body


# ------------------------------------------------------------------------------------ load generator

@dataclass
class Result:
    label: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    #: CPU time the server process spent during the run (user + system)
    server_cpu: float = 0.0

    @property
    def requests(self) -> int:
        return len(self.latencies)

    @property
    def per_second(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def percentile(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        ordered = sorted(self.latencies)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))]

    @property
    def cpu_ms_per_request(self) -> float:
        return self.server_cpu / self.requests * 1000 if self.requests else float("nan")

    @property
    def failures(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300) + len(self.errors)


async def _read_response(reader: asyncio.StreamReader) -> int:
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = 0
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    if length:
        await reader.readexactly(length)
    return status


async def _drive(port: int, requests_: Sequence[Request], connections: int, seconds: float,
                 result: Result) -> None:
    next_index = 0
    deadline = time.perf_counter() + seconds

    async def connection() -> None:
        nonlocal next_index
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            while time.perf_counter() < deadline and next_index < len(requests_):
                method, path, headers, body = requests_[next_index]
                next_index += 1
                head = f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: {len(body)}\r\n"
                head += "".join(f"{k}: {v}\r\n" for k, v in headers.items()) + "\r\n"
                started = time.perf_counter()
                writer.write(head.encode() + body)
                try:
                    status = await _read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    result.errors.append(f"{type(exc).__name__}: {exc}")
                    return
                result.latencies.append(time.perf_counter() - started)
                result.statuses[status] = result.statuses.get(status, 0) + 1
        finally:
            writer.close()

    started = time.perf_counter()
    await asyncio.gather(*(connection() for _ in range(connections)))
    result.seconds = time.perf_counter() - started


def _load_process(port: int, label: str, requests_: Sequence[Request], connections: int, seconds: float,
                  queue: Any) -> None:
    result = Result(label)
    asyncio.run(_drive(port, requests_, connections, seconds, result))
    queue.put(result)


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (Linux /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def load(server: Server, label: str, requests_: Sequence[Request], *, connections: int, seconds: float) -> Result:
    """Run the load from a separate process (its own core) and return what it measured."""
    port = server.port
    before = cpu_seconds(server.pid)
    context = multiprocessing.get_context("fork")
    queue = context.Queue()
    process = context.Process(target=_load_process, args=(port, label, requests_, connections, seconds, queue))
    process.start()
    result: Result = queue.get(timeout=seconds + 120)
    process.join(timeout=30)
    result.server_cpu = cpu_seconds(server.pid) - before
    return result


# ------------------------------------------------------------------------------------ the world

@dataclass(frozen=True)
class Server:
    port: int
    pid: int


@contextmanager
def serve_api(env: dict[str, str], log: Path, *, port: int | None = None) -> Iterator[Server]:
    """uvicorn serving the API's factory (as ``recovery api`` does) on a free loopback port."""
    port = port or free_port()
    command = [sys.executable, "-m", "uvicorn", "app.api:create_app_from_env", "--factory", "--host", "127.0.0.1",
               "--port", str(port), "--no-access-log", "--no-server-header", "--log-level", "warning"]
    with log.open("wb") as out:
        process = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT, cwd=REPO_ROOT,
                                   start_new_session=True)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", process, interval=0.1)
        yield Server(port, process.pid)
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def write_config(target: Path, anvil_url: str) -> Path:
    """The shipped configuration with Ethereum on the bench's anvil (other EVM networks unreachable)."""
    source = REPO_ROOT / "config"
    target.mkdir(parents=True)
    for name in ("assets.toml", "fees.toml", "policy.toml"):
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    networks = tomllib.loads((source / "networks.toml").read_text())
    for name, entry in networks["networks"].items():
        if entry["family"] == "evm":
            entry["rpc_urls"] = [anvil_url if name == "ethereum" else "http://127.0.0.1:9"]
    (target / "networks.toml").write_text(tomli_w.dumps(networks))
    return target


@dataclass
class World:
    env: dict[str, str]
    secret: str
    #: (user, deposit address, tx hash) of confirmed USDT deposits
    deposits: list[tuple[str, str, str]]


def build_world(root: Path, transfers: int, log: Any) -> tuple[World, devchain.AnvilNode]:
    node = devchain.start_anvil(1, log_path=root / "anvil.log")
    try:
        config_dir = write_config(root / "config", node.url)
        config = load_config(config_dir)
        usdt = devchain.install_listed_tokens(node.url, config, "ethereum")["USDT"]
        devchain.mint(node.url, usdt, DEV_ACCOUNTS[0], 10**30)
        users = [(f"user-{i:05d}", str(to_checksum_address("0x" + secrets.token_hex(20)))) for i in range(transfers)]
        log(f"seeding {transfers} USDT transfers on anvil")
        hashes = devchain.seed_transfers(node.url, [
            SeedTransfer(DEV_ACCOUNTS[0], address, token=usdt, amount=(10 + i % 90) * 10**6)
            for i, (_, address) in enumerate(users)
        ])
        devchain.mine(node.url, config.network("ethereum").confirmations)
        database_url = f"sqlite:///{root / 'recovery.db'}"
        db = connect(database_url)
        migrate.upgrade(db)
        csv_path = root / "addresses.csv"
        csv_path.write_text("user_id,network,address,memo,kind\n"
                            + "".join(f"{u},ethereum,{a},,eoa\n" for u, a in users))
        import_addresses(db, config, csv_path)
        db.dispose()
        secret = secrets.token_urlsafe(48)
        env = {**os.environ, "RECOVERY_DATABASE_URL": database_url, "RECOVERY_CONFIG_DIR": str(config_dir),
               "RECOVERY_VAR_DIR": str(root), "RECOVERY_API_JWT_SECRET": secret}
        deposits = [(u, a, h) for (u, a), h in zip(users, hashes, strict=True)]
        return World(env, secret, deposits), node
    except BaseException:
        node.stop()
        raise


def bearer(secret: str, user: str) -> str:
    issued = int(time.time())
    return "Bearer " + jwt.encode({"sub": user, "iat": issued, "exp": issued + 3600}, secret, algorithm="HS256")


# ------------------------------------------------------------------------------------ the run

def report(results: Sequence[Result]) -> None:
    print(f"{'endpoint':<34}{'requests':>10}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}{'errors':>8}"
          f"{'server CPU ms/req':>19}")
    for r in results:
        print(f"{r.label:<34}{r.requests:>10}{r.per_second:>10.0f}{r.percentile(0.5) * 1000:>10.2f}"
              f"{r.percentile(0.99) * 1000:>10.2f}{r.failures:>8}{r.cpu_ms_per_request:>19.3f}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=4.0, help="duration of each GET scenario per round")
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds of trivial and GET")
    parser.add_argument("--connections", type=int, default=16, help="concurrent keep-alive connections")
    parser.add_argument("--post-connections", type=int, default=8, help="concurrent connections for POST")
    parser.add_argument("--transfers", type=int, default=1500, help="appeals to file (one per seeded transfer)")
    parser.add_argument("--json", type=Path, help="also write the figures to this file")
    args = parser.parse_args(argv)

    def log(message: str) -> None:
        print(f"[api_load] {message}", file=sys.stderr, flush=True)

    root = Path(tempfile.mkdtemp(prefix="api-load-"))
    try:
        world, node = build_world(root, args.transfers, log)
        try:
            with serve_api(world.env, root / "api.log") as server:
                tokens = {user: bearer(world.secret, user) for user, _, _ in world.deposits}
                posts: list[Request] = [
                    ("POST", "/v1/appeals", {"Authorization": tokens[user], "Content-Type": "application/json"},
                     json.dumps({"network": "ethereum", "asset": "USDT", "tx_hash": tx_hash,
                                 "deposit_address": address}).encode())
                    for user, address, tx_hash in world.deposits
                ]
                log(f"POST /v1/appeals x {len(posts)} ({args.post_connections} connections)")
                post = load(server, "POST /v1/appeals (chain check)", posts, connections=args.post_connections,
                            seconds=3600)
                references = _created(server.port, world, tokens)
                log(f"{len(references)} appeals stored; GET scenarios for {args.seconds:g} s each")
                trivial_requests: list[Request] = [("GET", "/healthz", {}, b"")] * 2_000_000
                get_requests: list[Request] = [
                    ("GET", f"/v1/appeals/{references[i % len(references)][1]}",
                     {"Authorization": tokens[references[i % len(references)][0]]}, b"")
                    for i in range(2_000_000 if references else 0)
                ]
                load(server, "warm-up", trivial_requests[:2000], connections=args.connections, seconds=5)
                trivial, get = Result("GET /healthz (trivial)"), Result("GET /v1/appeals/{reference}")
                ratios = []
                for round_ in range(args.rounds):
                    # Alternate the two, so that load from elsewhere on the machine hits both alike.
                    each = {"connections": args.connections, "seconds": args.seconds}
                    t = load(server, trivial.label, trivial_requests, **each)
                    g = load(server, get.label, get_requests, **each)
                    log(f"round {round_ + 1}: trivial {t.per_second:.0f}/s, GET {g.per_second:.0f}/s")
                    ratios.append(g.per_second / t.per_second if t.per_second else 0.0)
                    for total, part in ((trivial, t), (get, g)):
                        total.seconds += part.seconds
                        total.server_cpu += part.server_cpu
                        total.latencies += part.latencies
                        total.errors += part.errors
                        for status, count in part.statuses.items():
                            total.statuses[status] = total.statuses.get(status, 0) + count
        finally:
            node.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)

    results = [post, trivial, get]
    report(results)
    ratio = statistics.median(ratios)
    errors = sum(r.failures for r in results)
    print(f"\nGET /v1/appeals/{{reference}} / trivial = {ratio:.2f} (median of {len(ratios)} alternating rounds: "
          f"{', '.join(f'{r:.2f}' for r in ratios)}; goal >= {GOAL_GET_VS_TRIVIAL})")
    print(f"server CPU per request: trivial {trivial.cpu_ms_per_request:.3f} ms, GET {get.cpu_ms_per_request:.3f} ms "
          f"(capacity ratio on a core of its own: {trivial.cpu_ms_per_request / get.cpu_ms_per_request:.2f})")
    print(f"POST / trivial = {post.per_second / trivial.per_second if trivial.per_second else 0:.3f}; "
          f"errors under load: {errors}; load average at the end: {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    for r in results:
        if r.failures:
            print(f"  {r.label}: statuses {r.statuses}, transport errors {r.errors[:3]}")
    if args.json:
        args.json.write_text(json.dumps({
            r.label: {"requests": r.requests, "per_second": round(r.per_second, 1),
                      "p50_ms": round(r.percentile(0.5) * 1000, 3), "p99_ms": round(r.percentile(0.99) * 1000, 3),
                      "server_cpu_ms_per_request": round(r.cpu_ms_per_request, 3),
                      "failures": r.failures} for r in results
        } | {"get_vs_trivial": round(ratio, 3)}, indent=2))
    return 0 if errors == 0 and ratio >= GOAL_GET_VS_TRIVIAL else 1


def _created(port: int, world: World, tokens: dict[str, str]) -> list[tuple[str, str]]:
    """(user, reference) of every appeal the POST scenario stored, read back through the API."""
    found = []
    for user, _, _ in world.deposits:
        answer = requests.get(f"http://127.0.0.1:{port}/v1/appeals", headers={"Authorization": tokens[user]},
                              timeout=10).json()
        found += [(user, appeal["reference"]) for appeal in answer["appeals"]]
    return found


if __name__ == "__main__":
    raise SystemExit(main())
