"""Operators on the command line, on SQLite and PostgreSQL: ``--as NAME`` sign-in (a wrong password,
an unknown or a disabled operator are refused alike, exit 1, nothing changed), bad usage (exit 2),
and the audited operator commands (add, disable, enable, role, reset-password: one event each,
by the admin who named themself; the bootstrap; refused without ``--as`` once an admin exists)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, select
from typer.testing import CliRunner

from app import cli
from recovery.db import Database
from recovery.models import CaseEvent, Operator
from recovery.operators import BOOTSTRAP, UNNAMED, add_operator, authenticate, set_active
from recovery.services import SYSTEM, CaseService
from recovery.settings import get_settings
from tests.test_cases import new_draft

runner = CliRunner()
PASSWORD = "correct horse battery staple"
NEW_PASSWORD = "another long passphrase"


@pytest.fixture
def cli_env(database: Database, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[Database]:
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.delenv("RECOVERY_OPERATOR_PASSWORD", raising=False)
    get_settings.cache_clear()
    yield database
    get_settings.cache_clear()


def run(*args: str, password: str | None = None, stdin: str | None = None) -> tuple[int, str, str]:
    env = {"RECOVERY_OPERATOR_PASSWORD": password} if password is not None else None
    result = runner.invoke(cli.app, list(args), input=stdin, env=env)
    return result.exit_code, result.stdout, result.stderr


def operator_events(db: Database) -> list[CaseEvent]:
    with db.read() as session:
        return list(session.exec(select(CaseEvent).where(col(CaseEvent.case_id).is_(None))
                                 .where(col(CaseEvent.action).startswith("operator_")).order_by(col(CaseEvent.id))))


def seed_team(db: Database) -> None:
    """An admin (the bootstrap), then a specialist and an approver added by that admin."""
    add_operator(db, "ada", PASSWORD, "admin")
    add_operator(db, "maria", PASSWORD, "specialist", actor="ada")
    add_operator(db, "omar", PASSWORD, "approver", actor="ada")


def verified(*, expect_events: int | None = None) -> None:
    code, out, err = run("audit", "verify")
    assert code == 0, err
    assert "audit chain verified" in out
    if expect_events is not None:
        assert f"{expect_events} events" in out


# ------------------------------------------------------------------------------------------ operator commands


def test_operator_commands_are_audited_and_need_an_admin_who_names_themself(cli_env: Database) -> None:
    db = cli_env
    # bootstrap: no enabled admin yet, so the first admin is added without --as
    code, out, err = run("operators", "add", "ada", "--role", "admin", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 0, err
    assert "bootstrap" in out
    # from now on --as is required
    code, _, err = run("operators", "add", "sam", "--role", "specialist", "--password-stdin", stdin=PASSWORD + "\n")
    assert code == 1 and "--as NAME is required" in err and "enabled admin" in err
    code, _, err = run("operators", "disable", "ada")
    assert code == 1 and "--as" in err
    assert [o.username for o in _operators(db)] == ["ada"]

    # named and signed in: each change is one event by that admin, in the change's transaction
    code, _, err = run("operators", "add", "sam", "--role", "specialist", "--as", "ada", "--password-stdin",
                       password=PASSWORD, stdin=PASSWORD + "\n")
    assert code == 0, err
    assert run("operators", "role", "sam", "approver", "--as", "ada", password=PASSWORD)[0] == 0
    assert run("operators", "disable", "sam", "--as", "ada", password=PASSWORD)[0] == 0
    assert authenticate(db, "sam", PASSWORD) is None
    assert run("operators", "enable", "sam", "--as", "ada", password=PASSWORD)[0] == 0
    code, _, err = run("operators", "reset-password", "sam", "--as", "ada", "--password-stdin", password=PASSWORD,
                       stdin=NEW_PASSWORD + "\n")
    assert code == 0, err
    sam = authenticate(db, "sam", NEW_PASSWORD)
    assert sam is not None and sam.role == "approver" and authenticate(db, "sam", PASSWORD) is None

    events = operator_events(db)
    assert [(e.actor, e.actor_role, e.action) for e in events] == [
        (BOOTSTRAP, "admin", "operator_added"),
        ("ada", "admin", "operator_added"),
        ("ada", "admin", "operator_role_changed"),
        ("ada", "admin", "operator_disabled"),
        ("ada", "admin", "operator_enabled"),
        ("ada", "admin", "operator_password_reset"),
    ]
    assert events[0].details == {"username": "ada", "role": "admin"}
    assert events[2].details == {"username": "sam", "from_role": "specialist", "to_role": "approver"}
    text = " ".join(str(e.details) for e in events)
    assert PASSWORD not in text and NEW_PASSWORD not in text and "argon2" not in text  # never a password or hash
    with db.read() as session:  # every sign-in (--as ada, authenticate) is an event of its own too
        sign_ins = list(session.exec(select(CaseEvent).where(col(CaseEvent.action).startswith("sign_in"))))
    assert [e.action for e in sign_ins].count("sign_in") == 6 and len(sign_ins) == 8
    verified(expect_events=len(events) + len(sign_ins))


def test_only_an_enabled_admin_with_the_right_password_manages_operators(cli_env: Database) -> None:
    seed_team(cli_env)
    before = len(operator_events(cli_env))
    refusals = [
        (("operators", "add", "eve", "--role", "admin", "--as", "maria", "--password-stdin"), PASSWORD,
         "maria is a specialist, not an admin"),
        (("operators", "role", "maria", "admin", "--as", "ada"), "wrong password!!", "sign-in as ada failed"),
        (("operators", "disable", "omar", "--as", "nobody"), PASSWORD, "sign-in as nobody failed"),
        (("operators", "disable", "ada", "--as", "ada"), PASSWORD, "last enabled admin"),
        (("operators", "role", "ada", "auditor", "--as", "ada"), PASSWORD, "last enabled admin"),
    ]
    for args, password, message in refusals:
        code, _, err = run(*args, password=password, stdin=PASSWORD + "\n")
        assert code == 1 and message in err, (args, err)
    assert len(operator_events(cli_env)) == before
    assert {o.username: (o.role, o.active) for o in _operators(cli_env)} == {
        "ada": ("admin", True), "maria": ("specialist", True), "omar": ("approver", True)}
    # bad usage is 2, before anything is asked
    assert run("operators", "add", "kim", "--role", "overlord", "--as", "ada", password=PASSWORD)[0] == 2
    assert run("operators", "role", "maria", "overlord", "--as", "ada", password=PASSWORD)[0] == 2
    assert run("operators", "add", "kim", "--role", "specialist", "--as", "ada", "--password-stdin",
               password=PASSWORD, stdin="short\n")[0] == 2
    assert run("operators", "role", "maria")[0] == 2  # the role is missing
    # a disabled admin is no admin
    set_active(cli_env, "maria", True, actor="ada")
    add_operator(cli_env, "olga", PASSWORD, "admin", actor="ada")
    assert run("operators", "disable", "ada", "--as", "olga", password=PASSWORD)[0] == 0
    code, _, err = run("operators", "enable", "maria", "--as", "ada", password=PASSWORD)
    assert code == 1 and "sign-in as ada failed" in err
    verified()


def test_seeding_code_that_names_no_admin_is_still_audited(cli_env: Database) -> None:
    """The demo and test fixtures call recovery.operators directly: the first admin is the bootstrap;
    a later call that names no admin is recorded as ``unnamed`` (the CLI never makes one)."""
    add_operator(cli_env, "ada", PASSWORD, "admin")
    add_operator(cli_env, "ari", PASSWORD, "auditor")
    set_active(cli_env, "ari", False)
    assert [(e.actor, e.actor_role, e.action) for e in operator_events(cli_env)] == [
        (BOOTSTRAP, "admin", "operator_added"), (UNNAMED, "system", "operator_added"),
        (UNNAMED, "system", "operator_disabled")]
    from recovery.errors import Forbidden

    with pytest.raises(Forbidden, match="name yourself"):
        add_operator(cli_env, "eve", PASSWORD, "admin", allow_unnamed=False)
    verified()


def _operators(db: Database) -> list[Operator]:
    with db.read() as session:
        return list(session.exec(select(Operator).order_by(col(Operator.username))))


# ------------------------------------------------------------------------------------------ --as on case commands


def test_case_commands_refuse_a_wrong_password_an_unknown_or_disabled_operator(
    cli_env: Database, default_config: object
) -> None:
    seed_team(cli_env)
    add_operator(cli_env, "tom", PASSWORD, "specialist", actor="ada")
    set_active(cli_env, "tom", False, actor="ada")
    service = CaseService(cli_env, default_config)  # type: ignore[arg-type]
    case, _ = service.submit(new_draft("user-9"), SYSTEM)
    reference = case.reference or ""
    attempts = [("maria", "not her password"), ("nobody", PASSWORD), ("tom", PASSWORD)]
    for name, password in attempts:
        code, _, err = run("cases", "reject", reference, "--as", name, "--reason-code", "other", password=password)
        assert code == 1 and f"sign-in as {name} failed" in err, err
    # the prompt, when the variable is not set (hidden input, on stderr)
    code, _, err = run("cases", "reject", reference, "--as", "maria", "--reason-code", "other", stdin="nope nope\n")
    assert code == 1 and "password for maria" in err and "failed" in err
    after = service.get(reference)
    assert (after.case.status, after.case.version, len(after.events)) == ("submitted", 1, 1)

    # bad usage: exit 2, nothing asked, nothing changed
    usage = [
        ("cases", "approve", reference),  # no --as
        ("cases", "reject", reference, "--as", "maria", "--reason-code", "because"),
        ("cases", "reopen", reference, "--as", "omar"),  # no --reason
        ("cases", "change-payout", reference, "--as", "maria", "--reason", "asked"),  # nothing to change
        ("refunds", "record", reference, "--as", "maria"),  # no TX_HASH
        ("refunds", "list", "--network", "dogecoin"),
    ]
    for args in usage:
        code, _, err = run(*args, password=PASSWORD)
        assert code == 2, (args, err)
    # a rule of the state machine, by a signed-in operator: refused, exit 1, naming it
    code, _, err = run("cases", "close", reference, "--as", "maria", password=PASSWORD)
    assert code == 1 and "cannot close a case that is submitted" in err
    code, _, err = run("cases", "reopen", reference, "--as", "maria", "--reason", "why not", password=PASSWORD)
    assert code == 1 and "specialist may not reopen" in err
    code, _, err = run("cases", "approve", "RC-999999", "--as", "omar", password=PASSWORD)
    assert code == 1 and "no case RC-999999" in err
    assert service.get(reference).case.version == 1
    # and an allowed one works: the actor's role comes from the operators table
    code, out, err = run("cases", "reject", reference, "--as", "maria", "--reason-code", "other", "--json",
                         password=PASSWORD)
    assert code == 0, err
    assert '"status": "rejected"' in out and '"actor_role": "specialist"' in out
    last = service.get(reference).events[-1]
    assert (last.actor, last.actor_role, last.action) == ("maria", "specialist", "reject")
    verified()


def test_a_change_made_between_the_read_and_the_act_is_a_conflict(
    cli_env: Database, default_config: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command acts on the version it read: someone else's change meanwhile is refused (exit 1)."""
    from recovery.services import Actor, CaseView
    from recovery.vocabulary import Role

    seed_team(cli_env)
    service = CaseService(cli_env, default_config)  # type: ignore[arg-type]
    case, _ = service.submit(new_draft("user-3"), SYSTEM)
    reference = case.reference or ""
    read = CaseService.get

    def read_then_someone_else_writes(self: CaseService, ref: str, **kwargs: object) -> CaseView:
        view = read(self, ref, **kwargs)  # type: ignore[arg-type]
        service.note(ref, "meanwhile", Actor("omar", Role.APPROVER), expected_version=view.case.version)
        return view

    monkeypatch.setattr(CaseService, "get", read_then_someone_else_writes)
    code, _, err = run("cases", "reject", reference, "--as", "maria", "--reason-code", "other", password=PASSWORD)
    assert code == 1 and "was changed by someone else" in err
    monkeypatch.setattr(CaseService, "get", read)
    after = service.get(reference)
    assert after.case.status == "submitted" and [e.action for e in after.events] == ["submit", "note"]
