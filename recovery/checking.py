"""Ask the chains about cases and apply what they say: shared by the API, the re-check and the workbench.

For each case the claimed network is asked first (batched per network with ``lookup_many``);
where the hash is not there, every other network of the same family is asked (the wrong-network
search). A network that cannot answer makes the result inconclusive unless the transaction was
found elsewhere: an outage is never reported as "transaction not found".
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from threading import Lock

from sqlmodel import col, select

from chains.base import ChainAdapter, ChainUnavailable, Observation
from chains.registry import UnsupportedFamily, adapter_for
from recovery.config import Config, Network
from recovery.errors import Conflict, InvalidTransition
from recovery.models import Case, ChainObservation
from recovery.rules import Appeal, Decision, classify
from recovery.services import SYSTEM, Actor, CaseService
from recovery.sql_registry import SqlRegistry

Key = tuple[str, str]  # (claimed network, tx hash)


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
        self._factory = factory
        self._lock = Lock()
        self._workers = max_workers

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
        return results


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
            cases = list(session.exec(select(Case).where(col(Case.reference).in_(list(references)))).all())
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
        return [self._apply(case, evidence[(case.network, case.tx_hash)], actor) for case in cases]

    def decide(self, case: Case, evidence: ChainEvidence) -> Decision | None:
        """The rules engine's decision for a case on this evidence (None when inconclusive). No writes."""
        if not evidence.conclusive:
            return None
        with self.service.db.read() as session:
            others = session.exec(
                select(Case.user_id).where(
                    Case.network == case.network, Case.tx_hash == case.tx_hash, Case.id != case.id
                )
            ).all()
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
            return classify(
                appeal, evidence.observations, SqlRegistry(session, self.config), self.config, self.service.clock()
            )

    def apply(self, case: Case, evidence: ChainEvidence, actor: Actor = SYSTEM) -> CheckOutcome:
        """Decide and record through the service layer; a concurrent change is reported, not raised."""
        return self._apply(case, evidence, actor)

    def _apply(self, case: Case, evidence: ChainEvidence, actor: Actor) -> CheckOutcome:
        reference = case.reference or ""
        decision = self.decide(case, evidence)
        stored = self._stored_blocks(evidence)
        # Found answers are stored; a "not found" is stored only where the transaction used to sit
        # in a block: it vanished in a reorganization, and the stored evidence must say so.
        observations = {
            n: o for n, o in evidence.observations.items() if o.found or stored.get(n) is not None
        }
        reorg = any(stored.get(n) is not None and o.block_hash != stored[n] for n, o in observations.items())
        try:
            updated, changed = self.service.apply_decision(
                reference, decision, actor, expected_version=case.version,
                observations=observations,
                unavailable=evidence.unavailable,
            )
        except (Conflict, InvalidTransition) as exc:
            return CheckOutcome(reference, case.status, case.status, case.category, False, evidence.conclusive,
                                error=str(exc))
        return CheckOutcome(reference, case.status, updated.status, updated.category, changed, evidence.conclusive,
                            reorg=reorg)

    def _stored_blocks(self, evidence: ChainEvidence) -> dict[str, str | None]:
        """The block hash stored for this transaction on each network that answered now."""
        if not evidence.observations:
            return {}
        wanted = {(o.network, o.tx_hash) for o in evidence.observations.values()}
        with self.service.db.read() as session:
            rows = session.exec(
                select(ChainObservation.network, ChainObservation.tx_hash, ChainObservation.block_hash).where(
                    col(ChainObservation.tx_hash).in_({h for _, h in wanted}),
                    col(ChainObservation.network).in_({n for n, _ in wanted}),
                )
            ).all()
        return {str(network): block for network, tx_hash, block in rows if (network, tx_hash) in wanted}
