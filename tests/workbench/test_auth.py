"""Sign-in, expiring sessions, disabled accounts, OIDC mapping and the pages each role gets."""

from __future__ import annotations

import pytest
from streamlit.testing.v1 import AppTest

from app.workbench import auth
from app.workbench.context import Workbench, WorkbenchSettings
from app.workbench.pages import pages_for
from recovery.operators import link_oidc, set_active
from recovery.vocabulary import Role
from tests.workbench.conftest import MAIN, markdown_texts, signed_in_app
from tests.workbench.seed import PASSWORD


def sign_in(at: AppTest, username: str, password: str) -> AppTest:
    at.text_input(key="login_username").input(username)
    at.text_input(key="login_password").input(password)
    return at.button(key="login_submit").click().run()


def titles(at: AppTest) -> list[str]:
    return [str(t.value) for t in at.title]


def test_signed_out_only_the_sign_in_page_exists(wb: Workbench) -> None:
    at = AppTest.from_file(str(MAIN), default_timeout=60).run()
    assert titles(at) == ["Deposit recovery workbench"]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/queue.py")


def test_password_sign_in_opens_the_queue(wb: Workbench) -> None:
    at = sign_in(AppTest.from_file(str(MAIN), default_timeout=60).run(), "sara", PASSWORD)
    assert not at.exception
    assert titles(at) == ["Queue"]
    assert "sara (specialist)" in [t.value for t in at.sidebar.text]
    # the password does not linger in the session
    assert at.session_state["login_password"] == ""


@pytest.mark.parametrize(("username", "password"), [("sara", "wrong password!!"), ("nobody", PASSWORD), ("", "")])
def test_a_failed_sign_in_stays_signed_out(wb: Workbench, username: str, password: str) -> None:
    at = sign_in(AppTest.from_file(str(MAIN), default_timeout=60).run(), username, password)
    assert titles(at) == ["Deposit recovery workbench"]
    assert at.error, "the operator is told why"
    assert auth.SESSION_KEY not in at.session_state


def test_a_disabled_account_cannot_sign_in_and_is_signed_out_at_once(wb: Workbench) -> None:
    at = signed_in_app("tom")
    assert titles(at) == ["Queue"]
    set_active(wb.db, "tom", False)
    at.run()
    assert titles(at) == ["Deposit recovery workbench"]
    assert any("disabled" in text for text in markdown_texts(at))
    at = sign_in(AppTest.from_file(str(MAIN), default_timeout=60).run(), "tom", PASSWORD)
    assert titles(at) == ["Deposit recovery workbench"]


def test_an_idle_session_expires(wb: Workbench) -> None:
    at = signed_in_app("sara")
    info = at.session_state[auth.SESSION_KEY]
    info.last_seen -= wb.settings.idle_minutes * 60 + 1
    at.run()
    assert titles(at) == ["Deposit recovery workbench"]
    assert any("without activity" in text for text in markdown_texts(at))


def test_a_session_ends_after_its_lifetime_even_when_active(wb: Workbench) -> None:
    at = signed_in_app("sara")
    info = at.session_state[auth.SESSION_KEY]
    info.signed_in_at -= wb.settings.session_hours * 3600 + 1
    at.run()
    assert titles(at) == ["Deposit recovery workbench"]
    assert any(f"{wb.settings.session_hours} hours" in text for text in markdown_texts(at))


def test_activity_keeps_a_session_alive(wb: Workbench) -> None:
    at = signed_in_app("sara")
    info = at.session_state[auth.SESSION_KEY]
    info.last_seen -= wb.settings.idle_minutes * 60 - 30
    at.run()
    assert titles(at) == ["Queue"]


def test_sign_out(wb: Workbench) -> None:
    at = signed_in_app("sara")
    at.sidebar.button(key="wb_sign_out").click().run()
    assert titles(at) == ["Deposit recovery workbench"]
    assert auth.SESSION_KEY not in at.session_state


def test_a_role_change_takes_effect_on_the_next_run(wb: Workbench) -> None:
    from sqlmodel import select

    from recovery.models import Operator

    at = signed_in_app("tom")
    at.switch_page("views/new_appeal.py").run()
    with wb.db.write() as session:
        operator = session.exec(select(Operator).where(Operator.username == "tom")).one()
        operator.role = Role.AUDITOR.value
        session.add(operator)
    at.run()
    assert "tom (auditor)" in [t.value for t in at.sidebar.text]
    with pytest.raises(ValueError, match="Could not find a navigation page"):
        at.switch_page("views/new_appeal.py")


PAGES_BY_ROLE = {
    Role.SPECIALIST: {"Queue", "Case", "New appeal", "Dashboard", "Configuration"},
    Role.APPROVER: {"Queue", "Case", "Approvals", "Dashboard", "Audit", "Configuration"},
    Role.ADMIN: {"Queue", "Case", "Approvals", "New appeal", "Dashboard", "Audit", "Configuration", "Operators"},
    Role.AUDITOR: {"Queue", "Case", "Dashboard", "Audit", "Configuration", "Operators"},
}


@pytest.mark.parametrize("role", list(PAGES_BY_ROLE))
def test_pages_by_role(role: Role) -> None:
    assert {p.title for p in pages_for(role)} == PAGES_BY_ROLE[role]


@pytest.mark.parametrize(("username", "hidden"), [
    ("sara", ["views/approvals.py", "views/audit.py", "views/operators.py"]),
    ("alice", ["views/new_appeal.py", "views/operators.py"]),
    ("ari", ["views/new_appeal.py", "views/approvals.py"]),
])
def test_a_role_cannot_open_the_pages_it_does_not_have(wb: Workbench, username: str, hidden: list[str]) -> None:
    at = signed_in_app(username)
    for page in hidden:
        with pytest.raises(ValueError, match="Could not find a navigation page"):
            at.switch_page(page)


# ------------------------------------------------------------------------------- OIDC
OIDC_SECRETS = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "test-cookie-secret-not-used",
    "client_id": "workbench",
    "client_secret": "unused",
    "server_metadata_url": "https://idp.invalid/.well-known/openid-configuration",
}


def oidc_app(wb: Workbench, claims: dict[str, object]) -> AppTest:
    wb.settings = WorkbenchSettings(oidc_email_domain="exchange.example")
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": True, **claims}
    return at.run()


def test_oidc_identity_of_an_operator_signs_in(wb: Workbench) -> None:
    """A verified e-mail address an admin recorded for the operator (issue 19: no longer the local part)."""
    link_oidc(wb.db, "alice", email="alice@exchange.example", actor="ada")
    at = oidc_app(wb, {"email": "Alice@exchange.example", "email_verified": True, "name": "Alice"})
    assert titles(at) == ["Queue"]
    assert "alice (approver)" in [t.value for t in at.sidebar.text]
    assert at.session_state[auth.SESSION_KEY].method == "oidc"


@pytest.mark.parametrize("email", ["alice@elsewhere.example", "mallory@exchange.example", ""])
def test_oidc_identity_without_an_operator_account_is_refused(wb: Workbench, email: str) -> None:
    at = oidc_app(wb, {"email": email})
    assert titles(at) == ["Deposit recovery workbench"]
    assert any("not linked to an active operator account" in str(e.value) for e in at.error)
    assert auth.SESSION_KEY not in at.session_state


def test_oidc_sign_in_button_only_when_configured(wb: Workbench) -> None:
    plain = AppTest.from_file(str(MAIN), default_timeout=60).run()
    assert "oidc_login" not in [b.key for b in plain.button]
    at = AppTest.from_file(str(MAIN), default_timeout=60)
    at.secrets["auth"] = OIDC_SECRETS
    at.user = {"is_logged_in": False}
    at.run()
    assert "oidc_login" in [b.key for b in at.button]
