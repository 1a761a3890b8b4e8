"""The case commands of ``recovery cases``: ``list`` and ``show`` (read-only, on the database driver: see
below), and the case actions: approve, credit, close, reopen, reject, send-for-approval,
change-payout, accept-evidence, reject-evidence, set-valuation, each by an operator who names themself with
``--as NAME``; and ``evidence``, which shows a case's ownership evidence (read-only).

Every command reads the case's current version and acts on it through ``CaseService`` (a change
made meanwhile by someone else is a conflict, never an overwrite); the actor's role comes from the
operators table. Exit codes (:mod:`app.cli_operator`): 0 done; 1 refused (a rule such as four eyes,
a wrong password, an unknown or disabled operator, a conflict, a missing field: the message names
it; nothing changed); 2 bad usage.

``list`` and ``show`` start often and read little: they read the rows through
:mod:`recovery.case_rows` (``sqlite3`` or ``psycopg``) and the database URL through
:mod:`recovery.env_settings`, without SQLAlchemy, SQLModel, the table models, pydantic-settings, the
service layer or the configuration (issue 20; ``tests/test_startup.py`` checks what they import).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import lazy_console
from app.cli_operator import (
    AsOption,
    JsonOption,
    err,
    operator_context,
    out,
    print_json,
    service_refusal,
    sign_in,
    usage,
)
from recovery.vocabulary import CaseStatus, Category

if TYPE_CHECKING:
    from datetime import datetime

    from app.context import AppContext
    from recovery.case_rows import CaseReader
    from recovery.evidence import EvidenceService
    from recovery.evidence_records import OwnershipEvidence
    from recovery.models import Case
    from recovery.services import Actor, CaseService

#: the read-outs' tables (``cases list``, ``cases show``)
console = lazy_console()

ReferenceArgument = Annotated[str, typer.Argument(metavar="REF", help="The case reference (RC-…).")]
Action = Callable[["CaseService", "Actor", int], "Case"]


def act(reference: str, name: str, as_json: bool, verb: str, action: Action) -> None:
    """Sign ``name`` in, read the case's version, apply ``action`` and report it (or refuse, exit 1)."""
    from recovery.errors import ServiceError
    from recovery.views import case_json

    with operator_context() as context:
        actor = sign_in(context, name)
        service = context.cases
        try:
            version = service.get(reference).case.version
            case = action(service, actor, version)
        except ServiceError as exc:
            raise service_refusal(exc) from None
        if as_json:
            print_json({**case_json(case), "actor": actor.name, "actor_role": actor.role.value})
            return
        out.print(f"{reference} {verb} by {actor.name} ({actor.role.value}): now {case.status} "
                  f"(version {case.version})", markup=False)


Review = Callable[["EvidenceService", "Actor", int], "OwnershipEvidence"]


def evidence_json(context: AppContext, reference: str) -> dict[str, Any]:
    """``cases evidence --json``: what the case needs and every piece of evidence given."""
    from recovery.evidence import EvidenceService

    service = EvidenceService(context.db, context.config)
    case, need, rows = service.evidence(reference)
    own = service.ownership(reference)  # only evidence for the current requirement counts
    return {
        "reference": reference,
        "version": case.version,
        "required": need is not None,
        "status": own.status,
        "kinds": list(need.kinds) if need else [],
        "requirement": None if need is None else {
            "network": need.network, "tx_hash": need.tx_hash, "sender": need.sender,
            "transfer_indexes": list(need.transfer_indexes), "not_offered": need.not_offered},
        "evidence": [{**evidence_row_json(row), "counts": row.id in own.current} for row in rows],
    }


def evidence_row_json(row: OwnershipEvidence) -> dict[str, Any]:
    def when(moment: datetime | None) -> str | None:
        return moment.isoformat() if moment is not None else None

    return {
        "id": row.id, "kind": row.kind, "status": row.status, "submitted_by": row.submitted_by,
        "submitted_at": when(row.submitted_at), "sender": row.sender, "verification": row.verification,
        "document_sha256": row.document_sha256, "media_type": row.media_type, "size": row.size,
        "file_name": row.file_name, "reviewer": row.reviewer, "reviewed_at": when(row.reviewed_at),
        "reason": row.reason,
    }


def review(reference: str, evidence_id: int, name: str, as_json: bool, verb: str, action: Review) -> None:
    """Sign ``name`` in, read the case's version, accept or reject the evidence (or refuse, exit 1)."""
    from recovery.errors import ServiceError
    from recovery.evidence import EvidenceService

    with operator_context() as context:
        actor = sign_in(context, name)
        service = EvidenceService(context.db, context.config)
        try:
            version = service.evidence(reference)[0].version
            row = action(service, actor, version)
        except ServiceError as exc:
            raise service_refusal(exc) from None
        if as_json:
            print_json({**evidence_row_json(row), "reference": reference, "actor": actor.name,
                        "actor_role": actor.role.value})
            return
        out.print(f"{reference} evidence {evidence_id} {verb} by {actor.name} ({actor.role.value})", markup=False)


@contextmanager
def _case_reader() -> Iterator[CaseReader]:
    """A read connection on the database driver itself (no SQLAlchemy: ``recovery.case_rows``) to the
    database of the settings, whose checks run without pydantic-settings (a bad setting still ends the
    command as the settings report it: one line naming it, exit 2). A database that cannot be opened
    or is not at this version's schema ends it with one line and exit 1."""
    from recovery.case_rows import ReadFailed, read_connection
    from recovery.env_settings import database_url

    url = database_url()
    try:
        with read_connection(url) as reader:
            yield reader
    except ReadFailed as exc:
        err.print(f"error: {exc}", markup=False, highlight=False)
        raise typer.Exit(1) from None


def _check_choice(value: str | None, allowed: set[str], name: str) -> None:
    if value is not None and value not in allowed:
        err.print(f"[bold red]error:[/] {name}: {value!r} is not one of {', '.join(sorted(allowed))}", markup=True)
        raise typer.Exit(2)


def list_cases(status: str | None, category: str | None, network: str | None, user: str | None, limit: int,
               offset: int, as_json: bool) -> None:
    """``recovery cases list``: a page of cases, oldest first (a table, or JSON)."""
    _check_choice(status, {s.value for s in CaseStatus}, "status")
    _check_choice(category, {c.value for c in Category}, "category")
    from recovery.case_rows import CaseFilter, case_json, case_rows, count_case_rows

    filters = CaseFilter(status=status, category=category, network=network, user_id=user)
    with _case_reader() as reader:
        cases = case_rows(reader, filters, limit=limit, offset=offset)
        total = None if as_json else count_case_rows(reader, filters)
    if as_json:
        print_json([case_json(c) for c in cases])
        return
    from rich.table import Table

    table = Table(title=f"{len(cases)} of {total} cases")
    for column in ("reference", "status", "category", "network", "asset", "user", "flags", "created"):
        table.add_column(column)
    for c in cases:
        table.add_row(c.reference or "-", c.status, c.category or "-", c.network, c.asset, c.user_id,
                      ", ".join(c.flags) or "-", c.created_at.isoformat(timespec="minutes"))
    console.print(table)


def show_case(reference: str, as_json: bool) -> None:
    """``recovery cases show``: one case with its decision and its audit timeline (tables, or JSON)."""
    from recovery.case_rows import case_json, event_json, read_case_rows

    with _case_reader() as reader:
        view = read_case_rows(reader, reference)
    data = case_json(view.case)
    data["events"] = [event_json(e) for e in view.events]
    if as_json:
        print_json(data)
        return
    from rich.table import Table

    table = Table(show_header=False, title=reference)
    for key, value in data.items():
        if key in ("events", "decision"):
            continue
        table.add_row(key, "-" if value is None else str(value))
    console.print(table)
    reasons = (view.case.decision or {}).get("reasons", [])
    for reason in reasons:
        console.print(f"  • {reason.get('text', reason) if isinstance(reason, dict) else reason}",
                      markup=False, highlight=False)
    events = Table(title="timeline")
    for column in ("#", "when", "actor", "action", "status"):
        events.add_column(column)
    for e in view.events:
        events.add_row(str(e.id), e.created_at.isoformat(timespec="seconds"), f"{e.actor} ({e.actor_role})",
                       e.action, f"{e.from_status or '-'} → {e.to_status or '-'}")
    console.print(events)


def register(cases_app: typer.Typer) -> None:
    """Mount the case actions, then ``list`` and ``show``, on ``recovery cases``."""

    @cases_app.command("send-for-approval")
    def send_for_approval(
        reference: ReferenceArgument,
        as_name: AsOption,
        comment: Annotated[str, typer.Option(help="A word for the approver.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Hand a prepared case to an approver (required above the four-eyes threshold)."""
        act(reference, as_name, as_json, "sent for approval",
            lambda s, a, v: s.send_for_approval(reference, a, expected_version=v, comment=comment))

    @cases_app.command("approve")
    def approve(
        reference: ReferenceArgument,
        as_name: AsOption,
        comment: Annotated[str, typer.Option(help="Kept in the approval event.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Approve the case's credit or refund and fix its exact payout (four eyes above the threshold)."""
        act(reference, as_name, as_json, "approved",
            lambda s, a, v: s.approve(reference, a, expected_version=v, comment=comment))

    @cases_app.command("credit")
    def credit(
        reference: ReferenceArgument,
        as_name: AsOption,
        ledger_reference: Annotated[str, typer.Option(help="The ledger entry of the credit (required).")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Record the approved credit as booked (never by its approver); writes the credited-deposits book."""
        act(reference, as_name, as_json, "credited",
            lambda s, a, v: s.mark_credited(reference, a, expected_version=v, ledger_reference=ledger_reference))

    @cases_app.command("close")
    def close(reference: ReferenceArgument, as_name: AsOption, as_json: JsonOption = False) -> None:
        """Archive a refunded, credited or rejected case."""
        act(reference, as_name, as_json, "closed", lambda s, a, v: s.close(reference, a, expected_version=v))

    @cases_app.command("reopen")
    def reopen(
        reference: ReferenceArgument,
        as_name: AsOption,
        reason: Annotated[str, typer.Option(help="Why the case goes back to review.")],
        as_json: JsonOption = False,
    ) -> None:
        """Take a rejected or closed case back into review (approvers and admins)."""
        act(reference, as_name, as_json, "reopened", lambda s, a, v: s.reopen(reference, reason, a, expected_version=v))

    @cases_app.command("reject")
    def reject(
        reference: ReferenceArgument,
        as_name: AsOption,
        reason_code: Annotated[str | None, typer.Option(
            help="A rejection reason code (shown to the user in plain words); default: the one that matches the "
                 "case's finding.")] = None,
        message: Annotated[str, typer.Option(help="A message for the user.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Refuse the appeal with a reason code; an approved payout not yet paid is cancelled."""
        from recovery.services import REJECTION_REASONS

        if reason_code is not None and reason_code not in REJECTION_REASONS:
            raise usage(f"--reason-code: {reason_code!r} is not one of {', '.join(REJECTION_REASONS)}")
        act(reference, as_name, as_json, "rejected",
            lambda s, a, v: s.reject(reference, reason_code, a, expected_version=v, message=message))

    @cases_app.command("request-info")
    def request_info(
        reference: ReferenceArgument,
        as_name: AsOption,
        message: Annotated[str | None, typer.Option(help="The question, as the user will read it.")] = None,
        template: Annotated[str | None, typer.Option(
            help="A template of config/templates.toml instead of --message (its text is sent as it is).")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Ask the user a question (the case waits in needs_info, its SLA clock stopped, until they answer)."""
        if (message is None) == (template is None):
            raise usage("give the question with --message TEXT or --template NAME (one of them)")
        with operator_context() as context:
            chosen = context.config.templates.get(template) if template is not None else None
        if template is not None and chosen is None:
            names = ", ".join(sorted(context.config.templates)) or "none configured"
            raise usage(f"--template: {template!r} is not a template of templates.toml ({names})")
        text = chosen.message if chosen is not None else message or ""
        act(reference, as_name, as_json, "asked for information",
            lambda s, a, v: s.request_info(reference, text, a, expected_version=v, template=template))

    @cases_app.command("evidence")
    def evidence(reference: ReferenceArgument, as_json: JsonOption = False) -> None:
        """The case's ownership evidence: whether its credit needs proof that the appellant sent the
        deposit, what is offered, and each signature or document given with its review."""
        from recovery.errors import ServiceError

        with operator_context() as context:
            try:
                data = evidence_json(context, reference)
            except ServiceError as exc:
                raise service_refusal(exc) from None
        if as_json:
            print_json(data)
            return
        need = data["requirement"]
        if need is None:
            out.print(f"{reference}: no ownership evidence needed ({data['status']})", markup=False)
        else:
            out.print(f"{reference}: ownership evidence {data['status']}; proof that the appellant sent "
                      f"{need['tx_hash']} from {need['sender']} ({' or '.join(data['kinds'])})", markup=False)
            if need["not_offered"]:
                out.print(f"  signed_message not offered: {need['not_offered']}", markup=False)
        for row in data["evidence"]:
            what = (f"{row['media_type']} {row['size']} bytes sha256 {row['document_sha256']}"
                    if row["kind"] == "withdrawal_record"
                    else f"{(row['verification'] or {}).get('method')}: {(row['verification'] or {}).get('reason')}")
            review = f" by {row['reviewer']}" if row["reviewer"] else ""
            reason = f": {row['reason']}" if row["reason"] and row["status"] == "rejected" else ""
            out.print(f"  #{row['id']} {row['kind']} {row['status']}{review}{reason} (from {row['submitted_by']} "
                      f"at {row['submitted_at']}; {what})", markup=False)

    @cases_app.command("accept-evidence")
    def accept_evidence(
        reference: ReferenceArgument,
        evidence_id: Annotated[int, typer.Argument(metavar="EVIDENCE_ID", help="The evidence's id (cases evidence).")],
        as_name: AsOption,
        comment: Annotated[str, typer.Option(help="Kept in the audit event.")] = "",
        as_json: JsonOption = False,
    ) -> None:
        """Accept a withdrawal record: it counts as preparing the case, so someone else approves it."""
        review(reference, evidence_id, as_name, as_json, "accepted",
               lambda s, a, v: s.accept(reference, evidence_id, a.name, a.role, expected_version=v, comment=comment))

    @cases_app.command("reject-evidence")
    def reject_evidence(
        reference: ReferenceArgument,
        evidence_id: Annotated[int, typer.Argument(metavar="EVIDENCE_ID", help="The evidence's id (cases evidence).")],
        as_name: AsOption,
        reason: Annotated[str, typer.Option(help="Why the record does not prove the deposit (required).")],
        as_json: JsonOption = False,
    ) -> None:
        """Reject a withdrawal record, with a reason."""
        if not reason.strip():
            raise usage("--reason: give the reason the record is rejected")
        review(reference, evidence_id, as_name, as_json, "rejected",
               lambda s, a, v: s.reject(reference, evidence_id, a.name, a.role, reason=reason, expected_version=v))

    @cases_app.command("change-payout")
    def change_payout(
        reference: ReferenceArgument,
        as_name: AsOption,
        reason: Annotated[str, typer.Option(help="Why the payout changes.")],
        to_address: Annotated[str | None, typer.Option(help="The new refund address.")] = None,
        memo: Annotated[str | None, typer.Option(help="The new memo or tag of the refund.")] = None,
        as_json: JsonOption = False,
    ) -> None:
        """Change a refund's address or memo: the case goes back to review and needs a new approval by
        someone other than you."""
        if to_address is None and memo is None:
            raise usage("give --to-address and/or --memo")
        act(reference, as_name, as_json, "payout changed",
            lambda s, a, v: s.change_payout(reference, a, expected_version=v, reason=reason, to_address=to_address,
                                            memo=memo))

    @cases_app.command("set-valuation")
    def set_valuation(
        reference: ReferenceArgument,
        as_name: AsOption,
        price_usd: Annotated[str, typer.Option(
            "--price-usd", metavar="D", help="The USD price of one unit of the asset (a positive decimal, at most 8 "
                                            "decimal places).")],
        source: Annotated[str, typer.Option(help="Where the price comes from (a venue, a quote).")],
        reason: Annotated[str, typer.Option(help="Why this price is right (kept in the audit event).")],
        as_json: JsonOption = False,
    ) -> None:
        """Set the USD price of an asset without one: the fee is recomputed from the fee policy; it counts as
        preparing the case, so someone else approves it (approval is refused until a fee-bearing case of
        unknown value has one)."""
        act(reference, as_name, as_json, "valued",
            lambda s, a, v: s.set_valuation(reference, a, expected_version=v, price_usd=price_usd, source=source,
                                            reason=reason))

    @cases_app.command("list")
    def cases_list(
        status: Annotated[str | None, typer.Option(help="Filter by status.")] = None,
        category: Annotated[str | None, typer.Option(help="Filter by category.")] = None,
        network: Annotated[str | None, typer.Option(help="Filter by claimed network.")] = None,
        user: Annotated[str | None, typer.Option(help="Filter by user id.")] = None,
        limit: Annotated[int, typer.Option(min=1, max=10_000)] = 100,
        offset: Annotated[int, typer.Option(min=0)] = 0,
        as_json: JsonOption = False,
    ) -> None:
        """List cases, oldest first."""
        list_cases(status, category, network, user, limit, offset, as_json)

    @cases_app.command("show")
    def cases_show(reference: str, as_json: JsonOption = False) -> None:
        """One case with its decision and its full audit timeline."""
        show_case(reference, as_json)
