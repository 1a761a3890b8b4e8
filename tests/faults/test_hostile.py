"""Hostile input: SQL metacharacters and HTML in every text field are stored and returned verbatim;
generated garbage never causes a 5xx or a stored row; references cannot be enumerated; the
money rules hold whatever door is used."""

from __future__ import annotations

import json
import secrets
import string
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlmodel import func, select

from recovery.audit import verify_chain
from recovery.errors import Conflict, Forbidden
from recovery.imports import ImportFailed, import_addresses
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import Role
from tests.api.conftest import ApiWorld, bearer
from tests.faults.test_concurrency import in_review

NASTY = [
    "'; DROP TABLE cases; --",
    "\" OR 1=1 --",
    "<script>alert(document.cookie)</script>",
    "<img src=x onerror=alert(1)>",
    "**bold** [link](javascript:alert(1)) `code`",
    "Robert'); DELETE FROM case_events WHERE ('1'='1",
    "\u202eevil\u202c and 🙂 and \\x00-free",
]
SPECIALIST = Actor("maria", Role.SPECIALIST)
APPROVER = Actor("omar", Role.APPROVER)


def table_sizes(service: CaseService) -> tuple[int, int]:
    with service.db.read() as session:
        return (int(session.exec(select(func.count()).select_from(Case)).one()),
                int(session.exec(select(func.count()).select_from(CaseEvent)).one()))


@pytest.mark.parametrize("text", NASTY)
def test_operator_text_is_stored_verbatim(service: CaseService, text: str) -> None:
    reference = in_review(service)[0]
    version = service.get(reference).case.version
    service.note(reference, text, SPECIALIST, expected_version=version)
    case = service.request_info(reference, text, SPECIALIST, expected_version=version + 1)
    events = service.get(reference).events
    assert events[-2].details["text"] == text and events[-1].details["message"] == text
    assert case.status == "needs_info"
    with service.db.read() as session:
        assert verify_chain(session).ok
    cases, _ = table_sizes(service)
    assert cases >= 1  # nothing was dropped or deleted


def test_an_import_with_injection_is_refused_whole_and_names_the_field(service: CaseService, tmp_path: Path) -> None:
    path = tmp_path / "addresses.csv"
    rows = ["user_id,network,address,memo,kind",
            "alice,ethereum,0x52908400098527886E0F7030069857D2E4169EE7,,eoa",
            "bob'; DROP TABLE deposit_addresses; --,ethereum,0x8617E340B3D01FA5F11F306F4090FD50E238070D,,eoa",
            "carol,xrpl,rPT1Sjq2YGrBMTttX4GZHjKu9dyfzbpAYe,<script>alert(1)</script>,eoa"]
    path.write_text("\n".join(rows) + "\n")
    with pytest.raises(ImportFailed) as refused:
        import_addresses(service.db, service.config, path)
    text = "\n".join(refused.value.problems)
    assert "line 3: user_id" in text and "line 4: memo" in text
    with service.db.read() as session:
        assert session.exec(select(func.count()).select_from(DepositAddress)).one() == 0


def test_text_memo_with_html_is_kept_verbatim(service: CaseService, tmp_path: Path) -> None:
    memo = "<b>hi</b> ' OR 1=1"
    stellar = "GAHK7EEG2WWHVKDNT4CEQFZGKF2LGDSW2IVM4S5DP42RBW3K6BTODB4A"
    path = tmp_path / "addresses.csv"
    path.write_text(f"user_id,network,address,memo,kind\ndan,stellar,{stellar},\"{memo}\",eoa\n")
    try:
        import_addresses(service.db, service.config, path)
    except ImportFailed as exc:  # a memo format that refuses markup is also safe: it names the field
        assert any("memo" in p for p in exc.problems)
        return
    with service.db.read() as session:
        assert session.exec(select(DepositAddress.memo)).one() == memo


def test_a_refund_is_recorded_once_and_its_hash_closes_one_case(service: CaseService) -> None:
    first, second = in_review(service)[:2]
    for reference in (first, second):
        with service.db.write() as session:  # turned into refunds to their senders behind the engine's back
            case = session.exec(select(Case).where(Case.reference == reference)).one()
            decision = dict(case.decision or {})
            decision["refund_address"] = decision["transfers"][0]["sender"]
            case.decision, case.resolution = decision, "refund"
            session.add(case)
        service.send_for_approval(reference, SPECIALIST, expected_version=service.get(reference).case.version)
        service.approve(reference, APPROVER, expected_version=service.get(reference).case.version)
    refund = "0x" + secrets.token_hex(32)
    service.record_refund(first, refund, SPECIALIST, expected_version=service.get(first).case.version)
    with pytest.raises(Conflict):
        service.record_refund(second, refund, SPECIALIST, expected_version=service.get(second).case.version)
    with pytest.raises(Exception, match="refund"):
        service.record_refund(first, "0x" + secrets.token_hex(32), SPECIALIST,
                              expected_version=service.get(first).case.version)


def test_four_eyes_cannot_be_bypassed_by_the_preparer(service: CaseService) -> None:
    reference = in_review(service)[0]
    with service.db.write() as session:
        case = session.exec(select(Case).where(Case.reference == reference)).one()
        case.value_usd = case.amount = Decimal("50000")
        session.add(case)
    approver = Actor("omar", Role.APPROVER)
    version = service.get(reference).case.version
    with pytest.raises(Forbidden, match="send it for approval"):  # nobody prepared it for approval
        service.approve(reference, approver, expected_version=version)
    # the approver sends it himself: he is then its preparer
    version = service.send_for_approval(reference, approver, expected_version=version).version
    with pytest.raises(Forbidden, match="four-eyes"):
        service.approve(reference, approver, expected_version=version)
    with pytest.raises(Forbidden):
        service.approve(reference, SPECIALIST, expected_version=version)
    with pytest.raises(Forbidden):
        service.approve(reference, SYSTEM, expected_version=version)
    assert service.get(reference).case.status == "in_review"


# ---------------------------------------------------------------------------------------- API

texts = st.one_of(st.sampled_from(NASTY), st.text(alphabet=string.printable, max_size=80))
values = st.one_of(texts, st.integers(), st.floats(allow_nan=True), st.booleans(), st.none(),
                   st.lists(texts, max_size=3), st.dictionaries(texts, texts, max_size=3))
bodies = st.one_of(
    st.fixed_dictionaries({}, optional={k: values for k in
                                        ("network", "asset", "tx_hash", "deposit_address", "memo", "amount")}),
    st.dictionaries(texts, values, max_size=6),
    values,
)


def test_generated_garbage_never_5xx_and_never_stores(world: ApiWorld) -> None:
    seen: list[int] = []

    @settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    @given(bodies)
    def attempt(body: object) -> None:
        before = table_sizes(world.service)
        reply = world.client.post("/v1/appeals", content=json.dumps(body), headers=bearer("alice") | {
            "Content-Type": "application/json"})
        seen.append(reply.status_code)
        assert reply.status_code < 500, reply.text
        assert "code" in reply.json()
        if reply.status_code >= 400:
            assert table_sizes(world.service) == before

    attempt()
    assert 422 in seen


def test_references_cannot_be_enumerated(world: ApiWorld) -> None:
    tx = world.usdt_deposit("alice", 20 * 10**6)
    body = {"network": "ethereum", "asset": "USDT", "tx_hash": tx, "deposit_address": world.addresses["alice"]}
    mine = world.post("alice", body).json()["reference"]
    answers = {world.get("bob", f"/v1/appeals/RC-{n:06d}").text for n in range(1, 30)}
    answers.add(world.get("bob", f"/v1/appeals/{mine}").text.replace(mine, "RC-000001"))
    statuses = {world.get("bob", f"/v1/appeals/{ref}").status_code for ref in (mine, "RC-999999", "RC-000000")}
    assert statuses == {404}
    assert len({a.replace(mine, "X") for a in answers}) <= 2  # same shape whether the case exists or not


def test_there_is_no_api_door_to_operator_actions(world: ApiWorld) -> None:
    tx = world.usdt_deposit("alice", 30 * 10**6)
    body = {"network": "ethereum", "asset": "USDT", "tx_hash": tx, "deposit_address": world.addresses["alice"]}
    reference = world.post("alice", body).json()["reference"]
    for action in ("approve", "reject", "refund", "credit", "assign"):
        reply = world.client.post(f"/v1/appeals/{reference}/{action}", json={}, headers=bearer("alice"))
        assert reply.status_code in (404, 405) and "code" in reply.json()
    assert world.service.get(reference).case.status in ("in_review", "awaiting_chain", "submitted")


@pytest.mark.parametrize("text", NASTY[:4])
def test_a_message_to_the_user_comes_back_verbatim_in_the_api(world: ApiWorld, text: str) -> None:
    tx = world.usdt_deposit("alice", 40 * 10**6)
    body = {"network": "ethereum", "asset": "USDT", "tx_hash": tx, "deposit_address": world.addresses["alice"]}
    reference = world.post("alice", body).json()["reference"]
    case = world.service.get(reference).case
    assert case.status == "in_review"
    world.service.request_info(reference, text, SPECIALIST, expected_version=case.version)
    reply = world.get("alice", f"/v1/appeals/{reference}")
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("application/json")
    assert text in json.dumps(reply.json(), ensure_ascii=False)
