"""Process settings from the environment (prefix ``RECOVERY_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
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


class Settings(BaseSettings):
    """Everything an operator sets per deployment; configuration *data* lives in TOML files."""

    model_config = SettingsConfigDict(env_prefix="RECOVERY_", extra="ignore")

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

    def resolved_database_url(self) -> str:
        """The database URL, creating the var directory for the embedded SQLite default."""
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 'recovery.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
