"""``recovery scan`` against the node's own speed: addresses scanned per second vs raw ``eth_getLogs``.

    python -m bench.scan                          # N = 1,000 addresses, M = 4,000 transfers, SQLite
    python -m bench.scan --n 500 --m 2000 --backends sqlite,postgresql
    python -m bench.scan --n 10000 --m 40000 --blocks 10000  # issue 20's goal: 10,000 addresses over 10,000 blocks

Starts its own anvil (chain id 1 = ``ethereum``, an ephemeral loopback port) with the listed USDT at
its mainnet address, and seeds M transfers (half ETH, half USDT, from the dev accounts) round-robin
to N deposit addresses, in batches spread over a block range (``--spread`` empty blocks after each
batch, or ``--blocks B`` for about B blocks in all) with :func:`chains.devchain.seed_transfers`. The
exchange "credited" all but ``--stray-percent`` of them (rows in ``credited_deposits``); the others
are stray deposits the scan must open as cases. Per database (an SQLite file; a throwaway PostgreSQL
cluster), the scan runs in a process of its own (:class:`recovery.scan.Scanner`, ``--workers``
threads, forked from the bench so that its memory is its own) over the whole range, and the run is
checked: every stray opened exactly once, every (network, address) scanned to the safe head. The
memory the scanning process grows by during the scan (peak resident set minus the start, sampled
every 10 ms) is printed; with ``--memory-check`` (the default) the first N/4 addresses are also
scanned alone in a fresh database, so that the growth at N and at N/4 can be compared (the scan's
memory should not grow with N).

Baselines, measured in the same run against the same node and range:
- raw per-address ``eth_getLogs`` (the Transfer topic with the address as recipient), ``--batch``
  addresses per HTTP request, ``json`` parsing only: what the scan's token part costs at least;
- one raw ``eth_getLogs`` for every Transfer log of the range (no address filter).

Prints addresses/s of the scan and of each baseline, and the ratios (goal of issue 20: the scan at
least 0.5 of raw per-address ``eth_getLogs``).
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import gc
import json
import multiprocessing
import os
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests
from eth_utils.address import to_checksum_address
from sqlmodel import col, func, select

from bench.common import shipped_networks, write_config_for
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from chains.evm import TRANSFER_TOPIC
from recovery import migrate
from recovery.checking import ChainGateway
from recovery.config import load_config
from recovery.db import connect
from recovery.models import Case, CreditedDeposit, DepositAddress, ScanCursor
from recovery.scan import Scanner, ScanOptions
from recovery.services import CaseService
from recovery.settings import REPO_ROOT

#: blocks mined after seeding: past ethereum's 12 confirmations
SETTLE_BLOCKS = 20
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Seeded:
    addresses: list[str]
    #: tx hash -> (address, asset, amount in asset units)
    transfers: dict[str, tuple[str, str, Decimal]]
    first_block: int
    last_block: int


@dataclass(frozen=True)
class Result:
    backend: str
    #: deposit addresses held (scanned) in this run
    held: int
    summary: dict[str, Any]
    opened: int
    #: how much the scanning process's resident memory grew during the scan (peak - start), bytes
    growth: int

    @property
    def elapsed(self) -> float:
        return float(self.summary["elapsed_seconds"])

    @property
    def rate(self) -> float:
        return int(self.summary["scanned"]) / self.elapsed if self.elapsed else 0.0


def write_config_dir(target: Path, url: str, start: int, log_chunk_blocks: int | None) -> Path:
    """The shipped configuration with ``ethereum`` at ``url`` (scanning from ``start``) as the only
    network."""
    kept = {"ethereum": dict(shipped_networks()["ethereum"], rpc_urls=[url], scan_start_block=start)}
    if log_chunk_blocks is not None:
        kept["ethereum"]["log_chunk_blocks"] = log_chunk_blocks
    return write_config_for(target, kept)


def block_number(url: str) -> int:
    return int(devchain.rpc(url).call("eth_blockNumber"), 16)


def seed_chain(url: str, n: int, m: int, usdt: str, batches: int, spread: int) -> Seeded:
    """M transfers round-robin to N fresh addresses (even: 0.01 ETH + i wei, odd: 25 USDT + i units)."""
    addresses = [str(to_checksum_address(f"0x{0x5CA1100000000 + i:040x}")) for i in range(n)]
    planned: list[tuple[SeedTransfer, str, str, Decimal]] = []
    for i in range(m):
        sender = DEV_ACCOUNTS[i % len(DEV_ACCOUNTS)]
        to = addresses[i % n]
        if i % 2 == 0:
            wei = 10**16 + i
            planned.append((SeedTransfer(sender, to, value=wei), to, "ETH", Decimal(wei).scaleb(-18)))
        else:
            units = 25 * 10**6 + i
            planned.append((SeedTransfer(sender, to, token=usdt, amount=units), to, "USDT", Decimal(units).scaleb(-6)))
    first = block_number(url) + 1
    transfers: dict[str, tuple[str, str, Decimal]] = {}
    size = max(1, -(-m // batches))
    for start in range(0, m, size):
        part = planned[start : start + size]
        hashes = devchain.seed_transfers(url, [p[0] for p in part])
        for tx, (_, recipient, asset, amount) in zip(hashes, part, strict=True):
            transfers[tx] = (recipient, asset, amount)
        for mined in range(0, spread, 50):  # in steps: a busy anvil mines hundreds of blocks slowly
            devchain.mine(url, min(50, spread - mined))
    last = block_number(url)
    devchain.mine(url, SETTLE_BLOCKS)
    return Seeded(addresses, transfers, first, last)


def raw_per_address(url: str, addresses: Sequence[str], first: int, last: int, batch: int) -> float:
    """Seconds for one ``eth_getLogs`` per address (Transfer topic, address as recipient)."""
    session = requests.Session()
    session.headers["Content-Type"] = "application/json"
    began = time.perf_counter()
    logs = 0
    for start in range(0, len(addresses), batch):
        payload = [
            {"jsonrpc": "2.0", "id": i, "method": "eth_getLogs",
             "params": [{"fromBlock": hex(first), "toBlock": hex(last),
                         "topics": [TRANSFER_TOPIC, None, "0x" + "0" * 24 + a[2:].lower()]}]}
            for i, a in enumerate(addresses[start : start + batch])
        ]
        reply = session.post(url, data=json.dumps(payload), timeout=300)
        reply.raise_for_status()
        logs += sum(len(item.get("result") or []) for item in json.loads(reply.content))
    seconds = time.perf_counter() - began
    session.close()
    if logs == 0:
        raise RuntimeError("raw eth_getLogs found no Transfer log")
    return seconds


def raw_whole_range(url: str, first: int, last: int) -> float:
    """Seconds for one ``eth_getLogs`` of every Transfer log in the range."""
    began = time.perf_counter()
    reply = requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_getLogs",
                                     "params": [{"fromBlock": hex(first), "toBlock": hex(last),
                                                 "topics": [TRANSFER_TOPIC]}]}, timeout=300)
    reply.raise_for_status()
    json.loads(reply.content)
    return time.perf_counter() - began


def best_of(repeat: int, run: Callable[[], float]) -> float:
    return min(run() for _ in range(repeat))


@contextmanager
def databases(backends: Sequence[str], workdir: Path) -> Iterator[Callable[[str, str], str]]:
    """A factory of fresh database URLs, one per (backend, name); migrated by whoever uses them."""
    cluster = None
    if "postgresql" in backends:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.support.pgcluster import PgCluster

        cluster = PgCluster.start()

    def make(backend: str, name: str) -> str:
        if backend == "sqlite":
            return f"sqlite:///{workdir / f'{name}.db'}"
        assert cluster is not None
        return cluster.url(cluster.create_database(name))

    try:
        yield make
    finally:
        if cluster is not None:
            cluster.stop()


def in_child(work: Callable[..., Any], *args: Any) -> Any:
    """``work(*args)`` in a forked process (its own memory: what one run allocates and frees does not
    hide what the next one needs); returns its result, or raises with the child's traceback."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)

    def run() -> None:
        try:
            send.send(("ok", work(*args)))
        except BaseException:  # the parent reports it
            send.send(("error", traceback.format_exc()))
        finally:
            send.close()

    child = context.Process(target=run)
    child.start()
    send.close()
    try:
        status, value = receive.recv()
    except EOFError:
        status, value = "error", "the child process died without an answer"
    child.join()
    if status != "ok":
        raise RuntimeError(f"child process failed:\n{value}")
    return value


def resident_bytes() -> int:
    """This process's resident set size (Linux ``/proc/self/statm``)."""
    return int(Path("/proc/self/statm").read_text().split()[1]) * PAGE_SIZE


def prepare(url: str, seeded: Seeded, held: Sequence[str], strays: set[str]) -> None:
    """A migrated database holding ``held`` as deposit addresses and every transfer to them but the
    strays as credited."""
    db = connect(url)
    try:
        migrate.upgrade(db)
        owners = {a: f"user{i:06d}" for i, a in enumerate(held)}
        with db.write() as session:
            session.add_all(DepositAddress(user_id=owners[a], network="ethereum", address=a, kind="eoa") for a in held)
            session.add_all(
                CreditedDeposit(network="ethereum", tx_hash=tx, user_id=owners[to], asset=asset, amount=amount)
                for tx, (to, asset, amount) in seeded.transfers.items() if to in owners and tx not in strays)
    finally:
        db.dispose()


def scan_and_check(backend: str, url: str, config_dir: Path, seeded: Seeded, held: int, strays: set[str],
                   args: argparse.Namespace) -> Result:
    """One ``Scanner.run`` over the prepared database, its peak memory growth, and the check: every
    stray opened exactly once, every cursor at the safe head."""
    config = load_config(config_dir)
    db = connect(url)
    try:
        gc.collect()
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL("libc.so.6").malloc_trim(0)
        start = peak = resident_bytes()
        stop = threading.Event()

        def sample() -> None:
            nonlocal peak
            while not stop.wait(0.01):
                peak = max(peak, resident_bytes())

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        try:
            options = ScanOptions(workers=args.workers, batch_size=args.batch_size, chunk_blocks=args.chunk_blocks)
            summary = Scanner(CaseService(db, config), ChainGateway(config), options).run()
        finally:
            stop.set()
            sampler.join()
        peak = max(peak, resident_bytes())
        with db.read() as session:
            cases = {str(h): int(n) for h, n in session.exec(
                select(Case.tx_hash, func.count()).where(Case.origin == "detected").group_by(col(Case.tx_hash))).all()}
            behind = int(session.exec(select(func.count()).select_from(ScanCursor).where(
                col(ScanCursor.scanned_to).is_(None) | (col(ScanCursor.scanned_to) < seeded.last_block))).one())
    finally:
        db.dispose()
    report = summary.to_json()
    if set(cases) != strays or set(cases.values()) - {1} or behind or summary.scanned != held:
        raise RuntimeError(f"{backend}: {len(cases)} cases for {len(strays)} strays, {behind} addresses behind, "
                           f"{summary.scanned} of {held} scanned: {json.dumps(report)[:2000]}")
    report["elapsed_seconds"] = summary.elapsed
    return Result(backend, held, report, len(cases), peak - start)


def measure(backend: str, make: Callable[[str, str], str], config_dir: Path, seeded: Seeded, held: Sequence[str],
            strays: set[str], args: argparse.Namespace) -> Result:
    """Scan ``held`` (their strays among ``strays``) in a fresh database, in a child process."""
    mine = {tx for tx in strays if seeded.transfers[tx][0] in set(held)}
    url = make(backend, f"bench_scan_{len(held)}")
    in_child(prepare, url, seeded, list(held), mine)
    result: Result = in_child(scan_and_check, backend, url, config_dir, seeded, len(held), mine, args)
    return result


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="deposit addresses (default 1000)")
    parser.add_argument("--m", type=int, default=4000, help="transfers to them (default 4000)")
    parser.add_argument("--batches", type=int, default=20, help="seeding batches (default 20)")
    parser.add_argument("--spread", type=int, default=100, help="empty blocks after each batch (default 100)")
    parser.add_argument("--blocks", type=int, default=0,
                        help="about this many blocks in all (sets --spread to blocks / batches - 1; 0 = use --spread)")
    parser.add_argument("--stray-percent", type=float, default=10.0, help="transfers not credited (default 10)")
    parser.add_argument("--backends", default="sqlite", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--workers", type=int, default=4, help="scan threads (default 4)")
    parser.add_argument("--batch-size", type=int, default=50, help="addresses leased together (default 50)")
    parser.add_argument("--chunk-blocks", type=int, default=5000, help="blocks per incoming call (default 5000)")
    parser.add_argument("--log-chunk-blocks", type=int, default=300,
                        help="the adapter's eth_getLogs/trace_filter range (anvil's trace_filter takes 300 blocks "
                             "at most; 0 = the adapter's default, 2000, and the scan halves refused ranges)")
    parser.add_argument("--batch", type=int, default=100, help="addresses per raw HTTP request (default 100)")
    parser.add_argument("--repeat", type=int, default=3, help="raw runs; the fastest counts")
    parser.add_argument("--memory-check", action=argparse.BooleanOptionalAction, default=True,
                        help="also scan the first N/4 addresses alone (fresh database) and compare the memory "
                             "the scan grows by at N/4 and at N (default: on)")
    args = parser.parse_args(argv)
    if args.blocks > 0:
        args.spread = max(0, args.blocks // max(1, args.batches) - 1)  # each batch takes one block, then the spread
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.n < 1 or args.m < 1 or not backends or set(backends) - {"sqlite", "postgresql"}:
        parser.error("--n and --m must be positive; --backends takes sqlite and/or postgresql")

    with tempfile.TemporaryDirectory(prefix="bench-scan-") as tmp:
        workdir = Path(tmp)
        node = devchain.start_anvil(1, log_path=workdir / "anvil.log")
        try:
            base = load_config(REPO_ROOT / "config")
            usdt = devchain.install_listed_tokens(node.url, base, "ethereum")["USDT"]
            for account in DEV_ACCOUNTS:
                devchain.mint(node.url, usdt, account, 10**27)
            began = time.perf_counter()
            seeded = seed_chain(node.url, args.n, args.m, usdt, args.batches, args.spread)
            blocks = seeded.last_block - seeded.first_block + 1
            print(f"anvil {node.url}: {len(seeded.transfers)} transfers (half ETH, half USDT) to {args.n} addresses "
                  f"over blocks {seeded.first_block}..{seeded.last_block} ({blocks} blocks), seeded in "
                  f"{time.perf_counter() - began:.1f}s")
            every = max(1, round(100 / args.stray_percent)) if args.stray_percent > 0 else 0
            strays = {tx for i, tx in enumerate(seeded.transfers) if every and i % every == 0}
            config_dir = write_config_dir(workdir / "config", node.url, seeded.first_block,
                                          args.log_chunk_blocks or None)

            raw_per_address(node.url, seeded.addresses, seeded.first_block, seeded.last_block, args.batch)  # warm
            per_address = best_of(args.repeat, lambda: raw_per_address(
                node.url, seeded.addresses, seeded.first_block, seeded.last_block, args.batch))
            whole = best_of(args.repeat, lambda: raw_whole_range(node.url, seeded.first_block, seeded.last_block))
            raw_rate = args.n / per_address
            whole_rate = args.n / whole
            print(f"raw eth_getLogs per address ({args.batch} per request): {raw_rate:,.0f} addresses/s "
                  f"({per_address:.2f}s); one eth_getLogs for the whole range: {whole:.3f}s "
                  f"(= {whole_rate:,.0f} addresses/s), best of {args.repeat}", flush=True)
            sizes = [args.n]
            if args.memory_check and args.n >= 8:
                sizes = [args.n // 4, args.n]  # N/4 first: the memory check compares N with N/4
            results: list[Result] = []
            with databases(backends, workdir) as make:
                for backend in backends:
                    for size in sizes:
                        result = measure(backend, make, config_dir, seeded, seeded.addresses[:size], strays, args)
                        results.append(result)
                        s = result.summary
                        print(f"  {backend:<10} scan of {size} addresses: {s['blocks']} blocks, {s['transfers']} "
                              f"transfers, {s['opened']} cases opened, {s['credited']} credited skipped, in "
                              f"{result.elapsed:.2f}s = {result.rate:,.0f} addresses/s, "
                              f"memory +{result.growth / 2**20:.1f} MB",
                              flush=True)
        finally:
            node.stop()

    print()
    print(f"N={args.n} addresses, M={args.m} transfers ({len(strays)} strays), {blocks} blocks, "
          f"{args.workers} workers, batch size {args.batch_size}, "
          f"log_chunk_blocks {args.log_chunk_blocks or 'default'}")
    print(f"{'backend':<11}{'N':>7}{'addr/s':>9}{'raw/s':>9}{'ratio':>8}{'range/s':>10}{'ratio':>8}{'memory':>10}")
    for r in results:
        print(f"{r.backend:<11}{r.held:>7}{r.rate:>9,.0f}{raw_rate:>9,.0f}{r.rate / raw_rate:>8.3f}{whole_rate:>10,.0f}"
              f"{r.rate / whole_rate:>8.4f}{r.growth / 2**20:>8.1f}MB")
    for backend in backends:
        runs = [r for r in results if r.backend == backend]
        if len(runs) == 2:
            small, large = runs
            print(f"{backend}: memory growth during the scan {small.growth / 2**20:.1f} MB at N={small.held}, "
                  f"{large.growth / 2**20:.1f} MB at N={large.held} "
                  f"(x{large.growth / max(small.growth, 1):.2f} for x{large.held / small.held:.0f} addresses)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
