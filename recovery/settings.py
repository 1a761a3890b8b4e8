"""Process settings from the environment (prefix ``RECOVERY_``)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

REPO_ROOT = Path(__file__).resolve().parent.parent


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
    api_jwt_secret: SecretStr | None = None
    log_level: str = "INFO"

    @field_validator("database_url")
    @classmethod
    def _check_url(cls, value: str) -> str:
        allowed = ("sqlite", "postgresql")
        if value and value.split(":", 1)[0].split("+", 1)[0] not in allowed:
            raise ValueError("RECOVERY_DATABASE_URL must be an sqlite:// or postgresql+psycopg:// URL")
        return value

    def resolved_database_url(self) -> str:
        """The database URL, creating the var directory for the embedded SQLite default."""
        if self.database_url:
            return self.database_url
        self.var_dir.mkdir(parents=True, exist_ok=True)
        return f"sqlite:///{(self.var_dir / 'recovery.db').resolve()}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
