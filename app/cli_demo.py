"""``recovery demo``: build the demo world, then serve the API and the workbench over it."""

from __future__ import annotations

import json
import os
import secrets
import signal
import sys
import time
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_console import lazy_console

if TYPE_CHECKING:
    from app.demo.run import DemoResult

console = lazy_console()
err = lazy_console(stderr=True, soft_wrap=True)


def demo_env(result: DemoResult, jwt_secret: str) -> dict[str, str]:
    return {
        **os.environ,
        "RECOVERY_DATABASE_URL": result.database_url,
        "RECOVERY_CONFIG_DIR": str(result.config_dir),
        "RECOVERY_VAR_DIR": str(result.root),
        "RECOVERY_API_JWT_SECRET": jwt_secret,
    }


def _print_summary(result: DemoResult) -> None:
    from rich.table import Table

    table = Table("status", "cases")
    for status, count in result.statuses.items():
        table.add_row(status, str(count))
    console.print(table)
    table = Table("category", "cases")
    for category, count in result.categories.items():
        table.add_row(category, str(count))
    console.print(table)
    console.print(f"{result.cases} cases, {result.events} audit events, audit chain "
                  f"{'verified' if result.audit_ok else 'BROKEN'}; built in {result.elapsed:.1f}s")


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def register(app: typer.Typer) -> None:
    @app.command("demo")
    def demo(
        no_serve: Annotated[bool, typer.Option("--no-serve", help="Seed, print a summary, stop.")] = False,
        as_json: Annotated[bool, typer.Option("--json", help="Summary as JSON (with --no-serve).")] = False,
        appeals: Annotated[int, typer.Option(min=20, max=5000, help="Historical appeals to file.")] = 300,
        seed: Annotated[int, typer.Option(help="Random seed of the plan.")] = 7,
        root: Annotated[Path, typer.Option(help="The demo's own folder (deleted and rebuilt).")] = Path("var/demo"),
        api_port: Annotated[int, typer.Option(help="API port (0: any free port).")] = 8000,
        workbench_port: Annotated[int, typer.Option(help="Workbench port (0: any free port).")] = 8501,
    ) -> None:
        """Fresh database under var/demo/, local chains, realistic cases; then serve API and workbench."""
        import jwt
        from rich.table import Table

        from app.context import app_context
        from app.demo.run import OPERATORS, DemoError, DemoOptions, run_demo
        from app.demo.serving import free_port, serve

        log = (lambda _msg: None) if as_json else (lambda msg: console.print(f"[dim]demo:[/] {msg}"))
        settings = app_context().settings
        with ExitStack() as stack:
            try:
                result, chains = run_demo(
                    DemoOptions(root=root, appeals=appeals, seed=seed, log=log, fixtures_dir=settings.fixtures_dir),
                    settings.config_dir,
                )
            except DemoError as exc:
                err.print(f"error: {exc}", markup=False)
                raise typer.Exit(1) from None
            stack.enter_context(chains)
            if no_serve:
                if as_json:
                    sys.stdout.write(json.dumps(result.to_json(), indent=2) + "\n")
                else:
                    _print_summary(result)
                return
            _print_summary(result)
            secret = secrets.token_urlsafe(32)
            env = demo_env(result, secret)
            api_port = api_port or free_port()
            workbench_port = workbench_port or free_port()
            recovery = str(Path(sys.executable).with_name("recovery"))
            stack.enter_context(serve([recovery, "api", "--host", "127.0.0.1", "--port", str(api_port)], env,
                                      f"http://127.0.0.1:{api_port}/healthz", result.root / "logs" / "api.log"))
            stack.enter_context(serve([recovery, "workbench", "--port", str(workbench_port)], env,
                                      f"http://127.0.0.1:{workbench_port}/_stcore/health",
                                      result.root / "logs" / "workbench.log"))
            issued = int(time.time())
            token = jwt.encode({"sub": "user-0005", "iat": issued, "exp": issued + 86400}, secret, algorithm="HS256")
            console.print(f"\nworkbench: [bold]http://127.0.0.1:{workbench_port}[/]")
            console.print(f"API:       [bold]http://127.0.0.1:{api_port}[/]  (OpenAPI at /docs)")
            table = Table("sign-in", "password", "role")
            for username, (role, password) in OPERATORS.items():
                table.add_row(username, password, role.value)
            console.print(table)
            console.print("A user token for the API (user-0005, valid 24 h):", markup=False)
            console.print(f"  curl -H 'Authorization: Bearer {token}' http://127.0.0.1:{api_port}/v1/appeals",
                          markup=False, soft_wrap=True)
            console.print("\nCtrl-C stops the API, the workbench and the chains.")
            signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops everything too
            try:
                signal.pause()
            except KeyboardInterrupt:
                console.print("stopping")
