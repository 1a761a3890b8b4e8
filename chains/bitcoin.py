"""The Bitcoin chain adapter: Esplora REST (Blockstream, mempool.space, self-hosted electrs), or Blockbook.

Esplora (``api = "esplora"``, the default):

- ``GET /tx/{txid}``: the transaction with its inputs' previous outputs (``prevout``), outputs
  (``scriptpubkey_address``, ``value`` in satoshi), ``fee`` and ``status`` (``confirmed``,
  ``block_height``, ``block_hash``, ``block_time``). 404 = not found.
- ``GET /blocks/tip/height``: the tip, for confirmations (``tip - block_height + 1``).
- ``incoming``: ``GET /address/{address}/txs/chain[/{last_seen_txid}]``, 25 confirmed
  transactions a page, newest first.

Blockbook (``api = "blockbook"``): ``GET /api/v2/tx/{txid}`` (values as strings, ``addresses``
lists, ``confirmations`` given by the server; ``{"error": "... not found"}`` = not found) and
``GET /api/v2/address/{address}?details=txs&from=&to=`` for ``incoming``.

Every output that pays an address is one :class:`~chains.base.Transfer` (``index`` = output
number), change included: whether a recipient is ours is the rules' question. Bitcoin transactions
do not fail: one in a block is ``success``, one in the mempool ``pending``. ``sender`` is the first
input's address (``coinbase`` for a coinbase). ``details`` lists the inputs, the outputs with their
script type (p2pkh, p2sh, p2wpkh, p2wsh, p2tr), OP_RETURN data, and, for recipients whose address
is also valid on Bitcoin Cash or Litecoin, the collision notes of
:func:`chains.addresses.address_collisions`.

Network keys: ``testnet`` (true for testnet/signet addresses ``m…``/``n…``/``2…``/``tb1…``),
``api``, ``lookup_concurrency`` (default 4), plus the transport's timeouts and retry keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, TypeVar

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

__all__ = ["APIS", "BitcoinAdapter"]

_T = TypeVar("_T")
_R = TypeVar("_R")

APIS: Final = ("esplora", "blockbook")
_NOT_FOUND_TEXT: Final = re.compile(r"not found", re.IGNORECASE)
_SCRIPT_TYPES: Final = {
    "p2pkh": "p2pkh",
    "p2sh": "p2sh",
    "v0_p2wpkh": "p2wpkh",
    "v0_p2wsh": "p2wsh",
    "v1_p2tr": "p2tr",
    "op_return": "op_return",
}
_MAX_PAGES: Final = 10_000
_BLOCKBOOK_PAGE: Final = 1000


class _Malformed(UnusableAnswer):
    """An answer that is not what the API sends: fail over to the next URL."""


class BitcoinAdapter:
    """Chain adapter for one Bitcoin network. Thread-safe."""

    family: Final = "bitcoin"

    def __init__(self, network: Network, *, transport: RestTransport | None = None) -> None:
        if network.family != "bitcoin":
            raise ValueError(f"network {network.name} is a {network.family} network, not bitcoin")
        self.network = network
        extra = network.model_extra or {}
        testnet = extra.get("testnet", False)
        if not isinstance(testnet, bool):
            raise ValueError(f"network {network.name}: testnet must be true or false")
        self.testnet = testnet
        api = extra.get("api", "esplora")
        if api not in APIS:
            raise ValueError(f"network {network.name}: api must be one of {', '.join(APIS)}")
        self.api: str = str(api)
        self.concurrency = positive_option(extra, "lookup_concurrency", 4, network.name)
        self.features: frozenset[str] = frozenset()
        self.transport = transport or RestTransport(
            network.name, network.rpc_urls, TransportOptions.from_network(network)
        )

    def __repr__(self) -> str:
        return f"BitcoinAdapter({self.network.name!r}, api={self.api!r}, testnet={self.testnet})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        return addresses.normalize_address("bitcoin", address, testnet=self.testnet)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("bitcoin", address, testnet=self.testnet)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("bitcoin", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("bitcoin", tx_hash)

    # ----------------------------------------------------------------- lookups

    def tip(self, at_least: int = 0) -> int:
        """The height of the best block (Esplora). A server below ``at_least`` is behind: fail over."""

        def check(body: Any) -> None:
            if isinstance(body, bool) or not isinstance(body, int) or body < 0:
                raise _Malformed(f"tip height is not a number: {str(body)[:80]}")
            if body < at_least:
                raise _Malformed(f"server is behind: tip {body} < block {at_least}")

        return int(self.transport.get_json("/blocks/tip/height", validate=check))

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in; every txid is validated first."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        if self.api == "blockbook":
            bodies = _map(self._blockbook_tx, unique, self.concurrency)
            observations = {
                h: self._from_blockbook(h, body) if body is not None else self._not_found(h)
                for h, body in zip(unique, bodies, strict=True)
            }
        else:
            esplora = _map(self._esplora_tx, unique, self.concurrency)
            heights = [_esplora_height(b) for b in esplora if b is not None and b["status"].get("confirmed")]
            tip = self.tip(max(heights)) if heights else None
            observations = {
                h: self._from_esplora(h, body, tip) if body is not None else self._not_found(h)
                for h, body in zip(unique, esplora, strict=True)
            }
        return {given: observations[norm] for given, norm in normalized.items()}

    def _not_found(self, tx_hash: str) -> Observation:
        return Observation(network=self.network.name, tx_hash=tx_hash, status=TxStatus.NOT_FOUND)

    def _esplora_tx(self, txid: str) -> Mapping[str, Any] | None:
        def check(body: Any) -> None:
            if body is None:
                response = self.transport.last_response()
                text = response.text if response is not None else ""
                if not _NOT_FOUND_TEXT.search(text[:200]):
                    raise _Malformed(f"HTTP 404 that is not Esplora's 'Transaction not found': {text[:160]!r}")
                return
            _check_esplora_tx(body)
            if str(body["txid"]).lower() != txid:
                raise _Malformed(f"answer is about {body['txid']!r}, not {txid}")

        body: Mapping[str, Any] | None = self.transport.get_json(f"/tx/{txid}", not_found=(404,), validate=check)
        return body

    def _blockbook_tx(self, txid: str) -> Mapping[str, Any] | None:
        def check(body: Any) -> None:
            if isinstance(body, Mapping) and "error" in body:
                if _NOT_FOUND_TEXT.search(str(body["error"])):
                    return
                raise _Malformed(f"server error: {str(body['error'])[:160]}")
            _check_blockbook_tx(body)
            if str(body["txid"]).lower() != txid:
                raise _Malformed(f"answer is about {body['txid']!r}, not {txid}")

        body = self.transport.get_json(f"/api/v2/tx/{txid}", validate=check)
        return None if "error" in body else body

    # ----------------------------------------------------------------- decoding

    def _from_esplora(self, txid: str, tx: Mapping[str, Any], tip: int | None) -> Observation:
        try:
            inputs = [
                {
                    "address": (i.get("prevout") or {}).get("scriptpubkey_address"),
                    "value": (i.get("prevout") or {}).get("value"),
                }
                if not i.get("is_coinbase")
                else {"address": None, "value": None, "coinbase": True}
                for i in tx["vin"]
            ]
            outputs = [
                {
                    "n": n,
                    "address": o.get("scriptpubkey_address"),
                    "type": _SCRIPT_TYPES.get(str(o.get("scriptpubkey_type")), str(o.get("scriptpubkey_type"))),
                    "value": _sats(o["value"]),
                    "script": o.get("scriptpubkey"),
                }
                for n, o in enumerate(tx["vout"])
            ]
            status = tx["status"]
            confirmed = bool(status.get("confirmed"))
            height = _esplora_height(tx) if confirmed else None
            block_time = status.get("block_time")
            return self._observation(
                txid,
                inputs,
                outputs,
                confirmed=confirmed,
                height=height,
                block_hash=str(status["block_hash"]) if confirmed and status.get("block_hash") else None,
                confirmations=max(0, tip - height + 1) if height is not None and tip is not None else 0,
                block_time=int(block_time) if isinstance(block_time, int) else None,
                fee=_sats(tx["fee"]) if tx.get("fee") is not None else None,
                extra={"size": tx.get("size"), "weight": tx.get("weight")},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {txid}: {exc}") from exc

    def _from_blockbook(self, txid: str, tx: Mapping[str, Any]) -> Observation:
        try:
            inputs = [
                {"address": (i.get("addresses") or [None])[0], "value": _sats(i["value"]) if "value" in i else None}
                if not i.get("coinbase")
                else {"address": None, "value": None, "coinbase": True}
                for i in tx["vin"]
            ]
            outputs = []
            for position, o in enumerate(tx["vout"]):
                listed = o.get("addresses") or []
                address = listed[0] if o.get("isAddress", True) and len(listed) == 1 else None
                outputs.append(
                    {
                        "n": int(o.get("n", position)),
                        "address": address,
                        "type": self._address_type(address) if address else _blockbook_script_type(o),
                        "value": _sats(o.get("value") or 0),
                        "script": o.get("hex"),
                    }
                )
            height = int(tx.get("blockHeight") or 0)
            confirmed = height > 0
            block_time = tx.get("blockTime")
            return self._observation(
                txid,
                inputs,
                outputs,
                confirmed=confirmed,
                height=height if confirmed else None,
                block_hash=str(tx["blockHash"]) if confirmed and tx.get("blockHash") else None,
                confirmations=int(tx.get("confirmations") or 0) if confirmed else 0,
                block_time=int(block_time) if confirmed and isinstance(block_time, int) else None,
                fee=_sats(tx["fees"]) if tx.get("fees") is not None else None,
                extra={"size": tx.get("size"), "vsize": tx.get("vsize")},
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {txid}: {exc}") from exc

    def _address_type(self, address: str) -> str | None:
        try:
            return addresses.bitcoin_address_type(address)
        except InvalidChainInput:
            return None

    def _observation(
        self,
        txid: str,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        *,
        confirmed: bool,
        height: int | None,
        block_hash: str | None,
        confirmations: int,
        block_time: int | None,
        fee: int | None,
        extra: Mapping[str, Any],
    ) -> Observation:
        coinbase = any(i.get("coinbase") for i in inputs)
        sender = "coinbase" if coinbase else next((str(i["address"]) for i in inputs if i.get("address")), None)
        transfers = tuple(
            Transfer(AssetKind.NATIVE, sender or "", str(o["address"]), int(o["value"]), index=int(o["n"]))
            for o in outputs
            if o["address"] and int(o["value"]) > 0
        )
        details: dict[str, Any] = {
            "inputs": inputs,
            "outputs": [{k: v for k, v in o.items() if k != "script"} for o in outputs],
            **{k: v for k, v in extra.items() if v is not None},
        }
        op_returns = [_op_return(str(o.get("script") or "")) for o in outputs if o["type"] == "op_return"]
        if any(op_returns):
            details["op_return"] = [d for d in op_returns if d]
        collisions = {
            str(o["address"]): notes
            for o in outputs
            if o["address"] and (notes := addresses.address_collisions(str(o["address"])))
        }
        if collisions:
            details["address_collisions"] = collisions
        return Observation(
            network=self.network.name,
            tx_hash=txid,
            status=TxStatus.SUCCESS if confirmed else TxStatus.PENDING,
            block_number=height,
            block_hash=block_hash,
            confirmations=confirmations,
            timestamp=datetime.fromtimestamp(block_time, tz=UTC) if block_time is not None else None,
            sender=sender,
            transfers=transfers,
            fee=fee,
            details=details,
        )

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Confirmed transactions with an output paying ``address`` in blocks ``since..until``
        (inclusive; ``until`` defaults to the tip), oldest first."""
        target = self.normalize_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a block height (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a block height >= since ({since})")
        if self.api == "blockbook":
            found = self._blockbook_incoming(target, since, until)
        else:
            found = self._esplora_incoming(target, since, until)
        result = [
            o
            for o in found
            if o.block_number is not None
            and since <= o.block_number <= (until if until is not None else o.block_number)
            and any(t.recipient == target for t in o.transfers)
        ]
        return sorted({o.tx_hash: o for o in result}.values(), key=lambda o: (o.block_number or 0, o.tx_hash))

    def _esplora_incoming(self, target: str, since: int, until: int | None) -> list[Observation]:
        def check(body: Any) -> None:
            if not isinstance(body, list):
                raise _Malformed(f"address history is not a list: {str(body)[:160]}")
            for tx in body:
                _check_esplora_tx(tx)

        collected: list[Mapping[str, Any]] = []
        path = f"/address/{target}/txs/chain"
        for _ in range(_MAX_PAGES):
            page = self.transport.get_json(path, validate=check)
            confirmed = [tx for tx in page if tx["status"].get("confirmed")]
            collected.extend(confirmed)
            if not confirmed or _esplora_height(confirmed[-1]) < since:
                break
            path = f"/address/{target}/txs/chain/{confirmed[-1]['txid']}"
        else:
            raise ChainUnavailable(self.network.name, f"{target}: too many history pages")
        if not collected:
            return []
        tip = self.tip(max(_esplora_height(tx) for tx in collected))
        return [self._from_esplora(str(tx["txid"]).lower(), tx, tip) for tx in collected]

    def _blockbook_incoming(self, target: str, since: int, until: int | None) -> list[Observation]:
        def check(body: Any) -> None:
            if not isinstance(body, Mapping) or "error" in body:
                raise _Malformed(f"not an address answer: {str(body)[:160]}")
            for tx in body.get("transactions") or []:
                _check_blockbook_tx(tx)

        params: dict[str, Any] = {"details": "txs", "from": since, "pageSize": _BLOCKBOOK_PAGE}
        if until is not None:
            params["to"] = until
        observed: list[Observation] = []
        for page in range(1, _MAX_PAGES):
            body = self.transport.get_json(f"/api/v2/address/{target}", {**params, "page": page}, validate=check)
            txs = body.get("transactions") or []
            observed.extend(self._from_blockbook(str(tx["txid"]).lower(), tx) for tx in txs)
            if not txs or page >= int(body.get("totalPages") or 1):
                return observed
        raise ChainUnavailable(self.network.name, f"{target}: too many history pages")


# --------------------------------------------------------------------------------------------------
# helpers


def _check_esplora_tx(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise _Malformed(f"expected a transaction object, got {str(body)[:160]}")
    for key, kind in (("txid", str), ("vin", list), ("vout", list), ("status", Mapping)):
        if not isinstance(body.get(key), kind):
            raise _Malformed(f"transaction without a valid {key!r}")
    if body["status"].get("confirmed") and not isinstance(body["status"].get("block_height"), int):
        raise _Malformed("confirmed transaction without a block height")


def _check_blockbook_tx(body: Any) -> None:
    if not isinstance(body, Mapping):
        raise _Malformed(f"expected a transaction object, got {str(body)[:160]}")
    for key, kind in (("txid", str), ("vin", list), ("vout", list)):
        if not isinstance(body.get(key), kind):
            raise _Malformed(f"transaction without a valid {key!r}")


def _esplora_height(tx: Mapping[str, Any]) -> int:
    return int(tx["status"]["block_height"])


def _sats(value: Any) -> int:
    """Satoshi from an integer or a decimal-digit string; anything else (floats) is refused."""
    if isinstance(value, bool):
        raise ValueError("a boolean is not an amount")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise ValueError(f"amount {value!r} is not an integer number of satoshi")


def _blockbook_script_type(output: Mapping[str, Any]) -> str | None:
    script = str(output.get("hex") or "")
    return "op_return" if script.startswith("6a") else None


def _op_return(script: str) -> str | None:
    """The data pushed by an OP_RETURN script (hex), when it is one simple push."""
    if not script.startswith("6a") or len(script) < 4:
        return None
    body = script[2:]
    size = int(body[:2], 16)
    if size <= 75:
        data = body[2:]
    elif size == 0x4C and len(body) >= 4:
        data = body[4:]
    else:
        return body
    return data or None


def _map(func: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))
