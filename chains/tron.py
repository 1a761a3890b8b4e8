"""The TRON chain adapter (java-tron full-node HTTP API, as TronGrid and other providers serve it).

A lookup asks, for each hash, ``POST /wallet/gettransactionbyid`` (what the transaction does:
its contract, owner, memo) and ``POST /wallet/gettransactioninfobyid`` (what happened: block,
fee, result, event logs), plus ``POST /wallet/getnowblock`` once for confirmations.

- Both answer ``{}`` for a hash the node does not know: ``not_found``. A transaction whose body is
  known but whose info is still ``{}`` is not in a block yet: ``pending`` (its transfers are those
  the body describes). An info without a body (a node that pruned or has not indexed the body) is
  still decoded from the info alone.
- TRX (``TransferContract``) and TRC-10 (``TransferAssetContract``) transfers come from the body;
  TRC-20 transfers from the ``Transfer`` event logs of the info, and, where there is no log (a
  pending call, or a token that emits none), from ``transfer(address,uint256)`` /
  ``transferFrom(address,address,uint256)`` call data, whose address words may carry TRON's 0x41
  prefix byte in front of the 20 address bytes.
- A call that failed (``OUT_OF_ENERGY``, ``REVERT``, ...) is ``failed``, with what it attempted in
  ``details["attempted"]``.
- ``raw_data.data`` is the transaction's memo (hex of UTF-8 text).
- Addresses are returned as Base58Check ``T…``; contracts too (as the configuration lists them).
- TronGrid answers 503 (or 429) when it rate-limits: the transport fails over and finally raises
  :class:`~chains.base.ChainUnavailable`.

``incoming`` uses TronGrid's account history (``/v1/accounts/{address}/transactions`` and
``.../transactions/trc20``), which pages by time: ``since`` and ``until`` are unix times in seconds.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

import base58
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
from chains.transport import Transport, TransportOptions, UnusableAnswer, positive_option

__all__ = [
    "TRANSFER_TOPIC",
    "RestTransport",
    "TronAdapter",
    "decode_call_transfer",
    "decode_log_transfers",
    "decode_memo",
    "tron_address",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")
_R = TypeVar("_R")

#: keccak("Transfer(address,address,uint256)"), as TRON logs write it (no 0x)
TRANSFER_TOPIC: Final = "ddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_TRANSFER: Final = "a9059cbb"  # transfer(address,uint256)
_TRANSFER_FROM: Final = "23b872dd"  # transferFrom(address,address,uint256)
_HEX: Final = frozenset("0123456789abcdefABCDEF")
_OK_RESULTS: Final = frozenset({"SUCCESS", "DEFAULT", ""})
_PAGE_LIMIT: Final = 200


class _Malformed(UnusableAnswer):
    """An answer that is not what java-tron sends: fail over to the next URL."""


class RestTransport(Transport):
    """:class:`Transport` for REST families (TRON, Esplora, Cosmos LCD), with two additions:

    - :meth:`last_response`: the HTTP response this thread received last, so that a ``validate``
      hook can tell the API's real "not found" answer (whose body ``get_json(not_found=...)``
      drops) from any other 404, such as a wrong base URL or a proxy's error page.
    - Workaround: ``Transport.get_json``/``post_json`` report a failure under the joined URL
      (``<base>/<path>``), which ``Transport._mark_bad`` does not know (``KeyError`` instead of a
      failover); it is mapped back to its base URL here. Remove once ``chains/transport.py``
      raises its failures with the base URL.
    """

    def _session(self) -> requests.Session:
        session = super()._session()
        if not getattr(session, "_keeps_last_response", False):
            local = self._local

            def keep(response: requests.Response, *args: Any, **kwargs: Any) -> requests.Response:
                local.last_response = response
                return response

            session.hooks["response"].append(keep)
            session._keeps_last_response = True  # type: ignore[attr-defined]
        return session

    def last_response(self) -> requests.Response | None:
        """The last HTTP response received by the calling thread (None before any)."""
        response: requests.Response | None = getattr(self._local, "last_response", None)
        return response

    def _mark_bad(self, failure: Exception) -> None:
        url = getattr(failure, "url", None)
        if isinstance(url, str) and url not in self.urls:
            bases = [u for u in self.urls if url.startswith(u.rstrip("/") + "/") or url == u.rstrip("/")]
            if bases:
                failure.url = max(bases, key=len)  # type: ignore[attr-defined]
        super()._mark_bad(failure)  # type: ignore[arg-type]


def tron_address(value: object) -> str | None:
    """``T…`` for an address as TRON APIs write it: ``41``+40 hex, 40 hex (logs), or ``T…`` already."""
    if not isinstance(value, str) or not value:
        return None
    text = value[2:] if value[:2] in ("0x", "0X") else value
    if len(text) == 40 and set(text) <= _HEX:
        text = "41" + text
    if len(text) == 42 and set(text) <= _HEX and text[:2] == "41":
        return str(base58.b58encode_check(bytes.fromhex(text)).decode("ascii"))
    if value.startswith("T") and addresses.is_address("tron", value):
        return value
    return None


def _word_address(word: str) -> str | None:
    """The address in an ABI address word: 12 zero bytes + 20 bytes, or 11 zero bytes + 0x41 + 20."""
    head = word[:24]
    if head == "0" * 24 or head == "0" * 22 + "41":
        return tron_address("41" + word[24:])
    return None


@dataclass(frozen=True, slots=True)
class CallTransfer:
    """A token transfer as a contract call describes it (before it ran)."""

    contract: str
    sender: str
    recipient: str
    amount: int
    method: str


def decode_call_transfer(owner: str, contract: str, data: str) -> CallTransfer | None:
    """The transfer a ``transfer``/``transferFrom`` call asks for, or None for other call data."""
    data = data[2:] if data[:2] in ("0x", "0X") else data
    if not set(data) <= _HEX:
        return None
    selector, args = data[:8].lower(), data[8:]
    words = [args[i : i + 64] for i in range(0, len(args), 64)]
    if selector == _TRANSFER and len(words) >= 2 and all(len(w) == 64 for w in words[:2]):
        to = _word_address(words[0])
        if to is None:
            return None
        return CallTransfer(contract, owner, to, int(words[1], 16), "transfer")
    if selector == _TRANSFER_FROM and len(words) >= 3 and all(len(w) == 64 for w in words[:3]):
        frm, to = _word_address(words[0]), _word_address(words[1])
        if frm is None or to is None:
            return None
        return CallTransfer(contract, frm, to, int(words[2], 16), "transferFrom")
    return None


def decode_log_transfers(info: Mapping[str, Any]) -> list[Transfer]:
    """TRC-20 ``Transfer`` events of a ``gettransactioninfobyid`` answer (three topics, 32-byte
    data), in log order; ``index`` is the log's position."""
    out: list[Transfer] = []
    for position, entry in enumerate(info.get("log") or ()):
        if not isinstance(entry, Mapping):
            continue
        topics = entry.get("topics") or []
        data = str(entry.get("data") or "")
        if len(topics) != 3 or str(topics[0]).lower().removeprefix("0x") != TRANSFER_TOPIC or len(data) != 64:
            continue
        sender = _word_address(str(topics[1]).removeprefix("0x"))
        recipient = _word_address(str(topics[2]).removeprefix("0x"))
        contract = tron_address(entry.get("address"))
        if sender is None or recipient is None or contract is None or not set(data) <= _HEX:
            continue
        out.append(Transfer(AssetKind.TOKEN, sender, recipient, int(data, 16), index=position, contract=contract))
    return out


def decode_memo(raw_data: Mapping[str, Any]) -> str | None:
    """``raw_data.data`` as text (UTF-8); hex that is not UTF-8 text is returned as ``0x…``."""
    value = raw_data.get("data")
    if not isinstance(value, str) or not value:
        return None
    try:
        return bytes.fromhex(value).decode("utf-8")
    except ValueError:
        return "0x" + value.lower()


class TronAdapter:
    """Chain adapter for one TRON network. Thread-safe.

    Optional network keys: ``lookup_concurrency`` (hashes looked up at once, default 4),
    ``api_key`` (sent as ``TRON-PRO-API-KEY``), plus the transport's timeouts and retry keys.
    """

    family: Final = "tron"

    def __init__(self, network: Network, *, transport: RestTransport | None = None) -> None:
        if network.family != "tron":
            raise ValueError(f"network {network.name} is a {network.family} network, not tron")
        self.network = network
        extra = network.model_extra or {}
        self.features: frozenset[str] = frozenset()
        self.concurrency = positive_option(extra, "lookup_concurrency", 4, network.name)
        key = extra.get("api_key")
        headers = {"TRON-PRO-API-KEY": str(key)} if key else None
        self.transport = transport or RestTransport(
            network.name, network.rpc_urls, TransportOptions.from_network(network), headers=headers
        )

    def __repr__(self) -> str:
        return f"TronAdapter({self.network.name!r})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        return addresses.normalize_address("tron", address)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("tron", address)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("tron", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("tron", tx_hash)

    # ----------------------------------------------------------------- lookups

    def head(self, at_least: int = 0) -> tuple[int, datetime | None]:
        """The latest block's number and time. A node whose head is below ``at_least`` (a block
        another node already showed) is behind: the transport fails over."""

        def check(body: Any) -> None:
            number = _head_number(body)
            if number < at_least:
                raise _Malformed(f"node is behind: head {number} < block {at_least}")

        body = self.transport.post_json("/wallet/getnowblock", {}, validate=check)
        raw = body["block_header"]["raw_data"]
        stamp = raw.get("timestamp")
        return _head_number(body), _utc_ms(stamp) if isinstance(stamp, int) else None

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in. Every hash is validated first
        (:class:`InvalidChainInput`, before any request)."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        fetched = _map(self._fetch, unique, self.concurrency)
        blocks = [_block_number(info) for _tx, info in fetched if info]
        head = self.head(max(blocks)) if blocks else None
        observations = {
            h: self._observation(h, tx, info, head[0] if head else None)
            for h, (tx, info) in zip(unique, fetched, strict=True)
        }
        return {given: observations[norm] for given, norm in normalized.items()}

    def _fetch(self, tx_hash: str) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
        def check_tx(body: Any) -> None:
            _check_answer(body, "txID", tx_hash)

        def check_info(body: Any) -> None:
            _check_answer(body, "id", tx_hash)
            if body and not isinstance(body.get("blockNumber"), int):
                raise _Malformed("transaction info without a block number")

        tx = self.transport.post_json("/wallet/gettransactionbyid", {"value": tx_hash}, validate=check_tx)
        info = self.transport.post_json("/wallet/gettransactioninfobyid", {"value": tx_hash}, validate=check_info)
        return tx, info

    def _observation(
        self, tx_hash: str, tx: Mapping[str, Any], info: Mapping[str, Any], head: int | None
    ) -> Observation:
        name = self.network.name
        if not tx and not info:
            return Observation(network=name, tx_hash=tx_hash, status=TxStatus.NOT_FOUND)
        try:
            return self._decode(tx_hash, tx, info, head)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise ChainUnavailable(name, f"malformed transaction {tx_hash}: {type(exc).__name__}: {exc}") from exc

    def _decode(self, tx_hash: str, tx: Mapping[str, Any], info: Mapping[str, Any], head: int | None) -> Observation:
        details: dict[str, Any] = {}
        sender: str | None = None
        memo: str | None = None
        planned: list[Transfer] = []
        call: CallTransfer | None = None
        contract_ret = ""
        if tx:
            raw = tx["raw_data"]
            memo = decode_memo(raw)
            contracts = raw.get("contract") or []
            if not contracts:
                raise ValueError("transaction without a contract")
            contract = contracts[0]
            kind = str(contract["type"])
            value = contract["parameter"]["value"]
            sender = tron_address(value.get("owner_address"))
            details["contract_type"] = kind
            ret = tx.get("ret") or [{}]
            contract_ret = str(ret[0].get("contractRet") or "")
            if kind == "TransferContract":
                to = tron_address(value.get("to_address"))
                if sender and to and int(value.get("amount") or 0) > 0:
                    planned.append(Transfer(AssetKind.NATIVE, sender, to, int(value["amount"]), index=0))
            elif kind == "TransferAssetContract":  # TRC-10: asset_name is the token id (hex of its text)
                to = tron_address(value.get("to_address"))
                token = _trc10_id(str(value.get("asset_name") or ""))
                if sender and to and token and int(value.get("amount") or 0) > 0:
                    planned.append(Transfer(AssetKind.TOKEN, sender, to, int(value["amount"]), index=0, contract=token))
            elif kind == "TriggerSmartContract":
                target = tron_address(value.get("contract_address"))
                data = str(value.get("data") or "")
                details["to"] = target
                details["method"] = data[:8] or None
                if target and sender:
                    call = decode_call_transfer(sender, target, data)
                call_value = int(value.get("call_value") or 0)
                if target and sender and call_value > 0:
                    planned.append(Transfer(AssetKind.NATIVE, sender, target, call_value, index=0))
            if raw.get("fee_limit") is not None:
                details["fee_limit"] = int(raw["fee_limit"])
        else:
            details["body_missing"] = True
        called = (
            [Transfer(AssetKind.TOKEN, call.sender, call.recipient, call.amount, len(planned), call.contract)]
            if call is not None
            else []
        )
        if not info:
            details["transfers_from"] = "transaction body (not yet in a block)"
            if call is not None:
                details["attempted"] = _attempted(call)
            return Observation(
                network=self.network.name,
                tx_hash=tx_hash,
                status=TxStatus.PENDING,
                sender=sender,
                transfers=tuple(planned + called),
                memo=memo,
                details=details,
            )
        block = _block_number(info)
        receipt = info.get("receipt") or {}
        result = str(receipt.get("result") or "")
        failed = info.get("result") == "FAILED" or result not in _OK_RESULTS or contract_ret not in _OK_RESULTS
        details["result"] = result or contract_ret or "SUCCESS"
        if info.get("resMessage"):
            details["message"] = decode_memo({"data": info["resMessage"]})
        for key in ("energy_usage_total", "net_usage", "net_fee", "energy_fee"):
            if key in receipt:
                details[key] = int(receipt[key])
        transfers: list[Transfer] = []
        if failed:
            status = TxStatus.FAILED
            if call is not None:
                details["attempted"] = _attempted(call)
            elif planned:
                details["attempted"] = [t.to_json() for t in planned]
        else:
            status = TxStatus.SUCCESS
            logged = decode_log_transfers(info)
            transfers = list(planned)
            if logged:
                offset = len(transfers)
                transfers += [
                    Transfer(t.kind, t.sender, t.recipient, t.amount, offset + t.index, t.contract) for t in logged
                ]
                details["transfers_from"] = "event logs"
            elif called:
                transfers += called
                details["transfers_from"] = "call data (the contract emitted no Transfer event)"
        return Observation(
            network=self.network.name,
            tx_hash=tx_hash,
            status=status,
            block_number=block,
            confirmations=max(0, head - block + 1) if head is not None else 0,
            timestamp=_utc_ms(info["blockTimeStamp"]) if isinstance(info.get("blockTimeStamp"), int) else None,
            sender=sender,
            transfers=tuple(transfers),
            memo=memo,
            fee=int(info.get("fee") or 0),
            details=details,
        )

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions that paid ``address`` (TRX, TRC-10 and TRC-20) between two **unix times in
        seconds** (inclusive; ``until`` defaults to now), oldest first, each fully looked up.

        Uses TronGrid's ``/v1/accounts/{address}/transactions`` and ``.../transactions/trc20``
        with ``only_to=true``, following ``meta.fingerprint`` pages.
        """
        target = self.normalize_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a unix time in seconds (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a unix time in seconds >= since ({since})")
        params: dict[str, Any] = {"only_to": "true", "limit": _PAGE_LIMIT, "min_timestamp": since * 1000}
        if until is not None:
            params["max_timestamp"] = until * 1000 + 999
        hashes: dict[str, None] = {}
        for path, key in (
            (f"/v1/accounts/{target}/transactions", "txID"),
            (f"/v1/accounts/{target}/transactions/trc20", "transaction_id"),
        ):
            for item in self._pages(path, params):
                value = item.get(key)
                if isinstance(value, str) and addresses.is_tx_hash("tron", value):
                    hashes[value.lower()] = None
        if not hashes:
            return []
        found = self.lookup_many(list(hashes))
        result = [
            o
            for o in found.values()
            if o.found and o.block_number is not None and any(t.recipient == target for t in o.transfers)
        ]
        return sorted(result, key=lambda o: (o.block_number or 0, o.tx_hash))

    def _pages(self, path: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        def check(body: Any) -> None:
            if (
                not isinstance(body, Mapping)
                or body.get("success") is not True
                or not isinstance(body.get("data"), list)
            ):
                raise _Malformed(f"not a TronGrid list answer: {str(body)[:160]}")

        items: list[Mapping[str, Any]] = []
        query = dict(params)
        for _ in range(10_000):
            body = self.transport.get_json(path, query, validate=check)
            items.extend(i for i in body["data"] if isinstance(i, Mapping))
            fingerprint = (body.get("meta") or {}).get("fingerprint")
            if not fingerprint or not body["data"]:
                return items
            query = {**params, "fingerprint": fingerprint}
        raise ChainUnavailable(self.network.name, f"{path}: too many pages")


# --------------------------------------------------------------------------------------------------
# helpers


def _check_answer(body: Any, key: str, tx_hash: str) -> None:
    if not isinstance(body, Mapping):
        raise _Malformed(f"expected a JSON object, got {type(body).__name__}")
    if "Error" in body or "error" in body:
        raise _Malformed(f"node error: {str(body.get('Error') or body.get('error'))[:160]}")
    if body and str(body.get(key, "")).lower() != tx_hash:
        raise _Malformed(f"answer is about {body.get(key)!r}, not {tx_hash}")


def _head_number(body: Any) -> int:
    try:
        number = body["block_header"]["raw_data"]["number"]
    except (KeyError, TypeError) as exc:
        raise _Malformed(f"not a block: {str(body)[:160]}") from exc
    if isinstance(number, bool) or not isinstance(number, int) or number < 0:
        raise _Malformed(f"block number {number!r} is not a number")
    return number


def _block_number(info: Mapping[str, Any]) -> int:
    return int(info["blockNumber"])


def _trc10_id(asset_name: str) -> str | None:
    if not asset_name:
        return None
    try:
        text = bytes.fromhex(asset_name).decode("ascii")
    except ValueError:
        return asset_name
    return text if text.isdigit() else asset_name


def _attempted(call: CallTransfer) -> dict[str, Any]:
    return {
        "method": call.method,
        "contract": call.contract,
        "sender": call.sender,
        "recipient": call.recipient,
        "amount": str(call.amount),
    }


def _utc_ms(stamp: int) -> datetime:
    return datetime.fromtimestamp(stamp / 1000, tz=UTC)


def _map(func: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))

