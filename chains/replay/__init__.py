"""A local stand-in for the non-EVM chains' APIs, answering with recorded real responses.

Each family has a module ``chains.replay.<family>`` with ``FOLDER`` (its sub-folder of the
recordings, e.g. ``tron``) and ``build_handler(fixtures_dir) -> Handler``, where ``fixtures_dir``
is the root of the recordings (``/work/shared/fixtures/chains``, see its SOURCES.md). The handler
is mounted under the family name the networks use (``/tron``, ``/bitcoin``, ``/cosmos``, ...).
"""

from __future__ import annotations

from pathlib import Path

from chains.replay import bitcoin as _bitcoin
from chains.replay import cosmos as _cosmos
from chains.replay import solana as _solana
from chains.replay import stellar as _stellar
from chains.replay import tron as _tron
from chains.replay import xrpl as _xrpl
from chains.replay.server import FAULT_KINDS, Faults, Handler, ReplayServer, Reply, Request

__all__ = [
    "FAULT_KINDS",
    "Faults",
    "Handler",
    "ReplayServer",
    "Reply",
    "Request",
    "recorded_handlers",
    "serve_recorded",
]


def recorded_handlers(fixtures_dir: Path) -> dict[str, Handler]:
    """One handler per chain family (key = the family name in the URL), from the recorded files."""
    if not fixtures_dir.is_dir():
        raise FileNotFoundError(f"recorded chain responses not found at {fixtures_dir}")
    handlers: dict[str, Handler] = {}
    handlers["tron"] = _tron.build_handler(fixtures_dir)
    handlers["bitcoin"] = _bitcoin.build_handler(fixtures_dir)
    handlers["cosmos"] = _cosmos.build_handler(fixtures_dir)
    handlers["xrpl"] = _xrpl.build_handler(fixtures_dir)
    handlers["stellar"] = _stellar.build_handler(fixtures_dir)
    handlers["solana"] = _solana.build_handler(fixtures_dir)
    return handlers


def serve_recorded(fixtures_dir: Path, *, hold_seconds: float = 5.0) -> ReplayServer:
    """A started :class:`ReplayServer` with :func:`recorded_handlers`; stop it (or use it as a
    context manager) when done."""
    return ReplayServer(recorded_handlers(fixtures_dir), hold_seconds=hold_seconds).start()
