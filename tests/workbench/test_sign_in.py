"""The workbench's sign-in against guessing (issue 19), through AppTest: the backoff and the lock
(the right password refused while locked, the lock's end reached by moving the workbench's clock),
per client address, the one-time code (enrolment, sign-in, a replayed code), the requirement for
approvers and admins, single sign-on identities (an unverified e-mail address refused, issuer and
subject, a role claim ignored, the code after single sign-on), and the audit events."""

from __future__ import annotations

from datetime import timedelta
from types import SimpleNamespace

import pyotp
import pytest
from sqlmodel import col, select
from streamlit.testing.v1 import AppTest

from app.workbench import auth
from app.workbench.context import Workbench, WorkbenchSettings
from recovery.audit import verify_chain
from recovery.models import CaseEvent
from recovery.operators import enroll_totp, link_oidc
from tests.conftest import Clock
from tests.workbench.conftest import MAIN
from tests.workbench.seed import PASSWORD, World
from tests.workbench.test_auth import OIDC_SECRETS, titles

WRONG = "not the password at all"
ISSUER = "https://idp.exchange.example"


def fresh() -> AppTest:
    return AppTest.from_file(str(MAIN), default_timeout=60).run()


def attempt(at: AppTest, username: str, password: str, code: str = "") -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    at.text_input(key="login_code").input(code)
    return at.button(key="login_submit").click().run()


def errors(at: AppTest) -> list[str]:
    return [str(e.value) for e in at.error]


def sign_in_events(wb: Workbench) -> list[CaseEvent]:
    with wb.db.read() as session:
        return list(session.exec(select(CaseEvent).where(col(CaseEvent.action).startswith("sign_in"))
                                 .order_by(col(CaseEvent.id))))


def chain_verifies(wb: Workbench) -> None:
    with wb.db.read() as session:
        result = verify_chain(session)
    assert result.ok, result.problem


def test_backoff_then_lock_then_the_lock_ends(seeded_any: tuple[Workbench, World], wb_clock: Clock) -> None:
    """On SQLite and PostgreSQL."""
    wb = seeded_any[0]
    at = fresh()
    for _ in range(3):
        at = attempt(at, "sara", WRONG)
        assert errors(at) == ["Wrong username or password (or one-time code), or the account is disabled."]
    # the clock has not moved: three failures mean 2 s before the next attempt is even checked
    at = attempt(at, "sara", PASSWORD)
    assert errors(at) == ["Too many failed sign-ins: try again in 2 s."]
    assert titles(at) == ["Deposit recovery workbench"] and auth.SESSION_KEY not in at.session_state
    wb_clock.advance(seconds=5)
    attempt(at, "sara", WRONG)
    wb_clock.advance(seconds=10)
    at = attempt(at, "sara", WRONG)  # the fifth failure within 15 minutes
    [locked] = errors(at)
    assert locked.startswith("This account is locked after repeated failed sign-ins, until ")
    until = f"{wb_clock.now + timedelta(minutes=15):%Y-%m-%d %H:%M:%S}"
    assert until in locked
    wb_clock.advance(minutes=14, seconds=59)
    at = attempt(at, "sara", PASSWORD)  # the right password, refused while locked
    assert errors(at) == [locked] and titles(at) == ["Deposit recovery workbench"]
    wb_clock.advance(seconds=1)
    at = attempt(at, "sara", PASSWORD)
    assert not at.exception and titles(at) == ["Queue"]
    assert "sara (specialist)" in [t.value for t in at.sidebar.text]

    events = sign_in_events(wb)
    assert [(e.actor, e.action, e.details["reason"]) for e in events] == [
        *[("sara", "sign_in_failed", "wrong_password")] * 3,
        ("sara", "sign_in_locked", "backoff_account"),
        *[("sara", "sign_in_failed", "wrong_password")] * 2,
        ("sara", "sign_in_locked", "locked"),
        ("sara", "sign_in", "password"),
    ]
    assert {(e.details["channel"], e.details["client"]) for e in events} == {("workbench", "unknown")}
    assert all(WRONG not in str(e.details) and PASSWORD not in str(e.details) for e in events)
    chain_verifies(wb)


def test_failures_from_one_address_slow_it_down_across_accounts(wb: Workbench,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    address = {"value": "203.0.113.9"}
    monkeypatch.setattr(auth, "client_address", lambda: address["value"])
    at = fresh()
    for name in ("sara", "tom", "alice", "bob", "ada", "nobody"):  # one each: no account is slowed
        at = attempt(at, name, WRONG)
        assert errors(at) == ["Wrong username or password (or one-time code), or the account is disabled."]
    at = attempt(at, "ari", PASSWORD)  # 6 failures from this address
    assert errors(at) == ["Too many failed sign-ins: try again in 2 s."]
    address["value"] = "198.51.100.4"
    at = attempt(at, "ari", PASSWORD)
    assert titles(at) == ["Queue"]
    assert {e.details["client"] for e in sign_in_events(wb)} == {"203.0.113.9", "198.51.100.4"}


def test_the_client_address_is_unknown_without_a_request() -> None:
    assert auth.client_address() == "unknown"


def test_the_client_address_comes_from_the_request(wb: Workbench, monkeypatch: pytest.MonkeyPatch) -> None:
    request = SimpleNamespace(ip_address="192.0.2.10", headers={"X-Forwarded-For": "198.51.100.7, 203.0.113.20"})
    monkeypatch.setattr(auth, "st", SimpleNamespace(context=request))
    assert auth.client_address() == "192.0.2.10"  # the proxy's header is not trusted by default
    wb.settings = WorkbenchSettings(trust_forwarded_for=True)
    assert auth.client_address() == "203.0.113.20"  # the hop our proxy added
    request.headers = {"X-Forwarded-For": "<script>"}
    assert auth.client_address() == "192.0.2.10"  # not an address: the connection's
    request.ip_address = None  # a local connection
    assert auth.client_address() == "unknown"


def test_a_second_factor_is_asked_for_and_a_code_is_accepted_once(wb: Workbench, wb_clock: Clock) -> None:
    enrolment = enroll_totp(wb.db, "sara", actor="ada", now=wb_clock.now)
    totp = pyotp.TOTP(enrolment.secret)
    at = attempt(fresh(), "sara", PASSWORD)
    assert errors(at) == ["This account has a second factor: enter the 6-digit one-time code from your "
                          "authenticator app."]
    code = totp.at(wb_clock.now)
    at = attempt(at, "sara", PASSWORD, code)
    assert titles(at) == ["Queue"]
    assert at.session_state["login_code"] == "" and at.session_state["login_password"] == ""
    # the same code, in another browser, within its 30 s
    other = attempt(fresh(), "sara", PASSWORD, code)
    assert errors(other) == ["This one-time code was used already: wait for the next one."]
    assert titles(other) == ["Deposit recovery workbench"]
    wb_clock.advance(seconds=30)
    assert titles(attempt(other, "sara", PASSWORD, totp.at(wb_clock.now))) == ["Queue"]
    assert [(e.action, e.details["reason"]) for e in sign_in_events(wb)] == [
        ("sign_in_failed", "code_missing"), ("sign_in", "password+totp"), ("sign_in_failed", "code_replayed"),
        ("sign_in", "password+totp")]
    assert all(enrolment.secret not in str(e.details) for e in sign_in_events(wb))
    chain_verifies(wb)


def test_approvers_and_admins_need_a_second_factor_when_required(wb: Workbench, wb_clock: Clock) -> None:
    wb.settings = WorkbenchSettings(require_totp=True)
    at = attempt(fresh(), "alice", PASSWORD)
    [message] = errors(at)
    assert message.startswith("Approvers and admins must sign in with a second factor here, and your account has "
                              "none.")
    assert titles(at) == ["Deposit recovery workbench"]
    assert titles(attempt(fresh(), "sara", PASSWORD)) == ["Queue"]  # a specialist needs none
    enrolment = enroll_totp(wb.db, "alice", actor="ada", now=wb_clock.now)
    at = attempt(fresh(), "alice", PASSWORD, pyotp.TOTP(enrolment.secret).at(wb_clock.now))
    assert titles(at) == ["Queue"] and "alice (approver)" in [t.value for t in at.sidebar.text]


def test_the_environment_variable_sets_the_requirement(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RECOVERY_WORKBENCH_REQUIRE_TOTP", "1")
    assert WorkbenchSettings().require_totp


# ------------------------------------------------------------------------------- single sign-on
def oidc(wb: Workbench, claims: dict[str, object]) -> AppTest:
    wb.settings = WorkbenchSettings(oidc_email_domain="exchange.example")
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": True, **claims}
    return at.run()


def test_an_unverified_email_is_refused(wb: Workbench) -> None:
    link_oidc(wb.db, "alice", email="alice@exchange.example", actor="ada")
    for flag in (False, None):
        claims: dict[str, object] = {"iss": ISSUER, "sub": "a-1", "email": "alice@exchange.example"}
        if flag is not None:
            claims["email_verified"] = flag
        at = oidc(wb, claims)
        assert titles(at) == ["Deposit recovery workbench"]
        assert "Your identity is not linked to an active operator account. Ask an administrator." in errors(at)
        assert auth.SESSION_KEY not in at.session_state
        at.run()  # the refusal is audited once per identity, not on every run
    refused = [e for e in sign_in_events(wb) if e.action == "sign_in_failed"]
    assert [(e.actor, e.actor_role, e.details) for e in refused] == [
        ("alice@exchange.example", "unknown",
         {"channel": "oidc", "client": "unknown", "reason": "the e-mail address is not verified by the provider"}),
    ] * 2


def test_issuer_and_subject_sign_in_with_the_role_of_the_operators_table(wb: Workbench) -> None:
    link_oidc(wb.db, "sara", issuer=ISSUER, subject="248289761001", actor="ada")
    at = oidc(wb, {"iss": ISSUER, "sub": "248289761001", "email": "sara@elsewhere.example",
                   "role": "admin", "roles": ["admin"], "groups": ["admins"]})
    assert titles(at) == ["Queue"]
    assert "sara (specialist)" in [t.value for t in at.sidebar.text]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/operators.py")
    assert at.session_state[auth.SESSION_KEY].method == "oidc"
    event = sign_in_events(wb)[-1]
    assert (event.actor, event.actor_role, event.action, event.details["reason"]) == (
        "sara", "specialist", "sign_in", "oidc")
    # another provider with the same subject is someone else
    other = oidc(wb, {"iss": "https://other-idp.example", "sub": "248289761001"})
    assert titles(other) == ["Deposit recovery workbench"]


def test_an_operator_with_a_second_factor_gives_the_code_after_single_sign_on(wb: Workbench,
                                                                              wb_clock: Clock) -> None:
    link_oidc(wb.db, "bob", issuer=ISSUER, subject="bob-sub", actor="ada")
    enrolment = enroll_totp(wb.db, "bob", actor="ada", now=wb_clock.now)
    at = oidc(wb, {"iss": ISSUER, "sub": "bob-sub"})
    assert titles(at) == ["Deposit recovery workbench"] and auth.SESSION_KEY not in at.session_state
    at.text_input(key="oidc_code").input("000000" if pyotp.TOTP(enrolment.secret).at(wb_clock.now) != "000000"
                                         else "111111")
    at.button(key="oidc_code_submit").click().run()
    assert errors(at) == ["Wrong one-time code."] and auth.SESSION_KEY not in at.session_state
    at.text_input(key="oidc_code").input(pyotp.TOTP(enrolment.secret).at(wb_clock.now))
    at.button(key="oidc_code_submit").click().run()
    assert titles(at) == ["Queue"] and "bob (approver)" in [t.value for t in at.sidebar.text]
    assert [(e.action, e.details["reason"]) for e in sign_in_events(wb)] == [
        ("sign_in_failed", "code_invalid"), ("sign_in", "oidc+totp")]
    chain_verifies(wb)
