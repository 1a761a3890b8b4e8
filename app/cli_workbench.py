"""``recovery workbench``: serve the Streamlit workbench (loopback only unless told otherwise)."""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Annotated

import typer

MAIN_SCRIPT = Path(__file__).resolve().parent / "workbench" / "main.py"
LOOPBACK = ("127.0.0.1", "::1", "localhost")


def streamlit_command(host: str, port: int, secrets: Path | None = None, python: str = sys.executable) -> list[str]:
    """The ``streamlit run`` command line: headless, no usage statistics, no file watcher, no dev menu."""
    command = [
        python, "-m", "streamlit", "run", str(MAIN_SCRIPT),
        "--server.address", host,
        "--server.port", str(port),
        "--server.headless", "true",
        "--server.fileWatcherType", "none",
        "--server.runOnSave", "false",
        "--server.enableXsrfProtection", "true",
        "--server.maxUploadSize", "1",
        "--browser.gatherUsageStats", "false",
        "--global.developmentMode", "false",
        # the queue sets its widgets from the page's address through the session state (a date range
        # needs its default to be one): that is the design, not a duplicate to warn about in the log
        "--global.disableWidgetStateDuplicationWarning", "true",
        "--client.toolbarMode", "minimal",
        "--client.showErrorDetails", "type",
        "--theme.base", "light",
    ]
    if secrets is not None:
        command += ["--secrets.files", str(secrets)]
    return command


def register(app: typer.Typer) -> None:
    @app.command("workbench")
    def workbench(
        host: Annotated[str, typer.Option(help="Address to listen on. Loopback by default; anything else "
                                               "exposes the workbench to the network.")] = "127.0.0.1",
        port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8501,
        secrets: Annotated[Path | None, typer.Option(
            exists=True, dir_okay=False, help="A secrets.toml with an [auth] section for OIDC sign-in (st.login).",
        )] = None,
    ) -> None:
        """Serve the appeal team's workbench (Streamlit) on the configured database."""
        if host not in LOOPBACK:
            typer.echo(f"warning: listening on {host}: put the workbench behind TLS and a firewall", err=True)
        command = streamlit_command(host, port, secrets)
        typer.echo(f"workbench: http://{'[' + host + ']' if ':' in host else host}:{port}", err=True)
        sys.stdout.flush()
        os.execv(command[0], command)  # noqa: S606 - a fixed argument list, no shell
