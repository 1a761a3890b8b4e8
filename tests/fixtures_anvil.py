"""Real local EVM chains for the tests: one anvil with chain id 1 (``ethereum``) and one with chain
id 56 (``bsc``), started once per test session on ephemeral loopback ports.

Every token the default configuration lists on those networks works at its configured (mainnet)
contract address, so the configuration the tests use is the shipped one with only the RPC URLs
changed. The other EVM networks of the default configuration are left out of the test
configuration: nothing runs for them, and a cross-network search must be able to answer.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType

import pytest
from eth_utils.address import to_checksum_address

from chains import devchain
from chains.devchain import DEV_ACCOUNTS, AnvilNode, SeedTransfer
from chains.evm import EvmAdapter
from recovery.config import Config

#: network name -> chain id of the local test chains
TEST_CHAINS: Mapping[str, int] = MappingProxyType({"ethereum": 1, "bsc": 56})
#: the dev account that funds everything (owner of every test token)
FUNDER = DEV_ACCOUNTS[0]


def fresh_address() -> str:
    """A new random checksummed address (a deposit address, a stranger, ...)."""
    return str(to_checksum_address("0x" + secrets.token_hex(20)))


@dataclass
class EvmTestbed:
    """The running test chains and a configuration that points at them."""

    config: Config
    nodes: Mapping[str, AnvilNode]
    #: network -> symbol -> contract address of the listed tokens
    tokens: Mapping[str, Mapping[str, str]]
    _adapters: dict[str, EvmAdapter] = field(default_factory=dict)

    def url(self, network: str) -> str:
        return self.nodes[network].url

    def adapter(self, network: str) -> EvmAdapter:
        """One shared adapter per network (adapters are thread-safe and cache token metadata)."""
        if network not in self._adapters:
            self._adapters[network] = EvmAdapter(self.config.network(network))
        return self._adapters[network]

    def send_native(self, network: str, to: str, value: int, *, sender: str = FUNDER) -> str:
        return devchain.seed_transfers(self.url(network), [SeedTransfer(sender, to, value=value)])[0]

    def send_token(self, network: str, token: str, to: str, amount: int, *, sender: str = FUNDER) -> str:
        """``token`` is a listed symbol on ``network`` or a contract address."""
        contract = self.tokens[network].get(token, token)
        return devchain.seed_transfers(self.url(network), [SeedTransfer(sender, to, token=contract, amount=amount)])[0]

    def deploy(self, network: str, contract: str, *args: object) -> str:
        return devchain.deploy(devchain.web3_for(self.url(network)), contract, *args)

    def new_token(self, network: str, name: str, symbol: str, decimals: int, supply: int) -> str:
        """An unlisted token held by :data:`FUNDER`."""
        return self.deploy(network, "TestToken", name, symbol, decimals, FUNDER, supply)

    def mine(self, network: str, blocks: int = 1) -> None:
        devchain.mine(self.url(network), blocks)


def _test_config(base: Config, urls: Mapping[str, str]) -> Config:
    evm_names = {n.name for n in base.networks_of_family("evm")}
    networks = {
        name: (net.model_copy(update={"rpc_urls": (urls[name],)}) if name in urls else net)
        for name, net in base.networks.items()
        if name in urls or name not in evm_names
    }
    assets = tuple(a for a in base.assets if a.network in networks)
    return dataclasses.replace(base, networks=MappingProxyType(networks), assets=assets)


@pytest.fixture(scope="session")
def evm_testbed(default_config: Config, tmp_path_factory: pytest.TempPathFactory) -> Iterator[EvmTestbed]:
    """The session's local chains (started on first use, stopped at the end)."""
    logs: Path = tmp_path_factory.mktemp("anvil")
    nodes: dict[str, AnvilNode] = {}
    try:
        for name, chain_id in TEST_CHAINS.items():
            nodes[name] = devchain.start_anvil(chain_id, log_path=logs / f"{name}.log")
        tokens: dict[str, Mapping[str, str]] = {}
        for name, node in nodes.items():
            installed = devchain.install_listed_tokens(node.url, default_config, name)
            for address in installed.values():
                devchain.mint(node.url, address, FUNDER, 10**30)
            tokens[name] = MappingProxyType(installed)
        config = _test_config(default_config, {name: node.url for name, node in nodes.items()})
        yield EvmTestbed(config, MappingProxyType(nodes), MappingProxyType(tokens))
    finally:
        for node in nodes.values():
            node.stop()
