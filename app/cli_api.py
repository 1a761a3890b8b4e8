"""``recovery api``: serve the appeal form's JSON API with uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from app.cli_console import lazy_console

err = lazy_console(stderr=True, soft_wrap=True)


def preflight() -> None:
    """Refuse to start with settings that cannot work: no token key, bad settings, schema behind."""
    from pydantic import ValidationError
    from sqlalchemy.exc import SQLAlchemyError

    from app.api_auth import TokenVerifier
    from app.api_settings import ApiConfigError, ApiSettings
    from app.context import app_context
    from recovery import migrate

    try:
        settings = ApiSettings()
        TokenVerifier(settings)
    except ValidationError as exc:
        for problem in exc.errors():
            name = "RECOVERY_API_" + "_".join(str(p) for p in problem["loc"]).upper()
            err.print(f"error: {name}: {problem['msg'].removeprefix('Value error, ')}", markup=False)
        raise typer.Exit(2) from None
    except ApiConfigError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(2) from None
    context = app_context()
    context.config  # noqa: B018  (loads and validates the TOML configuration; errors exit 2)
    try:
        current = migrate.current_revision(context.db)
    except SQLAlchemyError as exc:
        err.print(f"error: cannot reach the database: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
                  markup=False)
        raise typer.Exit(1) from None
    if current != migrate.head_revision():
        err.print(f"error: the database schema is at {current or '(empty)'}, not {migrate.head_revision()}: "
                  "run `recovery db upgrade`", markup=False)
        raise typer.Exit(2)


def register(app: typer.Typer) -> None:
    @app.command("api")
    def api(
        host: Annotated[str, typer.Option(help="Interface to listen on.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="TCP port.")] = 8000,
        workers: Annotated[int, typer.Option(min=1, max=64, help="Worker processes.")] = 1,
        log_level: Annotated[str, typer.Option(help="critical|error|warning|info|debug")] = "info",
        access_log: Annotated[bool, typer.Option("--access-log/--no-access-log", help="Log every request.")] = True,
    ) -> None:
        """Serve the JSON API of the appeal form (settings: RECOVERY_API_*; see the README)."""
        import uvicorn

        if log_level not in ("critical", "error", "warning", "info", "debug"):
            err.print("error: --log-level: must be critical, error, warning, info or debug", markup=False)
            raise typer.Exit(2)
        preflight()
        uvicorn.run(
            "app.api:create_app_from_env",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=access_log,
            server_header=False,
        )
