"""The EVM chain adapter (Ethereum, BNB Smart Chain, Polygon, Arbitrum, ... and local anvil nodes).

A lookup takes three rounds of JSON-RPC batches, whatever the number of hashes:

1. ``eth_getTransactionByHash`` + ``eth_getTransactionReceipt`` for every hash, and the latest
   block (for confirmations, and to notice a node that is behind); ``lookup_batch_size`` hashes
   per batch, ``lookup_concurrency`` batches in flight.
2. Block headers (timestamps; cached by block hash) and ``symbol()``/``name()``/``decimals()`` of
   token contracts not seen before (cached).
3. Traces of the successful transactions that ran contract code (internal native transfers):
   parity-style ``trace_transaction``, or one ``trace_block`` for a block where they are several and
   a good share of the block's transactions,
   where the node has the ``trace_`` namespace (anvil, Erigon, Nethermind, reth), else
   ``debug_traceTransaction`` with the call tracer (geth); a method the node lacks is dropped.

Batches go through :class:`~chains.transport.Transport` at the provider level (raw JSON), not
through web3's high-level ``batch_requests``, whose result formatting costs ~0.55 ms per lookup.
Answers are checked as they arrive; a malformed or inconsistent answer counts as a failure of
that URL, so the transport fails over to the next one. web3.py's packages are used for what they
are good at: ABI decoding (``eth_abi``), checksummed addresses (``eth_utils``), and the
:attr:`EvmAdapter.w3` handle (with the proof-of-authority extra-data middleware on BNB Smart Chain
and Polygon) used for block headers. ``web3`` itself is imported when that handle is first used
(:mod:`chains.evm_web3`), not by the lookups: a re-check worker process or a scan that only looks
transactions up saves its second of start-up.
"""

from __future__ import annotations

import contextlib
import logging
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from typing import TYPE_CHECKING, Any, Final, TypeVar

from chains import addresses
from chains.addresses import eip55_checksum
from chains.base import (
    AssetKind,
    ChainUnavailable,
    InvalidChainInput,
    Observation,
    Transfer,
    TxStatus,
)
from chains.network import Network
from chains.transport import JsonRpcError, RpcCall, Transport, UnusableAnswer, positive_option

if TYPE_CHECKING:
    from web3 import Web3

__all__ = [
    "KNOWN_FEATURES",
    "TRANSFER_TOPIC",
    "BlockHead",
    "EvmAdapter",
    "TokenInfo",
    "decode_parity_transfers",
    "decode_receipt_transfers",
    "decode_trace_transfers",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: keccak("Transfer(address,address,uint256)")
TRANSFER_TOPIC: Final = "0xddf252ad1be2c89b69c2b068fc378daa952ba7f163c4a11628f55a4df523b3ef"
_SYMBOL: Final = "0x95d89b41"
_NAME: Final = "0x06fdde03"
_DECIMALS: Final = "0x313ce567"
_ERC20_TRANSFER: Final = "0xa9059cbb"
_PLAIN_TRANSFER_GAS: Final = 21_000
_CANONICAL_HASH: Final = re.compile(r"0x[0-9a-fA-F]{64}")
_CALL_TRACER: Final = {"tracer": "callTracer"}
#: call frames that move value; DELEGATECALL/STATICCALL carry no value of their own, and
#: CALLCODE sends value back to the caller itself
_VALUE_FRAMES: Final = frozenset({"CALL", "CREATE", "CREATE2", "SELFDESTRUCT"})

#: ``trace``: lookups report internal native transfers (the node can trace by at least one of
#: ``parity_trace``: ``trace_transaction``/``trace_block`` (anvil, Erigon, Nethermind, reth: cheap,
#: and one ``trace_block`` serves every transaction of a block) or ``debug_trace``:
#: ``debug_traceTransaction`` with the call tracer (geth); ``trace_filter``: native transfers to an
#: address in a block range (``incoming``). Listing ``trace`` in the configuration means both methods.
KNOWN_FEATURES: Final = frozenset({"trace", "parity_trace", "debug_trace", "trace_filter"})
_TRACE_METHODS: Final = ("parity_trace", "debug_trace")
#: how nodes say they lack a method (not "transaction not found" or "header not found": those are
#: about the data, and a lagging node behind a load balancer says them too)
_UNSUPPORTED_TEXT: Final = ("method not found", "not supported", "does not exist", "not available", "unsupported")
#: how nodes refuse the number of addresses in one filter (go-ethereum and BNB Smart Chain: "exceed max
#: addresses or topics per search position"; Infura: "This query contains 5006 filters. The current limit
#: is 5000."; others: "please specify less number of address", a request body too large)
_LIST_REFUSED: Final = re.compile(
    r"topics|addresses|number of address|\bfilters\b|request body|body size|entity too large|payload", re.IGNORECASE
)


class _Malformed(UnusableAnswer):
    """An answer that is not what the JSON-RPC spec promises: fail over to the next URL."""


@dataclass(frozen=True, slots=True)
class TokenInfo:
    """What a token contract says about itself (None where it does not answer)."""

    symbol: str | None
    name: str | None
    decimals: int | None


@dataclass(frozen=True, slots=True)
class BlockHead:
    number: int
    hash: str
    timestamp: datetime


@dataclass(slots=True, eq=False)
class _Found:
    """Round-one result for one hash."""

    tx_hash: str
    tx: Mapping[str, Any] | None
    receipt: Mapping[str, Any] | None
    head: int
    block_timestamp: int | None = None
    #: internal native transfers found by tracing (None: not traced)
    internal: list[Transfer] | None = None
    trace_note: str = "not needed"
    needs_trace: bool = False
    contracts: set[str] = field(default_factory=set)

    @property
    def block_hash(self) -> str:
        assert self.receipt is not None
        return str(self.receipt["blockHash"]).lower()

    @property
    def block_number(self) -> int:
        assert self.receipt is not None
        return _hex_int(self.receipt, "blockNumber")


class EvmAdapter:
    """Chain adapter for one EVM network. Thread-safe; share one instance per network.

    Optional network keys (TOML extras): ``features`` (a list, subset of :data:`KNOWN_FEATURES`;
    default: all, and a feature the node turns out not to support is dropped at run time),
    ``lookup_batch_size`` (hashes per batch, default 200), ``lookup_concurrency`` (batches of one
    ``lookup_many`` in flight at once, default 2), ``log_chunk_blocks`` (eth_getLogs
    range, default 2,000), ``trace_filter_blocks`` (its range, default 1,000; both are halved, and the
    smaller size kept, when the node refuses a range), ``log_filter_addresses`` and
    ``trace_filter_addresses`` (addresses per ``eth_getLogs`` OR-list and per ``trace_filter``
    ``toAddress`` list in :meth:`incoming_many`, default 1,000 each; halved and kept when the node
    refuses a list), ``native_scan_max_blocks`` (block scan for native deposits when
    ``trace_filter`` is missing, default 2,000), ``trace_batch_size`` (trace calls per HTTP
    request, default 50), ``trace_block_min_txs`` and ``trace_block_min_share`` (with ``parity_trace``,
    a block is traced whole with one ``trace_block`` when the transactions to trace in it are at
    least ``trace_block_min_txs``, default 4, and at least ``trace_block_min_share`` of the block's
    transactions, default 0.25: ``trace_block`` answers with every transaction's traces, and reading
    a full block's for a few of them costs more than asking for those few; 0 for a node that
    re-executes a block's earlier transactions for each ``trace_transaction``),
    ``max_head_age_seconds`` (a node whose latest block is older is "behind": fail over),
    ``head_memory_seconds`` (how long the highest head seen is held against a node that answers
    below it, default 120), plus the transport's timeouts and retry keys.
    """

    family: Final = "evm"

    def __init__(self, network: Network, *, transport: Transport | None = None) -> None:
        if network.family != "evm":
            raise ValueError(f"network {network.name} is a {network.family} network, not evm")
        self.network = network
        self.transport = transport or Transport.for_network(network)
        extra = network.model_extra or {}
        wanted = extra.get("features")
        if wanted is None:
            self.features: frozenset[str] = KNOWN_FEATURES
        else:
            if not isinstance(wanted, list | tuple) or not set(wanted) <= KNOWN_FEATURES:
                raise ValueError(
                    f"network {network.name}: features must be a list drawn from {sorted(KNOWN_FEATURES)}"
                )
            chosen = set(wanted)
            if "trace" in chosen:
                chosen |= set(_TRACE_METHODS)
            self.features = frozenset(chosen)
        self._set_features(self.features)
        self.batch_size = positive_option(extra, "lookup_batch_size", 200, network.name)
        self.trace_batch_size = positive_option(extra, "trace_batch_size", 50, network.name)
        self.concurrency = positive_option(extra, "lookup_concurrency", 2, network.name)
        self._executor: ThreadPoolExecutor | None = None
        self.trace_block_min_txs = positive_option(extra, "trace_block_min_txs", 4, network.name)
        share = extra.get("trace_block_min_share", 0.25)
        if isinstance(share, bool) or not isinstance(share, int | float) or not 0 <= share <= 1:
            raise ValueError(f"network {network.name}: trace_block_min_share must be a number from 0 to 1")
        self.trace_block_min_share = float(share)
        self.log_chunk_blocks = positive_option(extra, "log_chunk_blocks", 2_000, network.name)
        self.native_scan_max_blocks = positive_option(extra, "native_scan_max_blocks", 2_000, network.name)
        self.trace_filter_blocks = positive_option(extra, "trace_filter_blocks", 1_000, network.name)
        self.log_filter_addresses = positive_option(extra, "log_filter_addresses", 1_000, network.name)
        self.trace_filter_addresses = positive_option(extra, "trace_filter_addresses", 1_000, network.name)
        max_age = extra.get("max_head_age_seconds")
        self.max_head_age: float | None = None if max_age is None else float(max_age)
        memory = extra.get("head_memory_seconds", 120)
        if isinstance(memory, bool) or not isinstance(memory, int | float) or memory < 0:
            raise ValueError(f"network {network.name}: head_memory_seconds must be a number >= 0")
        self.head_memory = float(memory)
        self._lock = threading.RLock()
        self._tokens: dict[str, TokenInfo] = {}
        #: block hash -> (timestamp, number of transactions or None when the node did not list them)
        self._blocks: OrderedDict[str, tuple[int, int | None]] = OrderedDict()
        #: the highest head any node of this network has shown us: a node below it is behind, and
        #: its "not found" may only mean "not yet seen" (see :meth:`_check_not_behind`)
        self._high_water = -1
        self._high_water_at = 0.0
        self._w3: Web3 | None = None

    def __repr__(self) -> str:
        return f"EvmAdapter({self.network.name!r}, chain_id={self.network.chain_id})"

    # ----------------------------------------------------------------- web3 handle

    @property
    def w3(self) -> Web3:
        """A Web3 handle on this network's URLs (through the failover transport), with the
        extra-data middleware on proof-of-authority chains."""
        if self._w3 is None:
            from chains.evm_web3 import web3_handle  # web3 is imported here, not by the lookups

            self._w3 = web3_handle(self.transport, poa=self.network.poa)
        return self._w3

    def head(self) -> BlockHead:
        """The node's latest block (through web3, so PoA headers need the middleware)."""
        from web3.exceptions import Web3Exception

        try:
            block = self.w3.eth.get_block("latest")
            number, block_hash, timestamp = block["number"], block["hash"], block["timestamp"]
        except (Web3Exception, ValueError, KeyError, TypeError) as exc:
            raise ChainUnavailable(self.network.name, f"malformed latest block: {exc}") from exc
        head = BlockHead(int(number), "0x" + bytes(block_hash).hex(), _utc(int(timestamp)))
        self._check_head_age(int(timestamp))
        return head

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        return addresses.normalize_address("evm", address)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("evm", address)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("evm", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        if isinstance(tx_hash, str) and _CANONICAL_HASH.fullmatch(tx_hash):  # the common case, fast
            return tx_hash.lower()
        return addresses.normalize_tx_hash("evm", tx_hash)

    # ----------------------------------------------------------------- lookups

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in (``Observation.tx_hash`` is normalized).

        Every hash is validated first (:class:`InvalidChainInput`, before any request). A hash the
        node does not know is ``not_found`` for that hash only; an unreliable node raises
        :class:`ChainUnavailable` for the whole call.
        """
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        found: dict[str, _Found] = {}
        chunks = [unique[start : start + self.batch_size] for start in range(0, len(unique), self.batch_size)]
        try:
            if len(chunks) > 1 and self.concurrency > 1:
                # several batches in flight: the node works on one while we parse another
                rounds = list(self._pool().map(self._round_one, chunks))
            else:
                rounds = [self._round_one(chunk) for chunk in chunks]
            for items in rounds:
                for item in items:
                    found[item.tx_hash] = item
            self._round_two(list(found.values()))
            observations = {h: self._observation(found[h]) for h in unique}
        except UnusableAnswer as exc:  # only when a split batch had to be checked as a whole
            raise ChainUnavailable(self.network.name, f"malformed answer: {exc}") from exc
        return {given: observations[norm] for given, norm in normalized.items()}

    def _pool(self) -> ThreadPoolExecutor:
        with self._lock:
            if self._executor is None:
                self._executor = ThreadPoolExecutor(
                    max_workers=self.concurrency, thread_name_prefix=f"evm-{self.network.name}"
                )
            return self._executor

    def close(self) -> None:
        """Stop the lookup threads (an adapter is usable again afterwards; they restart)."""
        with self._lock:
            executor, self._executor = self._executor, None
        if executor is not None:
            executor.shutdown(wait=True)

    def _batch_parsed(self, calls: list[RpcCall], parse: Callable[[list[Any]], _T]) -> _T:
        """One logical batch, parsed (and so checked) inside the transport: an answer ``parse``
        rejects with :class:`UnusableAnswer` fails over like a timeout. When the transport had to
        split the batch (the node refused its size), the parts are checked together at the end."""
        box: list[_T] = []

        def validate(replies: list[Any]) -> None:
            box.clear()
            if len(replies) == len(calls):
                box.append(parse(replies))

        replies = self.transport.batch(calls, validate=validate)
        if not box:
            box.append(parse(replies))
        return box[0]

    def _round_one(self, hashes: list[str]) -> list[_Found]:
        calls: list[RpcCall] = []
        for h in hashes:
            calls.append(("eth_getTransactionByHash", [h]))
            calls.append(("eth_getTransactionReceipt", [h]))
        calls.append(("eth_getBlockByNumber", ["latest", False]))

        def parse(replies: list[Any]) -> list[_Found]:
            head_block = _block(replies[-1], "latest block")
            head = _hex_int(head_block, "number")
            head_ts = _hex_int(head_block, "timestamp")
            self._check_head_age(head_ts, unusable=True)
            parsed = [
                _check_pair(
                    h,
                    _optional_object(replies[2 * position], f"transaction {h}"),
                    _optional_object(replies[2 * position + 1], f"receipt {h}"),
                    head,
                )
                for position, h in enumerate(hashes)
            ]
            self._check_not_behind(head, [item.tx_hash for item in parsed if item.tx is None])
            self._remember_block(_hex_str(head_block, "hash"), (head_ts, _tx_count(head_block)))
            return parsed

        return self._batch_parsed(calls, parse)

    def _round_two(self, items: list[_Found]) -> None:
        """Block timestamps and token metadata not cached yet, then internal transfers."""
        calls: list[RpcCall] = []
        handlers: list[tuple[str, str]] = []
        wanted_blocks: dict[str, list[_Found]] = {}
        contracts: set[str] = set()
        with self._lock:
            for item in items:
                if item.receipt is None:
                    continue
                cached = self._blocks.get(item.block_hash)
                if cached is None:
                    wanted_blocks.setdefault(item.block_hash, []).append(item)
                else:
                    item.block_timestamp = cached[0]
                for log_entry in _transfer_logs(item.receipt):
                    contract = str(log_entry["address"]).lower()
                    if contract not in self._tokens:
                        contracts.add(contract)
        for block_hash in wanted_blocks:
            calls.append(("eth_getBlockByHash", [block_hash, False]))
            handlers.append(("block", block_hash))
        for contract in sorted(contracts):
            for selector in (_SYMBOL, _NAME, _DECIMALS):
                calls.append(("eth_call", [{"to": contract, "data": selector}, "latest"]))
                handlers.append((selector, contract))
        if calls:
            blocks, tokens = self._batch_parsed(calls, lambda replies: _parse_metadata(handlers, replies))
            with self._lock:
                for block_hash, facts in blocks.items():
                    self._remember_block(block_hash, facts)
                    for item in wanted_blocks[block_hash]:
                        item.block_timestamp = facts[0]
                self._tokens.update(tokens)
        self._trace([item for item in items if item.needs_trace])

    # ----------------------------------------------------------------- internal transfers

    def _trace(self, items: list[_Found]) -> None:
        """Internal native transfers of the transactions that ran contract code, with the first
        tracing method the node supports (a method it turns out not to support is dropped)."""
        pending = items
        while pending:
            methods = [m for m in _TRACE_METHODS if m in self.features]
            if not methods:
                for item in pending:
                    item.trace_note = "not traced: the node does not support tracing"
                return
            method = methods[0]
            jobs = self._parity_jobs(pending) if method == "parity_trace" else self._debug_jobs(pending)
            unsupported: list[str] = []
            for start in range(0, len(jobs), self.trace_batch_size):
                chunk = jobs[start : start + self.trace_batch_size]
                calls = [job.call for job in chunk]
                for job, outcome in zip(chunk, self._batch_parsed(calls, partial(_parse_traces, chunk)), strict=True):
                    if isinstance(outcome, JsonRpcError):
                        if _unsupported(outcome):
                            unsupported.append(outcome.message)
                            continue
                        for item in job.items:
                            item.trace_note = f"not traced: {outcome.message}"
                        continue
                    for item in job.items:
                        item.internal, item.trace_note = outcome[item.tx_hash]
            if not unsupported:
                return
            log.warning("%s: the node does not support %s (%s)", self.network.name, method, unsupported[0])
            self._set_features(self.features - {method})
            pending = [item for item in pending if item.internal is None and item.trace_note == "not needed"]

    def _parity_jobs(self, items: list[_Found]) -> list[_TraceJob]:
        by_block: dict[str, list[_Found]] = {}
        for item in items:
            by_block.setdefault(item.block_hash, []).append(item)
        jobs = []
        for block_hash, block_items in by_block.items():
            if self._trace_whole_block(block_hash, len(block_items)):
                first = block_items[0]
                jobs.append(_TraceJob(("trace_block", [hex(first.block_number)]), "parity", block_items))
            else:
                jobs.extend(_TraceJob(("trace_transaction", [i.tx_hash]), "parity", [i]) for i in block_items)
        return jobs

    def _trace_whole_block(self, block_hash: str, wanted: int) -> bool:
        """One ``trace_block`` rather than ``wanted`` ``trace_transaction`` calls? (A block whose
        size is unknown counts as small enough.)"""
        if wanted < self.trace_block_min_txs:
            return False
        with self._lock:
            size = self._blocks.get(block_hash, (0, None))[1]
        return size is None or wanted >= self.trace_block_min_share * size

    def _debug_jobs(self, items: list[_Found]) -> list[_TraceJob]:
        return [_TraceJob(("debug_traceTransaction", [i.tx_hash, _CALL_TRACER]), "debug", [i]) for i in items]

    def _observation(self, item: _Found) -> Observation:
        tx, receipt = item.tx, item.receipt
        name = self.network.name
        if tx is None:
            return Observation(network=name, tx_hash=item.tx_hash, status=TxStatus.NOT_FOUND)
        sender = _checksum(str(tx["from"]))
        to = _checksum(str(tx["to"])) if tx.get("to") else None
        value = _hex_int(tx, "value")
        data = str(tx.get("input") or tx.get("data") or "0x")
        details: dict[str, Any] = {
            "to": to,
            "nonce": _hex_int(tx, "nonce"),
            "method": data[:10] if len(data) >= 10 else None,
        }
        if receipt is None:
            details["attempted"] = _attempted(to, value, data)
            return Observation(
                network=name, tx_hash=item.tx_hash, status=TxStatus.PENDING, sender=sender, details=details
            )
        block_number = _hex_int(receipt, "blockNumber")
        status_raw = receipt.get("status")
        if status_raw is None:  # pre-Byzantium receipt: only a state root
            status = TxStatus.SUCCESS
            details["status_unknown"] = True
        else:
            status = TxStatus.SUCCESS if _int(status_raw, "status") == 1 else TxStatus.FAILED
        gas_used = _hex_int(receipt, "gasUsed")
        price = receipt.get("effectiveGasPrice") or tx.get("gasPrice")
        fee = gas_used * _int(price, "effectiveGasPrice") if price is not None else None
        if fee is not None and receipt.get("l1Fee") is not None:  # OP-stack chains
            fee += _int(receipt["l1Fee"], "l1Fee")
        created = receipt.get("contractAddress")
        details.update(
            gas_used=gas_used,
            tx_index=_hex_int(receipt, "transactionIndex"),
            contract_created=_checksum(str(created)) if created else None,
            internal_transfers=item.trace_note,
        )
        transfers: list[Transfer] = []
        if status is TxStatus.SUCCESS:
            recipient = to or (_checksum(str(created)) if created else None)
            if value > 0 and recipient is not None:
                transfers.append(Transfer(AssetKind.NATIVE, sender, recipient, value, index=0))
            if item.internal is not None:
                transfers.extend(item.internal)
            # read without the lock: entries are only ever added (whole), and a dict read is atomic
            transfers.extend(decode_receipt_transfers(receipt, self._tokens))
        else:
            details["attempted"] = _attempted(to, value, data)
        return Observation(
            network=name,
            tx_hash=item.tx_hash,
            status=status,
            block_number=block_number,
            block_hash=str(receipt["blockHash"]).lower(),
            confirmations=max(0, item.head - block_number + 1),
            timestamp=_utc(item.block_timestamp) if item.block_timestamp is not None else None,
            sender=sender,
            transfers=tuple(transfers),
            fee=fee,
            details=details,
        )

    # ----------------------------------------------------------------- tokens

    def token_info(self, contract: str) -> TokenInfo:
        """symbol/name/decimals read on chain (cached per adapter)."""
        key = self.normalize_address(contract).lower()
        with self._lock:
            cached = self._tokens.get(key)
        if cached is not None:
            return cached
        calls: list[RpcCall] = [("eth_call", [{"to": key, "data": s}, "latest"]) for s in (_SYMBOL, _NAME, _DECIMALS)]
        replies = self.transport.batch(calls)
        values = dict(zip((_SYMBOL, _NAME, _DECIMALS), replies, strict=True))
        info = _token_info(values)
        if _settled(values):
            with self._lock:
                self._tokens[key] = info
        return info

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions that delivered value to ``address`` in blocks ``since..until`` (inclusive;
        ``until`` defaults to the latest block, and blocks above the latest are not searched yet:
        a range wholly above it finds nothing), oldest first, each with all its transfers.

        Tokens: ``eth_getLogs`` on the Transfer topic with the address as third topic, chunked by
        block range (a range the node refuses is halved). Native coin: ``trace_filter`` (top-level
        and internal transfers) where the node has it, else a scan of the blocks' transactions
        (top-level only) for ranges up to ``native_scan_max_blocks``.
        """
        target = addresses.normalize_address("evm", address, field="address")
        return self._incoming({address: target}, since, until)[address]

    def incoming_many(self, recipients: Sequence[str], since: int, until: int | None = None
                      ) -> dict[str, list[Observation]]:
        """:meth:`incoming` for many addresses over the same blocks, keyed by the strings passed in:
        for each address exactly what ``incoming(address, since, until)`` answers, in a fraction of
        the requests.

        One ``eth_getLogs`` per block range with the addresses as an OR-list in the Transfer
        event's third topic (``log_filter_addresses`` at most, default 1,000: go-ethereum's and BNB
        Smart Chain's cap per topic position), one ``trace_filter`` per range with ``toAddress`` as a
        list (``trace_filter_addresses``, default 1,000), or one scan of the blocks without
        ``trace_filter``; then one :meth:`lookup_many` of every transaction found. A list the node
        refuses ("exceed max addresses or topics per search position", "... filters. The current
        limit is ...") is split in halves and the smaller size kept; a refused range is halved as
        in :meth:`incoming`; too many results in one block splits the list. A transaction of
        another address that was never asked for is ignored; any failure fails the whole call
        (:class:`ChainUnavailable`), never a shorter answer for some address.
        """
        if isinstance(recipients, str):
            raise TypeError("incoming_many takes a sequence of addresses, not one string")
        targets = {a: addresses.normalize_address("evm", a, field="addresses") for a in recipients}
        return self._incoming(targets, since, until)

    def _incoming(self, targets: Mapping[str, str], since: int, until: int | None) -> dict[str, list[Observation]]:
        """``targets``: given string -> checksummed address."""
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a block number (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a block number >= since ({since})")
        if not targets:
            return {}
        latest = self._latest_number()
        last = latest if until is None else min(until, latest)
        if last < since:
            return {given: [] for given in targets}
        wanted = sorted({t.lower() for t in targets.values()})
        #: tx hash -> the addresses (lowercase) it was found for
        hits: dict[str, set[str]] = {}
        by_topic = {"0x" + "0" * 24 + a[2:]: a for a in wanted}
        try:
            for entry in self._logs(since, last, list(by_topic)):
                topics = entry.get("topics")
                if not isinstance(topics, list) or len(topics) != 3 or entry.get("removed"):
                    continue
                recipient = by_topic.get(str(topics[2]).lower())
                if recipient is not None:  # a node may answer more than asked: not ours
                    hits.setdefault(_hex_str(entry, "transactionHash").lower(), set()).add(recipient)
            for tx_hash, recipient in self._native_incoming(wanted, since, last):
                hits.setdefault(tx_hash, set()).add(recipient)
        except UnusableAnswer as exc:
            raise ChainUnavailable(self.network.name, f"malformed answer: {exc}") from exc
        found: dict[str, list[Observation]] = {a: [] for a in wanted}
        if hits:
            observed = self.lookup_many(list(hits))
            vanished = [h for h, o in observed.items() if o.block_number is None]
            if vanished:  # in the logs or traces, yet not (or no longer) in a block: ask again later
                raise ChainUnavailable(self.network.name, f"{vanished[0]} was seen in block range {since}..{last} "
                                       "but the node does not find it in a block (reorganized?)")
            for tx_hash, obs in observed.items():
                # a failed transaction moved nothing; a trace_filter hit inside a call that reverted
                # moved nothing either (the lookup's own trace says so, when the node traces)
                if obs.status is not TxStatus.SUCCESS:
                    continue
                traced = obs.details.get("internal_transfers") == "traced"
                recipients = {t.recipient.lower() for t in obs.transfers}
                for target in hits[tx_hash]:
                    if target in recipients or not traced:
                        found[target].append(obs)
            for delivered in found.values():
                delivered.sort(key=lambda o: (o.block_number or 0, int(o.details.get("tx_index") or 0)))
        return {given: list(found[target.lower()]) for given, target in targets.items()}

    def _latest_number(self) -> int:
        return _int(self.transport.call("eth_blockNumber"), "eth_blockNumber")

    def _logs(self, since: int, until: int, topics: list[str]) -> list[Mapping[str, Any]]:
        """Transfer logs to any of ``topics`` (addresses as 32-byte topics) in ``since..until``."""
        def params(a: int, b: int, group: list[str]) -> list[Any]:
            # one address as a plain topic (what every node takes), several as an OR-list
            recipients: Any = group[0] if len(group) == 1 else group
            return [{"fromBlock": hex(a), "toBlock": hex(b), "topics": [TRANSFER_TOPIC, None, recipients]}]

        try:
            return self._ranged("eth_getLogs", params, since, until, topics, "log_chunk_blocks", "log_filter_addresses")
        except JsonRpcError as error:
            raise ChainUnavailable(self.network.name, f"eth_getLogs: {error.message}") from error

    def _ranged(
        self, method: str, params: Callable[[int, int, list[str]], list[Any]], since: int, until: int,
        targets: list[str], cap: str, list_cap: str,
    ) -> list[Mapping[str, Any]]:
        """A block-range query for a list of targets, split in ranges of ``self.<cap>`` blocks and
        lists of ``self.<list_cap>`` targets, all sent in one batch. A list the node refuses is
        split in halves, a range it refuses (too wide, too many results) halved, and the smaller
        size kept for next time; too many results in a single block splits the list; a single
        block refused for a single target is "unavailable". A method the node does not have
        raises its :class:`JsonRpcError`."""
        step, width = getattr(self, cap), getattr(self, list_cap)
        jobs = [
            (a, min(a + step - 1, until), targets[start : start + width])
            for start in range(0, len(targets), width)
            for a in range(since, until + 1, step)
        ]
        out: list[Mapping[str, Any]] = []
        while jobs:
            replies = self.transport.batch([(method, params(a, b, group)) for a, b, group in jobs])
            retry: list[tuple[int, int, list[str]]] = []
            for (a, b, group), reply in zip(jobs, replies, strict=True):
                if isinstance(reply, JsonRpcError):
                    if _unsupported(reply):
                        raise reply
                    listed = _LIST_REFUSED.search(reply.message) is not None
                    if len(group) > 1 and (listed or a == b):
                        half = len(group) // 2
                        retry.extend([(a, b, group[:half]), (a, b, group[half:])])
                        if listed:
                            with self._lock:
                                setattr(self, list_cap, max(1, min(getattr(self, list_cap), half)))
                        continue
                    if a == b:
                        raise ChainUnavailable(self.network.name, f"{method} failed for block {a}: {reply.message}")
                    middle = (a + b) // 2
                    retry.extend([(a, middle, group), (middle + 1, b, group)])
                    with self._lock:
                        setattr(self, cap, max(1, min(getattr(self, cap), middle - a + 1)))
                    continue
                if not isinstance(reply, list) or not all(isinstance(e, Mapping) for e in reply):
                    raise ChainUnavailable(self.network.name, f"{method} answered {reply!r:.120}")
                out.extend(reply)
            jobs = retry
        return out

    def _native_incoming(self, targets: list[str], since: int, until: int) -> list[tuple[str, str]]:
        """(tx hash, recipient) of native value sent to any of ``targets`` (lowercase)."""
        if "trace_filter" in self.features:
            try:
                return self._trace_filter(targets, since, until)
            except JsonRpcError as error:  # the node has no trace_filter
                log.warning("%s: trace_filter unsupported (%s); scanning blocks instead", self.network.name,
                            error.message)
                self._set_features(self.features - {"trace_filter"})
        if until - since + 1 > self.native_scan_max_blocks:
            log.warning(
                "%s: native deposits not searched in %d..%d (more than %d blocks, no trace_filter)",
                self.network.name, since, until, self.native_scan_max_blocks,
            )
            return []
        wanted = set(targets)
        calls: list[RpcCall] = [("eth_getBlockByNumber", [hex(n), True]) for n in range(since, until + 1)]
        found: list[tuple[str, str]] = []
        for reply in self.transport.batch(calls):
            if reply is None:  # inside the range below the head: the node should have it
                raise ChainUnavailable(self.network.name, "a block in the range is unknown to the node")
            block = _block(reply, "block")
            for tx in block.get("transactions") or []:
                if not isinstance(tx, Mapping):
                    continue
                recipient = str(tx.get("to") or "").lower()
                if recipient in wanted and _int(tx.get("value", "0x0"), "value") > 0:
                    found.append((str(tx["hash"]).lower(), recipient))
        return found

    def _trace_filter(self, targets: list[str], since: int, until: int) -> list[tuple[str, str]]:
        traces = self._ranged(
            "trace_filter", lambda a, b, group: [{"fromBlock": hex(a), "toBlock": hex(b), "toAddress": group}],
            since, until, targets, "trace_filter_blocks", "trace_filter_addresses",
        )
        wanted = set(targets)
        found: list[tuple[str, str]] = []
        for trace in traces:
            if trace.get("error"):
                continue
            moved = _parity_value(trace)
            if moved is not None and moved[1].lower() in wanted:
                found.append((_hex_str(trace, "transactionHash").lower(), moved[1].lower()))
        return found

    # ----------------------------------------------------------------- helpers

    def _set_features(self, features: frozenset[str]) -> None:
        """``trace`` stands for "at least one tracing method works"."""
        methods = features & set(_TRACE_METHODS)
        self.features = frozenset((features - {"trace"}) | methods | ({"trace"} if methods else set()))

    def _check_not_behind(self, head: int, unknown: list[str]) -> None:
        """A node whose head is below one already seen on this network is behind (a lagging node
        behind a load balancer, or one still syncing): its "not found" is not an answer, so that
        reply is unusable and the transport asks again or fails over. Found transactions are
        checked against the head separately (a receipt above the head is malformed)."""
        now = time.monotonic()
        with self._lock:
            if head >= self._high_water or now - self._high_water_at > self.head_memory:
                # a new high, or every answer has been below the old one for too long: the chain
                # itself went back (a node restarted from scratch, a local chain reverted)
                self._high_water, self._high_water_at = head, now
            behind = head < self._high_water
            seen = self._high_water
        if behind and unknown:
            raise UnusableAnswer(
                f"node is behind (head {head}, block {seen} seen before) and does not know {unknown[0]}"
            )

    def _check_head_age(self, timestamp: int, *, unusable: bool = False) -> None:
        if self.max_head_age is None:
            return
        age = time.time() - timestamp
        if age > self.max_head_age:
            reason = f"node is behind: its latest block is {age:.0f}s old (limit {self.max_head_age:.0f}s)"
            if unusable:
                raise UnusableAnswer(reason)
            raise ChainUnavailable(self.network.name, reason)

    def _remember_block(self, block_hash: str, facts: tuple[int, int | None]) -> None:
        """Remember a block's (timestamp, transaction count), the newest 50,000 blocks."""
        with self._lock:
            self._blocks[block_hash.lower()] = facts
            self._blocks.move_to_end(block_hash.lower())
            while len(self._blocks) > 50_000:
                self._blocks.popitem(last=False)


@dataclass(frozen=True, slots=True)
class _TraceJob:
    """One trace call and the transactions it answers for."""

    call: RpcCall
    style: str  # "parity" (trace_transaction / trace_block) or "debug" (call tracer)
    items: list[_Found]


_TraceOutcome = dict[str, tuple[list[Transfer] | None, str]]


def _unsupported(error: JsonRpcError) -> bool:
    """The node does not have the method (as opposed to failing on this call)."""
    return error.code == -32601 or any(t in error.message.lower() for t in _UNSUPPORTED_TEXT)


def _parse_metadata(
    handlers: list[tuple[str, str]], replies: list[Any]
) -> tuple[dict[str, tuple[int, int | None]], dict[str, TokenInfo]]:
    """Blocks' (timestamp, transaction count) by block hash, and token metadata by lowercase contract."""
    blocks: dict[str, tuple[int, int | None]] = {}
    raw_tokens: dict[str, dict[str, Any]] = {}
    for (kind, key), reply in zip(handlers, replies, strict=True):
        if kind == "block":
            if reply is None:
                raise _Malformed(f"block {key} is unknown to the node (reorganized?)")
            block = _block(reply, f"block {key}")
            if str(block.get("hash", "")).lower() != key:
                raise _Malformed(f"asked for block {key}, got {block.get('hash')!r}")
            blocks[key] = (_hex_int(block, "timestamp"), _tx_count(block))
        else:
            raw_tokens.setdefault(key, {})[kind] = reply
    # a token whose calls failed for another reason than "execution reverted" (no such function)
    # is asked again next time rather than remembered without decimals
    return blocks, {contract: _token_info(values) for contract, values in raw_tokens.items() if _settled(values)}


def _settled(values: Mapping[str, Any]) -> bool:
    """Every metadata call answered: a value, or a revert (the contract has no such function)."""
    return all(
        not isinstance(reply, JsonRpcError) or reply.code == 3 or "revert" in reply.message.lower()
        for reply in values.values()
    )


def _parse_traces(jobs: Sequence[_TraceJob], replies: list[Any]) -> list[JsonRpcError | _TraceOutcome]:
    """Each job's answer: the node's error, or tx hash -> (internal transfers, note)."""
    out: list[JsonRpcError | _TraceOutcome] = []
    for job, reply in zip(jobs, replies, strict=True):
        if isinstance(reply, JsonRpcError):
            out.append(reply)
            continue
        if reply is None:
            out.append({i.tx_hash: (None, "not traced: the node has no trace for it") for i in job.items})
            continue
        if job.style == "debug":
            if not isinstance(reply, Mapping) or not isinstance(reply.get("type"), str):
                raise _Malformed(f"trace of {job.items[0].tx_hash} is not a call frame: {reply!r:.120}")
            out.append({job.items[0].tx_hash: (decode_trace_transfers(reply), "traced")})
            continue
        if not isinstance(reply, list) or not all(isinstance(e, Mapping) for e in reply):
            raise _Malformed(f"{job.call[0]} answered {reply!r:.120}")
        by_tx: dict[str, list[Mapping[str, Any]]] = {}
        for entry in reply:
            by_tx.setdefault(str(entry.get("transactionHash") or "").lower(), []).append(entry)
        outcome: _TraceOutcome = {}
        for item in job.items:
            entries = by_tx.get(item.tx_hash)
            if not entries:
                raise _Malformed(f"{job.call[0]} has no trace of {item.tx_hash}")
            for entry in entries:
                if entry.get("blockHash") is not None and str(entry["blockHash"]).lower() != item.block_hash:
                    raise _Malformed(f"trace of {item.tx_hash} is in block {entry['blockHash']}, "
                                     f"its receipt in {item.block_hash} (reorganized?)")
            outcome[item.tx_hash] = (decode_parity_transfers(entries), "traced")
        out.append(outcome)
    return out


# --------------------------------------------------------------------- pure decoding


def decode_receipt_transfers(
    receipt: Mapping[str, Any], tokens: Mapping[str, TokenInfo] | None = None
) -> list[Transfer]:
    """ERC-20 ``Transfer`` logs of a receipt (exactly three topics: ERC-721 has four), from any
    contract, in log order; ``index`` is the log index. ``tokens`` (lowercase contract -> metadata)
    fills in symbol, name and decimals where known."""
    transfers = []
    for entry in _transfer_logs(receipt):
        topics = entry["topics"]
        sender, recipient = _topic_address(topics[1]), _topic_address(topics[2])
        data = str(entry.get("data") or "")
        if sender is None or recipient is None or len(data) != 66:
            continue
        contract = str(entry["address"])
        info = tokens.get(contract.lower()) if tokens is not None else None
        transfers.append(
            Transfer(
                AssetKind.TOKEN,
                sender,
                recipient,
                int(data, 16),
                index=_int(entry.get("logIndex"), "logIndex"),
                contract=_checksum(contract),
                symbol=info.symbol if info else None,
                token_name=info.name if info else None,
                decimals=info.decimals if info else None,
            )
        )
    return transfers


def decode_trace_transfers(trace: Mapping[str, Any]) -> list[Transfer]:
    """Native value moved by contract code, from a call-tracer frame tree (``internal=True``).

    The top frame (the transaction's own value) is not included. Frames that reverted, and
    everything under them, moved nothing. ``index`` is the frame's position in call order.
    """
    out: list[Transfer] = []
    position = 0

    def walk(frame: Mapping[str, Any], depth: int, reverted: bool) -> None:
        nonlocal position
        here = position
        position += 1
        reverted = reverted or bool(frame.get("error"))
        kind = str(frame.get("type", "")).upper()
        value = _int(frame.get("value") or "0x0", "value")
        if depth > 0 and not reverted and kind in _VALUE_FRAMES and value > 0 and frame.get("to"):
            out.append(
                Transfer(
                    AssetKind.NATIVE,
                    _checksum(str(frame["from"])),
                    _checksum(str(frame["to"])),
                    value,
                    index=here,
                    internal=True,
                )
            )
        for child in frame.get("calls") or ():
            if isinstance(child, Mapping):
                walk(child, depth + 1, reverted)

    walk(trace, 0, False)
    return out


def decode_parity_transfers(traces: Sequence[Mapping[str, Any]]) -> list[Transfer]:
    """Native value moved by contract code, from one transaction's parity-style traces
    (``trace_transaction``, or its part of ``trace_block``), ``internal=True``.

    Same rules and indexes as :func:`decode_trace_transfers`: the top-level call (empty
    ``traceAddress``) is left out, a call that failed moved nothing and neither did anything under
    it, DELEGATECALL/STATICCALL/CALLCODE frames move no value to anyone else; ``index`` is the
    frame's position in call order (the top-level call is 0).
    """
    def address_of(entry: Mapping[str, Any]) -> tuple[int, ...]:
        path = entry.get("traceAddress")
        if not isinstance(path, list) or not all(isinstance(p, int) and not isinstance(p, bool) for p in path):
            raise _Malformed(f"trace without a valid traceAddress: {entry!r:.120}")
        return tuple(path)

    ordered = sorted(((address_of(e), e) for e in traces), key=lambda pair: pair[0])
    failed: set[tuple[int, ...]] = set()
    out: list[Transfer] = []
    for position, (path, entry) in enumerate(ordered):
        if entry.get("error") or any(path[:n] in failed for n in range(len(path))):
            failed.add(path)
            continue
        if not path:
            continue
        moved = _parity_value(entry)
        if moved is not None:
            sender, recipient, amount = moved
            out.append(Transfer(AssetKind.NATIVE, sender, recipient, amount, index=position, internal=True))
    return out


def _parity_value(entry: Mapping[str, Any]) -> tuple[str, str, int] | None:
    """(sender, recipient, amount) of the native value one parity-style trace frame moves, if any
    (a CALL, a contract creation, a self-destruct paying out; not DELEGATECALL/STATICCALL/CALLCODE)."""
    action = entry.get("action")
    if not isinstance(action, Mapping):
        raise _Malformed(f"trace without an action: {entry!r:.120}")
    kind = str(entry.get("type", "")).lower()
    if kind == "call":
        if str(action.get("callType", "call")).lower() != "call":
            return None
        sender, recipient, value = action.get("from"), action.get("to"), action.get("value")
    elif kind in ("create", "create2"):
        result = entry.get("result")
        sender, value = action.get("from"), action.get("value")
        recipient = result.get("address") if isinstance(result, Mapping) else None
    elif kind in ("suicide", "selfdestruct"):
        sender, recipient, value = action.get("address"), action.get("refundAddress"), action.get("balance")
    else:  # block rewards and anything newer: not a transfer made by a transaction
        return None
    amount = _int(value if value is not None else "0x0", "value")
    if amount <= 0 or not sender or not recipient:
        return None
    return _checksum(str(sender)), _checksum(str(recipient)), amount


def _transfer_logs(receipt: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for entry in receipt.get("logs") or ():
        topics = entry.get("topics") if isinstance(entry, Mapping) else None
        if (
            isinstance(topics, list)
            and len(topics) == 3
            and str(topics[0]).lower() == TRANSFER_TOPIC
            and not entry.get("removed")
        ):
            yield entry


def _topic_address(topic: Any) -> str | None:
    text = str(topic).lower()
    if len(text) != 66 or not text.startswith("0x") or text[2:26] != "0" * 24:
        return None
    return _checksum("0x" + text[26:])


def _token_info(values: Mapping[str, Any]) -> TokenInfo:
    return TokenInfo(
        symbol=_abi_text(values.get(_SYMBOL)),
        name=_abi_text(values.get(_NAME)),
        decimals=_abi_uint8(values.get(_DECIMALS)),
    )


def _abi_text(reply: Any) -> str | None:
    """A ``string`` return value, or a ``bytes32`` one (old tokens such as MKR)."""
    if not isinstance(reply, str) or not reply.startswith("0x") or len(reply) < 66:
        return None
    from eth_abi.abi import decode as abi_decode  # once per token contract (the metadata is cached)

    raw = bytes.fromhex(reply[2:])
    with contextlib.suppress(Exception):  # not an ABI string: maybe bytes32
        (text,) = abi_decode(["string"], raw)
        return str(text).strip("\x00") or None
    if len(raw) == 32:
        return raw.rstrip(b"\x00").decode("utf-8", errors="replace") or None
    return None


def _abi_uint8(reply: Any) -> int | None:
    if not isinstance(reply, str) or not reply.startswith("0x") or len(reply) != 66:
        return None
    value = int(reply, 16)
    return value if value <= 255 else None


def _attempted(to: str | None, value: int, data: str) -> dict[str, Any]:
    """What a failed or pending transaction tried to move (for the case file; nothing moved)."""
    attempted: dict[str, Any] = {"to": to, "value": str(value)}
    if data.startswith(_ERC20_TRANSFER) and len(data) == 10 + 128 and to is not None:
        recipient = _topic_address("0x" + data[10:74])
        if recipient is not None:
            attempted["token_transfer"] = {"contract": to, "recipient": recipient, "amount": str(int(data[74:], 16))}
    return attempted


def _check_pair(h: str, tx: Mapping[str, Any] | None, receipt: Mapping[str, Any] | None, head: int) -> _Found:
    if tx is None:
        if receipt is not None:
            raise _Malformed(f"{h}: a receipt but no transaction")
        return _Found(h, None, None, head)
    if str(tx.get("hash", "")).lower() != h:
        raise _Malformed(f"asked for transaction {h}, got {tx.get('hash')!r}")
    for key in ("from", "value", "nonce"):
        if key not in tx:
            raise _Malformed(f"transaction {h} has no {key!r}")
    _hex_int(tx, "value")
    _hex_int(tx, "nonce")
    _checksum(str(tx["from"]))
    if tx.get("to") is not None:
        _checksum(str(tx["to"]))
    if receipt is None:
        if tx.get("blockNumber") is not None:
            raise _Malformed(f"transaction {h} is mined but the node has no receipt")
        return _Found(h, tx, None, head)
    if str(receipt.get("transactionHash", "")).lower() != h:
        raise _Malformed(f"asked for receipt {h}, got {receipt.get('transactionHash')!r}")
    block = _hex_int(receipt, "blockNumber")
    if block > head:
        raise _Malformed(f"receipt {h} is in block {block}, above the node's head {head}")
    _hex_str(receipt, "blockHash")
    gas_used = _hex_int(receipt, "gasUsed")
    if not isinstance(receipt.get("logs"), list):
        raise _Malformed(f"receipt {h} has no logs list")
    success = receipt.get("status") is None or _int(receipt.get("status"), "status") == 1
    data = str(tx.get("input") or "0x")
    # a plain transfer to an account without code uses exactly 21,000 gas and runs no code
    needs_trace = success and (gas_used != _PLAIN_TRANSFER_GAS or data not in ("0x", ""))
    return _Found(h, tx, receipt, head, needs_trace=needs_trace)


def _optional_object(reply: Any, what: str) -> Mapping[str, Any] | None:
    if reply is None:
        return None
    if isinstance(reply, JsonRpcError):
        raise _Malformed(f"{what}: {reply.message}")
    if not isinstance(reply, Mapping):
        raise _Malformed(f"{what} is not an object: {reply!r:.120}")
    return reply


def _tx_count(block: Mapping[str, Any]) -> int | None:
    """How many transactions a block header (asked without full transactions) lists; None if it
    lists none (only a hint for choosing how to trace: never trusted for anything else)."""
    listed = block.get("transactions")
    return len(listed) if isinstance(listed, list) else None


def _block(reply: Any, what: str) -> Mapping[str, Any]:
    if isinstance(reply, JsonRpcError):
        raise _Malformed(f"{what}: {reply.message}")
    if not isinstance(reply, Mapping):
        raise _Malformed(f"{what} is not an object: {reply!r:.120}")
    return reply


def _int(value: Any, what: str) -> int:
    if type(value) is str and value[:2] == "0x":  # the usual case first
        try:
            return int(value, 16)
        except ValueError:
            pass
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if isinstance(value, str) and value.startswith(("0x", "0X")):
        try:
            return int(value, 16)
        except ValueError:
            pass
    raise _Malformed(f"{what}: expected a hex quantity, got {value!r:.80}")


def _hex_int(obj: Mapping[str, Any], key: str) -> int:
    return _int(obj.get(key), key)


def _hex_str(obj: Mapping[str, Any], key: str) -> str:
    value = obj.get(key)
    if not isinstance(value, str) or not value.startswith("0x"):
        raise _Malformed(f"{key}: expected hex data, got {value!r:.80}")
    return value


def _checksum(address: str) -> str:
    try:
        return eip55_checksum(address.lower())
    except ValueError:
        raise _Malformed(f"not an address: {address!r:.80}") from None


def _utc(timestamp: int) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=UTC)

