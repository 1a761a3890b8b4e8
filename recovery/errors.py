"""Errors the service layer raises; every front end maps them to its own form (HTTP, exit code, banner)."""

from __future__ import annotations

from dataclasses import dataclass


class ServiceError(Exception):
    """Base class; ``code`` is stable and machine-readable."""

    code = "error"


@dataclass(frozen=True)
class FieldError:
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationFailed(ServiceError):
    code = "validation_failed"

    def __init__(self, errors: list[FieldError]) -> None:
        self.errors = errors
        super().__init__("; ".join(str(e) for e in errors))


class NotFound(ServiceError):
    code = "not_found"


class Forbidden(ServiceError):
    code = "forbidden"


class Conflict(ServiceError):
    """The case changed since the caller read it (stale version) or a uniqueness rule was hit."""

    code = "conflict"

    def __init__(self, message: str, current_version: int | None = None) -> None:
        self.current_version = current_version
        super().__init__(message)


class InvalidTransition(ServiceError):
    code = "invalid_transition"
