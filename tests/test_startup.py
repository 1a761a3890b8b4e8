"""A command imports only what it uses (issue 20): ``recovery --help``, the read-only operator
commands (``cases list``, ``cases show``, ``audit verify``) and every command's ``--help`` load
none of the chain libraries or the front ends they do not need, and a chain library is imported
when an adapter of its family is first built.

Each check runs in a fresh interpreter and reads ``sys.modules`` at the end: the test process
itself has long imported everything.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from recovery.config import Config
from recovery.db import connect
from recovery.services import Actor, CaseService
from recovery.settings import REPO_ROOT
from recovery.vocabulary import Role
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_cases import new_draft

#: what the light commands must not load: the chain libraries (web3 and its eth_* packages,
#: xrpl-py, stellar-sdk) and the other front ends' frameworks (Streamlit, pandas, FastAPI)
HEAVY = ("web3", "eth_account", "eth_utils", "xrpl", "stellar_sdk", "streamlit", "pandas", "fastapi")

#: runs ``recovery ARGS...`` (the console script's entry point) in this interpreter and writes its
#: exit code and sys.modules to a file
_RUN = """
import json, sys
from app.cli import main
report, sys.argv = sys.argv[1], ["recovery", *sys.argv[2:]]
code = 0
try:
    main()
except SystemExit as exc:
    code = exc.code
with open(report, "w") as f:
    json.dump({"code": code, "modules": sorted(sys.modules)}, f)
"""

#: ``--help`` of every command and group of the CLI tree, one after the other in one interpreter;
#: writes, per command, the modules it was the first to import
_EVERY_HELP = """
import json, sys
import typer.main
from app.cli import app
paths = []
def walk(command, path):
    paths.append(path)
    for name, sub in sorted(getattr(command, "commands", {}).items()):
        walk(sub, [*path, name])
walk(typer.main.get_command(app), [])
seen = set(sys.modules)
first = {"import app.cli": sorted(seen)}
for path in paths:
    try:
        app([*path, "--help"], prog_name="recovery")
    except SystemExit:
        pass
    first[" ".join(["recovery", *path, "--help"])] = sorted(set(sys.modules) - seen)
    seen = set(sys.modules)
with open(sys.argv[1], "w") as f:
    json.dump(first, f)
"""

#: the modules an operator command builds on, imported without running anything
_LAYER = """
import json, sys
import app.cli, app.context, chains.addresses, chains.registry
import recovery.audit, recovery.imports, recovery.operators, recovery.queues, recovery.services, recovery.views
json.dump(sorted(sys.modules), sys.stdout)
"""

#: the registry names every family without importing an adapter; the first lookup imports it
_REGISTRY = """
import json, sys
from chains.registry import ADAPTERS, supported_families
before = sorted(sys.modules)
families = sorted(supported_families())
listed = "evm" in ADAPTERS and len(ADAPTERS) == len(families) and sorted(ADAPTERS) == families
listed_only = sorted(sys.modules)
evm = ADAPTERS["evm"]
from chains.evm import EvmAdapter
json.dump({"before": before, "listed": listed, "listed_only": listed_only, "after": sorted(sys.modules),
           "same_class": evm is EvmAdapter, "families": families}, sys.stdout)
"""


def heavy(modules: Sequence[str]) -> list[str]:
    """The heavy packages among ``modules`` (top-level names)."""
    return sorted({m.split(".")[0] for m in modules if m.split(".")[0] in HEAVY})


def fresh_python(code: str, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=REPO_ROOT,
                          env=env, timeout=120, check=False)
    assert done.returncode == 0, done.stderr
    return done


@dataclass(frozen=True)
class World:
    env: dict[str, str]
    reference: str
    database: Path


@pytest.fixture(scope="module")
def world(sqlite_template: Path, default_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    """A migrated SQLite file with two cases (and their audit events), and the environment using it."""
    folder = tmp_path_factory.mktemp("startup")
    path = folder / "startup.db"
    shutil.copyfile(sqlite_template, path)
    url = f"sqlite:///{path}"
    db = connect(url)
    service = CaseService(db, default_config)
    case, _ = service.submit(new_draft("user-1"), Actor("user-1", Role.USER))
    service.submit(new_draft("user-2", network="bsc"), Actor("user-2", Role.USER))
    db.dispose()
    env = {**os.environ, "RECOVERY_DATABASE_URL": url, "RECOVERY_VAR_DIR": str(folder),
           "RECOVERY_CONFIG_DIR": str(REPO_ROOT / "config"), "COLUMNS": "200"}
    assert case.reference is not None
    yield World(env, case.reference, path)


def run_command(world: World, tmp_path: Path, args: Sequence[str]) -> tuple[Any, list[str], str]:
    """``recovery ARGS`` in a fresh interpreter: (exit code, sys.modules at the end, stdout)."""
    report = tmp_path / "report.json"
    done = fresh_python(_RUN, str(report), *args, env=world.env)
    data = json.loads(report.read_text())
    return data["code"], data["modules"], done.stdout


#: typer's Rich help formatter and what it loads (about 0.1 s): the CLI formats help and usage errors
#: the way click does (``rich_markup_mode=None``)
RICH_HELP = ("typer.rich_utils", "rich.markdown", "markdown_it", "rich.traceback")
#: what ``recovery --help`` needs none of: Rich itself (the consoles are built when a command first
#: prints), pydantic, the settings and the database layer. (A subcommand's ``--help`` loads pydantic:
#: typer coerces the group's own ``--install-completion`` and ``--show-completion`` through it.)
NOT_FOR_HELP = (*RICH_HELP, "rich", "pydantic", "pydantic_settings", "sqlalchemy", "recovery.settings")
#: what reading cases needs none of (``recovery.case_reads``: the models and the database): the
#: service layer and what it brings, the configuration, Alembic
NOT_FOR_READS = (*RICH_HELP, "recovery.services", "recovery.rules", "recovery.evidence", "recovery.config",
                 "recovery.checking", "recovery.queues", "alembic")
#: what ``cases list`` and ``cases show`` need none of besides: they read on the database driver
#: (``recovery.case_rows``), the database URL without pydantic-settings (``recovery.env_settings``)
#: and their options without pydantic (``app.cli_coercion``): not SQLAlchemy, SQLModel, the table
#: models, the settings class, the audit layer, pydantic
NOT_FOR_CASE_READS = (*NOT_FOR_READS, "sqlalchemy", "sqlmodel", "recovery.models", "recovery.case_reads",
                      "recovery.views", "recovery.audit", "recovery.settings", "pydantic_settings", "app.context",
                      "recovery.db", "recovery.dbtypes", "pydantic", "typer._adapters")
#: and their JSON needs no Rich (nothing is printed through a console)
NOT_FOR_CASE_JSON = (*NOT_FOR_CASE_READS, "rich")

COMMANDS = [
    (["--help"], ["cases", "audit", "recheck"], NOT_FOR_HELP),
    (["cases", "list"], ["{reference}", "2 of 2 cases"], NOT_FOR_CASE_READS),
    (["cases", "list", "--json"], ['"reference": "{reference}"'], NOT_FOR_CASE_JSON),
    (["cases", "show", "{reference}"], ["{reference}", "timeline", "submit"], NOT_FOR_CASE_READS),
    (["cases", "show", "{reference}", "--json"], ['"reference": "{reference}"', '"events"'], NOT_FOR_CASE_JSON),
    (["audit", "verify"], ["audit chain verified", "2 events"], NOT_FOR_READS),
    (["audit", "verify", "--json"], ['"ok": true', '"events_checked": 2'], NOT_FOR_READS),
]


@pytest.mark.parametrize(("args", "expected", "not_loaded"), COMMANDS, ids=[" ".join(a) for a, _, _ in COMMANDS])
def test_the_command_imports_no_chain_library_and_no_other_front_end(
    world: World, tmp_path: Path, args: list[str], expected: list[str], not_loaded: tuple[str, ...]
) -> None:
    args = [a.format(reference=world.reference) for a in args]
    code, modules, stdout = run_command(world, tmp_path, args)
    assert code in (0, None), stdout
    for text in expected:  # it did its work: a command that failed early would import little
        assert text.format(reference=world.reference) in stdout, stdout
    assert heavy(modules) == [], f"`recovery {' '.join(args)}` imported {heavy(modules)}"
    assert sorted(set(not_loaded) & set(modules)) == [], f"`recovery {' '.join(args)}` imported them"
    # the quick exit (app.cli.main) still closes the database: SQLite removes its WAL file then
    assert not world.database.with_name(world.database.name + "-wal").exists()


def test_no_command_help_imports_a_chain_library_or_another_front_end(world: World, tmp_path: Path) -> None:
    """Every command and group (today's and those added later, to ``cases``, ``refunds``, ``audit``
    or anywhere) registers and describes itself without loading what only its run needs."""
    report = tmp_path / "help.json"
    fresh_python(_EVERY_HELP, str(report), env=world.env)
    first: dict[str, list[str]] = json.loads(report.read_text())
    assert {"recovery cases list --help", "recovery cases show --help", "recovery audit verify --help",
            "recovery recheck --help", "recovery scan --help", "recovery demo --help"} <= set(first)
    offenders = {command: heavy(modules) for command, modules in first.items() if heavy(modules)}
    assert offenders == {}, f"imported by (first): {offenders}"
    # and the help of a command loads neither the database layer nor the configuration, nor Rich
    help_only = [m for modules in first.values() for m in modules]
    assert not {"sqlalchemy", "sqlmodel", "alembic", "recovery.services", "recovery.config"} & set(help_only)
    assert not {*RICH_HELP, "rich"} & set(help_only)


def test_the_layer_operator_commands_build_on_is_light() -> None:
    """What a new operator command would use (context, service layer, views, audit, imports,
    operators, queues, the address codecs and the adapter registry) imports no heavy module."""
    modules = json.loads(fresh_python(_LAYER).stdout)
    assert heavy(modules) == [], f"the operator commands' layer imported {heavy(modules)}"


def test_a_chain_library_is_imported_when_its_adapter_is_first_asked_for() -> None:
    data = json.loads(fresh_python(_REGISTRY).stdout)
    assert heavy(data["before"]) == [], f"importing chains.registry imported {heavy(data['before'])}"
    assert heavy(data["listed_only"]) == [], f"listing the families imported {heavy(data['listed_only'])}"
    assert data["listed"] and data["families"] == ["bitcoin", "cosmos", "evm", "solana", "stellar", "tron", "xrpl"]
    assert "chains.evm" not in data["listed_only"]
    assert data["same_class"]
    # web3 itself waits for the adapter's w3 handle (test below); the other families' libraries are not loaded
    assert "web3" not in heavy(data["after"])
    assert "xrpl" not in heavy(data["after"]) and "stellar_sdk" not in heavy(data["after"])


#: an EVM adapter looks transactions up (round trips of raw JSON-RPC, token metadata decoded by
#: eth_abi) without web3, which its ``w3`` handle (block headers) imports on first use
_EVM_LOOKUP = """
import json, sys
from recovery.config import Network
from chains.evm import EvmAdapter
adapter = EvmAdapter(Network.model_validate_json(sys.argv[1]))
found = adapter.lookup_many(sys.argv[2:])
lookup_only = sorted(sys.modules)
head = adapter.head()
json.dump({"lookup_only": lookup_only, "after_head": sorted(sys.modules), "head": head.number,
           "transfers": {h: [[t.kind.value, t.symbol, t.recipient, t.amount] for t in o.transfers]
                         for h, o in found.items()}}, sys.stdout)
"""
#: web3.py's own package and what only it brings (its async stack, the BLS pairing code)
WEB3_ONLY = ("web3", "eth_account", "py_ecc", "aiohttp")


def test_an_evm_lookup_imports_no_web3_until_the_w3_handle_is_used(evm_testbed: EvmTestbed) -> None:
    """A re-check worker process only looks transactions up: it does not pay web3's second of import."""
    receiver = fresh_address()
    native = evm_testbed.send_native("ethereum", receiver, 10**15)
    token = evm_testbed.send_token("ethereum", "USDT", receiver, 7 * 10**6)
    network = evm_testbed.config.network("ethereum")
    data = json.loads(fresh_python(_EVM_LOOKUP, network.model_dump_json(), native, token).stdout)
    assert data["transfers"][native] == [["native", None, receiver, 10**15]]
    assert data["transfers"][token] == [["token", "USDT", receiver, 7 * 10**6]]  # decoded: it did its work
    lookup_only = {m.split(".")[0] for m in data["lookup_only"]}
    assert sorted(lookup_only & set(WEB3_ONLY)) == [], "the lookups imported web3"
    assert "web3" in {m.split(".")[0] for m in data["after_head"]}
    assert data["head"] >= 1


def test_the_registry_is_a_read_only_mapping_of_the_adapter_classes() -> None:
    from chains.registry import ADAPTERS, UnsupportedFamily, adapter_for
    from chains.xrpl import XrplAdapter
    from recovery.config import load_config

    assert ADAPTERS["xrpl"] is XrplAdapter and ADAPTERS.get("dogecoin") is None
    with pytest.raises(KeyError):
        ADAPTERS["dogecoin"]
    assert not hasattr(ADAPTERS, "__setitem__")
    network = load_config(REPO_ROOT / "config").network("ethereum").model_copy(update={"family": "dogecoin"})
    with pytest.raises(UnsupportedFamily, match="available families: bitcoin, cosmos, evm, solana, stellar"):
        adapter_for(network)


USAGE_ERRORS = [
    (["cases", "list", "--category", "nonsense"], "category: 'nonsense' is not one of"),
    (["cases", "list", "--limit", "0"], "Invalid value for '--limit'"),
    (["cases", "list", "--bogus"], "No such option: --bogus"),
    (["cases", "lst"], "No such command 'lst'"),
    (["audit", "verify", "extra"], "unexpected extra argument(s) (extra)"),
]


@pytest.mark.parametrize(("args", "message"), USAGE_ERRORS, ids=[" ".join(a) for a, _ in USAGE_ERRORS])
def test_a_usage_error_names_the_option_and_loads_nothing_else(
    world: World, tmp_path: Path, args: list[str], message: str
) -> None:
    """Exit 2, the offending option or value named in plain text on stderr, before the database
    layer or Rich's help formatter is imported."""
    report = tmp_path / "report.json"
    done = fresh_python(_RUN, str(report), *args, env=world.env)
    data = json.loads(report.read_text())
    assert data["code"] == 2, done.stderr
    assert message in done.stderr and "╭" not in done.stderr, done.stderr
    assert sorted({"sqlalchemy", *RICH_HELP} & set(data["modules"])) == []


def test_the_batch_recheck_checks_the_schema_without_alembic(world: World, tmp_path: Path) -> None:
    """``recovery recheck`` (here with nothing to do: no case on the network) loads neither Alembic
    (the schema check reads the version table and the migrations' source) nor Rich's progress bar
    when stderr is not a terminal."""
    env = {**world.env, "RECOVERY_AUDIT_ANCHOR_FILE": str(tmp_path / "anchors.jsonl")}
    code, modules, stdout = run_command(dataclasses.replace(world, env=env), tmp_path,
                                        ["recheck", "--network", "xrpl", "--processes", "0", "--json"])
    assert code in (0, None), stdout
    assert json.loads(stdout)["processed"] == 0
    assert sorted({"alembic", "rich.progress", *RICH_HELP} & set(modules)) == []
    assert heavy(modules) == []


@pytest.mark.parametrize("args", [["cases", "list"], ["cases", "show", "RC-000001", "--json"]], ids=" ".join)
def test_a_bad_setting_ends_a_case_read_as_it_ends_any_command(world: World, tmp_path: Path, args: list[str]) -> None:
    """The case reads check the settings without pydantic-settings; a setting that fails its check is
    reported by the settings themselves: one line naming it, exit 2, before the database is opened."""
    env = {**world.env, "RECOVERY_WEBHOOK_URLS": "ftp://not-http.example/x", "RECOVERY_WEBHOOK_SECRET": "s" * 20}
    report = tmp_path / "report.json"
    done = fresh_python(_RUN, str(report), *args, env=env)
    data = json.loads(report.read_text())
    assert data["code"] == 2, done.stderr
    assert "RECOVERY_WEBHOOK_URLS: entry 1 ('ftp://not-http.example/x')" in done.stderr, done.stderr
    assert "Traceback" not in done.stderr and "s" * 20 not in done.stderr
    assert "sqlalchemy" not in data["modules"]
