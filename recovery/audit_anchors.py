"""Anchors: the audit chain's head published outside the database.

Someone who can write the database can delete the newest events and point the head at what is
left; the keyed chain still verifies. An anchor (event id, hash, time) appended to a file the
database administrator cannot rewrite (``RECOVERY_AUDIT_ANCHOR_FILE``, default
``var/audit-anchors.jsonl``) and handed to any extra sink a deployment configures
(``RECOVERY_AUDIT_ANCHOR_COMMAND``: a command that reads the anchor as JSON on stdin, e.g. to write
to a WORM bucket or syslog) makes such a truncation or rewrite visible to ``audit verify``.
"""

from __future__ import annotations

import json
import os
import shlex
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlmodel import Session

from recovery.models import AuditHead

__all__ = ["AnchorError", "AnchorSettings", "anchor_settings", "maybe_publish", "publish", "read_anchors"]


class AnchorError(RuntimeError):
    """The anchor could not be published to a sink (the file, or the configured command)."""


@dataclass(frozen=True)
class AnchorSettings:
    path: Path
    command: str | None = None
    #: publish at most this often from the re-check and the API
    every_minutes: int = 15


def anchor_settings(var_dir: Path) -> AnchorSettings:
    path = os.environ.get("RECOVERY_AUDIT_ANCHOR_FILE") or str(var_dir / "audit-anchors.jsonl")
    minutes = os.environ.get("RECOVERY_AUDIT_ANCHOR_MINUTES") or "15"
    try:
        every = max(1, int(minutes))
    except ValueError:
        raise AnchorError(f"RECOVERY_AUDIT_ANCHOR_MINUTES must be a whole number of minutes, not {minutes!r}") from None
    return AnchorSettings(Path(path), os.environ.get("RECOVERY_AUDIT_ANCHOR_COMMAND") or None, every)


def read_anchors(path: Path) -> list[dict[str, Any]]:
    """Every anchor in the file, oldest first ([] when the file does not exist)."""
    if not path.exists():
        return []
    anchors = []
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
            int(entry["event_id"])
            str(entry["hash"])
        except (ValueError, KeyError, TypeError):
            raise AnchorError(f"{path}: line {number} is not an anchor") from None
        anchors.append(entry)
    return anchors


def publish(session: Session, settings: AnchorSettings, now: datetime) -> dict[str, Any]:
    """Append the current head to the anchor file and hand it to the configured command."""
    head = session.get(AuditHead, 1)
    anchor = {
        "event_id": int(head.last_event_id or 0) if head else 0,
        "hash": head.last_hash if head else "0" * 64,
        "at": now.astimezone(UTC).isoformat(),
    }
    line = json.dumps(anchor, sort_keys=True)
    settings.path.parent.mkdir(parents=True, exist_ok=True)
    with settings.path.open("a") as handle:
        handle.write(line + "\n")
        handle.flush()
        os.fsync(handle.fileno())
    if settings.command:
        try:
            done = subprocess.run(shlex.split(settings.command), input=line + "\n", text=True,
                                  capture_output=True, timeout=30, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AnchorError(f"the anchor command failed: {exc}") from None
        if done.returncode != 0:
            raise AnchorError(f"the anchor command exited {done.returncode}: {done.stderr.strip()[:200]}")
    return anchor


def maybe_publish(session_factory: Callable[[], Any], settings: AnchorSettings, now: datetime) -> dict[str, Any] | None:
    """Publish an anchor unless the newest one in the file is younger than ``every_minutes``."""
    anchors = read_anchors(settings.path)
    if anchors:
        try:
            last = datetime.fromisoformat(str(anchors[-1]["at"]))
        except ValueError:
            last = None
        if last is not None and now - last < timedelta(minutes=settings.every_minutes):
            return None
    with session_factory() as session:
        return publish(session, settings, now)
