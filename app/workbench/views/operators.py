"""Operators: workbench accounts (admins add, disable and enable them; auditors read)."""

from __future__ import annotations

import streamlit as st

from app.workbench import auth, ui
from app.workbench.context import current
from recovery.errors import ServiceError
from recovery.operators import add_operator, list_operators, set_active
from recovery.vocabulary import OPERATOR_ROLES, Role


def _add() -> None:
    info = auth.signed_in()
    if info is None or Role(info.role) is not Role.ADMIN:
        ui.flash("error", "Only administrators manage operator accounts.")
        return
    state = st.session_state
    username = str(state.get("op_username") or "").strip()
    password = str(state.get("op_password") or "")
    confirm = str(state.get("op_password2") or "")
    state["op_password"] = state["op_password2"] = ""
    if password != confirm:
        ui.flash("error", "The two passwords differ.")
        return
    try:
        operator = add_operator(current().db, username, password, str(state.get("op_role") or ""),
                                actor=info.username, allow_unnamed=False)
    except ServiceError as exc:
        ui.service_error(exc)
        return
    state["op_username"] = ""
    ui.flash("success", f"Operator account created ({operator.role}).", [operator.username])


def _set_active(username: str, active: bool) -> None:
    info = auth.signed_in()
    if info is None or Role(info.role) is not Role.ADMIN:
        ui.flash("error", "Only administrators manage operator accounts.")
        return
    if username == info.username and not active:
        ui.flash("error", "You cannot disable your own account.")
        return
    try:
        set_active(current().db, username, active, actor=info.username, allow_unnamed=False)
    except ServiceError as exc:
        ui.service_error(exc)
        return
    ui.flash("success", "Account enabled." if active else "Account disabled: it can no longer sign in.", [username])


def render() -> None:
    info = auth.signed_in()
    if info is None:
        return
    wb = current()
    is_admin = Role(info.role) is Role.ADMIN
    st.title("Operators")
    operators = list_operators(wb.db)
    ui.table(
        [{"username": o.username, "role": o.role, "active": "yes" if o.active else "no",
          "second factor": "totp" if o.totp_secret else "-",
          "single sign-on": ", ".join(x for x in ("subject" if o.oidc_subject else "", o.email or "") if x) or "-",
          "last sign-in": o.last_login_at, "created": o.created_at} for o in operators],
        ["username", "role", "active", "second factor", "single sign-on", "last sign-in", "created"],
        key="op_table",
    )
    if not is_admin:
        st.info("Read-only: only administrators manage accounts.")
        return
    left, right = st.columns(2)
    with left, st.form("op_add"):
        st.markdown("**Add an operator**")
        st.text_input("Username", key="op_username")
        st.selectbox("Role", [r.value for r in OPERATOR_ROLES], key="op_role")
        st.text_input("Password (12 characters or more)", type="password", key="op_password")
        st.text_input("Password again", type="password", key="op_password2")
        st.form_submit_button("Add", on_click=_add, key="op_add_submit")
    with right, st.form("op_toggle"):
        st.markdown("**Disable or enable an account**")
        names = [o.username for o in operators]
        st.selectbox("Account", names, key="op_toggle_user")
        cols = st.columns(2)
        selected = str(st.session_state.get("op_toggle_user") or (names[0] if names else ""))
        cols[0].form_submit_button("Disable", key="op_disable", on_click=lambda: _set_active(
            str(st.session_state.get("op_toggle_user") or selected), False))
        cols[1].form_submit_button("Enable", key="op_enable", on_click=lambda: _set_active(
            str(st.session_state.get("op_toggle_user") or selected), True))


render()
