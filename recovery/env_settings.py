"""The checks of the process settings, and the database URL read straight from the environment.

:class:`recovery.settings.Settings` (pydantic-settings) validates ``RECOVERY_*`` with the checks of
this module. A command that needs nothing of the settings but the database (``recovery cases list``
and ``cases show``) calls :func:`database_url`, which reads the environment as pydantic-settings does
(names without regard to case, values as given) and runs the same checks without importing pydantic
or pydantic-settings (issue 20: about a tenth of those commands' start-up). When a check fails it
builds the settings the ordinary way, so a bad setting ends the command exactly as it ends any other
(the pydantic error, one line naming the setting, exit 2).
"""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import urlsplit

#: what an ownership challenge calls the exchange when ``RECOVERY_EXCHANGE_NAME`` is not set
DEFAULT_EXCHANGE_NAME = "this exchange"
MAX_EXCHANGE_NAME_CHARS = 64
#: the shortest ``RECOVERY_WEBHOOK_SECRET`` accepted (receivers verify HMAC-SHA256 signatures with it)
MIN_WEBHOOK_SECRET_CHARS = 16
#: the longest webhook URL (the outbox's column)
MAX_WEBHOOK_URL_CHARS = 2048
#: the prefix of every setting's environment variable
PREFIX = "RECOVERY_"
#: the state folder when ``RECOVERY_VAR_DIR`` is not set
DEFAULT_VAR_DIR = Path("var")


def check_database_url(value: str) -> str:
    """``value`` when it is empty (the SQLite default) or an sqlite or postgresql URL; else ValueError."""
    allowed = ("sqlite", "postgresql")
    if value and value.split(":", 1)[0].split("+", 1)[0] not in allowed:
        raise ValueError("RECOVERY_DATABASE_URL must be an sqlite:// or postgresql+psycopg:// URL")
    return value


def check_exchange_name(value: str) -> str:
    """``value`` stripped, when it is one printable line of 1 to 64 characters (it is written into
    the message users sign); else ValueError naming the problem."""
    name = value.strip()
    if not name:
        raise ValueError("RECOVERY_EXCHANGE_NAME is empty")
    if len(name) > MAX_EXCHANGE_NAME_CHARS:
        raise ValueError(f"RECOVERY_EXCHANGE_NAME is {len(name)} characters; at most {MAX_EXCHANGE_NAME_CHARS}")
    if not name.isprintable():
        raise ValueError("RECOVERY_EXCHANGE_NAME must be one line of printable characters")
    return name


def parse_webhook_urls(value: str) -> tuple[str, ...]:
    """The URLs of ``RECOVERY_WEBHOOK_URLS`` (separated by commas and/or blanks), in order, each once;
    ValueError naming the setting and the entry that is not an absolute http(s) URL."""
    urls: list[str] = []
    for position, entry in enumerate(value.replace(",", " ").split(), start=1):
        try:
            parts = urlsplit(entry)
            parts.port  # noqa: B018  (raises ValueError on a port that is not a number)
        except ValueError:
            parts = None
        if parts is None or parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"RECOVERY_WEBHOOK_URLS: entry {position} ({entry!r}) is not an http(s) URL with a host")
        if parts.username is not None or parts.password is not None:
            raise ValueError(f"RECOVERY_WEBHOOK_URLS: entry {position} ({entry!r}) carries credentials; "
                             "receivers authenticate the sender by the signature")
        if len(entry) > MAX_WEBHOOK_URL_CHARS:
            raise ValueError(f"RECOVERY_WEBHOOK_URLS: entry {position} is {len(entry)} characters; at most "
                             f"{MAX_WEBHOOK_URL_CHARS}")
        if parts.fragment:
            raise ValueError(f"RECOVERY_WEBHOOK_URLS: entry {position} ({entry!r}) has a #fragment")
        if entry not in urls:
            urls.append(entry)
    return tuple(urls)


def check_webhook_secret(webhook_urls: str, secret: str | None) -> None:
    """With webhook URLs (``webhook_urls`` as checked), a secret of at least 16 characters; else ValueError."""
    if not webhook_urls:
        return
    if not (secret or "").strip():
        raise ValueError("RECOVERY_WEBHOOK_SECRET must be set when RECOVERY_WEBHOOK_URLS is: every event is signed")
    if len(secret or "") < MIN_WEBHOOK_SECRET_CHARS:
        raise ValueError(f"RECOVERY_WEBHOOK_SECRET is {len(secret or '')} characters; at least "
                         f"{MIN_WEBHOOK_SECRET_CHARS}")


def sqlite_default(var_dir: Path) -> str:
    """The embedded SQLite database's URL under ``var_dir``, which is created."""
    var_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(var_dir / 'recovery.db').resolve()}"


def database_url() -> str:
    """The database URL of :meth:`recovery.settings.Settings.resolved_database_url`, once every
    setting with a check passes it, read from the environment without pydantic. A setting that
    fails its check is reported as the settings report it (:func:`recovery.settings.get_settings`
    raises its ValidationError)."""
    environ = {name.lower(): value for name, value in os.environ.items()}  # as pydantic-settings reads it

    def setting(name: str) -> str | None:
        return environ.get((PREFIX + name).lower())

    try:
        url = check_database_url(setting("database_url") or "")
        exchange_name = setting("exchange_name")
        if exchange_name is not None:  # the default is not checked (nor by pydantic)
            check_exchange_name(exchange_name)
        webhook_urls = " ".join(parse_webhook_urls(setting("webhook_urls") or ""))
        check_webhook_secret(webhook_urls, setting("webhook_secret"))
    except ValueError:
        from recovery.settings import get_settings

        return get_settings().resolved_database_url()  # raises the settings' own error
    if url:
        return url
    var_dir = setting("var_dir")
    return sqlite_default(DEFAULT_VAR_DIR if var_dir is None else Path(var_dir))
