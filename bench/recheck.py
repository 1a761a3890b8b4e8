"""The batch re-check against the chain's own speed: ``recovery recheck`` on N appeals vs raw lookups.

    python -m bench.recheck                 # N = 10,000 on SQLite and PostgreSQL, 2 runners on PostgreSQL, 4N
    python -m bench.recheck --n 1000 --backends sqlite --no-scale

Starts its own anvil (chain id 1 = ``ethereum``, an ephemeral loopback port) with the listed USDT at
its mainnet address, seeds 4N transfers (half native, half USDT, each to its own deposit address)
with :func:`chains.devchain.seed_transfers`, settles them, and writes a configuration directory
pointing at it. Per database (an SQLite file; a throwaway PostgreSQL cluster) and run: migrate,
store one appeal per transfer (bulk: the rows ``submit`` stores, without its audit event), run
``recovery recheck --json`` as a child process (peak RSS from ``wait4``), and check that every case
was decided exactly once. Right before and right after each run it measures raw batched JSON-RPC
lookups of the same hashes (``eth_getTransactionByHash`` + ``eth_getTransactionReceipt``, one HTTP
request per chunk of ``--raw-chunk`` (200) hashes, ``json`` parsing and nothing else); the ratio uses the
median of those raw runs, so both sides meet the same machine load.

Prints, per run, the whole command's rate (cases / the child process's wall time, start-up, migrations
check and exit included: what an operator's cron job sees) and its ratio to the raw lookup rate (goal
>= 0.6 on SQLite and >= 0.5 on PostgreSQL at N = 10,000), beside the rate of the run alone (the
command's own ``elapsed_seconds``, start-up excluded), and peak RSS at N and 4N (goal: flat).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eth_utils.address import to_checksum_address
from sqlalchemy import insert
from sqlmodel import col, func, select

from bench.common import raw_batched, shipped_networks, write_config_for
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from recovery import migrate
from recovery.batch_deciding import default_processes
from recovery.config import load_config
from recovery.db import Database, connect
from recovery.intake import validate_appeal
from recovery.models import Case, DepositAddress
from recovery.services import CaseService, table_of
from recovery.settings import REPO_ROOT

#: the whole command (start-up included) against raw batched lookups, per database
GOAL_RATIO = {"sqlite": 0.6, "postgresql": 0.5}
#: blocks mined after seeding: past the confirmations (12) and the reorg window (24) of ethereum
SETTLE_BLOCKS = 30


@dataclass(frozen=True)
class Deposit:
    user_id: str
    address: str
    asset: str
    tx_hash: str


@dataclass(frozen=True)
class RunResult:
    backend: str
    cases: int
    seed_seconds: float
    processed: int
    elapsed: float
    wall: float
    peak_rss_kib: int
    decided: int
    #: raw batched lookups of the same hashes, lookups/s: the median of runs just before and just after
    raw_rate: float
    #: CPU seconds the recheck process(es) used, start-up included
    cpu: float

    @property
    def rate(self) -> float:
        """Cases/s of the run alone (start-up excluded)."""
        return self.processed / self.elapsed if self.elapsed else 0.0

    @property
    def whole_rate(self) -> float:
        """Cases/s of the whole command, start-up included."""
        return self.processed / self.wall if self.wall else 0.0

    @property
    def ratio(self) -> float:
        """The whole command against raw lookups: the figure the goal is about."""
        return self.whole_rate / self.raw_rate

    @property
    def run_ratio(self) -> float:
        return self.rate / self.raw_rate

    @property
    def goal(self) -> float:
        return GOAL_RATIO[self.backend.split()[0]]


def write_config_dir(target: Path, urls: dict[str, str]) -> Path:
    """The shipped configuration with ``urls`` as the only EVM networks (the others are dropped)."""
    kept = {name: dict(net, rpc_urls=[urls[name]]) if name in urls else net
            for name, net in shipped_networks().items() if name in urls or net.get("family") != "evm"}
    return write_config_for(target, kept)


def seed_chain(url: str, count: int, usdt: str) -> list[Deposit]:
    """``count`` transfers from the dev accounts, each to its own fresh address: even native, odd USDT."""
    transfers: list[SeedTransfer] = []
    owners: list[tuple[str, str, str]] = []
    for i in range(count):
        sender = DEV_ACCOUNTS[i % len(DEV_ACCOUNTS)]
        address = to_checksum_address(f"0x{0xB0CE00000000 + i:040x}")
        if i % 2 == 0:
            transfers.append(SeedTransfer(sender, address, value=10**16 + i))
            owners.append((f"user{i:06d}", address, "ETH"))
        else:
            transfers.append(SeedTransfer(sender, address, token=usdt, amount=25 * 10**6 + i))
            owners.append((f"user{i:06d}", address, "USDT"))
    hashes: list[str] = []
    for start in range(0, len(transfers), 2000):  # anvil slows down with a very large pending pool
        hashes += devchain.seed_transfers(url, transfers[start : start + 2000])
    devchain.mine(url, SETTLE_BLOCKS)
    return [Deposit(user, address, asset, tx) for (user, address, asset), tx in zip(owners, hashes, strict=True)]


def seed_cases(service: CaseService, deposits: Sequence[Deposit]) -> None:
    """Deposit addresses and one appeal per deposit, in bulk: each case row is what ``submit`` stores
    (normalized fields, status ``submitted``, version 1), without the submit audit event."""
    now = service.clock()
    with service.db.write() as session:
        session.add_all(DepositAddress(user_id=d.user_id, network="ethereum", address=d.address, kind="eoa")
                        for d in deposits)
    for start in range(0, len(deposits), 5000):
        rows: list[dict[str, Any]] = []
        for i, d in enumerate(deposits[start : start + 5000], start=start):
            draft = validate_appeal(service.config, {"network": "ethereum", "asset": d.asset, "tx_hash": d.tx_hash,
                                                     "deposit_address": d.address}, d.user_id)
            rows.append({"reference": f"RC-B{i:07d}", "user_id": draft.user_id, "origin": "appeal",
                         "network": draft.network, "asset": draft.asset, "tx_hash": draft.tx_hash,
                         "deposit_address": draft.deposit_address, "memo": draft.memo, "status": "submitted",
                         "flags": [], "created_at": now, "updated_at": now, "version": 1, "check_count": 0})
        with service.db.write() as session:
            session.connection().execute(insert(table_of(Case)), rows)


def settle_after_bulk_load(db: Database) -> None:
    """PostgreSQL: ``VACUUM ANALYZE`` the freshly loaded tables, as autovacuum long has on a live
    database. Without it autovacuum's first pass over 10,000 new cases (and the planner's first
    statistics) landed inside the timed run at a random moment: the same run took 16 to 22 s."""
    if not db.is_postgresql:
        return
    with db.engine.connect() as connection:
        connection.execution_options(isolation_level="AUTOCOMMIT").exec_driver_sql("VACUUM ANALYZE")


def raw_seconds(url: str, hashes: Sequence[str], chunk: int) -> float:
    """Seconds to fetch transaction + receipt for every hash, ``chunk`` hashes per HTTP request."""
    began = time.perf_counter()
    seen = raw_batched(url, hashes, chunk)
    seconds = time.perf_counter() - began
    if seen != len(hashes):
        raise RuntimeError(f"raw lookups found {seen} of {len(hashes)} receipts")
    return seconds


def raw_rates(url: str, hashes: Sequence[str], chunk: int, repeat: int) -> list[float]:
    return [len(hashes) / raw_seconds(url, hashes, chunk) for _ in range(repeat)]


def run_recheck(env: dict[str, str], args: argparse.Namespace, log: Path,
                runners: int = 1) -> tuple[list[dict[str, Any]], float, int, float]:
    """``recovery recheck --json`` as ``runners`` concurrent children; returns (summaries, wall seconds,
    the largest child's peak RSS in KiB, the children's CPU seconds)."""
    command = [str(Path(sys.executable).parent / "recovery"), "recheck", "--json", "--workers", str(args.workers),
               "--batch-size", str(args.batch_size)]
    if args.processes is not None:
        command += ["--processes", str(args.processes)]
    elif runners > 1:  # several runners on one machine share its cores
        command += ["--processes", str(max(1, default_processes() // runners))]
    began = time.perf_counter()
    summaries: list[dict[str, Any]] = []
    peak = 0
    cpu = 0.0
    with ExitStack() as stack:
        children = []
        for k in range(runners):
            out = stack.enter_context(tempfile.TemporaryFile())
            err_path = log.parent / f"{log.stem}.{k}.log"
            err = stack.enter_context(err_path.open("wb"))
            children.append((subprocess.Popen(command, env=env, stdout=out, stderr=err, cwd=REPO_ROOT), out, err_path))
        for child, out, err_path in children:
            _, status, usage = os.wait4(child.pid, 0)
            child.returncode = os.waitstatus_to_exitcode(status)
            peak = max(peak, int(usage.ru_maxrss))
            cpu += usage.ru_utime + usage.ru_stime
            if child.returncode != 0:
                raise RuntimeError(f"recovery recheck exited with {child.returncode}: {err_path.read_text()[-2000:]}")
            out.seek(0)
            summaries.append(json.loads(out.read().decode()))
    return summaries, time.perf_counter() - began, peak, cpu


@contextmanager
def databases(backends: Sequence[str], workdir: Path) -> Iterator[Callable[[str, str], tuple[str, Database]]]:
    """A factory of fresh migrated databases: (backend, label) -> (url, Database)."""
    cluster = None
    made: list[Database] = []
    if "postgresql" in backends:
        sys.path.insert(0, str(REPO_ROOT))
        from tests.support.pgcluster import PgCluster

        cluster = PgCluster.start()

    def make(backend: str, label: str) -> tuple[str, Database]:
        if backend == "sqlite":
            url = f"sqlite:///{workdir / f'{label}.db'}"
        else:
            assert cluster is not None
            url = cluster.url(cluster.create_database(label))
        db = connect(url)
        migrate.upgrade(db)
        made.append(db)
        return url, db

    try:
        yield make
    finally:
        for db in made:
            db.dispose()
        if cluster is not None:
            cluster.stop()


def measure(backend: str, label: str, deposits: Sequence[Deposit], make: Callable[[str, str], tuple[str, Database]],
            config_dir: Path, workdir: Path, args: argparse.Namespace, node_url: str, runners: int = 1) -> RunResult:
    """Seed, run, check; raw lookups of the same hashes just before and just after the run (on a busy
    machine the two sides of the ratio then see the same load)."""
    url, db = make(backend, label)
    service = CaseService(db, load_config(config_dir))
    began = time.perf_counter()
    seed_cases(service, deposits)
    settle_after_bulk_load(db)
    seeded = time.perf_counter() - began
    db.dispose()
    env = dict(os.environ, RECOVERY_DATABASE_URL=url, RECOVERY_CONFIG_DIR=str(config_dir))
    hashes = [d.tx_hash for d in deposits]
    raw = raw_rates(node_url, hashes, args.raw_chunk, args.repeat)
    summaries, wall, rss, cpu = run_recheck(env, args, workdir / f"{label}.log", runners)
    raw += raw_rates(node_url, hashes, args.raw_chunk, args.repeat)
    with db.read() as session:
        decided = int(session.exec(select(func.count()).select_from(Case).where(
            col(Case.status) == "in_review")).one())
    db.dispose()
    processed = sum(s["processed"] for s in summaries)
    if decided != len(deposits) or processed != len(deposits):
        raise RuntimeError(f"{label}: {processed} processed, {decided} of {len(deposits)} decided: "
                           f"{json.dumps(summaries)[:2000]}")
    # concurrent runners: their run windows overlap; the longest one is the run's duration
    elapsed = max(s["elapsed_seconds"] for s in summaries)
    return RunResult(backend if runners == 1 else f"{backend} x{runners}", len(deposits), seeded, processed,
                     elapsed, wall, rss, decided, statistics.median(raw), cpu)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.recheck", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=10000, help="appeals per run (default 10000)")
    parser.add_argument("--scale", type=int, default=4, help="the memory run uses scale x N appeals (default 4)")
    parser.add_argument("--no-scale", action="store_true", help="skip the scale x N memory run")
    parser.add_argument("--backends", default="sqlite,postgresql", help="comma-separated: sqlite, postgresql")
    parser.add_argument("--workers", type=int, default=4, help="recheck --workers (default 4)")
    parser.add_argument("--batch-size", type=int, default=500, help="recheck --batch-size (default 500, the "
                        "command's own)")
    parser.add_argument("--processes", type=int, default=None, help="recheck --processes (default: the command's "
                        "own, one per core up to 4; 0 decides in the runner's process)")
    parser.add_argument("--raw-chunk", type=int, default=200, help="hashes per raw JSON-RPC request (default 200, "
                        "the EVM adapter's lookup_batch_size)")
    parser.add_argument("--repeat", type=int, default=3, help="raw lookup runs; the fastest counts")
    parser.add_argument("--pg-runners", type=int, default=2, help="also run this many recheck processes at once "
                        "on PostgreSQL (default 2; 1 to skip)")
    args = parser.parse_args(argv)
    backends = [b.strip() for b in args.backends.split(",") if b.strip()]
    if args.n < 1 or args.scale < 1 or not backends or set(backends) - {"sqlite", "postgresql"}:
        parser.error("--n and --scale must be positive; --backends takes sqlite and/or postgresql")
    big = args.n * (1 if args.no_scale else args.scale)

    with tempfile.TemporaryDirectory(prefix="bench-recheck-") as tmp:
        workdir = Path(tmp)
        node = devchain.start_anvil(1, log_path=workdir / "anvil.log")
        try:
            base = load_config(REPO_ROOT / "config")
            usdt = devchain.install_listed_tokens(node.url, base, "ethereum")["USDT"]
            for account in DEV_ACCOUNTS:
                devchain.mint(node.url, usdt, account, 10**27)
            config_dir = write_config_dir(workdir / "config", {"ethereum": node.url})
            began = time.perf_counter()
            deposits = seed_chain(node.url, big, usdt)
            print(f"anvil {node.url}: {len(deposits)} transfers seeded (half ETH, half USDT) "
                  f"in {time.perf_counter() - began:.1f}s")
            first = deposits[: args.n]
            raw_batched(node.url, [d.tx_hash for d in deposits], args.raw_chunk)  # warm the node once
            results: list[RunResult] = []
            with databases(backends, workdir) as make:
                for backend in backends:
                    plan = [(f"{backend}_n", first, 1)]
                    if backend == "postgresql" and args.pg_runners > 1:
                        plan.append((f"{backend}_runners", first, args.pg_runners))
                    if big > args.n:
                        plan.append((f"{backend}_big", deposits, 1))
                    for label, chosen, runners in plan:
                        results.append(measure(backend, label, chosen, make, config_dir, workdir, args, node.url,
                                               runners))
                        report_line(results[-1])
        finally:
            node.stop()
    return report(results, args.n, big)


def report_line(r: RunResult) -> None:
    print(f"  {r.backend:<14} {r.cases:>6} cases: whole command {r.wall:.2f}s = {r.whole_rate:,.0f} cases/s "
          f"(run alone {r.elapsed:.2f}s = {r.rate:,.0f}/s); raw lookups {r.raw_rate:,.0f}/s; "
          f"ratio {r.ratio:.2f} (run alone {r.run_ratio:.2f}); "
          f"peak RSS {r.peak_rss_kib / 1024:.0f} MiB; CPU {r.cpu:.1f}s", flush=True)


def report(results: Sequence[RunResult], n: int, big: int) -> int:
    print()
    print("ratio = the whole command (start-up included) / raw batched lookups of the same hashes, same run")
    print(f"{'backend':<15}{'cases':>7}{'whole/s':>9}{'run/s':>8}{'raw/s':>8}{'ratio':>7}  {'goal':<16}"
          f"{'peak RSS':>9}")
    for r in results:
        met = f">= {r.goal} {'met' if r.ratio >= r.goal else 'NOT met'}"
        print(f"{r.backend:<15}{r.cases:>7}{r.whole_rate:>9,.0f}{r.rate:>8,.0f}{r.raw_rate:>8,.0f}{r.ratio:>7.2f}  "
              f"{met:<16}{r.peak_rss_kib / 1024:>5.0f} MiB")
    for backend in sorted({r.backend for r in results}):
        small = next((r for r in results if r.backend == backend and r.cases == n), None)
        large = next((r for r in results if r.backend == backend and r.cases == big and big > n), None)
        if small and large:
            print(f"{backend}: peak RSS {small.peak_rss_kib / 1024:.0f} MiB at N={n}, "
                  f"{large.peak_rss_kib / 1024:.0f} MiB at {big} (x{large.peak_rss_kib / small.peak_rss_kib:.2f} "
                  f"for x{big // n} the cases)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
