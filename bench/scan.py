"""``recovery scan`` against the node's own speed: addresses scanned per second vs raw ``eth_getLogs``.

    python -m bench.scan                          # N = 1,000 addresses, M = 4,000 transfers, SQLite
    python -m bench.scan --n 500 --m 2000 --backends sqlite,postgresql

Starts its own anvil (chain id 1 = ``ethereum``, an ephemeral loopback port) with the listed USDT at
its mainnet address, and seeds M transfers (half ETH, half USDT, from the dev accounts) round-robin
to N deposit addresses, in batches spread over a block range (``--spread`` empty blocks between
batches) with :func:`chains.devchain.seed_transfers`. The exchange "credited" all but
``--stray-percent`` of them (rows in ``credited_deposits``); the others are stray deposits the scan
must open as cases. Per database (an SQLite file; a throwaway PostgreSQL cluster), the scan runs
in-process (:class:`recovery.scan.Scanner`, ``--workers`` threads) over the whole range, and the
run is checked: every stray opened exactly once, every (network, address) scanned to the safe head.

Baselines, measured in the same run against the same node and range:
- raw per-address ``eth_getLogs`` (the Transfer topic with the address as recipient), ``--batch``
  addresses per HTTP request, ``json`` parsing only: what the scan's token part costs at least;
- one raw ``eth_getLogs`` for every Transfer log of the range (no address filter).

Prints addresses/s of the scan and of each baseline, and the ratios.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import requests
from eth_utils.address import to_checksum_address
from sqlmodel import col, func, select

from bench.common import shipped_networks, write_config_for
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from chains.evm import TRANSFER_TOPIC
from recovery import migrate
from recovery.checking import ChainGateway
from recovery.config import Config, load_config
from recovery.db import Database, connect
from recovery.models import Case, CreditedDeposit, DepositAddress, ScanCursor
from recovery.scan import Scanner, ScanOptions, ScanSummary
from recovery.services import CaseService
from recovery.settings import REPO_ROOT

#: blocks mined after seeding: past ethereum's 12 confirmations
SETTLE_BLOCKS = 20


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
    summary: ScanSummary
    opened: int

    @property
    def rate(self) -> float:
        return self.summary.scanned / self.summary.elapsed if self.summary.elapsed else 0.0


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
        devchain.mine(url, spread)
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
def databases(backends: Sequence[str], workdir: Path) -> Iterator[Callable[[str], Database]]:
    """A factory of fresh migrated databases, one per backend name."""
    cluster = None
    made: list[Database] = []
    if "postgresql" in backends:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.support.pgcluster import PgCluster

        cluster = PgCluster.start()

    def make(backend: str) -> Database:
        if backend == "sqlite":
            url = f"sqlite:///{workdir / 'scan.db'}"
        else:
            assert cluster is not None
            url = cluster.url(cluster.create_database("bench_scan"))
        db = connect(url)
        migrate.upgrade(db)
        made.append(db)
        return db

    try:
        yield make
    finally:
        for db in made:
            db.dispose()
        if cluster is not None:
            cluster.stop()


def measure(backend: str, db: Database, config: Config, seeded: Seeded, strays: set[str],
            args: argparse.Namespace) -> Result:
    with db.write() as session:
        session.add_all(DepositAddress(user_id=f"user{i:06d}", network="ethereum", address=a, kind="eoa")
                        for i, a in enumerate(seeded.addresses))
        owners = {a: f"user{i:06d}" for i, a in enumerate(seeded.addresses)}
        session.add_all(CreditedDeposit(network="ethereum", tx_hash=tx, user_id=owners[to], asset=asset, amount=amount)
                        for tx, (to, asset, amount) in seeded.transfers.items() if tx not in strays)
    service = CaseService(db, config)
    options = ScanOptions(workers=args.workers, batch_size=args.batch_size, chunk_blocks=args.chunk_blocks)
    summary = Scanner(service, ChainGateway(config), options).run()
    with db.read() as session:
        cases = {str(h): int(n) for h, n in session.exec(
            select(Case.tx_hash, func.count()).where(Case.origin == "detected").group_by(col(Case.tx_hash))).all()}
        behind = int(session.exec(select(func.count()).select_from(ScanCursor).where(
            col(ScanCursor.scanned_to).is_(None) | (col(ScanCursor.scanned_to) < seeded.last_block))).one())
    if set(cases) != strays or set(cases.values()) - {1} or behind or summary.scanned != len(seeded.addresses):
        raise RuntimeError(f"{backend}: {len(cases)} cases for {len(strays)} strays, {behind} addresses behind: "
                           f"{json.dumps(summary.to_json())[:2000]}")
    return Result(backend, summary, len(cases))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scan", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1000, help="deposit addresses (default 1000)")
    parser.add_argument("--m", type=int, default=4000, help="transfers to them (default 4000)")
    parser.add_argument("--batches", type=int, default=20, help="seeding batches (default 20)")
    parser.add_argument("--spread", type=int, default=100, help="empty blocks after each batch (default 100)")
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
    args = parser.parse_args(argv)
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
            config = load_config(write_config_dir(workdir / "config", node.url, seeded.first_block,
                                                  args.log_chunk_blocks or None))

            raw_per_address(node.url, seeded.addresses, seeded.first_block, seeded.last_block, args.batch)  # warm
            per_address = best_of(args.repeat, lambda: raw_per_address(
                node.url, seeded.addresses, seeded.first_block, seeded.last_block, args.batch))
            whole = best_of(args.repeat, lambda: raw_whole_range(node.url, seeded.first_block, seeded.last_block))
            raw_rate = args.n / per_address
            whole_rate = args.n / whole
            print(f"raw eth_getLogs per address ({args.batch} per request): {raw_rate:,.0f} addresses/s "
                  f"({per_address:.2f}s); one eth_getLogs for the whole range: {whole:.3f}s "
                  f"(= {whole_rate:,.0f} addresses/s), best of {args.repeat}")
            results: list[Result] = []
            with databases(backends, workdir) as make:
                for backend in backends:
                    result = measure(backend, make(backend), config, seeded, strays, args)
                    results.append(result)
                    s = result.summary
                    print(f"  {backend:<10} scan: {s.scanned} addresses, {s.blocks} blocks, {s.transfers} transfers, "
                          f"{s.opened} cases opened, {s.credited} credited skipped, in {s.elapsed:.2f}s = "
                          f"{result.rate:,.0f} addresses/s", flush=True)
        finally:
            node.stop()

    print()
    print(f"N={args.n} addresses, M={args.m} transfers ({len(strays)} strays), {blocks} blocks, "
          f"{args.workers} workers, log_chunk_blocks {args.log_chunk_blocks or 'default'}")
    print(f"{'backend':<11}{'addr/s':>9}{'raw/s':>9}{'ratio':>8}{'range/s':>10}{'ratio':>8}")
    for r in results:
        print(f"{r.backend:<11}{r.rate:>9,.0f}{raw_rate:>9,.0f}{r.rate / raw_rate:>8.3f}{whole_rate:>10,.0f}"
              f"{r.rate / whole_rate:>8.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
