"""What the rules engine reads about the exchange's own books: deposit addresses and credits.

The engine asks by key only (network + address, network + tx hash), so a database-backed
implementation answers each question with one indexed query and a batch re-check stays cheap.
Listed assets, prices and fees come from ``recovery.config.Config``, not from here.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Literal, Protocol, runtime_checkable

AddressKind = Literal["eoa", "contract"]
ADDRESS_KINDS: tuple[str, ...] = ("eoa", "contract")

_EVM_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_HEX_HASH = re.compile(r"^(0x)?[0-9a-fA-F]+$")


def address_key(address: str) -> str:
    """The comparison key of an address: EVM hex addresses compare case-insensitively.

    Every other form (base58, bech32 as the adapter returns it, r-addresses, ...) compares exactly.
    """
    text = address.strip()
    return text.lower() if _EVM_ADDRESS.match(text) else text


def tx_key(tx_hash: str) -> str:
    """The comparison key of a transaction hash: hex hashes compare case-insensitively."""
    text = tx_hash.strip()
    return text.lower() if _HEX_HASH.match(text) else text


@dataclass(frozen=True, slots=True)
class DepositAddress:
    """A deposit address issued to a user for one network.

    On shared-address (memo) networks there is one row per user memo and the address is shared;
    ``memo`` is None where the address alone identifies the user. ``kind`` says whether the
    address is a key we hold (``eoa``: valid on every network of the family that uses the same
    key) or a contract deployed on that network only.
    """

    user_id: str
    network: str
    address: str
    memo: str | None
    kind: AddressKind

    def __post_init__(self) -> None:
        if self.kind not in ADDRESS_KINDS:
            raise ValueError(f"kind must be one of {ADDRESS_KINDS}, not {self.kind!r}")


@dataclass(frozen=True, slots=True)
class CreditedDeposit:
    """A deposit the exchange already credited. ``asset`` is the listed symbol or the contract."""

    network: str
    tx_hash: str
    user_id: str
    asset: str
    amount: Decimal


@runtime_checkable
class Registry(Protocol):
    """The engine's read-only view of deposit addresses and credits. Lookups are by key.

    Implementations compare EVM addresses case-insensitively (see ``address_key``) and hex
    transaction hashes case-insensitively (see ``tx_key``).
    """

    def addresses_at(self, network: str, address: str) -> Sequence[DepositAddress]:
        """Every row for this address issued for this network (all memo rows of a shared address)."""
        ...

    def is_shared(self, network: str, address: str) -> bool:
        """True if the address is shared by many users who are told apart by a memo."""
        ...

    def credited(self, network: str, tx_hash: str) -> Sequence[CreditedDeposit]:
        """Every credit recorded for this transaction on this network."""
        ...


class InMemoryRegistry:
    """A dictionary-backed ``Registry`` for tests and pure callers.

    An address counts as shared when it was declared shared or any of its rows carries a memo.
    """

    def __init__(
        self,
        addresses: Iterable[DepositAddress] = (),
        credited: Iterable[CreditedDeposit] = (),
        shared: Iterable[tuple[str, str]] = (),
    ) -> None:
        self._addresses: dict[tuple[str, str], list[DepositAddress]] = defaultdict(list)
        self._credited: dict[tuple[str, str], list[CreditedDeposit]] = defaultdict(list)
        self._shared: set[tuple[str, str]] = set()
        for row in addresses:
            self.add_address(row)
        for credit in credited:
            self.add_credit(credit)
        for network, address in shared:
            self._shared.add((network, address_key(address)))

    def add_address(self, row: DepositAddress) -> None:
        key = (row.network, address_key(row.address))
        rows = self._addresses[key]
        if any(existing.memo == row.memo for existing in rows):
            raise ValueError(f"duplicate deposit address {row.address} memo {row.memo!r} on {row.network}")
        rows.append(row)
        if row.memo is not None:
            self._shared.add(key)

    def add_credit(self, credit: CreditedDeposit) -> None:
        self._credited[(credit.network, tx_key(credit.tx_hash))].append(credit)

    def addresses_at(self, network: str, address: str) -> list[DepositAddress]:
        return list(self._addresses.get((network, address_key(address)), ()))

    def is_shared(self, network: str, address: str) -> bool:
        return (network, address_key(address)) in self._shared

    def credited(self, network: str, tx_hash: str) -> list[CreditedDeposit]:
        return list(self._credited.get((network, tx_key(tx_hash)), ()))
