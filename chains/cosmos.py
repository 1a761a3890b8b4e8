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
An outgoing IBC ``MsgTransfer`` moves nothing to a recipient on this chain (the coins are escrowed
or burned); it is listed in ``details["messages"]`` and its events are checked against its token.
A transaction with ``tx_response.code`` != 0 failed (documented: it is in a block and the fee is
charged, nothing else happened): ``failed``, with what it attempted in ``details["attempted"]``.

Never guess: a successful answer is ``unclear`` (:func:`chains.base.unclear`; a person decides,
nothing is credited automatically) when ``tx_response.code`` is missing or not a number, when its
``transfer`` events and its messages disagree (SDK 0.50 events carry ``msg_index``: each bank
send's events must pay exactly its recipients and coins), or when a message of a type the adapter
does not read (staking, IBC ``MsgRecvPacket``, CosmWasm, ...) moved coins according to its events,
or the answer has no events (or no ``msg_index``) to show it did not. The adapter cannot tell at
lookup which address is ours, so any such unread movement makes the whole transaction unclear.
An answer that contradicts itself (``tx`` differs from ``tx_response.tx``, another ``txhash``,
addresses that are not of the network's prefix, coins that are not coins) is unusable: "try later".
See :func:`decode_tx`.

Network keys: ``bech32_prefix`` (default ``cosmos``), ``denom``, ``search_param`` (``query`` or
``events``), ``lookup_concurrency`` (default 4), plus the transport's timeouts and retry keys.
"""

from __future__ import annotations

import base64
import re
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
    unclear,
)
from chains.network import Network
from chains.transport import TransportOptions, UnusableAnswer, positive_option
from chains.tron import RestTransport

__all__ = [
    "MSG_EXEC",
    "MSG_IBC_TRANSFER",
    "MSG_MULTI_SEND",
    "MSG_SEND",
    "Coin",
    "CosmosAdapter",
    "decode_transfers",
    "decode_tx",
]

_T = TypeVar("_T")
_R = TypeVar("_R")

MSG_SEND: Final = "/cosmos.bank.v1beta1.MsgSend"
MSG_MULTI_SEND: Final = "/cosmos.bank.v1beta1.MsgMultiSend"
MSG_EXEC: Final = "/cosmos.authz.v1beta1.MsgExec"
MSG_IBC_TRANSFER: Final = "/ibc.applications.transfer.v1.MsgTransfer"
#: the attribute keys of a bank ``transfer`` event (and SDK 0.50's ``msg_index``)
_EVENT_KEYS: Final = frozenset({"recipient", "sender", "amount", "msg_index"})
_DENOM: Final = re.compile(r"[a-zA-Z][a-zA-Z0-9/:._-]{2,127}")  # the SDK's denom rule
_COIN: Final = re.compile(r"([0-9]+)([a-zA-Z][a-zA-Z0-9/:._-]{2,127})")
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
    """``sdk.Coins`` in proto JSON: ``[{"denom": str, "amount": "<digits>"}]`` (amounts are strings)."""
    out = []
    for item in value or ():
        amount, denom = item["amount"], item["denom"]
        if not isinstance(amount, str) or not amount.isdigit():
            raise ValueError(f"coin amount {amount!r:.40} is not an integer string")
        if not isinstance(denom, str) or not _DENOM.fullmatch(denom):
            raise ValueError(f"coin denom {denom!r:.40} is not a denomination")
        out.append(Coin(denom, int(amount)))
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


def decode_tx(
    network: str, tx_hash: str, body: Mapping[str, Any], head: int | None, *, denom: str, hrp: str
) -> Observation:
    """The observation of one ``GetTx`` answer (``tx`` + ``tx_response``; ``head`` is the latest
    block height, None: unknown). ``denom`` is the native coin's denomination, ``hrp`` the bech32
    prefix of the network's addresses.

    Raises ``ValueError``/``KeyError``/``TypeError`` or :class:`_Malformed` for an answer that is
    not what an LCD sends (the adapter makes those "try later"); returns ``unclear`` (see the
    module docstring) where the answer is well formed but cannot be read with certainty."""
    response = body["tx_response"]
    if str(response["txhash"]).upper() != tx_hash.upper():
        raise _Malformed(f"answer is about {response['txhash']!r:.80}, not {tx_hash}")
    tx = body.get("tx") or response["tx"]
    inner = response.get("tx")
    if body.get("tx") and isinstance(inner, Mapping) and {k: v for k, v in inner.items() if k != "@type"} != tx:
        raise _Malformed("tx and tx_response.tx are not the same transaction")
    tx_body = tx["body"]
    messages = tx_body.get("messages") or []
    if not isinstance(messages, list) or not all(isinstance(m, Mapping) for m in messages):
        raise _Malformed("tx.body.messages is not a list of messages")
    height = _height(response)
    doubts: list[str] = []
    code = response.get("code")
    if "code" not in response:
        doubts.append("tx_response.code is missing: the answer does not say whether the transaction succeeded.")
        code = 0
    elif isinstance(code, bool) or not isinstance(code, int) or code < 0:
        doubts.append(f"tx_response.code is {code!r:.40}, not a result code.")
        code = 0
    moves = decode_transfers(messages, denom)
    for move in moves:
        for who in (move.recipient, *move.sender.split(",")):
            if not addresses.is_address("cosmos", who, hrp=hrp):
                raise _Malformed(f"message address {who!r:.60} is not a {hrp} address")
    sender = next((str(m[k]) for m in messages for k in _SIGNER_KEYS if isinstance(m.get(k), str)), None)
    kinds = [str(m.get("@type")) for m in messages]
    details: dict[str, Any] = {
        "messages": kinds,
        "gas_wanted": response.get("gas_wanted"),
        "gas_used": response.get("gas_used"),
    }
    ibc = sorted({t.contract for t in moves if t.contract and t.contract.startswith("ibc/")})
    if ibc:
        details["ibc_denoms"] = ibc
    fee_coins = _coins(((tx.get("auth_info") or {}).get("fee") or {}).get("amount"))
    other_fees = [f"{c.amount}{c.denom}" for c in fee_coins if c.denom != denom]
    if other_fees:
        details["fee_other_denoms"] = other_fees
    transfers: tuple[Transfer, ...]
    if code != 0:
        status = TxStatus.FAILED
        details.update(code=code, codespace=response.get("codespace") or "", raw_log=response.get("raw_log") or "")
        details["attempted"] = [t.to_json() for t in moves]
        transfers = ()
    else:
        status = TxStatus.SUCCESS
        transfers = tuple(moves)
        doubts.extend(_disagreements(messages, response.get("events"), denom))
    timestamp = response.get("timestamp")
    memo = tx_body.get("memo")
    if memo is not None and not isinstance(memo, str):
        raise _Malformed(f"tx.body.memo is {memo!r:.40}, not a text")
    observation = Observation(
        network=network,
        tx_hash=tx_hash.upper(),
        status=status,
        block_number=height,
        confirmations=max(0, head - height + 1) if head is not None else 0,
        timestamp=datetime.fromisoformat(str(timestamp)) if timestamp else None,
        sender=sender,
        transfers=transfers,
        memo=memo or None,
        fee=sum(c.amount for c in fee_coins if c.denom == denom),
        details=details,
    )
    if doubts and status is TxStatus.SUCCESS:
        return unclear(observation, doubts, dict(body))
    return observation


def _kind(message: Mapping[str, Any]) -> str:
    """``read`` (bank sends, also inside authz ``MsgExec``), ``ibc`` (an outgoing ICS-20
    ``MsgTransfer``) or ``unknown``."""
    kind = message.get("@type")
    if kind in (MSG_SEND, MSG_MULTI_SEND):
        return "read"
    if kind == MSG_IBC_TRANSFER:
        return "ibc"
    if kind == MSG_EXEC:
        inner = message.get("msgs") or []
        if isinstance(inner, list) and all(isinstance(m, Mapping) and _kind(m) == "read" for m in inner):
            return "read"
    return "unknown"


def _attributes(event: Mapping[str, Any]) -> dict[str, str]:
    """An event's attributes (the first value of each key). Tendermint 0.34 nodes (SDK < 0.46)
    send keys and values in base64: those are decoded when no key is readable as it is."""
    pairs = [(a.get("key"), a.get("value")) for a in event.get("attributes") or [] if isinstance(a, Mapping)]
    out: dict[str, str] = {}
    for key, value in pairs:
        if isinstance(key, str) and key not in out:
            out[key] = value if isinstance(value, str) else ""
    if out and not set(out) & _EVENT_KEYS:
        decoded: dict[str, str] = {}
        try:
            for key, value in out.items():
                decoded.setdefault(
                    base64.b64decode(key, validate=True).decode(), base64.b64decode(value, validate=True).decode()
                )
        except (ValueError, UnicodeDecodeError):
            return out
        return decoded
    return out


def _event_coins(text: str) -> list[Coin]:
    """``sdk.Coins`` as an event prints them: ``123uatom,5ibc/ABC...``; empty: no coins."""
    out = []
    for piece in filter(None, text.split(",")):
        match = _COIN.fullmatch(piece.strip())
        if match is None:
            raise _Malformed(f"event amount {piece!r:.60} is not a coin")
        out.append(Coin(match.group(2), int(match.group(1))))
    return out


def _disagreements(messages: Sequence[Mapping[str, Any]], events: object, denom: str) -> list[str]:
    """Reasons the ``transfer`` events of a successful transaction and its messages do not tell
    the same story (empty: they agree, or the answer has no events to compare).

    SDK 0.50 tags each event of message ``i`` with ``msg_index``; the ante handler's fee and tip
    transfers carry none and are left out. Per message: a bank send's transfer events must pay
    exactly the recipients and coins of the message; an IBC ``MsgTransfer``'s must all come from
    its sender and add up to its token (it escrows or burns them: nothing is paid on this chain);
    a message of any other type must move no coin (a transfer event means it paid someone, and
    the adapter does not read it). Without ``msg_index`` (older SDKs) every coin a message says it
    paid must be in a transfer event, and a message of another type cannot be told apart from the
    fee transfers: unclear."""
    if events is None or events == []:
        unread = [f"{i}: {m.get('@type')!s:.80}" for i, m in enumerate(messages) if _kind(m) == "unknown"]
        if unread:
            return [
                f"Message(s) {', '.join(unread)} are of a type the adapter does not read, and the answer "
                "has no events to show whether they moved coins."
            ]
        return []
    if not isinstance(events, list) or not all(isinstance(e, Mapping) for e in events):
        raise _Malformed("tx_response.events is not a list of events")
    paid: dict[int | None, dict[tuple[str, str], int]] = {}
    senders: dict[int | None, set[str]] = {}
    for event in events:
        if event.get("type") != "transfer":
            continue
        attributes = _attributes(event)
        if "recipient" not in attributes or "amount" not in attributes:
            raise _Malformed(f"transfer event without recipient or amount: {event!r:.120}")
        raw_index = attributes.get("msg_index")
        if raw_index is not None and not raw_index.isdigit():
            raise _Malformed(f"event msg_index {raw_index!r:.20} is not a number")
        index = int(raw_index) if raw_index is not None else None
        bucket = paid.setdefault(index, {})
        for coin in _event_coins(attributes["amount"]):
            key = (attributes["recipient"], coin.denom)
            bucket[key] = bucket.get(key, 0) + coin.amount
        if "sender" in attributes:
            senders.setdefault(index, set()).add(attributes["sender"])
    reasons: list[str] = []
    tagged = any(index is not None for index in paid) or any(
        "msg_index" in _attributes(e) for e in events if isinstance(e, Mapping)
    )
    for position, message in enumerate(messages):
        kind, name = _kind(message), str(message.get("@type"))
        said: dict[tuple[str, str], int] = {}
        for t in decode_transfers([message], denom) if kind == "read" else ():
            key = (t.recipient, t.contract or denom)
            said[key] = said.get(key, 0) + t.amount
        if not tagged:
            everything = paid.get(None, {})
            short = {k: v for k, v in said.items() if everything.get(k, 0) < v}
            if short:
                reasons.append(f"Message {position} ({name}) pays {short}, which no transfer event shows.")
            if kind == "unknown":
                reasons.append(
                    f"Message {position} is {name:.80}, a type the adapter does not read, and the events carry no "
                    "msg_index to show whether it moved coins."
                )
            continue
        shown = paid.get(position, {})
        if kind == "read" and shown != said:
            reasons.append(
                f"Message {position} ({name}) pays {said}, but its transfer events (msg_index {position}) show {shown}."
            )
        elif kind == "ibc":
            token = message.get("token")
            token_coins = _coins([token]) if isinstance(token, Mapping) else []
            sent: dict[str, int] = {}
            for (_, coin_denom), amount in shown.items():
                sent[coin_denom] = sent.get(coin_denom, 0) + amount
            wanted = {c.denom: c.amount for c in token_coins}
            if sent != wanted or not senders.get(position, set()) <= {str(message.get("sender"))}:
                reasons.append(
                    f"Message {position} (IBC MsgTransfer of {wanted}) has transfer events {shown} from "
                    f"{sorted(senders.get(position, set()))}: not what the message says."
                )
        elif kind == "unknown" and shown:
            reasons.append(
                f"Message {position} is {name:.80}, a type the adapter does not read, and its events show it paid "
                f"{shown}."
            )
    extra = sorted(i for i in paid if i is not None and not 0 <= i < len(messages))
    if extra:
        reasons.append(f"Transfer events carry msg_index {extra}, but the transaction has {len(messages)} message(s).")
    return reasons


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
            return decode_tx(self.network.name, tx_hash, body, head, denom=self.denom, hrp=self.hrp)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError, UnusableAnswer) as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {tx_hash}: {exc}") from exc

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions with a transfer to ``address`` in blocks ``since..until`` (inclusive;
        ``until`` defaults to the latest block), oldest first, through the node's tx search on
        ``transfer.recipient`` (``page``/``limit`` pages of 100 until ``total``). A matched
        transaction the adapter cannot read with certainty (``unclear``) is returned too: the
        node says coins reached the address, a person decides what they were."""
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
            if in_range and (any(t.recipient == target for t in obs.transfers) or obs.status is TxStatus.UNCLEAR):
                # the search matched a transfer event to the address: an unclear one goes to a person
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
