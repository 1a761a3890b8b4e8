"""Ask the chains about cases and apply what they say: shared by the API, the re-check and the workbench.

For each case the claimed network is asked first (batched per network with ``lookup_many``);
where the hash is not there, every other network of the same family is asked (the wrong-network
search). A network that cannot answer makes the result inconclusive unless the transaction was
found elsewhere: an outage is never reported as "transaction not found".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field, fields
from datetime import datetime
from decimal import Decimal
from functools import lru_cache
from threading import Lock
from typing import Any, Protocol

from sqlalchemy import select as core_select
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col, select

from chains import addresses
from chains.base import ChainAdapter, ChainUnavailable, InvalidChainInput, Observation, pickled_as_fields
from chains.registry import UnsupportedFamily, adapter_for
from recovery.config import Config, Network
from recovery.models import Case
from recovery.models import CreditedDeposit as CreditedRow
from recovery.models import DepositAddress as AddressRow
from recovery.registry import CreditedDeposit, DepositAddress
from recovery.rules import Appeal, Decision, classify
from recovery.services import SYSTEM, Actor, CaseService, ChainUpdate, table_of
from recovery.sql_registry import SqlRegistry

Key = tuple[str, str]  # (claimed network, tx hash)


class CheckedCase(Protocol):
    """What deciding and applying a chain result read of a case: an ORM :class:`Case` (one case in the
    workbench) or a plain :class:`CaseFacts` row (the batch paths load hundreds at once)."""

    @property
    def id(self) -> int | None: ...
    @property
    def reference(self) -> str | None: ...
    @property
    def user_id(self) -> str: ...
    @property
    def network(self) -> str: ...
    @property
    def tx_hash(self) -> str: ...
    @property
    def asset(self) -> str: ...
    @property
    def deposit_address(self) -> str: ...
    @property
    def memo(self) -> str | None: ...
    @property
    def claimed_amount(self) -> Decimal | None: ...
    @property
    def created_at(self) -> datetime: ...
    @property
    def status(self) -> str: ...
    @property
    def category(self) -> str | None: ...
    @property
    def version(self) -> int: ...


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class CaseFacts:
    """A case's columns that a chain check reads, as a plain row (no ORM object: building hundreds
    per batch cost more than the query)."""

    id: int | None
    reference: str | None
    user_id: str
    network: str
    tx_hash: str
    asset: str
    deposit_address: str
    memo: str | None
    claimed_amount: Decimal | None
    created_at: datetime
    status: str
    category: str | None
    version: int
    refund_network: str | None
    refund_tx_hash: str | None


_FACT_COLUMNS = tuple(f.name for f in fields(CaseFacts))


def load_facts(session: Session, where: ColumnElement[bool], *, limit: int | None = None) -> list[CaseFacts]:
    """The cases matching ``where`` as :class:`CaseFacts`, in id order."""
    table = table_of(Case)
    query: Any = core_select(*(table.c[name] for name in _FACT_COLUMNS)).where(where).order_by(table.c.id)
    if limit is not None:
        query = query.limit(limit)
    return [CaseFacts(*row) for row in session.connection().execute(query)]


@dataclass(frozen=True)
class ChainEvidence:
    network: str
    tx_hash: str
    observations: dict[str, Observation] = field(default_factory=dict)
    unavailable: dict[str, str] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return any(o.found for o in self.observations.values())

    @property
    def conclusive(self) -> bool:
        """Found somewhere, or every network that had to be asked answered."""
        return self.found or not self.unavailable


class ChainGateway:
    """One adapter per configured network, created on first use and shared (adapters are thread-safe)."""

    def __init__(
        self,
        config: Config,
        *,
        adapters: Mapping[str, ChainAdapter] | None = None,
        factory: Callable[[Network], ChainAdapter] = adapter_for,
        max_workers: int = 8,
    ) -> None:
        self.config = config
        self._adapters: dict[str, ChainAdapter] = dict(adapters or {})
        self._injected = bool(adapters)
        self._factory = factory
        self._lock = Lock()
        self._workers = max_workers

    @property
    def makes_its_own_adapters(self) -> bool:
        """False when adapters were given at construction: those cannot be made again elsewhere."""
        return not self._injected

    def fresh(self) -> ChainGateway:
        """A gateway with the same configuration and adapter factory but no adapter made yet: what a
        forked process needs (an adapter holds its parent's connections)."""
        if self._injected:
            raise ValueError("a gateway given its adapters cannot make them again")
        return ChainGateway(self.config, factory=self._factory, max_workers=self._workers)

    def adapter(self, network: str) -> ChainAdapter:
        with self._lock:
            if network not in self._adapters:
                self._adapters[network] = self._factory(self.config.network(network))
            return self._adapters[network]

    def _lookup(self, network: str, hashes: list[str]) -> tuple[dict[str, Observation], str | None]:
        try:
            return self.adapter(network).lookup_many(hashes), None
        except (ChainUnavailable, UnsupportedFamily) as exc:
            return {}, str(exc)

    def _round(self, wanted: Mapping[str, list[str]]) -> dict[str, tuple[dict[str, Observation], str | None]]:
        if not wanted:
            return {}
        with ThreadPoolExecutor(max_workers=min(self._workers, len(wanted))) as pool:
            futures = {net: pool.submit(self._lookup, net, sorted(set(hashes))) for net, hashes in wanted.items()}
            return {net: future.result() for net, future in futures.items()}

    def evidence(self, items: Sequence[Key]) -> dict[Key, ChainEvidence]:
        results = {key: ChainEvidence(network=key[0], tx_hash=key[1]) for key in items}
        first: dict[str, list[str]] = defaultdict(list)
        for network, tx_hash in items:
            first[network].append(tx_hash)
        for network, (answers, problem) in self._round(first).items():
            for tx_hash in first[network]:
                evidence = results[(network, tx_hash)]
                if problem is not None:
                    evidence.unavailable[network] = problem
                elif tx_hash in answers:
                    evidence.observations[network] = answers[tx_hash]
                else:
                    evidence.unavailable[network] = "the node gave no answer for this hash"
        second: dict[str, list[str]] = defaultdict(list)
        for (network, tx_hash), evidence in results.items():
            claimed = evidence.observations.get(network)
            if claimed is not None and claimed.found:
                continue
            family = self.config.network(network).family
            for other in self.config.networks_of_family(family):
                if other.name != network:
                    second[other.name].append(tx_hash)
        answers_by_network = self._round(second)
        for (network, tx_hash), evidence in results.items():
            family = self.config.network(network).family
            for other in self.config.networks_of_family(family):
                if other.name == network or other.name not in answers_by_network:
                    continue
                if tx_hash not in second[other.name]:
                    continue
                answers, problem = answers_by_network[other.name]
                if problem is not None:
                    evidence.unavailable[other.name] = problem
                elif tx_hash in answers:
                    evidence.observations[other.name] = answers[tx_hash]
        self._confirm_not_found(results)
        return results

    def _confirm_not_found(self, results: Mapping[Key, ChainEvidence]) -> None:
        """A hash every network called unknown is asked about once more before "not found" stands.

        One answer can come from a node that is behind (behind a load balancer, still syncing)
        and does not know the transaction *yet*; the adapters catch that once they have seen a
        higher head, but not on their very first answer. A second, independent answer must agree;
        if it finds the transaction, it wins; if it fails, the result is inconclusive.
        """
        nowhere = [e for e in results.values() if e.observations and not e.found and not e.unavailable]
        wanted: dict[str, list[str]] = defaultdict(list)
        for evidence in nowhere:
            for network in evidence.observations:
                wanted[network].append(evidence.tx_hash)
        for network, (answers, problem) in self._round(wanted).items():
            for evidence in nowhere:
                if network not in evidence.observations:
                    continue
                if problem is not None:
                    evidence.unavailable[network] = problem
                elif evidence.tx_hash in answers and answers[evidence.tx_hash].found:
                    evidence.observations[network] = answers[evidence.tx_hash]


@dataclass(frozen=True)
class CheckOutcome:
    reference: str
    old_status: str
    new_status: str
    category: str | None
    changed: bool
    conclusive: bool
    error: str | None = None
    #: the transaction is now in another block than last time (a reorganization)
    reorg: bool = False


class BatchRegistry:
    """The rules engine's registry for a batch of cases: the deposit addresses of every recipient and
    the credits of every transaction in the batch are read in two queries up front; anything else
    is asked of an :class:`SqlRegistry` on the same session (same answers, one query per question)."""

    def __init__(
        self, session: Session, config: Config, evidence: Iterable[ChainEvidence],
        addresses_too: Iterable[tuple[str, str]] = (),
    ) -> None:
        self.config = config
        self._fallback = SqlRegistry(session, config)
        found = [o for e in evidence for o in e.observations.values() if o.found]
        asked = [(o.network, t.recipient) for o in found for t in o.transfers] + list(addresses_too)
        wanted = {self._normalized(other, address) for network, address in asked for other in self._family_of(network)}
        self._asked_addresses = wanted
        self._rows: dict[tuple[str, str], list[DepositAddress]] = defaultdict(list)
        # plain rows (Core), not ORM objects: a batch reads hundreds, and the objects cost more than the query
        if wanted:
            addresses = table_of(AddressRow)
            for row in session.connection().execute(
                core_select(addresses.c.user_id, addresses.c.network, addresses.c.address, addresses.c.memo,
                            addresses.c.kind).where(addresses.c.address.in_(wanted))
            ):
                self._rows[(row.network, row.address)].append(DepositAddress(
                    user_id=row.user_id, network=row.network, address=row.address, memo=row.memo or None,
                    kind="contract" if row.kind == "contract" else "eoa",
                ))
        hashes = {v for o in found for v in _hash_variants(o.tx_hash)}
        self._asked_hashes = hashes
        self._credits: dict[str, list[CreditedDeposit]] = defaultdict(list)
        if hashes:
            credits = table_of(CreditedRow)
            for credit in session.connection().execute(
                core_select(credits.c.network, credits.c.tx_hash, credits.c.user_id, credits.c.asset,
                            credits.c.amount).where(credits.c.tx_hash.in_(hashes))
            ):
                self._credits[credit.tx_hash].append(CreditedDeposit(
                    network=credit.network, tx_hash=credit.tx_hash, user_id=credit.user_id, asset=credit.asset,
                    amount=credit.amount,
                ))

    def _family_of(self, network: str) -> list[str]:
        net = self.config.networks.get(network)
        return [n.name for n in self.config.networks_of_family(net.family)] if net is not None else [network]

    def _normalized(self, network: str, address: str) -> str:
        net = self.config.networks.get(network)
        return _normalized_address(net.family, address) if net is not None else address.strip()

    def addresses_at(self, network: str, address: str) -> Sequence[DepositAddress]:
        normalized = self._normalized(network, address)
        if normalized not in self._asked_addresses:
            return self._fallback.addresses_at(network, address)
        return self._rows.get((network, normalized), [])

    def is_shared(self, network: str, address: str) -> bool:
        rows = self.addresses_at(network, address)
        if any(row.memo for row in rows):
            return True
        net = self.config.networks.get(network)
        return bool(net is not None and net.memo_required and rows)

    def credited(self, network: str, tx_hash: str) -> Sequence[CreditedDeposit]:
        variants = _hash_variants(tx_hash)
        if not variants <= self._asked_hashes:
            return self._fallback.credited(network, tx_hash)
        return [r for variant in sorted(variants) for r in self._credits.get(variant, ()) if r.network == network]


@lru_cache(maxsize=65536)
def _normalized_address(family: str, address: str) -> str:
    """An address in its stored form (as :class:`SqlRegistry` normalizes it); checksumming is costly."""
    try:
        return addresses.normalize_address(family, address)
    except InvalidChainInput:
        return address.strip()


def _hash_variants(tx_hash: str) -> set[str]:
    """The spellings of a hash that :class:`SqlRegistry` matches stored credits against."""
    variants = {tx_hash, tx_hash.lower(), tx_hash.upper()}
    if tx_hash.startswith("0x"):
        variants.add("0x" + tx_hash[2:].lower())
    return variants


class CaseChecker:
    """Looks cases up on the chains, classifies them, and applies the result through the service."""

    def __init__(self, service: CaseService, gateway: ChainGateway) -> None:
        self.service = service
        self.gateway = gateway
        self.config: Config = service.config

    def check(
        self, references: Sequence[str], *, actor: Actor = SYSTEM, timeout: float | None = None
    ) -> list[CheckOutcome]:
        """Check these cases; with ``timeout`` the chain part is bounded (then inconclusive)."""
        with self.service.db.read() as session:
            cases = load_facts(session, col(Case.reference).in_(list(references)))
        keys = sorted({(c.network, c.tx_hash) for c in cases})
        if timeout is None:
            evidence = self.gateway.evidence(keys)
        else:
            pool = ThreadPoolExecutor(max_workers=1)
            future = pool.submit(self.gateway.evidence, keys)
            try:
                evidence = future.result(timeout=timeout)
            except FutureTimeout:
                evidence = {
                    key: ChainEvidence(key[0], key[1], unavailable={key[0]: f"no answer within {timeout:g} s"})
                    for key in keys
                }
            finally:
                pool.shutdown(wait=False)
        return self.apply_many(cases, evidence, actor)

    def decide(self, case: CheckedCase, evidence: ChainEvidence) -> Decision | None:
        """The rules engine's decision for a case on this evidence (None when inconclusive). No writes."""
        return self.decide_many([case], {(case.network, case.tx_hash): evidence})[0]

    def decide_many(
        self, cases: Sequence[CheckedCase], evidence: Mapping[Key, ChainEvidence], *, now: datetime | None = None
    ) -> list[Decision | None]:
        """Decisions for many cases (None where inconclusive), reading the database in a few queries.
        ``now`` (default: the service's clock) is the time the decisions are made at."""
        conclusive = [c for c in cases if evidence[(c.network, c.tx_hash)].conclusive]
        if not conclusive:
            return [None] * len(cases)
        now = now or self.service.clock()
        decided: dict[int, Decision] = {}
        with self.service.db.read() as session:
            # another user's appeal for the same transaction, whichever network of the family
            # they named, makes both cases contested
            # (naming the family's networks lets the (network, tx_hash) index answer: on tx_hash
            # alone each batch read the whole table)
            appellants: dict[Key, list[tuple[int | None, str]]] = defaultdict(list)
            networks = {c.network for c in conclusive} | {
                n.name for c in conclusive for n in self._family_networks(c.network)}
            for case_id, network, tx_hash, user_id in session.exec(
                select(Case.id, Case.network, Case.tx_hash, Case.user_id).where(
                    col(Case.network).in_(networks), col(Case.tx_hash).in_({c.tx_hash for c in conclusive})
                )
            ).all():
                appellants[(self._family(network), tx_hash)].append((case_id, user_id))
            registry = BatchRegistry(session, self.config, [evidence[(c.network, c.tx_hash)] for c in conclusive],
                                     [(c.network, c.deposit_address) for c in conclusive])
            for case in conclusive:
                others = {user for case_id, user in appellants[(self._family(case.network), case.tx_hash)]
                          if case_id != case.id}
                appeal = Appeal(
                    user_id=case.user_id,
                    network=case.network,
                    tx_hash=case.tx_hash,
                    asset=case.asset,
                    deposit_address=case.deposit_address,
                    memo=case.memo,
                    claimed_amount=case.claimed_amount,
                    submitted_at=case.created_at,
                    other_appellants=frozenset(others),
                )
                decided[id(case)] = classify(
                    appeal, evidence[(case.network, case.tx_hash)].observations, registry, self.config, now
                )
        return [decided.get(id(case)) for case in cases]

    def _family_networks(self, network: str) -> list[Network]:
        known = self.config.networks.get(network)
        return self.config.networks_of_family(known.family) if known is not None else []

    def _family(self, network: str) -> str:
        known = self.config.networks.get(network)
        return known.family if known is not None else network

    def apply(self, case: CheckedCase, evidence: ChainEvidence, actor: Actor = SYSTEM) -> CheckOutcome:
        """Decide and record through the service layer; a concurrent change is reported, not raised."""
        return self.apply_many([case], {(case.network, case.tx_hash): evidence}, actor)[0]

    def apply_many(
        self, cases: Sequence[CheckedCase], evidence: Mapping[Key, ChainEvidence], actor: Actor = SYSTEM
    ) -> list[CheckOutcome]:
        """Decide many cases and record them in one service transaction; per-case conflicts are
        reported in the outcomes (that case untouched), never raised."""
        if not cases:
            return []
        decided = self.decide_many(cases, evidence)
        return self.apply_decided(cases, evidence, [d.to_json() if d is not None else None for d in decided], actor)

    def apply_decided(
        self, cases: Sequence[CheckedCase], evidence: Mapping[Key, ChainEvidence],
        decisions: Sequence[Mapping[str, Any] | None], actor: Actor = SYSTEM, *,
        release_lease_of: str | None = None,
    ) -> list[CheckOutcome]:
        """:meth:`apply_many` with the decisions already made, as stored (:meth:`Decision.to_json`: the
        batch re-check decides in other processes): one service transaction, per-case conflicts in the
        outcomes."""
        if not cases:
            return []
        updates = []
        for case, decision in zip(cases, decisions, strict=True):
            found = evidence[(case.network, case.tx_hash)]
            # every answer goes to the service: it keeps the found ones, and a "not found" only where
            # the transaction used to sit in a block (it vanished in a reorganization)
            updates.append(ChainUpdate(case.reference or "", decision, case.version, dict(found.observations),
                                       dict(found.unavailable)))
        applied = self.service.apply_decisions(updates, actor, full_cases=False, release_lease_of=release_lease_of)
        outcomes = []
        for case, result in zip(cases, applied, strict=True):
            conclusive = evidence[(case.network, case.tx_hash)].conclusive
            if result.error is not None or result.status is None:
                outcomes.append(CheckOutcome(result.reference, case.status, case.status, case.category, False,
                                             conclusive, error=str(result.error)))
            else:
                outcomes.append(CheckOutcome(result.reference, case.status, result.status, result.category,
                                             result.changed, conclusive, reorg=bool(result.reorgs)))
        return outcomes
