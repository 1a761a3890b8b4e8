"""Workbench accounts: argon2id password hashes (argon2-cffi), roles, sign-in checks."""

from __future__ import annotations

import re
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import select

from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import Conflict, FieldError, ValidationFailed
from recovery.models import Operator
from recovery.vocabulary import OPERATOR_ROLES, Role

USERNAME = re.compile(r"^[a-z][a-z0-9._-]{1,63}$")
MIN_PASSWORD_LENGTH = 12
_hasher = PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    """Verified against when the username is unknown, so timing does not reveal which names exist.

    Hashed on first use rather than at import (an argon2id hash costs about 0.1 s, which every
    ``recovery`` command would pay otherwise).
    """
    return _hasher.hash("not-a-real-password-for-timing")


def validate_new_operator(username: str, password: str, role: str) -> Role:
    errors: list[FieldError] = []
    if not USERNAME.match(username):
        errors.append(FieldError("username", "2-64 characters: lowercase letters, digits, '.', '_' or '-'"))
    if len(password) < MIN_PASSWORD_LENGTH:
        errors.append(FieldError("password", f"must be at least {MIN_PASSWORD_LENGTH} characters"))
    if role not in {r.value for r in OPERATOR_ROLES}:
        errors.append(FieldError("role", f"must be one of {', '.join(r.value for r in OPERATOR_ROLES)}"))
    if errors:
        raise ValidationFailed(errors)
    return Role(role)


def add_operator(db: Database, username: str, password: str, role: str) -> Operator:
    checked_role = validate_new_operator(username, password, role)
    operator = Operator(username=username, password_hash=_hasher.hash(password), role=checked_role.value)
    try:
        with db.write() as session:
            session.add(operator)
    except IntegrityError:
        raise Conflict(f"operator {username!r} already exists") from None
    return operator


def list_operators(db: Database) -> list[Operator]:
    with db.read() as session:
        return list(session.exec(select(Operator).order_by(Operator.username)).all())


def set_active(db: Database, username: str, active: bool) -> Operator:
    with db.write() as session:
        operator = session.exec(select(Operator).where(Operator.username == username)).first()
        if operator is None:
            raise ValidationFailed([FieldError("username", f"no operator {username!r}")])
        operator.active = active
        session.add(operator)
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
