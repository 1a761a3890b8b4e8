"""``recovery scan``: look for stray deposits on every address we hold, before anyone appeals.

Exit codes: 0 when the run completed (addresses whose network could not answer keep their place
and are counted, they are not a failure of the run); 1 when it could not run (database unreachable
or not migrated); 2 for bad options or configuration; 3 when another scanner already works on the
(SQLite) database.
"""

from __future__ import annotations

import csv
import json
import sys
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import real_console
from app.cli_progress import (
    EXIT_BUSY,
    EXIT_COULD_NOT_RUN,
    EXIT_USAGE,
    PlainProgress,
    err,
    fail,
    out,
    ready_context,
)
from app.collector import batch_collection

if TYPE_CHECKING:
    from recovery.config import Config
    from recovery.scan import Scanner, ScanOptions, ScanSummary


def scan(
    network: Annotated[str | None, typer.Option(help="Only look on this network (where deposits land).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Scan at most this many (network, address) pairs; "
                                                          "the next run continues with the others.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Threads scanning addresses.")] = 4,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="(network, address) pairs leased together; "
                                                          "those of one EVM network are looked up together "
                                                          "(one eth_getLogs per block range).")] = 50,
    chunk_blocks: Annotated[int, typer.Option(min=1, help="Blocks per look-up; progress is saved after each.")] = 5000,
    from_block: Annotated[int | None, typer.Option(min=0, help="Where an address never scanned starts (default: "
                                                               "the network's scan_start_block, else 0).")] = None,
    lease_seconds: Annotated[
        float, typer.Option(min=5.0, help="How long a lease holds if its scanner hangs (a killed scanner's lease "
                                          "is taken over at once).")
    ] = 300.0,
    prices: Annotated[Path | None, typer.Option(
        help="CSV network,asset,price_usd: USD prices of unlisted tokens (contract or symbol), so that spam "
             "worth less than policy.dust_below_usd is recorded as dust instead of opened.")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Find deposits that reached our addresses and were not credited (wrong network, unlisted
    token, below minimum, memo mistakes, ...) and open a case for each, as the system, before the
    user appeals. Counterfeit and dust transfers are recorded, not opened. Continues where the last
    run stopped; safe to run as several processes on PostgreSQL."""
    from sqlalchemy.exc import OperationalError, ProgrammingError

    from recovery.checking import ChainGateway
    from recovery.leases import RunnerBusy
    from recovery.scan import Scanner, ScanOptions

    context = ready_context(network)
    config = context.config
    price_map = read_prices(prices, config) if prices is not None else None
    options = ScanOptions(network=network, limit=limit, workers=workers, batch_size=batch_size,
                          chunk_blocks=chunk_blocks, from_block=from_block, lease_seconds=lease_seconds,
                          prices=price_map)
    try:
        scanner = Scanner(context.cases, ChainGateway(config), options)
    except ValueError as exc:
        raise fail(f"error: {exc}", EXIT_USAGE) from None
    try:
        with batch_collection():
            summary = _run(scanner, show_bar=err.is_terminal and not as_json)
    except RunnerBusy as exc:
        raise fail(f"error: {exc}", EXIT_BUSY) from None
    except (OperationalError, ProgrammingError) as exc:
        raise fail(f"error: the database failed during the run: {exc.orig}", EXIT_COULD_NOT_RUN) from None
    finally:
        context.db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(summary_json(summary, options), indent=2) + "\n")
    else:
        print_summary(summary)


def read_prices(path: Path, config: Config) -> dict[tuple[str, str], Decimal]:
    """``network,asset,price_usd`` rows (a header line first); every bad line is named (exit 2)."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as exc:
        raise fail(f"error: --prices: cannot read {path}: {exc.strerror}", EXIT_USAGE) from None
    prices: dict[tuple[str, str], Decimal] = {}
    problems: list[str] = []
    rows = list(csv.reader(lines))
    if not rows or [c.strip().lower() for c in rows[0]] != ["network", "asset", "price_usd"]:
        raise fail("error: --prices: the first line must be the header network,asset,price_usd", EXIT_USAGE)
    for number, row in enumerate(rows[1:], start=2):
        if not row or not any(cell.strip() for cell in row):
            continue
        if len(row) != 3:
            problems.append(f"line {number}: expected 3 columns, got {len(row)}")
            continue
        network, asset, raw = (cell.strip() for cell in row)
        if network not in config.networks:
            problems.append(f"line {number}: network: unknown network {network!r}")
            continue
        try:
            price = Decimal(raw)
        except InvalidOperation:
            price = Decimal(-1)
        if not asset or not price.is_finite() or price < 0:
            problems.append(f"line {number}: {'asset: is required' if not asset else 'price_usd: not a decimal >= 0'}")
            continue
        prices[(network, asset)] = price
    if problems:
        raise fail("error: --prices: " + "; ".join(problems[:20]), EXIT_USAGE)
    return prices


def _run(scanner: Scanner, *, show_bar: bool) -> ScanSummary:
    if not show_bar:
        return scanner.run(PlainProgress(lambda line: err.print(line, markup=False), "scan", "addresses"))
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("scan"), BarColumn(), MofNCompleteColumn(), TextColumn("addresses"), TimeElapsedColumn())
    with Progress(*columns, console=real_console(err), transient=False) as bar:
        task = bar.add_task("scan", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = scanner.run(show)
        bar.update(task, completed=summary.units, total=summary.units)
        return summary


def summary_json(summary: ScanSummary, options: ScanOptions) -> dict[str, Any]:
    data = summary.to_json()
    data["error_count"] = len(summary.errors)
    data["options"] = {"network": options.network, "limit": options.limit, "workers": options.workers,
                       "batch_size": options.batch_size, "chunk_blocks": options.chunk_blocks,
                       "from_block": options.from_block}
    return data


def print_summary(summary: ScanSummary) -> None:
    data = summary.to_json()
    out.print(
        f"scanned {summary.scanned} address(es) on their networks in {summary.elapsed:.1f}s "
        f"({summary.up_to_date} already up to date, {summary.blocks} block(s), {summary.transfers} incoming "
        f"transfer(s)): {summary.opened} case(s) opened, {summary.appealed} already appealed, "
        f"{summary.dust} dust and {summary.counterfeit} counterfeit recorded, {summary.ignored} ignored, "
        f"{summary.credited} credited",
        markup=False,
    )
    if summary.categories:
        from rich.table import Table

        table = Table(title="opened")
        table.add_column("category")
        table.add_column("cases", justify="right")
        for name, count in data["categories"].items():
            table.add_row(name, str(count))
        out.print(table)
    for name, count in data["unavailable_networks"].items():
        out.print(f"network {name} did not answer: {count} address(es) keep their place, try again later",
                  markup=False)
    for name, count in data["unsupported"].items():
        out.print(f"network {name}: no chain adapter for its family yet: {count} address(es) not scanned",
                  markup=False)
    for line in summary.errors[:20]:
        out.print(f"error: {line}", markup=False)
    if len(summary.errors) > 20:
        out.print(f"... and {len(summary.errors) - 20} more error(s) (see --json)", markup=False)


def register(app: typer.Typer) -> None:
    """Mount ``recovery scan`` on the main CLI."""
    app.command("scan")(scan)
