"""Reading the recorded response files (shared by the per-family replay handlers).

The recordings folder keeps growing, so every replay handler recognises each file by its content
(which request it answers), never by its name, and sets aside, with a note, any file it cannot
use: an unknown shape, unreadable JSON, or a body that does not belong to its family. Nothing it
cannot read stops a server from starting.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Recording", "SkippedRecording", "note", "note_unreadable", "read_recordings"]

_log = logging.getLogger("chains.replay")


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded response: the file's bytes (served as they are) and their parsed JSON."""

    path: Path
    raw: bytes
    data: Any

    @property
    def name(self) -> str:
        return self.path.name


@dataclass(frozen=True, slots=True)
class SkippedRecording:
    """A file a replay handler set aside, and why (``reason`` is for a person)."""

    path: Path
    reason: str

    def __str__(self) -> str:
        return f"{self.path.parent.name}/{self.path.name}: {self.reason}"


def read_recordings(
    folder: Path, skipped: list[SkippedRecording] | None = None, pattern: str = "*.json"
) -> list[Recording]:
    """Every file of ``folder`` matching ``pattern`` that parses as JSON, sorted by name; a
    missing folder gives []. Files that are not JSON are noted in ``skipped`` (and logged)."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(pattern)):
        raw = path.read_bytes()
        try:
            data = json.loads(raw)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            note(skipped, path, f"not JSON ({exc})")
            continue
        out.append(Recording(path, raw, data))
    return out


def note(skipped: list[SkippedRecording] | None, path: Path, reason: str) -> None:
    """Set ``path`` aside with ``reason``: logged, and kept in ``skipped`` when given."""
    entry = SkippedRecording(path, reason)
    _log.warning("recording skipped: %s", entry)
    if skipped is not None:
        skipped.append(entry)


def note_unreadable(skipped: list[SkippedRecording] | None, path: Path, what: str, exc: Exception) -> None:
    """Set ``path`` aside: it is not ``what`` (e.g. "a Horizon answer") this replay can serve."""
    note(skipped, path, f"not {what} this replay can serve ({type(exc).__name__}: {exc})")
