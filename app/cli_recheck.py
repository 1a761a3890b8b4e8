"""``recovery recheck``: look every case that needs the chain up again, decide, apply.

Exit codes: 0 when the run completed (cases whose network could not answer stay pending and are
counted, they are not a failure of the run); 1 when it could not run (database unreachable or
not migrated, unexpected error); 2 for bad options or configuration; 3 when another runner
already works on the (SQLite) database; 130 when stopped by Ctrl-C or SIGTERM (the batches in hand
are finished first; a SIGKILL loses nothing either: the next run takes the dead runner's leases over).
"""

from __future__ import annotations

import json
import signal
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import real_console
from app.cli_progress import (
    EXIT_BUSY,
    EXIT_COULD_NOT_RUN,
    EXIT_INTERRUPTED,
    PlainProgress,
    err,
    fail,
    out,
    ready_context,
)
from app.collector import batch_collection

if TYPE_CHECKING:
    from recovery.batch_deciding import BatchDecider
    from recovery.recheck import Recheck, RecheckOptions, RecheckSummary


def recheck(
    network: Annotated[str | None, typer.Option(help="Only cases on this network (claimed or refund network).")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="Handle at most this many cases in this run.")] = None,
    workers: Annotated[int, typer.Option(min=1, max=64, help="Batches in flight at once (threads).")] = 4,
    processes: Annotated[
        int | None, typer.Option(min=0, max=64, help="Processes that look batches up and decide them; the writes "
                                                     "stay in this one. 0: all in this process. Default: one per "
                                                     "core, at most 4.")
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, max=5000, help="Cases leased and looked up together.")] = 500,
    lease_seconds: Annotated[
        float, typer.Option(min=5.0, help="How long a lease holds if its runner hangs (a killed runner's lease "
                                          "is taken over at once).")
    ] = 300.0,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Decide and print; write nothing.")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable summary on stdout.")] = False,
) -> None:
    """Re-check the cases that need the chain: submitted, awaiting_chain, deposits still inside the
    reorg window, and refunds in flight. Safe to run as several processes on PostgreSQL."""
    from concurrent.futures.process import BrokenProcessPool

    from sqlalchemy.exc import OperationalError, ProgrammingError

    from recovery.batch_deciding import default_processes
    from recovery.checking import ChainGateway
    from recovery.leases import RunnerBusy
    from recovery.recheck import Recheck, RecheckOptions

    context = ready_context(network)
    config = context.config
    options = RecheckOptions(network=network, limit=limit, workers=workers, batch_size=batch_size,
                             lease_seconds=lease_seconds, dry_run=dry_run, anchor=True,
                             processes=default_processes() if processes is None else processes)
    runner = Recheck(context.cases, ChainGateway(config), options)
    previous = signal.signal(signal.SIGTERM, _interrupt)  # a polite stop: finish the batches in hand
    try:
        # worker processes are forked first, before the progress bar starts a thread
        with batch_collection(), runner.deciders() as decider:
            summary = _run(runner, decider, show_bar=err.is_terminal and not as_json)
    except KeyboardInterrupt:
        raise fail("interrupted: the batches in hand were finished and their leases released; run again to go on",
                    EXIT_INTERRUPTED) from None
    except RunnerBusy as exc:
        raise fail(f"error: {exc}", EXIT_BUSY) from None
    except BrokenProcessPool as exc:
        raise fail(f"error: a worker process died during the run ({exc}); the batches in hand were released: "
                   "run again to go on", EXIT_COULD_NOT_RUN) from None
    except (OperationalError, ProgrammingError) as exc:
        raise fail(f"error: the database failed during the run: {exc.orig}", EXIT_COULD_NOT_RUN) from None
    finally:
        signal.signal(signal.SIGTERM, previous)
        context.db.dispose()
    if as_json:
        sys.stdout.write(json.dumps(summary_json(summary, options), indent=2) + "\n")
    else:
        print_summary(summary)


def _interrupt(_signum: int, _frame: object) -> None:
    raise KeyboardInterrupt


def _run(runner: Recheck, decider: BatchDecider, *, show_bar: bool) -> RecheckSummary:
    if not show_bar:
        return runner.run(PlainProgress(lambda line: err.print(line, markup=False), "recheck", "cases"),
                          decider=decider)
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("recheck"), BarColumn(), MofNCompleteColumn(), TextColumn("cases"), TimeElapsedColumn())
    with Progress(*columns, console=real_console(err), transient=False) as bar:
        task = bar.add_task("recheck", total=None)

        def show(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        summary = runner.run(show, decider=decider)
        bar.update(task, completed=summary.processed, total=max(summary.selected, summary.processed))
        return summary


def summary_json(summary: RecheckSummary, options: RecheckOptions) -> dict[str, Any]:
    data = summary.to_json()
    data["selected"] = summary.selected
    data["error_count"] = len(summary.errors)
    data["options"] = {"network": options.network, "limit": options.limit, "workers": options.workers,
                       "processes": options.processes, "batch_size": options.batch_size}
    return data


def print_summary(summary: RecheckSummary) -> None:
    from rich.table import Table

    data = summary.to_json()
    mode = " (dry run: nothing written)" if summary.dry_run else ""
    out.print(
        f"re-checked {summary.processed} case(s) in {summary.elapsed:.1f}s{mode}: {summary.changed} changed, "
        f"{summary.unchanged} unchanged, {summary.unavailable} waiting for a network, {summary.conflicts} conflict(s)",
        markup=False,
    )
    if summary.reorgs or summary.refunds_confirmed or summary.refunds_failed:
        out.print(f"reorgs: {summary.reorgs}, refunds confirmed: {summary.refunds_confirmed}, "
                  f"refunds failed: {summary.refunds_failed}", markup=False)
    if summary.transitions:
        table = Table(title="status")
        for column in ("from", "to", "cases"):
            table.add_column(column, justify="right" if column == "cases" else "left")
        for item in data["transitions"]:
            table.add_row(item["from"], item["to"], str(item["cases"]))
        out.print(table)
    if summary.categories:
        table = Table(title="category")
        table.add_column("category")
        table.add_column("cases", justify="right")
        for name, count in data["categories"].items():
            table.add_row(name, str(count))
        out.print(table)
    for name, count in data["unavailable_networks"].items():
        out.print(f"network {name} did not answer: {count} case(s) left as they were, try again later", markup=False)
    if summary.anchor is not None:
        out.print(f"audit anchor published: event {summary.anchor['event_id']}", markup=False)
    if summary.anchor_error:
        out.print(f"warning: the audit anchor could not be published: {summary.anchor_error}", markup=False)
    for line in summary.errors[:20]:
        out.print(f"error: {line}", markup=False)
    if len(summary.errors) > 20:
        out.print(f"... and {len(summary.errors) - 20} more error(s) (see --json)", markup=False)


def register(app: typer.Typer) -> None:
    """Mount ``recovery recheck`` on the main CLI."""
    app.command("recheck")(recheck)
