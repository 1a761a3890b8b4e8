"""Which adapter class serves which chain family.

Only families with a real adapter are listed; asking for any other raises
:class:`UnsupportedFamily` naming the network, its family and what is available.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, cast

from chains.base import ChainAdapter
from chains.network import Network

if TYPE_CHECKING:
    from chains.bitcoin import BitcoinAdapter
    from chains.cosmos import CosmosAdapter
    from chains.evm import EvmAdapter
    from chains.solana import SolanaAdapter
    from chains.stellar import StellarAdapter
    from chains.tron import TronAdapter
    from chains.xrpl import XrplAdapter

__all__ = ["ADAPTERS", "UnsupportedFamily", "adapter_for", "supported_families"]

AdapterFactory = Callable[[Network], ChainAdapter]

#: family -> (module, class) of its adapter. The module, and the chain library it uses (web3,
#: xrpl-py, stellar-sdk, ...), is imported when the family's adapter is first asked for.
_ADAPTER_CLASSES: Mapping[str, tuple[str, str]] = {
    "evm": ("chains.evm", "EvmAdapter"),
    "tron": ("chains.tron", "TronAdapter"),
    "bitcoin": ("chains.bitcoin", "BitcoinAdapter"),
    "cosmos": ("chains.cosmos", "CosmosAdapter"),
    "xrpl": ("chains.xrpl", "XrplAdapter"),
    "stellar": ("chains.stellar", "StellarAdapter"),
    "solana": ("chains.solana", "SolanaAdapter"),
}

if TYPE_CHECKING:  # what the lazy table resolves to, checked against the adapter contract
    _RESOLVED: Mapping[str, AdapterFactory] = {
        "evm": EvmAdapter,
        "tron": TronAdapter,
        "bitcoin": BitcoinAdapter,
        "cosmos": CosmosAdapter,
        "xrpl": XrplAdapter,
        "stellar": StellarAdapter,
        "solana": SolanaAdapter,
    }


class _LazyAdapters(Mapping[str, AdapterFactory]):
    """A read-only mapping family -> adapter class that imports each class on first lookup.

    Listing the families (``in``, ``len``, iteration, :func:`supported_families`) imports nothing.
    """

    def __init__(self, classes: Mapping[str, tuple[str, str]]) -> None:
        self._classes = dict(classes)
        self._loaded: dict[str, AdapterFactory] = {}  # importing is thread-safe; a race stores the same class

    def __getitem__(self, family: str) -> AdapterFactory:
        factory = self._loaded.get(family)
        if factory is not None:
            return factory
        module_name, class_name = self._classes[family]  # KeyError for an unknown family
        factory = cast("AdapterFactory", getattr(importlib.import_module(module_name), class_name))
        self._loaded[family] = factory
        return factory

    def __contains__(self, family: object) -> bool:
        return family in self._classes

    def __iter__(self) -> Iterator[str]:
        return iter(self._classes)

    def __len__(self) -> int:
        return len(self._classes)

    def __repr__(self) -> str:
        return f"ADAPTERS({', '.join(self._classes)})"


ADAPTERS: Mapping[str, AdapterFactory] = _LazyAdapters(_ADAPTER_CLASSES)


class UnsupportedFamily(LookupError):
    """No adapter exists (yet) for a network's chain family."""

    def __init__(self, network: str, family: str) -> None:
        self.network = network
        self.family = family
        available = ", ".join(sorted(ADAPTERS)) or "none"
        super().__init__(
            f"no chain adapter for family {family!r} (network {network!r}); available families: {available}"
        )


def supported_families() -> frozenset[str]:
    return frozenset(ADAPTERS)


def adapter_for(network: Network) -> ChainAdapter:
    """A new adapter for ``network`` (one per network is enough: adapters are thread-safe)."""
    factory = ADAPTERS.get(network.family)
    if factory is None:
        raise UnsupportedFamily(network.name, network.family)
    return factory(network)
