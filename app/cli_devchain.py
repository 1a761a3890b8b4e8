"""``recovery devchain up|down|status``: the local anvil chains of the configuration."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer

from app.cli_console import group, lazy_console

if TYPE_CHECKING:
    from chains.devchain import ChainStatus, Devchain

devchain_app = group("Local anvil chains for development and tests.")
console = lazy_console()
err = lazy_console(stderr=True, soft_wrap=True)

_HEALTHY = {"running", "started", "stopped"}


def _devchain() -> Devchain:
    from app.context import app_context
    from chains.devchain import Devchain

    ctx = app_context()
    return Devchain(ctx.config, ctx.settings.var_dir / "devchain")


def _show(rows: list[ChainStatus]) -> None:
    from rich.table import Table

    table = Table("network", "chain id", "url", "state", "pid", "block", "detail")
    for row in rows:
        table.add_row(
            row.name,
            str(row.chain_id),
            row.url,
            row.state,
            str(row.pid or ""),
            "" if row.block is None else str(row.block),
            row.detail,
        )
    console.print(table)


def _finish(rows: list[ChainStatus], wanted: set[str]) -> None:
    _show(rows)
    bad = [r for r in rows if r.state not in wanted]
    if bad:
        err.print("problem with: " + ", ".join(f"{r.name} ({r.state})" for r in bad), markup=False)
        raise typer.Exit(1)


@devchain_app.command("up")
def up(timeout: Annotated[float, typer.Option(help="Seconds to wait for each node.")] = 30.0) -> None:
    """Start one anvil per local EVM network (those already running are left alone)."""
    from chains.devchain import DevchainError

    try:
        rows = _devchain().up(timeout=timeout)
    except DevchainError as exc:
        err.print(f"error: {exc}", markup=False)
        raise typer.Exit(1) from None
    _finish(rows, {"running", "started"})


@devchain_app.command("down")
def down() -> None:
    """Stop the anvil nodes that `devchain up` started."""
    _finish(_devchain().down(), {"stopped"})


@devchain_app.command("status")
def status() -> None:
    """Which local chains run, on which port, at which block."""
    _show(_devchain().status())


__all__ = ["devchain_app"]
