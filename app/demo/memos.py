"""Memo-network cases of the demo, from the recorded real transactions served by the local replay
server (``chains.replay``): nothing here is invented chain data.

The recordings are read through the real adapters; the demo then *declares* the receiving
addresses to be shared deposit addresses of the exchange, with per-user memos chosen so that:
- an XRP payment whose destination tag is a user's memo, appealed by that user: ``uncredited_valid``;
- the same payment appealed by another user of that address: ``wrong_memo``, read like a tag of nobody's
  (credited to them only with accepted proof that they sent it; the first user's own appeal needs none);
- an XRP payment without a destination tag to a shared address: ``missing_memo``;
- an ATOM transfer whose memo maps to no user of the address: ``wrong_memo``.
Where the recordings lack such a transaction the case is left out (and the summary shows it).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from chains.base import Observation, TxStatus
from chains.registry import adapter_for
from chains.replay import ReplayServer
from recovery.config import Config


@dataclass(frozen=True)
class MemoRow:
    user_id: str
    network: str
    address: str
    memo: str


@dataclass(frozen=True)
class MemoAppeal:
    story: str
    user_id: str
    network: str
    asset: str
    tx_hash: str
    deposit_address: str
    memo: str | None
    amount: Decimal | None


@dataclass
class MemoWorld:
    rows: list[MemoRow]
    appeals: list[MemoAppeal]


def _observations(config: Config, network: str, hashes: list[str]) -> list[Observation]:
    if not hashes:
        return []
    adapter = adapter_for(config.network(network))
    found = adapter.lookup_many(hashes)
    return [o for o in found.values() if o.status is TxStatus.SUCCESS and o.transfers]


def _pick(observations: list[Observation], test: Callable[[Observation], bool]) -> Observation | None:
    return next((o for o in sorted(observations, key=lambda o: o.tx_hash) if test(o)), None)


def _native(config: Config, network: str, obs: Observation) -> tuple[str, Decimal] | None:
    transfer = next((t for t in obs.transfers if t.contract is None), None)
    if transfer is None:
        return None
    asset = config.native_asset(network)
    amount = asset.from_base_units(transfer.amount)
    return (transfer.recipient, amount) if amount >= asset.min_deposit else None


def build(config: Config, server: ReplayServer) -> MemoWorld:
    world = MemoWorld([], [])
    xrpl_handler: Any = server.handlers.get("xrpl")
    xrpl = _observations(config, "xrpl", sorted(getattr(xrpl_handler, "entries", {})))
    tagged = _pick(xrpl, lambda o: _native(config, "xrpl", o) is not None and o.transfers[0].memo is not None)
    if tagged is not None:
        native = _native(config, "xrpl", tagged)
        assert native is not None
        address, amount = native
        memo = str(tagged.transfers[0].memo)
        world.rows += [MemoRow("user-x001", "xrpl", address, memo), MemoRow("user-x002", "xrpl", address, "4242")]
        world.appeals += [
            MemoAppeal("XRP with the right tag", "user-x001", "xrpl", "XRP", tagged.tx_hash, address, memo, amount),
            MemoAppeal("XRP tagged for another user", "user-x002", "xrpl", "XRP", tagged.tx_hash, address, "4242",
                       amount),
        ]
    untagged = _pick(xrpl, lambda o: _native(config, "xrpl", o) is not None and o.transfers[0].memo is None)
    if untagged is not None:
        native = _native(config, "xrpl", untagged)
        assert native is not None
        address, amount = native
        world.rows += [MemoRow("user-x003", "xrpl", address, "5001"), MemoRow("user-x004", "xrpl", address, "5002")]
        world.appeals.append(
            MemoAppeal("XRP without a destination tag", "user-x003", "xrpl", "XRP", untagged.tx_hash, address, "5001",
                       amount)
        )
    cosmos_handler: Any = server.handlers.get("cosmos")
    atom = _observations(config, "cosmoshub", sorted(getattr(cosmos_handler, "txs", {})))
    with_memo = _pick(atom, lambda o: o.memo is not None and _native(config, "cosmoshub", o) is not None)
    if with_memo is not None:
        native = _native(config, "cosmoshub", with_memo)
        assert native is not None
        address, amount = native
        world.rows += [MemoRow("user-c001", "cosmoshub", address, "1111"),
                       MemoRow("user-c002", "cosmoshub", address, "2222")]
        world.appeals.append(
            MemoAppeal("ATOM with a memo nobody has", "user-c001", "cosmoshub", "ATOM", with_memo.tx_hash, address,
                       "1111", amount)
        )
    return world
