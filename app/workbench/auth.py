"""Sign-in: operator accounts (argon2id, ``recovery/operators.py``) or OIDC through ``st.login``.

Password sign-ins go through ``recovery.operators.sign_in``: throttled per account and per client
address (backoff, then a 15-minute lock), a one-time code for accounts with a second factor (and
for every approver and admin when ``RECOVERY_WORKBENCH_REQUIRE_TOTP=1``), audited. Single sign-on
identities map to accounts by the provider's issuer and subject, or a verified e-mail address; the
role always comes from the operators table, and an account with a second factor is asked for the
code after single sign-on too.

A session lives in ``st.session_state`` and ends after ``idle_minutes`` without activity or
``session_hours`` after sign-in, whichever comes first. On every run the operator is read again
from the database: a disabled account, or a changed role, takes effect at once.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeGuard

import streamlit as st
from sqlmodel import select

from app.workbench import ui
from app.workbench.context import Workbench, current
from recovery.models import Operator
from recovery.operators import (
    OidcMatch,
    SignInPolicy,
    SignInResult,
    match_oidc,
    needs_code,
    oidc_refused,
    sign_in,
)
from recovery.services import Actor
from recovery.vocabulary import Role

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


# ------------------------------------------------------------------------------- where from
def client_address() -> str:
    """The client's address for counting failed sign-ins: the last hop of ``X-Forwarded-For`` when
    the workbench is told to trust its proxy, else the connection's address; "unknown" when
    Streamlit does not know it (a local connection, a test)."""
    try:
        context = st.context
        if current().settings.trust_forwarded_for:
            forwarded = context.headers.get("X-Forwarded-For")
            hops = [hop.strip() for hop in forwarded.split(",")] if isinstance(forwarded, str) else []
            if hops and _is_address(hops[-1]):
                return hops[-1]
        address = context.ip_address
    except Exception:  # no request context (a bare script run)
        address = None
    return address if _is_address(address) else "unknown"


def _is_address(value: object) -> TypeGuard[str]:
    """An IPv4 or IPv6 address (anything else, say a test's stand-in context, is not counted by)."""
    if not isinstance(value, str) or len(value) > 64:
        return False
    try:
        ipaddress.ip_address(value)
    except ValueError:
        return False
    return True


def _policy(wb: Workbench) -> SignInPolicy:
    return SignInPolicy(require_totp=wb.settings.require_totp)


def _refusal(result: SignInResult) -> str:
    """The message of a refused sign-in (fixed text and system values only: it is rendered as Markdown)."""
    if result.outcome == "backoff":
        return f"Too many failed sign-ins: try again in {result.retry_after} s."
    if result.outcome == "locked" and result.locked_until is not None:
        return (f"This account is locked after repeated failed sign-ins, until "
                f"{result.locked_until:%Y-%m-%d %H:%M:%S} UTC. The right password is refused too until then.")
    if result.outcome == "code_needed":
        return "This account has a second factor: enter the 6-digit one-time code from your authenticator app."
    if result.outcome == "code_replayed":
        return "This one-time code was used already: wait for the next one."
    if result.outcome == "second_factor_missing":
        return ("Approvers and admins must sign in with a second factor here, and your account has none. "
                "Ask an administrator to enrol you (`recovery operators totp NAME`).")
    return "Wrong username or password (or one-time code), or the account is disabled."


# ------------------------------------------------------------------------------- OIDC
OIDC_OUTCOME = "wb_oidc_outcome"


def oidc_configured() -> bool:
    try:
        return "auth" in st.secrets
    except Exception:  # no secrets file at all
        return False


def oidc_match(claims: Mapping[str, object], wb: Workbench) -> OidcMatch:
    """The operator an identity maps to (``recovery.operators.match_oidc``): the provider's issuer
    and subject as an admin linked them, else a verified e-mail address recorded for an operator,
    within ``RECOVERY_WORKBENCH_OIDC_EMAIL_DOMAIN``. The role comes from the operators table."""
    with wb.db.read() as session:
        return match_oidc(session, claims, email_claim=wb.settings.oidc_claim,
                          email_domain=wb.settings.oidc_email_domain)


def _identity(claims: Mapping[str, object], wb: Workbench) -> str:
    return repr((claims.get("iss"), claims.get("sub"), claims.get(wb.settings.oidc_claim)))


def _oidc_session(wb: Workbench) -> SignedIn | None:
    if not oidc_configured() or not st.user.get("is_logged_in"):
        return None
    claims = dict(st.user.to_dict())
    identity = _identity(claims, wb)
    outcome = st.session_state.get(OIDC_OUTCOME)
    if isinstance(outcome, dict) and outcome.get("identity") == identity:
        return None  # refused, or waiting for the one-time code: the sign-in page says which
    match = oidc_match(claims, wb)
    if match.username is None:
        oidc_refused(wb.db, match, client=client_address(), now=wb.now())
        st.session_state[OIDC_OUTCOME] = {"identity": identity, "refused": OIDC_NOT_LINKED}
        return None
    if needs_code(wb.db, match.username):
        st.session_state[OIDC_OUTCOME] = {"identity": identity, "pending": match.username}
        return None
    return _oidc_finish(wb, identity, match.username, None)


def _oidc_finish(wb: Workbench, identity: str, username: str, code: str | None) -> SignedIn | None:
    result = sign_in(wb.db, username, None, code=code, via_oidc=True, client=client_address(), channel="oidc",
                     now=wb.now(), policy=_policy(wb))
    if result.operator is None:
        if code is not None and result.outcome in {"refused", "code_needed", "code_replayed", "backoff"}:
            ui.flash("error", _refusal(result) if result.outcome != "refused" else "Wrong one-time code.")
            return None
        message = OIDC_NOT_LINKED if result.outcome == "refused" else _refusal(result)
        st.session_state[OIDC_OUTCOME] = {"identity": identity, "refused": message}
        return None
    st.session_state.pop(OIDC_OUTCOME, None)
    _start(result.operator.username, result.operator.role, "oidc")
    info = st.session_state[SESSION_KEY]
    assert isinstance(info, SignedIn)
    return info


OIDC_NOT_LINKED = "Your identity is not linked to an active operator account. Ask an administrator."


def _oidc_code_sign_in() -> None:
    wb = current()
    code = str(st.session_state.get("oidc_code", ""))
    st.session_state["oidc_code"] = ""
    outcome = st.session_state.get(OIDC_OUTCOME)
    if not (isinstance(outcome, dict) and outcome.get("pending") and st.user.get("is_logged_in")
            and outcome.get("identity") == _identity(dict(st.user.to_dict()), wb)):
        ui.flash("error", "Sign in with single sign-on again.")
        st.session_state.pop(OIDC_OUTCOME, None)
        return
    if not code.strip():
        ui.flash("error", "Enter the 6-digit one-time code from your authenticator app.")
        return
    _oidc_finish(wb, str(outcome["identity"]), str(outcome["pending"]), code)


# ------------------------------------------------------------------------------- the sign-in page
def _password_sign_in() -> None:
    username = str(st.session_state.get("login_username", "")).strip().lower()
    password = str(st.session_state.get("login_password", ""))
    code = str(st.session_state.get("login_code", "")).strip()
    st.session_state["login_password"] = ""
    st.session_state["login_code"] = ""
    if not username or not password:
        ui.flash("error", "Enter your username and password.")
        return
    wb = current()
    result = sign_in(wb.db, username, password, code=code or None, client=client_address(), channel="workbench",
                     now=wb.now(), policy=_policy(wb))
    if result.operator is None:
        ui.flash("error", _refusal(result))
        return
    _start(result.operator.username, result.operator.role, "password")


def sign_in_page() -> None:
    st.title("Deposit recovery workbench")
    ui.show_flashes()
    outcome = st.session_state.get(OIDC_OUTCOME)
    if isinstance(outcome, dict) and outcome.get("pending"):
        st.info("Single sign-on done: your account also has a second factor.")
        with st.form("oidc_code_form", clear_on_submit=False):
            st.text_input("One-time code", key="oidc_code", max_chars=8, autocomplete="one-time-code")
            st.form_submit_button("Continue", on_click=_oidc_code_sign_in, type="primary", key="oidc_code_submit")
        st.button("Sign out of single sign-on", on_click=st.logout, key="oidc_logout")
        return
    if isinstance(outcome, dict) and outcome.get("refused"):
        st.error(str(outcome["refused"]))
        st.button("Sign out of single sign-on", on_click=st.logout, key="oidc_logout")
    with st.form("login", clear_on_submit=False):
        st.text_input("Username", key="login_username", autocomplete="username")
        st.text_input("Password", key="login_password", type="password", autocomplete="current-password")
        st.text_input("One-time code", key="login_code", max_chars=8, autocomplete="one-time-code",
                      help="The 6 digits from your authenticator app, if your account has a second factor.")
        st.form_submit_button("Sign in", on_click=_password_sign_in, type="primary", key="login_submit")
    if oidc_configured():
        provider = current().settings.oidc_provider
        st.button("Sign in with single sign-on", key="oidc_login",
                  on_click=(lambda: st.login(provider)) if provider else st.login)
    st.caption("Accounts are created by an administrator (`recovery operators add`).")
