"""A family-agnostic JSON client for chain nodes: JSON-RPC (single and batch) and REST GET/POST,
with retries, failover over a network's ``rpc_urls`` and a cooldown for URLs that misbehave.

Every adapter (EVM, TRON, XRPL, Stellar, Solana, Bitcoin, Cosmos) talks to its nodes through a
:class:`Transport`. The rules:

- A *transient* failure of one URL (timeout, connection error, HTTP 429 or 5xx, 401/403, a body
  that is not the JSON we asked for, a rate-limit error object, or an answer the caller's
  ``validate`` hook rejects, e.g. "this node is behind") puts that URL in cooldown and the request
  moves on to the next URL. URLs in cooldown are tried last, not skipped.
- One pass over all URLs is one attempt; tenacity repeats the pass ``attempts`` times with short,
  bounded, jittered waits (a 429's ``Retry-After`` is honoured up to ``wait_max``).
- When every attempt failed, :class:`~chains.base.ChainUnavailable` is raised: "try again later",
  never "not found".
- A JSON-RPC error object that is not transient (e.g. "execution reverted", "method not found") is
  the node's real answer: :meth:`Transport.call` raises :class:`JsonRpcError` and
  :meth:`Transport.batch` returns it in place of that call's result.
- A batch the node refuses as a whole (HTTP 413, a single error object instead of a list) is
  split in halves down to single calls; replies missing from a batch are asked for again.
"""

from __future__ import annotations

import itertools
import json
import logging
import re
import threading
import time
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, Final, TypeVar

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.wait import wait_exponential_jitter

from chains.base import ChainError, ChainUnavailable
from chains.network import Network

__all__ = [
    "BatchRejected",
    "JsonRpcError",
    "Params",
    "RpcCall",
    "Transport",
    "TransportOptions",
    "UnusableAnswer",
    "UrlState",
]

log = logging.getLogger(__name__)

T = TypeVar("T")
Params = Sequence[Any] | Mapping[str, Any]
#: one JSON-RPC call: (method, params)
RpcCall = tuple[str, Params]
Validator = Callable[[Any], None]

_TRANSIENT_HTTP: Final = frozenset({401, 403, 408, 425, 429})
_RATE_LIMIT_CODES: Final = frozenset({429, -32029})
_RATE_LIMIT_TEXT: Final = re.compile(
    r"rate.?limit|too many requests|request limit|exceeded .*(quota|capacity|rate)|capacity exceeded",
    re.IGNORECASE,
)
_BATCH_TEXT: Final = re.compile(r"batch", re.IGNORECASE)


class JsonRpcError(ChainError):
    """A JSON-RPC error object the node returned for one call (its real answer, not an outage)."""

    def __init__(self, code: int | None, message: str, data: Any = None) -> None:
        self.code = code
        self.message = message
        self.data = data
        super().__init__(f"JSON-RPC error {code}: {message}")

    @property
    def is_rate_limit(self) -> bool:
        return self.code in _RATE_LIMIT_CODES or bool(_RATE_LIMIT_TEXT.search(self.message))

    @classmethod
    def from_object(cls, error: Any) -> JsonRpcError:
        if not isinstance(error, Mapping):
            return cls(None, f"malformed error object: {error!r:.200}")
        code = error.get("code")
        return cls(
            code if isinstance(code, int) and not isinstance(code, bool) else None,
            str(error.get("message", "")),
            error.get("data"),
        )


class BatchRejected(ChainError):
    """The node refused a JSON-RPC batch as a whole (too large, or batches not supported)."""


class UnusableAnswer(Exception):
    """Raised by a ``validate`` hook (or internally) when one URL's answer cannot be used:
    that URL is put in cooldown and the next one is tried."""


class _Transient(Exception):
    def __init__(self, url: str, reason: str, retry_after: float | None = None) -> None:
        self.url = url
        self.reason = reason
        self.retry_after = retry_after
        super().__init__(f"{url}: {reason}")


class _AllFailed(Exception):
    def __init__(self, failures: list[_Transient]) -> None:
        self.failures = failures
        retry_afters = [f.retry_after for f in failures if f.retry_after is not None]
        self.retry_after = max(retry_afters) if retry_afters else None
        super().__init__("; ".join(str(f) for f in failures) or "no URL configured")


@dataclass(frozen=True, slots=True)
class TransportOptions:
    """Timeouts and retry policy. ``from_network`` reads the optional network keys
    ``timeout_seconds``, ``connect_timeout_seconds``, ``retry_attempts``, ``cooldown_seconds``,
    ``retry_wait_max_seconds`` and ``max_batch_size`` (kept by the config loader as extras)."""

    timeout: float = 10.0
    connect_timeout: float = 3.0
    #: passes over the whole URL list before giving up
    attempts: int = 3
    #: seconds a misbehaving URL is tried last
    cooldown: float = 30.0
    wait_initial: float = 0.05
    wait_max: float = 1.0
    #: the largest batch sent in one HTTP request (larger ones are chunked)
    max_batch_size: int = 500

    def __post_init__(self) -> None:
        if self.timeout <= 0 or self.connect_timeout <= 0:
            raise ValueError("timeouts must be positive")
        if self.attempts < 1 or self.max_batch_size < 1:
            raise ValueError("attempts and max_batch_size must be at least 1")
        if self.cooldown < 0 or self.wait_initial < 0 or self.wait_max < 0:
            raise ValueError("cooldown and waits cannot be negative")

    @classmethod
    def from_network(cls, network: Network) -> TransportOptions:
        extra = network.model_extra or {}
        keys = {
            "timeout": "timeout_seconds",
            "connect_timeout": "connect_timeout_seconds",
            "attempts": "retry_attempts",
            "cooldown": "cooldown_seconds",
            "wait_max": "retry_wait_max_seconds",
            "max_batch_size": "max_batch_size",
        }
        values: dict[str, Any] = {}
        for attr, key in keys.items():
            if key in extra:
                raw = extra[key]
                # the configuration loader reads TOML floats as Decimal (money is never a float)
                if isinstance(raw, bool) or not isinstance(raw, int | float | Decimal | str):
                    raise ValueError(f"network {network.name}: {key} must be a number")
                values[attr] = int(raw) if attr in ("attempts", "max_batch_size") else float(raw)
        return cls(**values)


def positive_option(extra: Mapping[str, Any], key: str, default: int, network: str) -> int:
    """An integer network key that must be at least 1 (batch sizes, concurrency, block ranges)."""
    value = extra.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"network {network}: {key} must be an integer >= 1")
    return value


@dataclass(frozen=True, slots=True)
class UrlState:
    url: str
    cooling_for: float
    failures: int
    last_error: str | None


class Transport:
    """JSON over HTTP to one network's nodes, with failover. Thread-safe.

    ``name`` (the network name) appears in every :class:`ChainUnavailable`.
    """

    def __init__(
        self,
        name: str,
        urls: Sequence[str],
        options: TransportOptions | None = None,
        *,
        headers: Mapping[str, str] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not urls:
            raise ValueError(f"{name}: at least one URL is required")
        self.name = name
        self.urls: tuple[str, ...] = tuple(urls)
        self.options = options or TransportOptions()
        self._headers = {"Content-Type": "application/json", "Accept": "application/json", **(headers or {})}
        self._clock = clock
        self._lock = threading.Lock()
        self._cool_until: dict[str, float] = dict.fromkeys(self.urls, 0.0)
        self._failures: dict[str, int] = dict.fromkeys(self.urls, 0)
        self._last_error: dict[str, str | None] = dict.fromkeys(self.urls)
        self._ids = itertools.count(1)
        self._local = threading.local()
        self._batch_limit = self.options.max_batch_size

    @classmethod
    def for_network(cls, network: Network, **kwargs: Any) -> Transport:
        return cls(network.name, network.rpc_urls, TransportOptions.from_network(network), **kwargs)

    # ----------------------------------------------------------------- public API

    def call(self, method: str, params: Params = (), *, validate: Validator | None = None) -> Any:
        """One JSON-RPC call; returns ``result``. Raises :class:`JsonRpcError` for the node's
        error object and :class:`ChainUnavailable` when no URL answered usably."""
        payload = self._envelope(method, params)

        def attempt(url: str) -> Any:
            body = self._post(url, payload)
            if not isinstance(body, Mapping) or body.get("jsonrpc") != "2.0":
                raise _Transient(url, f"not a JSON-RPC 2.0 response: {_clip(body)}")
            if body.get("id") != payload["id"]:
                raise _Transient(url, f"reply id {body.get('id')!r} does not match {payload['id']!r}")
            if "error" in body and body["error"] is not None:
                error = JsonRpcError.from_object(body["error"])
                if error.is_rate_limit:
                    raise _Transient(url, f"rate limited: {error.message}")
                return error
            if "result" not in body:
                raise _Transient(url, f"JSON-RPC response without result or error: {_clip(body)}")
            result = body["result"]
            self._validate(url, validate, result)
            return result

        answer = self._with_failover(attempt)
        if isinstance(answer, JsonRpcError):
            raise answer
        return answer

    def batch(self, calls: Sequence[RpcCall], *, validate: Validator | None = None) -> list[Any]:
        """Many JSON-RPC calls, in as few HTTP requests as the node accepts.

        Returns one entry per call, in order: the call's ``result``, or a :class:`JsonRpcError`
        instance for a call the node answered with an error. ``validate`` sees each chunk's list.
        """
        results: list[Any] = []
        start = 0
        while start < len(calls):
            size = self._batch_limit
            chunk = calls[start : start + size]
            results.extend(self._batch_chunk(list(chunk), validate))
            start += len(chunk)
        return results

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        not_found: Collection[int] = (),
        validate: Validator | None = None,
    ) -> Any:
        """GET ``<url><path>`` and return its JSON; ``None`` for a status listed in ``not_found``
        (REST APIs answer 404 for an unknown transaction)."""

        def attempt(url: str) -> Any:
            try:
                body = self._request("GET", _join(url, path), params=params, not_found=not_found)
            except _Transient as failure:  # a failure belongs to the configured URL, not to the path
                raise _Transient(url, failure.reason, failure.retry_after) from failure
            self._validate(url, validate, body)
            return body

        return self._with_failover(attempt)

    def post_json(
        self,
        path: str,
        body: Any,
        *,
        not_found: Collection[int] = (),
        validate: Validator | None = None,
    ) -> Any:
        """POST a JSON body to ``<url><path>`` and return the JSON answer (REST families)."""

        def attempt(url: str) -> Any:
            try:
                answer = self._request("POST", _join(url, path), json_body=body, not_found=not_found)
            except _Transient as failure:  # a failure belongs to the configured URL, not to the path
                raise _Transient(url, failure.reason, failure.retry_after) from failure
            self._validate(url, validate, answer)
            return answer

        return self._with_failover(attempt)

    def state(self) -> list[UrlState]:
        """Each URL's cooldown and failure count, for status pages and tests."""
        now = self._clock()
        with self._lock:
            return [
                UrlState(u, max(0.0, self._cool_until[u] - now), self._failures[u], self._last_error[u])
                for u in self.urls
            ]

    def reset(self) -> None:
        """Forget cooldowns and the learned batch limit."""
        with self._lock:
            for url in self.urls:
                self._cool_until[url] = 0.0
                self._failures[url] = 0
                self._last_error[url] = None
            self._batch_limit = self.options.max_batch_size

    # ----------------------------------------------------------------- batches

    def _batch_chunk(self, calls: list[RpcCall], validate: Validator | None) -> list[Any]:
        if not calls:
            return []
        if len(calls) == 1 and self._batch_limit == 1:
            return [self._single_as_result(calls[0], validate)]
        try:
            replies = self._send_batch(calls, validate)
        except BatchRejected:
            if len(calls) == 1:
                return [self._single_as_result(calls[0], validate)]
            half = len(calls) // 2
            with self._lock:
                self._batch_limit = max(1, min(self._batch_limit, half))
            log.info("%s: batch of %d refused; retrying in batches of %d", self.name, len(calls), half)
            return self._batch_chunk(calls[:half], validate) + self._batch_chunk(calls[half:], validate)
        missing = [i for i, reply in enumerate(replies) if reply is _MISSING]
        if missing:
            if len(missing) == len(calls):
                raise ChainUnavailable(self.name, "batch answered with no usable reply")
            again = self._batch_chunk([calls[i] for i in missing], validate)
            for i, reply in zip(missing, again, strict=True):
                replies[i] = reply
        return replies

    def _single_as_result(self, call: RpcCall, validate: Validator | None) -> Any:
        try:
            return self.call(call[0], call[1], validate=None if validate is None else _as_list(validate))
        except JsonRpcError as error:
            return error

    def _send_batch(self, calls: list[RpcCall], validate: Validator | None) -> list[Any]:
        payload = [self._envelope(method, params) for method, params in calls]
        ids = {p["id"]: position for position, p in enumerate(payload)}

        def attempt(url: str) -> list[Any]:
            body = self._post(url, payload, batch=True)
            if isinstance(body, Mapping):
                # one error object for the whole batch: too large, or batches unsupported
                error = JsonRpcError.from_object(body.get("error"))
                if error.is_rate_limit:
                    raise _Transient(url, f"rate limited: {error.message}")
                if "error" in body and (_BATCH_TEXT.search(error.message) or error.code in (-32600, -32700)):
                    raise BatchRejected(f"{url}: {error.message}")
                raise _Transient(url, f"batch answered with an object: {_clip(body)}")
            if not isinstance(body, list):
                raise _Transient(url, f"batch answer is not a list: {_clip(body)}")
            replies: list[Any] = [_MISSING] * len(payload)
            for item in body:
                if not isinstance(item, Mapping) or item.get("jsonrpc") != "2.0":
                    raise _Transient(url, f"malformed batch item: {_clip(item)}")
                position = ids.get(item.get("id"))
                if position is None:
                    if item.get("id") is None and "error" in item:
                        error = JsonRpcError.from_object(item["error"])
                        if error.is_rate_limit:
                            raise _Transient(url, f"rate limited: {error.message}")
                        raise BatchRejected(f"{url}: {error.message}")
                    raise _Transient(url, f"batch reply with unknown id {item.get('id')!r}")
                if item.get("error") is not None:
                    error = JsonRpcError.from_object(item["error"])
                    if error.is_rate_limit:
                        raise _Transient(url, f"rate limited: {error.message}")
                    replies[position] = error
                elif "result" in item:
                    replies[position] = item["result"]
                else:
                    raise _Transient(url, f"batch item without result or error: {_clip(item)}")
            missing = sum(1 for reply in replies if reply is _MISSING)
            if payload and missing == len(payload):
                raise _Transient(url, f"batch answered with no reply to any call: {_clip(body)}")
            if not missing:  # with replies missing, they are asked for again and checked after
                self._validate(url, validate, replies)
            return replies

        return self._with_failover(attempt)

    # ----------------------------------------------------------------- HTTP

    def _envelope(self, method: str, params: Params) -> dict[str, Any]:
        return {
            "jsonrpc": "2.0",
            "id": next(self._ids),
            "method": method,
            "params": params if isinstance(params, Mapping) else list(params),
        }

    def _session(self) -> requests.Session:
        session: requests.Session | None = getattr(self._local, "session", None)
        if session is None:
            session = requests.Session()
            session.headers.update(self._headers)
            self._local.session = session
        return session

    def _post(self, url: str, payload: Any, *, batch: bool = False) -> Any:
        return self._request("POST", url, json_body=payload, batch=batch)

    def _request(
        self,
        verb: str,
        url: str,
        *,
        json_body: Any = None,
        params: Mapping[str, Any] | None = None,
        not_found: Collection[int] = (),
        batch: bool = False,
    ) -> Any:
        data = None if json_body is None else json.dumps(json_body, separators=(",", ":"))
        try:
            response = self._session().request(
                verb,
                url,
                data=data,
                params=params,
                timeout=(self.options.connect_timeout, self.options.timeout),
            )
        except requests.Timeout as exc:
            raise _Transient(url, f"timeout ({type(exc).__name__})") from exc
        except requests.RequestException as exc:
            raise _Transient(url, f"connection error ({type(exc).__name__}: {_clip(str(exc))})") from exc
        status = response.status_code
        if status in not_found:
            return None
        if batch and status == 413:
            raise BatchRejected(f"{url}: HTTP 413 (batch too large)")
        if status in _TRANSIENT_HTTP or status >= 500:
            raise _Transient(url, f"HTTP {status}", _retry_after(response))
        try:
            body = response.json()
        except ValueError:
            raise _Transient(url, f"HTTP {status} with a body that is not JSON: {_clip(response.text)}") from None
        if status >= 400 and not (isinstance(body, Mapping) and "error" in body):
            raise _Transient(url, f"HTTP {status}: {_clip(body)}")
        return body

    def _validate(self, url: str, validate: Validator | None, value: Any) -> None:
        if validate is None:
            return
        try:
            validate(value)
        except UnusableAnswer as exc:
            raise _Transient(url, f"unusable answer: {exc}") from exc

    # ----------------------------------------------------------------- failover

    def _ordered_urls(self) -> list[str]:
        now = self._clock()
        with self._lock:
            healthy = [u for u in self.urls if self._cool_until[u] <= now]
            cooling = sorted((u for u in self.urls if self._cool_until[u] > now), key=self._cool_until.__getitem__)
        return healthy + cooling

    def _mark_bad(self, failure: _Transient) -> None:
        with self._lock:
            self._cool_until[failure.url] = self._clock() + self.options.cooldown
            self._failures[failure.url] += 1
            self._last_error[failure.url] = failure.reason
        log.warning("%s: %s; trying the next URL", self.name, failure)

    def _mark_good(self, url: str) -> None:
        with self._lock:
            self._failures[url] = 0
            self._cool_until[url] = 0.0

    def _one_pass(self, attempt: Callable[[str], T]) -> T:
        failures: list[_Transient] = []
        for url in self._ordered_urls():
            try:
                result = attempt(url)
            except _Transient as failure:
                self._mark_bad(failure)
                failures.append(failure)
                continue
            if failures or self._failures.get(url):
                self._mark_good(url)
            return result
        raise _AllFailed(failures)

    def _wait(self, state: RetryCallState) -> float:
        base = wait_exponential_jitter(
            multiplier=self.options.wait_initial, jitter=self.options.wait_initial, max=self.options.wait_max
        )(state)
        outcome = state.outcome
        exc = outcome.exception() if outcome is not None else None
        if isinstance(exc, _AllFailed) and exc.retry_after is not None:
            return min(max(base, exc.retry_after), self.options.wait_max)
        return min(base, self.options.wait_max)

    def _with_failover(self, attempt: Callable[[str], T]) -> T:
        retrying = Retrying(
            stop=stop_after_attempt(self.options.attempts),
            wait=self._wait,
            retry=retry_if_exception_type(_AllFailed),
            reraise=True,
        )
        try:
            for retry in retrying:
                with retry:
                    return self._one_pass(attempt)
        except _AllFailed as exc:
            raise ChainUnavailable(self.name, f"all {len(self.urls)} URL(s) failed: {exc}") from exc
        raise AssertionError("unreachable")  # pragma: no cover


class _Missing:
    def __repr__(self) -> str:
        return "<missing reply>"


_MISSING: Final = _Missing()


def _as_list(validate: Validator) -> Validator:
    """Adapt a batch validator (which sees a list) to one single call's result."""
    return lambda result: validate([result])


def _join(url: str, path: str) -> str:
    if not path:
        return url
    return url.rstrip("/") + "/" + path.lstrip("/")


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _clip(value: Any, limit: int = 160) -> str:
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= limit else text[:limit] + "..."
