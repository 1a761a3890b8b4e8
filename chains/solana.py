"""The Solana adapter (JSON-RPC 2.0).

What is read, through :class:`~chains.transport.Transport` (batches, retries, failover, cooldown):

- ``getTransaction`` with ``maxSupportedTransactionVersion: 0`` (without it a node refuses every
  versioned transaction) in the configured ``encoding`` (``jsonParsed`` by default; ``json`` is
  read too, and the decoder accepts either shape per instruction; ``base64`` too: the wire bytes,
  decoded with ``solders``, see :func:`from_wire`), all the hashes of a lookup and
  ``getSlot`` in one batch. ``null`` is the node's "not found"; a JSON-RPC error for a transaction
  is an unusable answer (next URL, then :class:`~chains.base.ChainUnavailable`).
- ``getSignaturesForAddress`` (newest first, paged with ``before``) and ``getTokenAccountsByOwner``
  (both token programs) for :meth:`SolanaAdapter.incoming`: an SPL deposit lands in a token
  account, and a transfer to an existing token account does not list the owner's address at all,
  so each of the owner's token accounts is read too.

Decoding rules:

- ``meta.err`` null is success; otherwise the transaction failed (fee paid, nothing moved) and what
  it tried is in ``details["attempted"]``.
- Never guess: a result that says something the adapter cannot read with certainty is
  ``unclear`` (:func:`chains.base.unclear`; the rules send it to a person, never credit it):
  ``meta.err`` missing, ``meta.status`` disagreeing with it, a ``version`` other than ``legacy``/0,
  and any balance change the instructions read do not account for (SOL: ``pre/postBalances``
  against the fee, transfers and account creations; SPL: ``pre/postTokenBalances`` against the
  transfers, mints included). A balance that rose by more than the read instructions explain was
  paid by something the adapter does not read (a program moving lamports, a mint, a close, a
  Token-2022 transfer fee, an undecodable instruction): the adapter cannot tell whose address it
  was, so the whole transaction is unclear. An answer that is not what the RPC sends (signature
  mismatch, a wire transaction whose signature does not verify, an unknown ``transaction``
  encoding, lookups that ``loadedAddresses`` does not match, balances not one per key) is
  unusable: next URL, then :class:`~chains.base.ChainUnavailable`.
- Account keys are the message's static keys followed by ``meta.loadedAddresses`` (writable, then
  read-only): instructions of a v0 transaction refer to address-lookup-table accounts by those
  positions (``jsonParsed`` answers already list them, marked ``source: lookupTable``).
- SOL: system-program ``transfer`` and ``transferWithSeed`` instructions, top level and inner
  (CPI), in lamports. Account creation (rent funding) is not a transfer.
- SPL (Token and Token-2022): ``transfer`` and ``transferChecked``. The destination is a token
  account; the transfer's ``recipient`` is its **owner**, read from ``pre/postTokenBalances``,
  and ``sender`` is the owner of the source token account (else the signing authority).
  ``contract`` is the mint, ``decimals`` the mint's. Old answers (2021) have no ``owner`` in the
  token balances: the token account itself is then the recipient and
  ``details["spl"][i]["owner_resolved"]`` is false.
- Memo program (v1 and v2) instructions give ``Observation.memo`` (the first; all are in
  ``details["memos"]``).
- ``sender`` of the observation is the fee payer (first account key, as EVM's ``from``); each
  transfer has its own sender, which may differ (``details["fee_payer"]`` is always set).
- Confirmations are counted in slots: ``getSlot`` (same commitment) - slot + 1.
"""

from __future__ import annotations

import base64
import binascii
import logging
import struct
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import base58
from solders.message import MessageV0
from solders.transaction import VersionedTransaction

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
from chains.transport import JsonRpcError, RpcCall, Transport, UnusableAnswer, positive_option

__all__ = [
    "MEMO_PROGRAMS",
    "SYSTEM_PROGRAM",
    "TOKEN_PROGRAMS",
    "SolanaAdapter",
    "account_keys",
    "decode_transaction",
    "from_wire",
]

log = logging.getLogger(__name__)

SYSTEM_PROGRAM: Final = "11111111111111111111111111111111"
TOKEN_PROGRAM: Final = "TokenkegQfeZyiNwAJbNbGKPFXCWuBvf9Ss623VQ5DA"  # noqa: S105 - a program id
TOKEN_2022_PROGRAM: Final = "TokenzQdBNbLqP5VEhdkAS6EPFLC1PHnBqCXEpPxuEb"  # noqa: S105 - a program id
TOKEN_PROGRAMS: Final = frozenset({TOKEN_PROGRAM, TOKEN_2022_PROGRAM})
MEMO_PROGRAMS: Final = frozenset(
    {"MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr", "Memo1UhkJRfHyvLMcVucJwxXeuD728EqVTDTGV6"}
)
_ENCODINGS: Final = ("jsonParsed", "json", "base64")
#: binary encodings of ``transaction`` (``[data, encoding]``) that :func:`from_wire` reads
_WIRE_ENCODINGS: Final = ("base64", "base58")
_COMMITMENTS: Final = ("confirmed", "finalized")


class _Malformed(UnusableAnswer):
    """An answer that is not what the Solana RPC sends: fail over to the next URL."""


@dataclass(frozen=True, slots=True)
class _Instruction:
    program: str
    accounts: tuple[str, ...]
    data: bytes | None
    parsed: Any
    #: position in execution order (top-level instructions, each followed by its inner ones)
    position: int


@dataclass(frozen=True, slots=True)
class _TokenAccount:
    mint: str
    owner: str | None
    decimals: int | None


# --------------------------------------------------------------------------------------------------
# pure decoding


def account_keys(result: Mapping[str, Any]) -> list[str]:
    """Every account key of a transaction in index order: static keys, then the lookup-table
    addresses of ``meta.loadedAddresses`` (writable, then read-only) when the answer lists them
    separately (``json`` encoding)."""
    message = _message(result)
    raw = message.get("accountKeys")
    if not isinstance(raw, list) or not raw:
        raise _Malformed("message without accountKeys")
    keys: list[str] = []
    parsed_form = False
    for item in raw:
        if isinstance(item, str):
            keys.append(item)
        elif isinstance(item, Mapping) and isinstance(item.get("pubkey"), str):
            keys.append(item["pubkey"])
            parsed_form = True
        else:
            raise _Malformed(f"account key {item!r:.60}")
    meta = result.get("meta")
    loaded = meta.get("loadedAddresses") if isinstance(meta, Mapping) else None
    if not parsed_form and isinstance(loaded, Mapping):
        for group in ("writable", "readonly"):
            values = loaded.get(group) or []
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise _Malformed(f"loadedAddresses.{group} is not a list of keys")
            keys.extend(values)
    return keys


def _message(result: Mapping[str, Any]) -> Mapping[str, Any]:
    tx = result.get("transaction")
    message = tx.get("message") if isinstance(tx, Mapping) else None
    if not isinstance(message, Mapping):
        raise _Malformed("transaction without message (is the encoding json or jsonParsed?)")
    return message


def _instruction(raw: object, keys: list[str], position: int) -> _Instruction:
    if not isinstance(raw, Mapping):
        raise _Malformed(f"instruction {raw!r:.60}")
    if "programIdIndex" in raw:
        try:
            program = keys[int(raw["programIdIndex"])]
            accounts = tuple(keys[int(i)] for i in raw.get("accounts") or [])
        except (IndexError, TypeError, ValueError):
            raise _Malformed(f"instruction refers to an account key that does not exist: {raw!r:.100}") from None
    else:
        program_id = raw.get("programId")
        accounts = tuple(raw.get("accounts") or [])
        if not isinstance(program_id, str) or not all(isinstance(a, str) for a in accounts):
            raise _Malformed(f"instruction without programId: {raw!r:.100}")
        program = program_id
    data: bytes | None = None
    if isinstance(raw.get("data"), str):
        try:
            data = bytes(base58.b58decode(raw["data"]))
        except ValueError:
            raise _Malformed("instruction data is not Base58") from None
    return _Instruction(str(program), accounts, data, raw.get("parsed"), position)


def _instructions(result: Mapping[str, Any], keys: list[str]) -> list[_Instruction]:
    """Top-level instructions, each followed by its inner (CPI) instructions."""
    top = _message(result).get("instructions")
    if not isinstance(top, list):
        raise _Malformed("message without instructions")
    meta = result.get("meta")
    inner: dict[int, list[Any]] = {}
    for group in (meta.get("innerInstructions") or []) if isinstance(meta, Mapping) else []:
        if isinstance(group, Mapping) and isinstance(group.get("instructions"), list):
            inner.setdefault(int(group.get("index", -1)), []).extend(group["instructions"])
    out: list[_Instruction] = []
    for index, raw in enumerate(top):
        out.append(_instruction(raw, keys, len(out)))
        for raw_inner in inner.get(index, []):
            out.append(_instruction(raw_inner, keys, len(out)))
    return out


def _token_accounts(result: Mapping[str, Any], keys: list[str]) -> dict[str, _TokenAccount]:
    """Token account -> (mint, owner, decimals) from post- then pre-token balances."""
    meta = result.get("meta")
    found: dict[str, _TokenAccount] = {}
    if not isinstance(meta, Mapping):
        return found
    for group in ("postTokenBalances", "preTokenBalances"):
        for entry in meta.get(group) or []:
            if not isinstance(entry, Mapping):
                raise _Malformed(f"{group} entry {entry!r:.60}")
            try:
                account = keys[int(entry["accountIndex"])]
            except (KeyError, IndexError, TypeError, ValueError):
                raise _Malformed(f"{group} entry with a bad accountIndex: {entry!r:.100}") from None
            ui = entry.get("uiTokenAmount")
            decimals = ui.get("decimals") if isinstance(ui, Mapping) else None
            owner = entry.get("owner")
            known = found.get(account)
            if known is None or (known.owner is None and isinstance(owner, str)):
                found[account] = _TokenAccount(
                    str(entry.get("mint")),
                    owner if isinstance(owner, str) else None,
                    decimals if isinstance(decimals, int) else None,
                )
    return found


def _u64(data: bytes, offset: int) -> int:
    value: int = struct.unpack_from("<Q", data, offset)[0]
    return value


def _amount(value: object, what: str) -> int:
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    raise _Malformed(f"{what} {value!r:.40} is not an amount")


@dataclass(frozen=True, slots=True)
class _Move:
    """One decoded transfer instruction, before owners are resolved."""

    kind: AssetKind
    source: str
    destination: str
    amount: int
    position: int
    mint: str | None = None
    authority: str | None = None
    decimals: int | None = None


def _key(info: Mapping[str, Any], field: str) -> str:
    value = info.get(field)
    if not _is_address(value):
        raise _Malformed(f"parsed instruction field {field} is {value!r:.60}, not an account")
    return str(value)


def _system_move(ins: _Instruction) -> _Move | None:
    parsed = ins.parsed
    if isinstance(parsed, Mapping):
        kind, info = parsed.get("type"), parsed.get("info")
        if kind in ("transfer", "transferWithSeed") and isinstance(info, Mapping):
            return _Move(
                AssetKind.NATIVE,
                _key(info, "source"),
                _key(info, "destination"),
                _amount(info.get("lamports"), "lamports"),
                ins.position,
            )
        return None
    data = ins.data
    if data is None or len(data) < 12:
        return None
    (tag,) = struct.unpack_from("<I", data, 0)
    if tag == 2 and len(ins.accounts) >= 2:  # Transfer { lamports }
        return _Move(AssetKind.NATIVE, ins.accounts[0], ins.accounts[1], _u64(data, 4), ins.position)
    if tag == 11 and len(ins.accounts) >= 3:  # TransferWithSeed { lamports, seed, owner }: from, base, to
        return _Move(AssetKind.NATIVE, ins.accounts[0], ins.accounts[2], _u64(data, 4), ins.position)
    return None


def _system_funding(ins: _Instruction) -> _Move | None:
    """A system ``createAccount`` / ``createAccountWithSeed``: the lamports that fund a new
    account (its rent). Not a transfer, but a balance change the reconciliation must know."""
    parsed = ins.parsed
    if isinstance(parsed, Mapping):
        kind, info = parsed.get("type"), parsed.get("info")
        if kind in ("createAccount", "createAccountWithSeed") and isinstance(info, Mapping):
            return _Move(
                AssetKind.NATIVE,
                _key(info, "source"),
                _key(info, "newAccount"),
                _amount(info.get("lamports"), "lamports"),
                ins.position,
            )
        return None
    data = ins.data
    if data is None or len(data) < 12 or len(ins.accounts) < 2:
        return None
    (tag,) = struct.unpack_from("<I", data, 0)
    if tag == 0:  # CreateAccount { lamports, space, owner }: funder, new account
        return _Move(AssetKind.NATIVE, ins.accounts[0], ins.accounts[1], _u64(data, 4), ins.position)
    if tag == 3 and len(data) >= 44:  # CreateAccountWithSeed { base, seed: String, lamports, ... }
        seed_length = _u64(data, 36)
        if seed_length > len(data):
            raise _Malformed("createAccountWithSeed with a seed longer than its data")
        return _Move(AssetKind.NATIVE, ins.accounts[0], ins.accounts[1], _u64(data, 44 + seed_length), ins.position)
    return None


def _token_move(ins: _Instruction) -> _Move | None:
    parsed = ins.parsed
    if isinstance(parsed, Mapping):
        kind, info = parsed.get("type"), parsed.get("info")
        if not isinstance(info, Mapping) or kind not in ("transfer", "transferChecked"):
            return None
        authority = _key(info, "multisigAuthority" if "multisigAuthority" in info else "authority")
        if kind == "transfer":
            amount = _amount(info.get("amount"), "token amount")
            mint, decimals = None, None
        else:
            token_amount = info.get("tokenAmount")
            if not isinstance(token_amount, Mapping):
                raise _Malformed("transferChecked without tokenAmount")
            amount = _amount(token_amount.get("amount"), "token amount")
            mint = _key(info, "mint")
            decimals = token_amount.get("decimals") if isinstance(token_amount.get("decimals"), int) else None
        return _Move(
            AssetKind.TOKEN,
            _key(info, "source"),
            _key(info, "destination"),
            amount,
            ins.position,
            mint=mint,
            authority=authority,
            decimals=decimals,
        )
    data, accounts = ins.data, ins.accounts
    if data is None or len(data) < 9:
        return None
    if data[0] == 3 and len(accounts) >= 3:  # Transfer { amount }: source, destination, authority
        return _Move(AssetKind.TOKEN, accounts[0], accounts[1], _u64(data, 1), ins.position, authority=accounts[2])
    if data[0] == 12 and len(data) >= 10 and len(accounts) >= 4:  # TransferChecked: source, mint, dest, authority
        return _Move(
            AssetKind.TOKEN,
            accounts[0],
            accounts[2],
            _u64(data, 1),
            ins.position,
            mint=accounts[1],
            authority=accounts[3],
            decimals=data[9],
        )
    return None


def _memo_text(ins: _Instruction) -> str | None:
    if isinstance(ins.parsed, str):
        return ins.parsed
    if ins.data is not None:
        try:
            return ins.data.decode("utf-8")
        except UnicodeDecodeError:
            return ins.data.hex()
    return None


def from_wire(result: Mapping[str, Any]) -> Mapping[str, Any]:
    """``result`` with a binary ``transaction`` (``[data, "base64"]`` or ``[data, "base58"]``, the
    wire bytes) rewritten in the ``json`` encoding's shape: signatures, the message's static
    account keys, header, instructions (data in Base58) and address-table lookups. The account
    keys that lookup tables supply are not in the wire bytes: they stay in ``meta.loadedAddresses``,
    which :func:`account_keys` appends (writable, then read-only), as Solana defines.

    The bytes must decode completely (``solders``), every signature must verify against its
    signer's key over the message, and the message version must be the ``version`` the result
    states; otherwise the answer is garbage (:class:`_Malformed`). An object ``transaction``
    (``json``/``jsonParsed``) is returned as it is; any other encoding is refused."""
    tx = result.get("transaction")
    if isinstance(tx, Mapping):
        return result
    if not (isinstance(tx, list) and len(tx) == 2 and isinstance(tx[0], str)):
        raise _Malformed(f"transaction is neither an object nor [data, encoding]: {tx!r:.80}")
    data, encoding = tx
    if encoding not in _WIRE_ENCODINGS:
        raise _Malformed(f"transaction in encoding {encoding!r:.40}, which the adapter does not read")
    try:
        raw = base64.b64decode(data, validate=True) if encoding == "base64" else bytes(base58.b58decode(data))
    except (binascii.Error, ValueError):
        raise _Malformed(f"transaction data is not valid {encoding}") from None
    try:
        wire = VersionedTransaction.from_bytes(raw)
    except ValueError as exc:  # solders' decoding errors
        raise _Malformed(f"transaction bytes do not decode: {exc}") from None
    if bytes(wire) != raw:
        raise _Malformed("transaction bytes carry trailing data")
    if not wire.signatures or not all(wire.verify_with_results()):
        raise _Malformed("a signature of the wire transaction does not verify against its signer")
    message = wire.message
    header = message.header
    shaped: dict[str, Any] = {
        "accountKeys": [str(k) for k in message.account_keys],
        "header": {
            "numRequiredSignatures": header.num_required_signatures,
            "numReadonlySignedAccounts": header.num_readonly_signed_accounts,
            "numReadonlyUnsignedAccounts": header.num_readonly_unsigned_accounts,
        },
        "recentBlockhash": str(message.recent_blockhash),
        "instructions": [
            {
                "programIdIndex": ins.program_id_index,
                "accounts": list(ins.accounts),
                "data": base58.b58encode(bytes(ins.data)).decode(),
            }
            for ins in message.instructions
        ],
    }
    version: int | str = "legacy"
    if isinstance(message, MessageV0):
        version = 0
        shaped["addressTableLookups"] = [
            {
                "accountKey": str(lookup.account_key),
                "writableIndexes": list(lookup.writable_indexes),
                "readonlyIndexes": list(lookup.readonly_indexes),
            }
            for lookup in message.address_table_lookups
        ]
    stated = result.get("version", "legacy")
    if isinstance(stated, bool) or stated != version:
        raise _Malformed(f"result says version {stated!r:.20}, the wire message is version {version!r}")
    return {**result, "transaction": {"signatures": [str(s) for s in wire.signatures], "message": shaped}}


def decode_transaction(network: str, signature: str, result: object, head: int | None) -> Observation:
    """The observation of one ``getTransaction`` result (``json``, ``jsonParsed``, or ``base64``/
    ``base58`` wire bytes). ``head`` is the node's current slot (None: unknown).

    A result that is not what the Solana RPC sends raises :class:`_Malformed` (an
    :class:`~chains.transport.UnusableAnswer`: the next URL, then "try later"); one that is well
    formed but says something the adapter cannot read with certainty (see :func:`_doubts`) is
    :data:`~chains.base.TxStatus.UNCLEAR`, with the reasons and ``result`` in ``details``."""
    if not isinstance(result, Mapping):
        raise _Malformed(f"getTransaction result is not an object: {result!r:.80}")
    try:
        return _decode(network, signature, from_wire(result), head, result)
    except _Malformed:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError, struct.error, OverflowError) as exc:
        raise _Malformed(f"{signature}: unreadable getTransaction result ({type(exc).__name__}: {exc})") from None


def _decode(
    network: str, signature: str, result: Mapping[str, Any], head: int | None, raw: Mapping[str, Any]
) -> Observation:
    signatures = (
        result.get("transaction", {}).get("signatures") if isinstance(result.get("transaction"), Mapping) else None
    )
    if not isinstance(signatures, list) or not signatures or signatures[0] != signature:
        raise _Malformed(f"asked for {signature}, got a transaction signed {signatures!r:.120}")
    slot = result.get("slot")
    meta = result.get("meta")
    if isinstance(slot, bool) or not isinstance(slot, int) or slot < 0 or not isinstance(meta, Mapping):
        raise _Malformed(f"{signature}: no slot or no status metadata")
    keys = account_keys(result)
    for key in keys:
        if not _is_address(key):
            raise _Malformed(f"{signature}: account key {key!r:.60} is not an address")
    _check_lookups(result, keys)
    instructions = _instructions(result, keys)
    tokens = _token_accounts(result, keys)
    fee_payer = keys[0]
    fee = meta.get("fee")
    if isinstance(fee, bool) or not isinstance(fee, int) or fee < 0:
        raise _Malformed(f"{signature}: meta.fee {fee!r:.40} is not an amount")
    failed = meta.get("err") is not None
    details: dict[str, Any] = {"fee_payer": fee_payer, "version": result.get("version", "legacy")}
    if isinstance(raw.get("transaction"), list):
        details["encoding"] = raw["transaction"][1]
    lookups = _message(result).get("addressTableLookups") or []
    if lookups:
        details["address_lookup_tables"] = [str(t.get("accountKey")) for t in lookups if isinstance(t, Mapping)]
        loaded = meta.get("loadedAddresses")
        if isinstance(loaded, Mapping):
            details["loaded_addresses"] = {k: list(loaded.get(k) or []) for k in ("writable", "readonly")}
        else:  # jsonParsed lists them among the account keys
            raw_keys = _message(result).get("accountKeys") or []
            details["loaded_addresses"] = [
                k["pubkey"] for k in raw_keys if isinstance(k, Mapping) and k.get("source") == "lookupTable"
            ]
    if failed:
        details["err"] = meta.get("err")
    memos = [m for m in (_memo_text(i) for i in instructions if i.program in MEMO_PROGRAMS) if m is not None]
    if memos:
        details["memos"] = memos
    moves: list[_Move] = []
    fundings: list[_Move] = []
    for ins in instructions:
        move = _system_move(ins) if ins.program == SYSTEM_PROGRAM else None
        if move is None and ins.program == SYSTEM_PROGRAM:
            funding = _system_funding(ins)
            if funding is not None:
                fundings.append(funding)
        if move is None and ins.program in TOKEN_PROGRAMS:
            move = _token_move(ins)
        if move is not None:
            moves.append(move)
    known = set(keys)
    for move in [*moves, *fundings]:
        if move.source not in known or move.destination not in known:
            raise _Malformed(f"{signature}: instruction {move.position} names an account the transaction does not list")
    transfers: list[Transfer] = []
    spl: list[dict[str, Any]] = []
    for move in moves:
        transfers.append(_resolve(move, tokens, spl))
    if spl:
        details["spl"] = spl
    doubts = _doubts(result, meta, keys, failed)
    if not failed:
        doubts.extend(_unexplained(meta, keys, fee_payer, fee, moves, fundings, transfers))
    if failed:
        details["attempted"] = [t.to_json() for t in transfers]
        transfers = []
    block_time = result.get("blockTime")
    observation = Observation(
        network=network,
        tx_hash=signature,
        status=TxStatus.FAILED if failed else TxStatus.SUCCESS,
        block_number=slot,
        block_hash=None,
        confirmations=max(1, head - slot + 1) if head is not None else 1,
        timestamp=datetime.fromtimestamp(block_time, UTC)
        if isinstance(block_time, int) and not isinstance(block_time, bool)
        else None,
        sender=fee_payer,
        transfers=tuple(transfers),
        memo=memos[0] if memos else None,
        fee=fee,
        details=details,
    )
    if doubts and not failed:
        return unclear(observation, doubts, raw)
    return observation


def _is_address(value: object) -> bool:
    return isinstance(value, str) and addresses.is_address("solana", value)


def _check_lookups(result: Mapping[str, Any], keys: list[str]) -> None:
    """The lookup-table keys that ``meta.loadedAddresses`` (or ``jsonParsed``'s account list)
    supplies must be as many as the message's ``addressTableLookups`` ask for."""
    message = _message(result)
    lookups = message.get("addressTableLookups") or []
    if not isinstance(lookups, list):
        raise _Malformed("addressTableLookups is not a list")
    wanted = {"writable": 0, "readonly": 0}
    for lookup in lookups:
        if not isinstance(lookup, Mapping):
            raise _Malformed(f"address table lookup {lookup!r:.60}")
        for group, field in (("writable", "writableIndexes"), ("readonly", "readonlyIndexes")):
            indexes = lookup.get(field)
            if not isinstance(indexes, list):
                raise _Malformed(f"address table lookup without {field}")
            wanted[group] += len(indexes)
    raw_keys = message.get("accountKeys") or []
    if raw_keys and isinstance(raw_keys[0], Mapping):  # jsonParsed: the loaded keys are in the list
        loaded = sum(1 for k in raw_keys if isinstance(k, Mapping) and k.get("source") == "lookupTable")
        if loaded != wanted["writable"] + wanted["readonly"]:
            raise _Malformed(f"{loaded} lookup-table account keys listed, the lookups ask for {wanted}")
        return
    meta = result.get("meta")
    given = meta.get("loadedAddresses") if isinstance(meta, Mapping) else None
    counts = {
        group: len(given.get(group) or []) if isinstance(given, Mapping) else 0 for group in ("writable", "readonly")
    }
    if counts != wanted:
        raise _Malformed(f"meta.loadedAddresses holds {counts} keys, the address table lookups ask for {wanted}")


def _doubts(result: Mapping[str, Any], meta: Mapping[str, Any], keys: list[str], failed: bool) -> list[str]:
    """Reasons the status cannot be read with certainty (documented fields only: ``meta.err`` is
    null on success and the error otherwise; the deprecated ``meta.status`` is ``{"Ok": null}``
    or ``{"Err": ...}``; ``version`` is ``"legacy"`` or 0)."""
    reasons: list[str] = []
    if "err" not in meta:
        reasons.append("meta.err is missing: the answer does not say whether the transaction succeeded.")
    status = meta.get("status")
    if not failed and status is not None and not (isinstance(status, Mapping) and dict(status) == {"Ok": None}):
        reasons.append(f"meta.status is {status!r:.80} while meta.err is null: the answer contradicts itself.")
    version = result.get("version", "legacy")
    if version != "legacy" and (isinstance(version, bool) or version != 0):
        reasons.append(f"version is {version!r:.40}: a transaction version the adapter does not read.")
    for group in ("preBalances", "postBalances"):
        values = meta.get(group)
        if not isinstance(values, list) or len(values) != len(keys):
            raise _Malformed(f"meta.{group} does not list one balance per account key")
        for value in values:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise _Malformed(f"meta.{group} holds {value!r:.40}, not a balance in lamports")
    return reasons


def _token_balances(meta: Mapping[str, Any], keys: list[str], group: str) -> dict[str, tuple[str, str | None, int]]:
    """Token account -> (mint, owner, amount in base units) from ``meta.<group>``."""
    out: dict[str, tuple[str, str | None, int]] = {}
    for entry in meta.get(group) or []:
        if not isinstance(entry, Mapping):
            raise _Malformed(f"{group} entry {entry!r:.60}")
        index = entry.get("accountIndex")
        if isinstance(index, bool) or not isinstance(index, int) or not 0 <= index < len(keys):
            raise _Malformed(f"{group} entry with a bad accountIndex: {entry!r:.100}")
        mint, owner = entry.get("mint"), entry.get("owner")
        ui = entry.get("uiTokenAmount")
        amount = ui.get("amount") if isinstance(ui, Mapping) else None
        if not _is_address(mint) or (owner is not None and not _is_address(owner)):
            raise _Malformed(f"{group} entry with a bad mint or owner: {entry!r:.100}")
        if not isinstance(amount, str) or not amount.isdigit():
            raise _Malformed(f"{group} entry with a bad uiTokenAmount.amount: {amount!r:.40}")
        if keys[index] in out:
            raise _Malformed(f"{group} lists {keys[index]} twice")
        out[keys[index]] = (str(mint), owner, int(amount))
    return out


def _unexplained(
    meta: Mapping[str, Any],
    keys: list[str],
    fee_payer: str,
    fee: int,
    moves: Sequence[_Move],
    fundings: Sequence[_Move],
    transfers: Sequence[Transfer],
) -> list[str]:
    """Balance changes (``meta.pre/postBalances``, ``meta.pre/postTokenBalances``) that the
    instructions read do not account for. A balance that rose by more than they explain was paid
    by something the adapter does not read (a program moving lamports itself, a mint, a close,
    a transfer with a fee, an instruction it cannot decode); a transfer recipient whose balance
    rose by less than they say did not keep what the transfer says. Either way nobody can say
    from this answer what reached whom: the transaction is unclear."""
    reasons: list[str] = []
    expected: dict[str, int] = {fee_payer: -fee}
    native = [m for m in moves if m.kind is AssetKind.NATIVE]
    for move in [*native, *fundings]:
        expected[move.source] = expected.get(move.source, 0) - move.amount
        expected[move.destination] = expected.get(move.destination, 0) + move.amount
    paid = {m.destination for m in native}
    actual: dict[str, int] = {}
    for key, before, after in zip(keys, meta["preBalances"], meta["postBalances"], strict=True):
        actual[key] = actual.get(key, 0) + after - before
    for key in sorted(set(actual) | set(expected)):
        got, said = actual.get(key, 0), expected.get(key, 0)
        if got > said or (got < said and key in paid):
            reasons.append(
                f"The SOL balance of {key} changed by {got} lamports (meta.preBalances/postBalances), "
                f"but the instructions the adapter reads account for {said}."
            )
    pre = _token_balances(meta, keys, "preTokenBalances")
    post = _token_balances(meta, keys, "postTokenBalances")
    for group in ("preTokenBalances", "postTokenBalances"):
        for entry in meta.get(group) or []:
            if "programId" in entry and entry.get("owner") is None:
                # answers since the token balances name their program name the owner too (old
                # answers name neither): without it the recipient cannot be told
                reasons.append(f"A {group} entry (accountIndex {entry.get('accountIndex')}) names no owner.")
    mints: dict[str, str] = {}
    for account in sorted(set(pre) | set(post)):
        before_entry, after_entry = pre.get(account), post.get(account)
        if before_entry and after_entry and before_entry[:2] != after_entry[:2]:
            reasons.append(
                f"Token account {account} has mint/owner {before_entry[:2]} before and {after_entry[:2]} after "
                "(meta.preTokenBalances/postTokenBalances): the owner changed or the answer contradicts itself."
            )
        mints[account] = (after_entry or before_entry or ("", None, 0))[0]
    token_expected: dict[str, int] = {}
    token_paid: set[str] = set()
    token_moves = [m for m in moves if m.kind is AssetKind.TOKEN]
    token_transfers = [t for t in transfers if t.kind is AssetKind.TOKEN]
    for move, transfer in zip(token_moves, token_transfers, strict=True):
        for account in (move.source, move.destination):
            if mints.get(account, transfer.contract) != transfer.contract:
                reasons.append(
                    f"Instruction {move.position} moves mint {transfer.contract}, but token account {account} "
                    f"holds mint {mints[account]} (meta token balances)."
                )
        token_expected[move.source] = token_expected.get(move.source, 0) - move.amount
        token_expected[move.destination] = token_expected.get(move.destination, 0) + move.amount
        token_paid.add(move.destination)
    for account in sorted(set(pre) | set(post) | set(token_expected)):
        got = (post[account][2] if account in post else 0) - (pre[account][2] if account in pre else 0)
        said = token_expected.get(account, 0)
        if got > said or (got < said and account in token_paid):
            reasons.append(
                f"The token balance of {account} changed by {got} base units (meta.preTokenBalances/"
                f"postTokenBalances), but the instructions the adapter reads account for {said}."
            )
    return reasons


def _resolve(move: _Move, tokens: Mapping[str, _TokenAccount], spl: list[dict[str, Any]]) -> Transfer:
    if move.kind is AssetKind.NATIVE:
        return Transfer(AssetKind.NATIVE, move.source, move.destination, move.amount, index=move.position)
    source_info, dest_info = tokens.get(move.source), tokens.get(move.destination)
    mint = move.mint or (dest_info.mint if dest_info else None) or (source_info.mint if source_info else None)
    if mint is None:
        raise _Malformed(f"token transfer to {move.destination} whose mint no balance names")
    decimals = move.decimals
    known = dest_info or source_info
    if decimals is None and known is not None:
        decimals = known.decimals
    owner = dest_info.owner if dest_info else None
    sender = (source_info.owner if source_info else None) or move.authority or move.source
    spl.append(
        {
            "index": move.position,
            "source_token_account": move.source,
            "destination_token_account": move.destination,
            "owner_resolved": owner is not None,
        }
    )
    return Transfer(
        AssetKind.TOKEN,
        sender,
        owner or move.destination,
        move.amount,
        index=move.position,
        contract=mint,
        decimals=decimals,
    )


# --------------------------------------------------------------------------------------------------
# the adapter


def _choice(extra: Mapping[str, Any], key: str, choices: tuple[str, ...], network: str) -> str:
    value = extra.get(key, choices[0])
    if value not in choices:
        raise ValueError(f"network {network}: {key} must be one of {', '.join(choices)}")
    return str(value)


class SolanaAdapter:
    """Chain adapter for one Solana cluster. Thread-safe.

    Optional network keys (TOML extras): ``encoding`` (``jsonParsed``, ``json`` or ``base64``), ``commitment``
    (``confirmed`` or ``finalized``), ``lookup_batch_size`` (signatures per batch, default 100),
    ``signatures_limit`` (entries per ``getSignaturesForAddress`` page, at most 1000, default
    1000), ``max_pages`` (pages per address in one :meth:`incoming`, default 20), plus the
    transport's timeouts and retry keys.
    """

    family: Final = "solana"

    def __init__(self, network: Network, *, transport: Transport | None = None) -> None:
        if network.family != "solana":
            raise ValueError(f"network {network.name} is a {network.family} network, not solana")
        self.network = network
        self.features: frozenset[str] = frozenset()
        self.transport = transport or Transport.for_network(network)
        extra = network.model_extra or {}
        self.encoding = _choice(extra, "encoding", _ENCODINGS, network.name)
        self.commitment = _choice(extra, "commitment", _COMMITMENTS, network.name)
        self.batch_size = positive_option(extra, "lookup_batch_size", 100, network.name)
        self.signatures_limit = min(1000, positive_option(extra, "signatures_limit", 1000, network.name))
        self.max_pages = positive_option(extra, "max_pages", 20, network.name)

    def __repr__(self) -> str:
        return f"SolanaAdapter({self.network.name!r})"

    # ----------------------------------------------------------------- validation

    def normalize_address(self, address: str) -> str:
        return addresses.normalize_address("solana", address)

    def is_address(self, address: str) -> bool:
        return addresses.is_address("solana", address)

    def is_tx_hash(self, tx_hash: str) -> bool:
        return addresses.is_tx_hash("solana", tx_hash)

    def normalize_tx_hash(self, tx_hash: str) -> str:
        return addresses.normalize_tx_hash("solana", tx_hash)

    # ----------------------------------------------------------------- lookups

    def _tx_config(self) -> dict[str, Any]:
        return {"encoding": self.encoding, "maxSupportedTransactionVersion": 0, "commitment": self.commitment}

    def lookup(self, tx_hash: str) -> Observation:
        return self.lookup_many([tx_hash])[tx_hash]

    def lookup_many(self, tx_hashes: Sequence[str]) -> dict[str, Observation]:
        """Observations keyed by the strings passed in. Every signature is validated before any
        request (:class:`InvalidChainInput`); a ``null`` result is ``not_found`` for that
        signature; any unusable answer raises :class:`ChainUnavailable` for the whole call."""
        if isinstance(tx_hashes, str):
            raise TypeError("lookup_many takes a sequence of signatures, not one string")
        normalized = {h: self.normalize_tx_hash(h) for h in tx_hashes}
        unique = list(dict.fromkeys(normalized.values()))
        observations: dict[str, Observation] = {}
        for start in range(0, len(unique), self.batch_size):
            observations.update(self._lookup_batch(unique[start : start + self.batch_size]))
        return {given: observations[norm] for given, norm in normalized.items()}

    def _lookup_batch(self, signatures: list[str]) -> dict[str, Observation]:
        calls: list[RpcCall] = [("getTransaction", [s, self._tx_config()]) for s in signatures]
        calls.append(("getSlot", [{"commitment": self.commitment}]))
        box: list[dict[str, Observation]] = []

        def parse(replies: list[Any]) -> dict[str, Observation]:
            head_reply = replies[-1]
            if isinstance(head_reply, JsonRpcError | bool) or not isinstance(head_reply, int):
                raise _Malformed(f"getSlot answered {head_reply!r:.80}")
            out: dict[str, Observation] = {}
            slots = [r.get("slot") for r in replies[:-1] if isinstance(r, Mapping)]
            highest = max((x for x in slots if isinstance(x, int)), default=0)
            if head_reply < highest:
                raise _Malformed(f"node is behind: slot {head_reply} < transaction slot {highest}")
            for signature, reply in zip(signatures, replies, strict=False):
                if isinstance(reply, JsonRpcError):
                    raise _Malformed(f"getTransaction {signature}: {reply.message}")
                if reply is None:
                    out[signature] = not_found(self.network.name, signature)
                else:
                    out[signature] = decode_transaction(self.network.name, signature, reply, head_reply)
            return out

        def validate(replies: list[Any]) -> None:
            box.clear()
            if len(replies) == len(calls):
                box.append(parse(replies))

        try:
            replies = self.transport.batch(calls, validate=validate)
            if not box:  # the batch had to be split: check the parts together
                box.append(parse(replies))
        except UnusableAnswer as exc:
            raise ChainUnavailable(self.network.name, f"malformed answer: {exc}") from exc
        return box[0]

    def head(self, at_least: int = 0) -> int:
        """The node's current slot (``getSlot`` at the configured commitment). A node below
        ``at_least`` is behind: the next URL is tried."""

        def check(slot: Any) -> None:
            if isinstance(slot, bool) or not isinstance(slot, int):
                raise _Malformed(f"getSlot answered {slot!r:.80}")
            if slot < at_least:
                raise _Malformed(f"node is behind: slot {slot} < {at_least}")

        slot: int = self.transport.call("getSlot", [{"commitment": self.commitment}], validate=check)
        return slot

    # ----------------------------------------------------------------- incoming

    def _call(self, method: str, params: list[Any]) -> Any:
        try:
            return self.transport.call(method, params)
        except JsonRpcError as error:
            raise ChainUnavailable(self.network.name, f"{method}: {error.message}") from error

    def token_accounts(self, owner: str) -> list[str]:
        """The token accounts (Token and Token-2022) that ``owner`` holds now."""
        found: list[str] = []
        for program in sorted(TOKEN_PROGRAMS):
            answer = self._call("getTokenAccountsByOwner", [owner, {"programId": program}, {"encoding": "jsonParsed"}])
            value = answer.get("value") if isinstance(answer, Mapping) else None
            if not isinstance(value, list):
                raise ChainUnavailable(self.network.name, f"getTokenAccountsByOwner answered {answer!r:.80}")
            for item in value:
                pubkey = item.get("pubkey") if isinstance(item, Mapping) else None
                if not isinstance(pubkey, str) or not addresses.is_address("solana", pubkey):
                    raise ChainUnavailable(self.network.name, f"getTokenAccountsByOwner entry {item!r:.80}")
                found.append(pubkey)
        return found

    def signatures(self, address: str, since: int, until: int | None) -> dict[str, int]:
        """Signatures (-> slot) of successful transactions that name ``address``, in slots
        ``since..until``, from ``getSignaturesForAddress`` pages (newest first)."""
        found: dict[str, int] = {}
        before: str | None = None
        for _page in range(self.max_pages):
            options: dict[str, Any] = {"limit": self.signatures_limit, "commitment": self.commitment}
            if before is not None:
                options["before"] = before
            page = self._call("getSignaturesForAddress", [address, options])
            if not isinstance(page, list):
                raise ChainUnavailable(self.network.name, f"getSignaturesForAddress answered {page!r:.80}")
            oldest: int | None = None
            for entry in page:
                signature = entry.get("signature") if isinstance(entry, Mapping) else None
                slot = entry.get("slot") if isinstance(entry, Mapping) else None
                if not isinstance(signature, str) or isinstance(slot, bool) or not isinstance(slot, int):
                    raise ChainUnavailable(self.network.name, f"getSignaturesForAddress entry {entry!r:.80}")
                oldest = slot
                if slot >= since and (until is None or slot <= until) and entry.get("err") is None:
                    found.setdefault(signature, slot)
            if len(page) < self.signatures_limit or oldest is None or oldest < since:
                return found
            before = page[-1]["signature"]
        raise ChainUnavailable(
            self.network.name, f"{address} has more than {self.max_pages} pages of signatures; narrow the range"
        )

    def incoming(self, address: str, since: int, until: int | None = None) -> list[Observation]:
        """Successful transactions that delivered SOL or SPL tokens to ``address`` (an owner
        wallet, or a token account) in slots ``since..until`` (inclusive), oldest first. The
        owner's own signatures and those of each of its token accounts are read. A listed
        transaction the adapter cannot read with certainty (``unclear``) is returned too, for a
        person to decide; failed ones (``err`` in the signature list) are not."""
        target = self.normalize_address(address)
        if isinstance(since, bool) or not isinstance(since, int) or since < 0:
            raise InvalidChainInput("since", "must be a slot (an integer >= 0)")
        if until is not None and (isinstance(until, bool) or not isinstance(until, int) or until < since):
            raise InvalidChainInput("until", f"must be a slot >= since ({since})")
        watched = [target, *self.token_accounts(target)]
        slots: dict[str, int] = {}
        for account in watched:
            slots.update(self.signatures(account, since, until))
        if not slots:
            return []
        observed = self.lookup_many(list(slots))
        out: list[Observation] = []
        for obs in observed.values():
            if not obs.found:
                raise ChainUnavailable(
                    self.network.name, f"{obs.tx_hash} is listed for {target} but getTransaction finds nothing"
                )
            destinations = {s["destination_token_account"] for s in obs.details.get("spl", [])}
            if obs.status is TxStatus.SUCCESS and (
                any(t.recipient == target for t in obs.transfers) or target in destinations
            ):
                out.append(obs)
            elif obs.status is TxStatus.UNCLEAR:
                # listed for the address or one of its token accounts, and unreadable: a person
                # decides whether something reached it
                out.append(obs)
        return sorted(out, key=lambda o: (o.block_number or 0, o.tx_hash))
