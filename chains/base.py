"""The adapter contract every chain family implements, and the types it returns.

An adapter is configured by one network's TOML entry and answers: what happened in this
transaction (``lookup``), for many transactions at once (``lookup_many``), and what reached this
address in a range (``incoming``). A node that times out, rate-limits or answers garbage raises
``ChainUnavailable``: that is "try again later", never "not found".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from enum import StrEnum
from operator import attrgetter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar, runtime_checkable

from chains.network import Network


class TxStatus(StrEnum):
    SUCCESS = "success"
    FAILED = "failed"
    PENDING = "pending"
    NOT_FOUND = "not_found"
    #: the node answered, but with something the adapter cannot read with certainty (a result code,
    #: message type, memo type or shape the chain's documentation and our recordings do not cover).
    #: Never read as success: the case goes to a person (flag ``unrecognised_chain_data``) with the
    #: raw answer in ``details["raw"]`` and the reasons in ``details["unrecognised"]``.
    UNCLEAR = "unclear"


class AssetKind(StrEnum):
    NATIVE = "native"
    TOKEN = "token"  # noqa: S105 - an asset kind, not a secret
    #: a TRON TRC-10 asset (``TransferAssetContract``): ``contract`` is its numeric asset id; it is
    #: neither TRX nor a TRC-20 contract, and unlisted unless the configuration names that id
    TRC10 = "trc10"


class ChainError(Exception):
    """Base of every chain-side error."""


class ChainUnavailable(ChainError):
    """The network could not answer reliably now (timeout, 429/5xx, garbage, node behind).

    Callers keep the case pending and try again later.
    """

    def __init__(self, network: str, reason: str) -> None:
        self.network = network
        self.reason = reason
        super().__init__(f"{network}: unavailable: {reason}")


class InvalidChainInput(ValueError):
    """A hash or address that is not valid for the network; ``field`` names the input."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


if TYPE_CHECKING:
    from _typeshed import DataclassInstance

_D = TypeVar("_D", bound="DataclassInstance")


def pickled_as_fields(cls: type[_D]) -> type[_D]:
    """Pickle a dataclass as its field values, rebuilt by ``__init__``: about twice as fast to unpickle
    as a slots dataclass's generic state (the re-check's worker processes send hundreds per batch)."""
    values = attrgetter(*(f.name for f in fields(cls)))

    def __reduce__(self: _D) -> tuple[Any, ...]:
        return (type(self), values(self))

    cls.__reduce__ = __reduce__  # type: ignore[assignment, method-assign]  # on the class @dataclass made
    return cls


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class Transfer:
    """One movement of value inside a transaction.

    ``amount`` is in base units of the asset (wei, sun, drops, satoshi, ...). ``contract`` names
    the token in the chain's own form (EVM/TRON contract, SPL mint, ``CODE:ISSUER`` on Stellar,
    ``CURRENCY.ISSUER`` on the XRP Ledger, a Cosmos denom) and is None for the native coin.
    ``internal`` marks native value delivered by a contract call (found by tracing).
    """

    kind: AssetKind
    sender: str
    recipient: str
    amount: int
    index: int
    contract: str | None = None
    memo: str | None = None
    internal: bool = False
    symbol: str | None = None
    token_name: str | None = None
    decimals: int | None = None

    def to_json(self) -> dict[str, Any]:
        # spelled out: dataclasses.asdict deep-copies every value and cost more than the rest of
        # storing an observation
        return {
            "kind": self.kind.value,
            "sender": self.sender,
            "recipient": self.recipient,
            "amount": str(self.amount),
            "index": self.index,
            "contract": self.contract,
            "memo": self.memo,
            "internal": self.internal,
            "symbol": self.symbol,
            "token_name": self.token_name,
            "decimals": self.decimals,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Transfer:
        values = dict(data)
        values["kind"] = AssetKind(values["kind"])
        values["amount"] = int(values["amount"])
        return cls(**values)


@pickled_as_fields
@dataclass(frozen=True, slots=True)
class Observation:
    """What one network says about one transaction at one moment."""

    network: str
    tx_hash: str
    status: TxStatus
    block_number: int | None = None
    block_hash: str | None = None
    confirmations: int = 0
    timestamp: datetime | None = None
    sender: str | None = None
    transfers: tuple[Transfer, ...] = ()
    memo: str | None = None
    fee: int | None = None
    details: Mapping[str, Any] = field(default_factory=dict)

    @property
    def found(self) -> bool:
        return self.status is not TxStatus.NOT_FOUND

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "tx_hash": self.tx_hash,
            "status": self.status.value,
            "block_number": self.block_number,
            "block_hash": self.block_hash,
            "confirmations": self.confirmations,
            "timestamp": self.timestamp.astimezone(UTC).isoformat() if self.timestamp else None,
            "sender": self.sender,
            "transfers": [t.to_json() for t in self.transfers],
            "memo": self.memo,
            "fee": str(self.fee) if self.fee is not None else None,
            "details": dict(self.details),
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Observation:
        timestamp = data.get("timestamp")
        fee = data.get("fee")
        return cls(
            network=data["network"],
            tx_hash=data["tx_hash"],
            status=TxStatus(data["status"]),
            block_number=data.get("block_number"),
            block_hash=data.get("block_hash"),
            confirmations=int(data.get("confirmations") or 0),
            timestamp=datetime.fromisoformat(timestamp) if timestamp else None,
            sender=data.get("sender"),
            transfers=tuple(Transfer.from_json(t) for t in data.get("transfers", ())),
            memo=data.get("memo"),
            fee=int(fee) if fee is not None else None,
            details=dict(data.get("details") or {}),
        )


def not_found(network: str, tx_hash: str) -> Observation:
    return Observation(network=network, tx_hash=tx_hash, status=TxStatus.NOT_FOUND)


def unclear(observation: Observation, reasons: Sequence[str], raw: Any) -> Observation:
    """``observation`` marked as unreadable: status ``unclear``, the ``reasons`` (one sentence each,
    naming the field and the value we could not read) and the node's ``raw`` answer in ``details``.

    The transfers read so far are kept for the person who reviews the case; the rules never credit
    an unclear transaction."""
    details = dict(observation.details)
    details["unrecognised"] = [*details.get("unrecognised", ()), *reasons]
    details["raw"] = raw
    return Observation(
        network=observation.network,
        tx_hash=observation.tx_hash,
        status=TxStatus.UNCLEAR,
        block_number=observation.block_number,
        block_hash=observation.block_hash,
        confirmations=observation.confirmations,
        timestamp=observation.timestamp,
        sender=observation.sender,
        transfers=observation.transfers,
        memo=observation.memo,
        fee=observation.fee,
        details=details,
    )


@runtime_checkable
class ChainAdapter(Protocol):
    """What every chain family provides. One instance serves one configured network."""

    network: Network
    #: e.g. {"trace"} when the node can trace internal transfers
    features: frozenset[str]

    def lookup(self, tx_hash: str) -> Observation: ...

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]: ...

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transfers that reached ``address`` between two block heights (or ledger/slot numbers,
        or unix times for families that page by time), inclusive."""
        ...

    def normalize_address(self, address: str) -> str: ...

    def is_address(self, address: str) -> bool: ...

    def is_tx_hash(self, tx_hash: str) -> bool: ...

    def normalize_tx_hash(self, tx_hash: str) -> str: ...
