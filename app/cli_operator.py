"""What the operator commands share: ``--as NAME`` (an enabled operator, whose password is asked for
or read from ``RECOVERY_OPERATOR_PASSWORD``), the actor taken from the operators table, and the
exit codes: 0 done; 1 refused by a rule, a wrong password or an unknown or disabled operator (the
message names the rule; nothing changed); 2 bad usage.

Imports only typer and rich at start-up: the database and service layers are imported by the
commands when they run (``tests/test_startup.py``).
"""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console

if TYPE_CHECKING:
    from app.context import AppContext
    from recovery.errors import ServiceError
    from recovery.services import Actor

EXIT_REFUSED = 1
EXIT_USAGE = 2
#: where a script puts the operator's password instead of answering the prompt
PASSWORD_VARIABLE = "RECOVERY_OPERATOR_PASSWORD"  # noqa: S105  (a variable name, not a password)

out = Console(soft_wrap=True, highlight=False)
err = Console(stderr=True, soft_wrap=True, highlight=False)

AsOption = Annotated[str, typer.Option(
    "--as", metavar="NAME",
    help=f"The operator acting (an enabled account); the password is asked for, or read from {PASSWORD_VARIABLE}.",
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


def sign_in(context: AppContext, name: str) -> Actor:
    """The operator ``name`` as an actor, with the role the operators table gives them, once their
    password is checked (argon2id); a wrong password or an unknown or disabled account is refused
    alike (exit 1), never saying which."""
    from recovery.operators import authenticate
    from recovery.services import Actor
    from recovery.vocabulary import Role

    password = operator_password(name)
    operator = authenticate(context.db, name, password)
    if operator is None:
        raise refused(f"sign-in as {name} failed: a wrong password, or no enabled operator of that name")
    return Actor(operator.username, Role(operator.role))


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
