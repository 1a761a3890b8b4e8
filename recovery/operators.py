"""Workbench accounts: argon2id password hashes (argon2-cffi), roles, sign-in checks.

Every change to an account (added, disabled, enabled, role changed, password reset) is an audit
event about no case, written in the same transaction as the change, naming the admin who made it
(issue 17 rule 5, issue 19). Who may make it:

- ``actor`` names the admin: they must be an enabled admin when the change commits (the CLI's
  ``--as NAME``, after their password was checked).
- no ``actor`` while no enabled admin exists: the **bootstrap** (audited as ``bootstrap``), so a
  fresh installation can create its first admin.
- no ``actor`` once an enabled admin exists: refused when ``allow_unnamed`` is False (the CLI);
  otherwise an in-process call that names no one (seeding: the demo, test fixtures) is allowed and
  audited as ``unnamed`` with role ``system``, so it is never invisible. Front ends name the admin.

Disabling or demoting the last enabled admin is refused: it would reopen the bootstrap.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, func, select

from recovery import audit
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import Conflict, FieldError, Forbidden, ValidationFailed
from recovery.models import Operator
from recovery.vocabulary import OPERATOR_ROLES, Role

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()

#: the actor of an operator change made while no enabled admin exists (the first admin's creation)
BOOTSTRAP = "bootstrap"
#: the actor of an in-process change that named no admin although one exists (seeding code)
UNNAMED = "unnamed"

#: the audit actions of operator changes (events about no case)
OPERATOR_ADDED = "operator_added"
OPERATOR_DISABLED = "operator_disabled"
OPERATOR_ENABLED = "operator_enabled"
OPERATOR_ROLE_CHANGED = "operator_role_changed"
OPERATOR_PASSWORD_RESET = "operator_password_reset"  # noqa: S105  (an audit action)

#: the rule an operator change is refused under (named in every refusal)
ADMIN_RULE = "operator changes are made by an enabled admin who names themself"


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so timing does not reveal which names exist.

    Hashed on first use rather than at import (an argon2id hash costs about 0.1 s, which every
    ``recovery`` command would pay otherwise).
    """
    return _hasher.hash("not-a-real-password-for-timing")


def _check_password(password: str) -> list[FieldError]:
    if len(password) < MIN_PASSWORD_LENGTH:
        return [FieldError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters")]
    return []


def _check_role(role: str) -> list[FieldError]:
    if role not in {r.value for r in OPERATOR_ROLES}:
        return [FieldError("role", f"must be one of {', '.join(r.value for r in OPERATOR_ROLES)}")]
    return []


def validate_new_operator(username: str, password: str, role: str) -> Role:
    errors: list[FieldError] = []
    if not USERNAME.match(username):
        errors.append(FieldError("username", "2-64 characters: lowercase letters, digits, '.', '_' or '-'"))
    errors += _check_password(password)
    errors += _check_role(role)
    if errors:
        raise ValidationFailed(errors)
    return Role(role)


def enabled_admins(session: Session) -> int:
    """How many enabled admins exist (0: the bootstrap is open)."""
    return int(session.exec(
        select(func.count()).select_from(Operator).where(Operator.role == Role.ADMIN.value, col(Operator.active))
    ).one())


def admin_exists(db: Database) -> bool:
    with db.read() as session:
        return enabled_admins(session) > 0


def _acting(session: Session, actor: str | None, allow_unnamed: bool) -> tuple[str, str]:
    """(actor, actor_role) of the audit event, or the refusal (checked inside the change's transaction)."""
    admins = enabled_admins(session)
    if actor is not None:
        acting = session.exec(select(Operator).where(Operator.username == actor)).first()
        if acting is None or not acting.active or acting.role != Role.ADMIN.value:
            raise Forbidden(f"{ADMIN_RULE}: {actor} is not an enabled admin")
        return actor, Role.ADMIN.value
    if admins == 0:
        return BOOTSTRAP, Role.ADMIN.value
    if not allow_unnamed:
        raise Forbidden(f"{ADMIN_RULE}: an enabled admin exists, so name yourself (--as NAME)")
    return UNNAMED, Role.SYSTEM.value


def _record(session: Session, who: tuple[str, str], action: str, details: dict[str, Any], now: datetime) -> None:
    audit.append_event(session, case_id=None, actor=who[0], actor_role=who[1], action=action, from_status=None,
                       to_status=None, details=details, now=now)


def _find(session: Session, username: str) -> Operator:
    operator = session.exec(select(Operator).where(Operator.username == username).with_for_update()).first()
    if operator is None:
        raise ValidationFailed([FieldError("username", f"no operator {username!r}")])
    return operator


def _keeps_an_admin(session: Session, operator: Operator, change: str) -> None:
    if operator.role == Role.ADMIN.value and operator.active and enabled_admins(session) <= 1:
        raise Forbidden(f"{operator.username} is the last enabled admin: {change} would leave no admin to manage "
                        "operators (add or enable another admin first)")


def add_operator(db: Database, username: str, password: str, role: str, *, actor: str | None = None,
                 allow_unnamed: bool = True, now: datetime | None = None) -> Operator:
    """Create an account (audited ``operator_added``; see the module docstring for ``actor``)."""
    checked_role = validate_new_operator(username, password, role)
    password_hash = _hasher.hash(password)  # outside the write transaction: it takes a while
    now = now or utcnow()
    operator = Operator(username=username, password_hash=password_hash, role=checked_role.value)
    try:
        with db.write() as session:
            who = _acting(session, actor, allow_unnamed)
            if session.exec(select(Operator.id).where(Operator.username == username)).first() is not None:
                raise Conflict(f"operator {username!r} already exists")
            session.add(operator)
            session.flush()
            _record(session, who, OPERATOR_ADDED, {"username": username, "role": checked_role.value}, now)
    except IntegrityError:
        raise Conflict(f"operator {username!r} already exists") from None
    return operator


def list_operators(db: Database) -> list[Operator]:
    with db.read() as session:
        return list(session.exec(select(Operator).order_by(Operator.username)).all())


def set_active(db: Database, username: str, active: bool, *, actor: str | None = None,
               allow_unnamed: bool = True, now: datetime | None = None) -> Operator:
    """Enable or disable an account (audited ``operator_enabled``/``operator_disabled`` when it changes)."""
    now = now or utcnow()
    with db.write() as session:
        who = _acting(session, actor, allow_unnamed)
        operator = _find(session, username)
        if operator.active == active:
            return operator
        if not active:
            _keeps_an_admin(session, operator, "disabling it")
        operator.active = active
        session.add(operator)
        session.flush()
        _record(session, who, OPERATOR_ENABLED if active else OPERATOR_DISABLED,
                {"username": username, "role": operator.role}, now)
        return operator


def set_role(db: Database, username: str, role: str, *, actor: str | None = None, allow_unnamed: bool = True,
             now: datetime | None = None) -> Operator:
    """Change an account's role (audited ``operator_role_changed`` with the old and new role)."""
    errors = _check_role(role)
    if errors:
        raise ValidationFailed(errors)
    now = now or utcnow()
    with db.write() as session:
        who = _acting(session, actor, allow_unnamed)
        operator = _find(session, username)
        previous = operator.role
        if previous == role:
            return operator
        if role != Role.ADMIN.value:
            _keeps_an_admin(session, operator, f"making it {role}")
        operator.role = role
        session.add(operator)
        session.flush()
        _record(session, who, OPERATOR_ROLE_CHANGED, {"username": username, "from_role": previous, "to_role": role},
                now)
        return operator


def reset_password(db: Database, username: str, password: str, *, actor: str | None = None,
                   allow_unnamed: bool = True, now: datetime | None = None) -> Operator:
    """Give an account a new password (audited ``operator_password_reset``; the event holds no password
    nor hash)."""
    errors = _check_password(password)
    if errors:
        raise ValidationFailed(errors)
    password_hash = _hasher.hash(password)
    now = now or utcnow()
    with db.write() as session:
        who = _acting(session, actor, allow_unnamed)
        operator = _find(session, username)
        operator.password_hash = password_hash
        session.add(operator)
        session.flush()
        _record(session, who, OPERATOR_PASSWORD_RESET, {"username": username, "role": operator.role}, now)
        return operator


def authenticate(db: Database, username: str, password: str) -> Operator | None:
    """The active operator with these credentials, or None (same cost whether or not the name exists)."""
    dummy = _dummy_hash()  # before the look-up: the first attempt costs the same for every name
    with db.write() as session:
        operator = session.exec(select(Operator).where(Operator.username == username)).first()
        stored = operator.password_hash if operator is not None else dummy
        try:
            _hasher.verify(stored, password)
        except (VerificationError, InvalidHashError):
            return None
        if operator is None or not operator.active:
            return None
        if _hasher.check_needs_rehash(operator.password_hash):
            operator.password_hash = _hasher.hash(password)
        operator.last_login_at = utcnow()
        session.add(operator)
        return operator
