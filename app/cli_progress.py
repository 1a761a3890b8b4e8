"""What the batch commands (`recovery recheck`, `recovery scan`) share: their exit codes, the
checks before a run (network, database reachable, schema current), progress as plain lines when
stderr is not a terminal, and a refusal message that becomes an exit code."""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock
from typing import TYPE_CHECKING

import typer

from app.cli_console import lazy_console

if TYPE_CHECKING:
    from app.context import AppContext

EXIT_COULD_NOT_RUN = 1
EXIT_USAGE = 2
EXIT_BUSY = 3
EXIT_INTERRUPTED = 130

err = lazy_console(stderr=True, soft_wrap=True, highlight=False)
out = lazy_console(soft_wrap=True, highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` on stderr and return the ``typer.Exit`` to raise."""
    err.print(message, markup=False)
    return typer.Exit(code)


def ready_context(network: str | None) -> AppContext:
    """The application context for a batch run, or the refusal to raise: an unknown ``--network``
    (exit 2), a database that cannot be reached or whose schema is not the newest (exit 1). An
    invalid configuration is reported by the CLI group (exit 2)."""
    from sqlalchemy.exc import OperationalError

    from app.context import app_context
    from recovery import migrate

    context = app_context()
    config = context.config
    if network is not None and network not in config.networks:
        raise fail(f"error: --network: unknown network {network!r} (known: {', '.join(sorted(config.networks))})",
                   EXIT_USAGE)
    try:
        current = migrate.current_revision(context.db)
    except OperationalError as exc:
        raise fail(f"error: cannot reach the database: {exc.orig}", EXIT_COULD_NOT_RUN) from None
    head = migrate.head_revision()
    if current != head:
        raise fail(f"error: the database schema is at {current or 'nothing'}, not {head}: run `recovery db upgrade`",
                   EXIT_COULD_NOT_RUN)
    return context


class PlainProgress:
    """Progress as plain lines (not a terminal): at most one line per ``every`` seconds, plus the last.

    ``label`` is the command (``recheck``), ``unit`` what is counted (``cases``).
    """

    def __init__(self, write: Callable[[str], None], label: str, unit: str, every: float = 2.0) -> None:
        self.write = write
        self.label = label
        self.unit = unit
        self.every = every
        self._last = 0.0
        self._lock = Lock()
        self._began = time.monotonic()

    def __call__(self, done: int, total: int) -> None:
        with self._lock:
            now = time.monotonic()
            if done < total and now - self._last < self.every:
                return
            self._last = now
            self.write(f"{self.label}: {done}/{total} {self.unit} ({now - self._began:.1f}s)")
