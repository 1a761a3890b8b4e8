"""One network's settings as the chain adapters need them.

This is the only configuration type ``chains/`` knows: ``recovery.config`` loads the TOML files
into it (and re-exports it), so ``chains/`` stands alone and ``recovery/`` depends on it.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal, Protocol
from urllib.parse import urlparse

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = ["FAMILIES", "NETWORK_NAME", "Family", "MemoFormat", "Network", "NetworkDirectory", "RecoveryMode"]

Family = Literal["evm", "tron", "xrpl", "stellar", "solana", "bitcoin", "cosmos"]
FAMILIES: tuple[str, ...] = ("evm", "tron", "xrpl", "stellar", "solana", "bitcoin", "cosmos")
RecoveryMode = Literal["direct", "conditional", "none"]
MemoFormat = Literal["none", "digits", "uint32", "uint64", "text"]

NETWORK_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")




class NetworkDirectory(Protocol):
    """Anything that lists the configured networks of a family (``recovery.config.Config`` does)."""

    def networks_of_family(self, family: str) -> Sequence[Network]: ...


class Network(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow", str_strip_whitespace=True)

    name: str
    family: Family
    chain_id: int | None = Field(default=None, gt=0)
    rpc_urls: tuple[str, ...] = Field(min_length=1)
    confirmations: int = Field(ge=0)
    native_asset: str = Field(min_length=1)
    recovery: RecoveryMode
    memo_required: bool
    explorer_tx_url: str
    deposits_enabled: bool = True
    memo_format: MemoFormat = "none"
    #: proof-of-authority EVM chains (BNB Smart Chain, Polygon) need web3's extra-data middleware
    poa: bool = False

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if not NETWORK_NAME.match(value):
            raise ValueError("network names are lowercase letters, digits, '-' or '_'")
        return value

    @field_validator("rpc_urls")
    @classmethod
    def _urls(cls, urls: tuple[str, ...]) -> tuple[str, ...]:
        for position, url in enumerate(urls):
            parsed = urlparse(url)
            if parsed.scheme not in ("http", "https") or not parsed.netloc:
                raise ValueError(f"entry {position} ({url!r}) is not an http(s) URL")
        return urls

    @field_validator("explorer_tx_url")
    @classmethod
    def _explorer(cls, value: str) -> str:
        parsed = urlparse(value)
        if parsed.scheme not in ("http", "https") or "{tx}" not in value:
            raise ValueError("must be an http(s) URL containing the placeholder {tx}")
        return value

    @model_validator(mode="after")
    def _family_rules(self) -> Network:
        if self.family == "evm" and self.chain_id is None:
            raise ValueError("chain_id is required for an evm network")
        if self.family != "evm" and self.chain_id is not None:
            raise ValueError("chain_id applies to evm networks only")
        if self.memo_required and self.memo_format == "none":
            raise ValueError("memo_required networks need a memo_format (digits, uint32, uint64, text)")
        return self

    def explorer_link(self, tx_hash: str) -> str:
        return self.explorer_tx_url.replace("{tx}", tx_hash)
