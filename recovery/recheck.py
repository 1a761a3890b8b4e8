"""The batch re-check: every case that needs the chain, looked up in batches, decided, applied.

Which cases: ``submitted`` and ``awaiting_chain``; ``in_review`` cases whose deposit is still
inside the network's reorg window (fewer confirmations than ``reorg_window_confirmations``,
default twice the required confirmations, at the last check): their block hash is checked again
and a reorg is recorded; and ``refund_pending`` cases with a refund transaction (confirmed:
``refunded``; failed on chain: back to ``approved``, the failed hash kept in the event).

Cases are leased (:mod:`recovery.leases`) so several runners share the work; each batch is looked
up with one batched ``lookup_many`` per network, decided by the rules engine, and every change
goes through the service layer as the system actor. A network that cannot answer leaves its cases
untouched (counted); the others go on.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from threading import Event, Lock
from typing import Any

from sqlalchemy import and_, case, exists, false, func, or_
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import col, select, update

from chains.base import ChainUnavailable, Observation, TxStatus
from chains.registry import UnsupportedFamily
from recovery.batch_deciding import BatchDecider, InProcessDecider, ProcessDecider, decide_batch
from recovery.checking import CaseChecker, CaseFacts, ChainGateway
from recovery.config import Config
from recovery.errors import Conflict, InvalidTransition
from recovery.leases import Leases, new_owner
from recovery.models import Case, ChainObservation
from recovery.services import SYSTEM, CaseService, decision_status
from recovery.vocabulary import CaseStatus

Progress = Callable[[int, int], None]

log = logging.getLogger(__name__)

#: how often the runner's main thread looks up from waiting on its workers (to run a signal's handler)
SIGNAL_CHECK_SECONDS = 0.2


@dataclass(frozen=True)
class RecheckOptions:
    network: str | None = None
    limit: int | None = None
    #: batches in flight at once (threads of the runner)
    workers: int = 4
    #: cases leased, looked up, decided and written together (500: each batch's fixed cost, a lease
    #: claim, a hand-over from a worker process and a transaction, cost the runner a sixth of its CPU
    #: at 200)
    batch_size: int = 500
    lease_seconds: float = 300.0
    dry_run: bool = False
    #: forked processes that look batches up and decide them (0: the runner's own process);
    #: the writes stay in the runner's process either way
    processes: int = 0
    #: remind users of unanswered questions and close the cases left unanswered too long (policy
    #: ``info_*_hours``) at the end of a real, unlimited run, for every network
    sweep_questions: bool = True
    #: publish an audit anchor at the end of a real run, at most every ``RECOVERY_AUDIT_ANCHOR_MINUTES``
    #: (``recovery recheck`` does; library callers such as the tests and the demo opt in)
    anchor: bool = False


@dataclass
class RecheckSummary:
    """What one run did. ``transitions`` counts (old status, new status) pairs."""

    selected: int = 0
    processed: int = 0
    changed: int = 0
    unchanged: int = 0
    unavailable: int = 0
    conflicts: int = 0
    reorgs: int = 0
    refunds_confirmed: int = 0
    refunds_failed: int = 0
    #: recorded refunds that did not prove the approved payout (flag refund_mismatch, back to review)
    refunds_mismatched: int = 0
    #: recorded refunds still unproven after the policy's hours (flag refund_overdue)
    refunds_overdue: int = 0
    dry_run: bool = False
    transitions: Counter[tuple[str, str]] = field(default_factory=Counter)
    categories: Counter[str] = field(default_factory=Counter)
    unavailable_networks: Counter[str] = field(default_factory=Counter)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    #: the audit anchor this run published (None: none was due, or anchoring is off)
    anchor: dict[str, Any] | None = None
    #: why the anchor could not be published (the run itself is not a failure for it)
    anchor_error: str | None = None
    #: questions to users: reminders sent and cases closed unanswered (``CaseService.sweep_questions``)
    questions_reminded: int = 0
    questions_closed: int = 0
    _lock: Lock = field(default_factory=Lock, repr=False)

    def to_json(self) -> dict[str, Any]:
        by_old: Counter[str] = Counter()
        by_new: Counter[str] = Counter()
        for (old, new), n in self.transitions.items():
            by_old[old] += n
            by_new[new] += n
        return {
            "dry_run": self.dry_run,
            "processed": self.processed,
            "changed": self.changed,
            "unchanged": self.unchanged,
            "unavailable": self.unavailable,
            "conflicts": self.conflicts,
            "reorgs": self.reorgs,
            "refunds_confirmed": self.refunds_confirmed,
            "refunds_failed": self.refunds_failed,
            "refunds_mismatched": self.refunds_mismatched,
            "refunds_overdue": self.refunds_overdue,
            "old_status": dict(sorted(by_old.items())),
            "new_status": dict(sorted(by_new.items())),
            "transitions": [{"from": o, "to": n, "cases": c} for (o, n), c in sorted(self.transitions.items())],
            "categories": dict(sorted(self.categories.items())),
            "unavailable_networks": dict(sorted(self.unavailable_networks.items())),
            "errors": self.errors[:100],
            "elapsed_seconds": round(self.elapsed, 3),
            "anchor": self.anchor,
            "anchor_error": self.anchor_error,
            "questions_reminded": self.questions_reminded,
            "questions_closed": self.questions_closed,
        }


def reorg_window(config: Config, network: str) -> int:
    net = config.network(network)
    extra = net.model_extra or {}
    return int(extra.get("reorg_window_confirmations", 2 * net.confirmations))


def eligible(config: Config, network: str | None = None) -> ColumnElement[bool]:
    """The SQL condition for "this case needs the chain now"."""
    landing = func.coalesce(Case.deposit_network, Case.network)
    windows = {n: reorg_window(config, n) for n in config.networks}
    window = case(*[(landing == name, size) for name, size in windows.items()], else_=0)
    recent = exists(
        select(ChainObservation.id).where(
            ChainObservation.network == landing,
            ChainObservation.tx_hash == Case.tx_hash,
            ChainObservation.status != TxStatus.NOT_FOUND.value,
            col(ChainObservation.confirmations) < window,
        )
    )
    condition = or_(
        col(Case.status).in_([CaseStatus.SUBMITTED.value, CaseStatus.AWAITING_CHAIN.value]),
        and_(col(Case.status) == CaseStatus.REFUND_PENDING.value, col(Case.refund_tx_hash).is_not(None)),
        and_(col(Case.status) == CaseStatus.IN_REVIEW.value, recent),
    )
    if network is not None:
        condition = and_(condition, or_(col(Case.network) == network, col(Case.refund_network) == network))
    return condition if config.networks else false()


class Recheck:
    def __init__(self, service: CaseService, gateway: ChainGateway, options: RecheckOptions) -> None:
        self.service = service
        self.gateway = gateway
        self.checker = CaseChecker(service, gateway)
        self.options = options
        self.config = service.config

    def count(self) -> int:
        with self.service.db.read() as session:
            return int(session.exec(select(func.count()).select_from(Case).where(
                eligible(self.config, self.options.network))).one())

    def deciders(self) -> AbstractContextManager[BatchDecider]:
        """Where batches are looked up and decided, per ``options.processes``. Enter it before any
        thread starts: worker processes are forked on entry."""
        if self.options.processes > 0 and not self.options.dry_run:
            if self.gateway.makes_its_own_adapters:
                return ProcessDecider(self.service, self.gateway, self.options.processes)
            log.warning("recheck: the gateway was given its adapters; deciding in this process")
        return nullcontext(InProcessDecider(self.checker))

    def run(self, progress: Progress | None = None, *, decider: BatchDecider | None = None) -> RecheckSummary:
        """One run. ``decider``: an entered :meth:`deciders` (the CLI forks its workers before its
        progress bar starts a thread); without it the run makes its own."""
        if decider is None:
            with self.deciders() as made:
                return self.run(progress, decider=made)
        began = time.monotonic()
        summary = RecheckSummary(dry_run=self.options.dry_run)
        total = self.count()
        if self.options.limit is not None:
            total = min(total, self.options.limit)
        summary.selected = total
        if self.options.dry_run:
            self._dry_run(summary, total, progress)
        else:
            owner = new_owner("recheck")
            with Leases(self.service.db, owner, lease_seconds=self.options.lease_seconds,
                        clock=self.service.clock) as leases:
                self._run_leased(leases, summary, total, progress, decider)
            if self.options.sweep_questions and self.options.limit is None and self.options.network is None:
                swept = self.service.sweep_questions()
                summary.questions_reminded, summary.questions_closed = len(swept["reminded"]), len(swept["closed"])
            if self.options.anchor:
                self._publish_anchor(summary)
        summary.elapsed = time.monotonic() - began
        return summary

    def _publish_anchor(self, summary: RecheckSummary) -> None:
        """Publish the audit chain's head outside the database unless the newest anchor is younger
        than the configured minutes (:func:`recovery.audit_anchors.maybe_publish`). A sink that fails
        is reported in the summary and logged; the run's work stands."""
        from recovery.audit_anchors import AnchorError, anchor_settings, maybe_publish
        from recovery.dbtypes import utcnow
        from recovery.settings import get_settings

        try:
            settings = anchor_settings(get_settings().var_dir)
            summary.anchor = maybe_publish(self.service.db.read, settings, utcnow())
        except (AnchorError, OSError) as exc:
            summary.anchor_error = str(exc)
            log.warning("recheck: the audit anchor could not be published: %s", exc)

    # ------------------------------------------------------------------ real runs

    def _run_leased(self, leases: Leases, summary: RecheckSummary, total: int, progress: Progress | None,
                    decider: BatchDecider) -> None:
        # a case another runner already handled in this run (checked since it started) is not taken again
        started = self.service.clock()
        not_yet = or_(col(Case.last_checked_at).is_(None), col(Case.last_checked_at) < started)
        condition = and_(eligible(self.config, self.options.network), not_yet)
        budget = Lock()
        remaining = [total if self.options.limit is not None else None]

        def take(done: list[int]) -> list[int]:
            with budget:
                size = self.options.batch_size
                if remaining[0] is not None:
                    size = min(size, remaining[0])
                    if size <= 0:
                        leases.release(done)
                        return []
                ids = leases.claim(condition, size, releasing=done)
                if remaining[0] is not None:
                    remaining[0] -= len(ids)
                return ids

        def worker() -> None:
            done: list[int] = []  # the batch just processed: released with the next claim
            try:
                while not stop.is_set():
                    ids, done = take(done), []
                    if not ids:
                        return
                    try:
                        self._process(ids, summary, decider, leases.owner)
                    except BaseException:
                        leases.release(ids)
                        raise
                    done = ids
                    if progress is not None:
                        progress(summary.processed, total)
            finally:
                leases.release(done)

        workers = max(1, self.options.workers)
        stop = Event()
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="recheck") as pool:
            futures = [pool.submit(worker) for _ in range(workers)]
            try:
                for future in futures:
                    # Python runs signal handlers in this thread only, and only between bytecodes: a
                    # Ctrl-C or SIGTERM that the kernel hands to a worker thread (as after a SIGSTOP
                    # and SIGCONT) would wait for the whole run if this thread slept in one long wait
                    while not future.done():
                        wait([future], timeout=SIGNAL_CHECK_SECONDS)
                    future.result()
            except BaseException:  # Ctrl-C (or a worker failed): finish the batches in hand, take no more
                stop.set()
                raise

    def _process(self, ids: Sequence[int], summary: RecheckSummary, decider: BatchDecider, owner: str) -> None:
        """Look a leased batch up (``decider``) and apply it; the applied cases' leases are cleared
        with their update (``owner``: this runner), the others' with the next claim."""
        batch = decider.decide(ids, self.service.clock())
        refunds = [c for c in batch.cases if c.status == CaseStatus.REFUND_PENDING.value]
        checks = [c for c in batch.cases if c.status != CaseStatus.REFUND_PENDING.value]
        if checks:
            evidence = batch.evidence
            ready = [c for c in checks if evidence[(c.network, c.tx_hash)].conclusive]
            waiting = [c for c in checks if not evidence[(c.network, c.tx_hash)].conclusive]
            self._touch([c.id for c in waiting])
            for case_row in waiting:
                self._count_unavailable(summary, case_row, evidence[(case_row.network, case_row.tx_hash)].unavailable,
                                        touch=False)
            # one transaction for the whole batch (decisions, observations, audit events)
            decisions = [batch.decisions.get(c.id) if c.id is not None else None for c in ready]
            for outcome in self.checker.apply_decided(ready, evidence, decisions, SYSTEM, release_lease_of=owner):
                with summary._lock:
                    summary.processed += 1
                    if outcome.error is not None:
                        summary.conflicts += 1
                        summary.errors.append(f"{outcome.reference}: {outcome.error}")
                        continue
                    summary.transitions[(outcome.old_status, outcome.new_status)] += 1
                    if outcome.category:
                        summary.categories[outcome.category] += 1
                    if outcome.changed:
                        summary.changed += 1
                    else:
                        summary.unchanged += 1
                    if outcome.reorg:
                        summary.reorgs += 1
        if refunds:
            self._refunds(refunds, summary)

    def _touch(self, case_ids: Sequence[int | None]) -> None:
        """Re-check bookkeeping for cases left untouched (no event, no version bump)."""
        ids = [i for i in case_ids if i is not None]
        if self.options.dry_run or not ids:
            return
        with self.service.db.write() as session:
            session.exec(
                update(Case).where(col(Case.id).in_(ids)).values(
                    last_checked_at=self.service.clock(), check_count=Case.check_count + 1
                )
            )

    def _count_unavailable(self, summary: RecheckSummary, case_row: CaseFacts, unavailable: dict[str, str], *,
                           touch: bool = True) -> None:
        if touch:
            self._touch([case_row.id])
        with summary._lock:
            summary.processed += 1
            summary.unavailable += 1
            summary.transitions[(case_row.status, case_row.status)] += 1
            for network in unavailable:
                summary.unavailable_networks[network] += 1

    def _refunds(self, cases: list[CaseFacts], summary: RecheckSummary) -> None:
        by_network: dict[str, list[CaseFacts]] = {}
        for case_row in cases:
            by_network.setdefault(case_row.refund_network or case_row.network, []).append(case_row)
        for network, rows in by_network.items():
            try:
                answers = self.gateway.adapter(network).lookup_many([r.refund_tx_hash or "" for r in rows])
            except (ChainUnavailable, UnsupportedFamily) as exc:
                for row in rows:
                    self._count_unavailable(summary, row, {network: str(exc)})
                continue
            required = self.config.network(network).confirmations
            for row in rows:
                self._refund_outcome(row, answers.get(row.refund_tx_hash or ""), required, summary)

    def _refund_outcome(self, row: CaseFacts, obs: Observation | None, required: int, summary: RecheckSummary) -> None:
        """Prove the recorded refund against the approved payout (:meth:`CaseService.settle_refund`)."""
        reference = row.reference or ""
        old = row.status
        try:
            updated, outcome = self.service.settle_refund(reference, obs, expected_version=row.version)
        except (Conflict, InvalidTransition) as exc:
            with summary._lock:
                summary.processed += 1
                summary.conflicts += 1
                summary.errors.append(f"{reference}: {exc}")
            return
        if updated is None:  # not mined yet, or not enough confirmations: look again next run
            self._touch([row.id])
            with summary._lock:
                summary.processed += 1
                summary.unchanged += 1
                summary.transitions[(old, old)] += 1
            return
        counter = {"confirmed": "refunds_confirmed", "overpaid": "refunds_confirmed", "failed": "refunds_failed",
                   "mismatch": "refunds_mismatched", "overdue": "refunds_overdue"}[outcome]
        with summary._lock:
            summary.processed += 1
            summary.changed += 1
            setattr(summary, counter, getattr(summary, counter) + 1)
            summary.transitions[(old, updated.status)] += 1

    # ------------------------------------------------------------------ dry runs

    def _dry_run(self, summary: RecheckSummary, total: int, progress: Progress | None) -> None:
        """Decide every eligible case and count what would change; write nothing, lease nothing."""
        condition = eligible(self.config, self.options.network)
        after = 0
        while summary.processed < total:
            size = min(self.options.batch_size, total - summary.processed)
            with self.service.db.read() as session:
                ids = [i for i in session.exec(
                    select(Case.id).where(condition, col(Case.id) > after).order_by(col(Case.id)).limit(size)).all()
                    if i is not None]
            if not ids:
                break
            after = ids[-1]
            # looked up and decided as a real run's batch is, in this process
            batch = decide_batch(self.checker, ids, self.service.clock())
            for row in batch.cases:
                if row.status == CaseStatus.REFUND_PENDING.value:
                    summary.processed += 1
                    summary.transitions[(row.status, row.status)] += 1
                    continue
                found = batch.evidence[(row.network, row.tx_hash)]
                if not found.conclusive:
                    self._count_unavailable(summary, row, found.unavailable)
                    continue
                decision = batch.decisions[row.id] if row.id is not None else None
                assert decision is not None
                new = decision_status(decision).value
                summary.processed += 1
                summary.transitions[(row.status, new)] += 1
                summary.categories[decision["category"]] += 1
                if new != row.status or decision["category"] != row.category:
                    summary.changed += 1
                else:
                    summary.unchanged += 1
            if progress is not None:
                progress(summary.processed, total)
