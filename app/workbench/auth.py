"""Sign-in: operator accounts (argon2id, ``recovery/operators.py``) or OIDC through ``st.login``.

A session lives in ``st.session_state`` and ends after ``idle_minutes`` without activity or
``session_hours`` after sign-in, whichever comes first. On every run the operator is read again
from the database: a disabled account, or a changed role, takes effect at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st
from sqlmodel import select

from app.workbench import ui
from app.workbench.context import Workbench, current
from recovery.models import Operator
from recovery.operators import authenticate
from recovery.services import Actor
from recovery.vocabulary import OPERATOR_ROLES, Role

SESSION_KEY = "wb_session"
#: wall clock of the sessions (tests move sessions back in time instead of patching this)
clock: Callable[[], float] = time.time


@dataclass
class SignedIn:
    username: str
    role: str
    method: str  # "password" | "oidc"
    signed_in_at: float
    last_seen: float

    @property
    def actor(self) -> Actor:
        return Actor(self.username, Role(self.role))


def _load_operator(wb: Workbench, username: str) -> Operator | None:
    with wb.db.read() as session:
        return session.exec(select(Operator).where(Operator.username == username)).first()


def _start(username: str, role: str, method: str) -> None:
    now = clock()
    st.session_state[SESSION_KEY] = SignedIn(username, role, method, now, now)


def sign_out(message: str | None = None) -> None:
    """End the workbench session (and the OIDC identity cookie, if that is how it began)."""
    info = st.session_state.pop(SESSION_KEY, None)
    for key in [k for k in st.session_state if str(k).startswith("wb_") and k != "wb_flash"]:
        del st.session_state[key]
    if message:
        ui.flash("info", message)
    if isinstance(info, SignedIn) and info.method == "oidc" and oidc_configured():
        st.logout()


def session_expired(info: SignedIn, wb: Workbench, now: float) -> str | None:
    settings = wb.settings
    if now - info.signed_in_at > settings.session_hours * 3600:
        return f"Your session ended after {settings.session_hours} hours. Please sign in again."
    if now - info.last_seen > settings.idle_minutes * 60:
        return f"Your session ended after {settings.idle_minutes} minutes without activity. Please sign in again."
    return None


def signed_in() -> SignedIn | None:
    """The current session, checked (expiry, account still active, role) and touched; or None."""
    wb = current()
    info = st.session_state.get(SESSION_KEY)
    if not isinstance(info, SignedIn):
        return _oidc_session(wb)
    now = clock()
    expired = session_expired(info, wb, now)
    if expired:
        sign_out(expired)
        return None
    operator = _load_operator(wb, info.username)
    if operator is None or not operator.active:
        sign_out("Your account is disabled. Ask an administrator.")
        return None
    info.role = operator.role
    info.last_seen = now
    return info


# ------------------------------------------------------------------------------- OIDC
def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def oidc_username(claims: dict[str, object], wb: Workbench) -> str | None:
    """The operator username an identity maps to, or None.

    The claim named by ``RECOVERY_WORKBENCH_OIDC_CLAIM`` must name an operator account. An e-mail
    address is accepted only in the domain set by ``RECOVERY_WORKBENCH_OIDC_EMAIL_DOMAIN``, and
    then its local part is the username.
    """
    value = claims.get(wb.settings.oidc_claim)
    if not isinstance(value, str) or not value:
        return None
    value = value.strip().lower()
    if "@" in value:
        local, _, domain = value.rpartition("@")
        allowed = (wb.settings.oidc_email_domain or "").strip().lower()
        if not allowed or domain != allowed:
            return None
        value = local
    return value


def _oidc_session(wb: Workbench) -> SignedIn | None:
    if not oidc_configured() or not st.user.get("is_logged_in"):
        return None
    username = oidc_username(dict(st.user.to_dict()), wb)
    operator = _load_operator(wb, username) if username else None
    if operator is None or not operator.active or operator.role not in {r.value for r in OPERATOR_ROLES}:
        st.session_state["wb_oidc_refused"] = True
        return None
    _start(operator.username, operator.role, "oidc")
    info = st.session_state[SESSION_KEY]
    assert isinstance(info, SignedIn)
    return info


# ------------------------------------------------------------------------------- the sign-in page
def _password_sign_in() -> None:
    username = str(st.session_state.get("login_username", "")).strip().lower()
    password = str(st.session_state.get("login_password", ""))
    st.session_state["login_password"] = ""
    if not username or not password:
        ui.flash("error", "Enter your username and password.")
        return
    operator = authenticate(current().db, username, password)
    if operator is None:
        ui.flash("error", "Wrong username or password, or the account is disabled.")
        return
    _start(operator.username, operator.role, "password")


def sign_in_page() -> None:
    st.title("Deposit recovery workbench")
    ui.show_flashes()
    if st.session_state.pop("wb_oidc_refused", False):
        st.error("Your identity is not linked to an active operator account. Ask an administrator.")
        st.button("Sign out of single sign-on", on_click=st.logout, key="oidc_logout")
    with st.form("login", clear_on_submit=False):
        st.text_input("Username", key="login_username", autocomplete="username")
        st.text_input("Password", key="login_password", type="password", autocomplete="current-password")
        st.form_submit_button("Sign in", on_click=_password_sign_in, type="primary", key="login_submit")
    if oidc_configured():
        provider = current().settings.oidc_provider
        st.button("Sign in with single sign-on", key="oidc_login",
                  on_click=(lambda: st.login(provider)) if provider else st.login)
    st.caption("Accounts are created by an administrator (`recovery operators add`).")
