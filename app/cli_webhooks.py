"""``recovery webhooks``: deliver the appeal form's status webhooks, and show the outbox.

``webhooks deliver`` is the worker (``--once``: deliver what is due and exit; several may run
against PostgreSQL); ``webhooks status [--json]`` the backlog and the failures. The settings are
``RECOVERY_WEBHOOK_URLS`` and ``RECOVERY_WEBHOOK_SECRET`` (``recovery/settings.py``); a bad one is
named and the command exits 2. Everything is imported in the commands' bodies (issue 20).

Exit codes: 0 done (``--once`` also when some deliveries failed: they are retried later), 1 the
database cannot be reached or its schema is not the newest, 2 bad options or settings.
"""

from __future__ import annotations

import signal
import threading
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import group
from app.cli_operator import JsonOption, err, out, print_json

if TYPE_CHECKING:
    from recovery.settings import Settings
    from recovery.webhooks import DeliveryReport

webhooks_app = group("The appeal form's status webhooks: deliver the outbox, show its backlog and failures.")

EXIT_COULD_NOT_RUN = 1
EXIT_USAGE = 2


def _settings() -> Settings:
    """The process settings, or exit 2 naming each bad setting (never echoing a secret)."""
    from pydantic import ValidationError

    from recovery.settings import get_settings, settings_problems

    try:
        return get_settings()
    except ValidationError as exc:
        for problem in settings_problems(exc):
            err.print(f"error: {problem}", markup=False)
        raise typer.Exit(EXIT_USAGE) from None


def _database(settings: Settings) -> Any:
    """The database, at the newest schema, or exit 1 saying why."""
    from sqlalchemy.exc import OperationalError

    from recovery import migrate
    from recovery.db import connect

    db = connect(settings.resolved_database_url())
    try:
        current = migrate.current_revision(db)
    except OperationalError as exc:
        err.print(f"error: cannot reach the database: {exc.orig}", markup=False)
        raise typer.Exit(EXIT_COULD_NOT_RUN) from None
    head = migrate.head_revision()
    if current != head:
        err.print(f"error: the database schema is at {current or 'nothing'}, not {head}: run `recovery db upgrade`",
                  markup=False)
        raise typer.Exit(EXIT_COULD_NOT_RUN)
    return db


def deliver(
    once: Annotated[bool, typer.Option("--once", help="Deliver what is due now, then exit.")] = False,
    batch_size: Annotated[int, typer.Option(min=1, max=1000, help="Events claimed and sent together.")] = 50,
    timeout: Annotated[float, typer.Option(min=0.5, max=120.0, help="Seconds to wait for a receiver.")] = 10.0,
    lease_seconds: Annotated[
        float, typer.Option(min=5.0, help="How long a claimed batch is held if this worker dies (then sent again, "
                                          "with the same event ids); at least twice the timeout.")
    ] = 120.0,
    poll_seconds: Annotated[float, typer.Option(min=0.05, help="Wait between looks when nothing is due.")] = 1.0,
    as_json: JsonOption = False,
) -> None:
    """Send the queued webhook events to RECOVERY_WEBHOOK_URLS, signed, in order per case; retry
    failures with backoff for 24 hours. Runs until stopped (Ctrl-C, SIGTERM: the batch in hand is
    finished) unless --once."""
    from recovery.webhooks import Deliverer

    settings = _settings()
    urls = settings.webhook_targets
    if not urls:
        err.print("error: RECOVERY_WEBHOOK_URLS is not set: there is nowhere to deliver to", markup=False)
        raise typer.Exit(EXIT_USAGE)
    if lease_seconds < 2 * timeout:
        err.print(f"error: --lease-seconds ({lease_seconds:g}) must be at least twice --timeout ({timeout:g})",
                  markup=False)
        raise typer.Exit(EXIT_USAGE)
    assert settings.webhook_secret is not None  # the settings require it with URLs
    db = _database(settings)
    deliverer = Deliverer(db, urls=urls, secret=settings.webhook_secret.get_secret_value(), timeout=timeout,
                          batch_size=batch_size, lease_seconds=lease_seconds)
    stop = threading.Event()

    def polite_stop(_signum: int, _frame: object) -> None:
        stop.set()

    previous = {sig: signal.signal(sig, polite_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        if once:
            report = deliverer.deliver_due(stop=stop)
        else:
            if not as_json:
                err.print(f"delivering to {len(urls)} URL(s) as {deliverer.owner}; Ctrl-C stops", markup=False)
            report = deliverer.run(stop, poll_seconds=poll_seconds,
                                   on_report=None if as_json else _print_progress, on_error=_database_down)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        deliverer.close()
        db.dispose()
    if as_json:
        print_json(report.as_json())
    else:
        _print_progress(report, final=True)


def _database_down(exc: Exception) -> None:
    err.print(f"database unavailable, trying again shortly: {str(exc).splitlines()[0][:300]}", markup=False)


def _print_progress(report: DeliveryReport, final: bool = False) -> None:
    line = (f"{'done: ' if final else ''}{report.delivered} delivered, {report.failed} to retry, {report.dead} dead, "
            f"{report.postponed} postponed")
    out.print(line, markup=False)
    for url, error in sorted(report.errors.items()):
        out.print(f"  {url}: {error}", markup=False)


def status(as_json: JsonOption = False) -> None:
    """The outbox: events due, waiting for a retry, in flight, delivered and dead; the oldest pending
    event's age; each URL's last delivery and last error."""
    from recovery import webhooks

    settings = _settings()
    db = _database(settings)
    try:
        data = webhooks.status(db, urls=settings.webhook_targets)
    finally:
        db.dispose()
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    backlog = data["backlog"]
    age = data["oldest_pending_seconds"]
    out.print(f"due {backlog['due']} · waiting {backlog['waiting']} · in flight {backlog['in_flight']} · "
              f"delivered {backlog['delivered']} · dead {backlog['dead']}", markup=False)
    out.print(f"oldest pending: {_age(age)}" if age is not None else "nothing pending", markup=False)
    if not settings.webhook_targets:
        out.print("RECOVERY_WEBHOOK_URLS is not set: nothing new is queued", markup=False)
    if not data["urls"]:
        return
    table = Table("url", "pending", "delivered", "dead", "last delivered", "last error")
    for item in data["urls"]:
        error = f"{item['last_error']} ({item['last_error_at']})" if item["last_error"] else "-"
        table.add_row(item["url"] + ("" if item["configured"] else " (no longer configured)"), str(item["pending"]),
                      str(item["delivered"]), str(item["dead"]), item["last_delivered_at"] or "-", error)
    out.print(table)


def _age(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def register(app: typer.Typer) -> None:
    """Mount ``recovery webhooks deliver|status`` on the main CLI."""
    webhooks_app.command("deliver")(deliver)
    webhooks_app.command("status")(status)
    app.add_typer(webhooks_app, name="webhooks")
