"""``recovery cases evidence | accept-evidence | reject-evidence`` and ``cases approve`` refused without
ownership evidence, on SQLite and PostgreSQL, over a real anvil deposit: USDT sent to an exchange
wallet from a key generated here (an unattributed deposit appealed by alice)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from typer.testing import CliRunner

from app import cli
from app.demo.chainworld import impersonate
from bench.recheck import write_config_dir
from recovery.db import Database
from recovery.evidence import EvidenceService
from recovery.models import DepositAddress
from recovery.operators import add_operator
from recovery.services import CaseService
from recovery.settings import get_settings
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address
from tests.test_evidence import PDF, PNG, appeal, eth_sign, recheck

runner = CliRunner()
PASSWORD = "correct horse battery staple"
USDT = 10**6


@pytest.fixture(scope="module")
def config_dir(evm_testbed: EvmTestbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_config_dir(tmp_path_factory.mktemp("cli-evidence-config"),
                            {name: evm_testbed.url(name) for name in ("ethereum", "bsc")})


@pytest.fixture
def world(database: Database, evm_testbed: EvmTestbed, clock: Clock, config_dir: Path,
          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[CaseService, EvidenceService, str, bytes]]:
    """alice's appeal of a deposit to an exchange wallet (decided: proof needed), the CLI pointed at
    the same database, and the team: ada (admin), maria and sam (specialists), omar (approver)."""
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECOVERY_OPERATOR_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    add_operator(database, "ada", PASSWORD, "admin")
    for name, role in (("maria", "specialist"), ("sam", "specialist"), ("omar", "approver")):
        add_operator(database, name, PASSWORD, role, actor="ada")
    service = CaseService(database, evm_testbed.config, clock)
    account = Account.create()
    hot = fresh_address()
    with database.write() as session:
        session.add(DepositAddress(user_id="", network="ethereum", address=hot, kind="wallet"))
    evm_testbed.send_native("ethereum", account.address, 10**18)
    evm_testbed.send_token("ethereum", "USDT", account.address, 40 * USDT)
    impersonate(evm_testbed.url("ethereum"), account.address)
    tx = evm_testbed.send_token("ethereum", "USDT", hot, 40 * USDT, sender=account.address)
    evm_testbed.mine("ethereum", 12)
    reference = appeal(service, "alice", "ethereum", "USDT", tx, hot)
    recheck(service)
    assert service.get(reference).case.category == "unattributed_deposit"
    yield service, EvidenceService(database, evm_testbed.config, clock), reference, bytes(account.key)
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def shown(reference: str) -> dict:  # type: ignore[type-arg]
    code, out, err = run("cases", "evidence", reference, "--json")
    assert code == 0, err
    return dict(json.loads(out))


def snapshot(service: CaseService, reference: str) -> tuple[str, int, int]:
    view = service.get(reference)
    return view.case.status, view.case.version, len(view.events)


def test_approve_is_refused_without_evidence_naming_it(world: tuple[CaseService, EvidenceService, str, bytes]) -> None:
    service, _evidence, reference, _key = world
    data = shown(reference)
    assert (data["required"], data["status"], data["kinds"], data["evidence"]) == (
        True, "missing", ["signed_message", "withdrawal_record"], [])
    before = snapshot(service, reference)
    code, _out, err = run("cases", "approve", reference, "--as", "maria")
    assert code == 1
    assert "ownership not proven" in err and "signed_message or withdrawal_record" in err
    assert snapshot(service, reference) == before
    code, out, _err = run("cases", "evidence", reference)
    assert code == 0 and "ownership evidence missing" in out


def test_a_record_rejected_then_another_accepted_and_approved_by_someone_else(
    world: tuple[CaseService, EvidenceService, str, bytes],
) -> None:
    service, evidence, reference, _key = world
    first = evidence.submit_document(reference, "alice", Role.USER, content=PNG, declared_type="image/png")
    assert shown(reference)["status"] == "submitted"
    # a rejection needs a reason (bad usage, 2); an id that is not a number is bad usage too
    code, _out, _err = run("cases", "reject-evidence", reference, str(first.id), "--as", "maria")
    assert code == 2
    assert run("cases", "accept-evidence", reference, "one", "--as", "maria")[0] == 2
    code, out, err = run("cases", "reject-evidence", reference, str(first.id), "--as", "maria",
                         "--reason", "the record names another transaction", "--json")
    assert code == 0, err
    assert (json.loads(out)["status"], json.loads(out)["reviewer"]) == ("rejected", "maria")
    data = shown(reference)
    assert data["status"] == "rejected" and data["evidence"][0]["reason"] == "the record names another transaction"
    # the same record cannot be accepted now; an unknown id is refused (exit 1), nothing changed
    before = snapshot(service, reference)
    code, _out, err = run("cases", "accept-evidence", reference, str(first.id), "--as", "sam")
    assert code == 1 and "already rejected" in err
    code, _out, err = run("cases", "accept-evidence", reference, "999999", "--as", "sam")
    assert code == 1 and "has no evidence 999999" in err
    assert snapshot(service, reference) == before
    second = evidence.submit_document(reference, "alice", Role.USER, content=PDF, declared_type="application/pdf")
    code, out, err = run("cases", "accept-evidence", reference, str(second.id), "--as", "maria")
    assert code == 0, err
    assert f"evidence {second.id} accepted by maria" in out
    # accepting is preparing: maria cannot approve, sam can
    code, _out, err = run("cases", "approve", reference, "--as", "maria")
    assert code == 1 and "accepted the ownership evidence" in err
    code, _out, err = run("cases", "approve", reference, "--as", "sam")
    assert code == 0, err
    assert service.get(reference).case.status == "approved"
    code, _out, err = run("audit", "verify")  # every evidence event is in the chain and the rows follow them
    assert code == 0, err


def test_a_verified_signature_shows_its_result_and_a_wrong_password_changes_nothing(
    world: tuple[CaseService, EvidenceService, str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    service, evidence, reference, key = world
    own = evidence.ownership(reference, for_user="alice", issue_challenge=True)
    assert own.challenge is not None
    evidence.submit_signature(reference, "alice", Role.USER, signature=eth_sign(key, own.challenge.message))
    data = shown(reference)
    [row] = data["evidence"]
    assert (row["kind"], row["status"], row["reviewer"]) == ("signed_message", "accepted", "system")
    assert row["verification"]["verified"] is True and row["verification"]["method"] == "eip191"
    code, out, _err = run("cases", "evidence", reference)
    assert code == 0 and "signed_message accepted by system" in out and "eip191" in out
    # a signed message is accepted by the system: there is nothing for a person to accept or reject
    code, _out, err = run("cases", "reject-evidence", reference, str(row["id"]), "--as", "maria", "--reason", "x")
    assert code == 1 and "already accepted" in err
    monkeypatch.setenv("RECOVERY_OPERATOR_PASSWORD", "wrong")
    before = snapshot(service, reference)
    assert run("cases", "approve", reference, "--as", "maria")[0] == 1
    assert snapshot(service, reference) == before
    monkeypatch.setenv("RECOVERY_OPERATOR_PASSWORD", PASSWORD)
    code, _out, err = run("cases", "approve", reference, "--as", "maria")
    assert code == 0, err
