"""Sign-in (issue 19), on SQLite and PostgreSQL: failed attempts counted per account and per client
address with a growing backoff, the lock after 5 failures in 15 minutes (the right password refused
too) and its end; the TOTP second factor (enrolment, codes computed with pyotp, a replayed code
refused, the requirement for approvers and admins); single sign-on identities matched by issuer and
subject or a verified e-mail address; every attempt an audit event (never a password or a code)
and the chain verifying; the argon2id check holding no transaction while it runs."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pyotp
import pytest
from sqlalchemy import text
from sqlmodel import col, select

from recovery import audit, operators
from recovery.db import Database
from recovery.errors import Conflict, ValidationFailed
from recovery.models import CaseEvent, Operator, SignInFailure
from recovery.operators import (
    INVALID_NAME,
    SignInPolicy,
    SignInResult,
    add_operator,
    assess,
    enroll_totp,
    link_oidc,
    match_oidc,
    remove_totp,
    sign_in,
)

PASSWORD = "correct horse battery staple"
WRONG = "wrong password!!"
T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
POLICY = SignInPolicy()
ISSUER = "https://idp.exchange.example"


@pytest.fixture
def team(database: Database) -> Iterator[Database]:
    """An admin (the bootstrap), a specialist and an approver."""
    add_operator(database, "ada", PASSWORD, "admin", now=T0)
    add_operator(database, "maria", PASSWORD, "specialist", actor="ada", now=T0)
    add_operator(database, "omar", PASSWORD, "approver", actor="ada", now=T0)
    yield database


def attempt(db: Database, name: str, password: str | None, at: datetime, *, client: str = "10.0.0.1",
            code: str | None = None, policy: SignInPolicy = POLICY, channel: str = "workbench") -> SignInResult:
    return sign_in(db, name, password, code=code, client=client, channel=channel, now=at, policy=policy)


def sign_in_events(db: Database) -> list[CaseEvent]:
    with db.read() as session:
        return list(session.exec(select(CaseEvent).where(col(CaseEvent.action).startswith("sign_in"))
                                 .order_by(col(CaseEvent.id))))


def chain_verifies(db: Database) -> None:
    with db.read() as session:
        result = audit.verify_chain(session)
    assert result.ok, result.problem


def s(seconds: float) -> timedelta:
    return timedelta(seconds=seconds)


# ------------------------------------------------------------------------------------------ the rule itself
def test_the_backoff_grows_and_the_fifth_failure_in_15_minutes_locks() -> None:
    assert [POLICY.delay(n, POLICY.account_free) for n in range(1, 5)] == [s(0), s(0), s(2), s(4)]
    assert [POLICY.delay(n, POLICY.client_free) for n in (5, 6, 7, 10, 11, 30)] == [
        s(0), s(2), s(4), s(32), s(60), s(60)]
    three = [T0, T0 + s(1), T0 + s(2)]
    throttle = assess(three, [], T0 + s(3), POLICY)
    assert throttle.refusal(T0 + s(3)) == "backoff_account" and throttle.retry_at == T0 + s(4)
    assert throttle.refusal(T0 + s(4)) is None
    five = [T0 + timedelta(minutes=3 * i) for i in range(5)]  # 12 minutes apart at most: locks
    locked = assess(five, [], T0 + timedelta(minutes=13), POLICY)
    assert locked.refusal(T0 + timedelta(minutes=13)) == "locked"
    assert locked.locked_until == T0 + timedelta(minutes=12 + 15)
    assert assess(five, [], T0 + timedelta(minutes=27), POLICY).refusal(T0 + timedelta(minutes=27)) is None
    spread = [T0 + timedelta(minutes=4 * i) for i in range(5)]  # 16 minutes: never 5 within 15
    assert assess(spread, [], T0 + timedelta(minutes=17), POLICY).locked_until is None


# ------------------------------------------------------------------------------------------ lock and backoff
def test_five_failures_lock_the_account_and_the_right_password_is_refused_until_it_ends(team: Database) -> None:
    db = team
    results = [attempt(db, "maria", WRONG, T0 + s(10 * i)).outcome for i in range(5)]  # past each backoff
    assert results == ["refused", "refused", "refused", "refused", "locked"]
    at = T0 + s(40)
    locked = attempt(db, "maria", PASSWORD, at + s(60))  # the right password, inside the lock
    assert locked.outcome == "locked" and locked.operator is None
    assert locked.locked_until is not None and "locked" in locked.message and "until" in locked.message
    assert f"{locked.locked_until:%H:%M:%S}" in locked.message and "right password is refused" in locked.message
    # another account is not locked by maria's failures (but the client has a few)
    assert attempt(db, "omar", PASSWORD, at + s(61), client="10.0.0.2").ok
    # the lock ends 15 minutes after the failure that set it
    assert attempt(db, "maria", PASSWORD, locked.locked_until - s(1)).outcome == "locked"
    after = attempt(db, "maria", PASSWORD, locked.locked_until)
    assert after.ok and after.operator is not None and after.operator.role == "specialist"

    actions = [(e.actor, e.actor_role, e.action, e.details.get("reason")) for e in sign_in_events(db)]
    assert actions == [
        *[("maria", "specialist", "sign_in_failed", "wrong_password")] * 5,
        ("maria", "specialist", "sign_in_locked", "locked"),
        ("omar", "approver", "sign_in", "password"),
        ("maria", "specialist", "sign_in_locked", "locked"),
        ("maria", "specialist", "sign_in", "password"),
    ]
    fifth = sign_in_events(db)[4]
    assert fifth.case_id is None and fifth.details["locked_until"] == locked.locked_until.isoformat()
    assert fifth.details["channel"] == "workbench" and fifth.details["client"] == "10.0.0.1"
    text_of_events = " ".join(str(e.details) for e in sign_in_events(db))
    assert WRONG not in text_of_events and PASSWORD not in text_of_events
    chain_verifies(db)


def test_inside_the_backoff_an_attempt_is_refused_without_a_check_saying_how_long(
        team: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    db = team
    for i in range(3):
        assert attempt(db, "maria", WRONG, T0 + s(i)).outcome == "refused"
    checks: list[str] = []
    real = operators._hasher
    monkeypatch.setattr(operators, "_hasher", _Counting(real, checks))
    waiting = attempt(db, "maria", PASSWORD, T0 + s(3))  # 3 failures: not before 2 s after the last one
    assert waiting.outcome == "backoff" and waiting.retry_after == 1 and "try again in 1 s" in waiting.message
    assert checks == [], "no password is checked inside the backoff"
    assert attempt(db, "maria", PASSWORD, T0 + s(4)).ok  # the wait is over; a success resets the count
    assert checks == ["verify"]
    for i in range(3):
        assert attempt(db, "maria", WRONG, T0 + s(10 + i)).outcome == "refused"


def test_a_client_address_is_slowed_down_across_accounts(team: Database) -> None:
    db = team
    names = ["ada", "maria", "omar", "nobody", "someone"]
    for i, name in enumerate(names):  # one failure per account: no account backoff
        assert attempt(db, name, WRONG, T0 + s(i), client="203.0.113.9").outcome == "refused"
    assert attempt(db, "ghost", WRONG, T0 + s(5), client="203.0.113.9").outcome == "refused"  # the 6th
    slowed = attempt(db, "maria", PASSWORD, T0 + s(6), client="203.0.113.9")
    assert slowed.outcome == "backoff" and slowed.retry_after == 1 and "from this address" in slowed.message
    assert attempt(db, "maria", PASSWORD, T0 + s(6), client="198.51.100.4").ok  # another address is not
    assert attempt(db, "omar", PASSWORD, T0 + s(7), client="203.0.113.9").ok


def test_an_unknown_name_is_counted_and_locked_like_an_account(team: Database,
                                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """The same argon2id check and the same answers whether or not the name exists."""
    db = team
    checks: list[str] = []
    monkeypatch.setattr(operators, "_hasher", _Counting(operators._hasher, checks))
    outcomes = []
    at = T0
    for _ in range(5):
        for name in ("nobody", "maria"):
            outcomes.append((name, attempt(db, name, WRONG, at, client=f"client-{name}").outcome))
        at += s(10)
    assert outcomes[-2:] == [("nobody", "locked"), ("maria", "locked")]
    assert [o for n, o in outcomes if n == "nobody"] == [o for n, o in outcomes if n == "maria"]
    assert checks == ["verify"] * 10, "a check per attempt, the unknown name's against the dummy hash"
    events = [e for e in sign_in_events(db) if e.actor == "nobody"]
    assert {(e.actor_role, e.action, e.details["reason"]) for e in events} == {
        ("unknown", "sign_in_failed", "unknown_operator")}
    # what cannot be a username (a password typed in the wrong box) is never written down
    attempt(db, "Hunter2 My Secret!", WRONG, at)
    with db.read() as session:
        stored = {f.username for f in session.exec(select(SignInFailure))}
    assert "hunter2 my secret!" not in stored and INVALID_NAME in stored
    assert sign_in_events(db)[-1].actor == INVALID_NAME
    chain_verifies(db)


def test_a_disabled_account_fails_like_a_wrong_password(team: Database) -> None:
    operators.set_active(team, "maria", False, actor="ada", now=T0)
    result = attempt(team, "maria", PASSWORD, T0)
    assert result.outcome == "refused" and result.operator is None
    assert sign_in_events(team)[-1].details["reason"] == "disabled"


# ------------------------------------------------------------------------------------------ the password check
class _Counting:
    """The real hasher, noting each verification."""

    def __init__(self, real: Any, calls: list[str]) -> None:
        self.real, self.calls = real, calls

    def verify(self, stored: str, password: str) -> bool:
        self.calls.append("verify")
        return bool(self.real.verify(stored, password))

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_write_is_not_blocked_while_a_wrong_password_is_checked(team: Database,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The argon2id check runs between two short transactions. Here it is held open (it waits for
    the test's signal) while another thread writes an audit event (the head row lock on PostgreSQL,
    the write lock on SQLite): the write commits while the check is still running."""
    db = team
    checking, release = threading.Event(), threading.Event()
    real = operators._hasher

    class HeldHasher:
        def verify(self, stored: str, password: str) -> bool:
            checking.set()
            if not release.wait(30):
                raise AssertionError("never released")
            return bool(real.verify(stored, password))

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(operators, "_hasher", HeldHasher())
    results: list[SignInResult] = []
    signer = threading.Thread(target=lambda: results.append(attempt(db, "maria", WRONG, T0)))
    signer.start()
    try:
        assert checking.wait(30), "the check did not start"
        wrote = threading.Event()

        def write() -> None:
            with db.write() as session:
                audit.append_event(session, case_id=None, actor="system", actor_role="system", action="probe",
                                   from_status=None, to_status=None, details={}, now=T0)
            wrote.set()

        writer = threading.Thread(target=write)
        writer.start()
        committed = wrote.wait(20)  # bounded: with the old code this write waited for the check
        if db.is_postgresql:
            with db.read() as session:
                open_transactions = session.execute(text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND state LIKE 'idle in transaction%'")).scalar()
            assert open_transactions == 0
        assert committed, "a write waited for the password check"
        assert not results, "the check was still running when the write committed"
    finally:
        release.set()
        signer.join(30)
    writer.join(30)
    assert [r.outcome for r in results] == ["refused"]
    assert [e.action for e in sign_in_events(db)] == ["sign_in_failed"]
    chain_verifies(db)


def test_a_password_changed_during_the_check_does_not_sign_in(team: Database, monkeypatch: pytest.MonkeyPatch) -> None:
    real = operators._hasher

    class ResetDuringCheck:
        def verify(self, stored: str, password: str) -> bool:
            ok = bool(real.verify(stored, password))
            operators.reset_password(team, "maria", "a brand new passphrase", actor="ada", now=T0)
            return ok

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    monkeypatch.setattr(operators, "_hasher", ResetDuringCheck())
    assert attempt(team, "maria", PASSWORD, T0).outcome == "refused"
    assert sign_in_events(team)[-1].details["reason"] == "changed_meanwhile"


# ------------------------------------------------------------------------------------------ second factor
def code_at(secret: str, at: datetime) -> str:
    return str(pyotp.TOTP(secret).at(at))


def test_totp_enrolment_then_every_sign_in_asks_for_a_code_accepted_once(team: Database) -> None:
    db = team
    enrolment = enroll_totp(db, "maria", actor="ada", now=T0)
    assert enrolment.uri.startswith("otpauth://totp/") and f"secret={enrolment.secret}" in enrolment.uri
    assert "issuer=Deposit%20recovery" in enrolment.uri
    with db.read() as session:
        stored = session.exec(select(Operator).where(Operator.username == "maria")).one()
    assert stored.totp_secret == enrolment.secret and stored.totp_enrolled_at == T0
    event = [e for e in _events(db) if e.action == "operator_totp_enrolled"][-1]
    assert (event.actor, event.details) == ("ada", {"username": "maria", "role": "specialist", "replaced": False})
    assert enrolment.secret not in str(event.details)

    at = T0 + s(60)
    needed = attempt(db, "maria", PASSWORD, at)
    assert needed.outcome == "code_needed" and "one-time code" in needed.message
    assert attempt(db, "maria", PASSWORD, at, code="000000" if code_at(enrolment.secret, at) != "000000"
                   else "111111").outcome == "refused"
    code = code_at(enrolment.secret, at)
    assert attempt(db, "maria", WRONG, at + s(2), code=code).outcome == "refused"  # the code alone is not enough
    signed = attempt(db, "maria", PASSWORD, at + s(5), code=code)  # past the backoff of 3 failures
    assert signed.ok and signed.operator is not None
    replayed = attempt(db, "maria", PASSWORD, at + s(6), code=code)  # the same code, within its window
    assert replayed.outcome == "code_replayed" and replayed.operator is None
    assert "used already" in replayed.message
    # the next step's code is accepted; then a code of an earlier step, though still inside the drift
    # window, is not: it is older than the last one accepted
    assert attempt(db, "maria", PASSWORD, at + s(40), code=code_at(enrolment.secret, at + s(30))).ok
    assert attempt(db, "maria", PASSWORD, at + s(41), code=code).outcome == "code_replayed"
    later = at + s(120)
    assert attempt(db, "maria", PASSWORD, later, code=code_at(enrolment.secret, later)).ok
    # one step of clock drift either side is accepted
    drift = later + s(60)
    assert attempt(db, "maria", PASSWORD, drift, code=code_at(enrolment.secret, drift + s(30))).ok

    reasons = [(e.action, e.details.get("reason")) for e in sign_in_events(db)]
    assert ("sign_in", "password+totp") in reasons and ("sign_in_failed", "code_replayed") in reasons
    assert ("sign_in_failed", "code_missing") in reasons and ("sign_in_failed", "code_invalid") in reasons
    assert all(code not in str(e.details) for e in sign_in_events(db))
    # removed: the password alone again
    remove_totp(db, "maria", actor="ada", now=later)
    assert attempt(db, "maria", PASSWORD, later + s(300)).ok
    chain_verifies(db)


def test_approvers_and_admins_need_a_second_factor_when_required(team: Database) -> None:
    db = team
    required = SignInPolicy(require_totp=True)
    refused = attempt(db, "omar", PASSWORD, T0, policy=required)
    assert refused.outcome == "second_factor_missing" and refused.operator is None
    assert "second factor" in refused.message and "recovery operators totp omar" in refused.message
    assert attempt(db, "omar", PASSWORD, T0, policy=SignInPolicy()).ok  # not required: signs in
    assert attempt(db, "maria", PASSWORD, T0, policy=required).ok  # a specialist needs none
    assert attempt(db, "omar", WRONG, T0 + s(1), policy=required).outcome == "refused"  # says nothing then
    enrolment = enroll_totp(db, "omar", actor="ada", now=T0)
    at = T0 + s(90)
    assert attempt(db, "omar", PASSWORD, at, policy=required, code=code_at(enrolment.secret, at)).ok
    events = sign_in_events(db)
    assert (events[0].action, events[0].actor_role, events[0].details["reason"]) == (
        "sign_in_failed", "approver", "second_factor_missing")


def test_the_requirement_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_WORKBENCH_REQUIRE_TOTP", "1")
    assert SignInPolicy.from_environment().require_totp
    monkeypatch.setenv("RECOVERY_WORKBENCH_REQUIRE_TOTP", "0")
    assert not SignInPolicy.from_environment().require_totp


def _events(db: Database) -> list[CaseEvent]:
    with db.read() as session:
        return list(session.exec(select(CaseEvent).order_by(col(CaseEvent.id))))


# ------------------------------------------------------------------------------------------ single sign-on
def match(db: Database, claims: dict[str, object], domain: str | None = "exchange.example") -> operators.OidcMatch:
    with db.read() as session:
        return match_oidc(session, claims, email_domain=domain)


def test_oidc_identities_match_by_issuer_and_subject_or_a_verified_email(team: Database) -> None:
    db = team
    link_oidc(db, "omar", issuer=ISSUER, subject="248289761001", actor="ada", now=T0)
    link_oidc(db, "maria", email="Maria@Exchange.example", actor="ada", now=T0)

    by_subject = match(db, {"iss": ISSUER, "sub": "248289761001", "email": "someone@elsewhere.example"})
    assert (by_subject.username, by_subject.via) == ("omar", "subject")
    assert match(db, {"iss": "https://other-idp.example", "sub": "248289761001"}).username is None
    assert match(db, {"iss": ISSUER, "sub": "other"}).username is None

    verified = match(db, {"iss": ISSUER, "sub": "x1", "email": "maria@exchange.example", "email_verified": True})
    assert (verified.username, verified.via) == ("maria", "email")
    assert match(db, {"email": "MARIA@exchange.example", "email_verified": "true"}).username == "maria"
    for flag in (False, "false", None, 1, "1"):
        claims: dict[str, object] = {"iss": ISSUER, "sub": "x1", "email": "maria@exchange.example"}
        if flag is not None:
            claims["email_verified"] = flag
        refused = match(db, claims)
        assert refused.username is None and "not verified" in refused.reason, flag
    # the domain rule stays an extra condition: no domain set, no e-mail matching
    assert match(db, {"email": "maria@exchange.example", "email_verified": True}, domain=None).username is None
    # the local part is no longer a username: only a recorded address matches
    assert match(db, {"email": "ada@exchange.example", "email_verified": True}).username is None
    # an account linked to a subject is not taken over by another identity with its address
    link_oidc(db, "omar", email="omar@exchange.example", actor="ada", now=T0)
    assert match(db, {"iss": ISSUER, "sub": "intruder", "email": "omar@exchange.example",
                      "email_verified": True}).username is None


def test_a_role_in_the_token_is_ignored(team: Database) -> None:
    """The caller takes the role from the operators table: a token claiming admin changes nothing."""
    db = team
    link_oidc(db, "maria", issuer=ISSUER, subject="maria-sub", actor="ada", now=T0)
    found = match(db, {"iss": ISSUER, "sub": "maria-sub", "role": "admin", "roles": ["admin"], "groups": ["admins"]})
    assert found.username == "maria"
    result = sign_in(db, "maria", None, via_oidc=True, client="10.0.0.1", channel="oidc", now=T0, policy=POLICY)
    assert result.ok and result.operator is not None and result.operator.role == "specialist"
    event = sign_in_events(db)[-1]
    assert (event.action, event.actor_role, event.details) == (
        "sign_in", "specialist", {"channel": "oidc", "client": "10.0.0.1", "reason": "oidc"})


def test_linking_is_audited_and_an_identity_belongs_to_one_operator(team: Database) -> None:
    db = team
    link_oidc(db, "omar", issuer=ISSUER, subject="s-1", email="omar@exchange.example", actor="ada", now=T0)
    with pytest.raises(Conflict, match="already linked to omar"):
        link_oidc(db, "maria", issuer=ISSUER, subject="s-1", actor="ada", now=T0)
    with pytest.raises(Conflict, match="already recorded for omar"):
        link_oidc(db, "maria", email="OMAR@exchange.example", actor="ada", now=T0)
    with pytest.raises(ValidationFailed):
        link_oidc(db, "maria", issuer=ISSUER, actor="ada", now=T0)  # a subject goes with the issuer
    with pytest.raises(ValidationFailed):
        link_oidc(db, "maria", email="not an address", actor="ada", now=T0)
    link_oidc(db, "omar", clear=True, actor="ada", now=T0)
    linked = [(e.actor, e.action, e.details) for e in _events(db) if e.action.startswith("operator_oidc")]
    assert linked == [
        ("ada", "operator_oidc_linked", {"username": "omar", "issuer": ISSUER, "subject": "s-1",
                                         "email": "omar@exchange.example"}),
        ("ada", "operator_oidc_unlinked", {"username": "omar"}),
    ]
    chain_verifies(db)
