"""The Stellar adapter (Horizon REST API).

What is read, through :class:`~chains.transport.Transport` (retries, failover, cooldown):

- ``GET /transactions/{hash}``: the transaction. Horizon answers 404 (a "Resource Missing" problem)
  for a hash it does not know: that, and only that, is ``not_found``.
- ``GET /``: ``history_latest_ledger``, the newest ledger Horizon has ingested; Stellar ledgers are
  final once closed, so confirmations = latest ledger - ledger + 1.
- ``GET /accounts/{id}/payments`` (ascending, paged by cursor, ``join=transactions``) for
  :meth:`StellarAdapter.incoming`; ``GET /transactions/{hash}/payments`` for
  :meth:`StellarAdapter.payments`.

Decoding rules:

- The transfers of a transaction are decoded from its ``envelope_xdr`` with stellar-sdk (the signed
  transaction itself, so nothing depends on the Horizon version), with amounts that only the
  result knows read from ``result_xdr``: ``payment`` and ``path_payment_strict_receive`` (the
  destination amount is exact), ``path_payment_strict_send`` (the amount that arrived is in the
  result), ``create_account`` (starting balance, native) and ``account_merge`` (the merged
  balance, from the result). Other operations (offers, trust lines, claimable balances, Soroban
  contract calls, ...) move nothing to a destination by themselves and are listed in
  ``details["other_operations"]``. Fee-bump envelopes are read through their inner transaction.
- ``successful`` (or, in Horizon answers older than 2019 that lack it, the result code in
  ``result_xdr``) decides success; a failed transaction is in a ledger and paid its fee, but
  delivered nothing.
- Amounts are stroops (7 decimals) for every asset: the native XLM has no ``contract``; a credit
  asset is ``CODE:ISSUER`` (``symbol`` = the code, ``decimals`` = 7).
- Memos: ``text`` as the text (UTF-8; undecodable bytes as hex), ``id`` as its decimal string,
  ``hash`` and ``return`` as 64 lowercase hex characters; ``details["memo_type"]`` says which.
- A muxed destination (``M…``) is resolved to its ``G…`` account (the transfer's ``recipient``) and
  its 64-bit id, which becomes that transfer's ``memo`` (the id identifies the user the way a memo
  does); the transaction memo stays in ``Observation.memo`` and both are in ``details``.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from stellar_sdk import (
    AccountMerge,
    Asset,
    CreateAccount,
    FeeBumpTransactionEnvelope,
    HashMemo,
    IdMemo,
    MuxedAccount,
    NoneMemo,
    PathPaymentStrictReceive,
    PathPaymentStrictSend,
    Payment,
    ReturnHashMemo,
    TextMemo,
    TransactionBuilder,
)
from stellar_sdk import (
    Network as StellarNetwork,
)
from stellar_sdk.xdr import TransactionResult, TransactionResultCode

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
from chains.transport import Transport, UnusableAnswer, _join, _Transient, positive_option

__all__ = [
    "STROOP_DECIMALS",
    "PaymentRecord",
    "StellarAdapter",
    "decode_transaction",
    "ledger_of_paging_token",
    "parse_payment_record",
    "parse_payments_page",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STROOP_DECIMALS: Final = 7
_SUCCESS_CODES: Final = (TransactionResultCode.txSUCCESS, TransactionResultCode.txFEE_BUMP_INNER_SUCCESS)


class _Malformed(UnusableAnswer):
    """An answer that is not what Horizon sends: fail over to the next URL."""


# --------------------------------------------------------------------------------------------------
# pure decoding


def _stroops(amount: object, what: str) -> int:
    """A decimal amount string (Horizon and stellar-sdk write "1.0000000") as stroops, exactly."""
    try:
        number = Decimal(str(amount))
    except InvalidOperation:
        raise _Malformed(f"{what} {amount!r:.40} is not a number") from None
    scaled = number.scaleb(STROOP_DECIMALS)
    if not number.is_finite() or number < 0 or scaled != scaled.to_integral_value():
        raise _Malformed(f"{what} {amount!r:.40} is not an amount of whole stroops")
    return int(scaled)


def _asset(asset: Any) -> tuple[AssetKind, str | None, str | None, int | None]:
    """(kind, contract, symbol, decimals) of a stellar-sdk Asset."""
    if asset.is_native():
        return AssetKind.NATIVE, None, None, None
    return AssetKind.TOKEN, f"{asset.code}:{asset.issuer}", str(asset.code), STROOP_DECIMALS


def _account(account: Any) -> tuple[str, int | None]:
    """(G… account, muxed id or None) of a stellar-sdk MuxedAccount or a plain account id string."""
    if isinstance(account, MuxedAccount):
        muxed = account.account_muxed_id
        return str(account.account_id), int(muxed) if muxed is not None else None
    return str(account), None


def _memo(memo: Any) -> tuple[str, str | None]:
    """(memo type, memo as text) of a stellar-sdk memo."""
    if isinstance(memo, NoneMemo) or memo is None:
        return "none", None
    if isinstance(memo, TextMemo):
        raw = bytes(memo.memo_text)
        try:
            return "text", raw.decode("utf-8")
        except UnicodeDecodeError:
            return "text", raw.hex()
    if isinstance(memo, IdMemo):
        return "id", str(int(memo.memo_id))
    if isinstance(memo, HashMemo):
        return "hash", bytes(memo.memo_hash).hex()
    if isinstance(memo, ReturnHashMemo):
        return "return", bytes(memo.memo_return).hex()
    raise _Malformed(f"unknown memo kind {type(memo).__name__}")


def _operation_results(result_xdr: object) -> tuple[bool | None, list[Any] | None]:
    """(success per the result code, the operation results) of ``result_xdr``; (None, None) if absent."""
    if not isinstance(result_xdr, str) or not result_xdr:
        return None, None
    try:
        result = TransactionResult.from_xdr(result_xdr)
    except Exception as exc:  # the XDR library raises assorted errors on bad input
        raise _Malformed(f"result_xdr does not decode: {type(exc).__name__}") from None
    body = result.result
    success = body.code in _SUCCESS_CODES
    if body.code in (TransactionResultCode.txFEE_BUMP_INNER_SUCCESS, TransactionResultCode.txFEE_BUMP_INNER_FAILED):
        pair = body.inner_result_pair
        if pair is None:
            raise _Malformed("fee-bump result without its inner result")
        inner = pair.result.result
        return success, list(inner.results or [])
    return success, list(body.results or [])


def _op_result(results: list[Any] | None, index: int, attribute: str) -> Any:
    if results is None or index >= len(results):
        return None
    tr = getattr(results[index], "tr", None)
    return getattr(tr, attribute, None) if tr is not None else None


def _envelope(body: Mapping[str, Any], passphrase: str) -> Any:
    xdr = body.get("envelope_xdr")
    if not isinstance(xdr, str):
        raise _Malformed("transaction without envelope_xdr")
    try:
        envelope = TransactionBuilder.from_xdr(xdr, passphrase)
    except Exception as exc:  # the XDR library raises assorted errors on bad input
        raise _Malformed(f"envelope_xdr does not decode: {type(exc).__name__}") from None
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        return envelope.transaction.inner_transaction_envelope.transaction, True
    return envelope.transaction, False


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise _Malformed(f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _Malformed(f"{what} is not an integer: {value!r:.40}")


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is missing")
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(UTC)
    except ValueError:
        raise _Malformed(f"{what} {value!r:.40} is not a time") from None


def decode_transaction(
    network: str, body: object, head: int | None, *, passphrase: str = StellarNetwork.PUBLIC_NETWORK_PASSPHRASE
) -> Observation:
    """The observation of one ``GET /transactions/{hash}`` answer. ``head`` is the latest ledger."""
    if not isinstance(body, Mapping):
        raise _Malformed(f"transaction is not an object: {body!r:.80}")
    tx_hash = body.get("hash")
    if not isinstance(tx_hash, str) or not addresses.is_tx_hash("stellar", tx_hash):
        raise _Malformed(f"transaction without a valid hash: {tx_hash!r:.80}")
    tx_hash = tx_hash.lower()
    ledger = _int(body.get("ledger"), "ledger")
    timestamp = _time(body.get("created_at"), "created_at")
    tx, fee_bump = _envelope(body, passphrase)
    code_success, results = _operation_results(body.get("result_xdr"))
    successful = body.get("successful")
    if successful is None:
        if code_success is None:
            raise _Malformed(f"{tx_hash}: neither successful nor result_xdr")
        successful = code_success
    elif not isinstance(successful, bool) or (code_success is not None and code_success != successful):
        raise _Malformed(f"{tx_hash}: successful={successful!r} disagrees with result_xdr")
    fee_raw = body.get("fee_charged", body.get("fee_paid"))
    fee = _int(fee_raw, "fee_charged") if fee_raw is not None else None
    tx_source, tx_source_id = _account(tx.source)
    memo_type, memo = _memo(tx.memo)
    details: dict[str, Any] = {
        "memo_type": memo_type,
        "operation_count": len(tx.operations),
        "source_account": tx_source,
    }
    if tx_source_id is not None:
        details["source_muxed_id"] = str(tx_source_id)
    if fee_bump:
        details["fee_bump"] = True
    if isinstance(body.get("fee_account"), str) and body["fee_account"] != tx_source:
        details["fee_account"] = body["fee_account"]
    if isinstance(body.get("paging_token"), str):
        details["paging_token"] = body["paging_token"]
    transfers: list[Transfer] = []
    others: list[str] = []
    muxed: list[dict[str, str]] = []
    attempted: list[dict[str, Any]] = []
    for index, op in enumerate(tx.operations):
        source, _source_id = _account(op.source) if op.source is not None else (tx_source, tx_source_id)
        found = _operation_transfer(op, index, results)
        if found is None:
            others.append(type(op).__name__)
            continue
        destination, asset, amount, note = found
        recipient, muxed_id = _account(destination)
        if muxed_id is not None:
            muxed.append({"operation": str(index), "account": recipient, "id": str(muxed_id)})
        kind, contract, symbol, decimals = _asset(asset)
        if not successful:
            attempted.append({"operation": index, "to": recipient, "asset": contract or "native", "amount": amount})
            continue
        if amount is None:
            details.setdefault("amount_unknown", []).append(f"operation {index}: {note}")
            continue
        transfers.append(
            Transfer(
                kind=kind,
                sender=source,
                recipient=recipient,
                amount=amount,
                index=index,
                contract=contract,
                memo=str(muxed_id) if muxed_id is not None else None,
                symbol=symbol,
                decimals=decimals,
            )
        )
    if others:
        details["other_operations"] = others
    if muxed:
        details["muxed_destinations"] = muxed
    if attempted:
        details["attempted"] = attempted
    return Observation(
        network=network,
        tx_hash=tx_hash,
        status=TxStatus.SUCCESS if successful else TxStatus.FAILED,
        block_number=ledger,
        block_hash=None,
        confirmations=max(1, head - ledger + 1) if head is not None else 1,
        timestamp=timestamp,
        sender=tx_source,
        transfers=tuple(transfers),
        memo=memo,
        fee=fee,
        details=details,
    )


def _operation_transfer(op: Any, index: int, results: list[Any] | None) -> tuple[Any, Any, int | None, str] | None:
    """(destination, asset, stroops or None, note) of an operation that delivers value, else None."""
    if isinstance(op, Payment):
        return op.destination, op.asset, _stroops(op.amount, "payment amount"), ""
    if isinstance(op, PathPaymentStrictReceive):
        return op.destination, op.dest_asset, _stroops(op.dest_amount, "dest_amount"), ""
    if isinstance(op, PathPaymentStrictSend):
        result = _op_result(results, index, "path_payment_strict_send_result")
        success = getattr(result, "success", None)
        amount = int(success.last.amount.int64) if success is not None else None
        return op.destination, op.dest_asset, amount, "the delivered amount is only in result_xdr"
    if isinstance(op, CreateAccount):
        return op.destination, Asset.native(), _stroops(op.starting_balance, "starting_balance"), ""
    if isinstance(op, AccountMerge):
        result = _op_result(results, index, "account_merge_result")
        balance = getattr(result, "source_account_balance", None)
        amount = int(balance.int64) if balance is not None else None
        return op.destination, Asset.native(), amount, "the merged balance is only in result_xdr"
    return None


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One record of a Horizon payments page (``/payments`` of a transaction or an account)."""

    id: str
    tx_hash: str
    ledger: int
    transfer: Transfer | None
    successful: bool | None
    transaction: Mapping[str, Any] | None


def ledger_of_paging_token(token: str) -> int:
    """The ledger of an operation's id / paging token (a TOID: ledger << 32 | tx << 12 | op)."""
    if not token.isdigit():
        raise _Malformed(f"paging token {token!r:.40} is not an operation id")
    return int(token) >> 32


def parse_payment_record(record: object) -> PaymentRecord:
    """A ``payment``, ``path_payment_*``, ``create_account`` or ``account_merge`` record.

    ``transfer`` is None for an ``account_merge`` record (Horizon does not give its amount: the
    transaction's result does) and for record types that move nothing."""
    if not isinstance(record, Mapping):
        raise _Malformed(f"payment record is not an object: {record!r:.80}")
    record_id, tx_hash = record.get("id"), record.get("transaction_hash")
    if not isinstance(record_id, str) or not isinstance(tx_hash, str) or not addresses.is_tx_hash("stellar", tx_hash):
        raise _Malformed(f"payment record without id or transaction_hash: {record!r:.120}")
    kind = record.get("type")
    transfer: Transfer | None = None
    index = int(record_id) & 0xFFF if record_id.isdigit() else 0
    if kind in ("payment", "path_payment_strict_receive", "path_payment_strict_send", "path_payment"):
        sender, recipient = record.get("from"), record.get("to")
        asset_type = record.get("asset_type")
        if asset_type == "native":
            asset: tuple[AssetKind, str | None, str | None, int | None] = (AssetKind.NATIVE, None, None, None)
        elif asset_type in ("credit_alphanum4", "credit_alphanum12"):
            code, issuer = record.get("asset_code"), record.get("asset_issuer")
            asset = (AssetKind.TOKEN, f"{code}:{issuer}", str(code), STROOP_DECIMALS)
        else:
            raise _Malformed(f"payment record with asset_type {asset_type!r}")
        muxed_id = record.get("to_muxed_id")
        transfer = Transfer(
            kind=asset[0],
            sender=str(sender),
            recipient=str(recipient),
            amount=_stroops(record.get("amount"), "amount"),
            index=index - 1 if index else 0,
            contract=asset[1],
            memo=str(muxed_id) if muxed_id is not None else None,
            symbol=asset[2],
            decimals=asset[3],
        )
    elif kind == "create_account":
        transfer = Transfer(
            AssetKind.NATIVE,
            str(record.get("funder")),
            str(record.get("account")),
            _stroops(record.get("starting_balance"), "starting_balance"),
            index=index - 1 if index else 0,
        )
    successful = record.get("transaction_successful")
    transaction = record.get("transaction")
    return PaymentRecord(
        id=record_id,
        tx_hash=tx_hash.lower(),
        ledger=ledger_of_paging_token(str(record.get("paging_token", record_id))),
        transfer=transfer,
        successful=successful if isinstance(successful, bool) else None,
        transaction=transaction if isinstance(transaction, Mapping) else None,
    )


def parse_payments_page(body: object) -> list[PaymentRecord]:
    """The records of one Horizon payments page (``_embedded.records``)."""
    embedded = body.get("_embedded") if isinstance(body, Mapping) else None
    records = embedded.get("records") if isinstance(embedded, Mapping) else None
    if not isinstance(records, list):
        raise _Malformed(f"not a Horizon page: {body!r:.120}")
    return [parse_payment_record(r) for r in records]


def _record_recipient(record: Mapping[str, Any]) -> str | None:
    for key in ("to", "account", "into"):
        value = record.get(key)
        if isinstance(value, str):
            return value
    return None


# --------------------------------------------------------------------------------------------------
# the adapter


class _HorizonTransport(Transport):
    """:class:`Transport` whose ``get_json`` reports a failed request against the *base* URL.

    Work-around: ``Transport.get_json`` raises its internal transient failure with the joined URL
    (base + path), which is not a key of the cooldown tables, so the first failing GET ends in a
    ``KeyError`` instead of failing over. Remove this class once ``chains/transport.py`` re-raises
    with the base URL.
    """

    def get_json(
        self,
        path: str,
        params: Mapping[str, Any] | None = None,
        *,
        not_found: Collection[int] = (),
        validate: Callable[[Any], None] | None = None,
    ) -> Any:
        def attempt(url: str) -> Any:
            try:
                body = self._request("GET", _join(url, path), params=params, not_found=not_found)
            except _Transient as exc:
                raise _Transient(url, exc.reason, exc.retry_after) from exc
            self._validate(url, validate, body)
            return body

        return self._with_failover(attempt)


class StellarAdapter:
    """Chain adapter for one Stellar network (Horizon). Thread-safe.

    Optional network keys (TOML extras): ``network_passphrase`` (default: the public network's),
    ``lookup_workers`` (parallel transaction requests, default 4), ``page_limit`` (records per
    payments page, at most 200, default 200), ``max_pages`` (pages read by one :meth:`incoming`,
    default 50), plus the transport's timeouts and retry keys.
    """

    family: Final = "stellar"

    def __init__(self, network: Network, *, transport: Transport | None = None) -> None:
        if network.family != "stellar":
            raise ValueError(f"network {network.name} is a {network.family} network, not stellar")
        self.network = network
        self.features: frozenset[str] = frozenset()
        self.transport = transport or _HorizonTransport.for_network(network)
        extra = network.model_extra or {}
        passphrase = extra.get("network_passphrase", StellarNetwork.PUBLIC_NETWORK_PASSPHRASE)
        if not isinstance(passphrase, str) or not passphrase:
            raise ValueError(f"network {network.name}: network_passphrase must be a non-empty string")
        self.passphrase = passphrase
        self.workers = positive_option(extra, "lookup_workers", 4, network.name)
        self.page_limit = min(200, positive_option(extra, "page_limit", 200, network.name))
        self.max_pages = positive_option(extra, "max_pages", 50, network.name)

    def __repr__(self) -> str:
        return f"StellarAdapter({self.network.name!r})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        """``G…`` as given; a muxed ``M…`` address as given too (see :meth:`split_address`)."""
        return addresses.normalize_address("stellar", address)

    def split_address(self, address: str) -> tuple[str, int | None]:
        """(``G…`` account, muxed id or None) of a ``G…`` or ``M…`` address."""
        value = self.normalize_address(address)
        if value.startswith("M"):
            return addresses.split_muxed(value)
        return value, None

    def is_address(self, address: str) -> bool:
        return addresses.is_address("stellar", address)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("stellar", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("stellar", tx_hash)

    # ----------------------------------------------------------------- requests

    def _get(
        self,
        path: str,
        parse: Callable[[Any], _T],
        params: Mapping[str, Any] | None = None,
        *,
        missing_ok: bool = False,
    ) -> _T | None:
        """GET ``path``; ``parse`` runs inside the transport (a rejected answer fails over). With
        ``missing_ok`` a 404 gives None (Horizon's "Resource Missing")."""
        box: list[_T] = []

        def validate(body: Any) -> None:
            box.clear()
            if body is not None:
                box.append(parse(body))

        body = self.transport.get_json(path, params, not_found=(404,) if missing_ok else (), validate=validate)
        if body is None:
            return None
        return box[0]

    def head(self, at_least: int = 0) -> int:
        """The newest ledger Horizon has ingested (``history_latest_ledger`` of ``GET /``). A
        Horizon below ``at_least`` (a ledger already seen) is behind: the next URL is tried."""

        def parse(body: Any) -> int:
            if not isinstance(body, Mapping):
                raise _Malformed(f"Horizon root is not an object: {body!r:.80}")
            latest = _int(body.get("history_latest_ledger"), "history_latest_ledger")
            if latest < at_least:
                raise _Malformed(f"Horizon is behind: latest ledger {latest} < {at_least}")
            return latest

        value = self._get("/", parse)
        assert value is not None
        return value

    def _fetch(self, tx_hash: str) -> Mapping[str, Any] | None:
        def parse(body: Any) -> Mapping[str, Any]:
            if not isinstance(body, Mapping) or str(body.get("hash", "")).lower() != tx_hash:
                raise _Malformed(f"asked for transaction {tx_hash}, got {str(body)[:120]}")
            decode_transaction(self.network.name, body, None, passphrase=self.passphrase)  # checks it
            return body

        return self._get(f"/transactions/{tx_hash}", parse, missing_ok=True)

    # ----------------------------------------------------------------- lookups

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in. Every hash is validated before any request
        (:class:`InvalidChainInput`); a 404 is ``not_found`` for that hash; any unusable answer
        raises :class:`ChainUnavailable` for the whole call."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        if not unique:
            return {}
        bodies = self._fetch_all(unique)
        seen = [_ledger_of(b) for b in bodies if b is not None]
        head = self.head(max(seen)) if seen else None
        observations = {
            h: not_found(self.network.name, h) if body is None else self._decode(body, head)
            for h, body in zip(unique, bodies, strict=True)
        }
        return {given: observations[norm] for given, norm in normalized.items()}

    def _fetch_all(self, hashes: list[str]) -> list[Mapping[str, Any] | None]:
        if len(hashes) == 1 or self.workers == 1:
            return [self._fetch(h) for h in hashes]
        with ThreadPoolExecutor(max_workers=min(self.workers, len(hashes))) as pool:
            return list(pool.map(self._fetch, hashes))

    def _decode(self, body: Mapping[str, Any], head: int | None) -> Observation:
        try:
            return decode_transaction(self.network.name, body, head, passphrase=self.passphrase)
        except UnusableAnswer as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction: {exc}") from exc

    def payments(self, tx_hash: str) -> list[PaymentRecord] | None:
        """The payment records Horizon lists for a transaction (``/transactions/{hash}/payments``),
        or None when Horizon does not know the transaction."""
        h = self.normalize_tx_hash(tx_hash)
        return self._get(f"/transactions/{h}/payments", parse_payments_page, {"limit": 200}, missing_ok=True)

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Successful transactions that delivered value to ``address`` in ledgers ``since..until``
        (inclusive; ``until`` defaults to the latest ledger), oldest first. A muxed ``M…`` address
        keeps only transfers to its id. Reads ``/accounts/{id}/payments`` from the ledger
        ``since`` on (its cursor is the ledger's first operation id); each transaction Horizon
        lists is read in full (memo, every operation). A listed transaction that Horizon then
        cannot find is an inconsistent node: :class:`ChainUnavailable`."""
        account, muxed_id = self.split_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a ledger number (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a ledger number >= since ({since})")
        cursor = str(since << 32) if since > 0 else ""
        hashes: dict[str, Mapping[str, Any] | None] = {}
        for _page in range(self.max_pages):
            params: dict[str, Any] = {"order": "asc", "limit": self.page_limit, "join": "transactions"}
            if cursor:
                params["cursor"] = cursor
            page = self._get(f"/accounts/{account}/payments", _page_with_raw, params, missing_ok=True)
            if page is None:  # Horizon does not know the account: it never received anything
                return []
            records, raws = page
            done = len(records) < self.page_limit
            for record, raw in zip(records, raws, strict=True):
                if until is not None and record.ledger > until:
                    done = True
                    break
                if record.ledger < since or record.successful is False or _record_recipient(raw) != account:
                    continue
                hashes.setdefault(record.tx_hash, record.transaction)
            if done or not records:
                break
            cursor = records[-1].id
        else:
            raise ChainUnavailable(
                self.network.name, f"payments of {account} need more than {self.max_pages} pages; narrow the range"
            )
        if not hashes:
            return []
        missing = [h for h, tx in hashes.items() if tx is None]
        fetched = dict(zip(missing, self._fetch_all(missing), strict=True))
        bodies: dict[str, Mapping[str, Any]] = {}
        for h, embedded in hashes.items():
            body = embedded if embedded is not None else fetched[h]
            if body is None:
                raise ChainUnavailable(
                    self.network.name, f"Horizon lists a payment of transaction {h} but does not find the transaction"
                )
            bodies[h] = body
        head = self.head(max(_ledger_of(b) for b in bodies.values()))
        out: list[Observation] = []
        for body in bodies.values():
            obs = self._decode(body, head)
            if any(t.recipient == account and (muxed_id is None or t.memo == str(muxed_id)) for t in obs.transfers):
                out.append(obs)
        return sorted(out, key=lambda o: (o.block_number or 0, int(str(o.details.get("paging_token") or 0))))


def _ledger_of(body: Mapping[str, Any]) -> int:
    ledger = body.get("ledger")
    return ledger if isinstance(ledger, int) and not isinstance(ledger, bool) else 0


def _page_with_raw(body: Any) -> tuple[list[PaymentRecord], list[Mapping[str, Any]]]:
    records = parse_payments_page(body)
    return records, list(body["_embedded"]["records"])
