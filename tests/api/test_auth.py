"""Bearer-token authentication: HS256 and RS256, expired, forged, ``alg: none``, algorithm confusion."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jwt
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.api_auth import TokenVerifier
from app.api_errors import ApiError
from app.api_settings import ApiConfigError, ApiSettings
from recovery.config import Config
from recovery.db import Database
from recovery.services import CaseService
from tests.api.conftest import SECRET, TestClient, make_client, token


def _rsa() -> tuple[bytes, str]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    return private, public


PRIVATE_KEY, PUBLIC_KEY = _rsa()
OTHER_PRIVATE_KEY, _ = _rsa()


@pytest.fixture
def client(sqlite_db: Database, default_config: Config) -> Iterator[TestClient]:
    with make_client(CaseService(sqlite_db, default_config), ApiSettings(jwt_secret=SECRET)) as test_client:
        yield test_client


@pytest.fixture
def rs_client(sqlite_db: Database, default_config: Config, tmp_path: Path) -> Iterator[TestClient]:
    key_file = tmp_path / "gateway.pub.pem"
    key_file.write_text(PUBLIC_KEY)
    settings = ApiSettings(jwt_public_key_file=key_file)
    with make_client(CaseService(sqlite_db, default_config), settings) as test_client:
        yield test_client


def fresh(**changes: Any) -> dict[str, Any]:
    """Claims of a token issued now for alice, valid five minutes."""
    now = int(time.time())
    return {"sub": "alice", "iat": now, "exp": now + 300, **changes}


def unsigned(claims: dict[str, Any], header: dict[str, Any] | None = None) -> str:
    def part(data: dict[str, Any]) -> str:
        return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()

    return f"{part(header or {'alg': 'none', 'typ': 'JWT'})}.{part(claims)}."


def call(client: TestClient, authorization: str | None) -> Any:
    headers = {"Authorization": authorization} if authorization is not None else {}
    return client.get("/v1/appeals", headers=headers)


def assert_401(response: Any, code: str) -> None:
    assert response.status_code == 401, response.text
    assert response.json()["code"] == code
    assert response.headers["www-authenticate"].startswith("Bearer")


def test_a_valid_hs256_token_identifies_the_user(client: TestClient) -> None:
    response = call(client, f"Bearer {token('alice')}")
    assert response.status_code == 200
    assert response.json()["total"] == 0


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer   ", "Basic YWxpY2U6cHc=", token("alice")])
def test_missing_or_malformed_authorization_is_401(client: TestClient, authorization: str | None) -> None:
    assert_401(call(client, authorization), "missing_token")


def test_an_expired_token_is_401_token_expired(client: TestClient) -> None:
    assert_401(call(client, f"Bearer {token('alice', expires_in=-5)}"), "token_expired")


@pytest.mark.parametrize(
    "bad_token",
    [
        pytest.param(token("alice", secret="another-secret-of-at-least-32-bytes!!"), id="forged-wrong-secret"),
        pytest.param(unsigned(fresh()), id="alg-none"),
        pytest.param(unsigned(fresh(), {"alg": "None", "typ": "JWT"}),
                     id="alg-None"),
        pytest.param(token("alice", expires_in=300, exp=None), id="no-exp"),
        pytest.param(token(None), id="no-sub"),
        pytest.param(token("alice", algorithm="HS512"), id="unsupported-alg"),
        pytest.param(token("alice  with spaces"), id="sub-not-a-user-id"),
        pytest.param(jwt.encode(fresh(), PRIVATE_KEY, algorithm="RS256"),
                     id="rs256-without-a-public-key"),
        pytest.param("not.a.jwt", id="garbage"),
        pytest.param("x" * 9000, id="oversized"),
    ],
)
def test_invalid_tokens_are_401(client: TestClient, bad_token: str) -> None:
    assert_401(call(client, f"Bearer {bad_token}"), "invalid_token")


def test_tampered_claims_do_not_verify(client: TestClient) -> None:
    header, _claims, signature = token("alice").split(".")
    forged = unsigned({"sub": "bob", "exp": int(time.time()) + 300}).split(".")[1]
    assert_401(call(client, f"Bearer {header}.{forged}.{signature}"), "invalid_token")


def test_a_non_string_sub_is_refused(client: TestClient) -> None:
    numeric = jwt.encode(fresh(sub=42), SECRET, algorithm="HS256")
    assert call(client, f"Bearer {numeric}").status_code == 401


def test_rs256_with_the_configured_public_key(rs_client: TestClient) -> None:
    good = jwt.encode(fresh(), PRIVATE_KEY, algorithm="RS256")
    other = jwt.encode(fresh(), OTHER_PRIVATE_KEY, algorithm="RS256")
    # Algorithm confusion: an HS256 token "signed" with the public key as the HMAC secret.
    signing_input = unsigned(fresh(), {"alg": "HS256", "typ": "JWT"})[:-1]
    mac = hmac.new(PUBLIC_KEY.encode(), signing_input.encode(), hashlib.sha256).digest()
    confused = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()

    assert call(rs_client, f"Bearer {good}").status_code == 200
    assert_401(call(rs_client, f"Bearer {other}"), "invalid_token")
    assert_401(call(rs_client, f"Bearer {confused}"), "invalid_token")
    assert_401(call(rs_client, f"Bearer {token('alice')}"), "invalid_token")  # HS256: no secret configured


def test_issuer_and_audience_are_enforced_when_configured(sqlite_db: Database, default_config: Config) -> None:
    settings = ApiSettings(jwt_secret=SECRET, jwt_issuer="exchange-gateway", jwt_audience="appeals")
    with make_client(CaseService(sqlite_db, default_config), settings) as client:
        right = token("alice", iss="exchange-gateway", aud="appeals")
        assert call(client, f"Bearer {right}").status_code == 200
        assert_401(call(client, f"Bearer {token('alice', iss='elsewhere', aud='appeals')}"), "invalid_token")
        assert_401(call(client, f"Bearer {token('alice', iss='exchange-gateway')}"), "invalid_token")


def test_the_api_refuses_to_start_without_a_key_or_with_a_weak_one() -> None:
    with pytest.raises(ApiConfigError, match="RECOVERY_API_JWT_SECRET"):
        TokenVerifier(ApiSettings(jwt_secret=None, jwt_public_key=None))
    with pytest.raises(ValueError, match="at least 32 bytes"):
        ApiSettings(jwt_secret="short")
    with pytest.raises(ApiConfigError, match="not a PEM public key"):
        TokenVerifier(ApiSettings(jwt_public_key="-----BEGIN PUBLIC KEY-----\nnope\n-----END PUBLIC KEY-----\n"))


def test_a_remembered_token_is_refused_once_it_expires() -> None:
    now = [time.time()]
    verifier = TokenVerifier(ApiSettings(jwt_secret=SECRET), clock=lambda: now[0])
    short = token("alice", expires_in=60)

    assert verifier.user_id(f"Bearer {short}") == "alice"
    assert verifier.user_id(f"Bearer {short}") == "alice"  # answered from memory
    now[0] += 120
    with pytest.raises(ApiError) as refused:
        verifier.user_id(f"Bearer {short}")
    assert (refused.value.status, refused.value.code) == (401, "token_expired")


def test_public_endpoints_need_no_token(client: TestClient) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/v1/networks").status_code == 200
    assert client.get("/openapi.json").status_code == 200


def test_a_token_without_iat_or_living_too_long_is_refused(client: TestClient) -> None:
    now = int(time.time())
    no_iat = jwt.encode({"sub": "alice", "exp": now + 300}, SECRET, algorithm="HS256")
    century = jwt.encode({"sub": "alice", "iat": now, "exp": now + 100 * 365 * 86_400}, SECRET, algorithm="HS256")
    backdated = jwt.encode({"sub": "alice", "iat": now - 2 * 86_400, "exp": now + 300}, SECRET, algorithm="HS256")
    day = jwt.encode({"sub": "alice", "iat": now, "exp": now + 86_400}, SECRET, algorithm="HS256")
    assert_401(call(client, f"Bearer {no_iat}"), "invalid_token")
    assert "'iat'" in call(client, f"Bearer {no_iat}").json()["message"]
    assert_401(call(client, f"Bearer {century}"), "invalid_token")
    assert "at most 86400 s" in call(client, f"Bearer {century}").json()["message"]
    assert_401(call(client, f"Bearer {backdated}"), "invalid_token")  # exp - iat is what counts
    assert call(client, f"Bearer {day}").status_code == 200


def test_the_maximum_lifetime_is_configurable(sqlite_db: Database, default_config: Config) -> None:
    now = int(time.time())
    hour = jwt.encode({"sub": "alice", "iat": now, "exp": now + 3600}, SECRET, algorithm="HS256")
    with make_client(CaseService(sqlite_db, default_config), ApiSettings(jwt_secret=SECRET, jwt_max_ttl=600)) as c:
        assert_401(call(c, f"Bearer {hour}"), "invalid_token")


def test_es256_with_the_configured_public_key(sqlite_db: Database, default_config: Config) -> None:
    private = ec.generate_private_key(ec.SECP256R1())
    public = private.public_key().public_bytes(serialization.Encoding.PEM,
                                               serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    other = ec.generate_private_key(ec.SECP256R1())
    now = int(time.time())
    claims = {"sub": "alice", "iat": now, "exp": now + 300}
    with make_client(CaseService(sqlite_db, default_config), ApiSettings(jwt_public_key=public)) as client:
        assert call(client, f"Bearer {jwt.encode(claims, private, algorithm='ES256')}").status_code == 200
        assert_401(call(client, f"Bearer {jwt.encode(claims, other, algorithm='ES256')}"), "invalid_token")
        assert_401(call(client, f"Bearer {token('alice')}"), "invalid_token")  # no HS256 secret configured
    with pytest.raises(ApiConfigError, match="P-256"):
        weak = ec.generate_private_key(ec.SECP384R1()).public_key()
        TokenVerifier(ApiSettings(jwt_public_key=weak.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()))
