"""``GET``/``POST /v1/appeals/{reference}/ownership`` over a real database (SQLite and PostgreSQL).

The deposits are the recorded XRP Ledger payment to a shared address under a tag nobody holds
(the replay server) and, for a signature by the sender, a USDT transfer on anvil from a key made
here with eth_account to an exchange wallet. Keys are generated in the tests.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from eth_account import Account
from xrpl.core import keypairs

from app.api_settings import ApiSettings
from app.demo.chainworld import impersonate
from recovery.config import Config
from recovery.db import Database
from recovery.errors import InvalidTransition
from recovery.models import DepositAddress
from recovery.services import Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import SECRET, TestClient, bearer, make_client
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_evidence import PDF, PNG, SHARED_XRPL, XRPL_SENDER, XRPL_TX, eth_sign, version, xrpl_config

USDT = 10**6


def appeal_body(memo: str | None, tx_hash: str = XRPL_TX) -> dict[str, Any]:
    return {"network": "xrpl", "asset": "XRP", "tx_hash": tx_hash, "deposit_address": SHARED_XRPL,
            **({"memo": memo} if memo else {})}


def ownership(client: TestClient, reference: str, user: str) -> Any:
    return client.get(f"/v1/appeals/{reference}/ownership", headers=bearer(user))


def upload(client: TestClient, reference: str, user: str, content: bytes, media: str, name: str = "record.pdf",
           kind: str = "withdrawal_record") -> Any:
    return client.post(f"/v1/appeals/{reference}/ownership", headers=bearer(user), data={"kind": kind},
                       files={"file": (name, content, media)})


@pytest.fixture
def xrpl_service(database: Database, replay_config: Config) -> CaseService:
    config = xrpl_config(replay_config)
    with database.write() as session:
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
        session.add(DepositAddress(user_id="bob", network="xrpl", address=SHARED_XRPL, memo="9", kind="eoa"))
    return CaseService(database, config, Clock(datetime(2025, 9, 1, tzinfo=UTC)))


@pytest.fixture
def client(xrpl_service: CaseService) -> Iterator[TestClient]:
    client = make_client(xrpl_service, ApiSettings(jwt_secret=SECRET, rate_limit=5))
    try:
        yield client
    finally:
        client.close()


def zoes_appeal(client: TestClient) -> str:
    response = client.post("/v1/appeals", json=appeal_body("7"), headers=bearer("zoe"))
    assert response.status_code == 201, response.text
    assert response.json()["category"] == "wrong_memo"
    return str(response.json()["reference"])


def test_the_ownership_of_an_appeal_that_needs_proof(client: TestClient) -> None:
    reference = zoes_appeal(client)
    response = ownership(client, reference, "zoe")
    assert response.status_code == 200, response.text
    body = response.json()
    assert (body["required"], body["status"], body["kinds"]) == (True, "missing", ["signed_message",
                                                                                    "withdrawal_record"])
    challenge = body["challenge"]
    assert reference in challenge["message"] and XRPL_TX in challenge["message"]
    assert XRPL_SENDER in challenge["message"] and challenge["expires_at"].endswith("Z")
    again = ownership(client, reference, "zoe").json()
    assert again["challenge"] == challenge  # the open challenge, not a new one each time
    # the appeal's own reasons ask for it, and never say whose a memo is
    view = client.get(f"/v1/appeals/{reference}", headers=bearer("zoe")).json()
    texts = [r["text"] for r in view["reasons"]]
    assert any(t.startswith("Prove that you sent this deposit: ") for t in texts)


def test_the_challenge_names_the_exchange_and_the_account(client: TestClient) -> None:
    reference = zoes_appeal(client)
    from recovery.settings import get_settings

    name = get_settings().exchange_name  # RECOVERY_EXCHANGE_NAME, "this exchange" when unset
    message = ownership(client, reference, "zoe").json()["challenge"]["message"]
    assert f"\nExchange: {name}\nAccount: zoe\n" in message
    assert message.splitlines()[0].startswith(f"Deposit recovery at {name}: ")


def test_the_status_counts_only_evidence_for_the_current_requirement(
    client: TestClient, xrpl_service: CaseService, database: Database
) -> None:
    """A record accepted the way it was before evidence was tied to its requirement (its keyed
    accept event names none) is still listed, as accepted, but the status is missing again and a new
    challenge is offered; the record accepted now counts."""
    from sqlmodel import select

    from recovery.evidence import EvidenceService, _event
    from recovery.evidence_records import OwnershipEvidence
    from recovery.models import Case

    reference = zoes_appeal(client)
    taken = upload(client, reference, "zoe", PDF, "application/pdf").json()
    [given] = taken["evidence"]
    with database.write() as session:  # maria's acceptance as the former code wrote it
        case = session.exec(select(Case).where(Case.reference == reference)).one()
        row = session.get(OwnershipEvidence, given["id"])
        assert row is not None
        row.status, row.reviewer, row.reviewed_at = "accepted", "maria", xrpl_service.clock()
        session.add(row)
        _event(session, case, "maria", "specialist", "accept_evidence",
               {"evidence_id": row.id, "kind": row.kind, "sha256": row.document_sha256}, xrpl_service.clock())
    body = ownership(client, reference, "zoe").json()
    assert body["status"] == "missing" and body["challenge"] is not None
    assert [(e["id"], e["status"], e["counts"]) for e in body["evidence"]] == [(given["id"], "accepted", False)]
    again = upload(client, reference, "zoe", PNG, "image/png").json()
    assert again["status"] == "submitted"
    newest = max(e["id"] for e in again["evidence"])
    EvidenceService(database, xrpl_service.config, xrpl_service.clock).accept(reference, newest, "maria",
                                                                                Role.SPECIALIST)
    body = ownership(client, reference, "zoe").json()
    assert body["status"] == "accepted" and body["challenge"] is None
    assert {e["id"]: e["counts"] for e in body["evidence"]} == {given["id"]: False, newest: True}


def test_other_users_and_no_token_get_nothing(client: TestClient) -> None:
    reference = zoes_appeal(client)
    assert ownership(client, reference, "mallory").status_code == 404
    assert client.get(f"/v1/appeals/{reference}/ownership").status_code == 401
    posted = client.post(f"/v1/appeals/{reference}/ownership", headers=bearer("mallory"),
                         json={"kind": "signed_message", "signature": "00"})
    assert posted.status_code == 404
    assert upload(client, reference, "mallory", PDF, "application/pdf").status_code == 404
    assert ownership(client, "RC-999999", "zoe").status_code == 404


def test_the_owner_of_the_memo_needs_no_proof(client: TestClient, database: Database) -> None:
    with database.write() as session:  # the recorded payment's tag is carol's
        session.add(DepositAddress(user_id="carol", network="xrpl", address=SHARED_XRPL, memo="1288227521",
                                   kind="eoa"))
    response = client.post("/v1/appeals", json=appeal_body("1288227521"), headers=bearer("carol"))
    assert response.status_code == 201 and response.json()["category"] == "uncredited_valid", response.text
    body = ownership(client, response.json()["reference"], "carol").json()
    assert (body["required"], body["status"], body["kinds"], body["challenge"]) == (False, "not_required", [], None)
    refused = client.post(f"/v1/appeals/{response.json()['reference']}/ownership", headers=bearer("carol"),
                          json={"kind": "signed_message", "signature": "00"})
    assert refused.status_code == 409 and "needs no ownership evidence" in refused.json()["message"]


def test_a_signature_by_another_key_names_the_field_and_a_document_is_taken(
    client: TestClient, xrpl_service: CaseService
) -> None:
    reference = zoes_appeal(client)
    challenge = ownership(client, reference, "zoe").json()["challenge"]["message"]
    public, private = keypairs.derive_keypair(keypairs.generate_seed())
    signature = keypairs.sign(challenge.encode().hex(), private)
    refused = client.post(f"/v1/appeals/{reference}/ownership", headers=bearer("zoe"),
                          json={"kind": "signed_message", "signature": signature, "public_key": public})
    assert refused.status_code == 422, refused.text
    assert refused.json()["errors"][0]["field"] == "signature"
    assert "signed by another key" in refused.json()["errors"][0]["message"]
    # a PNG sent as a PDF, an executable named .pdf: refused by their content
    tampered = upload(client, reference, "zoe", PNG, "application/pdf")
    assert tampered.status_code == 422 and tampered.json()["errors"][0]["field"] == "file"
    exe = upload(client, reference, "zoe", b"MZ\x90\x00" + b"\x00" * 100, "application/pdf", name="record.pdf")
    assert exe.status_code == 422 and "not a PDF, PNG or JPEG" in exe.json()["errors"][0]["message"]
    taken = upload(client, reference, "zoe", PDF, "application/pdf")
    assert taken.status_code == 201, taken.text
    body = taken.json()
    assert body["status"] == "submitted" and [e["kind"] for e in body["evidence"]] == ["withdrawal_record"]
    # approval still waits for a specialist to accept it
    with pytest.raises(InvalidTransition, match="waiting for review"):
        xrpl_service.approve(reference, Actor("sam", Role.SPECIALIST),
                             expected_version=version(xrpl_service, reference))


def test_the_document_limit_is_raised_for_this_endpoint_only(client: TestClient) -> None:
    reference = zoes_appeal(client)
    big = b"%PDF-" + secrets.token_bytes(1024 * 1024)  # 1 MiB: over the API's 16 KiB body limit
    assert upload(client, reference, "zoe", big, "application/pdf").status_code == 201
    too_big = client.post("/v1/appeals", headers={**bearer("zoe"), "Content-Type": "application/json"},
                          content=b'{"memo": "' + b"x" * (1024 * 1024) + b'"}')
    assert too_big.status_code == 413
    over = upload(client, reference, "zoe", b"%PDF-" + b"x" * (5 * 1024 * 1024), "application/pdf")
    assert over.status_code == 422 and "5 MiB" in over.json()["errors"][0]["message"]
    far_over = upload(client, reference, "zoe", b"%PDF-" + b"x" * (6 * 1024 * 1024), "application/pdf")
    assert far_over.status_code == 413


def test_bad_requests_name_the_field(client: TestClient) -> None:
    reference = zoes_appeal(client)
    path = f"/v1/appeals/{reference}/ownership"
    unknown = client.post(path, headers=bearer("zoe"), json={"kind": "signed_message", "signature": "ab", "x": 1})
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "x"
    wrong = client.post(path, headers=bearer("zoe"), json={"kind": "withdrawal_record"})
    assert wrong.status_code == 422 and wrong.json()["errors"][0]["field"] == "kind"
    missing = client.post(path, headers=bearer("zoe"), json={"kind": "signed_message"})
    assert missing.status_code == 422 and missing.json()["errors"][0]["field"] == "signature"
    text = client.post(path, headers={**bearer("zoe"), "Content-Type": "text/plain"}, content=b"hello")
    assert text.status_code == 415
    no_file = client.post(path, headers=bearer("zoe"), data={"kind": "withdrawal_record"},
                          files={"other": ("a.txt", b"x", "text/plain")})
    assert no_file.status_code == 422
    assert {e["field"] for e in no_file.json()["errors"]} == {"other", "file"}


def test_evidence_attempts_count_toward_the_rate_limit(
    database: Database, xrpl_service: CaseService
) -> None:
    client = make_client(xrpl_service, ApiSettings(jwt_secret=SECRET, rate_limit=2))
    try:
        reference = zoes_appeal(client)
        for _ in range(2):
            assert upload(client, reference, "zoe", PNG, "application/pdf").status_code == 422
        limited = upload(client, reference, "zoe", PDF, "application/pdf")
        assert limited.status_code == 429 and "Retry-After" in limited.headers
    finally:
        client.close()


def test_a_claim_counts_toward_the_rate_limit(database: Database, replay_config: Config) -> None:
    from tests.test_scan import run_scan

    config = xrpl_config(replay_config)
    with database.write() as session:
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
    service = CaseService(database, config, Clock(datetime(2025, 9, 1, tzinfo=UTC)))
    run_scan(service)  # the recorded payment under nobody's tag: a case held for the shared address
    client = make_client(service, ApiSettings(jwt_secret=SECRET, rate_limit=1))
    try:
        first = client.post("/v1/appeals", json=appeal_body(None, tx_hash="AB" * 32), headers=bearer("zoe"))
        assert first.status_code == 201, first.text
        claim = client.post("/v1/appeals", json=appeal_body("7"), headers=bearer("zoe"))
        assert claim.status_code == 429, claim.text
    finally:
        client.close()


def test_a_claimed_detected_case_needs_proof_before_approval(database: Database, replay_config: Config) -> None:
    from tests.test_scan import run_scan

    config = xrpl_config(replay_config)
    with database.write() as session:
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
    service = CaseService(database, config, Clock(datetime(2025, 9, 1, tzinfo=UTC)))
    run_scan(service)
    client = make_client(service, ApiSettings(jwt_secret=SECRET))
    try:
        claim = client.post("/v1/appeals", json=appeal_body("7"), headers=bearer("zoe"))
        assert claim.status_code == 200 and claim.json()["origin"] == "detected", claim.text
        reference = claim.json()["reference"]
        body = ownership(client, reference, "zoe").json()
        assert (body["required"], body["status"]) == (True, "missing")
        assert service.get(reference).case.credited_user_id == "zoe"
        with pytest.raises(InvalidTransition, match="ownership not proven"):
            service.approve(reference, Actor("sam", Role.SPECIALIST), expected_version=version(service, reference))
    finally:
        client.close()


def test_a_signature_by_the_sender_is_accepted_once(database: Database, evm_testbed: EvmTestbed) -> None:
    service = CaseService(database, evm_testbed.config)
    account = Account.create()
    hot = fresh_address()
    with database.write() as session:
        session.add(DepositAddress(user_id="", network="ethereum", address=hot, kind="wallet"))
    evm_testbed.send_native("ethereum", account.address, 10**18)
    evm_testbed.send_token("ethereum", "USDT", account.address, 50 * USDT)
    impersonate(evm_testbed.url("ethereum"), account.address)
    tx = evm_testbed.send_token("ethereum", "USDT", hot, 50 * USDT, sender=account.address)
    evm_testbed.mine("ethereum", 12)
    client = make_client(service, ApiSettings(jwt_secret=SECRET))
    try:
        created = client.post("/v1/appeals", headers=bearer("alice"), json={
            "network": "ethereum", "asset": "USDT", "tx_hash": tx, "deposit_address": hot})
        assert created.status_code == 201 and created.json()["category"] == "unattributed_deposit", created.text
        reference = created.json()["reference"]
        with pytest.raises(InvalidTransition, match="ownership not proven"):
            service.approve(reference, Actor("maria", Role.SPECIALIST), expected_version=version(service, reference))
        message = ownership(client, reference, "alice").json()["challenge"]["message"]
        signature = eth_sign(bytes(account.key), message)
        path = f"/v1/appeals/{reference}/ownership"
        accepted = client.post(path, headers=bearer("alice"), json={"kind": "signed_message", "signature": signature})
        assert accepted.status_code == 201, accepted.text
        body = accepted.json()
        assert (body["status"], body["challenge"], body["evidence"][0]["status"]) == ("accepted", None, "accepted")
        reused = client.post(path, headers=bearer("alice"), json={"kind": "signed_message", "signature": signature})
        assert reused.status_code == 422 and "already used" in reused.json()["errors"][0]["message"]
        approved = service.approve(reference, Actor("maria", Role.SPECIALIST),
                                   expected_version=version(service, reference))
        assert approved.status == "approved"
    finally:
        client.close()
