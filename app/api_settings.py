"""Settings of the user-facing JSON API, from the environment (prefix ``RECOVERY_API_``)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class ApiConfigError(ValueError):
    """The API cannot run with these settings (e.g. no way to verify tokens)."""


class ApiSettings(BaseSettings):
    """Everything the API needs besides the database and the TOML configuration.

    Tokens are verified with HS256 and ``RECOVERY_API_JWT_SECRET``, or RS256 and a PEM public key
    (``RECOVERY_API_JWT_PUBLIC_KEY`` or ``RECOVERY_API_JWT_PUBLIC_KEY_FILE``); at least one is required.
    """

    model_config = SettingsConfigDict(env_prefix="RECOVERY_API_", extra="ignore")

    jwt_secret: SecretStr | None = Field(default=None, description="HS256 shared secret (at least 32 bytes).")
    jwt_public_key: str | None = Field(default=None, description="RS256 public key, PEM text.")
    jwt_public_key_file: Path | None = Field(default=None, description="RS256 public key, PEM file.")
    jwt_issuer: str | None = Field(default=None, description="If set, the token's `iss` must equal it.")
    jwt_audience: str | None = Field(default=None, description="If set, the token's `aud` must contain it.")
    jwt_leeway_seconds: int = Field(default=0, ge=0, le=300, description="Clock skew allowed on exp/nbf/iat.")
    jwt_max_ttl: int = Field(
        default=86_400, ge=60, le=30 * 86_400,
        description="A token's lifetime (exp - iat) may not exceed this many seconds (default 24 h).",
    )

    rate_limit: int = Field(default=20, ge=1, le=100_000, description="Appeals a user may create per window.")
    rate_window_seconds: int = Field(default=3600, ge=1, le=31 * 86400)
    check_timeout_seconds: float = Field(default=3.0, gt=0, le=60, description="Bound of the synchronous check.")
    max_body_bytes: int = Field(default=16 * 1024, ge=256, le=1024 * 1024)
    cors_origins: Annotated[tuple[str, ...], NoDecode] = Field(
        default=(), description="Allowed browser origins, comma-separated; none by default."
    )
    list_limit_max: int = Field(default=200, ge=1, le=1000)
    read_threads: int = Field(default=4, ge=1, le=64, description="Threads serving GET /v1/appeals/{reference}.")

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: Any) -> Any:
        if isinstance(value, str):
            return tuple(part.strip() for part in value.split(",") if part.strip())
        return value

    @field_validator("cors_origins")
    @classmethod
    def _check_origins(cls, origins: tuple[str, ...]) -> tuple[str, ...]:
        for origin in origins:
            if origin == "*":
                raise ValueError("'*' is not allowed: list the form's origins (https://host[:port])")
            scheme, _, rest = origin.partition("://")
            if scheme not in ("http", "https") or not rest or "/" in rest:
                raise ValueError(f"{origin!r} is not an origin such as https://example.com")
        return origins

    @field_validator("jwt_secret")
    @classmethod
    def _secret_length(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and value.get_secret_value() and len(value.get_secret_value().encode()) < 32:
            raise ValueError("must be at least 32 bytes (HS256 keys shorter than the hash are weak)")
        if value is not None and not value.get_secret_value():
            return None
        return value

    @model_validator(mode="after")
    def _one_public_key(self) -> ApiSettings:
        if self.jwt_public_key and self.jwt_public_key_file:
            raise ValueError("set RECOVERY_API_JWT_PUBLIC_KEY or RECOVERY_API_JWT_PUBLIC_KEY_FILE, not both")
        return self

    def public_key_pem(self) -> str | None:
        """The RS256 public key, read from the file when one is configured."""
        if self.jwt_public_key_file is not None:
            try:
                return self.jwt_public_key_file.read_text(encoding="ascii")
            except OSError as exc:
                raise ApiConfigError(f"RECOVERY_API_JWT_PUBLIC_KEY_FILE: cannot read {exc.filename}: "
                                     f"{exc.strerror}") from None
        return self.jwt_public_key or None
