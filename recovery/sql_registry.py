"""The rules engine's Registry answered from the database (deposit_addresses, credited_deposits)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlmodel import Session, select

from chains import addresses
from recovery.config import Config
from recovery.models import CreditedDeposit as CreditedRow
from recovery.models import DepositAddress as AddressRow
from recovery.registry import CreditedDeposit, DepositAddress, address_key, tx_key


class SqlRegistry:
    """One indexed query per question, memoized for the life of the object (one request or one run).

    Addresses are stored in their normalized form; a queried address is normalized the same way
    for its network's family before the lookup.
    """

    def __init__(self, session: Session, config: Config) -> None:
        self.session = session
        self.config = config
        self._addresses: dict[tuple[str, str], list[DepositAddress]] = {}
        self._credits: dict[tuple[str, str], list[CreditedDeposit]] = {}

    def _normalized(self, network: str, address: str) -> str:
        family = self.config.networks[network].family if network in self.config.networks else None
        if family is not None and addresses.is_address(family, address):
            return addresses.normalize_address(family, address)
        return address.strip()

    def addresses_at(self, network: str, address: str) -> Sequence[DepositAddress]:
        key = (network, address_key(address))
        if key not in self._addresses:
            stored = self.session.exec(
                select(AddressRow).where(
                    AddressRow.network == network, AddressRow.address == self._normalized(network, address)
                )
            ).all()
            self._addresses[key] = [
                DepositAddress(
                    user_id=row.user_id,
                    network=row.network,
                    address=row.address,
                    memo=row.memo or None,
                    kind="contract" if row.kind == "contract" else "eoa",
                )
                for row in stored
            ]
        return self._addresses[key]

    def is_shared(self, network: str, address: str) -> bool:
        rows = self.addresses_at(network, address)
        if any(row.memo for row in rows):
            return True
        net = self.config.networks.get(network)
        return bool(net is not None and net.memo_required and rows)

    def credited(self, network: str, tx_hash: str) -> Sequence[CreditedDeposit]:
        key = (network, tx_key(tx_hash))
        if key not in self._credits:
            candidates = {tx_hash, tx_hash.lower(), tx_hash.upper()}
            if tx_hash.startswith("0x"):
                candidates.add("0x" + tx_hash[2:].lower())
            stored = self.session.exec(
                select(CreditedRow).where(CreditedRow.network == network, CreditedRow.tx_hash.in_(candidates))  # type: ignore[attr-defined]
            ).all()
            self._credits[key] = [
                CreditedDeposit(network=r.network, tx_hash=r.tx_hash, user_id=r.user_id, asset=r.asset,
                                amount=r.amount)
                for r in stored
            ]
        return self._credits[key]
