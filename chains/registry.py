"""Which adapter class serves which chain family.

Only families with a real adapter are listed; asking for any other raises
:class:`UnsupportedFamily` naming the network, its family and what is available.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from types import MappingProxyType

from chains.base import ChainAdapter
from chains.bitcoin import BitcoinAdapter
from chains.cosmos import CosmosAdapter
from chains.evm import EvmAdapter
from chains.network import Network
from chains.solana import SolanaAdapter
from chains.stellar import StellarAdapter
from chains.tron import TronAdapter
from chains.xrpl import XrplAdapter

__all__ = ["ADAPTERS", "UnsupportedFamily", "adapter_for", "supported_families"]

AdapterFactory = Callable[[Network], ChainAdapter]

ADAPTERS: Mapping[str, AdapterFactory] = MappingProxyType(
    {
        "evm": EvmAdapter,
        "tron": TronAdapter,
        "bitcoin": BitcoinAdapter,
        "cosmos": CosmosAdapter,
        "xrpl": XrplAdapter,
        "stellar": StellarAdapter,
        "solana": SolanaAdapter,
    }
)


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
