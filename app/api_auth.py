"""Bearer-token authentication of the appeal form's users (PyJWT).

The exchange's gateway signs a JWT for the logged-in user: HS256 with a shared secret, or RS256 /
ES256 with its private key (we hold the public key: RSA of 2048 bits or more, or EC P-256). The
user id is the ``sub`` claim; ``exp`` and ``iat`` are required and the token may live at most
``RECOVERY_API_JWT_MAX_TTL`` seconds (``exp - iat``, default 24 h): a token minted for a hundred
years is refused. ``iss`` and ``aud`` are required and checked when configured. The algorithm is
chosen by which key is configured, never by the token alone: a token with ``alg: none``, an
algorithm we hold no key for, or a wrong signature is refused with 401.
"""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable
from threading import Lock
from typing import Any

import jwt
from cryptography.hazmat.primitives.asymmetric.ec import SECP256R1, EllipticCurvePublicKey
from cryptography.hazmat.primitives.asymmetric.rsa import RSAPublicKey
from cryptography.hazmat.primitives.serialization import load_pem_public_key

from app.api_errors import unauthorized
from app.api_settings import ApiConfigError, ApiSettings
from recovery.intake import USER_ID

MAX_TOKEN_LENGTH = 8192
#: verified tokens remembered (token -> user id, expiry), so a form polling with one token is not re-verified
CACHE_SIZE = 10_000


class TokenVerifier:
    """Verifies a bearer token and returns the user id it was issued for."""

    def __init__(self, settings: ApiSettings, *, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._keys: dict[str, Any] = {}
        if settings.jwt_secret is not None:
            self._keys["HS256"] = settings.jwt_secret.get_secret_value().encode()
        pem = settings.public_key_pem()
        if pem:
            try:
                key = load_pem_public_key(pem.encode("ascii"))
            except (ValueError, TypeError, UnicodeEncodeError) as exc:
                raise ApiConfigError(f"the RS256 public key is not a PEM public key: {exc}") from None
            if isinstance(key, RSAPublicKey):
                if key.key_size < 2048:
                    raise ApiConfigError(f"the RS256 public key has {key.key_size} bits; at least 2048 are required")
                self._keys["RS256"] = key
            elif isinstance(key, EllipticCurvePublicKey) and isinstance(key.curve, SECP256R1):
                self._keys["ES256"] = key
            else:
                raise ApiConfigError("the public key must be RSA (RS256, 2048 bits or more) or EC P-256 (ES256)")
        if not self._keys:
            raise ApiConfigError(
                "no key to verify user tokens: set RECOVERY_API_JWT_SECRET (HS256) or "
                "RECOVERY_API_JWT_PUBLIC_KEY / RECOVERY_API_JWT_PUBLIC_KEY_FILE (RS256)"
            )
        self._issuer = settings.jwt_issuer
        self._audience = settings.jwt_audience
        self._leeway = settings.jwt_leeway_seconds
        self._max_ttl = settings.jwt_max_ttl
        self._require = ["exp", "iat", "sub"] + (["iss"] if self._issuer else []) + (["aud"] if self._audience else [])
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()
        self._lock = Lock()

    @property
    def algorithms(self) -> tuple[str, ...]:
        return tuple(self._keys)

    def user_id(self, authorization: str | None) -> str:
        """The ``sub`` of a valid ``Authorization: Bearer <JWT>`` header, else an ApiError (401)."""
        if not authorization:
            raise unauthorized("missing_token", "an Authorization: Bearer <token> header is required")
        scheme, _, token = authorization.partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise unauthorized("missing_token", "the Authorization header must be 'Bearer <token>'")
        return self.verify(token)

    def verify(self, token: str) -> str:
        """The token's user id. A token verified before is answered from memory until its ``exp``."""
        with self._lock:
            known = self._verified.get(token)
            if known is not None:
                self._verified.move_to_end(token)
        if known is not None and self._clock() < known[1]:
            return known[0]
        subject, expires = self._verify(token)
        with self._lock:
            self._verified[token] = (subject, expires)
            if len(self._verified) > CACHE_SIZE:
                self._verified.popitem(last=False)
        return subject

    def _verify(self, token: str) -> tuple[str, float]:
        if len(token) > MAX_TOKEN_LENGTH:
            raise unauthorized("invalid_token", "the token is too long")
        try:
            header = jwt.get_unverified_header(token)
        except jwt.PyJWTError:
            raise unauthorized("invalid_token", "the token is not a well-formed JWT") from None
        algorithm = header.get("alg")
        key = self._keys.get(algorithm) if isinstance(algorithm, str) else None
        if key is None:
            raise unauthorized("invalid_token", f"tokens must be signed with {' or '.join(self._keys)}")
        try:
            claims = jwt.decode(
                token,
                key,
                algorithms=[str(algorithm)],
                issuer=self._issuer,
                audience=self._audience,
                leeway=self._leeway,
                options={"require": self._require, "verify_aud": self._audience is not None},
            )
        except jwt.ExpiredSignatureError:
            raise unauthorized("token_expired", "the token has expired") from None
        except jwt.MissingRequiredClaimError as exc:
            raise unauthorized("invalid_token", f"the token has no '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise unauthorized("invalid_token", "the token's signature does not verify") from None
        except jwt.PyJWTError as exc:
            raise unauthorized("invalid_token", f"the token is not valid: {_short(exc)}") from None
        subject = claims.get("sub")
        if not isinstance(subject, str) or not USER_ID.match(subject):
            raise unauthorized("invalid_token", "the token's subject is not a valid user id")
        lifetime = float(claims["exp"]) - float(claims["iat"])
        if lifetime > self._max_ttl:
            raise unauthorized("invalid_token", f"the token lives {int(lifetime)} s; at most {self._max_ttl} s "
                                                "(exp - iat) are accepted")
        expires = float(claims["exp"]) + self._leeway
        if expires <= self._clock():
            raise unauthorized("token_expired", "the token has expired")
        return subject, expires


def _short(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text[:120]

