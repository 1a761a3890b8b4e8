"""The audit chain's keys: they live outside the database, so nobody who can only write the database
can produce a chain that verifies.

``RECOVERY_AUDIT_KEY`` is either a secret (at least 32 characters, e.g. from a secret store) or the
path of a key file. A key file is JSON (``{"current": id, "keys": [{"id", "secret", "created_at"}]}``,
secrets in hex) and keeps every key the chain was ever signed with, so ``audit verify`` can check each
segment with its own key after a rotation. Where nothing is configured, the embedded default keeps
working with no set-up: a key file is created in the var folder (mode 0600), and a warning says once
that a key stored beside the data protects nothing against someone who can read both.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import secrets
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

__all__ = ["AuditKey", "KeyRing", "KeyRingError", "load_keyring", "new_key", "reset_cache"]

_log = logging.getLogger("recovery.audit")
KEY_FILE_NAME = "audit-key.json"
_MIN_SECRET = 32


class KeyRingError(RuntimeError):
    """The configured audit key cannot be used (unreadable file, a secret too short, ...)."""


@dataclass(frozen=True)
class AuditKey:
    id: str
    secret: bytes = field(repr=False)


def key_id_of(secret: bytes) -> str:
    return hashlib.sha256(b"recovery-audit-key:" + secret).hexdigest()[:16]


def new_key() -> AuditKey:
    secret = secrets.token_bytes(32)
    return AuditKey(key_id_of(secret), secret)


@dataclass
class KeyRing:
    """Every known key by id, and the one new events are signed with."""

    keys: dict[str, AuditKey]
    current_id: str
    #: the key file (None for a literal secret from the environment)
    path: Path | None = None
    #: True when the key file sits in the var folder beside the database
    beside_data: bool = False

    @property
    def current(self) -> AuditKey:
        return self.keys[self.current_id]

    def get(self, key_id: str) -> AuditKey | None:
        return self.keys.get(key_id)

    def add(self, key: AuditKey) -> None:
        """Make ``key`` the current one and save the file (rotation)."""
        if self.path is None:
            raise KeyRingError(
                "RECOVERY_AUDIT_KEY holds a literal secret: rotate by pointing it at a key file that keeps the old key"
            )
        self.keys[key.id] = key
        self.current_id = key.id
        _save(self)


def _save(ring: KeyRing) -> None:
    assert ring.path is not None
    payload = {
        "current": ring.current_id,
        "keys": [
            {"id": k.id, "secret": k.secret.hex(), "created_at": datetime.now(UTC).isoformat()}
            for k in ring.keys.values()
        ],
    }
    ring.path.parent.mkdir(parents=True, exist_ok=True)
    temporary = ring.path.with_suffix(".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        json.dump(payload, handle, indent=2)
    os.chmod(temporary, 0o600)
    temporary.replace(ring.path)


def _read_file(path: Path, beside_data: bool) -> KeyRing:
    try:
        data = json.loads(path.read_text())
        keys = {}
        for entry in data["keys"]:
            secret = bytes.fromhex(entry["secret"])
            if len(secret) < 16 or key_id_of(secret) != entry["id"]:
                raise ValueError(f"key {entry.get('id')!r} does not match its secret")
            keys[entry["id"]] = AuditKey(entry["id"], secret)
        current = str(data["current"])
        if current not in keys:
            raise ValueError(f"the current key {current!r} is not in the file")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KeyRingError(f"audit key file {path}: {exc}") from None
    return KeyRing(keys, current, path, beside_data)


#: (configured, var dir) -> (keyring, the key file's modification time when read)
_cache: dict[tuple[str, str], tuple[KeyRing, int | None]] = {}
_warned: set[str] = set()


def reset_cache() -> None:
    _cache.clear()


def load_keyring(var_dir: Path, configured: str | None = None, *, create: bool = True) -> KeyRing:
    """The keyring from ``configured`` (``RECOVERY_AUDIT_KEY``: a secret or a key file path), else
    the key file in ``var_dir`` (created when absent and ``create``)."""
    if configured is None:
        configured = os.environ.get("RECOVERY_AUDIT_KEY") or None
    cache_key = (configured or "", str(var_dir.resolve()))
    cached = _cache.get(cache_key)
    if cached is not None:
        ring, seen = cached
        # a rotation by another process rewrites the key file: every process follows it
        if ring.path is None or _mtime(ring.path) == seen:
            return ring
    if configured and (os.sep in configured or configured.endswith(".json")):
        ring = _read_file(Path(configured), beside_data=False)
    elif configured:
        if len(configured) < _MIN_SECRET:
            raise KeyRingError(f"RECOVERY_AUDIT_KEY must be at least {_MIN_SECRET} characters (or a key file path)")
        secret = configured.encode()
        key = AuditKey(key_id_of(secret), secret)
        ring = KeyRing({key.id: key}, key.id)
    else:
        path = var_dir / KEY_FILE_NAME
        if path.exists():
            ring = _read_file(path, beside_data=True)
        elif create:
            key = new_key()
            ring = KeyRing({key.id: key}, key.id, path, beside_data=True)
            _save(ring)
        else:
            raise KeyRingError(f"no audit key: set RECOVERY_AUDIT_KEY or run `recovery db upgrade` ({path})")
        if str(path) not in _warned:
            _warned.add(str(path))
            _log.warning(
                "the audit key is stored beside the data (%s): it protects nothing against someone who can read "
                "both; set RECOVERY_AUDIT_KEY from a secret store in production", path,
            )
    _cache[cache_key] = (ring, _mtime(ring.path) if ring.path is not None else None)
    return ring


def _mtime(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None
