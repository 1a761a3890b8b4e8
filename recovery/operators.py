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

Sign-in (:func:`sign_in`, used by the workbench and the CLI's ``--as``): failed attempts are
counted per account and per client address with a growing backoff, and the fifth failure within
15 minutes locks the account for 15 minutes (:class:`SignInPolicy`); the argon2id check runs
between two short transactions, never inside one; an enrolled TOTP second factor is always asked
for, and required of approvers and admins when ``RECOVERY_WORKBENCH_REQUIRE_TOTP=1``; a code is
accepted once. Single sign-on identities map to accounts by issuer and subject, or by a verified
e-mail address (:func:`match_oidc`). Every sign-in and failed sign-in is an audit event about no
case, never holding a password or a code.
"""

from __future__ import annotations

import hmac
import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from functools import lru_cache
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session, col, delete, func, select

from recovery import audit
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import Conflict, FieldError, Forbidden, ValidationFailed
from recovery.models import AuditHead, Operator, SignInFailure
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
OPERATOR_TOTP_ENROLLED = "operator_totp_enrolled"
OPERATOR_TOTP_REMOVED = "operator_totp_removed"
OPERATOR_OIDC_LINKED = "operator_oidc_linked"
OPERATOR_OIDC_UNLINKED = "operator_oidc_unlinked"

#: the audit actions of sign-ins (events about no case): success, a counted failure, an attempt
#: refused without any check because the account is locked or inside its backoff
SIGN_IN = "sign_in"
SIGN_IN_FAILED = "sign_in_failed"
SIGN_IN_LOCKED = "sign_in_locked"
#: the actor role of a sign-in event whose attempted name is no operator
UNKNOWN_ROLE = "unknown"
#: how an attempted name that cannot be a username is counted and audited (it may be a password)
INVALID_NAME = "(invalid name)"

#: the second factor: RFC 6238 TOTP, 6 digits every 30 s, one step of clock drift either side
TOTP_DIGITS = 6
TOTP_INTERVAL = 30
TOTP_ISSUER = "Deposit recovery"
#: set to 1 and approvers and admins cannot sign in without a second factor (password sign-ins on
#: the workbench and the CLI's --as, and single sign-on)
REQUIRE_TOTP_VARIABLE = "RECOVERY_WORKBENCH_REQUIRE_TOTP"
SECOND_FACTOR_ROLES = frozenset({Role.APPROVER.value, Role.ADMIN.value})

#: the time of sign-ins and second-factor changes (tests replace it to move past a lock)
clock: Callable[[], datetime] = utcnow

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



# ------------------------------------------------------------------------------------------ second factor, SSO
@dataclass(frozen=True)
class TotpEnrolment:
    """What the operator types into their authenticator app; shown once, never stored elsewhere."""

    username: str
    secret: str
    uri: str


def _totp(secret: str) -> Any:
    import pyotp  # only the commands that sign in or enrol need it

    return pyotp.TOTP(secret, digits=TOTP_DIGITS, interval=TOTP_INTERVAL)


def enroll_totp(db: Database, username: str, *, actor: str | None = None, allow_unnamed: bool = True,
                now: datetime | None = None) -> TotpEnrolment:
    """Give an account a new TOTP secret (replacing any earlier one); audited ``operator_totp_enrolled``
    (the event holds no secret). From then on every password sign-in of the account asks for a code."""
    import pyotp

    secret = pyotp.random_base32()
    now = now or clock()
    with db.write() as session:
        who = _acting(session, actor, allow_unnamed)
        operator = _find(session, username)
        replaced = operator.totp_secret is not None
        operator.totp_secret = secret
        operator.totp_enrolled_at = now
        operator.totp_last_step = None
        session.add(operator)
        session.flush()
        _record(session, who, OPERATOR_TOTP_ENROLLED,
                {"username": username, "role": operator.role, "replaced": replaced}, now)
    uri = _totp(secret).provisioning_uri(name=username, issuer_name=TOTP_ISSUER)
    return TotpEnrolment(username, secret, str(uri))


def remove_totp(db: Database, username: str, *, actor: str | None = None, allow_unnamed: bool = True,
                now: datetime | None = None) -> Operator:
    """Remove an account's second factor (audited ``operator_totp_removed`` when it had one)."""
    now = now or clock()
    with db.write() as session:
        who = _acting(session, actor, allow_unnamed)
        operator = _find(session, username)
        if operator.totp_secret is None:
            return operator
        operator.totp_secret = None
        operator.totp_enrolled_at = None
        operator.totp_last_step = None
        session.add(operator)
        session.flush()
        _record(session, who, OPERATOR_TOTP_REMOVED, {"username": username, "role": operator.role}, now)
        return operator


EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def link_oidc(db: Database, username: str, *, issuer: str | None = None, subject: str | None = None,
              email: str | None = None, clear: bool = False, actor: str | None = None, allow_unnamed: bool = True,
              now: datetime | None = None) -> Operator:
    """Record the single sign-on identity of an account: the provider's issuer and subject (``sub``)
    and/or the account's e-mail address (matched only when the provider says it is verified);
    ``clear`` removes both. Audited ``operator_oidc_linked`` / ``operator_oidc_unlinked``."""
    issuer, subject, email = validate_oidc_link(issuer, subject, email, clear)
    now = now or clock()
    try:
        with db.write() as session:
            who = _acting(session, actor, allow_unnamed)
            operator = _find(session, username)
            if issuer is not None:
                other = session.exec(select(Operator.username).where(
                    Operator.oidc_issuer == issuer, Operator.oidc_subject == subject,
                    Operator.username != username)).first()
                if other is not None:
                    raise Conflict(f"that identity is already linked to {other}")
            if email is not None:
                other = session.exec(select(Operator.username).where(
                    Operator.email == email, Operator.username != username)).first()
                if other is not None:
                    raise Conflict(f"that e-mail address is already recorded for {other}")
            if clear:
                if operator.oidc_subject is None and operator.email is None:
                    return operator
                operator.oidc_issuer = operator.oidc_subject = operator.email = None
                details: dict[str, Any] = {"username": username}
                action = OPERATOR_OIDC_UNLINKED
            else:
                if issuer is not None:
                    operator.oidc_issuer, operator.oidc_subject = issuer, subject
                if email is not None:
                    operator.email = email
                details = {"username": username, "issuer": operator.oidc_issuer,
                           "subject": operator.oidc_subject, "email": operator.email}
                action = OPERATOR_OIDC_LINKED
            session.add(operator)
            session.flush()
            _record(session, who, action, details, now)
            return operator
    except IntegrityError:
        raise Conflict("that identity or e-mail address is already linked to another operator") from None


def validate_oidc_link(issuer: str | None, subject: str | None, email: str | None,
                       clear: bool = False) -> tuple[str | None, str | None, str | None]:
    """(issuer, subject, e-mail) cleaned, or every problem at once (:func:`link_oidc`)."""
    issuer = (issuer or "").strip() or None
    subject = (subject or "").strip() or None
    email = (email or "").strip().lower() or None
    errors: list[FieldError] = []
    if clear and (issuer or subject or email):
        errors.append(FieldError("clear", "clears the identity: give no issuer, subject or e-mail with it"))
    if (issuer is None) != (subject is None):
        errors.append(FieldError("subject" if subject is None else "issuer", "issuer and subject go together"))
    if not clear and issuer is None and email is None:
        errors.append(FieldError("issuer", "give the issuer and subject, an e-mail address, or both"))
    if issuer is not None and (len(issuer) > 512 or not issuer.startswith(("https://", "http://"))):
        errors.append(FieldError("issuer", "the provider's issuer URL (the token's 'iss'), at most 512 characters"))
    if subject is not None and len(subject) > 255:
        errors.append(FieldError("subject", "at most 255 characters"))
    if email is not None and (len(email) > 254 or not EMAIL.match(email)):
        errors.append(FieldError("email", "not an e-mail address"))
    if errors:
        raise ValidationFailed(errors)
    return issuer, subject, email


@dataclass(frozen=True)
class OidcMatch:
    """The operator a single sign-on identity maps to (``username``), how (``via``: ``subject`` or
    ``email``), or why none (``reason``); ``label`` names the identity in the audit trail."""

    username: str | None
    via: str | None
    reason: str
    label: str


def _claim(claims: Mapping[str, object], name: str) -> str | None:
    value = claims.get(name)
    return value.strip() if isinstance(value, str) and value.strip() else None


def _verified(value: object) -> bool:
    # some providers send the flag as the string "true"; anything else (absent, false, "1") is not verified
    return value is True or (isinstance(value, str) and value.strip().lower() == "true")


def match_oidc(session: Session, claims: Mapping[str, object], *, email_claim: str = "email",
               email_domain: str | None = None) -> OidcMatch:
    """Map an identity token's claims to an operator account.

    1. The provider's issuer (``iss``) and subject (``sub``), as an admin linked them
       (``recovery operators link-oidc``): the identity the provider guarantees never changes.
    2. Else the e-mail address (claim ``email_claim``) only when the token says ``email_verified``
       is true, the address is in ``email_domain`` (no domain set: no e-mail matching), and it is
       the address recorded for an operator who has no linked subject (a linked account signs in
       only as its subject, so another identity with the same address cannot take it over).

    The role is never read from the token: the caller takes it from the operators table (claims
    such as ``role``, ``roles`` or ``groups`` are ignored). Whether the account is active is the
    caller's check too.
    """
    issuer, subject = _claim(claims, "iss"), _claim(claims, "sub")
    email = _claim(claims, email_claim)
    email = email.lower() if email else None
    label = (email or subject or "unknown")[:128]
    if issuer and subject:
        linked = session.exec(select(Operator.username).where(
            Operator.oidc_issuer == issuer, Operator.oidc_subject == subject)).first()
        if linked is not None:
            return OidcMatch(linked, "subject", "", label)
    if email is None:
        return OidcMatch(None, None, "no linked subject and no e-mail address", label)
    if not _verified(claims.get("email_verified")):
        return OidcMatch(None, None, "the e-mail address is not verified by the provider", label)
    allowed = (email_domain or "").strip().lower()
    if not allowed or email.rpartition("@")[2] != allowed:
        return OidcMatch(None, None, "the e-mail address is outside the accepted domain", label)
    operator = session.exec(select(Operator).where(Operator.email == email)).first()
    if operator is None:
        return OidcMatch(None, None, "no operator has this e-mail address", label)
    if operator.oidc_subject is not None:
        return OidcMatch(None, None, "the operator is linked to another single sign-on subject", label)
    return OidcMatch(operator.username, "email", "", label)


# ------------------------------------------------------------------------------------------ sign-in
def totp_required_by_environment() -> bool:
    """``RECOVERY_WORKBENCH_REQUIRE_TOTP=1``: approvers and admins must have a second factor."""
    return os.environ.get(REQUIRE_TOTP_VARIABLE, "").strip().lower() in {"1", "true", "yes", "on"}


@dataclass(frozen=True)
class SignInPolicy:
    """Backoff and lock of failed sign-ins, and the second-factor requirement.

    Failures are counted per attempted account name (since its last successful sign-in) and per
    client address, over ``window``. An account's first ``account_free`` failures cost nothing (a
    typo); each later one doubles the wait before the next attempt is accepted (2 s, 4 s, ...), and
    the ``lock_after``-th failure within the window locks the account for ``lock_for``: every
    attempt is refused then, the right password too. A client address gets ``client_free``
    failures (any accounts) before its attempts are spaced the same way, up to ``max_delay``.
    Attempts refused by the backoff or the lock are audited but not counted.
    """

    lock_after: int = 5
    window: timedelta = timedelta(minutes=15)
    lock_for: timedelta = timedelta(minutes=15)
    account_free: int = 2
    client_free: int = 5
    first_delay: timedelta = timedelta(seconds=2)
    max_delay: timedelta = timedelta(seconds=60)
    #: approvers and admins cannot sign in without a second factor
    require_totp: bool = False

    @classmethod
    def from_environment(cls) -> SignInPolicy:
        return cls(require_totp=totp_required_by_environment())

    def delay(self, failures: int, free: int) -> timedelta:
        """The wait after ``failures`` counted failures, ``free`` of them without any."""
        if failures <= free:
            return timedelta(0)
        wait: timedelta = self.first_delay * 2 ** (failures - free - 1)
        return min(self.max_delay, wait)


@dataclass(frozen=True)
class Throttle:
    """What the failures so far allow now: a lock of the account, a wait (``retry_at``, for the
    account or the client address), or nothing."""

    account_failures: int
    client_failures: int
    locked_until: datetime | None = None
    retry_at: datetime | None = None
    scope: str | None = None  # "account" | "client" when retry_at is set

    def refusal(self, now: datetime) -> str | None:
        if self.locked_until is not None and now < self.locked_until:
            return "locked"
        if self.retry_at is not None and now < self.retry_at:
            return f"backoff_{self.scope}"
        return None


def assess(account: Sequence[datetime], client: Sequence[datetime], now: datetime,
           policy: SignInPolicy) -> Throttle:
    """The throttle from the failure times of the account (since its last successful sign-in) and
    of the client address (pure: the tests feed it times)."""
    lock_end: datetime | None = None
    window: list[datetime] = []
    for at in sorted(account):
        if lock_end is not None and at < lock_end:
            continue  # recorded by a race while locked: the lock is not extended by it
        window = [w for w in window if w > at - policy.window]
        window.append(at)
        if len(window) >= policy.lock_after:
            lock_end, window = at + policy.lock_for, []
    recent = [w for w in window if w > now - policy.window]
    by_client = sorted(at for at in client if at > now - policy.window)
    throttle = Throttle(len(recent), len(by_client))
    if lock_end is not None and now < lock_end:
        return replace(throttle, locked_until=lock_end)
    waits = []
    if recent:
        waits.append((recent[-1] + policy.delay(len(recent), policy.account_free), "account"))
    if by_client:
        waits.append((by_client[-1] + policy.delay(len(by_client), policy.client_free), "client"))
    if waits:
        retry_at, scope = max(waits)
        if retry_at > now:
            return replace(throttle, retry_at=retry_at, scope=scope)
    return throttle


@dataclass(frozen=True)
class SignInResult:
    """The outcome of a sign-in. ``outcome``: ``signed_in``; ``refused`` (a wrong password or
    code, an unknown or disabled account: the front end says so without saying which);
    ``backoff`` (``retry_after`` seconds); ``locked`` (``locked_until``); ``code_needed``;
    ``code_replayed``; ``second_factor_missing`` (approvers and admins must have one)."""

    outcome: str
    message: str
    operator: Operator | None = None
    retry_after: int | None = None
    locked_until: datetime | None = None

    @property
    def ok(self) -> bool:
        return self.outcome == "signed_in"


@dataclass(frozen=True)
class _Snapshot:
    """What the first short transaction read about the attempted account."""

    key: str
    operator_id: int | None
    password_hash: str | None
    active: bool
    role: str | None
    totp_secret: str | None
    last_login_at: datetime | None
    throttle: Throttle


def _name_key(username: str) -> str:
    """The attempted name as counted and audited: a string that cannot be a username (a password
    typed into the wrong field, say) is never written down."""
    name = username.strip().lower()
    return name if USERNAME.match(name) else INVALID_NAME


def _failure_times(session: Session, column: Any, value: str, since: datetime) -> list[datetime]:
    rows = session.exec(select(SignInFailure.at).where(column == value, col(SignInFailure.at) > since))
    return [at.astimezone(UTC) for at in rows]


def _throttle(session: Session, key: str, client: str, last_login_at: datetime | None, now: datetime,
              policy: SignInPolicy) -> Throttle:
    since = now - policy.window - policy.lock_for
    if last_login_at is not None:
        since = max(since, last_login_at.astimezone(UTC))
    account = _failure_times(session, col(SignInFailure.username), key, since)
    by_client = _failure_times(session, col(SignInFailure.client), client, now - policy.window)
    return assess(account, by_client, now, policy)


def _snapshot(db: Database, key: str, client: str, now: datetime, policy: SignInPolicy) -> _Snapshot:
    with db.read() as session:
        operator = None
        if key != INVALID_NAME:
            operator = session.exec(select(Operator).where(Operator.username == key)).first()
        last = operator.last_login_at if operator is not None else None
        throttle = _throttle(session, key, client, last, now, policy)
        if operator is None:
            return _Snapshot(key, None, None, False, None, None, None, throttle)
        return _Snapshot(key, operator.id, operator.password_hash, operator.active, operator.role,
                         operator.totp_secret, last, throttle)


def _lock_outcomes(session: Session) -> None:
    """Serialise sign-in outcomes on the audit head, which their event locks anyway: a failure
    counted by one attempt is seen by the next (both databases)."""
    if session.exec(select(AuditHead.id).where(AuditHead.id == 1).with_for_update()).first() is None:
        audit.ensure_head(session)


def _event(session: Session, actor: str, role: str | None, action: str, details: dict[str, Any],
           now: datetime) -> None:
    audit.append_event(session, case_id=None, actor=actor, actor_role=role or UNKNOWN_ROLE, action=action,
                       from_status=None, to_status=None, details=details, now=now)


def _wait_text(seconds: int) -> str:
    return f"{seconds} s" if seconds < 120 else f"{(seconds + 59) // 60} min"


def _throttled(key: str, throttle: Throttle, now: datetime) -> SignInResult:
    if throttle.locked_until is not None and now < throttle.locked_until:
        until = throttle.locked_until.astimezone(UTC)
        seconds = math.ceil((until - now).total_seconds())
        return SignInResult("locked", f"The account {key} is locked after repeated failed sign-ins, until "
                                      f"{until:%Y-%m-%d %H:%M:%S} UTC (in {_wait_text(seconds)}); the right "
                                      "password is refused too until then.", locked_until=until)
    assert throttle.retry_at is not None
    seconds = max(1, math.ceil((throttle.retry_at - now).total_seconds()))
    who = "for this account" if throttle.scope == "account" else "from this address"
    return SignInResult("backoff", f"Too many failed sign-ins {who}: try again in {seconds} s.", retry_after=seconds)


def _refuse_throttled(db: Database, snap: _Snapshot, reason: str, details: dict[str, Any],
                      now: datetime) -> SignInResult:
    result = _throttled(snap.key, snap.throttle, now)
    until = result.locked_until or snap.throttle.retry_at
    with db.write() as session:
        _event(session, snap.key, snap.role, SIGN_IN_LOCKED,
               {**details, "reason": reason, "until": until.isoformat() if until else None}, now)
    return result


def _count_failure(session: Session, snap: _Snapshot, client: str, reason: str, details: dict[str, Any],
                   now: datetime, policy: SignInPolicy) -> SignInResult:
    """Record a failure inside the caller's write transaction; the result says what follows it."""
    day_ago = now - timedelta(days=1)
    session.exec(delete(SignInFailure).where(col(SignInFailure.username) == snap.key,
                                             col(SignInFailure.at) < day_ago))
    session.exec(delete(SignInFailure).where(col(SignInFailure.client) == client,
                                             col(SignInFailure.at) < day_ago))
    session.add(SignInFailure(username=snap.key, client=client, at=now))
    session.flush()
    throttle = _throttle(session, snap.key, client, snap.last_login_at, now, policy)
    locked = throttle.locked_until is not None and now < throttle.locked_until
    _event(session, snap.key, snap.role, SIGN_IN_FAILED,
           {**details, "reason": reason, "failures": throttle.account_failures or policy.lock_after,
            "locked_until": throttle.locked_until.astimezone(UTC).isoformat() if locked and throttle.locked_until
            else None}, now)
    if locked:
        return _throttled(snap.key, throttle, now)
    if reason == "code_missing":
        return SignInResult("code_needed", "This account has a second factor: enter the 6-digit one-time code "
                                           "from its authenticator app.")
    if reason == "code_replayed":
        return SignInResult("code_replayed", "This one-time code was used already: wait for the next one.")
    return SignInResult("refused", "Wrong username, password or one-time code, or the account is disabled.")


def _code_step(secret: str, code: str, now: datetime) -> int | None:
    """The time step of ``code`` if it is the secret's code now or one step either side (clock drift)."""
    code = "".join(code.split())
    if len(code) != TOTP_DIGITS or not re.fullmatch(r"[0-9]+", code):
        return None
    totp = _totp(secret)
    current = int(totp.timecode(now))
    for offset in (0, -1, 1):
        if hmac.compare_digest(str(totp.at(now, counter_offset=offset)), code):
            return current + offset
    return None


def _second_factor_needed(snap: _Snapshot, policy: SignInPolicy) -> bool:
    return policy.require_totp and snap.role in SECOND_FACTOR_ROLES


def sign_in(db: Database, username: str, password: str | None, *, code: str | None = None, client: str,
            channel: str, via_oidc: bool = False, now: datetime | None = None,
            policy: SignInPolicy | None = None) -> SignInResult:
    """Sign an operator in, throttled and audited (``sign_in`` / ``sign_in_failed`` / ``sign_in_locked``,
    events about no case naming the attempted account, the channel and the client; never a password
    or a code).

    Three steps, so that the slow argon2id check never holds a transaction (on SQLite it would stall
    every writer): (1) a short read of the account and its failures: a locked account, or an attempt
    inside the backoff, is refused there without checking anything; (2) outside any transaction the
    password is verified (against a dummy hash when the name is unknown, so that it costs the same),
    and the one-time code; (3) a short write records the outcome: a failure is counted (the fifth in
    15 minutes locks the account), a success re-reads the account (still active, same password and
    second factor, not locked meanwhile, the code's time step later than the last accepted one) and
    stamps it.

    ``via_oidc``: the identity was established by single sign-on (``password`` is None); only the
    second factor is checked here.
    """
    policy = policy or SignInPolicy.from_environment()
    now = (now or clock()).astimezone(UTC)
    client = (client.strip() or "unknown")[:128]
    dummy = _dummy_hash()  # before the look-up: the first attempt costs the same for every name
    key = _name_key(username)
    snap = _snapshot(db, key, client, now, policy)
    details: dict[str, Any] = {"channel": channel, "client": client}
    refusal = snap.throttle.refusal(now)
    if refusal is not None:
        return _refuse_throttled(db, snap, refusal, details, now)

    # (2) outside any transaction
    reason: str | None = None
    if not via_oidc:
        try:
            _hasher.verify(snap.password_hash or dummy, password or "")
            password_ok = snap.password_hash is not None
        except (VerificationError, InvalidHashError):
            password_ok = False
        if not password_ok:
            reason = "unknown_operator" if snap.operator_id is None else "wrong_password"
    if reason is None and (snap.operator_id is None or not snap.active):
        reason = "unknown_operator" if snap.operator_id is None else "disabled"
    if reason is None and snap.role not in {r.value for r in OPERATOR_ROLES}:
        reason = "not_an_operator_role"
    step: int | None = None
    if reason is None and snap.totp_secret is not None:
        if not (code or "").strip():
            reason = "code_missing"
        else:
            step = _code_step(snap.totp_secret, code or "", now)
            if step is None:
                reason = "code_invalid"
    new_hash = None
    if reason is None and not via_oidc and snap.password_hash and _hasher.check_needs_rehash(snap.password_hash):
        new_hash = _hasher.hash(password or "")
    method = ("oidc" if via_oidc else "password") + ("+totp" if step is not None else "")

    # (3) one short write
    with db.write() as session:
        _lock_outcomes(session)
        if reason is not None:
            return _count_failure(session, snap, client, reason, details, now, policy)
        operator = session.exec(select(Operator).where(Operator.id == snap.operator_id).with_for_update()).first()
        if (operator is None or not operator.active or operator.password_hash != snap.password_hash
                or operator.totp_secret != snap.totp_secret):
            return _count_failure(session, snap, client, "changed_meanwhile", details, now, policy)
        throttle = _throttle(session, key, client, snap.last_login_at, now, policy)
        late_refusal = throttle.refusal(now)
        if late_refusal is not None:  # failures counted meanwhile by concurrent attempts
            result = _throttled(key, throttle, now)
            until = result.locked_until or throttle.retry_at
            _event(session, key, snap.role, SIGN_IN_LOCKED,
                   {**details, "reason": late_refusal, "until": until.isoformat() if until else None}, now)
            return result
        if step is not None and operator.totp_last_step is not None and step <= operator.totp_last_step:
            return _count_failure(session, snap, client, "code_replayed", details, now, policy)
        if snap.totp_secret is None and _second_factor_needed(snap, policy):
            _event(session, key, operator.role, SIGN_IN_FAILED, {**details, "reason": "second_factor_missing"}, now)
            return SignInResult(
                "second_factor_missing",
                f"{operator.role.capitalize()}s must sign in with a second factor here "
                f"({REQUIRE_TOTP_VARIABLE}=1) and {key} has none: ask an admin to run "
                f"`recovery operators totp {key}`, then sign in with the code.")
        if step is not None:
            operator.totp_last_step = step
        if new_hash is not None:
            operator.password_hash = new_hash
        operator.last_login_at = now
        session.add(operator)
        session.flush()
        _event(session, key, operator.role, SIGN_IN, {**details, "reason": method}, now)
        return SignInResult("signed_in", "", operator=operator)


def needs_code(db: Database, username: str) -> bool:
    """Whether the account has a second factor (the CLI asks for the code before signing in)."""
    key = _name_key(username)
    with db.read() as session:
        secret = session.exec(select(Operator.totp_secret).where(Operator.username == key)).first()
    return secret is not None


def authenticate(db: Database, username: str, password: str, *, code: str | None = None,
                 client: str = "internal", channel: str = "internal", now: datetime | None = None) -> Operator | None:
    """The active operator with these credentials, or None: :func:`sign_in` (throttled, audited) for
    callers that only need the account."""
    return sign_in(db, username, password, code=code, client=client, channel=channel, now=now).operator


def oidc_refused(db: Database, match: OidcMatch, *, client: str, now: datetime | None = None) -> None:
    """Audit a single sign-on identity that maps to no operator (``sign_in_failed``, channel ``oidc``,
    naming the identity's e-mail address or subject and why)."""
    now = (now or clock()).astimezone(UTC)
    with db.write() as session:
        _event(session, match.label, None, SIGN_IN_FAILED,
               {"channel": "oidc", "client": (client.strip() or "unknown")[:128], "reason": match.reason}, now)
