"""Replays the recorded rippled / Clio JSON-RPC answers in ``<fixtures>/xrp/`` (mounted as ``/xrpl``).

rippled's JSON-RPC is a POST of ``{"method": M, "params": [{...}]}`` to the server's root, answered
with ``{"result": {...}}``; errors are inside ``result`` (``"status": "error"``). Recordings are
recognised by their content, not their file names, and indexed by the transaction hash they show:

- ``tx``: a recorded ``tx`` answer is served **byte for byte** (whatever API version it was
  recorded in: ``tx_payment_xrp_no_tag_apiv1.json`` is v1, ``tx_payment_iou_paths_no_tag_apiv2.json``
  is v2). ``tx_result_partial_payment_iou.json`` is only a ``result`` object: it is served inside
  ``{"result": {..., "status": "success"}}`` and nothing else is added, so it has no ``validated``
  flag and no ledger index (the recording does not say them). A hash that only appears inside
  another recording (a ``transaction_entry``, ``account_tx`` or ``ledger`` answer) is answered in
  the API v2 layout **assembled from that recording's own parts**: ``tx_json`` (the recorded
  transaction fields), ``meta`` (the recorded ``meta``/``metadata``/``metaData``), ``hash``,
  ``ledger_index``, ``ledger_hash``, ``close_time_iso`` and ``validated`` where the recording has
  them. No value is invented. Any other hash gets rippled's real ``txnNotFound`` error object.
- ``transaction_entry`` and ``ledger``: the recorded answers, byte for byte, for the hash / ledger
  index they answer (``transactionNotFound`` / ``lgrNotFound`` otherwise).
- ``account_tx``: **assembled**, not replayed: the page lists every recorded transaction (from
  all the recordings above) whose transaction or metadata names the account, in the asked ledger
  range and order, ``limit`` at a time, with a rippled-style ``marker`` ``{"ledger", "seq"}``.
  Every recorded ``account_tx`` body contributes its entries, API v1 (``tx`` + ``meta``, e.g. the
  49-entry page for rnZmVGX6…) or v2 (``tx_json`` + ``hash``) alike (their own markers point at
  pages nobody recorded, so their envelopes are not replayed). An account no recording names
  gets ``actNotFound``, as rippled answers for an account that does not exist.
- ``server_info``: by default **not a recording.** Only ``info.validated_ledger.seq`` is given: the
  highest ledger index that a recording shows as validated (99743688 with the shipped recordings:
  the ledger of ``tx`` 474F58E6…, recorded with ``validated: true``), so that transaction has
  exactly one confirmation and every other one more. Built with ``recorded_head=True``, the
  recorded ``server_info`` answer is served byte for byte instead (validated ledger 82521761 in
  ``rippled_server_info_mainnet_docs.json``): it is older than most recorded transactions, so
  such a replay describes a node that is behind (the adapters' "try later" path).

Two recordings (xrpl.js fixtures: the ``transaction_entry`` of 3F437BAA… and the ``tx`` of
F4AB442A…) carry fields that do not hash to their hash; they are served as recorded, and the
adapter reports them as unclear.
- Any other method gets ``unknownCmd``.

A file of any other shape (or one that names no transaction hash) is set aside with a note in
``skipped``; it never stops the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "XrplReplay", "build_handler"]

FOLDER: Final = "xrp"


def _error(error: str, code: int, message: str, request: Mapping[str, Any] | None = None) -> Reply:
    result: dict[str, Any] = {"error": error, "error_code": code, "error_message": message, "status": "error"}
    if request is not None:
        result["request"] = dict(request)
    return Reply.json({"result": result})


def _entry(tx: Mapping[str, Any], meta: Any, extra: Mapping[str, Any]) -> dict[str, Any]:
    """An API v2 entry from recorded parts: the transaction fields (without ``hash``), the meta,
    and the recorded envelope fields that exist."""
    tx_json = {k: v for k, v in tx.items() if k not in ("hash", "meta", "metaData", "metadata")}
    entry: dict[str, Any] = {"tx_json": tx_json, "meta": meta, "hash": str(extra.get("hash") or tx["hash"]).upper()}
    ledger_index = extra.get("ledger_index", tx.get("ledger_index", tx.get("inLedger")))
    if ledger_index is not None:
        entry["ledger_index"] = int(ledger_index)
    for key in ("ledger_hash", "close_time_iso"):
        if extra.get(key) is not None:
            entry[key] = extra[key]
    entry["validated"] = extra.get("validated") is True
    return entry


class XrplReplay:
    def __init__(
        self,
        recordings: list[Recording],
        *,
        recorded_head: bool = False,
        skipped: list[SkippedRecording] | None = None,
    ) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        #: the recorded ``server_info`` answer, if any
        self.server_info: Recording | None = None
        self.recorded_head = recorded_head
        #: hash -> the bytes to answer ``tx`` with (recorded ``tx`` answers)
        self.tx_answers: dict[str, bytes] = {}
        #: hash -> API v2 entry (every transaction any recording shows)
        self.entries: dict[str, dict[str, Any]] = {}
        #: hash -> recorded ``transaction_entry`` answer
        self.tx_entries: dict[str, bytes] = {}
        #: ledger index -> recorded ``ledger`` answer
        self.ledgers: dict[int, bytes] = {}
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a rippled answer", exc)
        validated = [(e["ledger_index"], h) for h, e in self.entries.items() if e["validated"] and "ledger_index" in e]
        #: (ledger index, hash of the transaction that shows it) reported by ``server_info``
        self.head: tuple[int, str] | None = max(validated) if validated else None

    def _index(self, rec: Recording) -> None:
        data = rec.data
        result = data.get("result") if isinstance(data, Mapping) else None
        if result is None and isinstance(data, Mapping) and "tx_json" in data and "meta" in data:
            # a bare ``tx`` result object: wrap it as rippled would, adding only "status"
            tx_hash = str(data["tx_json"]["hash"]).upper()
            self.tx_answers[tx_hash] = json.dumps({"result": {**data, "status": "success"}}).encode()
            self.entries.setdefault(tx_hash, _entry(data["tx_json"], data["meta"], data))
            return
        if not isinstance(result, Mapping):
            raise ValueError("no result object")
        if result.get("status") == "error" or "error" in result:
            raise ValueError(f"a recorded error answer ({result.get('error')})")
        if isinstance(result.get("info"), Mapping):  # server_info
            self.server_info = rec
            return
        if "transactions" in result and "account" in result:  # account_tx
            found = {}
            for item in result["transactions"]:
                tx = item.get("tx_json") or item.get("tx")
                found[str(item.get("hash") or tx["hash"]).upper()] = _entry(tx, item["meta"], item)
            for tx_hash, entry in found.items():  # all or nothing: a bad item sets the whole file aside
                self.entries.setdefault(tx_hash, entry)
        elif "ledger" in result:  # ledger, expanded
            ledger = result["ledger"]
            index = int(result.get("ledger_index", ledger.get("ledger_index")))
            extra = {
                "ledger_index": index,
                "ledger_hash": result.get("ledger_hash", ledger.get("ledger_hash")),
                "close_time_iso": ledger.get("close_time_iso"),
                "validated": result.get("validated"),
            }
            in_ledger = {
                str(tx["hash"]).upper(): _entry(tx, tx["metaData"], extra)
                for tx in ledger.get("transactions", [])
                if isinstance(tx, Mapping)
            }
            self.ledgers[index] = rec.raw
            for tx_hash, entry in in_ledger.items():
                self.entries.setdefault(tx_hash, entry)
        elif "metadata" in result:  # transaction_entry
            tx_hash = str(result["tx_json"]["hash"]).upper()
            self.tx_entries[tx_hash] = rec.raw
            self.entries.setdefault(tx_hash, _entry(result["tx_json"], result["metadata"], result))
        elif "meta" in result:  # tx (v1: fields at the top of result; v2: tx_json + meta)
            tx = result.get("tx_json", result)
            tx_hash = str(result.get("hash") or tx["hash"]).upper()
            entry = _entry(tx, result["meta"], result)
            self.tx_answers[tx_hash] = rec.raw
            self.entries.setdefault(tx_hash, entry)
        else:
            raise ValueError(f"no known rippled answer has these fields: {sorted(result)[:8]}")

    # ------------------------------------------------------------------ dispatch

    def handle(self, request: Request) -> Reply:
        if request.method != "POST" or request.path.rstrip("/") != "":
            return Reply.json({"error": f"rippled answers POSTs at /, not {request.method} {request.path}"}, 404)
        try:
            body = request.json()
        except ValueError:
            return Reply.json({"result": {"error": "invalidParams", "error_code": 31, "status": "error"}}, 400)
        if not isinstance(body, Mapping) or not isinstance(body.get("method"), str):
            return _error("missingCommand", 1, "Missing command entry.")
        raw_params = body.get("params") or [{}]
        params = raw_params[0] if isinstance(raw_params, list) and raw_params else {}
        if not isinstance(params, Mapping):
            return _error("invalidParams", 31, "Invalid parameters.")
        method = body["method"]
        if method == "tx":
            return self._tx(params)
        if method == "server_info":
            if self.recorded_head and self.server_info is not None:
                return Reply.json(self.server_info.raw)
            if self.head is None:
                return _error("noNetwork", 17, "Not synced to the network.")
            return Reply.json({"result": {"info": {"validated_ledger": {"seq": self.head[0]}}, "status": "success"}})
        if method == "account_tx":
            return self._account_tx(params)
        if method == "transaction_entry":
            raw = self.tx_entries.get(str(params.get("tx_hash", "")).upper())
            return Reply.json(raw) if raw is not None else _error("transactionNotFound", 29, "Transaction not found.")
        if method == "ledger":
            try:
                index = int(params.get("ledger_index", -1))
            except (TypeError, ValueError):
                index = -1
            raw = self.ledgers.get(index)
            return Reply.json(raw) if raw is not None else _error("lgrNotFound", 21, "ledgerNotFound")
        return _error("unknownCmd", 32, "Unknown method.")

    def _tx(self, params: Mapping[str, Any]) -> Reply:
        tx_hash = str(params.get("transaction", "")).upper()
        raw = self.tx_answers.get(tx_hash)
        if raw is not None:
            return Reply.json(raw)
        entry = self.entries.get(tx_hash)
        if entry is not None:
            return Reply.json({"result": {**entry, "status": "success"}})
        return _error("txnNotFound", 29, "Transaction not found.", {"command": "tx", **params})

    def _account_tx(self, params: Mapping[str, Any]) -> Reply:
        account = params.get("account")
        if not isinstance(account, str):
            return _error("invalidParams", 31, "Missing field 'account'.")
        entries = [
            e
            for e in self.entries.values()
            if "ledger_index" in e and e["validated"] and account in json.dumps([e["tx_json"], e["meta"]])
        ]
        if not entries:
            return _error("actNotFound", 19, "Account not found.", {"command": "account_tx", **params})
        low = int(params.get("ledger_index_min", -1))
        high = int(params.get("ledger_index_max", -1))
        forward = bool(params.get("forward", False))
        limit = max(1, min(int(params.get("limit", 200)), 400))

        def key(e: Mapping[str, Any]) -> tuple[int, int]:
            return int(e["ledger_index"]), int(e["meta"].get("TransactionIndex", 0))

        chosen = sorted(
            (e for e in entries if (low < 0 or e["ledger_index"] >= low) and (high < 0 or e["ledger_index"] <= high)),
            key=key,
            reverse=not forward,
        )
        marker = params.get("marker")
        if isinstance(marker, Mapping):
            start = (int(marker["ledger"]), int(marker["seq"]))
            chosen = [e for e in chosen if (key(e) >= start if forward else key(e) <= start)]
        page, rest = chosen[:limit], chosen[limit:]
        all_indexes = [int(e["ledger_index"]) for e in entries]
        result: dict[str, Any] = {
            "account": account,
            "ledger_index_min": low if low >= 0 else min(all_indexes),
            "ledger_index_max": high if high >= 0 else max(all_indexes),
            "limit": limit,
            "transactions": page,
            "validated": True,
            "status": "success",
        }
        if rest:
            result["marker"] = {"ledger": key(rest[0])[0], "seq": key(rest[0])[1]}
        return Reply.json({"result": result})


def build_handler(fixtures_dir: Path, *, recorded_head: bool = False) -> XrplReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return XrplReplay(recordings, recorded_head=recorded_head, skipped=skipped)
