"""How fast the ``recovery`` command answers: each operator command's wall time against a bare start.

    python -m bench.startup                 # 7 runs of each command, medians
    python -m bench.startup --runs 11 --cases 50

Builds a throwaway SQLite database in a temporary folder (``recovery db upgrade``, then ``--cases``
appeals filed through the service layer, each with its audit event), points ``RECOVERY_DATABASE_URL``
and ``RECOVERY_VAR_DIR`` at it and times, as child processes: ``python -c pass`` (a bare interpreter
start, the baseline), ``recovery --help`` and the read-only operator commands (``cases list``,
``cases show``, ``audit verify``) and, for reference, the start-up and exit of ``recovery recheck``
with nothing to do (``--network xrpl``: no case there, so no chain is asked; the schema check, the
configuration, the worker processes and the audit anchor remain). The runs are interleaved (one of
each command per round, after one warm-up round) so that every command meets the same machine load;
the median of ``--runs`` rounds counts. The children cache their compiled bytecode in the
temporary folder (``PYTHONPYCACHEPREFIX``), as an installed package has it, even where
``PYTHONDONTWRITEBYTECODE`` is set; nothing is written into the checkout.

Prints a table: each command's median wall and CPU time (user + system), their difference from the
bare start and the ratio to it. Goals (issue 20): ``recovery --help`` within 0.25 s of a bare start;
the read-only case commands within 0.5 s. For reference the table also times two "floors": a script
that reads cases the ordinary way (a typer command with the options of ``cases list``, which typer
coerces through pydantic; SQLAlchemy Core; one query; a Rich table), and the same read through the
ORM (SQLModel, the table models, pydantic-settings), which ``audit verify`` still is. ``cases list``
and ``cases show`` read below both: with the database driver, their options coerced without
pydantic (issue 20).
"""

from __future__ import annotations

import argparse
import os
import secrets
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

GOAL_HELP = 0.25
GOAL_READ = 0.5
#: a shipped network the throwaway database has no case on (its appeals are on ethereum)
IDLE_NETWORK = "xrpl"


@dataclass(frozen=True)
class Command:
    label: str
    argv: tuple[str, ...]
    goal: float | None  # seconds above the bare start; None for the baseline itself


@dataclass(frozen=True)
class Timing:
    command: Command
    walls: tuple[float, ...]
    cpus: tuple[float, ...]  # user + system CPU seconds of the child

    @property
    def wall(self) -> float:
        return statistics.median(self.walls)

    @property
    def cpu(self) -> float:
        return statistics.median(self.cpus)


def recovery_argv() -> list[str]:
    """The installed ``recovery`` console script next to this interpreter, else ``python -m app.cli``."""
    script = Path(sys.executable).with_name("recovery")
    return [str(script)] if script.is_file() else [sys.executable, "-m", "app.cli"]


def prepare(workdir: Path, cases: int) -> dict[str, str]:
    """A migrated SQLite database under ``workdir`` with ``cases`` appeals; the environment that uses it."""
    env = {
        **os.environ,
        "RECOVERY_DATABASE_URL": f"sqlite:///{workdir / 'startup.db'}",
        "RECOVERY_VAR_DIR": str(workdir),
        # compiled bytecode is cached (an installed package has it), in the temporary folder:
        # nothing is written into the checkout, and PYTHONDONTWRITEBYTECODE does not apply
        "PYTHONPYCACHEPREFIX": str(workdir / "pycache"),
        # one audit key for the commands and for this process, which files the appeals
        "RECOVERY_AUDIT_KEY": "bench-startup-" + secrets.token_hex(32),
    }
    os.environ["RECOVERY_AUDIT_KEY"] = env["RECOVERY_AUDIT_KEY"]
    env.pop("RECOVERY_CONFIG_DIR", None)  # the shipped configuration
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    subprocess.run([*recovery_argv(), "db", "upgrade"], env=env, check=True, stdout=subprocess.DEVNULL)
    # the appeals are filed in this process: what it imports does not count
    from chains.addresses import normalize_address
    from recovery.config import load_config
    from recovery.db import connect
    from recovery.intake import AppealDraft
    from recovery.services import Actor, CaseService
    from recovery.settings import REPO_ROOT
    from recovery.vocabulary import Role

    db = connect(env["RECOVERY_DATABASE_URL"])
    service = CaseService(db, load_config(REPO_ROOT / "config"))
    for i in range(cases):
        user = f"user-{i % 7:04d}"
        address = normalize_address("evm", f"0x{0xB0CE0000 + i:040x}")
        draft = AppealDraft(user_id=user, network="ethereum", asset="USDT", tx_hash="0x" + secrets.token_hex(32),
                            deposit_address=address, memo=None, claimed_amount=Decimal("125.5"))
        service.submit(draft, Actor(user, Role.USER))
    db.dispose()
    return env


#: reading cases the ordinary way: a typer command with the options of ``cases list`` (typer coerces
#: each through a pydantic TypeAdapter), SQLAlchemy Core, one query of 100 cases and a table on stdout
FLOOR = """
import gc, os, typer
def read(status: str | None = None, category: str | None = None, network: str | None = None,
         user: str | None = None, limit: int = typer.Option(100, min=1, max=10_000),
         offset: int = typer.Option(0, min=0), as_json: bool = typer.Option(False, "--json")) -> None:
    import rich.console, rich.table, sqlalchemy
    engine = sqlalchemy.create_engine(os.environ["RECOVERY_DATABASE_URL"])
    with engine.connect() as connection:
        query = sqlalchemy.text("SELECT * FROM cases ORDER BY id LIMIT :limit OFFSET :offset")
        rows = connection.execute(query, {"limit": limit, "offset": offset}).all()
    rich.console.Console().print(rich.table.Table(*(str(r.reference) for r in rows[:3])))
    engine.dispose()
    gc.collect()
    gc.freeze()
typer.run(read)
"""

#: the same through the ORM: the settings library, SQLModel and the table models (the floor of
#: ``audit verify``)
ORM_FLOOR = """
import gc, os, typer, rich.console, rich.table, pydantic_settings
from sqlmodel import Session, create_engine, select
from recovery.models import Case
engine = create_engine(os.environ["RECOVERY_DATABASE_URL"])
with Session(engine) as session:
    rows = session.exec(select(Case).limit(100)).all()
rich.console.Console().print(rich.table.Table(*(str(r.reference) for r in rows[:3])))
engine.dispose()
gc.collect()
gc.freeze()
"""


def commands(reference: str) -> list[Command]:
    recovery = tuple(recovery_argv())
    return [
        Command("python -c pass", (sys.executable, "-c", "pass"), None),
        Command("floor: Core + 1 query", (sys.executable, "-c", FLOOR), None),
        Command("floor: ORM + 1 query", (sys.executable, "-c", ORM_FLOOR), None),
        Command("recovery --help", (*recovery, "--help"), GOAL_HELP),
        Command("recovery cases list", (*recovery, "cases", "list"), GOAL_READ),
        Command("recovery cases list --json", (*recovery, "cases", "list", "--json"), GOAL_READ),
        Command(f"recovery cases show {reference}", (*recovery, "cases", "show", reference), GOAL_READ),
        Command("recovery audit verify", (*recovery, "audit", "verify"), GOAL_READ),
        # the batch re-check's start-up and exit: no case on that network, so no lookup and no
        # chain library; the schema check, the configuration, the worker processes, the anchor
        Command("recovery recheck (nothing to do)", (*recovery, "recheck", "--network", IDLE_NETWORK, "--json"),
                None),
    ]


def run_once(command: Command, env: Mapping[str, str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of one run of ``command``; a failing command stops the bench."""
    began = time.perf_counter()
    child = subprocess.Popen(command.argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    assert child.stderr is not None
    stderr = child.stderr.read()
    _pid, status, usage = os.wait4(child.pid, 0)
    elapsed = time.perf_counter() - began
    child.returncode = os.waitstatus_to_exitcode(status)
    child.stderr.close()
    if child.returncode != 0:
        raise SystemExit(f"{command.label} failed (exit {child.returncode}): {stderr.decode(errors='replace')}")
    return elapsed, usage.ru_utime + usage.ru_stime


def measure(plan: Sequence[Command], env: Mapping[str, str], runs: int) -> list[Timing]:
    for command in plan:  # warm-up: the page cache, the bytecode cache, the SQLite file
        run_once(command, env)
    walls: dict[str, list[float]] = {c.label: [] for c in plan}
    cpus: dict[str, list[float]] = {c.label: [] for c in plan}
    for _ in range(runs):
        for command in plan:
            wall, cpu = run_once(command, env)
            walls[command.label].append(wall)
            cpus[command.label].append(cpu)
    return [Timing(c, tuple(walls[c.label]), tuple(cpus[c.label])) for c in plan]


def report(timings: Sequence[Timing], runs: int) -> bool:
    """The table; whether every goal (on the median wall time above the bare start) is met."""
    bare = timings[0]
    width = max(len(t.command.label) for t in timings) + 2
    print(f"median of {runs} interleaved runs each; bare start = {bare.command.label}; "
          "CPU = user + system time of the process")
    print(f"{'command':<{width}}{'wall':>8}{'- bare':>9}{'x bare':>8}{'CPU':>8}{'- bare':>9}  goal (wall - bare)")
    all_met = True
    for t in timings:
        extra = t.wall - bare.wall
        if t.command.goal is None:
            goal = "(baseline)" if t is bare else "(reference)"
        else:
            met = extra <= t.command.goal
            all_met &= met
            goal = f"<= {t.command.goal:.2f}s: {'met' if met else 'NOT met'}"
        print(f"{t.command.label:<{width}}{t.wall:>7.3f}s{extra:>+8.3f}s{t.wall / bare.wall:>7.1f}x"
              f"{t.cpu:>7.3f}s{t.cpu - bare.cpu:>+8.3f}s  {goal}")
    return all_met


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.startup", description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=7, help="timed runs of each command (default 7); medians count")
    parser.add_argument("--cases", type=int, default=20, help="appeals in the throwaway database (default 20)")
    args = parser.parse_args(argv)
    if args.runs < 1 or args.cases < 1:
        parser.error("--runs and --cases must be positive")
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        env = prepare(Path(tmp), args.cases)
        load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
        print(f"{args.cases} cases in {env['RECOVERY_DATABASE_URL']}; {os.cpu_count()} CPU(s), load average {load}")
        timings = measure(commands("RC-000001"), env, args.runs)
    print()
    all_met = report(timings, args.runs)
    print("all goals met" if all_met else "some goals NOT met")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
