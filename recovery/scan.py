"""Proactive detection (``recovery scan``): find stray deposits before the user has to appeal.

For every deposit address we hold, every network of its family (and, for an EVM key we hold, the
TRON twin of the address where a TRON adapter exists) is asked what reached the address
(``incoming``) over the blocks not scanned yet, up to the last block with enough confirmations.
How far each (network, address) was scanned is kept in ``scan_cursors``; a cursor moves only once
every transfer of a chunk is handled, so a scanner killed at any moment scans that chunk again
(idempotently: cases and findings are keyed) and never leaves a gap.

Each incoming transfer that is not credited (``credited_deposits``) and not already a case is
classified by the rules engine as if the owner of the address had appealed it (network = where
it landed, asset = what arrived). Categories worth a case (wrong network, unlisted token, memo
mistakes, deposits suspended, below minimum, internal transfer, uncredited) open a case as the
system actor with origin ``detected``; counterfeit tokens and dust (zero amounts, or a known value
below ``policy.dust_below_usd``) are recorded in ``scan_findings`` but not opened, to keep the queue
clean. Categories that need nothing (already credited, not our address, ...) are recorded as
``ignored``.

Addresses are leased (``scan_cursors.lease_owner``) so several scanners share the work on
PostgreSQL (``FOR UPDATE SKIP LOCKED``; a dead scanner's leases are taken over at once through the
advisory-lock liveness of :mod:`recovery.leases`); on SQLite one scanner runs at a time.

The addresses of one lease batch (``batch_size``) on one network are scanned together where the
adapter has ``incoming_many`` (EVM: one ``eth_getLogs`` per block range with the addresses as an
OR-list of recipients, one ``trace_filter`` with a ``toAddress`` list): range by range from the
lowest cursor, each address joining once the ranges reach its own cursor and keeping only what is
at or after it; the findings of every address and every cursor of a range are then written in one
transaction, for the addresses whose lease is still ours. So a range is either saved for every
address of the call or for none: a failure or a kill anywhere before leaves every cursor where it
was (the cases already opened are finished by the next run, never opened twice). The findings are
decided exactly as one address at a time would (an address after another that touched the same
transaction reads its cases again). Account-history families (TRON, XRP Ledger, Stellar, Solana,
Bitcoin, Cosmos) are asked one address at a time: their APIs take one account per query.

Optional network keys (TOML extras): ``scan_start_block`` (where a new address starts, default
0), ``scan_lag_blocks`` (stay this many blocks behind the head, on top of the confirmations, e.g.
to give the credit import time), ``scan_ignore_senders`` (the exchange's own wallets, e.g. the gas
top-ups of deposit addresses: never a stray deposit). Networks whose ``incoming`` pages by time
(TRON's account history) keep unix times instead of block numbers: ``scan_start_block`` is then a
unix time, the confirmations become ``confirmations x block_seconds`` (TRON: 3 s) and
``scan_lag_seconds`` replaces ``scan_lag_blocks``; a range is one call (the API pages by itself).
"""

from __future__ import annotations

import contextlib
import re
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from threading import Lock
from typing import Any, TypeVar

from sqlalchemy import Connection, false, func, or_, text, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlmodel import col, select

from chains import addresses
from chains.base import AssetKind, ChainAdapter, ChainUnavailable, InvalidChainInput, Observation, Transfer
from chains.registry import UnsupportedFamily, supported_families
from recovery.checking import CaseChecker, ChainEvidence, ChainGateway
from recovery.config import Config, Network
from recovery.db import Database
from recovery.dbtypes import utcnow
from recovery.errors import Conflict, InvalidTransition
from recovery.fees import units_to_amount
from recovery.imports import WALLET_KIND
from recovery.intake import AppealDraft
from recovery.leases import Leases, new_owner, owner_key
from recovery.models import Case, CreditedDeposit, DepositAddress, ScanCursor, ScanFinding
from recovery.registry import address_key, tx_key
from recovery.rules import Appeal, Decision, PriceMap, classify
from recovery.services import SYSTEM, CaseService, is_shared_owner, shared_owner
from recovery.sql_registry import SqlRegistry
from recovery.vocabulary import Category, Origin

Progress = Callable[[int, int], None]
_T = TypeVar("_T")

#: what became of a transfer the scan found (``scan_findings.outcome``)
OPENED = "opened"
APPEALED = "appealed"
DUST = "dust"
COUNTERFEIT = "counterfeit"
IGNORED = "ignored"
OUTCOMES = (OPENED, APPEALED, DUST, COUNTERFEIT, IGNORED)

#: categories for which a detected case is opened; every other one is recorded only
OPEN_CATEGORIES = frozenset({
    Category.WRONG_NETWORK,
    Category.UNLISTED_TOKEN,
    Category.MISSING_MEMO,
    Category.WRONG_MEMO,
    Category.DEPOSIT_SUSPENDED,
    Category.BELOW_MINIMUM,
    Category.INTERNAL_TRANSFER,
    Category.UNCREDITED_VALID,
})

_HEAD_TTL_SECONDS = 15.0
#: transaction hashes per ``IN (...)`` list
_IN_CHUNK = 500
#: families whose ``incoming`` reads block ranges (``eth_getLogs``): their ranges are cut in chunks;
#: the others read an address's own history, which their API pages, so a range is one call
RANGE_SCANNED_FAMILIES = frozenset({"evm"})
#: families whose ``incoming`` takes unix times (account-history APIs), not block numbers
TIME_PAGED_FAMILIES = frozenset({"tron"})
#: seconds per block, to turn confirmations into a time lag (network key ``block_seconds`` overrides)
_BLOCK_SECONDS = {"tron": 3}


@dataclass(frozen=True)
class ScanOptions:
    network: str | None = None
    #: scan at most this many (network, address) pairs in this run
    limit: int | None = None
    workers: int = 4
    #: (network, address) pairs leased together; those of one network are looked up together where
    #: the adapter can (EVM: one ``eth_getLogs`` OR-list per block range)
    batch_size: int = 50
    #: blocks per ``incoming`` call; the cursor is saved after each
    chunk_blocks: int = 5_000
    #: where a (network, address) never scanned starts (default: the network's ``scan_start_block``, else 0)
    from_block: int | None = None
    lease_seconds: float = 300.0
    #: USD prices for unlisted tokens, keyed (network, contract or symbol): lets dust be told apart
    prices: PriceMap | None = None


@dataclass
class ScanSummary:
    """What one run did. Units are (network, address) pairs."""

    units: int = 0
    scanned: int = 0
    up_to_date: int = 0
    blocks: int = 0
    transactions: int = 0
    transfers: int = 0
    opened: int = 0
    appealed: int = 0
    dust: int = 0
    counterfeit: int = 0
    ignored: int = 0
    credited: int = 0
    own_senders: int = 0
    #: detected cases found open with no finding yet (a scanner stopped between the two): recorded now
    resumed: int = 0
    seen_before: int = 0
    unavailable: int = 0
    categories: Counter[str] = field(default_factory=Counter)
    recorded_categories: Counter[str] = field(default_factory=Counter)
    unavailable_networks: Counter[str] = field(default_factory=Counter)
    #: network -> (network, address) pairs not scanned because no adapter serves the network's family
    unsupported: Counter[str] = field(default_factory=Counter)
    opened_cases: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    elapsed: float = 0.0
    _lock: Lock = field(default_factory=Lock, repr=False)

    @property
    def found(self) -> int:
        """New findings of this run (each transfer is found once, whatever the number of runs)."""
        return self.opened + self.resumed + self.appealed + self.dust + self.counterfeit + self.ignored

    def to_json(self) -> dict[str, Any]:
        return {
            "units": self.units,
            "scanned": self.scanned,
            "up_to_date": self.up_to_date,
            "blocks": self.blocks,
            "transactions": self.transactions,
            "transfers": self.transfers,
            "found": self.found,
            "opened": self.opened,
            "appealed": self.appealed,
            "dust": self.dust,
            "counterfeit": self.counterfeit,
            "ignored": self.ignored,
            "credited": self.credited,
            "own_senders": self.own_senders,
            "resumed": self.resumed,
            "seen_before": self.seen_before,
            "unavailable": self.unavailable,
            "categories": dict(sorted(self.categories.items())),
            "recorded_categories": dict(sorted(self.recorded_categories.items())),
            "unavailable_networks": dict(sorted(self.unavailable_networks.items())),
            "unsupported": dict(sorted(self.unsupported.items())),
            "opened_cases": self.opened_cases[:100],
            "errors": self.errors[:100],
            "elapsed_seconds": round(self.elapsed, 3),
        }


class LeaseLost(RuntimeError):
    """Another scanner took this (network, address) over (our lease expired): stop working on it."""


# ---------------------------------------------------------------------------------------- planning


def _extra(network: Network, key: str, default: Any) -> Any:
    return (network.model_extra or {}).get(key, default)


def _non_negative_int(network: Network, key: str) -> int:
    value = _extra(network, key, 0)
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"network {network.name}: {key} must be an integer >= 0")
    return value


def plan_units(config: Config, rows: Iterable[tuple[str, str, str]], network: str | None = None,
               families: frozenset[str] | None = None) -> tuple[set[tuple[str, str]], Counter[str]]:
    """The (network, address) pairs to scan for deposit-address rows ``(network, address, kind)``,
    and per network the pairs no adapter can serve (unsupported).

    Every network of the address's family; for an EVM key we hold (``eoa``), also the TRON twin.
    """
    served = supported_families() if families is None else families
    units: set[tuple[str, str]] = set()
    unsupported: set[tuple[str, str]] = set()
    for issued_for, address, kind in rows:
        issued = config.networks.get(issued_for)
        if issued is None:
            continue
        targets: list[tuple[Network, str]] = [(n, address) for n in config.networks_of_family(issued.family)]
        if issued.family == "evm" and kind == "eoa":
            try:
                twin = addresses.evm_to_tron(address)
            except InvalidChainInput:
                twin = None
            if twin is not None:
                targets.extend((n, twin) for n in config.networks_of_family("tron"))
        for target, where in targets:
            if network is not None and target.name != network:
                continue
            if target.family in served:
                units.add((target.name, where))
            else:
                unsupported.add((target.name, where))
    return units, Counter(name for name, _ in unsupported)


def sync_cursors(db: Database, config: Config, options: ScanOptions) -> Counter[str]:
    """Create a cursor for every (network, address) to scan that has none; returns the unsupported
    pairs per network."""
    with db.read() as session:
        rows = [(str(n), str(a), str(k)) for n, a, k in session.exec(
            # exchange wallets (hot, cold, withdrawal: kind wallet, no user) are not scanned: what reaches
            # them is the exchange's own traffic, and a stray there is nobody's until someone proves it
            # (an appeal, unattributed_deposit)
            select(DepositAddress.network, DepositAddress.address, DepositAddress.kind).distinct()
            .where(col(DepositAddress.kind) != WALLET_KIND)
        ).all()]
        units, unsupported = plan_units(config, rows, options.network)
        networks = sorted({n for n, _ in units})
        existing = {
            (str(n), str(a))
            for n, a in session.exec(
                select(ScanCursor.network, ScanCursor.address).where(col(ScanCursor.network).in_(networks))
            ).all()
        } if networks else set()
    missing = sorted(units - existing)
    if not missing:
        return unsupported
    starts: dict[str, int] = {}
    for name in {n for n, _ in missing}:
        net = config.network(name)
        starts[name] = options.from_block if options.from_block is not None else _non_negative_int(
            net, "scan_start_block")
    insert = pg_insert if db.is_postgresql else sqlite_insert
    for start in range(0, len(missing), 1_000):
        values = [{"network": n, "address": a, "first_block": starts[n], "created_at": utcnow()}
                  for n, a in missing[start : start + 1_000]]
        with db.write() as session:
            session.execute(insert(ScanCursor).values(values).on_conflict_do_nothing(
                index_elements=["network", "address"]))
    return unsupported


# ---------------------------------------------------------------------------------------- leasing


class UnitLeases:
    """Claim (network, address) cursors for one scanner. Liveness comes from :class:`Leases`
    (``what="scan"``): an advisory lock per owner on PostgreSQL, one flock per database on SQLite."""

    def __init__(self, db: Database, owner: str, *, lease_seconds: float, clock: Callable[[], datetime]) -> None:
        self.db = db
        self.owner = owner
        self.lease = timedelta(seconds=lease_seconds)
        self.clock = clock
        self.liveness = Leases(db, owner, lease_seconds=lease_seconds, clock=clock, what="scan")
        self._cursor = 0
        self._lock = Lock()
        self._probe: Connection | None = None

    def __enter__(self) -> UnitLeases:
        self.liveness.__enter__()
        if self.db.is_postgresql:
            self._probe = self.db.engine.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self.release_all()
        finally:
            if self._probe is not None:
                self._probe.close()
                self._probe = None
            self.liveness.__exit__(*exc)

    def _dead_owners(self, now: datetime) -> list[str]:
        with self.db.read() as session:
            owners = [str(o) for o in session.exec(
                select(ScanCursor.lease_owner)
                .where(col(ScanCursor.lease_owner).is_not(None), col(ScanCursor.lease_expires_at) >= now,
                       col(ScanCursor.lease_owner) != self.owner)
                .distinct()
            ).all() if o]
        if self.db.is_sqlite:
            return owners  # we hold the only scanner lock of this database: every other owner is gone
        assert self._probe is not None
        dead = []
        for owner in owners:
            key = owner_key(owner)
            if self._probe.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar():
                self._probe.execute(text("SELECT pg_advisory_unlock(:k)"), {"k": key})
                dead.append(owner)
            self._probe.commit()
        return dead

    def claim(self, networks: Sequence[str], limit: int) -> list[ScanCursor]:
        """Lease up to ``limit`` cursors after the run's position (each pair once per run)."""
        if not networks or limit <= 0:
            return []
        with self._lock:
            now = self.clock()
            dead = self._dead_owners(now)
            free = or_(col(ScanCursor.lease_expires_at).is_(None), col(ScanCursor.lease_expires_at) < now,
                       col(ScanCursor.lease_owner) == self.owner,
                       col(ScanCursor.lease_owner).in_(dead) if dead else false())
            with self.db.write() as session:
                query: Any = (
                    select(ScanCursor.id)
                    .where(col(ScanCursor.network).in_(list(networks)), free, col(ScanCursor.id) > self._cursor)
                    .order_by(col(ScanCursor.id))
                    .limit(limit)
                )
                if self.db.is_postgresql:
                    query = query.with_for_update(skip_locked=True, of=ScanCursor)
                ids = [int(i) for i in session.exec(query).all()]
                if not ids:
                    return []
                session.execute(
                    update(ScanCursor).where(col(ScanCursor.id).in_(ids))
                    .values(lease_owner=self.owner, lease_expires_at=now + self.lease)
                )
                rows = list(session.exec(select(ScanCursor).where(col(ScanCursor.id).in_(ids))
                                         .order_by(col(ScanCursor.id))).all())
            self._cursor = max(ids)
            return rows

    def release(self, ids: Sequence[int]) -> None:
        if ids:
            with self.db.write() as session:
                session.execute(
                    update(ScanCursor)
                    .where(col(ScanCursor.id).in_(list(ids)), col(ScanCursor.lease_owner) == self.owner)
                    .values(lease_owner=None, lease_expires_at=None)
                )

    def release_all(self) -> None:
        with self.db.write() as session:
            session.execute(update(ScanCursor).where(col(ScanCursor.lease_owner) == self.owner)
                            .values(lease_owner=None, lease_expires_at=None))


# ---------------------------------------------------------------------------------------- the scan


@dataclass
class _Group:
    """The transfers of one transaction to one scanned address in one asset (and memo)."""

    obs: Observation
    transfers: list[Transfer]

    @property
    def head(self) -> Transfer:
        return self.transfers[0]

    @property
    def units(self) -> int:
        return sum(t.amount for t in self.transfers)


@dataclass
class _Unit:
    """One (network, address) cursor being scanned together with others: where it goes on from."""

    row: ScanCursor
    next: int
    _owners: list[DepositAddress] | None = None

    def owner_rows(self, scanner: Scanner, network: Network) -> Callable[[], list[DepositAddress]]:
        def rows() -> list[DepositAddress]:  # read once, and only if some transfer needs an owner
            if self._owners is None:
                self._owners = scanner._owner_rows(network, self.row.address)
            return self._owners

        return rows


@dataclass
class _Found:
    """A finding waiting to be written with its chunk."""

    group: _Group
    asset: str
    outcome: str
    category: str | None
    user_id: str | None
    case_id: int | None
    value_usd: Decimal | None
    decimals: int | None


class Scanner:
    def __init__(self, service: CaseService, gateway: ChainGateway, options: ScanOptions) -> None:
        if options.chunk_blocks < 1:
            raise ValueError("chunk_blocks must be at least 1")
        if options.from_block is not None and options.from_block < 0:
            raise ValueError("from_block must be >= 0")
        self.service = service
        self.gateway = gateway
        self.options = options
        self.config: Config = service.config
        self.db = service.db
        self.checker = CaseChecker(service, gateway)
        self._heads: dict[str, tuple[int, float]] = {}
        #: per network, the largest range the node accepted after refusing a larger one
        self._caps: dict[str, int] = {}
        #: per network, the head query that failed last (and when): its addresses wait for the next run
        self._down: dict[str, tuple[ChainUnavailable, float]] = {}
        self._heads_lock = Lock()

    # ------------------------------------------------------------------ entry points

    def networks(self) -> list[str]:
        served = supported_families()
        return sorted(n.name for n in self.config.networks.values()
                      if n.family in served and self.options.network in (None, n.name))

    def count(self) -> int:
        networks = self.networks()
        if not networks:
            return 0
        with self.db.read() as session:
            return int(session.exec(select(func.count()).select_from(ScanCursor)
                                    .where(col(ScanCursor.network).in_(networks))).one())

    def run(self, progress: Progress | None = None) -> ScanSummary:
        began = time.monotonic()
        summary = ScanSummary()
        summary.unsupported = sync_cursors(self.db, self.config, self.options)
        total = self.count()
        if self.options.limit is not None:
            total = min(total, self.options.limit)
        summary.units = total
        with UnitLeases(self.db, new_owner("scan"), lease_seconds=self.options.lease_seconds,
                        clock=self.service.clock) as leases:
            self._run_leased(leases, summary, total, progress)
        summary.elapsed = time.monotonic() - began
        return summary

    def _run_leased(self, leases: UnitLeases, summary: ScanSummary, total: int, progress: Progress | None) -> None:
        networks = self.networks()
        budget = Lock()
        remaining = [self.options.limit]
        done = [0]

        def take() -> list[ScanCursor]:
            with budget:
                size = self.options.batch_size
                if remaining[0] is not None:
                    size = min(size, remaining[0])
                rows = leases.claim(networks, size)
                if remaining[0] is not None:
                    remaining[0] -= len(rows)
                return rows

        def worker() -> None:
            pending: set[int] = set()  # this worker's claimed cursors not finished yet

            def finish(finished: Sequence[ScanCursor]) -> None:
                ids = [row.id or 0 for row in finished if (row.id or 0) in pending]
                leases.release(ids)
                pending.difference_update(ids)
                with budget:
                    done[0] += len(ids)
                    count = done[0]
                if progress is not None and ids:
                    progress(count, total)

            while rows := take():
                pending.update(row.id or 0 for row in rows)
                try:
                    self._scan_claimed(rows, leases, summary, finish)
                finally:
                    leases.release(sorted(pending))
                    pending.clear()

        workers = max(1, self.options.workers)
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="scan") as pool:
            for future in [pool.submit(worker) for _ in range(workers)]:
                future.result()

    def _scan_claimed(self, rows: Sequence[ScanCursor], leases: UnitLeases, summary: ScanSummary,
                      finish: Callable[[Sequence[ScanCursor]], None]) -> None:
        """Scan one claim: per network, its addresses together where the adapter can look many
        addresses up at once (:meth:`_scan_together`), else one after the other."""
        by_network: dict[str, list[ScanCursor]] = {}
        for row in rows:
            by_network.setdefault(row.network, []).append(row)
        for name, group in by_network.items():
            together: list[ScanCursor] = []
            adapter: ChainAdapter | None = None
            if len(group) > 1:
                with contextlib.suppress(UnsupportedFamily, ChainUnavailable):  # the per-unit path reports them
                    adapter = self.gateway.adapter(name)
            if adapter is not None and batches_incoming(adapter):
                together = [row for row in group if adapter.is_address(row.address)]
            if len(together) > 1:
                assert adapter is not None
                self._scan_together(self.config.network(name), adapter, together, leases, summary, finish)
            else:
                together = []
            alone = {id(row) for row in together}
            for row in group:
                if id(row) not in alone:
                    self._scan_unit(row, leases, summary)
                    finish([row])

    # ------------------------------------------------------------------ many addresses of one network

    def _scan_together(self, network: Network, adapter: ChainAdapter, rows: Sequence[ScanCursor], leases: UnitLeases,
                       summary: ScanSummary, finish: Callable[[Sequence[ScanCursor]], None]) -> None:
        """Scan several (network, address) cursors of one network together: one ``incoming_many``
        per block range for every address whose cursor reached that range, then the findings of
        every address and the cursors, in one transaction. A cursor moves only with a range fully
        processed for every address of the call; an address that starts later than the range
        begins keeps only what is at or after its own start (the blocks before were scanned
        already); an address further ahead joins when the ranges reach it."""
        try:
            safe = self._safe_head(adapter, network)
        except UnsupportedFamily:
            with summary._lock:
                summary.unsupported[network.name] += len(rows)
            finish(rows)
            return
        except ChainUnavailable as exc:
            self._unavailable_rows(rows, leases, summary, exc)
            finish(rows)
            return
        units: list[_Unit] = []
        current: list[ScanCursor] = []
        for row in rows:
            start = row.scanned_to + 1 if row.scanned_to is not None else row.first_block
            if start > safe:
                current.append(row)
            else:
                units.append(_Unit(row, start))
        with summary._lock:
            summary.up_to_date += len(current)
        finish(current)
        step = self._chunk_size(adapter)
        many: Callable[[Sequence[str], int, int], dict[str, list[Observation]]] = adapter.incoming_many  # type: ignore[attr-defined]
        try:
            while units:
                first = min(u.next for u in units)
                with self._heads_lock:
                    size = min(step, self._caps.get(network.name, step))
                last = min(first + size - 1, safe)
                members = [u for u in units if u.next <= last]
                wanted = [u.row.address for u in members]

                def call(a: int, b: int, wanted: list[str] = wanted) -> dict[str, list[Observation]]:
                    return many(wanted, a, b)

                answers, last = self._incoming(network, call, first, last)
                members = [u for u in members if u.next <= last]  # the node took a shorter range
                observations = [
                    [o for o in answers.get(u.row.address, []) if o.block_number is None or o.block_number >= u.next]
                    for u in members
                ]
                found = self._handle_units(network, [(u.row.address, u.owner_rows(self, network), obs)
                                                     for u, obs in zip(members, observations, strict=True)], summary)
                lost = self._commit_units([u.row for u in members], leases, last, found)
                finished: list[ScanCursor] = []
                for u in members:
                    if u.row.id in lost:
                        with summary._lock:
                            summary.errors.append(f"{u.row.network} {u.row.address}: another scanner took it over; "
                                                  f"stopped at block {u.row.scanned_to}")
                        finished.append(u.row)
                        continue
                    with summary._lock:
                        summary.blocks += last - u.next + 1
                    u.next = last + 1
                    u.row.scanned_to = last
                    if u.next > safe:
                        with summary._lock:
                            summary.scanned += 1
                        finished.append(u.row)
                gone = {id(row) for row in finished}
                units = [u for u in units if id(u.row) not in gone]
                finish(finished)
        except ChainUnavailable as exc:
            self._unavailable_rows([u.row for u in units], leases, summary, exc)
            finish([u.row for u in units])
        except LeaseLost as exc:
            with summary._lock:
                summary.errors.extend(f"{u.row.network} {u.row.address}: {exc}" for u in units)
            finish([u.row for u in units])

    # ------------------------------------------------------------------ one (network, address)

    def _safe_head(self, adapter: ChainAdapter, network: Network) -> int:
        """The newest position with the network's confirmations (and its scan lag), cached briefly:
        a block number, or for a network whose ``incoming`` pages by time, a unix time."""
        with self._heads_lock:
            cached = self._heads.get(network.name)
            if cached is not None and time.monotonic() - cached[1] < _HEAD_TTL_SECONDS:
                return cached[0]
        head_of = getattr(adapter, "head", None) or getattr(adapter, "tip", None)
        if not callable(head_of):
            raise UnsupportedFamily(network.name, network.family)
        with self._heads_lock:
            down = self._down.get(network.name)
        if down is not None and time.monotonic() - down[1] < _HEAD_TTL_SECONDS:
            raise down[0]  # asked a moment ago and got no answer: do not wait on it for every address
        try:
            number, when = _head(head_of(), network.name)
        except ChainUnavailable as exc:
            with self._heads_lock:
                self._down[network.name] = (exc, time.monotonic())
            raise
        if pages_by_time(adapter):
            if when is None:
                raise ChainUnavailable(network.name, "the latest block has no time")
            seconds = _non_negative_int(network, "block_seconds") or _BLOCK_SECONDS.get(network.family, 1)
            behind = max(network.confirmations * seconds, _non_negative_int(network, "scan_lag_seconds"))
            safe = int(when.timestamp()) - behind
        else:
            safe = number - max(network.confirmations - 1, _non_negative_int(network, "scan_lag_blocks"), 0)
        with self._heads_lock:
            self._heads[network.name] = (safe, time.monotonic())
        return safe

    def _chunk_size(self, adapter: ChainAdapter) -> int:
        if adapter.network.family not in RANGE_SCANNED_FAMILIES:
            return 2**62  # an account-history API (TRON, XRPL, Stellar, Solana, ...) pages by itself
        size = self.options.chunk_blocks
        # without trace_filter an EVM node finds native deposits by reading whole blocks, which the
        # adapter does only for short ranges: keep every chunk within that range (no gap)
        limit = getattr(adapter, "native_scan_max_blocks", None)
        if isinstance(limit, int) and "trace_filter" not in adapter.features:
            size = min(size, limit)
        return size

    def _scan_unit(self, row: ScanCursor, leases: UnitLeases, summary: ScanSummary) -> None:
        network = self.config.network(row.network)
        try:
            adapter = self.gateway.adapter(network.name)
            safe = self._safe_head(adapter, network)
        except UnsupportedFamily:
            with summary._lock:
                summary.unsupported[network.name] += 1
            return
        except ChainUnavailable as exc:
            self._unavailable(row, leases, summary, exc)
            return
        start = row.scanned_to + 1 if row.scanned_to is not None else row.first_block
        if start > safe:
            with summary._lock:
                summary.up_to_date += 1
            return
        step = self._chunk_size(adapter)
        timed = pages_by_time(adapter)
        loaded: list[list[DepositAddress]] = []

        def rows() -> list[DepositAddress]:  # read once, and only if some transfer needs an owner
            if not loaded:
                loaded.append(self._owner_rows(network, row.address))
            return loaded[0]

        try:
            first = start
            while first <= safe:
                with self._heads_lock:
                    size = min(step, self._caps.get(network.name, step))
                observations, last = self._incoming(
                    network, lambda a, b: adapter.incoming(row.address, a, b), first, min(first + size - 1, safe))
                found = self._handle_chunk(network, row.address, rows, observations, summary)
                self._commit_chunk(row, leases, last, found, summary)
                if not timed:
                    with summary._lock:
                        summary.blocks += last - first + 1
                first = last + 1
        except ChainUnavailable as exc:
            self._unavailable(row, leases, summary, exc)
            return
        except LeaseLost as exc:
            with summary._lock:
                summary.errors.append(str(exc))
            return
        with summary._lock:
            summary.scanned += 1

    def _incoming(self, network: Network, call: Callable[[int, int], _T], first: int, last: int) -> tuple[_T, int]:
        """``call(first, last)`` (an ``incoming`` over the range), halving the range while the node
        refuses its size (e.g. anvil's ``trace_filter`` takes 300 blocks at most); the size that
        worked is kept for the rest of the run. Returns the answer and the last block it covers."""
        while True:
            try:
                return call(first, last), last
            except ChainUnavailable as exc:
                if last <= first or not _range_refused(exc):
                    raise
                span = last - first + 1
                named = _LIMITED_TO.search(exc.reason)  # "... currently limited to 300": take the node's word
                limit = int(named.group(1)) if named else 0
                last = first + (limit if 0 < limit < span else span // 2) - 1
                with self._heads_lock:
                    self._caps[network.name] = min(self._caps.get(network.name, last - first + 1), last - first + 1)

    def _unavailable(self, row: ScanCursor, leases: UnitLeases, summary: ScanSummary, exc: ChainUnavailable) -> None:
        self._unavailable_rows([row], leases, summary, exc)

    def _unavailable_rows(self, rows: Sequence[ScanCursor], leases: UnitLeases, summary: ScanSummary,
                          exc: ChainUnavailable) -> None:
        """The network did not answer for these cursors: they keep their place, with the reason."""
        if not rows:
            return
        with self.db.write() as session:
            session.execute(
                update(ScanCursor)
                .where(col(ScanCursor.id).in_([row.id or 0 for row in rows]),
                       col(ScanCursor.lease_owner) == leases.owner)
                .values(last_error=str(exc)[:500])
            )
        with summary._lock:
            summary.unavailable += len(rows)
            for row in rows:
                summary.unavailable_networks[row.network] += 1

    def _owner_rows(self, network: Network, address: str) -> list[DepositAddress]:
        """Deposit-address rows for this address on the family's networks (for a TRON twin: the
        EVM key's rows)."""
        wanted = {address}
        family = {n.name for n in self.config.networks_of_family(network.family)}
        if network.family == "tron":
            with contextlib.suppress(InvalidChainInput):
                wanted.add(addresses.tron_to_evm(address))
            family |= {n.name for n in self.config.networks_of_family("evm")}
        with self.db.read() as session:
            return list(session.exec(
                select(DepositAddress).where(col(DepositAddress.address).in_(wanted),
                                             col(DepositAddress.network).in_(family))
            ).all())

    # ------------------------------------------------------------------ one chunk

    def _groups(self, address: str, observations: Sequence[Observation]) -> list[_Group]:
        key = address_key(address)
        groups: list[_Group] = []
        for obs in observations:
            by_asset: dict[tuple[str, str], list[Transfer]] = defaultdict(list)
            for t in obs.transfers:
                if address_key(t.recipient) != key:
                    continue
                memo = t.memo if t.memo is not None else obs.memo
                by_asset[((t.contract or "native").lower(), memo or "")].append(t)
            groups.extend(_Group(obs, sorted(ts, key=lambda t: t.index)) for ts in by_asset.values())
        return groups

    def _asset_id(self, network: str, transfer: Transfer) -> tuple[str, int | None, Decimal | None]:
        """(listed symbol or contract, decimals, USD price) of what a transfer carries."""
        if transfer.kind is AssetKind.NATIVE or transfer.contract is None:
            try:
                native = self.config.native_asset(network)
            except KeyError:
                return self.config.network(network).native_asset, None, None
            return native.symbol, native.decimals, native.price_usd
        listed = self.config.asset_by_contract(network, transfer.contract)
        if listed is not None:
            return listed.symbol, listed.decimals, listed.price_usd
        price = None
        for (net, ident), value in (self.options.prices or {}).items():
            if net == network and ident.lower() in {transfer.contract.lower(), (transfer.symbol or "").lower()}:
                price = value
                break
        return transfer.contract, transfer.decimals, price

    def _handle_chunk(self, network: Network, address: str, rows: Callable[[], list[DepositAddress]],
                      observations: Sequence[Observation], summary: ScanSummary) -> list[_Found]:
        return self._handle_units(network, [(address, rows, observations)], summary)[0]

    def _handle_units(self, network: Network,
                      units: Sequence[tuple[str, Callable[[], list[DepositAddress]], Sequence[Observation]]],
                      summary: ScanSummary) -> list[list[_Found]]:
        """The findings of one range for each (address, its owner rows, what reached it), in order:
        one read of what is known already (findings, credits, cases) for every transaction of the
        range, then each address as if it were handled alone, one after the other (the cases of a
        transaction an address before it touched are read again, as a lone scan would see them)."""
        grouped = [self._groups(address, observations) for address, _, observations in units]
        with summary._lock:
            summary.transactions += sum(len(observations) for _, _, observations in units)
            summary.transfers += sum(len(g.transfers) for groups in grouped for g in groups)
        hashes = sorted({g.obs.tx_hash for groups in grouped for g in groups})
        if not hashes:
            return [[] for _ in units]
        family = [n.name for n in self.config.networks_of_family(network.family)]
        ignore = {address_key(a) for a in _extra(network, "scan_ignore_senders", []) or []}
        seen, credits, cases = self._known(network, hashes, family)
        spellings: dict[str, set[str]] = defaultdict(set)
        for tx in hashes:
            spellings[tx_key(tx)].add(tx)
        touched: set[str] = set()
        out: list[list[_Found]] = []
        for (_, rows, _), groups in zip(units, grouped, strict=True):
            stale = {tx_key(g.obs.tx_hash) for g in groups} & touched
            if stale:  # an address before this one opened or decided a case for the same transaction
                cases.update(self._cases(sorted(h for k in stale for h in spellings[k]), family, stale))
            found: list[_Found] = []
            for group in groups:
                key = tx_key(group.obs.tx_hash)
                keys = {(network.name, key, t.kind.value, t.index) for t in group.transfers}
                if keys <= seen:
                    with summary._lock:
                        summary.seen_before += 1
                    continue
                if ignore and address_key(group.head.sender) in ignore:
                    with summary._lock:
                        summary.own_senders += 1
                    continue
                asset, decimals, price = self._asset_id(network.name, group.head)
                if _credited(credits.get(key, []), asset):
                    with summary._lock:
                        summary.credited += 1
                    continue
                found.append(self._judge(network, group, asset, decimals, price, rows(), cases.get(key, []), summary))
                touched.add(key)
            out.append(found)
        return out

    def _known(self, network: Network, hashes: Sequence[str], family: Sequence[str]
               ) -> tuple[set[tuple[str, str, str, int]], dict[str, list[CreditedDeposit]], dict[str, list[Case]]]:
        """Findings (keys), credits and cases (by :func:`tx_key`) of these transactions."""
        seen: set[tuple[str, str, str, int]] = set()
        credits: dict[str, list[CreditedDeposit]] = defaultdict(list)
        with self.db.read() as session:
            for start in range(0, len(hashes), _IN_CHUNK):
                part = list(hashes[start : start + _IN_CHUNK])
                seen.update(
                    (str(n), tx_key(str(h)), str(k), int(i))
                    for n, h, k, i in session.exec(
                        select(ScanFinding.network, ScanFinding.tx_hash, ScanFinding.kind, ScanFinding.transfer_index)
                        .where(ScanFinding.network == network.name, col(ScanFinding.tx_hash).in_(part))
                    ).all()
                )
                candidates = sorted({h for tx in part for h in (tx, tx.lower())})
                for credit in session.exec(
                    select(CreditedDeposit).where(CreditedDeposit.network == network.name,
                                                  col(CreditedDeposit.tx_hash).in_(candidates))
                ).all():
                    credits[tx_key(credit.tx_hash)].append(credit)
        return seen, credits, self._cases(hashes, family, set())

    def _cases(self, hashes: Sequence[str], family: Sequence[str], keys: set[str]) -> dict[str, list[Case]]:
        """The cases of these transactions on the family's networks, by :func:`tx_key` (every key
        of ``keys`` present, empty when it has none)."""
        cases: dict[str, list[Case]] = defaultdict(list)
        for key in keys:
            cases[key] = []
        with self.db.read() as session:
            for start in range(0, len(hashes), _IN_CHUNK):
                candidates = sorted({h for tx in hashes[start : start + _IN_CHUNK] for h in (tx, tx.lower())})
                for case_row in session.exec(
                    select(Case).where(col(Case.tx_hash).in_(candidates), col(Case.network).in_(family))
                ).all():
                    cases[tx_key(case_row.tx_hash)].append(case_row)
        return cases

    def _judge(self, network: Network, group: _Group, asset: str, decimals: int | None, price: Decimal | None,
               rows: list[DepositAddress], cases: list[Case], summary: ScanSummary) -> _Found:
        head = group.head
        memo = head.memo if head.memo is not None else group.obs.memo
        owner = _owner(network, rows, head.recipient, memo)
        for case_row in cases:
            # The owner's own case covers the deposit. Another user's appeal at the owner's address or
            # memo does not (it is answered "not yours" and credits nobody: issue 18), so the owner
            # still gets a case; at a shared address held for nobody, any appeal for it does.
            held = is_shared_owner(owner) and address_key(case_row.deposit_address) == address_key(head.recipient)
            if case_row.user_id == owner or held:
                return self._existing(network, group, asset, decimals, price, case_row, summary)
        now = self.service.clock()
        others = frozenset(c.user_id for c in cases if c.network == network.name and c.user_id != owner)
        appeal = Appeal(user_id=owner, network=network.name, tx_hash=group.obs.tx_hash, asset=asset,
                        deposit_address=head.recipient, memo=memo, submitted_at=now, other_appellants=others)
        with self.db.read() as session:
            decision = classify(appeal, {network.name: group.obs}, SqlRegistry(session, self.config), self.config,
                                now, prices=self.options.prices)
        category = decision.category
        value = decision.value_usd if decision.value_usd is not None else _value(group.units, decimals, price)
        outcome: str
        if category is Category.COUNTERFEIT_TOKEN:
            outcome = COUNTERFEIT
        elif group.units == 0 or (value is not None and value < self.config.policy.dust_below_usd):
            outcome = DUST
        elif category in OPEN_CATEGORIES:
            return self._open(network, group, asset, decimals, value, decision, owner, summary)
        else:
            outcome = IGNORED
        with summary._lock:
            setattr(summary, outcome, getattr(summary, outcome) + 1)
            summary.recorded_categories[f"{outcome}:{category.value}"] += 1
        return _Found(group, asset, outcome, category.value, _decided_owner(decision) or owner, None, value, decimals)

    def _existing(self, network: Network, group: _Group, asset: str, decimals: int | None, price: Decimal | None,
                  case_row: Case, summary: ScanSummary) -> _Found:
        """A case for this transfer exists: an appeal, or a detected case opened before (maybe by
        a scanner killed before it could record the finding: finish its decision)."""
        if case_row.origin == Origin.DETECTED.value:
            if case_row.decision is None and case_row.status == "submitted":
                self._decide(case_row, network, group.obs)
            outcome = OPENED
            with summary._lock:
                summary.resumed += 1
        else:
            outcome = APPEALED
            with summary._lock:
                summary.appealed += 1
        return _Found(group, asset, outcome, case_row.category, case_row.user_id, case_row.id,
                      _value(group.units, decimals, price), decimals)

    def _open(self, network: Network, group: _Group, asset: str, decimals: int | None, value: Decimal | None,
              decision: Decision, owner: str, summary: ScanSummary) -> _Found:
        head = group.head
        user = _decided_owner(decision) or owner
        memo = head.memo if head.memo is not None else group.obs.memo
        draft = AppealDraft(user_id=user, network=network.name, asset=asset, tx_hash=group.obs.tx_hash,
                            deposit_address=head.recipient, memo=memo, claimed_amount=None)
        case_row, created = self.service.submit(draft, SYSTEM, origin=Origin.DETECTED)
        if not created:  # an appeal (or another scanner) got there first
            return self._existing(network, group, asset, decimals, None, case_row, summary)
        category = decision.category.value
        if user == owner:  # the decision was made for this very case: record it (no second look-up)
            try:
                self.service.apply_decision(case_row.reference or "", decision, SYSTEM,
                                            expected_version=case_row.version,
                                            observations={network.name: group.obs})
            except (Conflict, InvalidTransition) as exc:  # someone acted on it already: the re-check decides
                with summary._lock:
                    summary.errors.append(f"{case_row.reference}: {exc}")
        else:
            category = self._decide(case_row, network, group.obs) or category
        with summary._lock:
            summary.opened += 1
            summary.categories[category] += 1
            summary.opened_cases.append(case_row.reference or "")
        return _Found(group, asset, OPENED, category, user, case_row.id, value, decimals)

    def _decide(self, case_row: Case, network: Network, obs: Observation) -> str | None:
        """Classify the new case exactly as the re-check would, and record it (system actor)."""
        evidence = ChainEvidence(network.name, obs.tx_hash, observations={network.name: obs})
        outcome = self.checker.apply(case_row, evidence, SYSTEM)
        return outcome.category

    def _commit_chunk(self, row: ScanCursor, leases: UnitLeases, last: int, found: list[_Found],
                      summary: ScanSummary) -> None:
        """Record the chunk's findings and move the cursor, together; only while we hold the lease."""
        if self._commit_units([row], leases, last, [found]):
            raise LeaseLost(f"{row.network} {row.address}: another scanner took it over; stopped at "
                            f"block {row.scanned_to}")
        row.scanned_to = last

    def _commit_units(self, rows: Sequence[ScanCursor], leases: UnitLeases, last: int,
                      found: Sequence[list[_Found]]) -> set[int]:
        """Record the findings of a range and move the cursors of ``rows`` to ``last``, in one
        transaction, for the rows whose lease we still hold; returns the ids of those we lost
        (another scanner took them over: neither their findings nor their cursors are written)."""
        now = self.service.clock()
        ids = [row.id or 0 for row in rows]
        insert = pg_insert if self.db.is_postgresql else sqlite_insert
        with self.db.write() as session:
            query: Any = select(ScanCursor.id).where(col(ScanCursor.id).in_(ids),
                                                     col(ScanCursor.lease_owner) == leases.owner)
            if self.db.is_postgresql:
                query = query.with_for_update(of=ScanCursor)  # held until commit: no scanner claims them meanwhile
            held = {int(i) for i in session.exec(query).all()}
            values = [value for row, items in zip(rows, found, strict=True) if (row.id or 0) in held
                      for value in _finding_values(items, now)]
            for start in range(0, len(values), 500):
                session.execute(insert(ScanFinding).values(values[start : start + 500]).on_conflict_do_nothing(
                    index_elements=["network", "tx_hash", "kind", "transfer_index"]))
            if held:
                moved = session.execute(
                    update(ScanCursor)
                    .where(col(ScanCursor.id).in_(sorted(held)), col(ScanCursor.lease_owner) == leases.owner)
                    .values(scanned_to=last, scanned_at=now, last_error=None, lease_expires_at=now + leases.lease)
                )
                if moved.rowcount != len(held):  # type: ignore[attr-defined]
                    raise LeaseLost(f"{rows[0].network}: {len(held) - moved.rowcount} of {len(held)} cursors "  # type: ignore[attr-defined]
                                    "changed hands while being saved")
        return set(ids) - held


def _finding_values(found: Sequence[_Found], now: datetime) -> list[dict[str, Any]]:
    """``scan_findings`` rows for what one address's range found."""
    values: list[dict[str, Any]] = []
    for item in found:
        obs = item.group.obs
        for t in item.group.transfers:
            amount = units_to_amount(t.amount, item.decimals) if item.decimals is not None else None
            values.append({
                "network": obs.network, "tx_hash": obs.tx_hash, "kind": t.kind.value,
                "transfer_index": t.index, "sender": t.sender, "recipient": t.recipient,
                "memo": t.memo if t.memo is not None else obs.memo, "contract": t.contract,
                "asset": item.asset, "amount_base_units": Decimal(t.amount), "amount": amount,
                "value_usd": item.value_usd if len(item.group.transfers) == 1 else None,
                "block_number": obs.block_number, "block_hash": obs.block_hash, "block_time": obs.timestamp,
                "category": item.category, "outcome": item.outcome, "user_id": item.user_id,
                "case_id": item.case_id, "detected_at": now,
            })
    return values


# ---------------------------------------------------------------------------------------- helpers


_LIMITED_TO = re.compile(r"limited to (\d+)")
_RANGE_WORDS = ("range", "too large", "too many", "limited to", "exceed", "more than")


def _range_refused(exc: ChainUnavailable) -> bool:
    """The node refused the size of a range (not an outage, not a rate limit): a smaller range may pass."""
    reason = exc.reason.lower()
    return "rate" not in reason and any(word in reason for word in _RANGE_WORDS)


def batches_incoming(adapter: ChainAdapter) -> bool:
    """Whether the adapter looks many addresses up at once over a block range: an
    ``incoming_many(addresses, since, until)`` answering, per address given, what ``incoming``
    would (the EVM adapter's ``eth_getLogs`` OR-list). Networks paged by time are scanned one
    address at a time."""
    return callable(getattr(adapter, "incoming_many", None)) and not pages_by_time(adapter)


def pages_by_time(adapter: ChainAdapter) -> bool:
    """Whether ``incoming`` takes unix times (an adapter may say so with ``incoming_unit = "time"``)."""
    unit = getattr(adapter, "incoming_unit", None)
    if unit is not None:
        return bool(unit == "time")
    return adapter.network.family in TIME_PAGED_FAMILIES


def _head(answer: Any, network: str) -> tuple[int, datetime | None]:
    """(number, time) from what an adapter's ``head()`` returns: an int, a (number, time) pair, or an
    object with ``number`` (and ``timestamp``)."""
    if isinstance(answer, tuple) and len(answer) == 2:
        number, when = answer
    elif isinstance(answer, int):
        number, when = answer, None
    else:
        number, when = getattr(answer, "number", None), getattr(answer, "timestamp", None)
    if isinstance(number, bool) or not isinstance(number, int) or not isinstance(when, datetime | None):
        raise ChainUnavailable(network, f"head() answered {answer!r:.80}")
    return number, when


def _credited(credits: Sequence[CreditedDeposit], asset: str) -> bool:
    wanted = asset.lower()
    return any(c.asset.lower() == wanted for c in credits)


def _value(units: int, decimals: int | None, price: Decimal | None) -> Decimal | None:
    if decimals is None or price is None or price <= 0:
        return None
    return units_to_amount(units, decimals) * price


def _decided_owner(decision: Decision) -> str | None:
    for ref in decision.transfers:
        if ref.owner_user_id:
            return ref.owner_user_id
    return decision.credited_user_id


def _memo_form(memo_format: str, memo: str) -> str:
    try:
        return addresses.validate_memo(memo_format, memo) or memo
    except (InvalidChainInput, ValueError):
        return memo


def _owner(network: Network, rows: Sequence[DepositAddress], recipient: str, memo: str | None) -> str:
    """Whose deposit this is: the one user of the address, or the user of the matching memo on a
    shared address; else the shared address itself (an unmatched or missing memo)."""
    rows = [r for r in rows if r.kind != WALLET_KIND and r.user_id]  # an exchange wallet is nobody's deposit address
    here = [r for r in rows if r.network == network.name and address_key(r.address) == address_key(recipient)]
    if any(r.memo for r in here) or (network.memo_required and here):
        if memo:
            key = _memo_form(network.memo_format, memo)
            users = {r.user_id for r in here if r.memo and _memo_form(network.memo_format, r.memo) == key}
            if len(users) == 1:
                return users.pop()
        return shared_owner(network.name, recipient)
    users = {r.user_id for r in (here or rows)}
    if len(users) == 1:
        return users.pop()
    return shared_owner(network.name, recipient)
