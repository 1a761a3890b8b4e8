"""``recovery refunds``: the hand-off between the appeal team, which approves refunds, and the
treasury or wallet system, which pays them.

``refunds list`` names every approved refund waiting to be paid with its exact payout and, on EVM
networks, an unsigned EIP-1559 transaction built with web3.py from the node's current state (the
from-address's pending nonce, then successive nonces for several refunds from one address;
``eth_estimateGas``; fees from the latest base fee and ``eth_maxPriorityFeePerGas``, else
``eth_feeHistory``), ready for an offline signer. Where the from-address lacks the native coin
for gas (and value), the entry says how much it needs first. A node that cannot answer leaves its
entries with the error (never a made-up nonce) and the command exits 1 after listing.

``refunds record REF TX_HASH --as NAME`` records the transaction that paid it; the re-check proves
it on chain before the case is ``refunded``.

web3 is imported only when an EVM transaction is actually built (``tests/test_startup.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import TYPE_CHECKING, Annotated, Any

import typer

from app.cli_console import group
from app.cli_operator import (
    AsOption,
    JsonOption,
    err,
    operator_context,
    out,
    print_json,
    service_refusal,
    sign_in,
    usage,
)

if TYPE_CHECKING:
    from rich.table import Table
    from web3 import Web3

    from recovery.config import Config, Network
    from recovery.models import Case, Payout

refunds_app = group("The refund hand-off: approved refunds to pay, and the transactions that paid them.")

#: ERC-20 ``transfer(address,uint256)``
ERC20_TRANSFER_ABI: list[dict[str, Any]] = [{
    "type": "function", "name": "transfer", "stateMutability": "nonpayable",
    "inputs": [{"name": "to", "type": "address"}, {"name": "amount", "type": "uint256"}],
    "outputs": [{"name": "", "type": "bool"}],
}]
#: headroom on a contract call's gas estimate (a plain transfer's 21,000 is exact)
GAS_HEADROOM = Decimal("1.2")
PLAIN_TRANSFER_GAS = 21_000
NODE_TIMEOUT_SECONDS = 10


def entry_of(case: Case, payout: Payout) -> dict[str, Any]:
    """One waiting refund, as the hand-off lists it (before any transaction is built)."""
    from recovery.dbtypes import decimal_text

    return {
        "reference": case.reference,
        "network": payout.network,
        "asset": payout.asset,
        "contract": payout.contract,
        "decimals": payout.decimals,
        "from_address": payout.from_address,
        "to_address": payout.to_address,
        "amount": decimal_text(payout.amount),
        "amount_units": str(int(payout.amount_units)),
        "memo": payout.memo,
        "payout_id": payout.id,
        "approved_by": payout.approved_by,
        "approved_at": payout.approved_at.isoformat(),
        "unsigned_tx": None,
        "needs_native": None,
        "error": None,
    }


def handoff(config: Config, waiting: Sequence[tuple[Case, Payout]]) -> list[dict[str, Any]]:
    """The entries of ``refunds list``: the approved payouts, with the unsigned transaction on EVM networks."""
    entries = [entry_of(case, payout) for case, payout in waiting]
    by_network: dict[str, list[dict[str, Any]]] = {}
    for entry in entries:
        by_network.setdefault(entry["network"], []).append(entry)
    for name, items in by_network.items():
        network = config.networks.get(name)
        if network is None:
            for entry in items:
                entry["error"] = f"network {name} is not in the configuration"
        elif network.family == "evm":
            EvmHandoff(config, network).build(items)
    return entries


def _node_errors() -> tuple[type[BaseException], ...]:
    from requests import RequestException
    from web3.exceptions import Web3Exception

    return RequestException, Web3Exception, ValueError, OSError, TimeoutError


def _say(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]


@dataclass
class _Sender:
    nonce: int
    balance: int
    spent: int = 0


class EvmHandoff:
    """Unsigned EIP-1559 transactions for the waiting refunds of one EVM network, from one node."""

    def __init__(self, config: Config, network: Network) -> None:
        self.config = config
        self.network = network
        native = config.native_asset(network.name)
        self.native_symbol, self.native_decimals = native.symbol, native.decimals

    def connect(self) -> tuple[Web3 | None, str]:
        """The first of the network's nodes that answers with the configured chain id, or why none did."""
        from web3 import Web3
        from web3.middleware import ExtraDataToPOAMiddleware

        problems = []
        for url in self.network.rpc_urls:
            w3 = Web3(Web3.HTTPProvider(url, request_kwargs={"timeout": NODE_TIMEOUT_SECONDS},
                                        exception_retry_configuration=None))
            if self.network.poa:
                w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
            try:
                chain_id = w3.eth.chain_id
            except _node_errors() as exc:
                problems.append(f"{url}: {_say(exc)}")
                continue
            if self.network.chain_id is not None and chain_id != self.network.chain_id:
                problems.append(f"{url} serves chain {chain_id}, not {self.network.chain_id}")
                continue
            return w3, ""
        return None, f"no node of {self.network.name} answered: " + "; ".join(problems)

    def build(self, entries: list[dict[str, Any]]) -> None:
        w3, problem = self.connect()
        if w3 is None:
            for entry in entries:
                entry["error"] = problem
            return
        try:
            base_fee, priority = self.fees(w3)
        except _node_errors() as exc:
            for entry in entries:
                entry["error"] = f"{self.network.name}: the node did not give the fees: {_say(exc)}"
            return
        max_fee = 2 * base_fee + priority
        senders: dict[str, _Sender] = {}
        for entry in entries:
            try:
                self.transaction(w3, entry, senders, max_fee, priority)
            except _node_errors() as exc:
                entry["error"] = f"{self.network.name}: {_say(exc)}"

    def fees(self, w3: Web3) -> tuple[int, int]:
        """(the latest block's base fee, the priority fee): ``eth_maxPriorityFeePerGas``, else the
        median reward of the last blocks (``eth_feeHistory``)."""
        block = w3.eth.get_block("latest")
        base_fee = block.get("baseFeePerGas")
        if base_fee is None:
            raise ValueError("the latest block has no base fee (the network does not take EIP-1559 transactions)")
        try:
            answer = w3.provider.make_request("eth_maxPriorityFeePerGas", [])  # type: ignore[arg-type]
            if "error" in answer or answer.get("result") is None:
                raise ValueError(str(answer.get("error")))
            priority = int(str(answer["result"]), 16)
        except _node_errors():
            history = w3.eth.fee_history(10, "latest", [50])
            rewards = sorted(int(r[0]) for r in history.get("reward") or [] if r)
            if not rewards:
                raise ValueError("neither eth_maxPriorityFeePerGas nor eth_feeHistory gave a priority fee") from None
            priority = rewards[len(rewards) // 2]
        return int(base_fee), priority

    def transaction(self, w3: Web3, entry: dict[str, Any], senders: dict[str, _Sender], max_fee: int,
                    priority: int) -> None:
        from eth_utils.address import to_checksum_address

        if not entry["from_address"] or not entry["to_address"]:
            entry["error"] = "the approved payout names no single from-address and to-address"
            return
        sender = to_checksum_address(entry["from_address"])
        recipient = to_checksum_address(entry["to_address"])
        units = int(entry["amount_units"])
        if entry["contract"]:
            to = to_checksum_address(entry["contract"])
            value = 0
            data = w3.eth.contract(abi=ERC20_TRANSFER_ABI).encode_abi("transfer", args=[recipient, units])
        else:
            to, value, data = recipient, units, "0x"
        state = senders.get(sender)
        if state is None:
            state = _Sender(nonce=w3.eth.get_transaction_count(sender, "pending"),
                            balance=w3.eth.get_balance(sender, "pending"))
            senders[sender] = state
        gas = self.estimate(w3, {"from": sender, "to": to, "value": value, "data": data})
        entry["unsigned_tx"] = {
            "type": "0x2",
            "chainId": hex(int(w3.eth.chain_id)),
            "nonce": hex(state.nonce),
            "to": to,
            "value": hex(value),
            "data": data,
            "gas": hex(gas),
            "maxFeePerGas": hex(max_fee),
            "maxPriorityFeePerGas": hex(priority),
        }
        state.nonce += 1
        short_before = max(0, state.spent - state.balance)
        state.spent += gas * max_fee + value
        needed = max(0, state.spent - state.balance) - short_before
        if needed > 0:
            entry["needs_native"] = {
                "asset": self.native_symbol,
                "amount": _units_text(needed, self.native_decimals),
                "amount_units": str(needed),
            }

    def estimate(self, w3: Web3, call: dict[str, Any]) -> int:
        """``eth_estimateGas`` without fee fields (the gas, not the sender's balance, is asked); a node
        that still refuses for the sender's balance is asked again with the balance overridden."""
        from web3.exceptions import Web3RPCError

        try:
            gas = int(w3.eth.estimate_gas(call, "pending"))  # type: ignore[arg-type]
        except Web3RPCError as exc:
            if "insufficient funds" not in str(exc).lower():
                raise
            override = {call["from"]: {"balance": hex(int(call["value"]) + 10**30)}}
            gas = int(w3.eth.estimate_gas(call, "pending", override))  # type: ignore[arg-type]
        if gas > PLAIN_TRANSFER_GAS:
            gas = int((Decimal(gas) * GAS_HEADROOM).to_integral_value(rounding="ROUND_CEILING"))
        return gas


def _decimal_text(value: Decimal) -> str:
    from recovery.dbtypes import decimal_text

    return decimal_text(value)


def _units_text(units: int, decimals: int) -> str:
    """Base units as an amount of the asset, exactly (``scaleb`` would round past 28 digits)."""
    from recovery.fees import units_to_amount

    return _decimal_text(units_to_amount(units, decimals))


def _table(entries: list[dict[str, Any]]) -> Table:
    from rich.table import Table

    table = Table(title=f"{len(entries)} approved refund(s) waiting to be paid (--json: the transactions)")
    table.add_column("reference", no_wrap=True)
    for column in ("network", "amount", "from", "to", "memo", "nonce", "needs first"):
        table.add_column(column, overflow="fold")
    for e in entries:
        tx = e["unsigned_tx"] or {}
        needs = e["needs_native"]
        table.add_row(
            e["reference"], e["network"], f"{e['amount']} {e['asset']}", e["from_address"] or "-",
            e["to_address"] or "-", e["memo"] or "-", str(int(tx["nonce"], 16)) if tx else "-",
            f"{needs['amount']} {needs['asset']}" if needs else "-",
        )
    return table


@refunds_app.command("list")
def refunds_list(
    network: Annotated[str | None, typer.Option(help="Only refunds on this network.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Approved refunds waiting to be paid, with an unsigned EIP-1559 transaction on EVM networks (exit 1
    when a node could not answer for some of them: those entries carry the error)."""
    with operator_context() as context:
        config = context.config
        if network is not None and network not in config.networks:
            raise usage(f"--network: unknown network {network!r} (known: {', '.join(sorted(config.networks))})")
        waiting = context.cases.payouts_waiting(kind="refund", network=network)
        entries = handoff(config, waiting)
    if as_json:
        print_json(entries)
    else:
        out.print(_table(entries))
    failed = [e for e in entries if e["error"]]
    for entry in failed:
        err.print(f"error: {entry['reference']}: {entry['error']}", markup=False)
    if failed:
        err.print(f"error: {len(failed)} refund(s) could not be prepared: {', '.join(e['reference'] for e in failed)}",
                  markup=False)
        raise typer.Exit(1)


@refunds_app.command("record")
def refunds_record(
    reference: Annotated[str, typer.Argument(metavar="REF", help="The case reference (RC-…).")],
    tx_hash: Annotated[str, typer.Argument(metavar="TX_HASH", help="The transaction that paid the refund.")],
    as_name: AsOption,
    as_json: JsonOption = False,
) -> None:
    """Record the transaction that paid an approved refund (never by its approver); the re-check proves
    it on chain before the case is refunded."""
    from recovery.errors import ServiceError
    from recovery.views import case_json

    with operator_context() as context:
        actor = sign_in(context, as_name)
        service = context.cases
        try:
            version = service.get(reference).case.version
            case = service.record_refund(reference, tx_hash, actor, expected_version=version)
        except ServiceError as exc:
            raise service_refusal(exc) from None
    if as_json:
        print_json({**case_json(case), "actor": actor.name, "actor_role": actor.role.value})
        return
    out.print(f"{reference}: refund {case.refund_tx_hash} recorded by {actor.name} ({actor.role.value}); now "
              f"{case.status}: the re-check proves it on chain", markup=False)


def register(app: typer.Typer) -> None:
    """Mount ``recovery refunds`` on the main CLI."""
    app.add_typer(refunds_app, name="refunds")
