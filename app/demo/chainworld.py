"""The demo's EVM world: real transactions on local anvil chains that produce every EVM category.

Nothing here is faked: each appeal of the demo points at a transaction that was really sent and
mined on a local chain (chain ids 1, 56, 137, 42161), with block times spread over the simulated
weeks of the demo. The listed tokens work at their configured contract addresses; the unlisted
token, the counterfeit "USDT", the forwarding contract and the contract deposit wallets are
deployed for the demo.
"""

from __future__ import annotations

import random
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_utils.address import to_checksum_address
from web3 import Web3

from chains import devchain
from chains.devchain import DEV_ACCOUNTS
from chains.transport import JsonRpcError, Transport
from recovery.config import Config

#: the exchange's hot wallet (owns the test tokens) and the users' own wallets
HOT_WALLET = DEV_ACCOUNTS[0]
USER_WALLETS = DEV_ACCOUNTS[1:9]
#: a wallet that holds no tokens: its token transfers revert
EMPTY_WALLET = DEV_ACCOUNTS[9]

_FORWARD = Web3.keccak(text="forward(address)")[:4]
_TRANSFER = Web3.keccak(text="transfer(address,uint256)")[:4]


@dataclass(frozen=True, slots=True)
class TxSpec:
    """One transaction to send: native ``value``, or calldata ``data`` to ``to``."""

    network: str
    sender: str
    to: str
    value: int = 0
    data: str = "0x"
    gas: int = 21_000


@dataclass
class UserAccount:
    user_id: str
    address: str
    #: networks the deposit address was issued for
    issued: tuple[str, ...]
    kind: str = "eoa"


@dataclass
class DemoAppeal:
    """An appeal the demo will file, and the transaction it is about."""

    story: str
    user: UserAccount
    network: str
    asset: str
    day: int
    tx: TxSpec | None
    deposit_address: str
    amount: Decimal | None = None
    tx_hash: str | None = None
    credited: bool = False
    #: what the appeal team does with the case later
    plan: str = "work"
    #: a second appellant for the same transfer (contested)
    also_by: UserAccount | None = None


@dataclass
class ChainWorld:
    """The deployed contracts and the transactions sent, ready for the registry and the appeals."""

    urls: Mapping[str, str]
    tokens: dict[str, dict[str, str]] = field(default_factory=dict)
    unlisted: dict[str, str] = field(default_factory=dict)
    counterfeit: dict[str, str] = field(default_factory=dict)
    forwarders: dict[str, str] = field(default_factory=dict)
    users: list[UserAccount] = field(default_factory=list)
    appeals: list[DemoAppeal] = field(default_factory=list)


def fresh_address(rng: random.Random) -> str:
    return str(to_checksum_address("0x" + rng.randbytes(20).hex()))


def _call(selector: bytes, types: Sequence[str], values: Sequence[Any]) -> str:
    return "0x" + (selector + abi_encode(list(types), list(values))).hex()


def token_transfer(network: str, sender: str, token: str, to: str, amount: int, *, gas: int = 120_000) -> TxSpec:
    return TxSpec(network, sender, token, data=_call(_TRANSFER, ["address", "uint256"], [to, amount]), gas=gas)


def forward(network: str, sender: str, forwarder: str, to: str, value: int) -> TxSpec:
    return TxSpec(network, sender, forwarder, value=value, data=_call(_FORWARD, ["address"], [to]), gas=100_000)


def send_all(url: str, specs: Sequence[TxSpec], *, at: datetime | None = None) -> list[str]:
    """Send ``specs`` in one batch with explicit nonces and mine them (blocks start at ``at``)."""
    if not specs:
        return []
    transport = devchain.rpc(url)
    if at is not None:
        transport.call("evm_setNextBlockTimestamp", [int(at.timestamp())])
    senders = sorted({to_checksum_address(s.sender) for s in specs})
    replies = transport.batch([("eth_getTransactionCount", [s, "pending"]) for s in senders])
    nonces = {s: int(n, 16) for s, n in zip(senders, replies, strict=True)}
    calls = []
    for spec in specs:
        sender = to_checksum_address(spec.sender)
        tx = {"from": sender, "to": to_checksum_address(spec.to), "value": hex(spec.value), "data": spec.data,
              "gas": hex(spec.gas), "gasPrice": hex(100 * 10**9), "nonce": hex(nonces[sender])}
        nonces[sender] += 1
        calls.append(("eth_sendTransaction", [tx]))
    hashes: list[str] = []
    with devchain.automine_off(transport):
        for reply in transport.batch(calls):
            if isinstance(reply, JsonRpcError):
                raise devchain.DevchainError(f"eth_sendTransaction failed: {reply.message}")
            hashes.append(str(reply))
        devchain.mine_until_empty(transport)
    return hashes


def prepare_contracts(world: ChainWorld, config: Config) -> None:
    """Listed tokens at their configured addresses with balances for every wallet, and per chain:
    an unlisted token (PEPE), a counterfeit "USDT" and a forwarding contract."""
    for network, url in world.urls.items():
        world.tokens[network] = devchain.install_listed_tokens(url, config, network)
        for address in world.tokens[network].values():
            for holder in (HOT_WALLET, *USER_WALLETS):
                devchain.mint(url, address, holder, 10**30)
        w3 = devchain.web3_for(url)
        world.unlisted[network] = devchain.deploy(w3, "TestToken", "Pepe", "PEPE", 18, USER_WALLETS[0], 10**30)
        world.counterfeit[network] = devchain.deploy(w3, "TestToken", "Tether USD", "USDT", 6, USER_WALLETS[1], 10**30)
        world.forwarders[network] = devchain.deploy(w3, "Forwarder", HOT_WALLET)


def impersonate(url: str, address: str) -> None:
    """Let the demo send from a deposit address we hold (as the exchange's signer would)."""
    transport: Transport = devchain.rpc(url)
    transport.call("anvil_impersonateAccount", [to_checksum_address(address)])
    transport.call("anvil_setBalance", [to_checksum_address(address), hex(10**18)])


def random_hash() -> str:
    return "0x" + secrets.token_hex(32)


def utc_day(start: datetime, day: int, rng: random.Random) -> datetime:
    return start + timedelta(days=day, hours=rng.randint(1, 20), minutes=rng.randint(0, 59))
