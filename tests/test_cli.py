"""The operator CLI against a real database: imports (all or nothing), read-outs, audit, operators."""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_account import Account
from sqlmodel import func, select
from typer.testing import CliRunner
from xrpl.wallet import Wallet

from app import cli
from recovery.db import Database
from recovery.models import CreditedDeposit, DepositAddress
from recovery.services import SYSTEM, CaseService
from recovery.settings import get_settings
from tests.support.tamper import as_dba
from tests.test_cases import new_draft

runner = CliRunner()


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch) -> Iterator[Database]:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def run(*args: str, stdin: str | None = None) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args), input=stdin)
    return result.exit_code, result.stdout, result.stderr


def rows(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def write_csv(tmp_path: Path, name: str, lines: list[str]) -> Path:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_address_import_is_all_or_nothing(cli_env: Database, tmp_path: Path) -> None:
    eoa, contract, xrp = Account.create().address, Account.create().address, Wallet.create().classic_address
    good = write_csv(tmp_path, "good.csv", [
        "user_id,network,address,memo,kind",
        f"u1,ethereum,{eoa.lower()},,eoa",
        f"u2,bsc,{contract},,contract",
        f"u3,xrpl,{xrp},1001,eoa",
        f"u4,xrpl,{xrp},1002,eoa",
    ])
    code, out, err = run("addresses", "import", str(good), "--json")
    assert code == 0, err
    assert json.loads(out) == {"ok": True, "rows": 4, "inserted": 4, "unchanged": 0}
    with cli_env.read() as session:
        stored = session.exec(select(DepositAddress).where(DepositAddress.user_id == "u1")).one()
    assert stored.address == eoa  # stored checksummed
    code, out, _ = run("addresses", "import", str(good), "--json")
    assert code == 0 and json.loads(out)["unchanged"] == 4

    bad = write_csv(tmp_path, "bad.csv", [
        "user_id,network,address,memo,kind",
        f"u5,ethereum,{Account.create().address},,eoa",
        "u6,dogechain,D123,,eoa",
        f"u7,ethereum,{eoa[:-1]},,eoa",
        f"u8,xrpl,{xrp},,eoa",
        f"u9,xrpl,{xrp},12 34,eoa",
        f"u10,ethereum,{Account.create().address},,multisig",
    ])
    code, _, err = run("addresses", "import", str(bad))
    assert code == 1
    for expected in ("line 3: network: unknown network 'dogechain'", "line 4: address:", "line 5: memo:",
                     "line 6: memo:", "line 7: kind: must be eoa or contract"):
        assert expected in err, expected
    assert "nothing imported" in err
    assert rows(cli_env, DepositAddress) == 4

    clash = write_csv(tmp_path, "clash.csv", [
        "user_id,network,address,memo,kind",
        f"u5,ethereum,{Account.create().address},,eoa",
        f"someone-else,ethereum,{eoa},,eoa",
    ])
    code, _, err = run("addresses", "import", str(clash))
    assert code == 1 and "line 3: address: already held by user u1" in err
    assert rows(cli_env, DepositAddress) == 4


def test_import_rejects_a_wrong_header(cli_env: Database, tmp_path: Path) -> None:
    path = write_csv(tmp_path, "h.csv", ["user,network,address,memo,kind", "u1,ethereum,0x0,,eoa"])
    code, _, err = run("addresses", "import", str(path))
    assert code == 1 and "missing column(s) user_id" in err and "unknown column(s) user" in err


def test_credit_import_validates_amounts_and_hashes(cli_env: Database, tmp_path: Path) -> None:
    tx = "0x" + secrets.token_hex(32)
    good = write_csv(tmp_path, "credits.csv", [
        "network,tx_hash,user_id,asset,amount",
        f"ethereum,{tx},u1,usdt,100.25",
        f"bsc,{'0x' + secrets.token_hex(32)},u2,BNB,0.5",
    ])
    code, out, err = run("credits", "import", str(good), "--json")
    assert code == 0, err
    assert json.loads(out)["inserted"] == 2
    with cli_env.read() as session:
        credit = session.exec(select(CreditedDeposit).where(CreditedDeposit.tx_hash == tx)).one()
    assert str(credit.amount) == "100.25" and credit.asset == "USDT"

    bad = write_csv(tmp_path, "bad.csv", [
        "network,tx_hash,user_id,asset,amount",
        f"ethereum,{'0x' + secrets.token_hex(32)},u3,USDT,-1",
        f"ethereum,{'0x' + secrets.token_hex(32)},u3,USDT,lots",
        f"ethereum,{secrets.token_hex(32)},u3,USDT,1",
        f"ethereum,{'0x' + secrets.token_hex(32)},u3,NOPE,1",
        f"ethereum,{'0x' + secrets.token_hex(32)},u3,USDT,",
        f"ethereum,{tx},u1,USDT,100.25",
    ])
    code, _, err = run("credits", "import", str(bad))
    assert code == 1
    for expected in ("line 2: amount: must be a positive", "line 3: amount:", "line 4: tx_hash: must start with 0x",
                     "line 5: asset: 'NOPE' is not listed", "line 6: amount: is required"):
        assert expected in err, expected
    assert rows(cli_env, CreditedDeposit) == 2

    contradicting = write_csv(tmp_path, "contra.csv", [
        "network,tx_hash,user_id,asset,amount", f"ethereum,{tx},u1,USDT,99",
    ])
    code, _, err = run("credits", "import", str(contradicting))
    assert code == 1 and "already recorded as credited with amount 100.25" in err


def test_cases_list_and_show_json(cli_env: Database, default_config) -> None:  # type: ignore[no-untyped-def]
    service = CaseService(cli_env, default_config)
    case, _ = service.submit(new_draft("user-7"), SYSTEM)
    service.submit(new_draft("user-8"), SYSTEM)
    code, out, _ = run("cases", "list", "--status", "submitted", "--json")
    assert code == 0
    listed = json.loads(out)
    assert [c["user_id"] for c in listed] == ["user-7", "user-8"]
    required = {"reference", "user_id", "network", "asset", "tx_hash", "deposit_address", "memo", "claimed_amount",
                "status", "category", "recoverable", "resolution", "flags", "fee_amount", "fee_asset", "fee_usd",
                "net_amount", "decision", "version"}
    assert required <= set(listed[0])
    assert listed[0]["claimed_amount"] == "125.5" and listed[0]["flags"] == []
    code, out, _ = run("cases", "show", case.reference or "", "--json")
    shown = json.loads(out)
    assert code == 0 and shown["reference"] == case.reference
    assert [e["action"] for e in shown["events"]] == ["submit"]
    code, _, _err = run("cases", "show", "RC-999999")
    assert code == 1
    code, _, _ = run("cases", "list", "--category", "nonsense")
    assert code == 2


def test_audit_verify_exit_codes(cli_env: Database, default_config) -> None:  # type: ignore[no-untyped-def]
    service = CaseService(cli_env, default_config)
    service.submit(new_draft(), SYSTEM)
    service.submit(new_draft(), SYSTEM)
    code, out, _ = run("audit", "verify", "--json")
    assert code == 0 and json.loads(out) == {"ok": True, "events_checked": 2, "first_broken_event": None,
                                             "problem": None}
    as_dba(cli_env, "UPDATE case_events SET actor = 'mallory' WHERE id = 2")
    code, out, _ = run("audit", "verify", "--json")
    assert code == 1 and json.loads(out)["first_broken_event"] == 2


def test_operators_add_hashes_passwords_and_validates(cli_env: Database) -> None:
    code, _out, err = run("operators", "add", "sam", "--role", "specialist", "--password-stdin",
                         stdin="correct horse battery\n")
    assert code == 0, err
    from recovery.operators import authenticate

    operator = authenticate(cli_env, "sam", "correct horse battery")
    assert operator is not None and operator.role == "specialist"
    assert operator.password_hash.startswith("$argon2id$")
    assert authenticate(cli_env, "sam", "wrong password!!") is None
    assert authenticate(cli_env, "nobody", "correct horse battery") is None
    code, _, _ = run("operators", "add", "sam", "--role", "specialist", "--password-stdin",
                     stdin="correct horse battery\n")
    assert code != 0
    code, _, _ = run("operators", "add", "kim", "--role", "overlord", "--password-stdin", stdin="x" * 20 + "\n")
    assert code == 2
    run("operators", "disable", "sam")
    assert authenticate(cli_env, "sam", "correct horse battery") is None
