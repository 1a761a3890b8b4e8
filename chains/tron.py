"""The TRON chain adapter (java-tron full-node HTTP API, as TronGrid and other providers serve it).

A lookup asks, for each hash, ``POST /wallet/gettransactionbyid`` (what the transaction does:
its contract, owner, memo) and ``POST /wallet/gettransactioninfobyid`` (what happened: block,
fee, result, event logs), plus ``POST /wallet/getnowblock`` once for confirmations.

- Both answer ``{}`` for a hash the node does not know: ``not_found``. A transaction whose body is
  known but whose info is still ``{}`` is not in a block yet: ``pending`` (its transfers are those
  the body describes). An info without a body (a node that pruned or has not indexed the body) is
  still decoded from the info alone.
- TRX (``TransferContract``) transfers are ``native``; TRC-10 (``TransferAssetContract``, and
  ``call_token_value`` of a contract call) are ``trc10`` with ``contract`` = the numeric asset id
  as text (``asset_name`` "1002000" as TronGrid gives it, or its hex ``31303032303030`` as
  java-tron's ``visible=false`` answers give it). TRC-20 transfers come from the ``Transfer``
  event logs of the info, and, where there is no log (a pending call, or a token that emits
  none), from ``transfer(address,uint256)`` / ``transferFrom(address,address,uint256)`` call
  data, whose address words may carry TRON's 0x41 prefix byte in front of the 20 address bytes.
  TRX and TRC-10 a contract moved (``internal_transactions`` of the info, java-tron's
  ``InternalTransaction``: ``callValueInfo``, not ``rejected``) are ``internal`` transfers.
- Results follow java-tron's ``Transaction.Result.contractResult`` enum (core/Tron.proto):
  ``SUCCESS`` (and ``DEFAULT``, the value an omitted field means) is success; ``REVERT``,
  ``OUT_OF_ENERGY``, ``OUT_OF_TIME``, ``BAD_JUMP_DESTINATION``, ``TRANSFER_FAILED``, ... are
  ``failed`` (what the call attempted in ``details["attempted"]``); ``TransactionInfo.result`` and
  ``ret[].code`` are ``SUCESS`` (sic) or ``FAILED``. Any other value, an unknown contract type, a
  contract call that states no result, or a transfer field that cannot be read makes the
  transaction ``unclear`` (:func:`chains.base.unclear`, with the node's raw answer): never a success.
- Known contract types that move nothing to a third party (freeze, unfreeze, votes, resource
  delegation, account updates, ...) are successes with no transfer.
- ``raw_data.data`` is the transaction's memo (hex of UTF-8 text).
- Addresses are returned as Base58Check ``T…``; contracts too (as the configuration lists them).
- TronGrid answers 503 (or 429) when it rate-limits: the transport fails over and finally raises
  :class:`~chains.base.ChainUnavailable`.

``incoming`` reads TronGrid's account history, which pages by time (``since`` and ``until`` are
unix times in seconds); see :meth:`TronAdapter.incoming`.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any, Final, TypeGuard, TypeVar

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
    unclear,
)
from chains.network import Network
from chains.transport import Transport, TransportOptions, UnusableAnswer, positive_option

__all__ = [
    "TRANSFER_TOPIC",
    "ContractReading",
    "RestTransport",
    "TronAdapter",
    "decode_call_transfer",
    "decode_log_transfers",
    "decode_memo",
    "decode_page_entry",
    "decode_transaction",
    "read_contract",
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
#: java-tron ``Transaction.Result.contractResult`` (core/Tron.proto): the values that are not a failure
#: (``DEFAULT`` = 0 is also what an omitted field means in java-tron's JSON)
_OK_RESULTS: Final = frozenset({"SUCCESS", "DEFAULT"})
#: ... and the values that mean the contract did not run to its end (its effects were undone)
_FAILED_RESULTS: Final = frozenset(
    {
        "REVERT",
        "BAD_JUMP_DESTINATION",
        "OUT_OF_MEMORY",
        "PRECOMPILED_CONTRACT",
        "STACK_TOO_SMALL",
        "STACK_TOO_LARGE",
        "ILLEGAL_OPERATION",
        "STACK_OVERFLOW",
        "OUT_OF_ENERGY",
        "OUT_OF_TIME",
        "JVM_STACK_OVER_FLOW",
        "UNKNOWN",  # java-tron's "the VM failed with an unexpected error": a failure, not "we do not know"
        "TRANSFER_FAILED",
        "INVALID_CODE",
    }
)
#: ``TransactionInfo.code`` / ``Transaction.Result.code`` (java-tron spells it SUCESS)
_CODE_OK: Final = "SUCESS"
_CODE_FAILED: Final = "FAILED"
#: contract types (core/Tron.proto ``ContractType``) that move no value to anyone but their owner
_NO_TRANSFER_TYPES: Final = frozenset(
    {
        "AccountCreateContract",
        "AccountUpdateContract",
        "SetAccountIdContract",
        "AccountPermissionUpdateContract",
        "VoteWitnessContract",
        "VoteAssetContract",
        "WitnessCreateContract",
        "WitnessUpdateContract",
        "UpdateBrokerageContract",
        "ProposalCreateContract",
        "ProposalApproveContract",
        "ProposalDeleteContract",
        "FreezeBalanceContract",
        "UnfreezeBalanceContract",
        "FreezeBalanceV2Contract",
        "UnfreezeBalanceV2Contract",
        "WithdrawExpireUnfreezeContract",
        "CancelAllUnfreezeV2Contract",
        "DelegateResourceContract",
        "UnDelegateResourceContract",
        "WithdrawBalanceContract",
        "UnfreezeAssetContract",
        "UpdateAssetContract",
        "UpdateSettingContract",
        "UpdateEnergyLimitContract",
        "ClearABIContract",
    }
)
_TRANSFER_TYPES: Final = frozenset({"TransferContract", "TransferAssetContract", "TriggerSmartContract"})
_INT64_MAX: Final = 2**63 - 1
_PAGE_LIMIT: Final = 200
_HEX64: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_TRC10_ID: Final = re.compile(r"^[1-9][0-9]{0,18}$")


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
    #: ``incoming`` takes unix times (TronGrid pages account history by time), not block numbers
    incoming_unit: Final = "time"

    def __init__(self, network: Network, *, transport: RestTransport | None = None) -> None:
        if network.family != "tron":
            raise ValueError(f"network {network.name} is a {network.family} network, not tron")
        self.network = network
        extra = network.model_extra or {}
        self.features: frozenset[str] = frozenset()
        self.concurrency = positive_option(extra, "lookup_concurrency", 4, network.name)
        self.page_limit = positive_option(extra, "page_limit", _PAGE_LIMIT, network.name)
        if self.page_limit > _PAGE_LIMIT:
            raise ValueError(f"network {network.name}: page_limit must be at most {_PAGE_LIMIT} (TronGrid's page)")
        trc20 = extra.get("trc20_history", True)
        if not isinstance(trc20, bool):
            raise ValueError(f"network {network.name}: trc20_history must be true or false")
        #: whether ``incoming`` reads TronGrid's TRC-20 index (see :meth:`incoming`)
        self.trc20_history: bool = trc20
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
        try:
            when = _utc_ms(stamp) if _is_int(stamp) else None
        except ValueError:
            when = None
        return _head_number(body), when

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
        return decode_transaction(self.network.name, tx_hash, tx, info, head)

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions that paid ``address`` between two **unix times in seconds** (inclusive;
        ``until`` defaults to now), oldest first (by block, then hash).

        - TRX and TRC-10: TronGrid's ``/v1/accounts/{address}/transactions`` with ``only_to=true``,
          ordered by ``block_timestamp,asc``, following ``meta.fingerprint`` pages. An entry that
          carries its contract, ``ret[0]``, ``blockNumber`` and ``block_timestamp`` becomes an
          observation by itself (:func:`decode_page_entry`; confirmations from ``getnowblock``);
          any other entry (a contract call, whose token transfers are in event logs the entry does
          not hold, or an entry without its block) is looked up.
        - TRC-20: TronGrid does not list TRC-20 transfers an account *received* in ``/transactions``
          (TRON-US/trongrid#7, tronprotocol/java-tron#2919), so that list is never enough for them:
          ``/v1/accounts/{address}/transactions/trc20`` (``only_to=true``) is read too, and every
          transaction it names is looked up (the event logs say what moved). When that path fails
          (a provider without it answers 404/501, or an outage), ``incoming`` raises
          :class:`ChainUnavailable`: never a result without the TRC-20 deposits. A network whose
          operator decides TRC-20 deposits are not scanned there sets ``trc20_history = false``;
          ``incoming`` then finds TRX and TRC-10 only (the contract calls ``/transactions`` lists
          for the address are still looked up, but TRC-20 deposits made by others are not seen).
        - A transaction TronGrid listed and the node then does not know, or knows only as not yet
          in a block, is a contradiction: :class:`ChainUnavailable` ("try later"), never a gap.
        - Returned: every observation with a transfer to ``address``, and every ``unclear`` one
          among those TronGrid listed for it (a person reads those). Failed transactions moved
          nothing and are left out; so are entries that move nothing (freezes, votes, ...).

        Network keys: ``page_limit`` (entries per page, 1..200, default 200), ``trc20_history``.
        """
        target = self.normalize_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a unix time in seconds (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a unix time in seconds >= since ({since})")
        low, high = since * 1000, (until * 1000 + 999 if until is not None else None)
        params: dict[str, Any] = {
            "only_to": "true",
            "limit": self.page_limit,
            "order_by": "block_timestamp,asc",
            "min_timestamp": low,
        }
        if high is not None:
            params["max_timestamp"] = high
        name = self.network.name
        entries = self._pages(f"/v1/accounts/{target}/transactions", params)
        tokens = self._pages(f"/v1/accounts/{target}/transactions/trc20", params) if self.trc20_history else []

        read: dict[str, Observation] = {}
        to_look_up: dict[str, None] = {}
        blocks: list[int] = []
        for entry in entries:
            tx_hash = _listed_hash(entry.get("txID"), name)
            stamp = entry.get("block_timestamp")
            if _is_int(stamp) and not low <= stamp <= (high if high is not None else stamp):
                continue  # outside the window the request asked for
            obs = decode_page_entry(name, entry, None)
            if obs is None:
                to_look_up[tx_hash] = None
            else:
                read[tx_hash] = obs
                if obs.block_number is not None:
                    blocks.append(obs.block_number)
        for item in tokens:
            to_look_up[_listed_hash(item.get("transaction_id"), name)] = None
        for tx_hash in to_look_up:
            read.pop(tx_hash, None)  # a full lookup says more than an entry

        looked_up = self.lookup_many(list(to_look_up)) if to_look_up else {}
        for tx_hash, obs in looked_up.items():
            if obs.status in (TxStatus.NOT_FOUND, TxStatus.PENDING):
                raise ChainUnavailable(
                    name,
                    f"TronGrid listed {tx_hash} for {target} but the node answers it as {obs.status.value}; "
                    "the node is not in step with the history index, try later",
                )
        if read:
            head = self.head(max(blocks)) if blocks else None
            number = head[0] if head else None
            read = {
                h: replace(o, confirmations=max(0, number - o.block_number + 1))
                if number is not None and o.block_number is not None
                else o
                for h, o in read.items()
            }
        every = list(read.values()) + list(looked_up.values())
        kept = [
            o
            for o in every
            if o.status is TxStatus.UNCLEAR
            or (o.status is not TxStatus.FAILED and any(t.recipient == target for t in o.transfers))
        ]
        return sorted(kept, key=lambda o: (o.block_number is None, o.block_number or 0, o.tx_hash))

    def _pages(self, path: str, params: Mapping[str, Any]) -> list[Mapping[str, Any]]:
        """Every item of a TronGrid list, following ``meta.fingerprint`` until a page has none."""

        def check(body: Any) -> None:
            if (
                not isinstance(body, Mapping)
                or body.get("success") is not True
                or not isinstance(body.get("data"), list)
                or not isinstance(body.get("meta", {}), Mapping)
            ):
                raise _Malformed(f"not a TronGrid list answer: {str(body)[:160]}")
            fingerprint = body.get("meta", {}).get("fingerprint")
            if fingerprint is not None and not isinstance(fingerprint, str):
                raise _Malformed(f"meta.fingerprint is not text: {fingerprint!r}")

        items: list[Mapping[str, Any]] = []
        query = dict(params)
        seen: set[str] = set()
        for _ in range(10_000):
            body = self.transport.get_json(path, query, validate=check)
            for item in body["data"]:
                if not isinstance(item, Mapping):
                    raise ChainUnavailable(self.network.name, f"{path}: a list item is not an object: {str(item)[:80]}")
                items.append(item)
            fingerprint = (body.get("meta") or {}).get("fingerprint")
            if not fingerprint or not body["data"]:
                return items
            if fingerprint in seen:
                raise ChainUnavailable(self.network.name, f"{path}: the same fingerprint came back twice")
            seen.add(fingerprint)
            query = {**params, "fingerprint": fingerprint}
        raise ChainUnavailable(self.network.name, f"{path}: paging did not end after 10000 pages")


# --------------------------------------------------------------------------------------------------
# decoding (pure functions: no HTTP)


class ContractReading:
    """What one transaction's ``raw_data`` says, before its result is known: the contract ``kind``,
    the ``sender`` (owner), the TRX/TRC-10 transfers it ``planned``, the TRC-20 ``call`` its data
    asks for, and the ``reasons`` (one sentence each) it cannot be read with certainty."""

    def __init__(self) -> None:
        self.kind = ""
        self.sender: str | None = None
        self.planned: list[Transfer] = []
        self.call: CallTransfer | None = None
        self.details: dict[str, Any] = {}
        self.reasons: list[str] = []
        self.memo: str | None = None


def read_contract(raw: Any) -> ContractReading:
    """The contract of a transaction's ``raw_data``. Structural garbage raises (KeyError, TypeError,
    ValueError); a value the adapter cannot read with certainty becomes a reason (unclear)."""
    if not isinstance(raw, Mapping):
        raise TypeError("raw_data is not an object")
    out = ContractReading()
    out.memo = decode_memo(raw)
    contracts = raw["contract"]
    if not isinstance(contracts, list) or not contracts:
        raise ValueError("transaction without a contract")
    if len(contracts) > 1:
        out.reasons.append(f"raw_data.contract has {len(contracts)} entries; java-tron runs exactly one")
    contract = contracts[0]
    if not isinstance(contract, Mapping):
        raise TypeError("raw_data.contract[0] is not an object")
    kind = contract.get("type")
    value = contract["parameter"]["value"]
    if not isinstance(value, Mapping):
        raise TypeError("contract parameter value is not an object")
    if not isinstance(kind, str):
        out.reasons.append(f"raw_data.contract[0].type is {kind!r}, not a contract type name")
        return out
    out.kind = kind
    out.details["contract_type"] = kind
    out.sender = tron_address(value.get("owner_address"))
    if out.sender is None:
        out.reasons.append(f"owner_address {value.get('owner_address')!r} is not a TRON address")
    if kind == "TransferContract":
        to = _field_address(value, "to_address", out.reasons)
        amount = _field_amount(value, "amount", out.reasons, positive=True)
        if out.sender and to and amount:
            out.planned.append(Transfer(AssetKind.NATIVE, out.sender, to, amount, index=0))
    elif kind == "TransferAssetContract":
        to = _field_address(value, "to_address", out.reasons)
        amount = _field_amount(value, "amount", out.reasons, positive=True)
        token = _trc10_id(value.get("asset_name"))
        if token is None:
            out.reasons.append(f"asset_name {value.get('asset_name')!r} is not a TRC-10 asset id")
        if out.sender and to and amount and token:
            out.planned.append(Transfer(AssetKind.TRC10, out.sender, to, amount, index=0, contract=token))
    elif kind == "TriggerSmartContract":
        target = _field_address(value, "contract_address", out.reasons)
        data = value.get("data", "")
        if not isinstance(data, str):
            out.reasons.append(f"data is {data!r}, not hex text")
            data = ""
        out.details["to"] = target
        out.details["method"] = data[:8] or None
        if target and out.sender:
            out.call = decode_call_transfer(out.sender, target, data)
        call_value = _field_amount(value, "call_value", out.reasons, positive=False)
        if target and out.sender and call_value:
            out.planned.append(Transfer(AssetKind.NATIVE, out.sender, target, call_value, index=len(out.planned)))
        token_value = _field_amount(value, "call_token_value", out.reasons, positive=False)
        if token_value:
            token = _trc10_id(value.get("token_id"))
            if token is None:
                out.reasons.append(f"token_id {value.get('token_id')!r} is not a TRC-10 asset id")
            elif target and out.sender:
                out.planned.append(
                    Transfer(AssetKind.TRC10, out.sender, target, token_value, index=len(out.planned), contract=token)
                )
    elif kind not in _NO_TRANSFER_TYPES:
        out.reasons.append(f"contract type {kind!r} is not one the adapter reads (it may move value)")
    fee_limit = raw.get("fee_limit")
    if _is_int(fee_limit):
        out.details["fee_limit"] = fee_limit
    return out


def decode_transaction(
    network: str, tx_hash: str, tx: Mapping[str, Any], info: Mapping[str, Any], head: int | None
) -> Observation:
    """The observation of one transaction from its ``gettransactionbyid`` body ``tx`` and its
    ``gettransactioninfobyid`` answer ``info`` (either may be ``{}``); ``head`` is the latest block.
    An answer that is not what java-tron sends raises :class:`ChainUnavailable`."""
    if not tx and not info:
        return Observation(network=network, tx_hash=tx_hash, status=TxStatus.NOT_FOUND)
    try:
        return _decode(network, tx_hash, tx, info, head)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ChainUnavailable(network, f"malformed transaction {tx_hash}: {type(exc).__name__}: {exc}") from exc


def _decode(
    network: str, tx_hash: str, tx: Mapping[str, Any], info: Mapping[str, Any], head: int | None
) -> Observation:
    reasons: list[str] = []
    failures: list[str] = []
    reading = read_contract(tx["raw_data"]) if tx else None
    details: dict[str, Any] = dict(reading.details) if reading else {"body_missing": True}
    if reading:
        reasons += reading.reasons
        ret = _ret0(tx)
        _judge_result(ret.get("contractRet"), "ret[0].contractRet", failures, reasons)
        _judge_code(ret.get("code"), "ret[0].code", failures, reasons)
    sender = reading.sender if reading else None
    memo = reading.memo if reading else None
    planned = list(reading.planned) if reading else []
    call = reading.call if reading else None
    called = (
        [Transfer(AssetKind.TOKEN, call.sender, call.recipient, call.amount, len(planned), call.contract)]
        if call is not None
        else []
    )
    raw = {"transaction": dict(tx), "info": dict(info)}
    if not info:
        details["transfers_from"] = "transaction body (not yet in a block)"
        if call is not None:
            details["attempted"] = _attempted(call)
        pending = Observation(
            network=network,
            tx_hash=tx_hash,
            status=TxStatus.PENDING,
            sender=sender,
            transfers=tuple(planned + called),
            memo=memo,
            details=details,
        )
        return unclear(pending, reasons, raw) if reasons else pending
    block = _block_number(info)
    receipt = info.get("receipt") or {}
    if not isinstance(receipt, Mapping):
        raise TypeError("receipt is not an object")
    result = receipt.get("result")
    _judge_code(info.get("result"), "info.result", failures, reasons)
    _judge_result(result, "receipt.result", failures, reasons)
    contract_call = (reading.kind == "TriggerSmartContract") if reading else bool(info.get("contract_address"))
    stated = {str(v) for v in (result, _ret0(tx).get("contractRet") if tx else None) if isinstance(v, str)}
    if contract_call and not failures and "SUCCESS" not in stated:
        reasons.append(f"a contract call with no stated result (receipt.result {result!r})")
    details["result"] = failures[0] if failures else (result if isinstance(result, str) and result else "SUCCESS")
    if info.get("resMessage"):
        details["message"] = decode_memo({"data": info["resMessage"]})
    for key in ("energy_usage_total", "net_usage", "net_fee", "energy_fee"):
        if _is_int(receipt.get(key)):
            details[key] = receipt[key]
    transfers: list[Transfer] = []
    if failures:
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
        transfers += _internal_transfers(info, len(transfers), reasons)
    fee = info.get("fee", 0)
    stamp = info.get("blockTimeStamp")
    obs = Observation(
        network=network,
        tx_hash=tx_hash,
        status=status,
        block_number=block,
        confirmations=max(0, head - block + 1) if head is not None else 0,
        timestamp=_utc_ms(stamp) if _is_int(stamp) and stamp > 0 else None,
        sender=sender,
        transfers=tuple(transfers),
        memo=memo,
        fee=fee if _is_int(fee) and fee >= 0 else None,
        details=details,
    )
    if status is TxStatus.SUCCESS and reasons:
        return unclear(obs, reasons, raw)
    return obs


def decode_page_entry(network: str, entry: Mapping[str, Any], head: int | None) -> Observation | None:
    """The observation one TronGrid ``/v1/accounts/{address}/transactions`` entry describes by
    itself, or None when the entry does not carry what an observation needs and the transaction
    must be looked up: a contract call (its token transfers are in event logs the entry does not
    hold) or an entry without ``blockNumber``/``block_timestamp``.

    The entry's ``raw_data`` is read as a ``gettransactionbyid`` body's; ``ret[0].contractRet``
    and ``ret[0].code`` give the result (a ``TransferContract`` or ``TransferAssetContract`` either
    applies or is not put in a block at all). ``head`` (the latest block) gives the confirmations.
    An entry that is not what TronGrid sends raises :class:`ChainUnavailable`."""
    try:
        return _decode_entry(network, entry, head)
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
        raise ChainUnavailable(network, f"malformed history entry: {type(exc).__name__}: {exc}") from exc


def _decode_entry(network: str, entry: Mapping[str, Any], head: int | None) -> Observation | None:
    tx_hash = entry["txID"]
    if not isinstance(tx_hash, str) or not _HEX64.match(tx_hash):
        raise ValueError(f"txID {tx_hash!r} is not 64 hex digits")
    tx_hash = tx_hash.lower()
    reading = read_contract(entry["raw_data"])
    block, stamp = entry.get("blockNumber"), entry.get("block_timestamp")
    if reading.kind == "TriggerSmartContract" or not _is_int(block) or block < 0 or not _is_int(stamp) or stamp <= 0:
        return None
    reasons = list(reading.reasons)
    failures: list[str] = []
    ret = entry.get("ret")
    if not isinstance(ret, list) or not ret or not isinstance(ret[0], Mapping):
        reasons.append(f"the entry states no result (ret is {ret!r})")
        first: Mapping[str, Any] = {}
    else:
        first = ret[0]
        _judge_result(first.get("contractRet"), "ret[0].contractRet", failures, reasons)
        _judge_code(first.get("code"), "ret[0].code", failures, reasons)
    internal = entry.get("internal_transactions")
    if internal not in (None, []):
        reasons.append(f"internal_transactions of a {reading.kind or 'transaction'} entry: {str(internal)[:120]}")
    details = dict(reading.details)
    details["transfers_from"] = "TronGrid account history entry"
    for key in ("net_fee", "energy_fee", "energy_usage_total", "net_usage"):
        if _is_int(entry.get(key)):
            details[key] = entry[key]
    fee = first.get("fee")
    obs = Observation(
        network=network,
        tx_hash=tx_hash,
        status=TxStatus.FAILED if failures else TxStatus.SUCCESS,
        block_number=block,
        confirmations=max(0, head - block + 1) if head is not None else 0,
        timestamp=_utc_ms(stamp),
        sender=reading.sender,
        transfers=() if failures else tuple(reading.planned),
        memo=reading.memo,
        fee=fee if _is_int(fee) and fee >= 0 else None,
        details={**details, "result": failures[0]} if failures else {**details, "result": "SUCCESS"},
    )
    if failures:
        if reading.planned:
            obs = replace(obs, details={**obs.details, "attempted": [t.to_json() for t in reading.planned]})
        return obs
    return unclear(obs, reasons, dict(entry)) if reasons else obs


def _judge_result(value: Any, name: str, failures: list[str], reasons: list[str]) -> None:
    """A ``contractResult`` value: absent or SUCCESS/DEFAULT is fine; a documented failure goes to
    ``failures``; anything else to ``reasons``."""
    if value is None or value in _OK_RESULTS:
        return
    if isinstance(value, str) and value in _FAILED_RESULTS:
        failures.append(value)
    else:
        reasons.append(f"{name} is {value!r}, not a java-tron contractResult value")


def _judge_code(value: Any, name: str, failures: list[str], reasons: list[str]) -> None:
    if value is None or value == _CODE_OK:
        return
    if value == _CODE_FAILED:
        failures.append(_CODE_FAILED)
    else:
        reasons.append(f"{name} is {value!r}, not SUCESS or FAILED")


def _ret0(tx: Mapping[str, Any]) -> Mapping[str, Any]:
    ret = tx.get("ret")
    if ret is None or ret == []:
        return {}
    if not isinstance(ret, list) or not isinstance(ret[0], Mapping):
        raise TypeError(f"ret is not a list of results: {str(ret)[:80]}")
    return ret[0]


def _internal_transfers(info: Mapping[str, Any], offset: int, reasons: list[str]) -> list[Transfer]:
    """TRX and TRC-10 moved by contracts (java-tron ``InternalTransaction``: ``caller_address``,
    ``transferTo_address``, ``callValueInfo[{callValue, tokenId}]``, ``rejected``)."""
    out: list[Transfer] = []
    internal = info.get("internal_transactions") or []
    if not isinstance(internal, list):
        reasons.append(f"internal_transactions is {str(internal)[:80]}, not a list")
        return out
    for position, item in enumerate(internal):
        if not isinstance(item, Mapping):
            reasons.append(f"internal_transactions[{position}] is not an object")
            continue
        if item.get("rejected") is True:
            continue
        values = item.get("callValueInfo") or []
        if not isinstance(values, list):
            reasons.append(f"internal_transactions[{position}].callValueInfo is not a list")
            continue
        for part in values:
            amount = part.get("callValue") if isinstance(part, Mapping) else None
            if amount is None or amount == 0:
                continue
            sender = tron_address(item.get("caller_address"))
            recipient = tron_address(item.get("transferTo_address"))
            token = part.get("tokenId")
            contract = _trc10_id(token) if token not in (None, "", "_") else None
            if (
                not _is_int(amount)
                or not 0 < amount <= _INT64_MAX
                or sender is None
                or recipient is None
                or (token not in (None, "", "_") and contract is None)
            ):
                reasons.append(f"internal_transactions[{position}] moves value the adapter cannot read: {item!s:.99}")
                continue
            kind = AssetKind.TRC10 if contract else AssetKind.NATIVE
            out.append(Transfer(kind, sender, recipient, amount, offset + len(out), contract, internal=True))
    return out


def _field_address(value: Mapping[str, Any], key: str, reasons: list[str]) -> str | None:
    address = tron_address(value.get(key))
    if address is None:
        reasons.append(f"{key} {value.get(key)!r} is not a TRON address")
    return address


def _field_amount(value: Mapping[str, Any], key: str, reasons: list[str], *, positive: bool) -> int:
    """An int64 amount in base units; 0 (or absent) when ``positive`` is False and it is absent."""
    amount = value.get(key)
    if amount is None and not positive:
        return 0
    if not _is_int(amount) or amount < 0 or amount > _INT64_MAX or (positive and amount == 0):
        reasons.append(f"{key} {amount!r} is not an amount in base units")
        return 0
    return int(amount)


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _listed_hash(value: Any, network: str) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ChainUnavailable(network, f"a history entry names no transaction id: {str(value)[:80]}")
    return value.lower()


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


def _trc10_id(value: Any) -> str | None:
    """The numeric id of a TRC-10 asset as text: ``asset_name``/``token_id`` "1002000" (TronGrid),
    its hex "31303032303030" (java-tron with ``visible=false``), or the number 1002000. A name
    (the pre-2019 asset names) or anything else is None: the caller reports it unclear."""
    if _is_int(value):
        value = str(value)
    if not isinstance(value, str):
        return None
    if len(value) % 2 == 0 and value and set(value) <= _HEX:
        try:
            text = bytes.fromhex(value).decode("ascii")
        except ValueError:
            text = ""
        if _TRC10_ID.match(text):  # hex of the id's digits (a 7-digit id is never such hex itself)
            return text
    return value if _TRC10_ID.match(value) else None


def _attempted(call: CallTransfer) -> dict[str, Any]:
    return {
        "method": call.method,
        "contract": call.contract,
        "sender": call.sender,
        "recipient": call.recipient,
        "amount": str(call.amount),
    }


def _utc_ms(stamp: int) -> datetime:
    """A java-tron millisecond timestamp as a UTC time; ValueError for one no clock can show."""
    try:
        return datetime.fromtimestamp(stamp / 1000, tz=UTC)
    except (OverflowError, OSError) as exc:
        raise ValueError(f"timestamp {stamp} is not a time any clock can show") from exc


def _map(func: Callable[[_T], _R], items: Sequence[_T], workers: int) -> list[_R]:
    if len(items) <= 1 or workers <= 1:
        return [func(item) for item in items]
    with ThreadPoolExecutor(max_workers=min(workers, len(items))) as pool:
        return list(pool.map(func, items))
