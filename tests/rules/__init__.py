"""Builders shared by the rules-engine tests: observations, transfers, registries, config tweaks."""

from __future__ import annotations

import dataclasses
import hashlib
from datetime import UTC, datetime, timedelta
from typing import Any

from eth_utils.address import to_checksum_address

from chains.base import AssetKind, Observation, Transfer, TxStatus, not_found
from recovery.config import Config, load_config
from recovery.settings import REPO_ROOT

CONFIG: Config = load_config(REPO_ROOT / "config")
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
TX = "0x" + "ab" * 32
EVM_NETWORKS = tuple(n.name for n in CONFIG.networks_of_family("evm"))


def evm_address(tag: str) -> str:
    """A deterministic checksummed EVM address for a readable tag."""
    return str(to_checksum_address("0x" + hashlib.sha256(tag.encode()).hexdigest()[:40]))


SENDER = evm_address("sender")
STRANGER = evm_address("stranger")
FAKE_TOKEN = evm_address("fake-usdt-contract")
PEPE = evm_address("pepe-contract")


def contract_of(network: str, symbol: str) -> str:
    asset = CONFIG.asset_by_symbol(network, symbol)
    assert asset is not None and asset.contract is not None
    return asset.contract


def token(
    contract: str,
    to: str,
    units: int,
    *,
    index: int = 0,
    symbol: str | None = None,
    name: str | None = None,
    decimals: int | None = None,
    sender: str = SENDER,
    memo: str | None = None,
) -> Transfer:
    return Transfer(
        kind=AssetKind.TOKEN,
        sender=sender,
        recipient=to,
        amount=units,
        index=index,
        contract=contract,
        memo=memo,
        symbol=symbol,
        token_name=name,
        decimals=decimals,
    )


def native(to: str, units: int, *, index: int = 0, internal: bool = False, sender: str = SENDER,
           memo: str | None = None) -> Transfer:
    return Transfer(
        kind=AssetKind.NATIVE, sender=sender, recipient=to, amount=units, index=index, internal=internal, memo=memo
    )


def seen(
    network: str,
    *transfers: Transfer,
    confirmations: int = 100,
    status: TxStatus = TxStatus.SUCCESS,
    memo: str | None = None,
    age_days: float = 1,
    tx_hash: str = TX,
    details: dict[str, Any] | None = None,
) -> Observation:
    """A transaction found on ``network``."""
    return Observation(
        network=network,
        tx_hash=tx_hash,
        status=status,
        block_number=1000,
        block_hash="0x" + "cd" * 32,
        confirmations=confirmations,
        timestamp=NOW - timedelta(days=age_days),
        sender=transfers[0].sender if transfers else SENDER,
        transfers=transfers,
        memo=memo,
        details=details or {},
    )


def evm_lookups(found: Observation | None = None, *, only: tuple[str, ...] = EVM_NETWORKS) -> dict[str, Observation]:
    """What the EVM networks said: ``found`` on its network, not found everywhere else in ``only``."""
    result = {name: not_found(name, TX) for name in only}
    if found is not None:
        result[found.network] = found
    return result


def with_network(config: Config, name: str, **changes: Any) -> Config:
    networks = dict(config.networks)
    networks[name] = networks[name].model_copy(update=changes)
    return dataclasses.replace(config, networks=networks)


def with_asset(config: Config, network: str, symbol: str, **changes: Any) -> Config:
    assets = tuple(
        a.model_copy(update=changes) if a.network == network and a.symbol == symbol else a for a in config.assets
    )
    return dataclasses.replace(config, assets=assets)
