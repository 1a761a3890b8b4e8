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

Decoding rules (result classes from xrpl.org "Transaction Results" and "Finality of Results"):

- The transaction fields must hash to the transaction's hash (SHA-512Half of ``TXN\\0`` and the
  canonical binary form, encoded by xrpl-py's codec), so that no field that decides a credit
  (destination, tag, amount, flags, sender) is taken on trust. Fields the API adds are left out
  of the encoding (every serialized field name starts with a capital letter; ``DeliverMax`` is
  the API's alias of ``Amount``). Fields that hash to another id (the answer contradicts itself),
  or that cannot be encoded (a field or transaction type the codec does not know) make the
  transaction *unclear*: a person reads the raw answer; it is never credited nor "not found".
  (Two older recordings, xrpl.js test fixtures, do not hash: see tests/chains/test_xrpl.py.)
- Only a *validated* transaction is final: ``tesSUCCESS`` is success, a ``tec…`` code is a failure
  that still charged the fee (nothing was delivered); a transaction that is not validated yet is
  pending (its metadata, when present, is provisional and its transfers are reported as such).
  A validated ledger holds only ``tes`` and ``tec`` results: any other code in a validated
  transaction (``tef``/``tel``/``tem``/``ter``, or ``tes…`` other than ``tesSUCCESS``), and a code
  of no documented class at all, make the transaction *unclear* (:func:`chains.base.unclear`), as
  does a delivered amount that cannot be read or a partial payment whose delivered amount is not
  known.
- A ``Payment`` delivers ``meta.delivered_amount`` and nothing else: ``Amount``/``DeliverMax`` is
  only the most that could arrive (a partial payment, flag ``tfPartialPayment``, may deliver far
  less; reading ``Amount`` is a known exploit). When ``delivered_amount`` is absent (ledgers before
  2014), ``meta.DeliveredAmount`` is used, and for a payment *without* the partial flag the full
  ``Amount`` (such a payment delivers exactly its amount or fails). A partial payment whose
  delivered amount cannot be known yields no transfer and says so in ``details``.
- ``DestinationTag`` is the memo (decimal string). ``Memos`` (hex) are decoded into ``details``.
- ``SigningPubKey``, the key that signed the transaction (the account's master key or its regular
  key), is kept as ``details["signing_pub_key"]`` (66 hex characters, uppercase) when the fields
  hash to the transaction's id and it is a key of a documented form (``ED`` + 32 bytes, or
  ``02``/``03`` + 32 bytes); an ownership proof may name it (``chains.ownership.xrpl``). A
  multi-signed transaction has an empty ``SigningPubKey`` (its signers are in ``Signers``):
  ``details["multi_signed"]`` is True and no key is kept; nor is a key of any other form.
- XRP amounts are drops (1 XRP = 10**6 drops). Issued currencies are named ``CURRENCY.ISSUER``
  (the currency exactly as the ledger spells it: a 3-character code or 40 hex characters) and
  their decimal ``value`` is scaled to integer base units of :data:`ISSUED_CURRENCY_DECIMALS`
  (15) decimals: configure listed XRPL tokens with ``decimals = 15``. The ledger keeps 15
  significant digits, so only values below 1 with more than 15 decimals lose digits; they are
  rounded *down* (never credit more than arrived) and flagged in ``details``. When the issuer in
  the delivered amount is the destination itself ("any issuer I trust"), the real issuer is read
  from the destination's trust-line change in the metadata. MPT amounts use the issuance id as
  ``contract``.
- Issued-currency amounts must name a currency code of a documented form (3 characters or 40 hex,
  checked by xrpl-py's codec) and a valid issuer address, MPT amounts a 48-hex issuance id;
  anything else in a delivered amount is unreadable (unclear).
- ``AccountDelete`` sends the remaining XRP to its destination (with its tag) and is a transfer
  too. Every other documented transaction type (``TrustSet``, ``CheckCreate``, offers, NFTs,
  escrows, checks cashed, channel claims, ...: xrpl-py's list) yields no transfer and is never a
  deposit; ``details["transaction_type"]`` names it. A type that is not documented is unclear
  when it names a destination, carries an amount or raises another account's balance (for
  :meth:`XrplAdapter.incoming`: when it is addressed to, or raises the balance of, the account).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_DOWN, Decimal, InvalidOperation
from hashlib import sha512
from typing import Any, Final, TypeVar

from xrpl.core.addresscodec import is_valid_classic_address
from xrpl.core.binarycodec import encode as encode_binary
from xrpl.core.binarycodec.definitions import definitions as codec_definitions
from xrpl.core.binarycodec.types.currency import Currency
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
    unclear,
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
    "result_class",
    "split_entry",
    "verify_tx_hash",
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
#: result-code prefixes rippled documents (xrpl.org, Transaction Results)
RESULT_CLASSES: Final = frozenset({"tes", "tec", "tef", "tel", "tem", "ter"})
#: a public key: ``ED`` + 32 bytes (ed25519) or ``02``/``03`` + 32 bytes (compressed secp256k1), in hex
_PUBLIC_KEY: Final = re.compile(r"(?:[Ee][Dd]|0[23])[0-9A-Fa-f]{64}")
#: prefix of the bytes hashed into a transaction id (``TXN\0``)
_TXN_PREFIX: Final = bytes.fromhex("54584E00")


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
    #: why the hash could not be checked against the fields (None: it was checked, or not asked)
    unverified: str | None = None
    #: the entry as the node sent it (attached to an unclear observation)
    raw: Mapping[str, Any] | None = None


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
    if not isinstance(value, str) or not value.isascii() or not value.isdigit():
        raise _Malformed(f"{what} is not a drops string: {value!r:.80}")
    return int(value)


def _is_hex(value: object, length: int) -> bool:
    if not isinstance(value, str) or len(value) != length:
        return False
    try:
        bytes.fromhex(value)
    except ValueError:
        return False
    return True


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
        if not value.isascii() or not value.isdigit():
            raise _Malformed(f"{what}: MPT value {value!r} is not an integer")
        issuance = amount["mpt_issuance_id"]
        if not _is_hex(issuance, 48):
            raise _Malformed(f"{what}: mpt_issuance_id {issuance!r:.80} is not 48 hex digits")
        return XrplAmount(AssetKind.TOKEN, int(value), contract=str(issuance).upper(), raw=value)
    currency, issuer = amount.get("currency"), amount.get("issuer")
    if not isinstance(currency, str) or not isinstance(issuer, str):
        raise _Malformed(f"{what} lacks currency or issuer: {amount!r:.120}")
    try:
        Currency.from_value(currency)  # 3 characters of the documented set, or 40 hex digits
    except Exception:  # the codec raises its own exception types
        raise _Malformed(f"{what}: currency {currency!r:.60} is not a currency code") from None
    if currency == "XRP" or not is_valid_classic_address(issuer):
        raise _Malformed(f"{what}: {currency!r} issued by {issuer!r:.60} is not an issued currency")
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
        try:
            return datetime.fromtimestamp(date + RIPPLE_EPOCH, UTC)
        except (OverflowError, OSError, ValueError):
            raise _Malformed(f"date {date!r} is not a time") from None
    iso = entry.get("close_time_iso")
    if isinstance(iso, str):
        try:
            return datetime.fromisoformat(iso.replace("Z", "+00:00")).astimezone(UTC)
        except ValueError:
            raise _Malformed(f"close_time_iso {iso!r} is not a time") from None
    return None


def _serialized_fields(tx: Mapping[str, Any]) -> dict[str, Any]:
    """The fields of ``tx`` that are part of its binary form: every serialized field name starts
    with a capital letter (``hash``, ``ctid``, ``date``, ``inLedger``, ``ledger_index``, ``meta``,
    ``validated``... are added by the API), and ``DeliverMax`` is the API's name for ``Amount``."""
    fields = {k: v for k, v in tx.items() if isinstance(k, str) and k[:1].isupper() and k != "DeliverMax"}
    if "DeliverMax" in tx:
        fields["Amount"] = tx["DeliverMax"]
    return fields


def verify_tx_hash(tx_hash: str, tx: Mapping[str, Any]) -> str | None:
    """Check that the transaction fields ``tx`` hash to ``tx_hash`` (SHA-512Half of ``TXN\\0`` and
    the binary form). None when they do; otherwise the reason, one sentence: the fields hash to
    another id (the answer contradicts itself), or they cannot be encoded (a field or transaction
    type the codec does not know, a value of the wrong form), so the hash cannot be checked."""
    if "DeliverMax" in tx and "Amount" in tx and tx["Amount"] != tx["DeliverMax"]:
        return f"Amount and DeliverMax of {tx_hash} differ (the API writes the same amount under both names)"
    fields = _serialized_fields(tx)
    unknown = []
    for name in fields:
        try:
            known = codec_definitions.get_field_instance(name).is_serialized
        except KeyError:
            known = False
        if not known:
            unknown.append(name)
    if unknown:
        return f"fields {sorted(unknown)} are unknown to the binary codec: the hash {tx_hash} cannot be checked"
    tx_type = fields.get("TransactionType")
    try:
        codec_definitions.get_transaction_type_code(str(tx_type))
    except KeyError:
        return f"TransactionType {tx_type!r:.60} is unknown to the binary codec: the hash {tx_hash} cannot be checked"
    try:
        blob = bytes.fromhex(encode_binary(fields))
    except Exception as exc:  # the codec raises many types on a value it cannot serialize
        return f"the fields of {tx_hash} cannot be serialized ({type(exc).__name__}: {exc!s:.120}): hash not checked"
    computed = sha512(_TXN_PREFIX + blob).hexdigest()[:64].upper()
    if computed != tx_hash.upper():
        return f"the transaction fields hash to {computed}, not to {tx_hash.upper()}: the answer contradicts itself"
    return None


def split_entry(entry: Mapping[str, Any], *, validated: bool | None = None, check_hash: bool = True) -> XrplEntry:
    """Reduce any layout to :class:`XrplEntry`.

    ``tx_json`` (API v2) or ``tx`` (API v1 account_tx) hold the transaction when present, else the
    transaction fields are at the top (``tx`` v1, ``ledger`` expanded); the metadata is ``meta``,
    ``metaData`` (``ledger``) or ``metadata`` (``transaction_entry``). ``validated`` overrides the
    entry's own flag (a ``ledger`` answer flags the whole ledger). The fields are checked against
    the hash (:func:`verify_tx_hash`); ``check_hash=False`` skips that, for a caller that has its
    own reason to read an entry that does not hash (the adapter never does).
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
    unverified = verify_tx_hash(tx_hash, tx) if check_hash else None
    return XrplEntry(
        tx_hash=tx_hash.upper(),
        tx=tx,
        meta=meta,
        validated=(entry.get("validated") is True) if validated is None else validated,
        ledger_index=ledger_index,
        ledger_hash=ledger_hash.upper() if isinstance(ledger_hash, str) else None,
        timestamp=_timestamp(tx, entry),
        unverified=unverified,
        raw=entry,
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
    #: the range the server says it searched (``ledger_index_min`` / ``ledger_index_max``), if given
    ledger_min: int | None = None
    ledger_max: int | None = None


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
    return AccountTxPage(
        got,
        tuple(split_entry(e) for e in transactions),
        result.get("marker"),
        _int_field(result.get("ledger_index_min"), "ledger_index_min"),
        _int_field(result.get("ledger_index_max"), "ledger_index_max"),
    )


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
    items = tx.get("Memos")
    for item in items if isinstance(items, list) else []:
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


def _signing_key(entry: XrplEntry) -> dict[str, Any]:
    """``signing_pub_key`` (the transaction's ``SigningPubKey``, uppercase) when the fields hash to
    the transaction's id and it is a key of a documented form; ``multi_signed`` when it is empty and
    ``Signers`` lists the signers. Nothing else: a key that was not checked is never kept."""
    if entry.unverified:
        return {}
    key = entry.tx.get("SigningPubKey")
    if key == "":
        signers = entry.tx.get("Signers")
        return {"multi_signed": True} if isinstance(signers, list) and signers else {}
    if isinstance(key, str) and _PUBLIC_KEY.fullmatch(key):
        return {"signing_pub_key": key.upper()}
    return {}


def result_class(code: object, validated: bool) -> tuple[TxStatus, str | None]:
    """The status a ``meta.TransactionResult`` gives, and a reason when it cannot be read.

    From xrpl.org (Transaction Results; Finality of Results): ``tesSUCCESS`` is the only success,
    ``tec`` codes failed but were applied (the fee is claimed), and a validated ledger holds no
    other result; only a validated result is final."""
    if not isinstance(code, str) or code[:3] not in RESULT_CLASSES:
        return TxStatus.UNCLEAR, f"meta.TransactionResult {code!r:.60} belongs to no documented result class"
    if not validated:
        return TxStatus.PENDING, None
    if code == "tesSUCCESS":
        return TxStatus.SUCCESS, None
    if code.startswith("tec"):
        return TxStatus.FAILED, None
    return TxStatus.UNCLEAR, (
        f"meta.TransactionResult {code!r} in a validated ledger: a validated ledger holds only tesSUCCESS "
        "and tec results"
    )


def _gainers(meta: Mapping[str, Any]) -> set[str] | None:
    """Accounts whose balance (XRP or any token) rose in ``meta``; None when it cannot be read."""
    try:
        changes = get_balance_changes(dict(meta))  # type: ignore[arg-type]  # a TypedDict in xrpl-py
        return {
            str(c["account"])
            for c in changes
            for b in c.get("balances", [])
            if Decimal(str(b.get("value", "0"))) > 0
        }
    except Exception:  # odd metadata the library cannot read
        return None


def _undocumented_type_reason(entry: XrplEntry, tx_type: str, account: str | None) -> str | None:
    """A reason to call a transaction of an undocumented type unclear: it names a destination or
    carries an amount or raises another account's balance (``account`` given: it is addressed to
    ``account`` or raises its balance); None when it moves nothing that could be ours."""
    tx, meta = entry.tx, entry.meta
    gainers = _gainers(meta) if meta is not None else set()
    what = f"TransactionType {tx_type!r:.60} is not a documented transaction type"
    if gainers is None:
        return f"{what}, and its metadata cannot be read for balance changes"
    if account is not None:
        if tx.get("Destination") == account or account in gainers:
            return f"{what}, and it names {account} with value"
        return None
    value_fields = sorted(k for k in ("Destination", "Amount", "DeliverMax") if k in tx)
    others = sorted(gainers - {str(tx["Account"])})
    if value_fields or others:
        return f"{what}, and it moves value ({', '.join(value_fields + others)})"
    return None


def decode_entry(network: str, entry: XrplEntry, head: int | None, account: str | None = None) -> Observation:
    """The observation of one transaction. ``head`` is the last validated ledger (None: unknown);
    ``account`` (optional) is the account whose history is being read (see the module docstring
    for what it changes for an undocumented transaction type)."""
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
    details.update(_signing_key(entry))
    fee = _drops(tx["Fee"], "Fee") if "Fee" in tx else None
    reasons: list[str] = []
    if entry.unverified:
        reasons.append(entry.unverified)
    result_code = meta.get("TransactionResult") if meta is not None else None
    if meta is not None:
        if result_code is None:
            raise _Malformed(f"{entry.tx_hash}: metadata without TransactionResult")
        details["result"] = result_code
        details["tx_index"] = _int_field(meta.get("TransactionIndex"), "TransactionIndex")
    if entry.validated and (meta is None or entry.ledger_index is None):
        raise _Malformed(f"{entry.tx_hash}: validated but without metadata or ledger index")
    if meta is not None:
        status, reason = result_class(result_code, entry.validated)
        if reason:
            reasons.append(reason)
    else:
        status = TxStatus.PENDING
    if entry.validated:
        assert entry.ledger_index is not None
        confirmations = max(1, head - entry.ledger_index + 1) if head is not None else 1
    else:
        confirmations = 0
        if meta is not None:
            details["provisional"] = True
    transfers: list[Transfer] = []
    known_type = _documented_type(tx_type)
    if tx_type in _VALUE_TYPES and meta is not None and result_code == "tesSUCCESS":
        transfer, reason = _value_transfer(entry, tx_type, flags, memo, details)
        if transfer is not None:
            transfers.append(transfer)
        if reason:
            reasons.append(reason)
    elif tx_type not in _VALUE_TYPES:
        details["non_payment"] = f"{tx_type} moves no value to a destination by itself"
        if not known_type:
            details["undocumented_type"] = True
            if result_code == "tesSUCCESS" or meta is None:
                reason = _undocumented_type_reason(entry, tx_type, account)
                if reason:
                    reasons.append(reason)
    if status is TxStatus.FAILED and tx_type in _VALUE_TYPES:
        attempted = tx.get("DeliverMax", tx.get("Amount"))
        details["attempted"] = {"destination": tx.get("Destination"), "amount": attempted, "destination_tag": tag}
    observation = Observation(
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
    if reasons:
        return unclear(observation, reasons, dict(entry.raw) if entry.raw is not None else None)
    return observation


def _documented_type(tx_type: str) -> bool:
    try:
        codec_definitions.get_transaction_type_code(tx_type)
    except KeyError:
        return False
    return True


def _value_transfer(
    entry: XrplEntry, tx_type: str, flags: int, memo: str | None, details: dict[str, Any]
) -> tuple[Transfer | None, str | None]:
    """The transfer of a successful Payment / AccountDelete, or (None, a reason it is unclear)."""
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
        return None, f"the delivered amount of this {tx_type} is not known (meta.delivered_amount is absent)"
    details["delivered_amount"] = delivered
    try:
        amount = decode_amount(delivered, source)
    except UnusableAnswer as exc:
        return None, f"the delivered amount cannot be read: {exc}"
    details["amount_source"] = source
    if amount.rounded_down:
        details["amount_rounded_down"] = (
            f"{amount.raw} has more than {ISSUED_CURRENCY_DECIMALS} decimals; rounded down to base units"
        )
    written = amount.contract
    amount, note = _delivered_issuer(amount, destination, meta)
    reason = None
    if note:
        details["issuer_note"] = note
        reason = f"the delivered amount names the destination as issuer and the real issuer is unknown: {note}"
    elif amount.contract != written and amount.contract is not None:
        details["issuer_resolved_from_meta"] = amount.contract.split(".", 1)[1]
    transfer = Transfer(
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
    return transfer, reason


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

    def _decode(self, entry: XrplEntry, head: int | None, account: str | None = None) -> Observation:
        try:
            return decode_entry(self.network.name, entry, head, account)
        except UnusableAnswer as exc:
            raise ChainUnavailable(self.network.name, f"malformed transaction {entry.tx_hash}: {exc}") from exc

    # ----------------------------------------------------------------- incoming

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Validated transactions that delivered value to ``address`` in ledgers ``since..until``
        (inclusive; ``until`` defaults to the server's last validated ledger, asked first), oldest
        first, from ``account_tx`` (forward, ``limit`` = ``account_tx_limit``, following ``marker``).
        An X-address (or an ``r…`` address) with a tag keeps only transfers carrying that
        destination tag. Payments and AccountDeletes that delivered to the address are successes;
        a transaction that names the address but cannot be read with certainty is returned as
        ``unclear`` (never a credit); failed and pending transactions, outgoing payments and
        documented non-payment types (``TrustSet``, offers, ...) are left out.

        A server whose last validated ledger is below ``until`` (behind), that says it searched
        less than the range, or lists a transaction outside it raises :class:`ChainUnavailable`."""
        classic, tag = self.split_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a ledger index (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a ledger index >= since ({since})")
        head = self.head(until or 0)
        last = head if until is None else until
        if last < since:
            return []
        params: dict[str, Any] = {
            "account": classic,
            "ledger_index_min": since,
            "ledger_index_max": last,
            "forward": True,
            "limit": self.page_limit,
            "binary": False,
            "api_version": 2,
        }

        def parse(body: Any) -> AccountTxPage:
            page = parse_account_tx(body, classic)
            if page.ledger_max is not None and page.ledger_max < last:
                raise _Malformed(f"account_tx searched ledgers up to {page.ledger_max} only, asked up to {last}")
            for entry in page.entries:
                if entry.ledger_index is not None and not since <= entry.ledger_index <= last:
                    raise _Malformed(f"account_tx listed {entry.tx_hash} of ledger {entry.ledger_index}, "
                                     f"outside the asked range {since}..{last}")
            return page

        entries: dict[str, XrplEntry] = {}
        markers: list[Any] = []
        for _page in range(self.max_pages):
            page = self._rpc("account_tx", params, parse)
            for entry in page.entries:
                if entry.validated and entry.ledger_index is not None:
                    entries.setdefault(entry.tx_hash, entry)
            if page.marker is None:
                break
            if page.marker in markers:
                raise ChainUnavailable(self.network.name, f"account_tx for {classic} repeats marker {page.marker!r}")
            markers.append(page.marker)
            params["marker"] = page.marker
        else:
            raise ChainUnavailable(
                self.network.name, f"account_tx for {classic} needs more than {self.max_pages} pages; narrow the range"
            )
        out: list[Observation] = []
        for entry in entries.values():
            observation = self._decode(entry, head, classic)
            if _reaches(observation, entry, classic, tag):
                out.append(observation)
        return sorted(out, key=lambda o: (o.block_number or 0, int(o.details.get("tx_index") or 0)))


def _reaches(observation: Observation, entry: XrplEntry, classic: str, tag: int | None) -> bool:
    """Whether ``observation`` belongs in :meth:`XrplAdapter.incoming` for ``classic`` (and ``tag``)."""
    wanted = None if tag is None else str(tag)
    if observation.status in (TxStatus.SUCCESS, TxStatus.UNCLEAR) and any(
        t.recipient == classic and (wanted is None or t.memo == wanted) for t in observation.transfers
    ):
        return True
    if observation.status is not TxStatus.UNCLEAR or observation.transfers:
        return False
    # unclear without a transfer read: kept when it is addressed to us or our balance rose
    if wanted is not None and observation.memo != wanted:
        return False
    if entry.tx.get("Destination") == classic:
        return True
    gainers = _gainers(entry.meta) if entry.meta is not None else set()
    return gainers is None or classic in gainers
