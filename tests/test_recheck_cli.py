"""``recovery recheck`` as operators run it: a real process on a temp configuration pointing at the
test anvils, against SQLite and PostgreSQL. A runner killed with SIGKILL mid-run, two runner
processes sharing 2,000 cases on PostgreSQL, a network down, dry runs, progress output, exit codes."""

from __future__ import annotations

import json
import os
import pty
import signal
import socket
import subprocess
import sys
import threading
import time
import tomllib
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import tomli_w
from sqlalchemy import insert
from sqlmodel import col, func, select
from typer.testing import CliRunner

from app import cli
from bench.recheck import write_config_dir
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from recovery import audit
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.intake import validate_appeal
from recovery.leases import Leases
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.services import Actor, CaseService, table_of
from recovery.settings import get_settings
from recovery.vocabulary import Role
from tests.conftest import new_database
from tests.fixtures_anvil import EvmTestbed, fresh_address

RECOVERY = str(Path(sys.executable).parent / "recovery")
#: blocks mined after seeding: past ethereum's confirmations (12) and reorg window (24)
SETTLED = 30


@pytest.fixture(scope="module")
def config_dir(evm_testbed: EvmTestbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped configuration with the test anvils as its only EVM networks."""
    urls = {name: evm_testbed.url(name) for name in ("ethereum", "bsc")}
    return write_config_dir(tmp_path_factory.mktemp("recheck-config"), urls)


@pytest.fixture
def bsc_down_dir(config_dir: Path, tmp_path: Path) -> Path:
    """The same configuration with BNB Smart Chain pointed at a port where nothing listens."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    target = tmp_path / "bsc-down"
    target.mkdir()
    for name in ("assets.toml", "fees.toml", "policy.toml"):
        if (config_dir / name).exists():
            (target / name).write_text((config_dir / name).read_text())
    networks = tomllib.loads((config_dir / "networks.toml").read_text())
    networks["networks"]["bsc"].update(rpc_urls=[f"http://127.0.0.1:{port}"], retry_attempts=1)
    (target / "networks.toml").write_text(tomli_w.dumps(networks))
    return target


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from new_database("sqlite", request, tmp_path)


@pytest.fixture
def pg_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    yield from new_database("postgresql", request, tmp_path)


def url_of(db: Database) -> str:
    return db.engine.url.render_as_string(hide_password=False)


def env_for(db: Database, config: Path) -> dict[str, str]:
    return dict(os.environ, RECOVERY_DATABASE_URL=url_of(db), RECOVERY_CONFIG_DIR=str(config), NO_COLOR="1")


def recheck(db: Database, config: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([RECOVERY, "recheck", *args], env=env_for(db, config), capture_output=True, text=True,
                          timeout=timeout, check=False)


def summary_of(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == 0, done.stderr
    data: dict[str, Any] = json.loads(done.stdout)
    return data


def deposits(service: CaseService, evm_testbed: EvmTestbed, count: int, network: str,
             prefix: str) -> list[tuple[str, str, str]]:
    """``count`` native deposits, each to its own address we hold for its own user, settled:
    (user, address, tx hash)."""
    users = [(f"{prefix}{i:05d}-{os.urandom(3).hex()}", fresh_address()) for i in range(count)]
    with service.db.write() as session:
        session.add_all(DepositAddress(user_id=u, network=network, address=a, kind="eoa") for u, a in users)
    transfers = [SeedTransfer(DEV_ACCOUNTS[i % 8], a, value=10**15 + i) for i, (_, a) in enumerate(users)]
    hashes = devchain.seed_transfers(evm_testbed.url(network), transfers)
    evm_testbed.mine(network, SETTLED)
    return [(u, a, h) for (u, a), h in zip(users, hashes, strict=True)]


def seed(service: CaseService, evm_testbed: EvmTestbed, count: int, network: str = "ethereum",
         prefix: str = "u") -> list[str]:
    """Deposits and one appeal each, filed through the service (as the API does)."""
    refs = []
    native = service.config.network(network).native_asset
    for user, address, tx in deposits(service, evm_testbed, count, network, prefix):
        draft = validate_appeal(service.config, {"network": network, "asset": native, "tx_hash": tx,
                                                 "deposit_address": address}, user)
        case, _ = service.submit(draft, Actor(user, Role.USER))
        refs.append(case.reference or "")
    return refs


def bulk_seed(service: CaseService, evm_testbed: EvmTestbed, count: int, prefix: str) -> None:
    """Many deposits and their appeals in one INSERT: the cases are exactly what ``submit`` stores,
    without its audit event (the volume tests count chain_result events only)."""
    rows = []
    now = service.clock()
    for i, (user, address, tx) in enumerate(deposits(service, evm_testbed, count, "ethereum", prefix)):
        rows.append({"reference": f"RC-{prefix}{i:06d}", "user_id": user, "origin": "appeal", "network": "ethereum",
                     "asset": "ETH", "tx_hash": tx.lower(), "deposit_address": address, "status": "submitted",
                     "flags": [], "created_at": now, "updated_at": now, "version": 1, "check_count": 0})
    with service.db.write() as session:
        session.connection().execute(insert(table_of(Case)), rows)


def chain_results(db: Database) -> Counter[int]:
    with db.read() as session:
        ids = session.exec(select(CaseEvent.case_id).where(CaseEvent.action == "chain_result")).all()
        return Counter(i for i in ids if i is not None)


def assert_all_decided_once(db: Database, count: int) -> None:
    """Every case decided, by exactly one chain_result event, no lease left, the audit chain intact."""
    per_case = chain_results(db)
    with db.read() as session:
        statuses = Counter(session.exec(select(Case.status)).all())
        leased = session.exec(select(func.count()).select_from(Case).where(col(Case.lease_owner).is_not(None))).one()
        verified = audit.verify_chain(session)
    assert statuses == {"in_review": count}
    assert len(per_case) == count and set(per_case.values()) == {1}
    assert leased == 0
    assert verified.ok, verified.problem


def start_and_wait(db: Database, config: Path, decided: int, *, own_group: bool = False) -> subprocess.Popen[bytes]:
    """A slow runner (one thread, batches of 10, two worker processes), once at least ``decided``
    cases have chain results, **stopped** (SIGSTOP): only the runner writes, so it cannot finish the
    run between this count and the test's signal, however the machine schedules the test; the
    caller signals it, then :func:`resume`s it. ``own_group``: in a process group of its own, as a
    terminal runs it."""
    runner = subprocess.Popen([RECOVERY, "recheck", "--workers", "1", "--processes", "2", "--batch-size", "10",
                               "--json"],
                              env=env_for(db, config), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                              process_group=0 if own_group else None, preexec_fn=_signals_as_a_terminal_leaves_them)
    deadline = time.monotonic() + 90
    while True:
        assert runner.poll() is None, f"the runner ended before it could be stopped: {runner.communicate()}"
        os.kill(runner.pid, signal.SIGSTOP)
        wait_until_stopped(runner.pid)
        if sum(chain_results(db).values()) >= decided:
            return runner
        resume(runner)
        assert time.monotonic() < deadline, "the runner made no progress"
        time.sleep(0.02)


def _signals_as_a_terminal_leaves_them() -> None:
    """In the runner's process before it starts: no signal blocked, SIGINT and SIGTERM at their
    defaults. A child inherits an ignored or blocked signal from the process that starts it, and
    the test process (a pytest-xdist worker, after whatever ran in it before) is no terminal."""
    signal.pthread_sigmask(signal.SIG_SETMASK, set())
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def signal_state(pid: int) -> dict[str, str]:
    """The blocked, ignored and caught signal masks of ``pid`` (for a failure's message)."""
    lines = (Path("/proc") / str(pid) / "status").read_text().splitlines()
    return {k: v.strip() for k, _, v in (line.partition(":") for line in lines) if k in ("SigBlk", "SigIgn", "SigCgt")}


def wait_until_stopped(pid: int) -> None:
    """Until ``pid`` is in the stopped state (SIGSTOP is delivered asynchronously)."""
    deadline = time.monotonic() + 10
    while process_state(Path("/proc") / str(pid))[0] not in ("T", "t"):
        assert time.monotonic() < deadline, f"{pid} did not stop"
        time.sleep(0.001)


def resume(runner: subprocess.Popen[bytes]) -> None:
    """Let a runner stopped by :func:`start_and_wait` go on (a signal sent meanwhile is delivered now)."""
    os.kill(runner.pid, signal.SIGCONT)


def process_state(proc: Path) -> tuple[str, int]:
    """(state letter, parent pid) of the process at ``proc`` (``/proc/PID``); OSError once it is gone."""
    state, parent = (proc / "stat").read_text().rsplit(")", 1)[1].split()[:2]  # after the command's name
    return state, int(parent)


def children_of(pid: int) -> list[int]:
    """The live processes whose parent is ``pid`` (from /proc)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                state, parent = process_state(entry)
            except (OSError, ValueError):
                continue
            if parent == pid and state != "Z":
                found.append(int(entry.name))
    return found


def is_running(pid: int) -> bool:
    """True while ``pid`` exists and is not a zombie."""
    try:
        return process_state(Path("/proc") / str(pid))[0] != "Z"
    except OSError:
        return False


def test_runners_stopped_and_killed_mid_run_then_a_run_finishing(
    database: Database, evm_testbed: EvmTestbed, config_dir: Path
) -> None:
    db = database
    service = CaseService(db, evm_testbed.config)
    count = 800
    bulk_seed(service, evm_testbed, count, "K")

    # SIGTERM: a polite stop; the batch in hand is finished, leases released, exit 130
    polite = start_and_wait(db, config_dir, 20)
    polite.send_signal(signal.SIGTERM)
    resume(polite)
    _, err = polite.communicate(timeout=60)
    assert polite.returncode == 130 and b"interrupted" in err
    stopped = sum(chain_results(db).values())
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(Case).where(col(Case.lease_owner).is_not(None))).one() == 0

    # SIGKILL: no goodbye at all; its worker processes die with it
    runner = start_and_wait(db, config_dir, stopped + 40)
    workers = children_of(runner.pid)
    assert len(workers) == 2
    os.kill(runner.pid, signal.SIGKILL)
    runner.communicate(timeout=30)
    assert runner.returncode == -signal.SIGKILL
    deadline = time.monotonic() + 30
    while alive := [pid for pid in workers if is_running(pid)]:
        assert time.monotonic() < deadline, f"worker processes {alive} outlived their killed runner"
        time.sleep(0.02)

    applied = chain_results(db)
    assert stopped < len(applied) < count and set(applied.values()) == {1}
    with db.read() as session:
        for case in session.exec(select(Case)).all():  # each case entirely before, or entirely after
            if case.id in applied:
                assert (case.status, case.version, case.category) == ("in_review", 2, "uncredited_valid")
            else:
                assert (case.status, case.version, case.decision) == ("submitted", 1, None)

    last = summary_of(recheck(db, config_dir, "--json"))
    assert last["processed"] == count - len(applied)  # nothing lost, nothing done twice
    assert last["changed"] == last["processed"] and last["errors"] == []
    assert_all_decided_once(db, count)


def test_ctrl_c_stops_the_runner_and_its_workers_finish_the_batch_in_hand(
    sqlite_db: Database, evm_testbed: EvmTestbed, config_dir: Path
) -> None:
    """Ctrl-C reaches every process of the terminal's group. The worker processes ignore it: the
    runner finishes the batch in hand with them, releases its leases and exits 130, without a
    traceback from any worker; what was decided is whole, and the next run does the rest."""
    db = sqlite_db
    service = CaseService(db, evm_testbed.config)
    count = 300
    bulk_seed(service, evm_testbed, count, "C")
    runner = start_and_wait(db, config_dir, 20, own_group=True)
    workers = children_of(runner.pid)
    state = signal_state(runner.pid)
    os.killpg(runner.pid, signal.SIGINT)
    resume(runner)
    _, err = runner.communicate(timeout=60)

    assert runner.returncode == 130 and b"interrupted" in err, (runner.returncode, state, err.decode()[-1500:])
    assert b"Traceback" not in err and b"KeyboardInterrupt" not in err, err.decode()[-2000:]
    assert len(workers) == 2 and not [pid for pid in workers if is_running(pid)]
    applied = chain_results(db)
    assert 20 <= len(applied) < count and set(applied.values()) == {1}
    assert len(applied) % 10 == 0  # whole batches of 10: the one in hand was finished, not dropped
    with db.read() as session:
        assert session.exec(select(func.count()).select_from(Case).where(col(Case.lease_owner).is_not(None))).one() == 0
    last = summary_of(recheck(db, config_dir, "--json"))
    assert last["processed"] == count - len(applied)
    assert_all_decided_once(db, count)


def test_two_runner_processes_share_2000_cases_exactly_once_on_postgresql(
    pg_db: Database, evm_testbed: EvmTestbed, config_dir: Path
) -> None:
    service = CaseService(pg_db, evm_testbed.config)
    count = 2000
    bulk_seed(service, evm_testbed, count, "P")
    args = [RECOVERY, "recheck", "--workers", "2", "--batch-size", "50", "--json"]
    runners = [subprocess.Popen(args, env=env_for(pg_db, config_dir), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True) for _ in range(2)]
    outputs = [r.communicate(timeout=240) for r in runners]
    summaries = []
    for runner, (out, err) in zip(runners, outputs, strict=True):
        assert runner.returncode == 0, err
        summaries.append(json.loads(out))
    processed = [s["processed"] for s in summaries]
    assert sum(processed) == count and all(p > 0 for p in processed), processed  # both worked, none twice
    assert all(s["conflicts"] == 0 for s in summaries)
    assert_all_decided_once(pg_db, count)


def test_a_network_down_dry_runs_and_progress_output(
    sqlite_db: Database, evm_testbed: EvmTestbed, bsc_down_dir: Path
) -> None:
    service = CaseService(sqlite_db, evm_testbed.config)
    on_eth = seed(service, evm_testbed, 3, "ethereum", prefix="e")
    on_bsc = seed(service, evm_testbed, 2, "bsc", prefix="b")

    # a dry run on a terminal: a progress bar, the would-be changes, nothing written
    controller, terminal = pty.openpty()
    env = dict(env_for(sqlite_db, bsc_down_dir), TERM="xterm-256color", COLUMNS="100")
    env.pop("NO_COLOR")
    # the terminal is drained while the command runs: a pty holds a few KiB, and a bar redrawn for
    # long on a slow machine would otherwise block the command on its own output
    received: list[bytes] = []
    reader = threading.Thread(target=drain, args=(controller, received), daemon=True)
    reader.start()
    dry = subprocess.run([RECOVERY, "recheck", "--dry-run"], env=env, stdout=subprocess.PIPE, stderr=terminal,
                         text=True, timeout=120, check=False)
    os.close(terminal)
    reader.join(timeout=30)
    os.close(controller)
    shown = b"".join(received).decode(errors="replace")
    assert dry.returncode == 0, shown[-3000:]
    assert "━" in shown and "5/5" in shown  # Rich's bar and its count
    assert "dry run: nothing written" in dry.stdout and "in_review" in dry.stdout
    assert "network bsc did not answer: 2 case(s)" in dry.stdout
    assert versions(service, on_eth + on_bsc) == [1] * 5

    # BNB Smart Chain down: its cases are left untouched and counted; Ethereum goes on; exit 0
    down = recheck(sqlite_db, bsc_down_dir, "--json")
    data = summary_of(down)
    assert data["unavailable_networks"] == {"bsc": 2} and data["unavailable"] == 2
    assert data["new_status"]["in_review"] == 3 and data["categories"] == {"uncredited_valid": 3}
    assert {"old_status", "new_status", "categories", "errors", "elapsed_seconds"} <= set(data)
    assert "recheck: 5/5 cases" in down.stderr and "\x1b[" not in down.stderr  # plain lines off a terminal
    assert [service.get(r).case.status for r in on_eth] == ["in_review"] * 3
    assert versions(service, on_bsc) == [1, 1] and all(len(service.get(r).events) == 1 for r in on_bsc)


def drain(fd: int, into: list[bytes]) -> None:
    """Read a pty's controller side until every holder of its terminal side has closed it (EIO)."""
    while True:
        try:
            data = os.read(fd, 65536)
        except OSError:
            return
        if not data:
            return
        into.append(data)


def versions(service: CaseService, refs: list[str]) -> list[int]:
    return [service.get(r).case.version for r in refs]


# ---------------------------------------------------------------------------- could not run: exit codes

cli_runner = CliRunner()


@pytest.fixture
def cli_on(monkeypatch: pytest.MonkeyPatch, config_dir: Path) -> Iterator[pytest.MonkeyPatch]:
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    get_settings.cache_clear()
    yield monkeypatch
    get_settings.cache_clear()


def invoke(monkeypatch: pytest.MonkeyPatch, url: str, *args: str) -> tuple[int, str]:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", url)
    get_settings.cache_clear()
    result = cli_runner.invoke(cli.app, ["recheck", *args])
    return result.exit_code, result.stdout + result.stderr


def test_a_second_runner_on_sqlite_is_refused(cli_on: pytest.MonkeyPatch, sqlite_db: Database) -> None:
    with Leases(sqlite_db, "first-runner", lease_seconds=60, clock=utcnow):
        code, text = invoke(cli_on, url_of(sqlite_db))
    assert code == 3
    assert "one at a time" in text and "PostgreSQL" in text
    code, _ = invoke(cli_on, url_of(sqlite_db), "--json")  # the first one is gone: this one runs
    assert code == 0


def test_it_says_why_it_could_not_run(cli_on: pytest.MonkeyPatch, tmp_path: Path, sqlite_db: Database) -> None:
    code, text = invoke(cli_on, f"sqlite:///{tmp_path / 'empty.db'}")
    assert code == 1 and "recovery db upgrade" in text
    code, text = invoke(cli_on, url_of(sqlite_db), "--network", "dogecoin")
    assert code == 2 and "--network" in text and "dogecoin" in text
    code, text = invoke(cli_on, url_of(sqlite_db), "--limit", "0")
    assert code == 2
