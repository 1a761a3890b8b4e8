"""Process settings from the environment (prefix ``RECOVERY_``)."""

from __future__ import annotations

from functools import cached_property, lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

# the checks are plain functions, also run without pydantic (``recovery.env_settings.database_url``)
from recovery.env_settings import DEFAULT_EXCHANGE_NAME as DEFAULT_EXCHANGE_NAME
from recovery.env_settings import MAX_EXCHANGE_NAME_CHARS as MAX_EXCHANGE_NAME_CHARS
from recovery.env_settings import MAX_WEBHOOK_URL_CHARS as MAX_WEBHOOK_URL_CHARS
from recovery.env_settings import MIN_WEBHOOK_SECRET_CHARS as MIN_WEBHOOK_SECRET_CHARS
from recovery.env_settings import check_database_url, check_webhook_secret, sqlite_default
from recovery.env_settings import check_exchange_name as check_exchange_name
from recovery.env_settings import parse_webhook_urls as parse_webhook_urls

REPO_ROOT = Path(__file__).resolve().parent.parent


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
        return check_database_url(value)

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
        check_webhook_secret(self.webhook_urls,
                             self.webhook_secret.get_secret_value() if self.webhook_secret is not None else None)
        return self

    @cached_property
    def webhook_targets(self) -> tuple[str, ...]:
        """The webhook URLs (empty: webhooks are off)."""
        return tuple(self.webhook_urls.split())

    def resolved_database_url(self) -> str:
        """The database URL, creating the var directory for the embedded SQLite default."""
        return self.database_url or sqlite_default(self.var_dir)


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
