"""The Bitcoin chain adapter: Esplora REST (Blockstream, mempool.space, self-hosted electrs), or Blockbook.

Esplora (``api = "esplora"``, the default; fields per Blockstream/esplora ``API.md``):

- ``GET /tx/{txid}``: the transaction with its inputs' previous outputs (``prevout``), outputs
  (``scriptpubkey``, ``scriptpubkey_address``, ``value`` in satoshi), ``fee`` and ``status``
  (``confirmed``; ``block_height``, ``block_hash``, ``block_time`` only when confirmed). 404 with
  Esplora's ``Transaction not found`` = not found; any other 404 is a wrong server (unavailable).
- ``GET /blocks/tip/height``: the tip, for confirmations (``tip - block_height + 1``). A node whose
  tip is below the block of a transaction it reports is behind: fail over, then "try later".
- ``incoming``: ``GET /address/{address}/txs/chain[/{last_seen_txid}]``, 25 confirmed
  transactions a page, newest first.

Blockbook (``api = "blockbook"``; fields per trezor/blockbook ``docs/api.md`` and ``api/types.go``):

- ``GET /api/v2/tx/{txid}``: amounts are decimal strings (read exactly into ints, nothing else is
  accepted); ``confirmations`` is counted by the server; an unconfirmed transaction has
  ``blockHeight`` -1 and ``confirmations`` 0; ``rbf`` is true when an input signals BIP-125
  (Blockbook sets it only for unconfirmed transactions; fields that are empty are omitted, so an
  input without ``sequence`` has sequence 0). ``{"error": "... not found"}`` = not found.
- ``incoming``: ``GET /api/v2/address/{address}?details=txids&from=&to=&page=&pageSize=1000``
  (newest first; ``page`` from 1 up to ``totalPages``, -1 when a ``from``/``to`` filter leaves the
  count unknown; asked for a page past the end, Blockbook answers the closest page), then
  ``/api/v2/tx/{txid}`` for each listed txid. A listed txid the node then says it does not know
  is a contradiction: unavailable, never dropped and never "not found".

What a transaction becomes:

- Every output that pays an address is one :class:`~chains.base.Transfer` (``index`` = output
  number), change included: whether a recipient is ours is the rules' question. An output
  without an address (OP_RETURN, bare multisig, non-standard) is never a transfer; it stays in
  ``details["outputs"]`` and OP_RETURN data in ``details["op_return"]``. An output of an unknown
  script type that the node says pays an address is a transfer to that address.
- One in a block is ``success``, one in the mempool ``pending`` with 0 confirmations. Bitcoin
  transactions do not fail. ``details["rbf_signalled"]`` says whether it signals BIP-125
  replaceability (an input with ``nSequence`` < 0xfffffffe; Blockbook's ``rbf``); an unconfirmed
  transaction always has ``details["replaceable"] = True``: besides explicit signalling, BIP-125
  replaceability is inherited from unconfirmed parents (invisible in one transaction) and Bitcoin
  Core relays replacements of any unconfirmed transaction by default since 28.0 (full RBF), so
  claiming that one cannot be replaced would be a guess. Nothing is credited before it confirms.
- ``sender`` is the first input's address with one (``coinbase`` for a coinbase).

Never guessing:

- Garbage (not a transaction object, a status or height that contradicts itself, a block time
  that is no block time, a txid other than the one asked for) is ``ChainUnavailable``: the next
  URL is tried, then "try again later".
- A readable transaction with a part touching a transfer that cannot be read for sure is
  ``unclear`` (:func:`chains.base.unclear`, with the reasons and the raw answer): an amount that
  is not an integer number of satoshi, an address that is not one of this network or does not
  match its output script (standard P2PKH/P2SH/P2WPKH/P2WSH/P2TR scripts are decoded and must pay
  the address the node names), a standard script the node gives no address for, an input without
  its previous output, or amounts that do not add up (Esplora: inputs - outputs = ``fee``;
  Blockbook: outputs = ``value``, inputs = ``valueIn``, ``valueIn - value = fees``).

Network keys: ``testnet`` (true for testnet/signet addresses ``m…``/``n…``/``2…``/``tb1…``),
``api``, ``lookup_concurrency`` (default 4), plus the transport's timeouts and retry keys.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard, TypeVar

import base58
import bech32m  # type: ignore[import-untyped]  # no py.typed marker in bech32m 1.0.0

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

__all__ = ["APIS", "BitcoinAdapter", "blockbook_txids_page", "script_address", "script_type"]

_T = TypeVar("_T")
_R = TypeVar("_R")

APIS: Final = ("esplora", "blockbook")
_NOT_FOUND_TEXT: Final = re.compile(r"not found", re.IGNORECASE)
_HEX: Final = re.compile(r"(?:[0-9a-fA-F]{2})*")
_HASH: Final = re.compile(r"[0-9a-fA-F]{64}")
#: how Blockbook writes an amount: a decimal integer, no sign, no leading zeros
_DECIMAL: Final = re.compile(r"0|[1-9][0-9]*")
_MAX_PAGES: Final = 10_000
_BLOCKBOOK_PAGE: Final = 1000
#: 21 million BTC: no amount can be larger
_MAX_MONEY: Final = 21_000_000 * 100_000_000
#: BIP-125: an input whose nSequence is at most this signals that the transaction is replaceable
_MAX_BIP125_SEQUENCE: Final = 0xFFFFFFFD
_MAX_SEQUENCE: Final = 0xFFFFFFFF
#: block header times are unsigned 32-bit; heights beyond 2**31 are no height
_MAX_BLOCK_TIME: Final = 0xFFFFFFFF
_MAX_HEIGHT: Final = 2**31 - 1


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
            if isinstance(body, bool) or not isinstance(body, int) or not 0 <= body <= _MAX_HEIGHT:
                raise _Malformed(f"tip height is not a block height: {str(body)[:80]}")
            if body < at_least:
                raise _Malformed(f"server is behind: tip {body} < block {at_least} of a transaction it reports")

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
                h: self.decode_blockbook(h, body) if body is not None else self._not_found(h)
                for h, body in zip(unique, bodies, strict=True)
            }
        else:
            esplora = _map(self._esplora_tx, unique, self.concurrency)
            heights = [h for b in esplora if b is not None and (h := _esplora_height(b)) is not None]
            tip = self.tip(max(heights)) if heights else None
            observations = {
                h: self.decode_esplora(h, body, tip) if body is not None else self._not_found(h)
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
            _check_esplora_tx(body, txid)

        body: Mapping[str, Any] | None = self.transport.get_json(f"/tx/{txid}", not_found=(404,), validate=check)
        return body

    def _blockbook_tx(self, txid: str) -> Mapping[str, Any] | None:
        def check(body: Any) -> None:
            if isinstance(body, Mapping) and "error" in body:
                if _NOT_FOUND_TEXT.search(str(body["error"])):
                    return
                raise _Malformed(f"server error: {str(body['error'])[:160]}")
            _check_blockbook_tx(body, txid)

        body = self.transport.get_json(f"/api/v2/tx/{txid}", validate=check)
        return None if "error" in body else body

    # ----------------------------------------------------------------- decoding

    def decode_esplora(self, txid: str, tx: Any, tip: int | None) -> Observation:
        """An Esplora ``/tx/{txid}`` answer as an observation; ``tip`` is the best block height
        (needed when the transaction is confirmed). ChainUnavailable for garbage or a tip below
        the transaction's block; ``unclear`` when a part touching a transfer cannot be read."""
        try:
            _check_esplora_tx(tx, txid)
        except _Malformed as exc:
            raise ChainUnavailable(self.network.name, f"transaction {txid}: {exc}") from exc
        try:
            return self._from_esplora(txid, tx, tip)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # pragma: no cover
            raise ChainUnavailable(self.network.name, f"malformed transaction {txid}: {exc}") from exc

    def decode_blockbook(self, txid: str, tx: Any) -> Observation:
        """A Blockbook ``/api/v2/tx/{txid}`` answer as an observation (see :meth:`decode_esplora`)."""
        try:
            _check_blockbook_tx(tx, txid)
        except _Malformed as exc:
            raise ChainUnavailable(self.network.name, f"transaction {txid}: {exc}") from exc
        try:
            return self._from_blockbook(txid, tx)
        except (KeyError, TypeError, ValueError, AttributeError, OverflowError) as exc:  # pragma: no cover
            raise ChainUnavailable(self.network.name, f"malformed transaction {txid}: {exc}") from exc

    def _from_esplora(self, txid: str, tx: Mapping[str, Any], tip: int | None) -> Observation:
        reasons: list[str] = []
        inputs: list[dict[str, Any]] = []
        for n, i in enumerate(tx["vin"]):
            sequence = i.get("sequence")
            entry: dict[str, Any] = {
                "sequence": sequence if _is_int(sequence) and 0 <= sequence <= _MAX_SEQUENCE else None
            }
            if i["is_coinbase"]:
                inputs.append({**entry, "address": None, "value": None, "coinbase": True})
                continue
            prevout = i.get("prevout")
            if not isinstance(prevout, Mapping):
                reasons.append(f"vin[{n}].prevout is {_show(prevout)}: the sender and the amounts paid in are unknown")
                inputs.append({**entry, "address": None, "value": None})
                continue
            address = self._script_and_address(
                f"vin[{n}].prevout", prevout.get("scriptpubkey"), prevout, "scriptpubkey_address", reasons
            )
            inputs.append(
                {
                    **entry,
                    "address": address,
                    "value": self._amount(f"vin[{n}].prevout.value", prevout, "value", reasons, esplora=True),
                }
            )
        outputs: list[dict[str, Any]] = []
        for n, o in enumerate(tx["vout"]):
            script = o.get("scriptpubkey")
            label = o.get("scriptpubkey_type")
            outputs.append(
                {
                    "n": n,
                    "address": self._script_and_address(f"vout[{n}]", script, o, "scriptpubkey_address", reasons),
                    "type": script_type(script)
                    or _ESPLORA_TYPES.get(str(label), label if isinstance(label, str) else None),
                    "value": self._amount(f"vout[{n}].value", o, "value", reasons, esplora=True),
                    "script": script if isinstance(script, str) else None,
                }
            )
        coinbase = any(i.get("coinbase") for i in inputs)
        fee = tx.get("fee")
        if not _is_int(fee) or not 0 <= fee <= _MAX_MONEY:
            reasons.append(f"fee is {_show(fee)}, not an amount in satoshi")
        elif not coinbase and _all_known(inputs) and _all_known(outputs):
            paid_in = sum(int(i["value"]) for i in inputs)
            paid_out = sum(int(o["value"]) for o in outputs)
            if paid_in - paid_out != fee:
                reasons.append(f"the amounts do not add up: inputs {paid_in} - outputs {paid_out} != fee {fee}")
        status = tx["status"]
        height = _esplora_height(tx)
        confirmations = 0
        if height is not None:
            if tip is None:
                raise ChainUnavailable(self.network.name, f"transaction {txid}: no tip height to count confirmations")
            if tip < height:
                raise ChainUnavailable(
                    self.network.name, f"node is behind: its tip {tip} is below block {height} of transaction {txid}"
                )
            confirmations = tip - height + 1
        observation = self._observation(
            txid,
            inputs,
            outputs,
            height=height,
            block_hash=str(status["block_hash"]).lower() if height is not None and status.get("block_hash") else None,
            confirmations=confirmations,
            block_time=status.get("block_time") if height is not None else None,
            fee=fee if _is_int(fee) and 0 <= fee <= _MAX_MONEY else None,
            rbf=_signals_rbf(inputs) if height is None else None,
            extra={"size": tx.get("size"), "weight": tx.get("weight")},
        )
        return unclear(observation, reasons, dict(tx)) if reasons else observation

    def _from_blockbook(self, txid: str, tx: Mapping[str, Any]) -> Observation:
        reasons: list[str] = []
        inputs: list[dict[str, Any]] = []
        for n, i in enumerate(tx["vin"]):
            # fields that are empty are omitted: no "sequence" is sequence 0
            sequence = i.get("sequence", 0)
            entry: dict[str, Any] = {
                "sequence": sequence if _is_int(sequence) and 0 <= sequence <= _MAX_SEQUENCE else None
            }
            if i.get("coinbase"):
                inputs.append({**entry, "address": None, "value": None, "coinbase": True})
                continue
            address = self._blockbook_address(f"vin[{n}]", i, None, reasons)
            value = self._amount(f"vin[{n}].value", i, "value", reasons, esplora=False) if "value" in i else None
            inputs.append({**entry, "address": address, "value": value})
        outputs: list[dict[str, Any]] = []
        for position, o in enumerate(tx["vout"]):
            n = o.get("n", position)
            if n != position or not _is_int(n):
                reasons.append(f"vout[{position}].n is {_show(n)}, not its position {position}")
            script = o.get("hex")
            outputs.append(
                {
                    "n": position,
                    "address": self._blockbook_address(f"vout[{position}]", o, script, reasons),
                    "type": script_type(script) if isinstance(script, str) else None,
                    "value": self._amount(f"vout[{position}].value", o, "value", reasons, esplora=False),
                    "script": script if isinstance(script, str) else None,
                }
            )
        coinbase = any(i.get("coinbase") for i in inputs)
        value_out = self._amount("value", tx, "value", reasons, esplora=False)
        value_in = self._amount("valueIn", tx, "valueIn", reasons, esplora=False) if "valueIn" in tx else None
        fees = self._amount("fees", tx, "fees", reasons, esplora=False) if "fees" in tx else None
        if value_out is not None and _all_known(outputs):
            paid_out = sum(int(o["value"]) for o in outputs)
            if paid_out != value_out:
                reasons.append(f"the outputs add up to {paid_out}, not to value {value_out}")
        if value_in is not None and not coinbase and _all_known(inputs):
            paid_in = sum(int(i["value"]) for i in inputs)
            if paid_in != value_in:
                reasons.append(f"the inputs add up to {paid_in}, not to valueIn {value_in}")
        if (
            value_in is not None
            and value_out is not None
            and fees is not None
            and not coinbase
            and (value_in - value_out != fees)
        ):
            reasons.append(f"the amounts do not add up: valueIn {value_in} - value {value_out} != fees {fees}")
        confirmations = int(tx["confirmations"])
        confirmed = confirmations > 0
        height = int(tx["blockHeight"]) if confirmed else None
        rbf = tx.get("rbf", False)
        extra: dict[str, Any] = {"size": tx.get("size"), "vsize": tx.get("vsize")}
        if not confirmed:
            extra["first_seen"] = tx.get("blockTime") if _is_int(tx.get("blockTime")) else None
            eta = tx.get("confirmationETABlocks")
            extra["confirmation_eta_blocks"] = eta if _is_int(eta) else None
        observation = self._observation(
            txid,
            inputs,
            outputs,
            height=height,
            block_hash=str(tx["blockHash"]).lower() if confirmed and tx.get("blockHash") else None,
            confirmations=confirmations,
            block_time=tx.get("blockTime") if confirmed else None,
            fee=fees,
            rbf=None if confirmed else _blockbook_rbf(rbf, inputs),
            extra=extra,
        )
        return unclear(observation, reasons, dict(tx)) if reasons else observation

    def _amount(
        self, where: str, holder: Mapping[str, Any], key: str, reasons: list[str], *, esplora: bool
    ) -> int | None:
        """Satoshi at ``holder[key]``: an integer (Esplora) or a decimal string (Blockbook), nothing
        else; a reason is noted and None returned otherwise."""
        value = holder.get(key, _MISSING)
        if esplora:
            amount = value if _is_int(value) else None
        else:
            amount = int(value) if isinstance(value, str) and _DECIMAL.fullmatch(value) else None
        if amount is None or not 0 <= amount <= _MAX_MONEY:
            kind = "an integer" if esplora else "a decimal string"
            shown = "missing" if value is _MISSING else f"{_show(value)}"
            reasons.append(f"{where} is {shown}, not {kind} number of satoshi")
            return None
        return amount

    def _script_and_address(
        self, where: str, script: Any, holder: Mapping[str, Any], key: str, reasons: list[str]
    ) -> str | None:
        """The address an Esplora output (or previous output) pays, checked against its script."""
        listed = holder.get(key)
        return self._checked_address(where, script, listed, key in holder and listed is not None, reasons)

    def _blockbook_address(self, where: str, entry: Mapping[str, Any], script: Any, reasons: list[str]) -> str | None:
        """The address of a Blockbook input or output (``isAddress`` with one entry in ``addresses``)."""
        is_address = entry.get("isAddress")
        listed = entry.get("addresses")
        if not isinstance(is_address, bool):
            reasons.append(f"{where}.isAddress is {_show(is_address)}, not true or false")
            return None
        if not is_address:
            valid = [a for a in listed if isinstance(a, str) and self.is_address(a)] if isinstance(listed, list) else []
            if valid:
                reasons.append(f"{where}.isAddress is false but addresses holds the address {valid[0]}")
                return None
            return self._checked_address(where, script, None, False, reasons)
        if not isinstance(listed, list) or len(listed) != 1:
            reasons.append(f"{where} has isAddress true but addresses {_show(listed)}, not one address")
            return None
        return self._checked_address(where, script, listed[0], True, reasons)

    def _checked_address(self, where: str, script: Any, listed: Any, given: bool, reasons: list[str]) -> str | None:
        derived = script_address(script, testnet=self.testnet) if isinstance(script, str) else None
        if given and isinstance(script, str) and script_type(script) == "op_return":
            reasons.append(f"{where} is an OP_RETURN output, yet the node says it pays {_show(listed)}")
            return None
        if not given:
            if derived is not None:
                reasons.append(f"{where} has a script paying {derived}, but the node names no address")
            return None
        if not isinstance(listed, str) or not self.is_address(listed):
            net = "testnet" if self.testnet else "mainnet"
            reasons.append(f"{where} pays {_show(listed)}, which is not a Bitcoin {net} address")
            return None
        address = self.normalize_address(listed)
        if derived is not None and derived != address:
            reasons.append(f"{where} names the address {address}, but its script pays {derived}")
            return None
        return address

    def _observation(
        self,
        txid: str,
        inputs: list[dict[str, Any]],
        outputs: list[dict[str, Any]],
        *,
        height: int | None,
        block_hash: str | None,
        confirmations: int,
        block_time: int | None,
        fee: int | None,
        rbf: bool | None,
        extra: Mapping[str, Any],
    ) -> Observation:
        confirmed = height is not None
        coinbase = any(i.get("coinbase") for i in inputs)
        sender = "coinbase" if coinbase else next((str(i["address"]) for i in inputs if i.get("address")), None)
        transfers = tuple(
            Transfer(AssetKind.NATIVE, sender or "", str(o["address"]), int(o["value"]), index=int(o["n"]))
            for o in outputs
            if o["address"] and o["value"] is not None and int(o["value"]) > 0
        )
        details: dict[str, Any] = {
            "inputs": inputs,
            "outputs": [{k: v for k, v in o.items() if k != "script"} for o in outputs],
            **{k: v for k, v in extra.items() if v is not None},
        }
        if not confirmed:
            details["rbf_signalled"] = rbf
            details["replaceable"] = True
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
        (inclusive; ``until`` defaults to the tip), oldest first. A transaction the node lists for
        the address in that range but that reads as ``unclear`` is returned too (a person looks)."""
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
            and (o.status is TxStatus.UNCLEAR or any(t.recipient == target for t in o.transfers))
        ]
        return sorted({o.tx_hash: o for o in result}.values(), key=lambda o: (o.block_number or 0, o.tx_hash))

    def _esplora_incoming(self, target: str, since: int, until: int | None) -> list[Observation]:
        def check(body: Any) -> None:
            if not isinstance(body, list):
                raise _Malformed(f"address history is not a list: {str(body)[:160]}")
            for tx in body:
                _check_esplora_tx(tx, None)

        collected: list[Mapping[str, Any]] = []
        path = f"/address/{target}/txs/chain"
        for _ in range(_MAX_PAGES):
            page = self.transport.get_json(path, validate=check)
            confirmed = [tx for tx in page if _esplora_height(tx) is not None]
            collected.extend(confirmed)
            last = _esplora_height(confirmed[-1]) if confirmed else None
            if last is None or last < since:
                break
            path = f"/address/{target}/txs/chain/{confirmed[-1]['txid']}"
        else:
            raise ChainUnavailable(self.network.name, f"{target}: too many history pages")
        if not collected:
            return []
        tip = self.tip(max(int(_esplora_height(tx) or 0) for tx in collected))
        return [self.decode_esplora(str(tx["txid"]).lower(), tx, tip) for tx in collected]

    def _blockbook_incoming(self, target: str, since: int, until: int | None) -> list[Observation]:
        txids = self.blockbook_txids(target, since, until)
        bodies = _map(self._blockbook_tx, txids, self.concurrency)
        observed: list[Observation] = []
        for txid, body in zip(txids, bodies, strict=True):
            if body is None:
                raise ChainUnavailable(
                    self.network.name,
                    f"the node lists transaction {txid} for {target} but then says it does not know it",
                )
            observed.append(self.decode_blockbook(txid, body))
        return observed

    def blockbook_txids(self, target: str, since: int, until: int | None) -> list[str]:
        """The txids Blockbook lists for ``target`` in blocks ``since..until`` (and, with no
        ``until``, in its mempool), every page followed, each once, in the node's order."""
        params: dict[str, Any] = {"details": "txids", "from": since, "pageSize": _BLOCKBOOK_PAGE}
        if until is not None:
            params["to"] = until
        seen: dict[str, None] = {}
        for page in range(1, _MAX_PAGES + 1):

            def check(body: Any, page: int = page) -> None:
                blockbook_txids_page(body, target, page, self.normalize_address)

            body = self.transport.get_json(f"/api/v2/address/{target}", {**params, "page": page}, validate=check)
            txids, last = blockbook_txids_page(body, target, page, self.normalize_address)
            seen.update(dict.fromkeys(txids))
            if last:
                return list(seen)
        raise ChainUnavailable(self.network.name, f"{target}: too many history pages")


# --------------------------------------------------------------------------------------------------
# helpers

_MISSING: Final[Any] = object()
_ESPLORA_TYPES: Final = {
    "p2pkh": "p2pkh",
    "p2sh": "p2sh",
    "v0_p2wpkh": "p2wpkh",
    "v0_p2wsh": "p2wsh",
    "v1_p2tr": "p2tr",
    "op_return": "op_return",
}


def blockbook_txids_page(
    body: Any, target: str, requested: int, normalize: Callable[[str], str]
) -> tuple[list[str], bool]:
    """(txids, whether this is the last page) of a Blockbook ``/api/v2/address/{target}?details=txids``
    answer to a request for page ``requested``. Raises UnusableAnswer for anything else.

    Asked for a page past the end, Blockbook answers the closest page: that page's txids were seen
    already, so they are not returned again and it is the last. ``totalPages`` is -1 when a
    ``from``/``to`` filter leaves the count unknown: paging goes on until a page is not full.
    ``txids`` is omitted when empty (Blockbook omits empty fields)."""
    if not isinstance(body, Mapping) or "error" in body:
        raise _Malformed(f"not an address answer: {str(body)[:160]}")
    address = body.get("address")
    try:
        same = isinstance(address, str) and normalize(address) == target
    except InvalidChainInput:
        same = False
    if not same:
        raise _Malformed(f"the answer is about the address {str(address)[:80]!r}, not {target}")
    page, total, size = body.get("page"), body.get("totalPages"), body.get("itemsOnPage")
    if not _is_int(page) or page < 1 or page > requested:
        raise _Malformed(f"page is {_show(page)} in the answer to a request for page {requested}")
    if not _is_int(total) or (total < 1 and total != -1) or not _is_int(size) or size < 1:
        raise _Malformed(f"totalPages {_show(total)} or itemsOnPage {_show(size)} is not a page count")
    txids = body.get("txids", [])
    if not isinstance(txids, list) or not all(isinstance(t, str) and _HASH.fullmatch(t) for t in txids):
        raise _Malformed(f"txids is not a list of transaction ids: {str(txids)[:160]}")
    if page < requested:
        return [], True
    last = not txids or (page >= total if total > 0 else len(txids) < size)
    return [t.lower() for t in txids], last


def _check_esplora_tx(body: Any, txid: str | None) -> None:
    """Raises _Malformed unless ``body`` is an Esplora transaction (about ``txid``) whose status
    and inputs can be read."""
    _check_tx_object(body, txid)
    status = body.get("status")
    if not isinstance(status, Mapping) or not isinstance(status.get("confirmed"), bool):
        raise _Malformed("transaction without a valid status.confirmed")
    height, block_hash, block_time = (status.get(k) for k in ("block_height", "block_hash", "block_time"))
    if status["confirmed"]:
        if not _is_int(height) or not 0 <= height <= _MAX_HEIGHT:
            raise _Malformed(f"confirmed transaction with block_height {_show(height)}")
        if block_hash is not None and not (isinstance(block_hash, str) and _HASH.fullmatch(block_hash)):
            raise _Malformed(f"block_hash {_show(block_hash)} is not a block hash")
        if block_time is not None and not (_is_int(block_time) and 0 <= block_time <= _MAX_BLOCK_TIME):
            raise _Malformed(f"block_time {_show(block_time)} is not a block time")
    elif height is not None or block_hash is not None:
        raise _Malformed(f"unconfirmed transaction with block_height {_show(height)}, block_hash {_show(block_hash)}")
    for n, i in enumerate(body["vin"]):
        if not isinstance(i, Mapping) or not isinstance(i.get("is_coinbase"), bool):
            raise _Malformed(f"vin[{n}] is not an input with is_coinbase true or false")
        if i["is_coinbase"] and (
            len(body["vin"]) != 1 or i.get("prevout") is not None or str(i.get("txid", "0" * 64)).strip("0")
        ):
            raise _Malformed(f"vin[{n}] is a coinbase input, but not the only input, or it spends an output")
    for n, o in enumerate(body["vout"]):
        if not isinstance(o, Mapping):
            raise _Malformed(f"vout[{n}] is not an output object")


def _check_blockbook_tx(body: Any, txid: str | None) -> None:
    """Raises _Malformed unless ``body`` is a Blockbook transaction (about ``txid``) whose
    confirmations and block height agree."""
    _check_tx_object(body, txid)
    height, confirmations = body.get("blockHeight"), body.get("confirmations")
    if not _is_int(height) or not _is_int(confirmations) or confirmations < 0:
        raise _Malformed(f"blockHeight {_show(height)} / confirmations {_show(confirmations)} are not numbers")
    if confirmations == 0 and height > 0:
        raise _Malformed(f"in block {height} but with 0 confirmations")
    if confirmations > 0 and (height < 1 or height + confirmations - 1 > _MAX_HEIGHT):
        raise _Malformed(f"{confirmations} confirmations for blockHeight {height}")
    block_hash, block_time = body.get("blockHash"), body.get("blockTime")
    if block_hash is not None and not (isinstance(block_hash, str) and _HASH.fullmatch(block_hash)):
        raise _Malformed(f"blockHash {_show(block_hash)} is not a block hash")
    if (
        confirmations > 0
        and block_time is not None
        and not (_is_int(block_time) and 0 <= block_time <= _MAX_BLOCK_TIME)
    ):
        raise _Malformed(f"blockTime {_show(block_time)} is not a block time")
    for where in ("vin", "vout"):
        for n, entry in enumerate(body[where]):
            if not isinstance(entry, Mapping):
                raise _Malformed(f"{where}[{n}] is not an object")
    coinbase = [i for i in body["vin"] if "coinbase" in i]
    if coinbase and (len(body["vin"]) != 1 or "txid" in coinbase[0] or not isinstance(coinbase[0]["coinbase"], str)):
        raise _Malformed("a coinbase input that is not the only input, or that spends an output")


def _check_tx_object(body: Any, txid: str | None) -> None:
    if not isinstance(body, Mapping):
        raise _Malformed(f"expected a transaction object, got {str(body)[:160]}")
    for key, kind in (("txid", str), ("vin", list), ("vout", list)):
        if not isinstance(body.get(key), kind):
            raise _Malformed(f"transaction without a valid {key!r}")
    if not _HASH.fullmatch(body["txid"]):
        raise _Malformed(f"txid {body['txid'][:80]!r} is not a transaction id")
    if txid is not None and body["txid"].lower() != txid:
        raise _Malformed(f"answer is about {body['txid']!r}, not {txid}")
    if not body["vin"] or not body["vout"]:
        raise _Malformed("a transaction without inputs or without outputs")


def _esplora_height(tx: Mapping[str, Any]) -> int | None:
    """The block height of a checked Esplora transaction; None when unconfirmed."""
    status = tx["status"]
    return int(status["block_height"]) if status.get("confirmed") else None


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _all_known(entries: list[dict[str, Any]]) -> bool:
    return all(e["value"] is not None for e in entries)


def _signals_rbf(inputs: list[dict[str, Any]]) -> bool | None:
    """BIP-125 explicit signalling: an input with nSequence < 0xfffffffe (None: a sequence is unknown)."""
    if any(i["sequence"] is not None and i["sequence"] <= _MAX_BIP125_SEQUENCE for i in inputs):
        return True
    return None if any(i["sequence"] is None for i in inputs) else False


def _blockbook_rbf(rbf: Any, inputs: list[dict[str, Any]]) -> bool | None:
    """Blockbook's ``rbf`` (omitted when false), or the inputs' sequences when they signal."""
    if rbf is True:
        return True
    signalled = _signals_rbf(inputs)
    return signalled if rbf is False or signalled else None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."


def script_type(script: str) -> str | None:
    """``p2pkh``, ``p2sh``, ``p2wpkh``, ``p2wsh``, ``p2tr`` or ``op_return`` for an output script
    (hex), or None for any other script."""
    raw = _script_bytes(script)
    if raw is None:
        return None
    if raw[:1] == b"\x6a":
        return "op_return"
    return _standard(raw)[0]


def script_address(script: str, *, testnet: bool) -> str | None:
    """The address a standard output script (hex) pays: P2PKH and P2SH (Base58Check, version bytes
    0x00/0x05 mainnet, 0x6f/0xc4 testnet), P2WPKH and P2WSH (bech32, BIP-173), P2TR (bech32m,
    BIP-350); None for any other script."""
    raw = _script_bytes(script)
    if raw is None:
        return None
    kind, payload = _standard(raw)
    if kind in ("p2pkh", "p2sh"):
        version = {("p2pkh", False): 0x00, ("p2sh", False): 0x05, ("p2pkh", True): 0x6F, ("p2sh", True): 0xC4}
        return str(base58.b58encode_check(bytes([version[kind, testnet]]) + payload).decode("ascii"))
    if kind in ("p2wpkh", "p2wsh", "p2tr"):
        return str(bech32m.encode("tb" if testnet else "bc", 1 if kind == "p2tr" else 0, payload))
    return None


def _script_bytes(script: str) -> bytes | None:
    return bytes.fromhex(script) if isinstance(script, str) and _HEX.fullmatch(script) else None


def _standard(raw: bytes) -> tuple[str | None, bytes]:
    if len(raw) == 25 and raw[:3] == b"\x76\xa9\x14" and raw[23:] == b"\x88\xac":
        return "p2pkh", raw[3:23]
    if len(raw) == 23 and raw[:2] == b"\xa9\x14" and raw[22:] == b"\x87":
        return "p2sh", raw[2:22]
    if len(raw) == 22 and raw[:2] == b"\x00\x14":
        return "p2wpkh", raw[2:]
    if len(raw) == 34 and raw[:2] == b"\x00\x20":
        return "p2wsh", raw[2:]
    if len(raw) == 34 and raw[:2] == b"\x51\x20":
        return "p2tr", raw[2:]
    return None, b""


def _op_return(script: str) -> str | None:
    """The data pushed by an OP_RETURN script (hex), when it is one simple push."""
    if not script.startswith("6a") or len(script) < 4 or not _HEX.fullmatch(script):
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
