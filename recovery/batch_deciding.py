"""Look a batch of cases up and decide it: in the runner's own process, or in forked worker processes.

The batch re-check spends its CPU in three places: the adapters decoding the nodes' answers, the
rules engine, and the writes. In one process they take turns on one interpreter lock; with
``processes`` > 0 the lookups and decisions run in that many forked processes and the runner's own
process keeps the leases and every write (so SQLite still has one writer, and every change still
goes through the service layer). On a 2-core machine this doubled the re-check's throughput.

Worker processes only read: each opens its own database engine and its own chain adapters (the
parent's connections are never used in a child), ignores Ctrl-C (the runner decides when to stop
and finishes the batches in hand), and dies with the runner, even when the runner is killed with
SIGKILL.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import suppress
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, Final, Protocol

from sqlmodel import col

from recovery.checking import CaseChecker, CaseFacts, ChainEvidence, ChainGateway, Key, load_facts
from recovery.config import Config
from recovery.db import Database, connect
from recovery.models import Case
from recovery.services import CaseService
from recovery.vocabulary import CaseStatus

#: Linux prctl option: the signal a process gets when the thread that forked it ends
_PR_SET_PDEATHSIG: Final = 1


def default_processes() -> int:
    """Worker processes when none are asked for: one per core, at most four."""
    return max(1, min(4, os.cpu_count() or 1))


@dataclass(frozen=True)
class DecidedBatch:
    """One batch, looked up and decided. ``evidence`` covers the cases that are not refunds;
    ``decisions`` holds a decision for each case whose evidence is conclusive, by case id, as the
    case row stores it (:meth:`Decision.to_json`: made into JSON where it was decided, it costs the
    writing process a fraction of the objects to receive, and nothing more to store)."""

    cases: list[CaseFacts]
    evidence: dict[Key, ChainEvidence]
    decisions: dict[int, dict[str, Any]]


def decide_batch(checker: CaseChecker, ids: Sequence[int], now: datetime) -> DecidedBatch:
    """Load the cases, look up the ones that are not refunds, decide the conclusive ones. No writes."""
    with checker.service.db.read() as session:
        cases = load_facts(session, col(Case.id).in_(list(ids)))
    checks = [c for c in cases if c.status != CaseStatus.REFUND_PENDING.value]
    evidence = checker.gateway.evidence(sorted({(c.network, c.tx_hash) for c in checks})) if checks else {}
    ready = [c for c in checks if evidence[(c.network, c.tx_hash)].conclusive]
    decided = checker.decide_many(ready, evidence, now=now)
    return DecidedBatch(cases, evidence, {c.id: d.to_json() for c, d in zip(ready, decided, strict=True)
                                          if d is not None and c.id is not None})


class BatchDecider(Protocol):
    def decide(self, ids: Sequence[int], now: datetime) -> DecidedBatch: ...


class InProcessDecider:
    """Decides in the caller's process (``processes`` = 0, and the dry run)."""

    def __init__(self, checker: CaseChecker) -> None:
        self.checker = checker

    def decide(self, ids: Sequence[int], now: datetime) -> DecidedBatch:
        return decide_batch(self.checker, ids, now)


class ProcessDecider:
    """``processes`` forked workers that decide batches; use as a context manager.

    Enter it before the runner starts any thread or lease (the CLI enters it before its progress
    bar): the workers are forked at once, from the entering thread, and die with it.
    """

    def __init__(self, service: CaseService, gateway: ChainGateway, processes: int) -> None:
        if not gateway.makes_its_own_adapters:
            raise ValueError("worker processes need a gateway that makes its own adapters (none given to it)")
        if processes < 1:
            raise ValueError("processes must be >= 1")
        self.processes = processes
        self._setup = _ChildSetup(os.getpid(), service.db,
                                  service.db.engine.url.render_as_string(hide_password=False), service.config,
                                  gateway.fresh())
        self._pool: ProcessPoolExecutor | None = None

    def __enter__(self) -> ProcessDecider:
        pool = ProcessPoolExecutor(max_workers=self.processes, mp_context=multiprocessing.get_context("fork"),
                                   initializer=_start_child, initargs=(self._setup,))
        try:
            pool.submit(os.getpid).result()  # forks every worker now, from this thread
        except BaseException:
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        self._pool = pool
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None,
                 trace: TracebackType | None) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def decide(self, ids: Sequence[int], now: datetime) -> DecidedBatch:
        if self._pool is None:
            raise RuntimeError("the worker processes are not running (use ProcessDecider as a context manager)")
        return self._pool.submit(_decide_in_child, list(ids), now).result()


@dataclass(frozen=True)
class _ChildSetup:
    """What a worker needs, handed over by the fork itself (nothing is pickled)."""

    parent_pid: int
    parent_db: Database
    url: str
    config: Config
    gateway: ChainGateway


_CHILD: CaseChecker | None = None


def _start_child(setup: _ChildSetup) -> None:  # runs in each worker process
    global _CHILD
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the runner stops the run, not the terminal's Ctrl-C
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    with suppress(Exception):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)
    if os.getppid() != setup.parent_pid:  # the runner died before the line above took effect
        os._exit(1)
    # the parent's pooled connections are its own: forget them here without closing them
    setup.parent_db.engine.dispose(close=False)
    _CHILD = CaseChecker(CaseService(connect(setup.url), setup.config), setup.gateway)


def _decide_in_child(ids: list[int], now: datetime) -> DecidedBatch:  # runs in a worker process
    assert _CHILD is not None, "worker process not initialized"
    return decide_batch(_CHILD, ids, now)
