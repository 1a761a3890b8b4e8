"""What the operator commands share: ``--as NAME`` (an enabled operator, whose password is asked for
or read from ``RECOVERY_OPERATOR_PASSWORD``, and their one-time code when they have a second factor,
asked for or read from ``RECOVERY_OPERATOR_TOTP``), the actor taken from the operators table, and the
exit codes: 0 done; 1 refused by a rule, a wrong password or an unknown or disabled operator (the
message names the rule; nothing changed); 2 bad usage.

Imports only typer at start-up (Rich when a command first prints): the database and service layers
are imported by the commands when they run (``tests/test_startup.py``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import lazy_console

if TYPE_CHECKING:
    from app.context import AppContext
    from recovery.errors import ServiceError
    from recovery.services import Actor

EXIT_REFUSED = 1
EXIT_USAGE = 2
#: where a script puts the operator's password instead of answering the prompt
PASSWORD_VARIABLE = "RECOVERY_OPERATOR_PASSWORD"  # noqa: S105  (a variable name, not a password)
#: where a script puts the operator's one-time code (accounts with a second factor)
TOTP_VARIABLE = "RECOVERY_OPERATOR_TOTP"
#: the client address of every CLI sign-in (counted together for the backoff)
CLI_CLIENT = "cli"

out = lazy_console(soft_wrap=True, highlight=False)
err = lazy_console(stderr=True, soft_wrap=True, highlight=False)

AsOption = Annotated[str, typer.Option(
    "--as", metavar="NAME",
    help=f"The operator acting (an enabled account); the password is asked for, or read from {PASSWORD_VARIABLE} "
         f"(and the one-time code of an account with a second factor, or {TOTP_VARIABLE}).",
)]
JsonOption = Annotated[bool, typer.Option("--json", help="Machine-readable output.")]


def print_json(data: Any) -> None:
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False) + "\n")


def refused(message: str) -> typer.Exit:
    """Print why nothing was done; return the exit (1) to raise."""
    err.print(f"refused: {message}", markup=False)
    return typer.Exit(EXIT_REFUSED)


def usage(message: str) -> typer.Exit:
    """Print a usage error; return the exit (2) to raise."""
    err.print(f"error: {message}", markup=False)
    return typer.Exit(EXIT_USAGE)


def service_refusal(exc: ServiceError) -> typer.Exit:
    """A service-layer refusal (a rule, a conflict, a missing field, an unknown case): exit 1, naming it."""
    from recovery.errors import ValidationFailed

    if isinstance(exc, ValidationFailed):
        for error in exc.errors:
            err.print(f"refused ({exc.code}): {error.field}: {error.message}", markup=False)
    else:
        err.print(f"refused ({exc.code}): {exc}", markup=False)
    return typer.Exit(EXIT_REFUSED)


def operator_password(name: str) -> str:
    password = os.environ.get(PASSWORD_VARIABLE)
    if password is not None:
        return password
    value: str = typer.prompt(f"password for {name}", hide_input=True, err=True)
    return value


def operator_code(context: AppContext, name: str) -> str | None:
    """The one-time code of an account with a second factor: ``RECOVERY_OPERATOR_TOTP``, else asked
    for (only when the account has one)."""
    from recovery.operators import needs_code

    code = os.environ.get(TOTP_VARIABLE)
    if code is not None:
        return code
    if not needs_code(context.db, name):
        return None
    value: str = typer.prompt(f"one-time code for {name}", err=True)
    return value


def sign_in(context: AppContext, name: str) -> Actor:
    """The operator ``name`` as an actor, with the role the operators table gives them, once their
    password (argon2id) and, when they have one, their one-time code are checked. Throttled and
    audited like the workbench's sign-in (client ``cli``): a wrong password or code, or an unknown
    or disabled account, is refused alike (exit 1), never saying which; inside the backoff or while
    the account is locked the message says how long."""
    from recovery.operators import SignInPolicy
    from recovery.operators import sign_in as check
    from recovery.services import Actor
    from recovery.vocabulary import Role

    password = operator_password(name)
    code = operator_code(context, name)
    result = check(context.db, name, password, code=code, client=CLI_CLIENT, channel="cli",
                   policy=SignInPolicy.from_environment())
    if result.outcome == "refused":
        raise refused(f"sign-in as {name} failed: a wrong password or one-time code, or no enabled operator "
                      "of that name")
    if result.operator is None:
        raise refused(f"sign-in as {name} failed: {result.message}")
    return Actor(result.operator.username, Role(result.operator.role))


@contextmanager
def operator_context() -> Iterator[AppContext]:
    """The application context of one command; its database is closed at the end."""
    from app.context import app_context

    context = app_context()
    try:
        yield context
    finally:
        if "db" in context.__dict__:
            context.db.dispose()
