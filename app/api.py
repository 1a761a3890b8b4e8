"""The JSON API behind the exchange's appeal form (FastAPI).

``GET /v1/networks`` (public, with each network's live state), ``POST /v1/appeals``, ``GET /v1/appeals``,
``GET /v1/appeals/{reference}``, ``GET``/``POST /v1/appeals/{reference}/ownership``,
``POST /v1/appeals/{reference}/replies``, ``POST /v1/appeals/{reference}/feedback`` (bearer JWT),
``GET /healthz``, OpenAPI at ``/openapi.json``.
The handlers hold no business rule: validation is ``recovery.intake``, creation and every change
go through ``CaseService``, the chain check is ``CaseChecker``, and what a user may see is
``recovery.public``.
"""


import asyncio
import contextlib
import json
import logging
import re
import threading
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Annotated, Any

import orjson
from fastapi import FastAPI, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.utils import get_openapi
from sqlmodel import select
from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app import api_errors
from app.api_auth import TokenVerifier
from app.api_errors import ApiError, ErrorBody, unauthorized, validation_error
from app.api_limits import AppealRateLimit, BodyLimitMiddleware
from app.api_models import (
    AMOUNT_PATTERN,
    AppealListOut,
    AppealOut,
    FeedbackIn,
    FeedbackOut,
    HealthOut,
    NetworksOut,
    OwnershipOut,
    OwnershipSignedIn,
    ReplyIn,
    request_schema,
)
from app.api_settings import ApiSettings
from app.collector import freeze_startup
from chains.addresses import FORMAT_HINTS
from recovery import feedback, network_state
from recovery.audit_anchors import AnchorSettings, anchor_settings, maybe_publish
from recovery.checking import CaseChecker, ChainGateway
from recovery.config import Config
from recovery.errors import FieldError, InvalidTransition, NotFound, ValidationFailed
from recovery.evidence import MAX_DOCUMENT_BYTES, EvidenceService, Ownership
from recovery.i18n import DEFAULT_LANGUAGE, negotiate
from recovery.intake import AppealDraft, validate_appeal
from recovery.models import Case
from recovery.network_state import NetworkState, NetworkStates
from recovery.public import AppealReader, CaseRecord, EventRecord, appeal_view, find_existing, list_own, own_events
from recovery.replies import MAX_ATTACHMENTS, MAX_MESSAGE_CHARS, Attachment
from recovery.services import SYSTEM, Actor, CaseService, is_shared_owner
from recovery.vocabulary import CaseStatus, Origin, Role

log = logging.getLogger("recovery.api")

APPEAL_FIELDS = ("network", "asset", "tx_hash", "deposit_address", "memo", "amount")
MAX_LENGTHS = {"network": 40, "asset": 128, "tx_hash": 128, "deposit_address": 128, "memo": 256, "amount": 80}
_AMOUNT = re.compile(AMOUNT_PATTERN.removeprefix("^").removesuffix("$"))
_REFERENCE = re.compile(r"[A-Za-z0-9-]{1,20}")
_JSON_TYPES = re.compile(r"^application/([a-z0-9.+-]+\+)?json$")
#: any one path segment as the reference: a malformed one gets its 404 from the route, not a 413
_OWNERSHIP_PATH = re.compile(r"/v1/appeals/[^/]{1,64}/ownership")
#: the ownership endpoint takes a document: its body limit is the file limit plus the multipart framing
OWNERSHIP_BODY_BYTES = MAX_DOCUMENT_BYTES + 64 * 1024
_REPLIES_PATH = re.compile(r"/v1/appeals/[^/]{1,64}/replies")
_FEEDBACK_PATH = re.compile(r"/v1/appeals/[^/]{1,64}/feedback")
#: a rating's comment may be 2,000 characters of JSON-escaped astral characters (12 bytes each)
FEEDBACK_BODY_BYTES = 32 * 1024
#: an answer takes up to MAX_ATTACHMENTS documents: its body limit is theirs plus the framing and the text
REPLIES_BODY_BYTES = MAX_ATTACHMENTS * MAX_DOCUMENT_BYTES + 64 * 1024

MEMO_HINTS = {
    "none": "this network does not use a memo: leave it empty",
    "digits": "digits only, at most 20",
    "uint32": "destination tag: a whole number from 0 to 4294967295",
    "uint64": "memo id: a whole number from 0 to 18446744073709551615",
    "text": "text memo: at most 28 bytes",
}
MEMO_PATTERNS = {"none": None, "digits": r"^[0-9]{1,20}$", "uint32": r"^[0-9]{1,10}$", "uint64": r"^[0-9]{1,20}$",
                 "text": None}
ASSET_HINT = ("`asset` is a listed symbol of the network (see `assets`), the symbol of a token the exchange "
              "does not list, or the token's contract address in the network's own form")


def _error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    described = {
        400: "malformed JSON",
        401: "missing, expired or invalid token",
        404: "no such appeal (also another user's)",
        409: "the appeal is not in a state that takes this (e.g. no question is waiting for an answer)",
        413: "request body over the size limit",
        415: "the body is not JSON",
        422: "invalid fields, each named",
        429: "too many appeals; see Retry-After",
        500: "internal error",
        503: "service temporarily unavailable",
    }
    responses: dict[int | str, dict[str, Any]] = {}
    for status in statuses:
        entry: dict[str, Any] = {"model": ErrorBody, "description": described[status]}
        if status == 429:
            entry["headers"] = {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}}
        if status == 401:
            entry["headers"] = {"WWW-Authenticate": {"schema": {"type": "string"}}}
        responses[status] = entry
    return responses


def networks_info(config: Config, states: Mapping[str, NetworkState] | None = None,
                  language: str = DEFAULT_LANGUAGE) -> dict[str, Any]:
    """What the form may offer: networks, their assets, memo rules and format hints, and each
    network's live ``state`` and ``state_message`` in ``language`` (``recovery.network_state``;
    ``ok`` where ``states`` says nothing)."""
    networks = []
    for network in config.networks.values():
        hints = FORMAT_HINTS[network.family]
        live = (states or {}).get(network.name)
        networks.append({
            "name": network.name,
            "family": network.family,
            "native_asset": network.native_asset,
            "deposits_enabled": network.deposits_enabled,
            "memo_required": network.memo_required,
            "memo_format": network.memo_format,
            "memo_hint": MEMO_HINTS[network.memo_format],
            "memo_pattern": MEMO_PATTERNS[network.memo_format],
            "address_hint": hints["address"],
            "address_pattern": hints["address_pattern"],
            "tx_hash_hint": hints["tx_hash"],
            "tx_hash_pattern": hints["tx_hash_pattern"],
            "explorer_tx_url": network.explorer_tx_url,
            "assets": [
                {
                    "symbol": asset.symbol,
                    "name": asset.name,
                    "contract": asset.contract,
                    "decimals": asset.decimals,
                    "min_deposit": format(asset.min_deposit, "f"),
                    "deposits_enabled": asset.deposits_enabled,
                }
                for asset in config.assets_on(network.name)
            ],
            "state": live.state if live is not None else network_state.OK,
            "state_message": network_state.message(network.name, live.state if live is not None else network_state.OK,
                                                   language),
        })
    return {"networks": networks, "asset_hint": ASSET_HINT}


def shape_errors(raw: dict[str, Any]) -> list[FieldError]:
    """Problems the intake does not look for: unknown fields, non-strings, lengths, the amount's form."""
    errors = []
    for key in raw:
        if key not in APPEAL_FIELDS:
            shown = key[:40] if key.isprintable() else repr(key[:40])
            errors.append(FieldError(shown, f"unknown field; the fields are {', '.join(APPEAL_FIELDS)}"))
    for key in APPEAL_FIELDS:
        value = raw.get(key)
        if value is None:
            continue
        if not isinstance(value, str):
            number = isinstance(value, int | float) and not isinstance(value, bool)
            hint = ' such as "12.5", not a JSON number' if key == "amount" and number else ""
            errors.append(FieldError(key, f"must be a string{hint}"))
        elif "\x00" in value:
            errors.append(FieldError(key, "must not contain NUL characters"))
        elif len(value) > MAX_LENGTHS[key]:
            errors.append(FieldError(key, f"is longer than {MAX_LENGTHS[key]} characters"))
        elif key == "amount" and not _AMOUNT.fullmatch(value):
            errors.append(FieldError(key, 'must be a positive decimal string such as "12.5" (digits and one dot)'))
    return errors


def validate_body(config: Config, raw: Any, user_id: str) -> AppealDraft:
    """Every problem of the body at once, each naming its field; nothing is stored."""
    if not isinstance(raw, dict):
        raise validation_error([FieldError("body", "must be a JSON object")])
    errors = shape_errors(raw)
    bad = {e.field for e in errors}
    clean = {k: v for k, v in raw.items() if k in APPEAL_FIELDS and k not in bad}
    try:
        draft = validate_appeal(config, clean, user_id)
    except ValidationFailed as exc:
        errors += [e for e in exc.errors if e.field not in bad]
    if errors:
        raise validation_error(errors)
    return draft


def _content_type(request: Request) -> str:
    """The request's media type, without its parameters, in lower case."""
    return request.headers.get("content-type", "").split(";", 1)[0].strip().lower()


async def _json_body(request: Request) -> Any:
    """The body parsed as JSON; ``400 invalid_json`` when it is not."""
    body = await request.body()
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(400, "invalid_json", f"the body is not valid JSON: {str(exc)[:100]}") from None


def check_query(request: Request, *allowed: str) -> None:
    """Refuse query parameters the operation does not define (422 naming each)."""
    unknown = [key for key in request.query_params if key not in allowed]
    if unknown:
        expected = f"the parameters are {', '.join(allowed)}" if allowed else "it takes no query parameters"
        raise validation_error([FieldError(key[:40] if key.isprintable() else repr(key[:40]),
                                           f"unknown query parameter; {expected}") for key in unknown])


def _spoken(language: str) -> dict[str, str]:
    """The headers of an answer whose sentences are in ``language`` (caches keep one per language)."""
    return {"Content-Language": language, "Vary": "Accept-Language"}


class _Headers:
    """Adds ``nosniff`` to every response and ``no-store`` where the handler set no caching."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                names = {name.lower() for name, _ in headers}
                headers.append((b"x-content-type-options", b"nosniff"))
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"no-store"))
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, sending)


class _QueuedWrites(CaseService):
    """The service with its write transactions queued on an in-process lock (SQLite only).

    SQLite allows one writer; a writer that finds the file locked sleeps in SQLite's busy handler
    (1, 2, 5, ... 100 ms steps) even when the lock frees a moment later. Under concurrent appeals
    that turned into multi-second tails. Waiting on a Python lock instead wakes the next writer at
    once. Correctness does not depend on it: the database still serializes writers.
    """

    _write_lock = threading.Lock()

    def submit(self, draft: AppealDraft, actor: Actor, *, origin: Origin = Origin.APPEAL) -> tuple[Case, bool]:
        with self._write_lock:
            return super().submit(draft, actor, origin=origin)

    def apply_decision(self, *args: Any, **kwargs: Any) -> tuple[Case, bool]:
        with self._write_lock:
            return super().apply_decision(*args, **kwargs)


#: how often the anchoring task wakes up to see whether an anchor is due (it publishes at most every
#: ``RECOVERY_AUDIT_ANCHOR_MINUTES``: the anchor file's newest entry says when the last one was)
ANCHOR_POLL_SECONDS = 60.0


async def publish_anchors(db_read: Any, anchors: AnchorSettings, poll_seconds: float = ANCHOR_POLL_SECONDS) -> None:
    """The API's background anchoring: publish the audit chain's head outside the database at most
    every ``anchors.every_minutes``, in a worker thread (never on a request path), until cancelled.
    A sink that fails is logged and tried again at the next wake-up."""
    from recovery.audit_anchors import AnchorError
    from recovery.dbtypes import utcnow

    while True:
        try:
            anchor = await asyncio.to_thread(maybe_publish, db_read, anchors, utcnow())
            if anchor is not None:
                log.info("audit anchor published: event %s", anchor["event_id"])
        except asyncio.CancelledError:
            raise
        except (AnchorError, OSError) as exc:
            log.warning("the audit anchor could not be published: %s", exc)
        except Exception:  # the server must go on serving whatever the database or the sink does
            log.exception("the audit anchor could not be published")
        await asyncio.sleep(poll_seconds)


def create_app(
    service: CaseService,
    settings: ApiSettings | None = None,
    *,
    gateway: ChainGateway | None = None,
    anchors: AnchorSettings | None = None,
) -> FastAPI:
    """The API over this service (database, configuration, clock) and chain gateway. With
    ``anchors``, a background task publishes audit anchors (``recovery api`` passes them)."""
    settings = settings or ApiSettings()
    verifier = TokenVerifier(settings)
    if service.db.is_sqlite:
        service = _QueuedWrites(service.db, service.config, service.clock)
    config = service.config
    checker = CaseChecker(service, gateway or ChainGateway(config))
    limiter = AppealRateLimit(service.db, settings.rate_limit, timedelta(seconds=settings.rate_window_seconds),
                              service.clock)
    network_states = NetworkStates(service.db, config, service.clock)
    #: the networks answer and the states it was built from: rebuilt when they were recomputed (at most every 30 s)
    networks_cache: list[tuple[Mapping[str, NetworkState], dict[str, NetworksOut]]] = []
    # The hot read (GET /v1/appeals/{reference}) is one indexed SELECT. On SQLite (embedded, WAL:
    # a reader never waits for the writer; busy wait bounded to 1 s) it runs on the event loop:
    # handing it to a thread cost more than the read itself. On PostgreSQL (a network round trip)
    # it runs on a few threads of its own: no more than the pool keeps open, and never queued
    # behind appeals waiting for a chain.
    reads = ThreadPoolExecutor(max_workers=settings.read_threads, thread_name_prefix="api-read")
    reader = AppealReader(service.db, pool_size=settings.read_threads)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anchoring = asyncio.create_task(publish_anchors(service.db.read, anchors)) if anchors is not None else None
        try:
            yield
        finally:
            if anchoring is not None:
                anchoring.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await anchoring
            reads.shutdown(wait=False)
            reader.close()

    app = FastAPI(
        lifespan=lifespan,
        title="Deposit recovery: appeals API",
        version="1",
        description=(
            "The JSON API behind the exchange's appeal form. Authenticate with `Authorization: Bearer <JWT>` "
            "(the user id is the token's `sub`). Every error is `{code, message}` with a stable `code`."
        ),
    )
    api_errors.install(app)
    app.add_middleware(BodyLimitMiddleware, max_bytes=settings.max_body_bytes,
                       overrides=((_OWNERSHIP_PATH, max(settings.max_body_bytes, OWNERSHIP_BODY_BYTES)),
                                  (_REPLIES_PATH, max(settings.max_body_bytes, REPLIES_BODY_BYTES)),
                                  (_FEEDBACK_PATH, max(settings.max_body_bytes, FEEDBACK_BODY_BYTES))))
    app.add_middleware(_Headers)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(settings.cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Retry-After", "Location"],
            max_age=600,
        )

    def speak(request: Request, response: Response) -> str:
        """The language of the answer's sentences, from ``Accept-Language``; said in its headers."""
        language = negotiate(request.headers.get("accept-language"))
        response.headers.update(_spoken(language))
        return language

    def authenticate(request: Request, *allowed_query: str) -> str:
        """The caller's user id (401 otherwise), then the query parameters checked (422).

        Plain calls rather than FastAPI dependencies: the same checks at a fraction of the cost.
        """
        user_id = verifier.user_id(request.headers.get("authorization"))
        if is_shared_owner(user_id):  # the placeholder owner of detected cases at shared addresses
            raise unauthorized("invalid_token", "the token's subject is a reserved user id")
        check_query(request, *allowed_query)
        return user_id

    def load_view(case: Case, language: str) -> dict[str, Any]:
        assert case.id is not None
        with service.db.read() as session:
            fresh = session.get(Case, case.id) or case
            events = own_events(session, [case.id])[case.id]
        return appeal_view(fresh, events, config, language)

    def create(raw: Any, user_id: str, language: str) -> tuple[dict[str, Any], bool]:
        draft = validate_body(config, raw, user_id)
        with limiter.lock(user_id):
            # The case this appeal joins (the user's own, or one `recovery scan` opened for this
            # transfer) is returned before the rate limit: joining is not a new appeal.
            with service.db.read() as session:
                existing = find_existing(session, config, draft)
            if existing is not None and existing.user_id == user_id:
                return load_view(existing, language), False
            if existing is None or existing.user_id != user_id:
                limiter.check(user_id)  # a new appeal, or a claim of a case the exchange detected
            case, created = service.submit(draft, Actor(user_id, Role.USER))
        # a detected case held for a shared address, now the appellant's: its decision was made for
        # no one, so it is checked again for them (as a new appeal is)
        claimed = not created and existing is not None and existing.user_id != user_id and case.user_id == user_id
        if created or claimed:
            try:
                checker.check([case.reference or ""], actor=SYSTEM, timeout=settings.check_timeout_seconds)
            except Exception:  # the appeal is stored; the batch re-check will look again
                log.exception("chain check of %s failed", case.reference)
        return load_view(case, language), created

    @app.get("/healthz", response_model=HealthOut, tags=["service"], summary="Liveness",
             responses=_error_responses(422))
    async def healthz(request: Request) -> dict[str, str]:
        check_query(request)
        return {"status": "ok"}

    @app.get("/v1/networks", response_model=NetworksOut, tags=["appeals"], responses=_error_responses(422, 500),
             summary="Networks and assets the form may offer")
    async def get_networks(request: Request, response: Response) -> NetworksOut:
        check_query(request)
        states = network_states.get() if service.db.is_sqlite else await run_in_threadpool(network_states.get)
        language = speak(request, response)
        if not networks_cache or networks_cache[0][0] is not states:
            networks_cache[:] = [(states, {})]  # a new computation of the states: answers are built anew
        built = networks_cache[0][1]
        networks = built.get(language)
        if networks is None:  # built and checked once per computation of the states and language
            networks = built[language] = NetworksOut.model_validate(networks_info(config, states, language))
        # the states are live: a client or cache keeps the answer no longer than they are served here
        response.headers["Cache-Control"] = f"public, max-age={network_states.max_age_seconds()}"
        return networks

    @app.post(
        "/v1/appeals",
        status_code=201,
        response_model=AppealOut,
        tags=["appeals"],
        summary="File an appeal (idempotent per network and transaction)",
        responses={200: {"model": AppealOut, "description": "your existing appeal for this transaction"},
                   201: {"description": "appeal created and checked (or awaiting the chain)"},
                   **_error_responses(400, 401, 413, 415, 422, 429, 500, 503)},
        openapi_extra={"requestBody": {"required": True,
                                       "content": {"application/json": {"schema": request_schema()}}}},
    )
    async def post_appeal(request: Request, response: Response) -> dict[str, Any]:
        user_id = authenticate(request)
        content_type = _content_type(request)
        if not _JSON_TYPES.match(content_type):
            raise ApiError(415, "unsupported_media_type", "send the appeal as JSON (Content-Type: application/json)")
        raw = await _json_body(request)
        language = speak(request, response)
        view, created = await run_in_threadpool(create, raw, user_id, language)
        response.status_code = 201 if created else 200
        response.headers["Location"] = f"/v1/appeals/{view['reference']}"
        return view

    @app.get("/v1/appeals", response_model=AppealListOut, tags=["appeals"], summary="Your appeals, newest first",
             responses=_error_responses(401, 422, 500, 503))
    def list_appeals(
        request: Request,
        response: Response,
        limit: Annotated[int, Query(ge=1, le=settings.list_limit_max)] = 50,
        offset: Annotated[int, Query(ge=0, le=1_000_000)] = 0,
    ) -> dict[str, Any]:
        user_id = authenticate(request, "limit", "offset")
        language = speak(request, response)
        with service.db.read() as session:
            cases, total = list_own(session, user_id, limit=limit, offset=offset)
            events = own_events(session, [c.id for c in cases if c.id is not None])
        return {
            "appeals": [appeal_view(c, events.get(c.id or 0, []), config, language) for c in cases],
            "total": total,
            "limit": limit,
            "offset": offset,
        }

    @app.get("/v1/appeals/{reference}", response_model=AppealOut, tags=["appeals"], summary="One of your appeals",
             responses=_error_responses(401, 404, 422, 500, 503),
             openapi_extra={"parameters": [{"name": "reference", "in": "path", "required": True,
                                            "schema": {"type": "string"}, "example": "RC-000042"}]})
    async def get_appeal(request: Request) -> Response:
        # The path parameter is read from the request (and documented by hand above): FastAPI's
        # parameter machinery cost more than the database read of this, the busiest endpoint.
        user_id = authenticate(request)
        reference = request.path_params["reference"]
        if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
            raise NotFound(f"no appeal {reference!r}")
        language = negotiate(request.headers.get("accept-language"))
        if reader.inline:
            body = reader.own_view(user_id, reference, language, checked_view)
        else:
            body = await asyncio.get_running_loop().run_in_executor(
                reads, reader.own_view, user_id, reference, language, checked_view)
        if body is None:
            raise NotFound(f"no appeal {reference!r}")
        return Response(body, media_type="application/json", headers=_spoken(language))

    def checked_view(case: CaseRecord, events: list[EventRecord], language: str) -> bytes:
        """The appeal checked against the response model (extra fields forbidden, every enum and
        pattern: a corrupt row is a 500, never sent), then the checked view itself encoded (FastAPI's
        generic path would also build a second dict from the model and encode that)."""
        view = appeal_view(case, events, config, language)
        AppealOut.model_validate(view)
        return orjson.dumps(view)

    evidence = EvidenceService(service.db, config, service.clock)

    def ownership_view(own: Ownership) -> dict[str, Any]:
        need = own.requirement
        view = {
            "reference": own.reference,
            "required": own.required,
            "status": own.status,
            "kinds": list(own.kinds),
            "not_offered": need.not_offered if need is not None and "signed_message" not in need.kinds else None,
            "challenge": ({"message": own.challenge.message,
                           "expires_at": own.challenge.expires_at.isoformat().replace("+00:00", "Z")}
                          if own.challenge is not None else None),
            "evidence": [{"id": row.id, "kind": row.kind, "status": row.status,
                          "submitted_at": row.submitted_at.isoformat().replace("+00:00", "Z"),
                          "reason": row.reason if row.status == "rejected" else None,
                          "counts": row.id in own.current}
                         for row in own.evidence],
        }
        OwnershipOut.model_validate(view)
        return view

    def own_reference(request: Request) -> str:
        reference = request.path_params["reference"]
        if not isinstance(reference, str) or not _REFERENCE.fullmatch(reference):
            raise NotFound(f"no appeal {reference!r}")
        return reference

    _ownership_doc = {"parameters": [{"name": "reference", "in": "path", "required": True,
                                      "schema": {"type": "string"}, "example": "RC-000042"}]}

    @app.get("/v1/appeals/{reference}/ownership", response_model=OwnershipOut, tags=["appeals"],
             summary="Whether this appeal needs proof that you sent the deposit, and the message to sign",
             responses=_error_responses(401, 404, 422, 500, 503), openapi_extra=_ownership_doc)
    def get_ownership(request: Request) -> dict[str, Any]:
        user_id = authenticate(request)
        reference = own_reference(request)
        return ownership_view(evidence.ownership(reference, for_user=user_id, issue_challenge=True))

    @app.post(
        "/v1/appeals/{reference}/ownership",
        status_code=201,
        response_model=OwnershipOut,
        tags=["appeals"],
        summary="Prove that you sent the deposit: a signed challenge (JSON) or a withdrawal record (multipart)",
        responses=_error_responses(400, 401, 404, 413, 415, 422, 429, 500, 503),
        openapi_extra={**_ownership_doc, "requestBody": {"required": True, "content": {
            "application/json": {"schema": OwnershipSignedIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["kind", "file"],
                "properties": {"kind": {"type": "string", "enum": ["withdrawal_record"]},
                               "file": {"type": "string", "format": "binary",
                                        "description": "PDF, PNG or JPEG (by content), at most 5 MiB"}}}},
        }}},
    )
    async def post_ownership(request: Request) -> dict[str, Any]:
        user_id = authenticate(request)
        reference = own_reference(request)
        content_type = _content_type(request)
        if _JSON_TYPES.match(content_type):
            raw = await _json_body(request)
            signed = signed_body(raw)
            await run_in_threadpool(give_signature, user_id, reference, signed)
        elif content_type == "multipart/form-data":
            content, declared, name = await document_body(request)
            await run_in_threadpool(give_document, user_id, reference, content, declared, name)
        else:
            raise ApiError(415, "unsupported_media_type",
                           "send a signed_message as JSON or a withdrawal_record as multipart/form-data")
        return await run_in_threadpool(
            lambda: ownership_view(evidence.ownership(reference, for_user=user_id, issue_challenge=True)))

    def signed_body(raw: Any) -> OwnershipSignedIn:
        if not isinstance(raw, dict):
            raise validation_error([FieldError("body", "must be a JSON object")])
        if raw.get("kind") == "withdrawal_record":
            raise validation_error([FieldError("kind", "send a withdrawal_record as multipart/form-data with a file")])
        errors = [FieldError(str(key)[:40], "unknown field; the fields are kind, signature, public_key")
                  for key in raw if key not in ("kind", "signature", "public_key")]
        if raw.get("kind") != "signed_message":
            errors.append(FieldError("kind", "must be signed_message (JSON) or withdrawal_record (multipart)"))
        for key in ("signature", "public_key"):
            value = raw.get(key)
            if key == "signature" and value in (None, ""):
                errors.append(FieldError(key, "is required"))
            elif value is not None and not isinstance(value, str):
                errors.append(FieldError(key, "must be a string"))
            elif isinstance(value, str) and len(value) > 1024:
                errors.append(FieldError(key, "is longer than 1024 characters"))
        if errors:
            raise validation_error(errors)
        return OwnershipSignedIn.model_validate(raw)

    async def document_body(request: Request) -> tuple[bytes, str | None, str | None]:
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException

        try:
            form = await request.form(max_files=1, max_fields=4, max_part_size=64 * 1024)
        except MultiPartException as exc:
            raise ApiError(400, "bad_request", f"the multipart body could not be read: {exc.message}") from None
        try:
            errors = [FieldError(str(key)[:40], "unknown field; the fields are kind, file")
                      for key in form if key not in ("kind", "file")]
            if form.get("kind") != "withdrawal_record":
                errors.append(FieldError("kind", "must be withdrawal_record (a signed_message is sent as JSON)"))
            upload = form.get("file")
            if not isinstance(upload, UploadFile):
                errors.append(FieldError("file", "is required: the withdrawal record (PDF, PNG or JPEG)"))
            if errors:
                raise validation_error(errors)
            assert isinstance(upload, UploadFile)
            content = await upload.read(MAX_DOCUMENT_BYTES + 1)
            return content, upload.content_type, upload.filename
        finally:
            await form.close()

    def give_signature(user_id: str, reference: str, signed: OwnershipSignedIn) -> None:
        with limiter.lock(user_id):
            evidence.ownership(reference, for_user=user_id)  # 404 before counting: not the user's case
            limiter.check_evidence(user_id)
            evidence.submit_signature(reference, user_id, Role.USER, signature=signed.signature,
                                      public_key=signed.public_key)

    def give_document(user_id: str, reference: str, content: bytes, declared: str | None, name: str | None) -> None:
        with limiter.lock(user_id):
            evidence.ownership(reference, for_user=user_id)
            limiter.check_evidence(user_id)
            evidence.submit_document(reference, user_id, Role.USER, content=content, declared_type=declared,
                                     file_name=name)

    @app.post(
        "/v1/appeals/{reference}/replies",
        status_code=201,
        response_model=AppealOut,
        tags=["appeals"],
        summary="Answer the appeal team's question: text (JSON), or text and up to 5 files (multipart)",
        responses=_error_responses(400, 401, 404, 409, 413, 415, 422, 429, 500, 503),
        openapi_extra={**_ownership_doc, "requestBody": {"required": True, "content": {
            "application/json": {"schema": ReplyIn.model_json_schema()},
            "multipart/form-data": {"schema": {
                "type": "object", "required": ["message"],
                "properties": {"message": {"type": "string", "maxLength": MAX_MESSAGE_CHARS},
                               "files": {"type": "array", "maxItems": MAX_ATTACHMENTS,
                                         "items": {"type": "string", "format": "binary"},
                                         "description": "PDF, PNG or JPEG (by content), at most 5 MiB each"}}}},
        }}},
    )
    async def post_reply(request: Request, response: Response) -> dict[str, Any]:
        user_id = authenticate(request)
        language = speak(request, response)
        reference = own_reference(request)
        # before any file is read: another user's case is a 404, one that waits for no answer a 409
        await run_in_threadpool(waiting_for_answer, user_id, reference)
        content_type = _content_type(request)
        files: list[Attachment] = []
        if _JSON_TYPES.match(content_type):
            raw = await _json_body(request)
            if not isinstance(raw, dict):
                raise validation_error([FieldError("body", "must be a JSON object")])
            unknown = [FieldError(str(key)[:40], "unknown field; the field is message (files need multipart)")
                       for key in raw if key != "message"]
            if unknown:
                raise validation_error(unknown)
            message = raw.get("message")
        elif content_type == "multipart/form-data":
            message, files = await reply_body(request)
        else:
            raise ApiError(415, "unsupported_media_type",
                           "send the answer as JSON, or as multipart/form-data with files")
        return await run_in_threadpool(answer, user_id, reference, message, files, language)

    async def reply_body(request: Request) -> tuple[Any, list[Attachment]]:
        from starlette.datastructures import UploadFile
        from starlette.formparsers import MultiPartException

        try:
            form = await request.form(max_files=MAX_ATTACHMENTS, max_fields=8, max_part_size=64 * 1024)
        except MultiPartException as exc:
            raise ApiError(400, "bad_request", f"the multipart body could not be read: {exc.message}") from None
        try:
            errors = [FieldError(str(key)[:40], "unknown field; the fields are message, files")
                      for key in form if key not in ("message", "files")]
            message = form.get("message")
            if not isinstance(message, str):
                errors.append(FieldError("message", "is required (text)"))
            uploads = form.getlist("files")
            if any(not isinstance(upload, UploadFile) for upload in uploads):
                errors.append(FieldError("files", "must be files"))
            if errors:
                raise validation_error(errors)
            files = []
            for upload in uploads:
                assert isinstance(upload, UploadFile)
                content = await upload.read(MAX_DOCUMENT_BYTES + 1)
                files.append(Attachment(content, upload.content_type, upload.filename))
            return message, files
        finally:
            await form.close()

    def users_case(user_id: str, reference: str) -> Case:
        """The user's case ``reference``; another user's is a 404, exactly like a missing one."""
        with service.db.read() as session:
            case = session.exec(select(Case).where(Case.reference == reference, Case.user_id == user_id)).first()
        if case is None:
            raise NotFound(f"no appeal {reference!r}")
        return case

    def waiting_for_answer(user_id: str, reference: str) -> None:
        case = users_case(user_id, reference)
        if case.status not in (CaseStatus.NEEDS_INFO.value, CaseStatus.CLOSED.value):
            raise ApiError(409, "not_waiting_for_an_answer",
                           f"{reference} is not waiting for an answer: it is {case.status}")

    def answer(user_id: str, reference: str, message: Any, files: list[Attachment], language: str) -> dict[str, Any]:
        with limiter.lock(user_id):
            case = users_case(user_id, reference)  # read again under the lock: the version to act on
            limiter.check_replies(user_id)
            try:
                answered = service.provide_info(reference, message, Actor(user_id, Role.USER),
                                                expected_version=case.version, attachments=files)
            except InvalidTransition as exc:
                raise ApiError(409, "not_waiting_for_an_answer",
                               f"{reference} is not waiting for an answer: {exc}") from None
        return load_view(answered, language)

    @app.post(
        "/v1/appeals/{reference}/feedback",
        status_code=201,
        response_model=FeedbackOut,
        tags=["appeals"],
        summary="Rate a finished appeal (a score 1-5 and an optional comment), once",
        responses={409: {"model": ErrorBody, "description": "`not_finished`: the appeal is not finished yet "
                                                            "(credited, refunded, rejected or closed); "
                                                            "`feedback_already_given`: it was already rated"},
                   **_error_responses(400, 401, 404, 413, 415, 422, 429, 500, 503)},
        openapi_extra={**_ownership_doc, "requestBody": {"required": True, "content": {
            "application/json": {"schema": FeedbackIn.model_json_schema()}}}},
    )
    async def post_feedback(request: Request) -> dict[str, Any]:
        user_id = authenticate(request)
        reference = own_reference(request)
        if not _JSON_TYPES.match(_content_type(request)):
            raise ApiError(415, "unsupported_media_type", "send the rating as JSON (Content-Type: application/json)")
        raw = await _json_body(request)
        if not isinstance(raw, dict):
            raise validation_error([FieldError("body", "must be a JSON object")])
        return await run_in_threadpool(rate, user_id, reference, raw)

    def rate(user_id: str, reference: str, raw: dict[str, Any]) -> dict[str, Any]:
        """The rating, in this order: another user's case is a 404 (like a missing one), a case not
        finished or already rated a 409, then the fields (422), then the per-user limit (429)."""
        with limiter.lock(user_id):
            case = users_case(user_id, reference)
            with service.db.read() as session:
                problem = feedback.refusal(session, case)
            if problem is not None:
                raise ApiError(409, problem.code, str(problem))
            feedback.checked(raw)
            limiter.check_feedback(user_id)
            try:
                rated = feedback.give(service, reference, user_id, raw, expected_version=case.version)
            except (feedback.NotFinished, feedback.FeedbackAlreadyGiven) as exc:  # changed meanwhile
                raise ApiError(409, exc.code, str(exc)) from None
        view = {"reference": rated.reference, "score": rated.score, "comment": rated.comment,
                "given_at": rated.given_at.isoformat().replace("+00:00", "Z")}
        FeedbackOut.model_validate(view)
        return view

    def openapi() -> dict[str, Any]:
        """The generated schema plus the bearer scheme on the operations that need a token."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description,
                                 routes=app.routes)
            schema.setdefault("components", {})["securitySchemes"] = {"bearerAuth": {
                "type": "http", "scheme": "bearer", "bearerFormat": "JWT",
                "description": "A JWT signed by the exchange's gateway; `sub` is the user id, `exp` is required.",
            }}
            for path, operations in schema["paths"].items():
                if path.startswith("/v1/appeals"):
                    for operation in operations.values():
                        operation["security"] = [{"bearerAuth": []}]
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


def create_app_from_env() -> FastAPI:
    """The application as ``recovery api`` serves it: settings from the environment."""
    from app.context import app_context

    context = app_context()
    app = create_app(context.cases, ApiSettings(), anchors=anchor_settings(context.settings.var_dir))
    freeze_startup()
    return app

