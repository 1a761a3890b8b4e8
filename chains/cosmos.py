"""The Cosmos SDK chain adapter (LCD / REST gateway of a Cosmos SDK node: Cosmos Hub and others).

- ``GET /cosmos/tx/v1beta1/txs/{hash}``: ``tx`` (messages, memo, fee) and ``tx_response``
  (``height``, ``code``, ``timestamp``, ``events``). An unknown hash is a 404 whose gRPC-gateway
  body carries code 5 (NotFound): ``not_found``.
- ``GET /cosmos/base/tendermint/v1beta1/blocks/latest``: the head, for confirmations.
- ``incoming``: ``GET /cosmos/tx/v1beta1/txs?query=transfer.recipient='<address>' AND
  tx.height>=<since> ...`` (SDK 0.50; ``search_param = "events"`` for older nodes, which take
  repeated ``events=`` conditions instead).

Transfers come from the messages: ``MsgSend`` (one transfer per coin), ``MsgMultiSend`` (one per
output coin) and those inside an authz ``MsgExec``. The network's own denomination (``denom``,
default ``u`` + the native asset in lower case, e.g. ``uatom``) is the native coin; any other denom
(``ibc/<hash>`` IBC vouchers, factory tokens, ...) is a token whose ``contract`` is the denom.
Other message types (IBC ``MsgTransfer``, staking, governance, ...) move nothing to a recipient on
this chain and are only listed in ``details["messages"]``. A transaction with ``code`` != 0 failed:
``failed``, with what it attempted in ``details["attempted"]``.

Network keys: ``bech32_prefix`` (default ``cosmos``), ``denom``, ``search_param`` (``query`` or
``events``), ``lookup_concurrency`` (default 4), plus the transport's timeouts and retry keys.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Final, TypeVar

import requests

from chains import addresses
from chains.base import (
    AssetKind,
    ChainUnavailable,
    InvalidChainInput,
    Observation,
    Transfer,
    TxStatus,
)
from chains.network import Network
from chains.transport import TransportOptions, UnusableAnswer, positive_option
from chains.tron import RestTransport

__all__ = ["MSG_EXEC", "MSG_MULTI_SEND", "MSG_SEND", "Coin", "CosmosAdapter", "decode_transfers"]

_T = TypeVar("_T")
_R = TypeVar("_R")

MSG_SEND: Final = "/cosmos.bank.v1beta1.MsgSend"
MSG_MULTI_SEND: Final = "/cosmos.bank.v1beta1.MsgMultiSend"
MSG_EXEC: Final = "/cosmos.authz.v1beta1.MsgExec"
_TX_PATH: Final = "/cosmos/tx/v1beta1/txs"
_LATEST: Final = "/cosmos/base/tendermint/v1beta1/blocks/latest"
_PAGE: Final = 100
_MAX_PAGES: Final = 10_000
_SIGNER_KEYS: Final = ("from_address", "sender", "delegator_address", "grantee", "signer", "authority")


class _Malformed(UnusableAnswer):
    """An answer that is not what an LCD sends: fail over to the next URL."""


@dataclass(frozen=True, slots=True)
class Coin:
    denom: str
    amount: int


@dataclass(frozen=True, slots=True)
class _Move:
    sender: str
    recipient: str
    coin: Coin
    message: int


def _coins(value: Any) -> list[Coin]:
    out = []
    for item in value or ():
        amount = str(item["amount"])
        if not amount.isdigit():
            raise ValueError(f"coin amount {amount!r} is not an integer")
        out.append(Coin(str(item["denom"]), int(amount)))
    return out


def _moves(messages: Iterable[Mapping[str, Any]], position: int | None = None) -> Iterable[_Move]:
    for index, message in enumerate(messages):
        at = index if position is None else position
        kind = message.get("@type")
        if kind == MSG_SEND:
            for coin in _coins(message.get("amount")):
                yield _Move(str(message["from_address"]), str(message["to_address"]), coin, at)
        elif kind == MSG_MULTI_SEND:
            inputs = message.get("inputs") or []
            sender = str(inputs[0]["address"]) if len(inputs) == 1 else ",".join(str(i["address"]) for i in inputs)
            for output in message.get("outputs") or ():
                for coin in _coins(output.get("coins")):
                    yield _Move(sender, str(output["address"]), coin, at)
        elif kind == MSG_EXEC:
            yield from _moves(message.get("msgs") or (), at)


def decode_transfers(messages: Sequence[Mapping[str, Any]], native_denom: str) -> list[Transfer]:
    """The value that ``messages`` move to recipients on this chain, in message order (``index``
    counts transfers; ``details`` of an observation say which message each came from)."""
    out = []
    for position, move in enumerate(_moves(messages)):
        native = move.coin.denom == native_denom
        out.append(
            Transfer(
                AssetKind.NATIVE if native else AssetKind.TOKEN,
                move.sender,
                move.recipient,
                move.coin.amount,
                index=position,
                contract=None if native else move.coin.denom,
            )
        )
    return out


class CosmosAdapter:
    """Chain adapter for one Cosmos SDK network. Thread-safe."""

    family: Final = "cosmos"

    def __init__(self, network: Network, *, transport: RestTransport | None = None) -> None:
        if network.family != "cosmos":
            raise ValueError(f"network {network.name} is a {network.family} network, not cosmos")
        self.network = network
        extra = network.model_extra or {}
        self.hrp = str(extra.get("bech32_prefix", "cosmos"))
        self.denom = str(extra.get("denom", "u" + network.native_asset.lower()))
        search = extra.get("search_param", "query")
        if search not in ("query", "events"):
            raise ValueError(f"network {network.name}: search_param must be 'query' or 'events'")
        self.search_param = str(search)
        self.concurrency = positive_option(extra, "lookup_concurrency", 4, network.name)
        self.features: frozenset[str] = frozenset()
        self.transport = transport or RestTransport(
            network.name, network.rpc_urls, TransportOptions.from_network(network)
        )

    def __repr__(self) -> str:
        return f"CosmosAdapter({self.network.name!r}, hrp={self.hrp!r}, denom={self.denom!r})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        return addresses.normalize_address("cosmos", address, hrp=self.hrp)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("cosmos", address, hrp=self.hrp)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("cosmos", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("cosmos", tx_hash)

    # ----------------------------------------------------------------- lookups

    def head(self, at_least: int = 0) -> int:
        """The latest block height. A node below ``at_least`` is behind: fail over."""

        def check(body: Any) -> None:
            height = _head_height(body)
            if height < at_least:
                raise _Malformed(f"node is behind: latest block {height} < {at_least}")

        return _head_height(self.transport.get_json(_LATEST, validate=check))

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in; every hash is validated first."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        bodies = _map(self._fetch, unique, self.concurrency)
        heights = [_height(b["tx_response"]) for b in bodies if b is not None]
        head = self.head(max(heights)) if heights else None
        observations = {
            h: self._observation(h, body, head)
            if body is not None
            else Observation(network=self.network.name, tx_hash=h, status=TxStatus.NOT_FOUND)
            for h, body in zip(unique, bodies, strict=True)
        }
        return {given: observations[norm] for given, norm in normalized.items()}

    def _fetch(self, tx_hash: str) -> Mapping[str, Any] | None:
        def check(body: Any) -> None:
            if body is None:
                _check_not_found(self.transport.last_response())
                return
            _check_tx(body)
            if str(body["tx_response"]["txhash"]).upper() != tx_hash:
                raise _Malformed(f"answer is about {body['tx_response']['txhash']!r}, not {tx_hash}")

        body: Mapping[str, Any] | None = self.transport.get_json(
            f"{_TX_PATH}/{tx_hash}", not_found=(404,), validate=check
        )
        return body

    def _observation(self, tx_hash: str, body: Mapping[str, Any], head: int | None) -> Observation:
        try:
            return self._decode(tx_hash, body, head)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {tx_hash}: {exc}") from exc

    def _decode(self, tx_hash: str, body: Mapping[str, Any], head: int | None) -> Observation:
        response = body["tx_response"]
        tx = body.get("tx") or response["tx"]
        tx_body = tx["body"]
        messages = list(tx_body.get("messages") or [])
        height = _height(response)
        code = int(response.get("code") or 0)
        moves = decode_transfers(messages, self.denom)
        sender = next((str(m[k]) for m in messages for k in _SIGNER_KEYS if isinstance(m.get(k), str)), None)
        details: dict[str, Any] = {
            "messages": [str(m.get("@type")) for m in messages],
            "gas_wanted": response.get("gas_wanted"),
            "gas_used": response.get("gas_used"),
        }
        ibc = sorted({t.contract for t in moves if t.contract and t.contract.startswith("ibc/")})
        if ibc:
            details["ibc_denoms"] = ibc
        fee_coins = _coins(((tx.get("auth_info") or {}).get("fee") or {}).get("amount"))
        other_fees = [f"{c.amount}{c.denom}" for c in fee_coins if c.denom != self.denom]
        if other_fees:
            details["fee_other_denoms"] = other_fees
        if code != 0:
            status = TxStatus.FAILED
            details.update(code=code, codespace=response.get("codespace") or "", raw_log=response.get("raw_log") or "")
            details["attempted"] = [t.to_json() for t in moves]
            transfers: tuple[Transfer, ...] = ()
        else:
            status = TxStatus.SUCCESS
            transfers = tuple(moves)
        timestamp = response.get("timestamp")
        return Observation(
            network=self.network.name,
            tx_hash=tx_hash,
            status=status,
            block_number=height,
            confirmations=max(0, head - height + 1) if head is not None else 0,
            timestamp=datetime.fromisoformat(str(timestamp)) if timestamp else None,
            sender=sender,
            transfers=transfers,
            memo=str(tx_body.get("memo") or "") or None,
            fee=sum(c.amount for c in fee_coins if c.denom == self.denom),
            details=details,
        )

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions with a transfer to ``address`` in blocks ``since..until`` (inclusive;
        ``until`` defaults to the latest block), oldest first, through the node's tx search on
        ``transfer.recipient``."""
        target = self.normalize_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a block height (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a block height >= since ({since})")
        conditions = [f"transfer.recipient='{target}'", f"tx.height>={since}"]
        if until is not None:
            conditions.append(f"tx.height<={until}")
        base: dict[str, Any] = {"limit": _PAGE, "order_by": "ORDER_BY_ASC"}
        if self.search_param == "query":
            base["query"] = " AND ".join(conditions)
        else:
            base["events"] = conditions
        bodies: list[Mapping[str, Any]] = []
        for page in range(1, _MAX_PAGES):
            answer = self.transport.get_json(_TX_PATH, {**base, "page": page}, validate=_check_search)
            responses = answer["tx_responses"]
            txs = answer.get("txs") or [None] * len(responses)
            bodies.extend({"tx": tx or r["tx"], "tx_response": r} for tx, r in zip(txs, responses, strict=True))
            total = int(answer.get("total") or (answer.get("pagination") or {}).get("total") or 0)
            if not responses or len(bodies) >= total:
                break
        else:
            raise ChainUnavailable(self.network.name, f"{target}: too many search pages")
        if not bodies:
            return []
        head = self.head(max(_height(b["tx_response"]) for b in bodies))
        found = {}
        for body in bodies:
            tx_hash = str(body["tx_response"]["txhash"]).upper()
            obs = self._observation(tx_hash, body, head)
            last = until if until is not None else obs.block_number
            in_range = obs.block_number is not None and last is not None and since <= obs.block_number <= last
            if in_range and any(t.recipient == target for t in obs.transfers):
                found[tx_hash] = obs
        return sorted(found.values(), key=lambda o: (o.block_number or 0, o.tx_hash))


# --------------------------------------------------------------------------------------------------
# helpers


def _check_tx(body: Any) -> None:
    if not isinstance(body, Mapping) or not isinstance(body.get("tx_response"), Mapping):
        raise _Malformed(f"not a GetTx answer: {str(body)[:160]}")
    response = body["tx_response"]
    if not isinstance(response.get("txhash"), str):
        raise _Malformed("tx_response without a txhash")
    tx = body.get("tx") or response.get("tx")
    if not isinstance(tx, Mapping) or not isinstance(tx.get("body"), Mapping):
        raise _Malformed("answer without the transaction body")
    try:
        _height(response)
    except (KeyError, ValueError) as exc:
        raise _Malformed(f"tx_response without a valid height: {exc}") from exc


def _check_not_found(response: requests.Response | None) -> None:
    """A 404 counts as "no such transaction" only with the gateway's NotFound body (gRPC code 5)."""
    try:
        body = response.json() if response is not None else None
    except ValueError:
        body = None
    if not isinstance(body, Mapping) or body.get("code") != 5:
        text = response.text[:160] if response is not None else ""
        raise _Malformed(f"HTTP 404 without the gRPC NotFound body (code 5): {text!r}")


def _check_search(body: Any) -> None:
    if not isinstance(body, Mapping) or not isinstance(body.get("tx_responses"), list):
        raise _Malformed(f"not a GetTxsEvent answer: {str(body)[:160]}")
    txs = body.get("txs")
    if txs is not None and (not isinstance(txs, list) or len(txs) != len(body["tx_responses"])):
        raise _Malformed("txs and tx_responses do not pair up")
    for position, response in enumerate(body["tx_responses"]):
        tx = txs[position] if txs is not None and txs[position] is not None else None
        _check_tx({"tx_response": response, "tx": tx})


def _height(response: Mapping[str, Any]) -> int:
    value = str(response["height"])
    if not value.isdigit():
        raise ValueError(f"height {value!r} is not a number")
    return int(value)


def _head_height(body: Any) -> int:
    try:
        block = body.get("sdk_block") or body["block"]
        value = str(block["header"]["height"])
    except (AttributeError, KeyError, TypeError) as exc:
        raise _Malformed(f"not a block: {str(body)[:160]}") from exc
    if not value.isdigit():
        raise _Malformed(f"block height {value!r} is not a number")
    return int(value)


def _map(func: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))
