"""Replays the recorded Solana JSON-RPC answers in ``<fixtures>/solana/`` (mounted as ``/solana``).

JSON-RPC 2.0 POSTs to ``/``, single calls or batches; every reply carries the request's ``id``
(the recordings' own ``"id": 1`` is replaced, nothing else). Recordings are indexed by the first
signature of the transaction they show:

- ``getTransaction``: the recorded ``result`` object, as recorded. It is served in the encoding it
  was recorded in (``json`` or ``jsonParsed``) whatever the request asks, because each signature
  was recorded once; adapters must read both shapes. A version-0 transaction asked for without
  ``maxSupportedTransactionVersion`` gets the node's real error -32015 (a node refuses it).
  A recording that is only a ``result`` object is served inside the envelope like the others, and
  one recorded in ``base64`` encoding (the transaction as ``[wire bytes, "base64"]``) is indexed by
  the first signature of its wire bytes. An unknown signature gets ``"result": null``,
  the node's "not found".
- ``getSlot``: **not a recording.** The highest ``slot`` of a recorded transaction (355393521 with
  the shipped recordings: the USDC transfer ``4dHnggcX…``), so that transaction has exactly one
  confirmation. The devnet example's slot is lower and counts as older.
- ``getSignaturesForAddress``: **assembled** from the recorded transactions that name the address
  among their account keys (static keys and ``meta.loadedAddresses`` / lookup-table keys):
  ``signature``, ``slot``, ``err``, ``blockTime`` and ``memo`` (null: no recorded transaction
  carries a memo instruction) as the recordings show them, ``confirmationStatus`` "finalized";
  newest first, with ``limit``, ``before`` and ``until``.
- ``getTokenAccountsByOwner``: **assembled** from the recorded token balances that name an
  ``owner`` and a ``programId`` (the 2021 recording names neither, so its token accounts are not
  listed): ``pubkey`` and the parsed ``mint``/``owner`` only; lamports, rent and amounts of today
  were not recorded and are left out. The filter may be ``programId`` or ``mint``.
- Any other method gets -32601 "Method not found" (``getBlockHeight`` included: no block height
  was recorded).

Recordings are recognised by their content; a file of any other shape is set aside with a note in
``skipped``; it never stops the server.
"""

from __future__ import annotations

import base64
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

import base58

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "SolanaReplay", "build_handler"]

FOLDER: Final = "solana"
_VERSION_ERROR: Final = (
    "Transaction version (0) is not supported by the requesting client. Please try the request again with the "
    'following configuration parameter: "maxSupportedTransactionVersion": 0'
)


def _compact_u16(data: bytes, at: int) -> tuple[int, int]:
    """Solana's short-vec length at ``at``: (value, position after it)."""
    value = shift = 0
    for _ in range(3):
        byte = data[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7
    raise ValueError("short-vec length longer than 3 bytes")


def _wire(transaction: Any) -> tuple[list[str], list[str]] | None:
    """(signatures, static account keys) of a transaction recorded as ``[base64, "base64"]``."""
    if not (isinstance(transaction, list) and len(transaction) == 2 and transaction[1] == "base64"):
        return None
    raw = base64.b64decode(transaction[0], validate=True)
    count, at = _compact_u16(raw, 0)
    signatures = [base58.b58encode(raw[at + 64 * i : at + 64 * (i + 1)]).decode() for i in range(count)]
    at += 64 * count
    if raw[at] & 0x80:  # versioned message: a version prefix byte
        at += 1
    at += 3  # the header
    key_count, at = _compact_u16(raw, at)
    keys = [base58.b58encode(raw[at + 32 * i : at + 32 * (i + 1)]).decode() for i in range(key_count)]
    if len(raw) < at + 32 * key_count or len(signatures[0]) < 64 or not keys:
        raise ValueError("truncated wire transaction")
    return signatures, keys


def _signature(result: Mapping[str, Any]) -> str:
    wire = _wire(result["transaction"])
    return wire[0][0] if wire is not None else str(result["transaction"]["signatures"][0])


def _keys(result: Mapping[str, Any]) -> list[str]:
    wire = _wire(result["transaction"])
    if wire is not None:
        keys = wire[1]
    else:
        message = result["transaction"]["message"]
        keys = [k["pubkey"] if isinstance(k, Mapping) else k for k in message["accountKeys"]]
    loaded = result.get("meta", {}).get("loadedAddresses") or {}
    return [*keys, *loaded.get("writable", []), *loaded.get("readonly", [])]


class SolanaReplay:
    def __init__(self, recordings: list[Recording], *, skipped: list[SkippedRecording] | None = None) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        #: signature -> recorded getTransaction result
        self.transactions: dict[str, Mapping[str, Any]] = {}
        for rec in recordings:
            data = rec.data
            result = data.get("result") if isinstance(data, Mapping) and "jsonrpc" in data else data
            try:
                if not isinstance(result, Mapping) or "transaction" not in result or "slot" not in result:
                    raise ValueError("not a getTransaction result")
                int(result["slot"])
                _keys(result)
                self.transactions[_signature(result)] = result
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a getTransaction answer", exc)
        slots = [(int(r["slot"]), s) for s, r in self.transactions.items()]
        #: (slot, signature that shows it) reported by ``getSlot``
        self.head: tuple[int, str] | None = max(slots) if slots else None
        #: token account -> (owner, mint, program id), from the recorded token balances
        self.token_accounts: dict[str, tuple[str, str, str]] = {}
        for result in self.transactions.values():
            keys = _keys(result)
            meta = result.get("meta") or {}
            for entry in [*(meta.get("preTokenBalances") or []), *(meta.get("postTokenBalances") or [])]:
                if entry.get("owner") and entry.get("programId"):
                    account = keys[int(entry["accountIndex"])]
                    self.token_accounts[account] = (entry["owner"], entry["mint"], entry["programId"])

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Reply:
        if request.method != "POST":
            return Reply.json({"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": None})
        try:
            body = request.json()
        except ValueError:
            return Reply.json({"jsonrpc": "2.0", "error": {"code": -32700, "message": "Parse error"}, "id": None})
        if isinstance(body, list):
            return Reply.json([self._one(call) for call in body])
        return Reply.json(self._one(body))

    def _one(self, call: object) -> dict[str, Any]:
        if not isinstance(call, Mapping) or not isinstance(call.get("method"), str):
            return {"jsonrpc": "2.0", "error": {"code": -32600, "message": "Invalid request"}, "id": None}
        ident = call.get("id")
        params = call.get("params") or []
        if not isinstance(params, list):
            return _error(ident, -32602, "Invalid params")
        method = call["method"]
        if method == "getTransaction":
            return self._get_transaction(ident, params)
        if method == "getSlot":
            if self.head is None:
                return _error(ident, -32603, "no slot recorded")
            return {"jsonrpc": "2.0", "result": self.head[0], "id": ident}
        if method == "getSignaturesForAddress":
            return self._signatures(ident, params)
        if method == "getTokenAccountsByOwner":
            return self._token_accounts(ident, params)
        return _error(ident, -32601, "Method not found")

    def _get_transaction(self, ident: Any, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], str):
            return _error(ident, -32602, "Invalid params: expected a signature")
        result = self.transactions.get(params[0])
        config = params[1] if len(params) > 1 and isinstance(params[1], Mapping) else {}
        if (
            result is not None
            and isinstance(result.get("version"), int)
            and "maxSupportedTransactionVersion" not in config
        ):
            return _error(ident, -32015, _VERSION_ERROR)
        return {"jsonrpc": "2.0", "result": result, "id": ident}

    def _signatures(self, ident: Any, params: list[Any]) -> dict[str, Any]:
        if not params or not isinstance(params[0], str):
            return _error(ident, -32602, "Invalid params: expected an address")
        address = params[0]
        options = params[1] if len(params) > 1 and isinstance(params[1], Mapping) else {}
        entries = sorted(
            (
                {
                    "signature": signature,
                    "slot": int(result["slot"]),
                    "err": (result.get("meta") or {}).get("err"),
                    "memo": None,
                    "blockTime": result.get("blockTime"),
                    "confirmationStatus": "finalized",
                }
                for signature, result in self.transactions.items()
                if address in _keys(result)
            ),
            key=lambda e: (e["slot"], e["signature"]),
            reverse=True,
        )
        before, until = options.get("before"), options.get("until")
        if before is not None:
            names = [e["signature"] for e in entries]
            entries = entries[names.index(before) + 1 :] if before in names else []
        if until is not None:
            names = [e["signature"] for e in entries]
            entries = entries[: names.index(until)] if until in names else entries
        limit = max(1, min(int(options.get("limit", 1000)), 1000))
        return {"jsonrpc": "2.0", "result": entries[:limit], "id": ident}

    def _token_accounts(self, ident: Any, params: list[Any]) -> dict[str, Any]:
        if len(params) < 2 or not isinstance(params[0], str) or not isinstance(params[1], Mapping):
            return _error(ident, -32602, "Invalid params: expected an owner and a filter")
        owner, wanted = params[0], params[1]
        value = [
            {
                "pubkey": account,
                "account": {
                    "owner": program,
                    "data": {
                        "program": "spl-token",
                        "parsed": {"type": "account", "info": {"mint": mint, "owner": who}},
                    },
                },
            }
            for account, (who, mint, program) in sorted(self.token_accounts.items())
            if who == owner and wanted.get("programId", program) == program and wanted.get("mint", mint) == mint
        ]
        head = self.head[0] if self.head else 0
        return {"jsonrpc": "2.0", "result": {"context": {"slot": head}, "value": value}, "id": ident}


def _error(ident: Any, code: int, message: str) -> dict[str, Any]:
    return {"jsonrpc": "2.0", "error": {"code": code, "message": message}, "id": ident}


def build_handler(fixtures_dir: Path) -> SolanaReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return SolanaReplay(recordings, skipped=skipped)
