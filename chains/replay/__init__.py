"""A local stand-in for the non-EVM chains' APIs, answering with recorded real responses.

Each family has a module ``chains.replay.<family>`` with ``FOLDER`` (its sub-folder of the
recordings, e.g. ``tron``) and ``build_handler(fixtures_dir) -> Handler``, where ``fixtures_dir``
is the root of the recordings (``/work/shared/fixtures/chains``, see its SOURCES.md). The handler
is mounted under the family name the networks use (``/tron``, ``/bitcoin``, ``/cosmos``, ...).

The folder keeps growing: each handler recognises a file by its content and sets aside, with a
note (``skipped``), whatever it cannot use. :func:`skipped_recordings` gathers those notes.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from chains.replay import bitcoin as _bitcoin
from chains.replay import cosmos as _cosmos
from chains.replay import solana as _solana
from chains.replay import stellar as _stellar
from chains.replay import tron as _tron
from chains.replay import xrpl as _xrpl
from chains.replay.recorded import SkippedRecording
from chains.replay.server import FAULT_KINDS, Faults, Handler, ReplayServer, Reply, Request

__all__ = [
    "FAULT_KINDS",
    "Faults",
    "Handler",
    "ReplayServer",
    "Reply",
    "Request",
    "SkippedRecording",
    "recorded_handlers",
    "serve_recorded",
    "skipped_recordings",
]


def recorded_handlers(fixtures_dir: Path, *, recorded_heads: bool = False) -> dict[str, Handler]:
    """One handler per chain family (key = the family name in the URL), from the recorded files.

    By default a family's "latest block" answer is made from its newest recorded transaction, so
    the replay is consistent; ``recorded_heads=True`` serves the recorded head answers (Horizon
    root, rippled ``server_info``, Esplora tip) instead, which are older than some recorded
    transactions: a node that is behind."""
    if not fixtures_dir.is_dir():
        raise FileNotFoundError(f"recorded chain responses not found at {fixtures_dir}")
    handlers: dict[str, Handler] = {}
    handlers["tron"] = _tron.build_handler(fixtures_dir)
    handlers["bitcoin"] = _bitcoin.build_handler(fixtures_dir, recorded_head=recorded_heads)
    handlers["cosmos"] = _cosmos.build_handler(fixtures_dir)
    handlers["xrpl"] = _xrpl.build_handler(fixtures_dir, recorded_head=recorded_heads)
    handlers["stellar"] = _stellar.build_handler(fixtures_dir, recorded_head=recorded_heads)
    handlers["solana"] = _solana.build_handler(fixtures_dir)
    return handlers


def skipped_recordings(handlers: Mapping[str, Handler]) -> list[SkippedRecording]:
    """Every file the handlers set aside, with the reason."""
    out: list[SkippedRecording] = []
    for handler in handlers.values():
        out.extend(getattr(handler, "skipped", ()))
    return out


def serve_recorded(fixtures_dir: Path, *, hold_seconds: float = 5.0, recorded_heads: bool = False) -> ReplayServer:
    """A started :class:`ReplayServer` with :func:`recorded_handlers`; stop it (or use it as a
    context manager) when done. ``server.skipped`` lists the files set aside."""
    handlers = recorded_handlers(fixtures_dir, recorded_heads=recorded_heads)
    server = ReplayServer(handlers, hold_seconds=hold_seconds)
    server.skipped = skipped_recordings(handlers)
    return server.start()
