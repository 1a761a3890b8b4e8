"""The CLI's ``--as NAME`` sign-in (issue 19), on SQLite and PostgreSQL: the backoff and the lock
(the right password refused while locked, with the time it ends; the clock is moved, never slept
on), the TOTP second factor (``operators totp``: the URI and the secret printed once, the code
asked for or read from ``RECOVERY_OPERATOR_TOTP``, a replayed code refused), the requirement for
approvers and admins, ``operators link-oidc``; every attempt audited and the chain verifying."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, datetime

import pyotp
import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from app import cli
from recovery import operators
from recovery.db import Database
from recovery.models import CaseEvent, Operator
from recovery.services import SYSTEM, CaseService
from tests.conftest import Clock
from tests.test_cases import new_draft
from tests.test_cli_operators import PASSWORD, cli_env, seed_team, verified

__all__ = ["cli_env"]  # the fixture, reused

runner = CliRunner()
WRONG = "wrong password!!"


@pytest.fixture
def sign_in_clock(monkeypatch: pytest.MonkeyPatch) -> Clock:
    """The time of sign-ins, moved by the tests (the lock's end, the next TOTP step)."""
    clock = Clock(datetime(2026, 11, 1, 12, 0, tzinfo=UTC))
    monkeypatch.setattr(operators, "clock", clock)
    return clock


@pytest.fixture
def world(cli_env: Database, default_config: object, sign_in_clock: Clock) -> Iterator[tuple[Database, str]]:
    """ada (admin), maria (specialist), omar (approver) and a submitted case."""
    seed_team(cli_env)
    case, _ = CaseService(cli_env, default_config).submit(new_draft("user-9"), SYSTEM)  # type: ignore[arg-type]
    yield cli_env, case.reference or ""


def run(*args: str, password: str | None = None, code: str | None = None, stdin: str | None = None,
        **env: str) -> tuple[int, str, str]:
    variables = dict(env)
    if password is not None:
        variables["RECOVERY_OPERATOR_PASSWORD"] = password
    if code is not None:
        variables["RECOVERY_OPERATOR_TOTP"] = code
    result = runner.invoke(cli.app, list(args), input=stdin, env=variables or None)
    return result.exit_code, result.stdout, result.stderr


def close_as(reference: str, name: str, password: str, **kwargs: str) -> tuple[int, str]:
    """``cases close`` on a submitted case: a signed-in operator is refused by the state machine
    ("cannot close"), an operator not signed in by the sign-in ("sign-in as NAME failed")."""
    code, _, err = run("cases", "close", reference, "--as", name, password=password, **kwargs)
    assert code == 1
    return code, err


def signed_in(err: str) -> bool:
    return "cannot close a case that is submitted" in err


def events(db: Database, prefix: str) -> list[CaseEvent]:
    with db.read() as session:
        return list(session.exec(select(CaseEvent).where(col(CaseEvent.action).startswith(prefix))
                                 .order_by(col(CaseEvent.id))))


def test_the_backoff_and_the_lock_on_the_command_line(world: tuple[Database, str], sign_in_clock: Clock) -> None:
    db, reference = world
    for _ in range(3):
        _, err = close_as(reference, "maria", WRONG)
        assert "sign-in as maria failed: a wrong password" in err
        sign_in_clock.advance(seconds=1)
    # three failures: the next attempt waits 2 s after the last one, without checking anything
    _, err = close_as(reference, "maria", PASSWORD)
    assert "Too many failed sign-ins for this account: try again in 1 s" in err
    sign_in_clock.advance(seconds=10)
    close_as(reference, "maria", WRONG)
    sign_in_clock.advance(seconds=10)
    _, err = close_as(reference, "maria", WRONG)  # the fifth failure in 15 minutes
    assert "The account maria is locked after repeated failed sign-ins, until 2026-11-01 12:15:23 UTC" in err
    sign_in_clock.advance(minutes=5)
    _, err = close_as(reference, "maria", PASSWORD)  # the right password is refused too
    assert "locked" in err and "until 2026-11-01 12:15:23 UTC (in 10 min)" in err and not signed_in(err)
    # other accounts are not locked (the "cli" client has 5 failures: none are slowed before a 6th)
    assert signed_in(close_as(reference, "omar", PASSWORD)[1])
    sign_in_clock.advance(minutes=10)
    assert signed_in(close_as(reference, "maria", PASSWORD)[1])

    outcomes = [(e.actor, e.action, e.details["reason"], e.details["channel"], e.details["client"])
                for e in events(db, "sign_in")]
    assert outcomes == [
        *[("maria", "sign_in_failed", "wrong_password", "cli", "cli")] * 3,
        ("maria", "sign_in_locked", "backoff_account", "cli", "cli"),
        *[("maria", "sign_in_failed", "wrong_password", "cli", "cli")] * 2,
        ("maria", "sign_in_locked", "locked", "cli", "cli"),
        ("omar", "sign_in", "password", "cli", "cli"),
        ("maria", "sign_in", "password", "cli", "cli"),
    ]
    assert all(PASSWORD not in str(e.details) and WRONG not in str(e.details) for e in events(db, "sign_in"))
    verified()


def test_totp_enrolment_and_sign_in_with_the_code(world: tuple[Database, str], sign_in_clock: Clock) -> None:
    db, reference = world
    code, out, err = run("operators", "totp", "maria", "--as", "ada", password=PASSWORD)
    assert code == 0, err
    uri = re.search(r"uri: (otpauth://totp/\S+)", out)
    secret = re.search(r"secret: ([A-Z2-7]+)", out)
    assert uri is not None and secret is not None and f"secret={secret[1]}" in uri[1]
    assert "Shown once" in out
    with db.read() as session:
        assert session.exec(select(Operator.totp_secret).where(Operator.username == "maria")).one() == secret[1]
    enrolled = events(db, "operator_totp")
    assert [(e.actor, e.action, e.details) for e in enrolled] == [
        ("ada", "operator_totp_enrolled", {"username": "maria", "role": "specialist", "replaced": False})]
    totp = pyotp.TOTP(secret[1])

    # the code is asked for (after the password), or read from RECOVERY_OPERATOR_TOTP
    sign_in_clock.advance(seconds=45)
    now_code = totp.at(sign_in_clock.now)
    _, err = close_as(reference, "maria", PASSWORD, stdin=now_code + "\n")
    assert "one-time code for maria" in err and signed_in(err)
    _, err = close_as(reference, "maria", PASSWORD, code=now_code)  # the same code again: refused
    assert "sign-in as maria failed: This one-time code was used already" in err and not signed_in(err)
    sign_in_clock.advance(seconds=30)
    _, err = close_as(reference, "maria", WRONG, code=totp.at(sign_in_clock.now))
    assert "sign-in as maria failed: a wrong password or one-time code" in err
    _, err = close_as(reference, "maria", PASSWORD, code="123 456" if totp.at(sign_in_clock.now) != "123456"
                      else "654321")
    assert "sign-in as maria failed" in err and not signed_in(err)
    sign_in_clock.advance(seconds=5)
    assert signed_in(close_as(reference, "maria", PASSWORD, code=totp.at(sign_in_clock.now))[1])
    # an account without a second factor is not asked for a code (no input here: a prompt would abort)
    assert signed_in(close_as(reference, "omar", PASSWORD)[1])

    reasons = [(e.action, e.details["reason"]) for e in events(db, "sign_in") if e.actor == "maria"]
    assert reasons == [("sign_in", "password+totp"), ("sign_in_failed", "code_replayed"),
                       ("sign_in_failed", "wrong_password"), ("sign_in_failed", "code_invalid"),
                       ("sign_in", "password+totp")]
    assert all(secret[1] not in str(e.details) for e in events(db, ""))
    # JSON for scripts; a new enrolment replaces the secret; removal
    code, out, err = run("operators", "totp", "maria", "--as", "ada", "--json", password=PASSWORD)
    assert code == 0, err
    assert json.loads(out)["secret"] != secret[1]
    assert run("operators", "totp", "maria", "--remove", "--as", "ada", password=PASSWORD)[0] == 0
    assert signed_in(close_as(reference, "maria", PASSWORD)[1])
    assert [e.action for e in events(db, "operator_totp")] == [
        "operator_totp_enrolled", "operator_totp_enrolled", "operator_totp_removed"]
    verified()


def test_only_an_admin_enrols_a_second_factor(world: tuple[Database, str]) -> None:
    code, _, err = run("operators", "totp", "omar", "--as", "maria", password=PASSWORD)
    assert code == 1 and "not an admin" in err
    code, _, err = run("operators", "totp", "omar")
    assert code == 1 and "--as NAME is required" in err
    code, _, err = run("operators", "totp", "nobody", "--as", "ada", password=PASSWORD)
    assert code == 1 and "no operator 'nobody'" in err
    assert events(world[0], "operator_totp") == []


def test_approvers_and_admins_need_a_second_factor_when_required(world: tuple[Database, str],
                                                                 sign_in_clock: Clock) -> None:
    db, reference = world
    required = {"RECOVERY_WORKBENCH_REQUIRE_TOTP": "1"}
    _, err = close_as(reference, "omar", PASSWORD, **required)
    assert "sign-in as omar failed: Approvers must sign in with a second factor" in err
    assert "recovery operators totp omar" in err
    assert signed_in(close_as(reference, "maria", PASSWORD, **required)[1])  # specialists need none
    assert run("operators", "totp", "omar", "--as", "ada", password=PASSWORD)[0] == 0  # not required here
    with db.read() as session:
        secret = session.exec(select(Operator.totp_secret).where(Operator.username == "omar")).one()
    assert secret is not None
    sign_in_clock.advance(seconds=60)
    _, err = close_as(reference, "omar", PASSWORD, code=pyotp.TOTP(secret).at(sign_in_clock.now), **required)
    assert signed_in(err)
    # the admin, required too, cannot enrol anyone before having a second factor of their own
    code, _, err = run("operators", "totp", "maria", "--as", "ada", password=PASSWORD, **required)
    assert code == 1 and "Admins must sign in with a second factor" in err
    assert [(e.actor, e.details["reason"]) for e in events(db, "sign_in_failed")] == [
        ("omar", "second_factor_missing"), ("ada", "second_factor_missing")]


def test_link_oidc_is_audited(world: tuple[Database, str]) -> None:
    db, _ = world
    issuer = "https://idp.exchange.example"
    code, out, err = run("operators", "link-oidc", "omar", "--issuer", issuer, "--subject", "248289761001",
                         "--email", "Omar@Exchange.example", "--as", "ada", password=PASSWORD)
    assert code == 0, err
    assert "omar linked to issuer https://idp.exchange.example, subject 248289761001; e-mail omar@exchange.example" \
        in out
    with db.read() as session:
        omar = session.exec(select(Operator).where(Operator.username == "omar")).one()
    assert (omar.oidc_issuer, omar.oidc_subject, omar.email) == (issuer, "248289761001", "omar@exchange.example")
    code, _, err = run("operators", "link-oidc", "maria", "--issuer", issuer, "--subject", "248289761001",
                       "--as", "ada", password=PASSWORD)
    assert code == 1 and "already linked to omar" in err
    # bad usage: exit 2 before anything is asked
    assert run("operators", "link-oidc", "maria", "--issuer", issuer, "--as", "ada")[0] == 2
    assert run("operators", "link-oidc", "maria", "--as", "ada")[0] == 2
    assert run("operators", "link-oidc", "maria", "--email", "nope", "--as", "ada")[0] == 2
    code, out, _ = run("operators", "list", "--json")
    listed = {o["username"]: o for o in json.loads(out)}
    assert listed["omar"]["oidc_linked"] and listed["omar"]["email"] == "omar@exchange.example"
    assert not listed["maria"]["second_factor"] and "secret" not in out
    assert run("operators", "link-oidc", "omar", "--clear", "--as", "ada", password=PASSWORD)[0] == 0
    assert [(e.actor, e.action) for e in events(db, "operator_oidc")] == [
        ("ada", "operator_oidc_linked"), ("ada", "operator_oidc_unlinked")]
    verified()
