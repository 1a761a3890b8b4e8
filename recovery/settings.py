"""Process settings from the environment (prefix ``RECOVERY_``)."""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


#: what an ownership challenge calls the exchange when ``RECOVERY_EXCHANGE_NAME`` is not set
DEFAULT_EXCHANGE_NAME = "this exchange"
MAX_EXCHANGE_NAME_CHARS = 64


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


#: the shortest ``RECOVERY_WEBHOOK_SECRET`` accepted (receivers verify HMAC-SHA256 signatures with it)
MIN_WEBHOOK_SECRET_CHARS = 16
#: the longest webhook URL (the outbox's column)
MAX_WEBHOOK_URL_CHARS = 2048


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


class Settings(BaseSettings):
    """Everything an operator sets per deployment; configuration *data* lives in TOML files."""

    # errors never echo what was given: a secret (RECOVERY_WEBHOOK_SECRET) would end up in a log
    model_config = SettingsConfigDict(env_prefix="RECOVERY_", extra="ignore", hide_input_in_errors=True)

    database_url: str = Field(
        default="",
        description="SQLAlchemy URL; empty means an SQLite file under var_dir.",
    )
    config_dir: Path = Field(default=REPO_ROOT / "config")
    var_dir: Path = Field(default=Path("var"), description="State: SQLite file, local chains, logs.")
    fixtures_dir: Path = Field(
        default=REPO_ROOT.parent / "shared" / "fixtures" / "chains",
        description="Recorded chain responses served to the non-EVM adapters in tests and the demo.",
    )
    exchange_name: str = Field(
        default=DEFAULT_EXCHANGE_NAME,
        description="The exchange's name as users know it; every ownership challenge names it "
        "(one line, printable, at most 64 characters).",
    )
    api_jwt_secret: SecretStr | None = None
    log_level: str = "INFO"
    webhook_urls: str = Field(
        default="",
        description="Where the appeal form's status webhooks go: http(s) URLs separated by commas or blanks; "
        "empty: no webhooks (nothing is queued).",
    )
    webhook_secret: SecretStr | None = Field(
        default=None,
        description="The HMAC-SHA256 key of the Recovery-Signature header (required with webhook URLs).",
    )

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        allowed = ("sqlite", "postgresql")
        if value and value.split(":", 1)[0].split("+", 1)[0] not in allowed:
            raise ValueError("RECOVERY_DATABASE_URL must be an sqlite:// or postgresql+psycopg:// URL")
        return value

    @field_validator("exchange_name")
    @classmethod
    def _check_exchange_name(cls, value: str) -> str:
        return check_exchange_name(value)

    @field_validator("webhook_urls")
    @classmethod
    def _check_webhook_urls(cls, value: str) -> str:
        return " ".join(parse_webhook_urls(value))

    @model_validator(mode="after")
    def _check_webhook_secret(self) -> Settings:
        if not self.webhook_urls:
            return self
        secret = self.webhook_secret.get_secret_value() if self.webhook_secret is not None else ""
        if not secret.strip():
            raise ValueError("RECOVERY_WEBHOOK_SECRET must be set when RECOVERY_WEBHOOK_URLS is: every event is signed")
        if len(secret) < MIN_WEBHOOK_SECRET_CHARS:
            raise ValueError(f"RECOVERY_WEBHOOK_SECRET is {len(secret)} characters; at least "
                             f"{MIN_WEBHOOK_SECRET_CHARS}")
        return self

    @cached_property
    def webhook_targets(self) -> tuple[str, ...]:
        """The webhook URLs (empty: webhooks are off)."""
        return tuple(self.webhook_urls.split())

    def resolved_database_url(self) -> str:
        """The database URL, creating the var directory for the embedded SQLite default."""
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 'recovery.db').resolve()}"


def settings_problems(error: ValidationError) -> list[str]:
    """The messages of a settings ValidationError, one per problem, each naming its setting."""
    problems = []
    for item in error.errors():
        message = str(item.get("msg", ""))
        message = message.removeprefix("Value error, ")
        location = ".".join(str(part) for part in item.get("loc", ()))
        named = location and f"RECOVERY_{location.upper()}" not in message
        problems.append(f"RECOVERY_{location.upper()}: {message}" if named else message)
    return problems


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
