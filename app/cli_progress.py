"""What the batch commands (`recovery recheck`, `recovery scan`) share: progress as plain lines
when stderr is not a terminal, and a refusal message that becomes an exit code."""

from __future__ import annotations

import time
from collections.abc import Callable
from threading import Lock

import typer
from rich.console import Console

err = Console(stderr=True, soft_wrap=True, highlight=False)
out = Console(soft_wrap=True, highlight=False)


def fail(message: str, code: int) -> typer.Exit:
    """Print ``message`` on stderr and return the ``typer.Exit`` to raise."""
    err.print(message, markup=False)
    return typer.Exit(code)


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
