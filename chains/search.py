"""Cross-network search: look a transaction hash up on every configured network of a family at
once, and report where it exists. This is the heart of wrong-network detection: a deposit sent on
BNB Smart Chain to an address the user meant for Ethereum shows up as "found on bsc".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from types import MappingProxyType

from chains.base import ChainAdapter, ChainUnavailable, Observation
from chains.network import Network, NetworkDirectory
from chains.registry import adapter_for

__all__ = ["CrossNetworkSearch", "SearchResult"]


@dataclass(frozen=True, slots=True)
class SearchResult:
    """One hash on every network of a family.

    ``found``: networks whose node knows the transaction (any status but not_found);
    ``missing``: networks that answered "not found"; ``unavailable``: networks that could not
    answer reliably (network name -> reason). A hash is "nowhere" only if ``unavailable`` is empty.
    """

    tx_hash: str
    found: Mapping[str, Observation] = field(default_factory=dict)
    missing: tuple[str, ...] = ()
    unavailable: Mapping[str, str] = field(default_factory=dict)

    @property
    def networks(self) -> tuple[str, ...]:
        return tuple(self.found)

    @property
    def complete(self) -> bool:
        """Every network answered."""
        return not self.unavailable

    @property
    def nowhere(self) -> bool:
        """Every network answered and none knows the hash."""
        return self.complete and not self.found


class CrossNetworkSearch:
    """Adapters for every network of one family in a configuration, queried concurrently.

    ``adapters`` may be passed (e.g. shared, already warmed-up adapters); otherwise they are
    built with :func:`chains.registry.adapter_for`.
    """

    def __init__(
        self,
        config: NetworkDirectory,
        family: str = "evm",
        *,
        adapters: Mapping[str, ChainAdapter] | None = None,
        factory: Callable[[Network], ChainAdapter] = adapter_for,
        max_workers: int | None = None,
    ) -> None:
        networks = config.networks_of_family(family)
        if not networks:
            raise ValueError(f"no {family} networks in the configuration")
        given = adapters or {}
        self.family = family
        self.adapters: Mapping[str, ChainAdapter] = MappingProxyType(
            {n.name: given.get(n.name) or factory(n) for n in networks}
        )
        self._workers = max_workers or min(16, len(self.adapters))

    def normalize(self, tx_hash: str) -> str:
        """Validates with the first adapter (every network of a family shares the hash format)."""
        return next(iter(self.adapters.values())).normalize_tx_hash(tx_hash)

    def find(self, tx_hash: str) -> SearchResult:
        return self.find_many([tx_hash])[tx_hash]

    def find_many(self, tx_hashes: Sequence[str]) -> dict[str, SearchResult]:
        """Each hash on every network (one batched lookup per network, all networks at once).

        Keys are the strings passed in. Invalid hashes raise InvalidChainInput before any request.
        """
        normalized = {h: self.normalize(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        answers: dict[str, dict[str, Observation] | ChainUnavailable] = {}

        def ask(name: str) -> tuple[str, dict[str, Observation] | ChainUnavailable]:
            try:
                return name, self.adapters[name].lookup_many(unique)
            except ChainUnavailable as exc:
                return name, exc

        if unique:
            with ThreadPoolExecutor(max_workers=self._workers, thread_name_prefix="xnet-search") as pool:
                for name, answer in pool.map(ask, self.adapters):
                    answers[name] = answer
        results: dict[str, SearchResult] = {}
        for h in unique:
            found: dict[str, Observation] = {}
            missing: list[str] = []
            unavailable: dict[str, str] = {}
            for name in self.adapters:
                answer = answers[name]
                if isinstance(answer, ChainUnavailable):
                    unavailable[name] = answer.reason
                elif answer[h].found:
                    found[name] = answer[h]
                else:
                    missing.append(name)
            results[h] = SearchResult(h, MappingProxyType(found), tuple(missing), MappingProxyType(unavailable))
        return {given: results[norm] for given, norm in normalized.items()}
