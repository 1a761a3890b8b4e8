"""The ``recovery`` command: operators' read-outs, imports, database and audit tools.

Start-up is kept light: this module and the modules that register commands on it import only
typer and the small vocabulary modules at import time (Rich is imported when a command first
prints; help and usage errors are formatted by click: see ``app.cli_console``). Every command
imports what it uses in its own body (the database layer, the service layer, alembic, the chain
adapters, the demo), so ``recovery --help`` and the read-only operator commands never load web3,
xrpl-py, stellar-sdk, Streamlit, pandas or FastAPI (``tests/test_startup.py`` checks it; ``python -m bench.startup``
times it). New commands follow the same rule: imports inside the command, annotations of helpers
under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from typer.core import TyperGroup

from app.cli_api import register as register_api
from app.cli_cases import register as register_case_actions
from app.cli_coercion import use_plain_coercion
from app.cli_console import group, lazy_console
from app.cli_demo import register as register_demo
from app.cli_devchain import devchain_app
from app.cli_operator import AsOption, refused, service_refusal, sign_in, usage
from app.cli_recheck import register as register_recheck
from app.cli_refunds import register as register_refunds
from app.cli_scan import register as register_scan
from app.cli_webhooks import register as register_webhooks
from app.cli_workbench import register as register_workbench
from app.collector import freeze_startup, process_ends_with_command
from recovery.errors import ServiceError, ValidationFailed
from recovery.vocabulary import OPERATOR_ROLES

if TYPE_CHECKING:
    from pydantic import ValidationError

    from app.context import AppContext
    from recovery.audit_anchors import AnchorError
    from recovery.audit_keys import KeyRing, KeyRingError
    from recovery.config import ConfigError
    from recovery.imports import ImportFailed, ImportResult


def _imported(module: str, name: str) -> Any:
    """``module.name`` if ``module`` has been imported, else None; never imports it (an exception
    class of a module nobody imported cannot have been raised)."""
    loaded = sys.modules.get(module)
    return None if loaded is None else getattr(loaded, name, None)


class _ReportingGroup(TyperGroup):
    """Turns the domain's known errors into one clear message and an exit code, never a traceback.
    Before the command line is parsed, its plain options get coercers without pydantic
    (:mod:`app.cli_coercion`)."""

    def make_context(self, info_name: str | None, args: list[str], parent: Any = None, **extra: Any) -> Any:
        if parent is None:
            use_plain_coercion(self)
        return super().make_context(info_name, args, parent, **extra)

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except Exception as exc:
            config_error: type[ConfigError] | None = _imported("recovery.config", "ConfigError")
            import_failed: type[ImportFailed] | None = _imported("recovery.imports", "ImportFailed")
            key_error: type[KeyRingError] | None = _imported("recovery.audit_keys", "KeyRingError")
            anchor_error: type[AnchorError] | None = _imported("recovery.audit_anchors", "AnchorError")
            invalid: type[ValidationError] | None = _imported("pydantic", "ValidationError")
            if invalid is not None and isinstance(exc, invalid) and exc.title == "Settings":
                from recovery.settings import settings_problems

                err.print("[bold red]invalid settings[/]:")
                for problem in settings_problems(exc):
                    err.print(f"  - {problem}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            if config_error is not None and isinstance(exc, config_error):
                err.print(f"[bold red]invalid configuration[/] ({len(exc.problems)} problem(s)):")
                for problem in exc.problems:
                    err.print(f"  - {problem}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            if key_error is not None and isinstance(exc, key_error):
                err.print(f"error: audit key: {exc}", markup=False, highlight=False)
                raise typer.Exit(2) from None
            if anchor_error is not None and isinstance(exc, anchor_error):
                err.print(f"error: audit anchor: {exc}", markup=False, highlight=False)
                raise typer.Exit(1) from None
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


app = group("Deposit-recovery workbench.", pretty_exceptions_enable=False, cls=_ReportingGroup)
db_app = group("Database schema.")
config_app = group("Configuration files.")
addresses_app = group("Deposit addresses we hold.")
credits_app = group("Deposits already credited.")
operators_app = group("Workbench accounts.")
audit_app = group("The tamper-evident audit log.")
cases_app = group("Read cases, and act on them as an operator (--as NAME).")
app.add_typer(db_app, name="db")
app.add_typer(config_app, name="config")
app.add_typer(addresses_app, name="addresses")
app.add_typer(credits_app, name="credits")
app.add_typer(operators_app, name="operators")
app.add_typer(audit_app, name="audit")
app.add_typer(cases_app, name="cases")  # list and show, and the case actions: app/cli_cases.py

app.add_typer(devchain_app, name="devchain", help="Local anvil chains for development and tests.")
register_case_actions(cases_app)
register_refunds(app)
register_demo(app)
register_api(app)
register_recheck(app)
register_scan(app)
register_workbench(app)
register_webhooks(app)

console = lazy_console()
err = lazy_console(stderr=True, soft_wrap=True)

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
    """Create or migrate the schema to the newest revision; make sure an audit key exists."""
    from recovery import migrate

    ctx = _ctx()
    ring = _audit_keyring()  # before the migrations: keying the chain needs the key
    migrate.upgrade(ctx.db, revision)
    console.print(f"database at revision [bold]{migrate.current_revision(ctx.db)}[/] ({ctx.db.engine.url.drivername})")
    if ring.path is None:
        console.print("audit key: RECOVERY_AUDIT_KEY (a secret kept outside the database)")
    elif not ring.beside_data:
        console.print(f"audit key: the key file {ring.path} (RECOVERY_AUDIT_KEY)", markup=False)
    else:
        console.print(f"audit key: {ring.path}", markup=False)
        err.print(f"[bold yellow]warning:[/] the audit key is stored beside the data ({ring.path}): it protects "
                  "nothing against someone who can read both. In production set RECOVERY_AUDIT_KEY from a secret "
                  "store.", highlight=False)


def _audit_keyring() -> KeyRing:
    """The audit keys (created in the var folder when nothing is configured), without the key
    module's own warning: the caller says it once, in its own words."""
    import logging

    from recovery import audit

    logger = logging.getLogger("recovery.audit")
    level = logger.level
    logger.setLevel(logging.ERROR)
    try:
        return audit.current_keyring()
    finally:
        logger.setLevel(level)


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
    """Load and validate networks.toml, assets.toml, fees.toml, policy.toml and templates.toml (and
    warn of a template without a translation: its users read it in English)."""
    from rich.table import Table

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
    from recovery.i18n import untranslated_templates

    warnings = untranslated_templates(config.templates)
    if as_json:
        _print_json({
            "ok": True,
            "config_dir": str(settings.config_dir),
            "networks": sorted(config.networks),
            "assets": len(config.assets),
            "fee_rules": len(config.fees),
            "digest": config.digest,
            "warnings": warnings,
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
    for warning in warnings:
        err.print(f"[yellow]warning[/]: {warning}", highlight=False)


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
OperatorAsOption = Annotated[str | None, typer.Option(
    "--as", metavar="NAME",
    help="The admin making the change (password asked for, or read from RECOVERY_OPERATOR_PASSWORD); "
         "required once an enabled admin exists.",
)]
PasswordStdinOption = Annotated[bool, typer.Option(
    "--password-stdin",
    help="Read the new password from stdin (after the admin's own, when it is not in RECOVERY_OPERATOR_PASSWORD).",
)]


def _acting_admin(ctx: AppContext, as_name: str | None) -> str | None:
    """The admin named by ``--as`` (signed in), or None for the bootstrap (no enabled admin yet);
    anything else is refused (exit 1)."""
    from recovery.operators import ADMIN_RULE, admin_exists
    from recovery.vocabulary import Role

    if as_name is None:
        if admin_exists(ctx.db):
            raise refused(f"{ADMIN_RULE}: an enabled admin exists, so --as NAME is required")
        return None
    actor = sign_in(ctx, as_name)
    if actor.role is not Role.ADMIN:
        raise refused(f"{ADMIN_RULE}: {actor.name} is a {actor.role.value}, not an admin")
    return actor.name


def _new_password(password_stdin: bool) -> str:
    if password_stdin:
        return sys.stdin.readline().rstrip("\n")
    value: str = typer.prompt("new password", hide_input=True, confirmation_prompt=True, err=True)
    return value


def _operator_change(ctx: AppContext, change: Any) -> Any:
    from recovery.errors import ServiceError

    try:
        return change()
    except ServiceError as exc:
        raise service_refusal(exc) from None
    finally:
        ctx.db.dispose()


def _by(admin: str | None) -> str:
    return f"by {admin}" if admin else "(bootstrap: no enabled admin existed)"


@operators_app.command("add")
def operators_add(
    username: str,
    role: Annotated[str, typer.Option(help="specialist | approver | admin | auditor")],
    as_name: OperatorAsOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Create a workbench account (audited). The first admin is created without --as (bootstrap)."""
    from recovery.errors import ValidationFailed
    from recovery.operators import add_operator, validate_new_operator

    if role not in {r.value for r in OPERATOR_ROLES}:
        raise _fail(f"role: must be one of {', '.join(r.value for r in OPERATOR_ROLES)}", 2)
    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    password = _new_password(password_stdin)
    try:
        validate_new_operator(username, password, role)
    except ValidationFailed as exc:
        raise usage(str(exc)) from None
    operator = _operator_change(ctx, lambda: add_operator(ctx.db, username, password, role, actor=admin,
                                                          allow_unnamed=False))
    console.print(f"operator [bold]{operator.username}[/] added as {operator.role} {_by(admin)}")


@operators_app.command("list")
def operators_list(as_json: JsonOption = False) -> None:
    """List workbench accounts (never their hashes)."""
    from rich.table import Table

    from recovery.operators import list_operators

    operators = list_operators(_ctx().db)
    if as_json:
        _print_json([{"username": o.username, "role": o.role, "active": o.active,
                      "second_factor": o.totp_secret is not None, "oidc_linked": o.oidc_subject is not None,
                      "email": o.email} for o in operators])
        return
    table = Table()
    for column in ("username", "role", "active", "second factor", "single sign-on", "last sign-in"):
        table.add_column(column)
    for o in operators:
        sso = ", ".join(x for x in ("subject" if o.oidc_subject else "", o.email or "") if x) or "-"
        table.add_row(o.username, o.role, "yes" if o.active else "no", "totp" if o.totp_secret else "-", sso,
                      o.last_login_at.isoformat(timespec="seconds") if o.last_login_at else "-")
    console.print(table)


def _set_active(username: str, active: bool, as_name: str | None) -> None:
    from recovery.operators import set_active

    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    _operator_change(ctx, lambda: set_active(ctx.db, username, active, actor=admin, allow_unnamed=False))
    console.print(f"operator {username} {'enabled' if active else 'disabled'} {_by(admin)}", markup=False)


@operators_app.command("disable")
def operators_disable(username: str, as_name: OperatorAsOption = None) -> None:
    """Stop an account from signing in (audited; it stays in the audit trail)."""
    _set_active(username, False, as_name)


@operators_app.command("enable")
def operators_enable(username: str, as_name: OperatorAsOption = None) -> None:
    """Allow a disabled account to sign in again (audited)."""
    _set_active(username, True, as_name)


@operators_app.command("role")
def operators_role(
    username: str,
    role: Annotated[str, typer.Argument(help="specialist | approver | admin | auditor")],
    as_name: OperatorAsOption = None,
) -> None:
    """Change an account's role (audited with the old and the new role)."""
    from recovery.operators import set_role

    if role not in {r.value for r in OPERATOR_ROLES}:
        raise _fail(f"role: must be one of {', '.join(r.value for r in OPERATOR_ROLES)}", 2)
    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    operator = _operator_change(ctx, lambda: set_role(ctx.db, username, role, actor=admin, allow_unnamed=False))
    console.print(f"operator {operator.username} is now {operator.role} {_by(admin)}", markup=False)


@operators_app.command("reset-password")
def operators_reset_password(
    username: str,
    as_name: OperatorAsOption = None,
    password_stdin: PasswordStdinOption = False,
) -> None:
    """Give an account a new password (audited; the event holds no password)."""
    from recovery.operators import MIN_PASSWORD_LENGTH, reset_password

    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    password = _new_password(password_stdin)
    if len(password) < MIN_PASSWORD_LENGTH:
        raise usage(f"password: must be at least {MIN_PASSWORD_LENGTH} characters")
    _operator_change(ctx, lambda: reset_password(ctx.db, username, password, actor=admin, allow_unnamed=False))
    console.print(f"operator {username}: password reset {_by(admin)}", markup=False)


@operators_app.command("totp")
def operators_totp(
    username: str,
    as_name: OperatorAsOption = None,
    remove: Annotated[bool, typer.Option("--remove", help="Remove the second factor instead.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Enrol an account in the TOTP second factor (audited; replaces an earlier secret). Prints the
    otpauth:// URI and the secret once, for the operator's authenticator app; from then on the
    account's sign-ins ask for the code."""
    from recovery.operators import enroll_totp, remove_totp

    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    if remove:
        _operator_change(ctx, lambda: remove_totp(ctx.db, username, actor=admin, allow_unnamed=False))
        console.print(f"operator {username}: second factor removed {_by(admin)}", markup=False)
        return
    enrolment = _operator_change(ctx, lambda: enroll_totp(ctx.db, username, actor=admin, allow_unnamed=False))
    if as_json:
        _print_json({"username": enrolment.username, "secret": enrolment.secret, "uri": enrolment.uri})
        return
    console.print(f"operator {username}: second factor enrolled {_by(admin)}. Shown once: add it to the "
                  "operator's authenticator app (scan the URI as a QR code, or type the secret).", markup=False)
    console.print(f"uri: {enrolment.uri}", markup=False, highlight=False, soft_wrap=True)
    console.print(f"secret: {enrolment.secret}", markup=False, highlight=False)


@operators_app.command("link-oidc")
def operators_link_oidc(
    username: str,
    issuer: Annotated[str | None, typer.Option(help="The provider's issuer (the ID token's 'iss').")] = None,
    subject: Annotated[str | None, typer.Option(help="The operator's subject at that provider ('sub').")] = None,
    email: Annotated[str | None, typer.Option(
        help="The operator's e-mail address: matched only when the provider says it is verified, "
             "within RECOVERY_WORKBENCH_OIDC_EMAIL_DOMAIN, and only for an account with no linked subject.")] = None,
    clear: Annotated[bool, typer.Option("--clear", help="Remove the linked identity and e-mail address.")] = False,
    as_name: OperatorAsOption = None,
) -> None:
    """Link an account to its single sign-on identity (audited). The role always comes from the
    operators table, never from the provider's token."""
    from recovery.errors import ValidationFailed
    from recovery.operators import link_oidc, validate_oidc_link

    try:  # bad usage is 2, before anything is asked
        validate_oidc_link(issuer, subject, email, clear)
    except ValidationFailed as exc:
        raise usage(str(exc)) from None
    ctx = _ctx()
    admin = _acting_admin(ctx, as_name)
    operator = _operator_change(ctx, lambda: link_oidc(ctx.db, username, issuer=issuer, subject=subject, email=email,
                                                       clear=clear, actor=admin, allow_unnamed=False))
    if clear:
        console.print(f"operator {username}: single sign-on identity removed {_by(admin)}", markup=False)
        return
    linked = [f"issuer {operator.oidc_issuer}, subject {operator.oidc_subject}"] if operator.oidc_subject else []
    linked += [f"e-mail {operator.email}"] if operator.email else []
    console.print(f"operator {username} linked to {'; '.join(linked)} {_by(admin)}", markup=False, highlight=False,
                  soft_wrap=True)


# ---------------------------------------------------------------------------- audit
def _verify_json(result: Any, anchors: int) -> dict[str, Any]:
    data: dict[str, Any] = {"ok": result.ok, "events_checked": result.events_checked,
                            "first_broken_event": result.first_broken_id, "problem": result.problem}
    if anchors:
        data["anchors_checked"] = anchors
    if result.row_problems:
        data["row_problems"] = list(result.row_problems)
    return data


@audit_app.command("verify")
def audit_verify(as_json: JsonOption = False) -> None:
    """Check the keyed chain of audit events with the audit keys, against every anchor published
    outside the database, and every case row against its events; name the first problem."""
    from recovery.audit import verify_chain
    from recovery.audit_anchors import anchor_settings, read_anchors

    ctx = _ctx()
    ring = _audit_keyring()
    anchors = read_anchors(anchor_settings(ctx.settings.var_dir).path)
    with ctx.db.read() as session:
        result = verify_chain(session, ring=ring, anchors=anchors, rows=True)
    ctx.db.dispose()
    if as_json:
        _print_json(_verify_json(result, len(anchors)))
    elif result.ok:
        console.print(f"[green]audit chain verified[/]: {result.events_checked} events, "
                      f"{result.anchors_checked} anchor(s) matched, every case row follows its events")
    else:
        if result.row_problems:
            err.print(f"[bold red]{len(result.row_problems)} case row(s) differ from their events[/] "
                      f"(chain of {result.events_checked} events verified):")
            for problem in result.row_problems:
                err.print(f"  - {problem}", markup=False, highlight=False)
        elif result.first_broken_id is not None:
            err.print(f"[bold red]audit chain broken at event {result.first_broken_id}[/]: {result.problem}",
                      highlight=False)
        else:
            err.print(f"[bold red]audit chain broken[/]: {result.problem}", highlight=False)
    if not result.ok:
        raise typer.Exit(1)


@audit_app.command("anchor")
def audit_anchor(as_json: JsonOption = False) -> None:
    """Publish the chain's head (event id, hash, time) outside the database: appended to the anchor
    file (RECOVERY_AUDIT_ANCHOR_FILE) and handed to RECOVERY_AUDIT_ANCHOR_COMMAND when set."""
    from recovery.audit_anchors import anchor_settings, publish
    from recovery.dbtypes import utcnow

    ctx = _ctx()
    settings = anchor_settings(ctx.settings.var_dir)
    with ctx.db.read() as session:
        anchor = publish(session, settings, utcnow())
    ctx.db.dispose()
    if as_json:
        _print_json({**anchor, "file": str(settings.path), "command": settings.command})
        return
    sinks = str(settings.path) + (f" and `{settings.command}`" if settings.command else "")
    console.print(f"anchor published: event {anchor['event_id']}, hash {anchor['hash']}, to {sinks}",
                  markup=False, highlight=False)


@audit_app.command("rotate-key")
def audit_rotate_key(as_name: AsOption, as_json: JsonOption = False) -> None:
    """Generate a new audit key and make it current (an admin; the key must live in a key file, which
    keeps the old keys so earlier events still verify). Restart the running services afterwards."""
    from recovery import audit
    from recovery.audit_keys import KeyRingError, new_key
    from recovery.dbtypes import utcnow
    from recovery.vocabulary import Role

    ctx = _ctx()
    try:
        actor = sign_in(ctx, as_name)
        if actor.role is not Role.ADMIN:
            raise refused(f"only an admin rotates the audit key: {actor.name} is a {actor.role.value}")
        ring = _audit_keyring()
        if ring.path is None:
            raise refused("RECOVERY_AUDIT_KEY holds a literal secret, which cannot be rotated here: point "
                          "RECOVERY_AUDIT_KEY at a key file (it keeps the old keys so earlier events still verify), "
                          "then rotate")
        old_id, new = ring.current_id, new_key()
        try:
            with ctx.db.write() as session:
                event = audit.rotate_key(session, ring, new, actor.name, actor.role.value, utcnow())
        except KeyRingError as exc:
            raise refused(str(exc)) from None
        except BaseException:
            if ring.current_id != old_id:  # the file was written but the event did not commit
                ring.add(ring.keys[old_id])
            raise
    finally:
        ctx.db.dispose()
    if as_json:
        _print_json({"old_key_id": old_id, "new_key_id": new.id, "event_id": event.id, "key_file": str(ring.path)})
        return
    console.print(f"audit key rotated by {actor.name}: {old_id} -> {new.id} (event {event.id}); {ring.path} keeps "
                  "both keys. Restart the API, the workbench and any running re-check so that they sign with the "
                  "new key.", markup=False, highlight=False)


def main() -> None:
    process_ends_with_command()
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
