"""Every error of the API as JSON with a stable ``code`` and a message; never a stack trace.

Codes (a public contract): ``invalid_json`` 400, ``missing_token`` / ``invalid_token`` /
``token_expired`` 401, ``forbidden`` 403, ``not_found`` 404, ``method_not_allowed`` 405,
``conflict`` 409, ``payload_too_large`` 413, ``unsupported_media_type`` 415,
``validation_failed`` 422 (with ``errors``: one ``{field, message}`` per bad field),
``rate_limited`` 429 (with a ``Retry-After`` header), ``internal_error`` 500,
``service_unavailable`` 503.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from pydantic import BaseModel, Field
from sqlalchemy.exc import OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException

from recovery.errors import Conflict, FieldError, Forbidden, InvalidTransition, NotFound, ValidationFailed

log = logging.getLogger("recovery.api")


class FieldProblem(BaseModel):
    field: str = Field(description="The request field, e.g. `tx_hash`, `amount`, `limit`.")
    message: str


class ErrorBody(BaseModel):
    code: str = Field(description="Stable machine-readable code.")
    message: str = Field(description="What went wrong, for a person.")
    errors: list[FieldProblem] | None = Field(default=None, description="With `validation_failed`: each bad field.")
    retry_after: int | None = Field(default=None, description="With `rate_limited`: seconds to wait.")


class ApiError(Exception):
    """An error answered as ``{"code", "message", ...}`` with an HTTP status."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        errors: Sequence[FieldError] = (),
        headers: dict[str, str] | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.errors = list(errors)
        self.headers = dict(headers or {})
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        data: dict[str, Any] = {"code": self.code, "message": self.message}
        if self.errors:
            data["errors"] = [{"field": e.field, "message": e.message} for e in self.errors]
        if self.retry_after is not None:
            data["retry_after"] = self.retry_after
        return data

    def response(self) -> JSONResponse:
        return JSONResponse(self.body(), status_code=self.status, headers=self.headers or None)


def unauthorized(code: str, message: str) -> ApiError:
    return ApiError(401, code, message, headers={"WWW-Authenticate": 'Bearer realm="recovery"'})


def validation_error(errors: Sequence[FieldError]) -> ApiError:
    names = ", ".join(dict.fromkeys(e.field for e in errors))
    return ApiError(422, "validation_failed", f"invalid field(s): {names}", errors=errors)


_STATUS_CODES = {
    400: "bad_request",
    401: "invalid_token",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}

_STATUS_MESSAGES = {
    404: "no such resource",
    405: "method not allowed on this resource",
}


def _field_name(loc: Sequence[int | str]) -> str:
    parts = [str(p) for p in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "cookie"):
        parts = parts[1:]
    return ".".join(parts) or "request"


def _pydantic_errors(exc: RequestValidationError) -> list[FieldError]:
    problems = []
    for error in exc.errors():
        problems.append(FieldError(_field_name(error.get("loc", ())), str(error.get("msg", "is invalid"))))
    return problems


def install(app: FastAPI) -> None:
    """Register the handlers that turn every failure into the JSON error shape."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> Response:
        return exc.response()

    @app.exception_handler(RequestValidationError)
    async def _request_validation(_request: Request, exc: RequestValidationError) -> Response:
        return validation_error(_pydantic_errors(exc)).response()

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> Response:
        code = _STATUS_CODES.get(exc.status_code, "internal_error" if exc.status_code >= 500 else "bad_request")
        message = _STATUS_MESSAGES.get(exc.status_code) or (exc.detail if isinstance(exc.detail, str) else code)
        headers = dict(exc.headers or {})
        return JSONResponse({"code": code, "message": message}, status_code=exc.status_code, headers=headers or None)

    @app.exception_handler(ValidationFailed)
    async def _validation_failed(_request: Request, exc: ValidationFailed) -> Response:
        return validation_error(exc.errors).response()

    @app.exception_handler(NotFound)
    async def _not_found(_request: Request, _exc: NotFound) -> Response:
        return ApiError(404, "not_found", "no such appeal").response()

    @app.exception_handler(Forbidden)
    async def _forbidden(_request: Request, exc: Forbidden) -> Response:
        return ApiError(403, "forbidden", str(exc)).response()

    @app.exception_handler(Conflict)
    async def _conflict(_request: Request, exc: Conflict) -> Response:
        return ApiError(409, "conflict", str(exc)).response()

    @app.exception_handler(InvalidTransition)
    async def _transition(_request: Request, exc: InvalidTransition) -> Response:
        return ApiError(409, "invalid_transition", str(exc)).response()

    @app.exception_handler(OperationalError)
    async def _database_down(_request: Request, exc: OperationalError) -> Response:
        log.error("database unavailable: %s", exc.orig)
        return ApiError(503, "service_unavailable", "the service is temporarily unavailable; try again later",
                        headers={"Retry-After": "5"}).response()

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, exc: Exception) -> Response:
        log.exception("unhandled error on %s %s", request.method, request.url.path, exc_info=exc)
        return ApiError(500, "internal_error", "internal error; it has been logged").response()
