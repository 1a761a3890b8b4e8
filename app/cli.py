"""The ``recovery`` command: operators' read-outs, imports, database and audit tools.

Start-up is kept light: this module and the modules that register commands on it import only
typer, rich and the small vocabulary modules at import time. Every command imports what it uses
in its own body (the database layer, the service layer, alembic, the chain adapters, the demo), so
``recovery --help`` and the read-only operator commands never load web3, xrpl-py, stellar-sdk,
Streamlit, pandas or FastAPI (``tests/test_startup.py`` checks it; ``python -m bench.startup``
times it). New commands follow the same rule: imports inside the command, annotations of helpers
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.table import Table
from typer.core import TyperGroup

from app.cli_api import register as register_api
from app.cli_demo import register as register_demo
from app.cli_devchain import devchain_app
from app.cli_recheck import register as register_recheck
from app.cli_scan import register as register_scan
from app.cli_workbench import register as register_workbench
from app.collector import freeze_startup
from recovery.errors import ServiceError, ValidationFailed
from recovery.vocabulary import OPERATOR_ROLES, CaseStatus, Category

if TYPE_CHECKING:
    from app.context import AppContext
    from recovery.config import ConfigError
    from recovery.imports import ImportFailed, ImportResult


def _imported(module: str, name: str) -> Any:
    """``module.name`` if ``module`` has been imported, else None; never imports it (an exception
    class of a module nobody imported cannot have been raised)."""
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, name, None)


class _ReportingGroup(TyperGroup):
    """Turns the domain's known errors into one clear message and an exit code, never a traceback."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            config_error: type[ConfigError] | None = _imported("recovery.config", "ConfigError")
            import_failed: type[ImportFailed] | None = _imported("recovery.imports", "ImportFailed")
            if config_error is not None and isinstance(exc, config_error):
                err.print(f"[bold red]invalid configuration[/] ({len(exc.problems)} problem(s)):")
                for problem in exc.problems:
                    err.print(f"  - {problem}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            if import_failed is not None and isinstance(exc, import_failed):
                err.print(str(exc), markup=False, highlight=False)
                raise typer.Exit(1) from None
            if isinstance(exc, ValidationFailed):
                for error in exc.errors:
                    err.print(f"error: {error.field}: {error.message}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            if isinstance(exc, ServiceError):
                err.print(f"error ({exc.code}): {exc}", markup=False, highlight=False)
                raise typer.Exit(1) from None
            raise


app = typer.Typer(help="Deposit-recovery workbench.", no_args_is_help=True, pretty_exceptions_enable=False,
                  cls=_ReportingGroup)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
config_app = typer.Typer(help="Configuration files.", no_args_is_help=True)
addresses_app = typer.Typer(help="Deposit addresses we hold.", no_args_is_help=True)
credits_app = typer.Typer(help="Deposits already credited.", no_args_is_help=True)
operators_app = typer.Typer(help="Workbench accounts.", no_args_is_help=True)
audit_app = typer.Typer(help="The tamper-evident audit log.", no_args_is_help=True)
cases_app = typer.Typer(help="Read cases.", no_args_is_help=True)
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(addresses_app, name="addresses")
app.add_typer(credits_app, name="credits")
app.add_typer(operators_app, name="operators")
app.add_typer(audit_app, name="audit")
app.add_typer(cases_app, name="cases")

app.add_typer(devchain_app, name="devchain", help="Local anvil chains for development and tests.")
register_demo(app)
register_api(app)
register_recheck(app)
register_scan(app)
register_workbench(app)

console = Console()
err = Console(stderr=True, soft_wrap=True)

JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def _ctx() -> AppContext:
    from app.context import app_context

    return app_context()


def _print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    return typer.Exit(code)


# ---------------------------------------------------------------------------- db
@db_app.command("upgrade")
def db_upgrade(revision: Annotated[str, typer.Option(help="Target revision.")] = "head") -> None:
    """Create or migrate the schema to the newest revision."""
    from recovery import migrate

    ctx = _ctx()
    migrate.upgrade(ctx.db, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(ctx.db)}[/] ({ctx.db.engine.url.drivername})")


@db_app.command("current")
def db_current() -> None:
    """Show the schema revision of the database."""
    from recovery import migrate

    ctx = _ctx()
    current = migrate.current_revision(ctx.db)
    head = migrate.head_revision()
    console.print(f"current: {current or '(empty)'}; newest: {head}")
    if current != head:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- config
@config_app.command("check")
def config_check(as_json: JsonOption = False) -> None:
    """Load and validate networks.toml, assets.toml, fees.toml and policy.toml."""
    from recovery.config import ConfigError

    settings = _ctx().settings
    try:
        config = _ctx().config
    except ConfigError as exc:
        if as_json:
            _print_json({"ok": False, "config_dir": str(settings.config_dir), "problems": exc.problems})
            raise typer.Exit(1) from None
        err.print(f"[bold red]{len(exc.problems)} problem(s)[/] in {settings.config_dir}:")
        for problem in exc.problems:
            err.print(f"  - {problem}", markup=False, highlight=False)
        raise typer.Exit(1) from None
    if as_json:
        _print_json({
            "ok": True,
            "config_dir": str(settings.config_dir),
            "networks": sorted(config.networks),
            "assets": len(config.assets),
            "fee_rules": len(config.fees),
            "digest": config.digest,
        })
        return
    table = Table(title=f"networks ({settings.config_dir})")
    for column in ("network", "family", "chain id", "confirmations", "recovery", "memo", "assets"):
        table.add_column(column)
    for name, net in config.networks.items():
        symbols = ", ".join(a.symbol for a in config.assets_on(name))
        table.add_row(name, net.family, str(net.chain_id or "-"), str(net.confirmations), net.recovery,
                      net.memo_format if net.memo_required else "-", symbols)
    console.print(table)
    console.print(f"[green]configuration is valid[/]: {len(config.networks)} networks, {len(config.assets)} assets, "
                  f"{len(config.fees)} fee rules")


# ---------------------------------------------------------------------------- imports
def _report_import(kind: str, result: ImportResult, as_json: bool) -> None:
    if as_json:
        _print_json({"ok": True, "rows": result.rows, "inserted": result.inserted, "unchanged": result.unchanged})
    else:
        console.print(f"{kind}: {result.rows} rows, {result.inserted} imported, {result.unchanged} already present")


@addresses_app.command("import")
def addresses_import(file: Annotated[Path, typer.Argument(help="CSV: user_id,network,address,memo,kind")],
                     as_json: JsonOption = False) -> None:
    """Import deposit addresses; every row must be valid or nothing is imported."""
    from recovery.imports import import_addresses

    ctx = _ctx()
    _report_import("deposit addresses", import_addresses(ctx.db, ctx.config, file), as_json)


@credits_app.command("import")
def credits_import(file: Annotated[Path, typer.Argument(help="CSV: network,tx_hash,user_id,asset,amount")],
                   as_json: JsonOption = False) -> None:
    """Import credited deposits; every row must be valid or nothing is imported."""
    from recovery.imports import import_credits

    ctx = _ctx()
    _report_import("credited deposits", import_credits(ctx.db, ctx.config, file), as_json)


# ---------------------------------------------------------------------------- operators
@operators_app.command("add")
def operators_add(
    username: str,
    role: Annotated[str, typer.Option(help="specialist | approver | admin | auditor")],
    password_stdin: Annotated[bool, typer.Option("--password-stdin", help="Read the password from stdin.")] = False,
) -> None:
    """Create a workbench account (the password is asked for, or read from stdin)."""
    from recovery.operators import add_operator

    if role not in {r.value for r in OPERATOR_ROLES}:
        raise _fail(f"role: must be one of {', '.join(r.value for r in OPERATOR_ROLES)}", 2)
    if password_stdin:
        password = sys.stdin.readline().rstrip("\n")
    else:
        password = typer.prompt("password", hide_input=True, confirmation_prompt=True)
    operator = add_operator(_ctx().db, username, password, role)
    console.print(f"operator [bold]{operator.username}[/] added as {operator.role}")


@operators_app.command("list")
def operators_list(as_json: JsonOption = False) -> None:
    """List workbench accounts (never their hashes)."""
    from recovery.operators import list_operators

    operators = list_operators(_ctx().db)
    if as_json:
        _print_json([{"username": o.username, "role": o.role, "active": o.active} for o in operators])
        return
    table = Table()
    for column in ("username", "role", "active", "last sign-in"):
        table.add_column(column)
    for o in operators:
        table.add_row(o.username, o.role, "yes" if o.active else "no",
                      o.last_login_at.isoformat(timespec="seconds") if o.last_login_at else "-")
    console.print(table)


@operators_app.command("disable")
def operators_disable(username: str) -> None:
    """Stop an account from signing in (it stays in the audit trail)."""
    from recovery.operators import set_active

    set_active(_ctx().db, username, False)
    console.print(f"operator {username} disabled")


@operators_app.command("enable")
def operators_enable(username: str) -> None:
    """Allow a disabled account to sign in again."""
    from recovery.operators import set_active

    set_active(_ctx().db, username, True)
    console.print(f"operator {username} enabled")


# ---------------------------------------------------------------------------- audit
@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Recompute the hash chain of every case event; name the first broken one."""
    from recovery.audit import verify_chain

    ctx = _ctx()
    with ctx.db.read() as session:
        result = verify_chain(session)
    if as_json:
        _print_json({"ok": result.ok, "events_checked": result.events_checked,
                     "first_broken_event": result.first_broken_id, "problem": result.problem})
    elif result.ok:
        console.print(f"[green]audit chain verified[/]: {result.events_checked} events")
    else:
        err.print(f"[bold red]audit chain broken at event {result.first_broken_id}[/]: {result.problem}")
    if not result.ok:
        raise typer.Exit(1)


# ---------------------------------------------------------------------------- cases
def _check_choice(value: str | None, allowed: set[str], name: str) -> None:
    if value is not None and value not in allowed:
        raise _fail(f"{name}: {value!r} is not one of {', '.join(sorted(allowed))}", 2)


@cases_app.command("list")
def cases_list(
    status: Annotated[str | None, typer.Option(help="Filter by status.")] = None,
    category: Annotated[str | None, typer.Option(help="Filter by category.")] = None,
    network: Annotated[str | None, typer.Option(help="Filter by claimed network.")] = None,
    user: Annotated[str | None, typer.Option(help="Filter by user id.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
    offset: Annotated[int, typer.Option(min=0)] = 0,
    as_json: JsonOption = False,
) -> None:
    """List cases, oldest first."""
    from recovery.services import CaseFilter
    from recovery.views import case_json

    _check_choice(status, {s.value for s in CaseStatus}, "status")
    _check_choice(category, {c.value for c in Category}, "category")
    ctx = _ctx()
    filters = CaseFilter(status=status, category=category, network=network, user_id=user)
    cases = ctx.cases.list_cases(filters, limit=limit, offset=offset)
    if as_json:
        _print_json([case_json(c) for c in cases])
        return
    table = Table(title=f"{len(cases)} of {ctx.cases.count(filters)} cases")
    for column in ("reference", "status", "category", "network", "asset", "user", "flags", "created"):
        table.add_column(column)
    for c in cases:
        table.add_row(c.reference or "-", c.status, c.category or "-", c.network, c.asset, c.user_id,
                      ", ".join(c.flags) or "-", c.created_at.isoformat(timespec="minutes"))
    console.print(table)


@cases_app.command("show")
def cases_show(reference: str, as_json: JsonOption = False) -> None:
    """One case with its decision and its full audit timeline."""
    from recovery.views import case_json, event_json

    view = _ctx().cases.get(reference)
    data = case_json(view.case)
    data["events"] = [event_json(e) for e in view.events]
    if as_json:
        _print_json(data)
        return
    table = Table(show_header=False, title=reference)
    for key, value in data.items():
        if key in ("events", "decision"):
            continue
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
    reasons = (view.case.decision or {}).get("reasons", [])
    for reason in reasons:
        console.print(f"  • {reason.get('text', reason) if isinstance(reason, dict) else reason}",
                      markup=False, highlight=False)
    events = Table(title="timeline")
    for column in ("#", "when", "actor", "action", "status"):
        events.add_column(column)
    for e in view.events:
        events.add_row(str(e.id), e.created_at.isoformat(timespec="seconds"), f"{e.actor} ({e.actor_role})",
                       e.action, f"{e.from_status or '-'} → {e.to_status or '-'}")
    console.print(events)


def main() -> None:
    try:
        app()
    finally:
        # At exit the interpreter walks every object start-up built, several times over, looking for
        # cycles (about 0.2 s of a read-only command): collect the garbage once now (what the command
        # opened and dropped, its database connections included, is closed as before), then freeze
        # what is still alive so that the exit leaves it to the operating system.
        freeze_startup()


if __name__ == "__main__":
    main()
