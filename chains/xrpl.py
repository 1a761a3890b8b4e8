"""The XRP Ledger adapter (rippled / Clio JSON-RPC).

Requests are rippled's own JSON-RPC (``{"method": "tx", "params": [{...}]}``, answered as
``{"result": {...}}``; not JSON-RPC 2.0), POSTed through :class:`~chains.transport.Transport`
(retries, failover, cooldown). What is read:

- ``tx`` for one transaction (API v2 layout ``tx_json`` + ``meta`` is asked for; the v1 layout,
  with the transaction fields at the top of ``result``, is read too). ``txnNotFound`` is the only
  "not found"; every other error object (``tooBusy``, ``noNetwork``, ``notSynced``, ...) is an
  unusable answer from that server, so the next URL is tried and, in the end,
  :class:`~chains.base.ChainUnavailable` is raised.
- ``server_info`` for the last validated ledger (confirmations = validated ledger - ledger + 1).
- ``account_tx`` (forward, paged by ``marker``) for :meth:`XrplAdapter.incoming`.

Decoding rules:

- Only a *validated* transaction is final: ``tesSUCCESS`` is success, a ``tec…`` code is a failure
  that still charged the fee (nothing was delivered); a transaction that is not validated yet is
  pending (its metadata, when present, is provisional and its transfers are reported as such).
- A ``Payment`` delivers ``meta.delivered_amount`` and nothing else: ``Amount``/``DeliverMax`` is
  only the most that could arrive (a partial payment, flag ``tfPartialPayment``, may deliver far
  less; reading ``Amount`` is a known exploit). When ``delivered_amount`` is absent (ledgers before
  2014), ``meta.DeliveredAmount`` is used, and for a payment *without* the partial flag the full
  ``Amount`` (such a payment delivers exactly its amount or fails). A partial payment whose
  delivered amount cannot be known yields no transfer and says so in ``details``.
- ``DestinationTag`` is the memo (decimal string). ``Memos`` (hex) are decoded into ``details``.
- XRP amounts are drops (1 XRP = 10**6 drops). Issued currencies are named ``CURRENCY.ISSUER``
  (the currency exactly as the ledger spells it: a 3-character code or 40 hex characters) and
  their decimal ``value`` is scaled to integer base units of :data:`ISSUED_CURRENCY_DECIMALS`
  (15) decimals: configure listed XRPL tokens with ``decimals = 15``. The ledger keeps 15
  significant digits, so only values below 1 with more than 15 decimals lose digits; they are
  rounded *down* (never credit more than arrived) and flagged in ``details``. When the issuer in
  the delivered amount is the destination itself ("any issuer I trust"), the real issuer is read
  from the destination's trust-line change in the metadata. MPT amounts use the issuance id as
  ``contract``.
- ``AccountDelete`` sends the remaining XRP to its destination (with its tag) and is a transfer
  too. Every other transaction type (``CheckCreate``, offers, trust lines, NFTs, escrows, checks
  cashed, channel claims, ...) yields no transfer; ``details["transaction_type"]`` names it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from xrpl.utils import get_balance_changes

from chains import addresses
from chains.base import (
    AssetKind,
    ChainUnavailable,
    InvalidChainInput,
    Observation,
    Transfer,
    TxStatus,
    not_found,
)
from chains.network import Network
from chains.transport import Transport, UnusableAnswer, positive_option

__all__ = [
    "ISSUED_CURRENCY_DECIMALS",
    "TF_PARTIAL_PAYMENT",
    "XrplAdapter",
    "XrplAmount",
    "XrplEntry",
    "currency_symbol",
    "decode_amount",
    "decode_entry",
    "parse_account_tx",
    "parse_tx_result",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

#: decimals of the integer base units used for issued currencies (see the module docstring)
ISSUED_CURRENCY_DECIMALS: Final = 15
XRP_DECIMALS: Final = 6
TF_PARTIAL_PAYMENT: Final = 0x00020000
#: seconds from the Unix epoch to the Ripple epoch (2000-01-01T00:00:00Z)
RIPPLE_EPOCH: Final = 946_684_800
_VALUE_TYPES: Final = frozenset({"Payment", "AccountDelete"})


class _Malformed(UnusableAnswer):
    """An answer that is not what rippled sends: fail over to the next URL."""


@dataclass(frozen=True, slots=True)
class XrplAmount:
    """An XRPL amount in base units: drops for XRP, 10**-15 for issued currencies, raw for MPTs."""

    kind: AssetKind
    units: int
    contract: str | None = None
    symbol: str | None = None
    decimals: int | None = None
    #: the ledger's value had more decimals than the scale; units were rounded down
    rounded_down: bool = False
    #: the amount as the ledger wrote it (a drops string, or ``value`` of an issued amount)
    raw: str = ""


@dataclass(frozen=True, slots=True)
class XrplEntry:
    """One transaction as any rippled method shows it (``tx`` v1/v2, ``account_tx``, ``ledger``,
    ``transaction_entry``), reduced to the same parts."""

    tx_hash: str
    tx: Mapping[str, Any]
    meta: Mapping[str, Any] | None
    validated: bool
    ledger_index: int | None
    ledger_hash: str | None
    timestamp: datetime | None


# --------------------------------------------------------------------------------------------------
# pure decoding


def currency_symbol(currency: str) -> str:
    """A readable symbol for a currency code: 3-character codes as they are; a 40-hex code as its
    ASCII text when it is printable (``524C555344…`` is ``RLUSD``), else the hex itself."""
    if len(currency) != 40:
        return currency
    try:
        raw = bytes.fromhex(currency)
    except ValueError:
        return currency
    if raw[0] == 0 and raw[12:15].isascii() and raw[12:15].decode("ascii").isalnum():
        return raw[12:15].decode("ascii")  # a standard code written in hex form
    text = raw.rstrip(b"\x00")
    if text and all(32 < b < 127 for b in text):
        return text.decode("ascii")
    return currency


def _drops(value: object, what: str) -> int:
    if not isinstance(value, str) or not value.isdigit():
        raise _Malformed(f"{what} is not a drops string: {value!r:.80}")
    return int(value)


def decode_amount(amount: object, what: str = "amount") -> XrplAmount:
    """An XRPL amount field (a drops string, an issued-currency object or an MPT object)."""
    if isinstance(amount, str):
        return XrplAmount(AssetKind.NATIVE, _drops(amount, what), raw=amount)
    if not isinstance(amount, Mapping):
        raise _Malformed(f"{what} is neither drops nor an amount object: {amount!r:.80}")
    value = amount.get("value")
    if not isinstance(value, str):
        raise _Malformed(f"{what} has no value: {amount!r:.120}")
    if "mpt_issuance_id" in amount:
        if not value.isdigit():
            raise _Malformed(f"{what}: MPT value {value!r} is not an integer")
        issuance = str(amount["mpt_issuance_id"])
        return XrplAmount(AssetKind.TOKEN, int(value), contract=issuance, raw=value)
    currency, issuer = amount.get("currency"), amount.get("issuer")
    if not isinstance(currency, str) or not isinstance(issuer, str):
        raise _Malformed(f"{what} lacks currency or issuer: {amount!r:.120}")
    try:
        number = Decimal(value)
    except InvalidOperation:
        raise _Malformed(f"{what}: value {value!r} is not a number") from None
    if not number.is_finite() or number < 0:
        raise _Malformed(f"{what}: value {value!r} is not a non-negative number")
    scaled = number.scaleb(ISSUED_CURRENCY_DECIMALS)
    units = scaled.to_integral_value(rounding=ROUND_DOWN)
    return XrplAmount(
        AssetKind.TOKEN,
        int(units),
        contract=f"{currency}.{issuer}",
        symbol=currency_symbol(currency),
        decimals=ISSUED_CURRENCY_DECIMALS,
        rounded_down=units != scaled,
        raw=value,
    )


def _int_field(value: object, what: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool):
        raise _Malformed(f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _Malformed(f"{what} is not an integer: {value!r:.60}")


def _timestamp(tx: Mapping[str, Any], entry: Mapping[str, Any]) -> datetime | None:
    date = tx.get("date", entry.get("date"))
    if isinstance(date, int) and not isinstance(date, bool):
        return datetime.fromtimestamp(date + RIPPLE_EPOCH, UTC)
    iso = entry.get("close_time_iso")
    if isinstance(iso, str):
        try:
            return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise _Malformed(f"close_time_iso {iso!r} is not a time") from None
    return None


def split_entry(entry: Mapping[str, Any], *, validated: bool | None = None) -> XrplEntry:
    """Reduce any layout to :class:`XrplEntry`.

    ``tx_json`` (API v2) or ``tx`` (API v1 account_tx) hold the transaction when present, else the
    transaction fields are at the top (``tx`` v1, ``ledger`` expanded); the metadata is ``meta``,
    ``metaData`` (``ledger``) or ``metadata`` (``transaction_entry``). ``validated`` overrides the
    entry's own flag (a ``ledger`` answer flags the whole ledger).
    """
    if not isinstance(entry, Mapping):
        raise _Malformed(f"transaction entry is not an object: {entry!r:.80}")
    tx: Any
    if isinstance(entry.get("tx_json"), Mapping):
        tx = entry["tx_json"]
    elif isinstance(entry.get("tx"), Mapping):
        tx = entry["tx"]
    else:
        tx = entry
    meta: Any = None
    for key in ("meta", "metaData", "metadata"):
        if key in entry:
            meta = entry[key]
            break
    if meta is not None and not isinstance(meta, Mapping):
        raise _Malformed("metadata is not an object (binary answers are not read)")
    tx_hash = entry.get("hash", tx.get("hash"))
    if not isinstance(tx_hash, str) or not addresses.is_tx_hash("xrpl", tx_hash):
        raise _Malformed(f"transaction without a valid hash: {tx_hash!r:.80}")
    ledger_index = _int_field(entry.get("ledger_index", tx.get("ledger_index", tx.get("inLedger"))), "ledger_index")
    ledger_hash = entry.get("ledger_hash")
    for key in ("TransactionType", "Account"):
        if not isinstance(tx.get(key), str):
            raise _Malformed(f"transaction {tx_hash} has no {key}")
    return XrplEntry(
        tx_hash=tx_hash.upper(),
        tx=tx,
        meta=meta,
        validated=(entry.get("validated") is True) if validated is None else validated,
        ledger_index=ledger_index,
        ledger_hash=ledger_hash.upper() if isinstance(ledger_hash, str) else None,
        timestamp=_timestamp(tx, entry),
    )


def parse_tx_result(body: object, tx_hash: str) -> XrplEntry | None:
    """A ``tx`` answer: the transaction, or None for ``txnNotFound``. Raises :class:`UnusableAnswer`
    for any other error or a malformed body."""
    result = _result(body, "tx", "txnNotFound")
    if result is None:
        return None
    entry = split_entry(result)
    if entry.tx_hash != tx_hash.upper():
        raise _Malformed(f"asked for transaction {tx_hash}, got {entry.tx_hash}")
    return entry


def _result(body: object, method: str, not_found: str | None = None) -> Mapping[str, Any] | None:
    """``result`` of a rippled answer; None for the error ``not_found`` ("no such thing");
    :class:`UnusableAnswer` for any other error or a malformed body."""
    if not isinstance(body, Mapping) or not isinstance(body.get("result"), Mapping):
        raise _Malformed(f"{method}: not a rippled JSON-RPC answer: {body!r:.160}")
    result: Mapping[str, Any] = body["result"]
    error = result.get("error")
    if error is not None or result.get("status") == "error":
        if not_found is not None and error == not_found:
            if result.get("searched_all") is False:
                raise _Malformed(f"{method}: {error}, but the server does not hold every ledger asked for")
            return None
        message = result.get("error_message") or result.get("error_exception") or ""
        raise _Malformed(f"{method}: error {error!r} {message}".strip())
    return result


@dataclass(frozen=True, slots=True)
class AccountTxPage:
    account: str
    entries: tuple[XrplEntry, ...]
    marker: Any


def parse_account_tx(body: object, account: str | None = None) -> AccountTxPage:
    """One ``account_tx`` page: its entries and the ``marker`` of the next page (None at the end)."""
    result = _result(body, "account_tx", "actNotFound")
    if result is None:  # actNotFound: an account that does not exist has received nothing
        return AccountTxPage(account or "", (), None)
    got = result.get("account")
    if not isinstance(got, str) or (account is not None and got != account):
        raise _Malformed(f"account_tx answered for account {got!r}, asked for {account!r}")
    transactions = result.get("transactions")
    if not isinstance(transactions, list):
        raise _Malformed("account_tx answer has no transactions list")
    return AccountTxPage(got, tuple(split_entry(e) for e in transactions), result.get("marker"))


def _delivered_issuer(amount: XrplAmount, destination: str, meta: Mapping[str, Any]) -> tuple[XrplAmount, str | None]:
    """Resolve "any issuer I trust" (issuer = destination) from the destination's trust-line change."""
    if amount.contract is None or "." not in amount.contract:
        return amount, None
    currency, issuer = amount.contract.split(".", 1)
    if issuer != destination:
        return amount, None
    try:
        changes = get_balance_changes(dict(meta))  # type: ignore[arg-type]  # a TypedDict in xrpl-py
        issuers = sorted(
            {
                str(b["issuer"])
                for c in changes
                if c.get("account") == destination
                for b in c.get("balances", [])
                if b.get("currency") == currency and b.get("issuer") and Decimal(str(b.get("value", "0"))) > 0
            }
        )
    except Exception as exc:  # odd metadata the library cannot read leaves the issuer as written
        return amount, f"issuer not resolved: {type(exc).__name__}"
    if len(issuers) != 1:
        return amount, f"issuer not resolved: {len(issuers)} trust lines of {currency} grew"
    contract = f"{currency}.{issuers[0]}"
    return XrplAmount(
        amount.kind, amount.units, contract, amount.symbol, amount.decimals, amount.rounded_down, amount.raw
    ), None


def _memos(tx: Mapping[str, Any]) -> list[dict[str, str]]:
    out: list[dict[str, str]] = []
    for item in tx.get("Memos") or []:
        memo = item.get("Memo") if isinstance(item, Mapping) else None
        if not isinstance(memo, Mapping):
            continue
        decoded: dict[str, str] = {}
        for key in ("MemoType", "MemoFormat", "MemoData"):
            value = memo.get(key)
            if isinstance(value, str):
                try:
                    decoded[key] = bytes.fromhex(value).decode("utf-8")
                except (ValueError, UnicodeDecodeError):
                    decoded[key] = value
        out.append(decoded)
    return out


def decode_entry(network: str, entry: XrplEntry, head: int | None) -> Observation:
    """The observation of one transaction. ``head`` is the last validated ledger (None: unknown)."""
    tx, meta = entry.tx, entry.meta
    tx_type = str(tx["TransactionType"])
    sender = str(tx["Account"])
    flags = _int_field(tx.get("Flags"), "Flags") or 0
    details: dict[str, Any] = {"transaction_type": tx_type, "validated": entry.validated, "flags": flags}
    tag = _int_field(tx.get("DestinationTag"), "DestinationTag")
    memo = str(tag) if tag is not None else None
    if tx.get("Destination") is not None:
        details["destination"] = tx.get("Destination")
    if tx.get("SourceTag") is not None:
        details["source_tag"] = tx.get("SourceTag")
    memos = _memos(tx)
    if memos:
        details["memos"] = memos
    fee = _drops(tx["Fee"], "Fee") if "Fee" in tx else None
    result_code = meta.get("TransactionResult") if meta is not None else None
    if meta is not None:
        if not isinstance(result_code, str):
            raise _Malformed(f"{entry.tx_hash}: metadata without TransactionResult")
        details["result"] = result_code
        details["tx_index"] = _int_field(meta.get("TransactionIndex"), "TransactionIndex")
    if entry.validated:
        if meta is None or entry.ledger_index is None:
            raise _Malformed(f"{entry.tx_hash}: validated but without metadata or ledger index")
        if result_code == "tesSUCCESS":
            status = TxStatus.SUCCESS
        elif isinstance(result_code, str) and result_code.startswith("tec"):
            status = TxStatus.FAILED
        else:
            raise _Malformed(f"{entry.tx_hash}: validated with result {result_code!r}")
        confirmations = max(1, head - entry.ledger_index + 1) if head is not None else 1
    else:
        status = TxStatus.PENDING
        confirmations = 0
        if meta is not None:
            details["provisional"] = True
    transfers: list[Transfer] = []
    if tx_type in _VALUE_TYPES and meta is not None and result_code == "tesSUCCESS":
        transfer = _value_transfer(entry, tx_type, flags, memo, details)
        if transfer is not None:
            transfers.append(transfer)
    elif tx_type not in _VALUE_TYPES:
        details["non_payment"] = f"{tx_type} moves no value to a destination by itself"
    if status is TxStatus.FAILED and tx_type in _VALUE_TYPES:
        attempted = tx.get("DeliverMax", tx.get("Amount"))
        details["attempted"] = {"destination": tx.get("Destination"), "amount": attempted, "destination_tag": tag}
    return Observation(
        network=network,
        tx_hash=entry.tx_hash,
        status=status,
        block_number=entry.ledger_index,
        block_hash=entry.ledger_hash,
        confirmations=confirmations,
        timestamp=entry.timestamp,
        sender=sender,
        transfers=tuple(transfers),
        memo=memo,
        fee=fee,
        details=details,
    )


def _value_transfer(
    entry: XrplEntry, tx_type: str, flags: int, memo: str | None, details: dict[str, Any]
) -> Transfer | None:
    tx, meta = entry.tx, entry.meta
    assert meta is not None
    destination = tx.get("Destination")
    if not isinstance(destination, str):
        raise _Malformed(f"{entry.tx_hash}: {tx_type} without Destination")
    partial = tx_type == "Payment" and bool(flags & TF_PARTIAL_PAYMENT)
    requested = tx.get("DeliverMax", tx.get("Amount"))
    delivered: Any = meta.get("delivered_amount")
    source = "meta.delivered_amount"
    if delivered is None or delivered == "unavailable":
        delivered = meta.get("DeliveredAmount")
        source = "meta.DeliveredAmount"
    if delivered is None and tx_type == "Payment" and not partial:
        delivered = requested
        source = "Amount (not a partial payment: delivered in full or not at all)"
    if partial:
        details["partial_payment"] = True
        details["amount_requested"] = requested
    if delivered is None:
        details["delivered_amount"] = "unavailable"
        details["no_transfer"] = "the delivered amount of this partial payment is not known"
        return None
    amount = decode_amount(delivered, "delivered amount")
    details["amount_source"] = source
    details["delivered_amount"] = delivered
    if amount.rounded_down:
        details["amount_rounded_down"] = (
            f"{amount.raw} has more than {ISSUED_CURRENCY_DECIMALS} decimals; rounded down to base units"
        )
    written = amount.contract
    amount, note = _delivered_issuer(amount, destination, meta)
    if note:
        details["issuer_note"] = note
    elif amount.contract != written and amount.contract is not None:
        details["issuer_resolved_from_meta"] = amount.contract.split(".", 1)[1]
    return Transfer(
        kind=amount.kind,
        sender=str(tx["Account"]),
        recipient=destination,
        amount=amount.units,
        index=0,
        contract=amount.contract,
        memo=memo,
        symbol=amount.symbol,
        decimals=amount.decimals,
    )


# --------------------------------------------------------------------------------------------------
# the adapter


class XrplAdapter:
    """Chain adapter for one XRP Ledger network. Thread-safe.

    Optional network keys (TOML extras): ``testnet`` (X-addresses of the test networks, ``T…``,
    instead of ``X…``; default false), ``lookup_workers`` (parallel ``tx`` requests, default 4),
    ``account_tx_limit`` (entries per ``account_tx`` page, default 200), ``max_pages`` (pages read
    by one :meth:`incoming`, default 50), plus the transport's timeouts and retry keys.
    """

    family: Final = "xrpl"

    def __init__(self, network: Network, *, transport: Transport | None = None) -> None:
        if network.family != "xrpl":
            raise ValueError(f"network {network.name} is a {network.family} network, not xrpl")
        self.network = network
        self.features: frozenset[str] = frozenset()
        self.transport = transport or Transport.for_network(network)
        extra = network.model_extra or {}
        testnet = extra.get("testnet", False)
        if not isinstance(testnet, bool):
            raise ValueError(f"network {network.name}: testnet must be true or false")
        self.testnet = testnet
        self.workers = positive_option(extra, "lookup_workers", 4, network.name)
        self.page_limit = positive_option(extra, "account_tx_limit", 200, network.name)
        self.max_pages = positive_option(extra, "max_pages", 50, network.name)

    def __repr__(self) -> str:
        return f"XrplAdapter({self.network.name!r})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        """The classic ``r…`` address; an X-address loses its tag here (see :meth:`split_address`)."""
        return addresses.normalize_address("xrpl", address, testnet=self.testnet)

    def split_address(self, address: str) -> tuple[str, int | None]:
        """(classic address, destination tag or None) of an ``r…`` address or an X-address."""
        self.normalize_address(address)  # refuses an X-address of the other network kind
        return addresses.split_x_address(address)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("xrpl", address, testnet=self.testnet)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("xrpl", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("xrpl", tx_hash)

    # ----------------------------------------------------------------- requests

    def _rpc(self, method: str, params: Mapping[str, Any], parse: Callable[[Any], _T]) -> _T:
        """One rippled call; ``parse`` runs inside the transport, so an answer it rejects with
        :class:`UnusableAnswer` fails over like a timeout."""
        box: list[_T] = []

        def validate(body: Any) -> None:
            box.clear()
            box.append(parse(body))

        self.transport.post_json("", {"method": method, "params": [dict(params)]}, validate=validate)
        return box[0]

    def head(self, at_least: int = 0) -> int:
        """The last validated ledger index (``server_info``). A server whose validated ledger is
        below ``at_least`` (a ledger already seen validated) is behind: the next URL is tried."""

        def parse(body: Any) -> int:
            result = _result(body, "server_info")
            info = result.get("info") if result is not None else None
            ledger = info.get("validated_ledger") if isinstance(info, Mapping) else None
            seq = _int_field(ledger.get("seq") if isinstance(ledger, Mapping) else None, "validated_ledger.seq")
            if seq is None:
                raise _Malformed("server_info without validated_ledger.seq (the server is not synced)")
            if seq < at_least:
                raise _Malformed(f"server is behind: validated ledger {seq} < {at_least}")
            return seq

        return self._rpc("server_info", {"api_version": 2}, parse)

    def _fetch(self, tx_hash: str) -> XrplEntry | None:
        params = {"transaction": tx_hash, "binary": False, "api_version": 2}
        return self._rpc("tx", params, lambda body: parse_tx_result(body, tx_hash))

    # ----------------------------------------------------------------- lookups

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in. Every hash is validated before any request
        (:class:`InvalidChainInput`); ``txnNotFound`` is ``not_found`` for that hash; any unusable
        answer raises :class:`ChainUnavailable` for the whole call."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        if not unique:
            return {}
        if len(unique) == 1 or self.workers == 1:
            entries = [self._fetch(h) for h in unique]
        else:
            with ThreadPoolExecutor(max_workers=min(self.workers, len(unique))) as pool:
                entries = list(pool.map(self._fetch, unique))
        seen = [e.ledger_index or 0 for e in entries if e is not None and e.validated]
        head = self.head(max(seen)) if seen else None
        observations: dict[str, Observation] = {}
        for h, entry in zip(unique, entries, strict=True):
            observations[h] = not_found(self.network.name, h) if entry is None else self._decode(entry, head)
        return {given: observations[norm] for given, norm in normalized.items()}

    def _decode(self, entry: XrplEntry, head: int | None) -> Observation:
        try:
            return decode_entry(self.network.name, entry, head)
        except UnusableAnswer as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {entry.tx_hash}: {exc}") from exc

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Validated transactions that delivered value to ``address`` in ledgers ``since..until``
        (inclusive; ``until`` defaults to the last validated ledger), oldest first, from
        ``account_tx``. An X-address (or an ``r…`` address) with a tag keeps only transfers
        carrying that destination tag."""
        classic, tag = self.split_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a ledger index (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a ledger index >= since ({since})")
        params: dict[str, Any] = {
            "account": classic,
            "ledger_index_min": since,
            "ledger_index_max": -1 if until is None else until,
            "forward": True,
            "limit": self.page_limit,
            "binary": False,
            "api_version": 2,
        }
        entries: dict[str, XrplEntry] = {}
        for _page in range(self.max_pages):
            page = self._rpc("account_tx", params, lambda body: parse_account_tx(body, classic))
            for entry in page.entries:
                if entry.validated and entry.ledger_index is not None:
                    entries.setdefault(entry.tx_hash, entry)
            if page.marker is None:
                break
            params["marker"] = page.marker
        else:
            raise ChainUnavailable(
                self.network.name, f"account_tx for {classic} needs more than {self.max_pages} pages; narrow the range"
            )
        if not entries:
            return []
        head = self.head(max(e.ledger_index or 0 for e in entries.values()))
        out: list[Observation] = []
        for entry in entries.values():
            index = entry.ledger_index
            if index is None or index < since or (until is not None and index > until):
                continue
            observation = self._decode(entry, head)
            if any(t.recipient == classic and (tag is None or t.memo == str(tag)) for t in observation.transfers):
                out.append(observation)
        return sorted(out, key=lambda o: (o.block_number or 0, int(o.details.get("tx_index") or 0)))
