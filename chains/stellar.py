"""The Stellar adapter (Horizon REST API).

What is read, through :class:`~chains.transport.Transport` (retries, failover, cooldown):

- ``GET /transactions/{hash}``: the transaction. Horizon answers 404 (a "Resource Missing" problem)
  for a hash it does not know: that, and only that, is ``not_found``, and only from a Horizon that
  is current (see ``GET /``). Horizon also serves a fee-bump transaction by its inner hash (then
  ``hash`` is the inner hash).
- ``GET /``: ``history_latest_ledger``, the newest ledger Horizon has ingested; Stellar ledgers are
  final once closed, so confirmations = latest ledger - ledger + 1. A Horizon whose latest ledger
  is below a ledger already seen (a transaction's, the end of an ``incoming`` range) is behind; one
  whose ``history_latest_ledger_closed_at`` is older than ``max_ledger_age_seconds`` cannot say
  "not found"; one whose ``network_passphrase`` is not the configured one serves another network.
  All three are "try later" (:class:`ChainUnavailable`, after the other URLs were tried).
- ``GET /accounts/{id}/payments`` (ascending, paged by cursor, ``join=transactions``) for
  :meth:`StellarAdapter.incoming`; ``GET /transactions/{hash}/payments`` for
  :meth:`StellarAdapter.payments`; ``GET /operations/{id}`` for :meth:`StellarAdapter.operation`.

Decoding rules (transactions):

- The transfers of a transaction are decoded from its ``envelope_xdr`` with stellar-sdk (the signed
  transaction itself, so nothing depends on the Horizon version), with amounts that only the
  result knows read from ``result_xdr``: ``payment`` and ``path_payment_strict_receive`` (the
  destination amount is exact; a result that says otherwise is refused), ``path_payment_strict_send``
  (the amount that arrived is in the result), ``create_account`` (starting balance, native) and
  ``account_merge`` (the merged balance, from the result). Path payments are credited in the
  **destination** asset and amount, whatever was sent.
- Operations that move nothing to another account by themselves (trust lines, options, data,
  sequence bumps, sponsorship, offers, liquidity-pool deposits, clawbacks, Soroban footprint
  upkeep) are listed in ``details["other_operations"]``. Operations whose effect on an account
  only the ledger shows (``invoke_host_function``: a Soroban call that may transfer Stellar Asset
  Contract tokens; ``claim_claimable_balance``; ``create_claimable_balance``;
  ``liquidity_pool_withdraw``; ``inflation``), any operation type this adapter does not know, an
  envelope naming an operation or memo type stellar-sdk does not know (a newer protocol), and a
  delivered amount that only an absent result could give make a successful transaction
  **unclear** (:func:`chains.base.unclear`, reasons and the raw answer attached), never a success.
- ``successful`` (or, in Horizon answers older than 2019 that lack it, the result code in
  ``result_xdr``) decides success; a failed transaction (e.g. ``op_too_few_offers``) is in a
  ledger and paid its fee (``fee``), but delivered nothing: status ``failed``, what its
  operations attempted in ``details["attempted"]``. A ``successful`` that contradicts the result
  code is an unusable answer.
- Fee-bump envelopes are read through their inner transaction: the **sender** is the inner
  transaction's source; the account that paid the fee (``fee_account``) is in
  ``details["fee_account"]`` (with ``details["fee_bump"]`` and ``details["inner_hash"]``). Each
  transfer's sender is its operation's source (the transaction source unless the operation names
  its own). A ``source_account`` or ``fee_account`` that contradicts the envelope is an unusable
  answer.
- Amounts are stroops (7 decimals) for every asset: the native XLM has no ``contract``; a credit
  asset is ``CODE:ISSUER`` (``symbol`` = the code, ``decimals`` = 7).
- Memos, read from the envelope: ``none``; ``text`` as the text (UTF-8; undecodable bytes as hex);
  ``id`` as its decimal string; ``hash`` and ``return`` as 64 lowercase hex characters (the five
  memo types Horizon documents); ``details["memo_type"]`` says which. A ``memo_type`` field that is
  none of these makes the transaction unclear; one that contradicts the envelope is unusable.
- A muxed destination (``M…``) is resolved to its ``G…`` account (the transfer's ``recipient``) and
  its 64-bit id, which becomes that transfer's ``memo`` (the id identifies the user the way a memo
  does); the transaction memo stays in ``Observation.memo`` and both are in ``details``.

Decoding rules (payment and operation records): ``payment``, ``path_payment_strict_receive``,
``path_payment_strict_send`` (and the pre-2019 ``path_payment``) give a transfer of ``amount`` in the
asset of ``asset_type``/``asset_code``/``asset_issuer``, which Horizon documents as the
*destination* asset (the source side is ``source_*``); ``create_account`` gives its starting
balance; ``account_merge`` names its recipient (``into``) but no amount. A record of a failed
transaction (``transaction_successful: false``; Horizon lists them with ``include_failed``) never
gives a transfer. A record of a type or asset type this adapter does not know is kept with
``recognised = False`` and no transfer: :meth:`StellarAdapter.incoming` then reads its transaction.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Collection, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any, Final, TypeVar

from stellar_sdk import (
    AccountMerge,
    AllowTrust,
    Asset,
    BeginSponsoringFutureReserves,
    BumpSequence,
    ChangeTrust,
    ClaimClaimableBalance,
    Clawback,
    ClawbackClaimableBalance,
    CreateAccount,
    CreateClaimableBalance,
    CreatePassiveSellOffer,
    EndSponsoringFutureReserves,
    ExtendFootprintTTL,
    FeeBumpTransactionEnvelope,
    HashMemo,
    IdMemo,
    Inflation,
    InvokeHostFunction,
    LiquidityPoolDeposit,
    LiquidityPoolWithdraw,
    ManageBuyOffer,
    ManageData,
    ManageSellOffer,
    MuxedAccount,
    NoneMemo,
    PathPaymentStrictReceive,
    PathPaymentStrictSend,
    Payment,
    RestoreFootprint,
    ReturnHashMemo,
    RevokeSponsorship,
    SetOptions,
    SetTrustLineFlags,
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
    unclear,
)
from chains.network import Network
from chains.transport import Transport, UnusableAnswer, _join, _Transient, positive_option

__all__ = [
    "MEMO_TYPES",
    "STROOP_DECIMALS",
    "PaymentRecord",
    "StellarAdapter",
    "decode_transaction",
    "ledger_of_paging_token",
    "operation_kind",
    "parse_payment_record",
    "parse_payments_page",
]

log = logging.getLogger(__name__)
_T = TypeVar("_T")

STROOP_DECIMALS: Final = 7
_SUCCESS_CODES: Final = (TransactionResultCode.txSUCCESS, TransactionResultCode.txFEE_BUMP_INNER_SUCCESS)
#: the memo types Horizon documents (``memo_type``)
MEMO_TYPES: Final = frozenset({"none", "text", "id", "hash", "return"})
#: operations that deliver value to a destination, decoded into transfers
_TRANSFER_OPERATIONS: Final[tuple[type, ...]] = (
    Payment, PathPaymentStrictReceive, PathPaymentStrictSend, CreateAccount, AccountMerge,
)
#: operations that move nothing to another account by themselves (listed in ``other_operations``)
_OTHER_OPERATIONS: Final[tuple[type, ...]] = (
    ChangeTrust, SetOptions, ManageData, BumpSequence, AllowTrust, SetTrustLineFlags,
    BeginSponsoringFutureReserves, EndSponsoringFutureReserves, RevokeSponsorship,
    ManageSellOffer, ManageBuyOffer, CreatePassiveSellOffer, LiquidityPoolDeposit,
    Clawback, ClawbackClaimableBalance, ExtendFootprintTTL, RestoreFootprint,
)
#: operations whose effect on an account only the ledger shows: a successful transaction with one is unclear
_UNCLEAR_OPERATIONS: Final[Mapping[type, str]] = {
    InvokeHostFunction: "a Soroban contract call, which may transfer Stellar Asset Contract tokens that only "
    "its events show",
    ClaimClaimableBalance: "credits its source with a claimable balance whose asset and amount only the ledger shows",
    CreateClaimableBalance: "creates a claimable balance: its claimants receive nothing until one of them claims it",
    LiquidityPoolWithdraw: "credits its source with pool reserves whose amounts only the ledger shows",
    Inflation: "paid inflation winners amounts only the ledger shows",
}
_UNKNOWN_XDR_TYPE: Final = re.compile(r"is not a valid (OperationType|MemoType|EnvelopeType|AssetType|CryptoKeyType)")
_AMOUNT: Final = re.compile(r"^[0-9]{1,12}(\.[0-9]{1,7})?$")
_ASSET_CODE: Final = {"credit_alphanum4": re.compile(r"^[A-Za-z0-9]{1,4}$"),
                      "credit_alphanum12": re.compile(r"^[A-Za-z0-9]{5,12}$")}
_PAYMENT_RECORD_TYPES: Final = frozenset(
    {"payment", "path_payment_strict_receive", "path_payment_strict_send", "path_payment"}
)


class _Malformed(UnusableAnswer):
    """An answer that is not what Horizon sends: fail over to the next URL."""


class _UnknownXdrType(Exception):
    """The envelope names a type (operation, memo, ...) that stellar-sdk does not know."""


def operation_kind(operation: type) -> str:
    """How :func:`decode_transaction` treats an operation class: ``"transfer"`` (decoded into a
    transfer), ``"other"`` (moves nothing to another account by itself) or ``"unclear"``."""
    if issubclass(operation, _TRANSFER_OPERATIONS):
        return "transfer"
    if issubclass(operation, _OTHER_OPERATIONS):
        return "other"
    return "unclear"


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


def _record_amount(record: Mapping[str, Any], key: str) -> int:
    """A record's amount: Horizon writes it as a decimal string ("1.0000000"), nothing else."""
    value = record.get(key)
    if not isinstance(value, str) or not _AMOUNT.match(value):
        raise _Malformed(f"{key} {value!r:.40} is not a Horizon amount")
    return _stroops(value, key)


def _g_account(value: object, what: str) -> str:
    """A ``G…`` account id (StrKey checksum checked)."""
    if not isinstance(value, str) or not value.startswith("G") or not addresses.is_address("stellar", value):
        raise _Malformed(f"{what} {value!r:.60} is not a Stellar account")
    return value


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
    raise _UnknownXdrType(f"memo of kind {type(memo).__name__}")


def _operation_results(result_xdr: object) -> tuple[bool | None, list[Any] | None]:
    """(success per the result code, the operation results) of ``result_xdr``; (None, None) if absent."""
    if result_xdr is None or result_xdr == "":
        return None, None
    if not isinstance(result_xdr, str):
        raise _Malformed(f"result_xdr is not a string: {result_xdr!r:.40}")
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


def _result_codes(result_xdr: object) -> dict[str, Any]:
    """The result code names of a decoded ``result_xdr`` (for a person reading a failed transaction):
    ``{"result_code": "txFAILED", "operation_results": ["PATH_PAYMENT_STRICT_RECEIVE_TOO_FEW_OFFERS"]}``."""
    if not isinstance(result_xdr, str) or not result_xdr:
        return {}
    outer = TransactionResult.from_xdr(result_xdr).result
    out: dict[str, Any] = {"result_code": outer.code.name}
    body: Any = outer
    if outer.inner_result_pair is not None:
        body = outer.inner_result_pair.result.result
        out["inner_result_code"] = body.code.name
    names: list[str] = []
    for op in body.results or []:
        tr = op.tr
        inner = [v for a, v in getattr(tr, "__dict__", {}).items() if a != "type" and v is not None]
        code = getattr(inner[0], "code", None) if inner else None
        names.append(str(getattr(code, "name", None) or op.code.name))
    if names:
        out["operation_results"] = names
    return out


def _op_result(results: list[Any] | None, index: int, attribute: str) -> Any:
    if results is None or index >= len(results):
        return None
    tr = getattr(results[index], "tr", None)
    return getattr(tr, attribute, None) if tr is not None else None


@dataclass(frozen=True, slots=True)
class _Envelope:
    tx: Any
    fee_bump: bool
    fee_source: str | None
    inner_hash: str | None


def _envelope(body: Mapping[str, Any], passphrase: str) -> _Envelope:
    xdr = body.get("envelope_xdr")
    if not isinstance(xdr, str):
        raise _Malformed("transaction without envelope_xdr")
    try:
        envelope = TransactionBuilder.from_xdr(xdr, passphrase)
        if isinstance(envelope, FeeBumpTransactionEnvelope):
            inner = envelope.transaction.inner_transaction_envelope
            fee_source, _ = _account(envelope.transaction.fee_source)
            decoded = _Envelope(inner.transaction, True, fee_source, inner.hash_hex())
        else:
            decoded = _Envelope(envelope.transaction, False, None, None)
        _memo(decoded.tx.memo)  # an unknown memo kind is reported like an unknown type
        return decoded
    except _UnknownXdrType:
        raise
    except Exception as exc:  # the XDR library raises assorted errors on bad input
        if isinstance(exc, ValueError) and (match := _UNKNOWN_XDR_TYPE.search(str(exc))):
            raise _UnknownXdrType(f"a {match.group(1)} stellar-sdk does not know ({exc})") from None
        raise _Malformed(f"envelope_xdr does not decode: {type(exc).__name__}") from None


def _int(value: object, what: str) -> int:
    if isinstance(value, bool):
        raise _Malformed(f"{what} is not an integer: {value!r}")
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit():
        return int(value)
    raise _Malformed(f"{what} is not an integer: {value!r:.40}")


def _time(value: object, what: str) -> datetime:
    if not isinstance(value, str):
        raise _Malformed(f"{what} is missing")
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Malformed(f"{what} {value!r:.40} is not a time") from None
    if parsed.tzinfo is None:
        raise _Malformed(f"{what} {value!r:.40} has no time zone")
    return parsed.astimezone(UTC)


def decode_transaction(
    network: str, body: object, head: int | None, *, passphrase: str = StellarNetwork.PUBLIC_NETWORK_PASSPHRASE
) -> Observation:
    """The observation of one ``GET /transactions/{hash}`` answer. ``head`` is the latest ledger.

    Raises :class:`~chains.transport.UnusableAnswer` for an answer Horizon does not send (missing
    or mistyped fields, an undecodable envelope, fields contradicting each other); returns an
    ``unclear`` observation for what Horizon may send but this adapter cannot read with certainty."""
    if not isinstance(body, Mapping):
        raise _Malformed(f"transaction is not an object: {body!r:.80}")
    tx_hash = body.get("hash")
    if not isinstance(tx_hash, str) or not addresses.is_tx_hash("stellar", tx_hash):
        raise _Malformed(f"transaction without a valid hash: {tx_hash!r:.80}")
    tx_hash = tx_hash.lower()
    ledger = _int(body.get("ledger"), "ledger")
    if ledger < 1:
        raise _Malformed(f"{tx_hash}: ledger {ledger} is not a ledger")
    timestamp = _time(body.get("created_at"), "created_at")
    code_success, results = _operation_results(body.get("result_xdr"))
    successful = body.get("successful")
    if successful is None:
        if code_success is None:
            raise _Malformed(f"{tx_hash}: neither successful nor result_xdr")
        successful = code_success
    elif not isinstance(successful, bool) or (code_success is not None and code_success != successful):
        raise _Malformed(f"{tx_hash}: successful={successful!r:.20} disagrees with result_xdr")
    fee_raw = body.get("fee_charged", body.get("fee_paid"))
    fee = _int(fee_raw, "fee_charged") if fee_raw is not None else None
    if fee is not None and fee < 0:
        raise _Malformed(f"{tx_hash}: fee_charged {fee} is negative")
    details: dict[str, Any] = {}
    token = body.get("paging_token")
    if isinstance(token, str) and token.isascii() and token.isdigit():
        details["paging_token"] = token
    base = Observation(
        network=network,
        tx_hash=tx_hash,
        status=TxStatus.SUCCESS if successful else TxStatus.FAILED,
        block_number=ledger,
        block_hash=None,
        confirmations=max(1, head - ledger + 1) if head is not None else 1,
        timestamp=timestamp,
        fee=fee,
        details=details,
    )
    try:
        envelope = _envelope(body, passphrase)
    except _UnknownXdrType as exc:
        return _unreadable_envelope(base, body, str(exc))
    return _decode_envelope(base, body, envelope, successful, results)


def _unreadable_envelope(base: Observation, body: Mapping[str, Any], what: str) -> Observation:
    """A transaction whose envelope names a type stellar-sdk does not know: failed if Horizon says
    so (a failed transaction delivers nothing), else unclear."""
    source = body.get("source_account")
    sender = source if isinstance(source, str) and addresses.is_address("stellar", source) else None
    details = {**base.details, "envelope": f"names {what}"}
    obs = Observation(
        network=base.network, tx_hash=base.tx_hash, status=base.status, block_number=base.block_number,
        confirmations=base.confirmations, timestamp=base.timestamp, sender=sender, fee=base.fee, details=details,
    )
    if base.status is TxStatus.FAILED:
        return obs
    return unclear(obs, [f"envelope_xdr names {what}: its operations cannot be read"], dict(body))


def _decode_envelope(
    base: Observation, body: Mapping[str, Any], envelope: _Envelope, successful: bool, results: list[Any] | None
) -> Observation:
    tx_hash = base.tx_hash
    tx = envelope.tx
    tx_source, tx_source_id = _account(tx.source)
    memo_type, memo = _memo(tx.memo)
    reasons: list[str] = []
    details: dict[str, Any] = {
        **base.details,
        "memo_type": memo_type,
        "operation_count": len(tx.operations),
        "source_account": tx_source,
    }
    if tx_source_id is not None:
        details["source_muxed_id"] = str(tx_source_id)
    source_field = body.get("source_account")
    if source_field is not None and source_field != tx_source:
        raise _Malformed(f"{tx_hash}: source_account {source_field!r:.60} is not the envelope's source {tx_source}")
    fee_field = body.get("fee_account")
    fee_payer = envelope.fee_source if envelope.fee_bump else tx_source
    if fee_field is not None and fee_field != fee_payer:
        raise _Malformed(f"{tx_hash}: fee_account {fee_field!r:.60} is not the envelope's fee source {fee_payer}")
    if envelope.fee_bump:
        details["fee_bump"] = True
        details["inner_hash"] = envelope.inner_hash
    if fee_payer != tx_source:
        details["fee_account"] = fee_payer
    memo_type_field = body.get("memo_type")
    if memo_type_field is not None:
        if not isinstance(memo_type_field, str) or memo_type_field not in MEMO_TYPES:
            reasons.append(
                f"memo_type {memo_type_field!r:.40} is none of the memo types Horizon documents "
                f"({', '.join(sorted(MEMO_TYPES))})"
            )
        elif memo_type_field != memo_type:
            raise _Malformed(f"{tx_hash}: memo_type {memo_type_field!r} disagrees with the envelope's {memo_type!r}")
    transfers: list[Transfer] = []
    others: list[str] = []
    muxed: list[dict[str, str]] = []
    attempted: list[dict[str, Any]] = []
    for index, op in enumerate(tx.operations):
        source, _source_id = _account(op.source) if op.source is not None else (tx_source, tx_source_id)
        kind = operation_kind(type(op))
        if kind != "transfer":
            others.append(type(op).__name__)
            if kind == "unclear":
                why = _UNCLEAR_OPERATIONS.get(type(op), "an operation type this adapter does not know")
                reasons.append(f"operation {index} is {type(op).__name__}: {why}")
            continue
        destination, asset, amount, note = _operation_transfer(op, index, results, successful)
        recipient, muxed_id = _account(destination)
        if muxed_id is not None:
            muxed.append({"operation": str(index), "account": recipient, "id": str(muxed_id)})
        asset_kind, contract, symbol, decimals = _asset(asset)
        if not successful:
            attempted.append({"operation": index, "to": recipient, "asset": contract or "native", "amount": amount})
            continue
        if amount is None:
            details.setdefault("amount_unknown", []).append(f"operation {index}: {note}")
            reasons.append(f"operation {index} ({type(op).__name__} to {recipient}): {note}, which is absent")
            continue
        transfers.append(
            Transfer(
                kind=asset_kind,
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
    if not successful:
        details.update(_result_codes(body.get("result_xdr")))
    obs = Observation(
        network=base.network,
        tx_hash=tx_hash,
        status=base.status,
        block_number=base.block_number,
        block_hash=None,
        confirmations=base.confirmations,
        timestamp=base.timestamp,
        sender=tx_source,
        transfers=tuple(transfers),
        memo=memo,
        fee=base.fee,
        details=details,
    )
    # a failed transaction applied none of its operations: nothing in it can be a credit
    if reasons and successful:
        return unclear(obs, reasons, dict(body))
    return obs


def _operation_transfer(
    op: Any, index: int, results: list[Any] | None, successful: bool
) -> tuple[Any, Any, int | None, str]:
    """(destination, asset, stroops or None, note) of an operation that delivers value."""
    if isinstance(op, Payment):
        return op.destination, op.asset, _stroops(op.amount, "payment amount"), ""
    if isinstance(op, PathPaymentStrictReceive):
        exact = _stroops(op.dest_amount, "dest_amount")
        result = _op_result(results, index, "path_payment_strict_receive_result")
        success = getattr(result, "success", None)
        if successful and success is not None and int(success.last.amount.int64) != exact:
            raise _Malformed(f"operation {index}: result_xdr delivered {success.last.amount.int64}, not dest_amount")
        return op.destination, op.dest_asset, exact, ""
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
        merged = int(balance.int64) if balance is not None else None
        return op.destination, Asset.native(), merged, "the merged balance is only in result_xdr"
    raise _Malformed(f"operation {index}: {type(op).__name__} is not a transfer")  # pragma: no cover


@dataclass(frozen=True, slots=True)
class PaymentRecord:
    """One record of a Horizon payments page (``/payments`` of a transaction or an account) or one
    operation (``/operations/{id}``).

    ``transfer`` is what the record says arrived (None for a failed transaction's record, an
    ``account_merge`` (Horizon gives no amount: the transaction's result does), and record or
    asset types this adapter does not know). ``recipient`` is the account the record credits
    (``to``, ``account`` of a ``create_account``, ``into`` of an ``account_merge``); ``recognised``
    is False for a record type or asset type this adapter does not know."""

    id: str
    tx_hash: str
    ledger: int
    transfer: Transfer | None
    successful: bool | None
    transaction: Mapping[str, Any] | None
    kind: str = "payment"
    recipient: str | None = None
    recognised: bool = True


def ledger_of_paging_token(token: str) -> int:
    """The ledger of an operation's id / paging token (a TOID: ledger << 32 | tx << 12 | op)."""
    if not isinstance(token, str) or not token.isascii() or not token.isdigit():
        raise _Malformed(f"paging token {token!r:.40} is not an operation id")
    return int(token) >> 32


def _record_asset(record: Mapping[str, Any]) -> tuple[AssetKind, str | None, str | None, int | None] | None:
    """The (destination) asset of a payment record; None for an asset type this adapter does not know."""
    asset_type = record.get("asset_type")
    if asset_type == "native":
        return AssetKind.NATIVE, None, None, None
    if isinstance(asset_type, str) and asset_type in _ASSET_CODE:
        code = record.get("asset_code")
        if not isinstance(code, str) or not _ASSET_CODE[asset_type].match(code):
            raise _Malformed(f"asset_code {code!r:.40} is not a {asset_type} code")
        issuer = _g_account(record.get("asset_issuer"), "asset_issuer")
        return AssetKind.TOKEN, f"{code}:{issuer}", code, STROOP_DECIMALS
    return None


def parse_payment_record(record: object) -> PaymentRecord:
    """A ``payment``, ``path_payment_*``, ``create_account`` or ``account_merge`` record (or any
    other operation record, kept as not recognised)."""
    if not isinstance(record, Mapping):
        raise _Malformed(f"payment record is not an object: {record!r:.80}")
    record_id, tx_hash = record.get("id"), record.get("transaction_hash")
    if not isinstance(record_id, str) or not isinstance(tx_hash, str) or not addresses.is_tx_hash("stellar", tx_hash):
        raise _Malformed(f"payment record without id or transaction_hash: {record!r:.120}")
    ledger = ledger_of_paging_token(record.get("paging_token", record_id))
    ledger_of_paging_token(record_id)
    successful = record.get("transaction_successful")
    if successful is not None and not isinstance(successful, bool):
        raise _Malformed(f"record {record_id}: transaction_successful is {successful!r:.20}")
    kind = record.get("type")
    if not isinstance(kind, str):
        kind = ""  # a record without a readable type: not recognised, its transaction decides
    transfer: Transfer | None = None
    recipient: str | None = None
    recognised = True
    index = int(record_id) & 0xFFF
    index = index - 1 if index else 0
    if kind in _PAYMENT_RECORD_TYPES:
        sender = _g_account(record.get("from"), "from")
        recipient = _g_account(record.get("to"), "to")
        asset = _record_asset(record)
        amount = _record_amount(record, "amount")
        sent = _record_amount(record, "source_amount") if kind != "payment" and "source_amount" in record else None
        if successful is True and sent == 0 and amount > 0:
            raise _Malformed(f"record {record_id}: a successful {kind} that sent nothing")
        muxed_id = record.get("to_muxed_id")
        if muxed_id is not None and not (isinstance(muxed_id, str) and muxed_id.isascii() and muxed_id.isdigit()):
            raise _Malformed(f"record {record_id}: to_muxed_id {muxed_id!r:.40} is not a muxed id")
        recognised = asset is not None
        if asset is not None and successful is not False:
            transfer = Transfer(
                kind=asset[0],
                sender=sender,
                recipient=recipient,
                amount=amount,
                index=index,
                contract=asset[1],
                memo=muxed_id,
                symbol=asset[2],
                decimals=asset[3],
            )
    elif kind == "create_account":
        funder = _g_account(record.get("funder"), "funder")
        recipient = _g_account(record.get("account"), "account")
        amount = _record_amount(record, "starting_balance")
        if successful is not False:
            transfer = Transfer(AssetKind.NATIVE, funder, recipient, amount, index=index)
    elif kind == "account_merge":
        recipient = _g_account(record.get("into"), "into")
    else:
        recognised = False
    transaction = record.get("transaction")
    return PaymentRecord(
        id=record_id,
        tx_hash=tx_hash.lower(),
        ledger=ledger,
        transfer=transfer,
        successful=successful,
        transaction=transaction if isinstance(transaction, Mapping) else None,
        kind=kind,
        recipient=recipient,
        recognised=recognised,
    )


def parse_payments_page(body: object) -> list[PaymentRecord]:
    """The records of one Horizon payments page (``_embedded.records``)."""
    embedded = body.get("_embedded") if isinstance(body, Mapping) else None
    records = embedded.get("records") if isinstance(embedded, Mapping) else None
    if not isinstance(records, list):
        raise _Malformed(f"not a Horizon page: {body!r:.120}")
    return [parse_payment_record(r) for r in records]


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
    default 50), ``max_ledger_age_seconds`` (how old Horizon's latest ledger may be for a "not
    found" to count, default 120), plus the transport's timeouts and retry keys.
    """

    family: Final = "stellar"

    def __init__(
        self, network: Network, *, transport: Transport | None = None, clock: Callable[[], datetime] | None = None
    ) -> None:
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
        self.max_ledger_age = positive_option(extra, "max_ledger_age_seconds", 120, network.name)
        self.clock = clock or (lambda: datetime.now(UTC))

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
                try:
                    box.append(parse(body))
                except UnusableAnswer:
                    raise
                except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                    raise _Malformed(f"{path}: {type(exc).__name__}: {exc}") from exc

        body = self.transport.get_json(path, params, not_found=(404,) if missing_ok else (), validate=validate)
        if body is None:
            return None
        return box[0]

    def head(self, at_least: int = 0, *, fresh: bool = False) -> int:
        """The newest ledger Horizon has ingested (``history_latest_ledger`` of ``GET /``). A
        Horizon below ``at_least`` (a ledger already seen) is behind, and with ``fresh`` so is one
        whose latest ledger closed more than ``max_ledger_age_seconds`` ago; one that serves
        another network (``network_passphrase``) is wrong: in each case the next URL is tried,
        and :class:`ChainUnavailable` raised when none will do."""
        return self._root(at_least, fresh=fresh)[0]

    def _root(self, at_least: int = 0, *, fresh: bool = False) -> tuple[int, int | None]:
        """(``history_latest_ledger``, ``history_elder_ledger`` or None) of ``GET /``; see :meth:`head`."""

        def parse(body: Any) -> tuple[int, int | None]:
            if not isinstance(body, Mapping):
                raise _Malformed(f"Horizon root is not an object: {body!r:.80}")
            served = body.get("network_passphrase")
            if served is not None and served != self.passphrase:
                raise _Malformed(f"Horizon serves the network {served!r:.80}, not {self.passphrase!r}")
            latest = _int(body.get("history_latest_ledger"), "history_latest_ledger")
            if latest < at_least:
                raise _Malformed(f"Horizon is behind: latest ledger {latest} < {at_least}")
            closed = body.get("history_latest_ledger_closed_at")
            if fresh and closed is not None:
                age = (self.clock() - _time(closed, "history_latest_ledger_closed_at")).total_seconds()
                if age > self.max_ledger_age:
                    raise _Malformed(
                        f"Horizon is behind: its latest ledger {latest} closed at {closed}, {age:.0f} s ago"
                    )
            elder = body.get("history_elder_ledger")
            return latest, _int(elder, "history_elder_ledger") if elder is not None else None

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
        (:class:`InvalidChainInput`); a 404 from a current Horizon is ``not_found`` for that hash;
        any unusable answer, or a Horizon behind a found transaction's ledger or too stale to say
        "not found", raises :class:`ChainUnavailable` for the whole call."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of hashes, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        if not unique:
            return {}
        bodies = self._fetch_all(unique)
        seen = [_ledger_of(b) for b in bodies if b is not None]
        head = self.head(max(seen, default=0), fresh=len(seen) < len(bodies))
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

    def operation(self, operation_id: str) -> PaymentRecord | None:
        """One operation (``/operations/{id}``) read as a payment record, or None when Horizon does
        not know it. ``operation_id`` is the decimal operation id (its paging token)."""
        if not isinstance(operation_id, str) or not operation_id.isascii() or not operation_id.isdigit():
            raise InvalidChainInput("operation_id", "must be a decimal operation id")
        return self._get(f"/operations/{int(operation_id)}", parse_payment_record, missing_ok=True)

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Transactions that delivered value to ``address`` in ledgers ``since..until``
        (inclusive; ``until`` defaults to the latest ledger), oldest first: each successful one with
        a transfer to the address, and each *unclear* one (a record Horizon lists for the account
        whose transaction cannot be read with certainty). A muxed ``M…`` address keeps only
        transfers to its id.

        Reads ``/accounts/{id}/payments`` in ascending order from the ledger ``since`` on (its
        cursor is the ledger's first operation id), following each page's last record id as the
        next cursor until a page is short or passes ``until``; then reads each listed transaction
        in full (the memo and every operation: payment records carry no memo), unless the page
        embedded it (``join=transactions``). Records of failed transactions are skipped; records
        of types this adapter does not know are looked up. :class:`ChainUnavailable` when Horizon
        has not reached ``until`` yet or keeps no history as old as ``since``, when it lists a
        transaction it then does not find (or that says otherwise than the record), or when the
        range needs more than ``max_pages`` pages."""
        account, muxed_id = self.split_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a ledger number (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a ledger number >= since ({since})")
        # a Horizon that has not ingested `until` yet, or keeps no history before a ledger after
        # `since` (``history_elder_ledger``; ledger 1, genesis, holds no transaction), would leave
        # the range short
        _latest, elder = self._root(until or 0)
        if elder is not None and elder > 2 and since < elder:
            raise ChainUnavailable(
                self.network.name, f"Horizon keeps history from ledger {elder} only, after the range's start {since}"
            )
        listed = self._listed_payments(account, since, until)
        if not listed:
            return []
        missing = [h for h, entry in listed.items() if entry.transaction is None]
        fetched = dict(zip(missing, self._fetch_all(missing), strict=True))
        bodies: dict[str, Mapping[str, Any]] = {}
        for h, entry in listed.items():
            body = entry.transaction if entry.transaction is not None else fetched[h]
            if body is None:
                raise ChainUnavailable(
                    self.network.name, f"Horizon lists a payment of transaction {h} but does not find the transaction"
                )
            if str(body.get("hash", "")).lower() != h:
                raise ChainUnavailable(self.network.name, f"Horizon embedded another transaction in a record of {h}")
            bodies[h] = body
        head = self.head(max(_ledger_of(b) for b in bodies.values()))
        out: list[Observation] = []
        for h, body in bodies.items():
            obs = self._decode(body, head)
            entry = listed[h]
            if obs.block_number != entry.ledger:
                raise ChainUnavailable(
                    self.network.name, f"Horizon lists transaction {h} in ledger {entry.ledger}, "
                    f"but the transaction is in ledger {obs.block_number}"
                )
            if obs.status is TxStatus.UNCLEAR:
                out.append(obs)
                continue
            if obs.status is TxStatus.FAILED and entry.successful:
                raise ChainUnavailable(
                    self.network.name, f"Horizon lists a successful payment of transaction {h}, which failed"
                )
            to_account = [t for t in obs.transfers if t.recipient == account]
            if obs.status is TxStatus.SUCCESS and entry.pays and not to_account:
                raise ChainUnavailable(
                    self.network.name, f"Horizon lists a payment of transaction {h} to {account}, "
                    "which the transaction does not make"
                )
            if any(muxed_id is None or t.memo == str(muxed_id) for t in to_account):
                out.append(obs)
        return sorted(out, key=lambda o: (o.block_number or 0, int(str(o.details.get("paging_token") or 0))))

    def _listed_payments(self, account: str, since: int, until: int | None) -> dict[str, _Listed]:
        """Transaction hash -> what the account's payment records say of it, for the records in
        ``since..until`` that may credit ``account``."""
        cursor = str(since << 32) if since > 0 else ""
        listed: dict[str, _Listed] = {}
        for _page in range(self.max_pages):
            params: dict[str, Any] = {"order": "asc", "limit": self.page_limit, "join": "transactions"}
            if cursor:
                params["cursor"] = cursor
            records = self._get(f"/accounts/{account}/payments", parse_payments_page, params, missing_ok=True)
            if records is None:  # Horizon does not know the account: it never received anything
                return {}
            done = len(records) < self.page_limit
            for record in records:
                if until is not None and record.ledger > until:
                    done = True
                    break
                if record.ledger < since or record.successful is False:
                    continue
                if record.recognised and record.recipient != account:
                    continue  # a payment the account made, or a merge into another account
                entry = listed.setdefault(record.tx_hash, _Listed(record.ledger, record.transaction))
                entry.pays = entry.pays or record.recognised
                entry.successful = entry.successful or record.successful is True
                if entry.ledger != record.ledger:
                    raise ChainUnavailable(
                        self.network.name, f"Horizon lists transaction {record.tx_hash} in two ledgers"
                    )
            if done or not records:
                return listed
            cursor = records[-1].id
        raise ChainUnavailable(
            self.network.name, f"payments of {account} need more than {self.max_pages} pages; narrow the range"
        )


@dataclass(slots=True)
class _Listed:
    """What an account's payment records say of one transaction."""

    ledger: int
    transaction: Mapping[str, Any] | None
    #: a recognised record credits the account
    pays: bool = False
    #: a record says the transaction succeeded
    successful: bool = False


def _ledger_of(body: Mapping[str, Any]) -> int:
    ledger = body.get("ledger")
    return ledger if isinstance(ledger, int) and not isinstance(ledger, bool) else 0
