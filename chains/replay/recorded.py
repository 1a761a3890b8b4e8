"""Reading the recorded response files (shared by the per-family replay handlers)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["Recording", "read_recordings"]


@dataclass(frozen=True, slots=True)
class Recording:
    """One recorded response: the file's bytes (served as they are) and their parsed JSON."""

    path: Path
    raw: bytes
    data: Any

    @property
    def name(self) -> str:
        return self.path.name


def read_recordings(folder: Path, pattern: str = "*.json") -> list[Recording]:
    """Every file of ``folder`` matching ``pattern``, sorted by name; a missing folder gives []."""
    if not folder.is_dir():
        return []
    out = []
    for path in sorted(folder.glob(pattern)):
        raw = path.read_bytes()
        out.append(Recording(path, raw, json.loads(raw)))
    return out
