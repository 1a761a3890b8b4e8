"""Replays the recorded java-tron / TronGrid HTTP answers in ``<fixtures>/tron/``.

Recordings are recognised by their content (a ``gettransactionbyid`` body has ``txID`` and
``raw_data``; a ``gettransactioninfobyid`` body ``id`` and ``blockNumber``; a TronGrid account page
``data``, ``success`` and ``meta``); a file of any other shape is set aside with a note in
``skipped`` and never stops the server. Transactions are indexed by the id they answer and served
byte for byte:

- ``POST /wallet/gettransactionbyid`` and ``POST /wallet/gettransactioninfobyid`` with
  ``{"value": "<txid>"}`` (GET with ``?value=`` too, as java-tron accepts both). An id nobody
  recorded gets ``{}``, which is what java-tron answers for an unknown transaction (and, for
  ``gettransactioninfobyid``, for one not yet in a block).
- ``POST /wallet/getnowblock``: **not a recording.** A minimal block whose
  ``block_header.raw_data.number`` and ``timestamp`` are the highest ``blockNumber`` and its
  ``blockTimeStamp`` found in the recorded ``gettransactioninfobyid`` bodies (75772270 with the
  shipped recordings: the TRX transfer's block). No ``blockID`` or transactions are given, because
  none were recorded; so the transaction of that block has exactly 1 confirmation.
- Account history, TronGrid ``GET /v1/accounts/{address}/transactions``: **assembled** from the
  recorded pages' entries (each entry served as recorded; the envelope ``success``/``data``/``meta``
  is made here). The account a page belongs to is recognised from its content: the one address
  every entry names as owner, recipient (``to_address``, ``receiver_address``,
  ``contract_address``) or, for a TRC-20 ``transfer``/``transferFrom`` call, recipient inside
  ``data``. Parameters honoured: ``limit`` (default 20, at most 200), ``order_by``
  (``block_timestamp,desc`` by default, or ``,asc``), ``min_timestamp``/``max_timestamp`` (ms,
  inclusive), ``only_to`` (the account is ``to_address``/``receiver_address``/``contract_address``),
  ``only_from`` (it is ``owner_address``), ``only_confirmed``, and ``fingerprint``: the replay
  issues its own opaque fingerprints (``replay1.…``) for the pages it assembles; any other one,
  such as the fingerprint a recorded page carries, names a page nobody recorded: 501.

  Coverage: a recorded page without ``meta.fingerprint`` is the account's whole history up to its
  ``meta.at``; a page with one is the history from just after its oldest entry's
  ``block_timestamp`` (entries of that same millisecond may continue on the unrecorded next page)
  up to ``meta.at``. A page is answered only when every entry it asserts (from where it starts to
  its last entry, or to the end of the requested window when it is the last page) lies in that
  coverage; otherwise the answer is 501 "not recorded", never an invented end of history. So a
  request without ``max_timestamp`` (which asks up to now, after ``meta.at``) is 501, as is one
  whose window reaches older than a fingerprinted page's oldest entry before the page fills.
  An account with no recorded page, ``only_unconfirmed``, a non-empty ``token_id`` or
  ``search_internal`` filter: 501.
- ``GET /v1/accounts/{address}/transactions/trc20`` (and any other ``/v1/accounts/...`` path):
  501, not recorded. (TronGrid's TRC-20 index is built from event logs, which the recorded
  ``/transactions`` pages do not hold, so it cannot be derived from them.)
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request
from chains.tron import decode_call_transfer, tron_address

__all__ = ["FOLDER", "TronReplay", "build_handler"]

FOLDER: Final = "tron"
_HEX64: Final = re.compile(r"^[0-9a-fA-F]{64}$")
_ACCOUNT_PATH: Final = re.compile(r"^/v1/accounts/([^/]+)/transactions$")
_FINGERPRINT: Final = "replay1."
_DEFAULT_LIMIT: Final = 20
_MAX_LIMIT: Final = 200
_NEVER: Final = 2**63  # a timestamp after any other


@dataclass(frozen=True, slots=True)
class _Entry:
    tx_id: str
    stamp: int
    owner: str | None
    #: the addresses TronGrid's ``only_to`` matches (``to_address``, ``receiver_address``, ``contract_address``)
    to: frozenset[str]
    #: ``to`` and the recipient of a TRC-20 ``transfer``/``transferFrom`` call (to recognise the account)
    named: frozenset[str]
    data: Mapping[str, Any]


@dataclass
class AccountHistory:
    """What the recorded pages say about one account: its entries and the time they cover."""

    address: str
    entries: dict[str, _Entry] = field(default_factory=dict)
    #: (exclusive lower bound in ms, or None for the account's beginning; inclusive upper bound)
    spans: list[tuple[int | None, int]] = field(default_factory=list)
    #: each recorded page: the txIDs it holds and its ``meta.at``
    pages: list[tuple[frozenset[str], int]] = field(default_factory=list)

    def covers(self, start: int, end: int) -> bool:
        """Whether every entry with ``start <= block_timestamp <= end`` was recorded."""
        return any((low is None or start > low) and end <= high for low, high in self.spans)


class TronReplay:
    def __init__(self, recordings: list[Recording], *, skipped: list[SkippedRecording] | None = None) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        self.transactions: dict[str, Recording] = {}
        self.infos: dict[str, Recording] = {}
        #: recorded TronGrid ``/v1/accounts/{address}/transactions`` pages
        self.account_pages: list[Recording] = []
        #: the recorded account histories, by ``T…`` address
        self.accounts: dict[str, AccountHistory] = {}
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a TRON answer", exc)
        for page in list(self.account_pages):
            try:
                self._index_page(page)
            except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
                self.account_pages.remove(page)
                note_unreadable(self.skipped, page.path, "a TronGrid account page", exc)
        heads = [(int(r.data["blockNumber"]), int(r.data["blockTimeStamp"])) for r in self.infos.values()]
        #: (number, timestamp in ms) of the block ``getnowblock`` reports; see the module docstring
        self.head: tuple[int, int] | None = max(heads) if heads else None

    def _index(self, rec: Recording) -> None:
        data = rec.data
        if not isinstance(data, dict):
            raise TypeError("not a JSON object")
        if "txID" in data and "raw_data" in data:
            if not _HEX64.match(str(data["txID"])):
                raise ValueError("txID is not 64 hex digits")
            self.transactions[str(data["txID"]).lower()] = rec
        elif "id" in data and "blockNumber" in data:
            if not _HEX64.match(str(data["id"])):
                raise ValueError("id is not 64 hex digits")
            int(data["blockNumber"])
            int(data["blockTimeStamp"])
            self.infos[str(data["id"]).lower()] = rec
        elif isinstance(data.get("data"), list) and "success" in data and isinstance(data.get("meta"), dict):
            self.account_pages.append(rec)
        else:
            raise ValueError(f"no known TRON answer has these fields: {sorted(data)[:8]}")

    def handle(self, request: Request) -> Reply:
        path = request.path.rstrip("/")
        if path == "/wallet/gettransactionbyid":
            return self._by_id(request, self.transactions)
        if path == "/wallet/gettransactioninfobyid":
            return self._by_id(request, self.infos)
        if path == "/wallet/getnowblock":
            if self.head is None:
                return Reply.json({"Error": "no recorded block"}, status=501)
            number, timestamp = self.head
            return Reply.json({"block_header": {"raw_data": {"number": number, "timestamp": timestamp}}})
        matched = _ACCOUNT_PATH.match(path)
        if matched and request.method == "GET":
            return self._history(matched.group(1), request)
        if path.startswith("/v1/accounts/"):
            return _not_recorded("this account endpoint was not recorded")
        return Reply.json({"Error": f"no such endpoint in the recordings: {request.path}"}, status=404)

    # ------------------------------------------------------------- account history

    def _index_page(self, rec: Recording) -> None:
        data, meta = rec.data["data"], rec.data["meta"]
        at = meta["at"]
        if rec.data["success"] is not True or not isinstance(at, int) or isinstance(at, bool):
            raise ValueError("not a successful page with meta.at")
        nxt = str((meta.get("links") or {}).get("next") or "")
        if "asc" in nxt.replace("%2C", ",").split("order_by=block_timestamp,")[-1][:3]:
            raise ValueError("an ascending page: its coverage is not read here")
        entries = [_entry(item) for item in data]
        if not entries:
            raise ValueError("an empty page names no account")
        common = set.intersection(*({e.owner, *e.named} - {None} for e in entries))
        if len(common) != 1:
            raise ValueError(f"no single address is named by every entry: {sorted(map(str, common))}")
        (address,) = common
        assert address is not None
        history = self.accounts.setdefault(address, AccountHistory(address))
        for e in entries:
            history.entries[e.tx_id] = e
        fingerprinted = bool(meta.get("fingerprint"))
        history.spans.append((min(e.stamp for e in entries) if fingerprinted else None, at))
        history.pages.append((frozenset(e.tx_id for e in entries), at))

    def _history(self, who: str, request: Request) -> Reply:
        address = tron_address(who)
        history = self.accounts.get(address or "")
        if history is None:
            return _not_recorded(f"the history of {who} was not recorded")
        q = request.query
        try:
            limit = int(q.get("limit", _DEFAULT_LIMIT))
            low = int(q.get("min_timestamp", 0))
            high = int(q.get("max_timestamp", _NEVER))
        except ValueError as exc:
            return Reply.json({"success": False, "error": f"invalid parameter: {exc}", "statusCode": 400}, status=400)
        order = q.get("order_by", "block_timestamp,desc").replace(" ", "")
        if not 1 <= limit <= _MAX_LIMIT or order not in ("block_timestamp,desc", "block_timestamp,asc"):
            return Reply.json({"success": False, "error": "invalid limit or order_by", "statusCode": 400}, status=400)
        if q.get("only_unconfirmed") == "true" or q.get("token_id") or q.get("search_internal") == "true":
            return _not_recorded("this filter was not recorded")
        only_to, only_from = q.get("only_to") == "true", q.get("only_from") == "true"
        descending = order.endswith("desc")
        signature = _signature(history.address, q)
        after: tuple[int, str] | None = None
        if "fingerprint" in q:
            after = _read_fingerprint(q["fingerprint"], signature)
            if after is None:
                return _not_recorded("the page this fingerprint names was not recorded")
        matches = [
            e
            for e in history.entries.values()
            if low <= e.stamp <= high
            and (not only_to or history.address in e.to)
            and (not only_from or e.owner == history.address)
            and (q.get("only_confirmed") != "true" or isinstance(e.data.get("blockNumber"), int))
        ]
        matches.sort(key=lambda e: (e.stamp, e.tx_id), reverse=descending)
        if after is not None:
            matches = [e for e in matches if ((e.stamp, e.tx_id) < after if descending else (e.stamp, e.tx_id) > after)]
        page, more = matches[:limit], len(matches) > limit
        start = (after[0] if after else high) if descending else (after[0] if after else low)
        window_end = low if descending else high

        def covered(until: int) -> bool:
            return history.covers(until, start) if descending else history.covers(start, until)

        fingerprint: str | None = None
        whole = covered(window_end)
        if len(page) < limit or (not more and whole):
            if not whole:
                return _not_recorded("the requested window reaches history nobody recorded")
        else:
            # a page the recording holds as it is (the first page of an unfiltered newest-first
            # request) is served even where its last millisecond continues on the unrecorded page
            as_recorded = (
                descending
                and after is None
                and not only_to
                and not only_from
                and any(start <= at and ids == {e.tx_id for e in page} for ids, at in history.pages)
            )
            if not (as_recorded or covered(page[-1].stamp)):
                return _not_recorded("this page reaches history nobody recorded")
            fingerprint = _make_fingerprint(signature, page[-1])
        meta: dict[str, Any] = {"at": max(high for _low, high in history.spans), "page_size": len(page)}
        if fingerprint:
            meta["fingerprint"] = fingerprint
        return Reply.json({"data": [dict(e.data) for e in page], "success": True, "meta": meta})

    def _by_id(self, request: Request, table: dict[str, Recording]) -> Reply:
        value = _value(request)
        if value is None:
            return Reply.json({"Error": "class java.lang.NullPointerException : null"})
        if not _HEX64.match(value):
            return Reply.json({"Error": f"class java.lang.IllegalArgumentException : invalid hex {value!r}"})
        rec = table.get(value.lower())
        return Reply.json(rec.raw if rec is not None else {})


def _entry(item: Any) -> _Entry:
    """One recorded history entry, with the addresses it names."""
    tx_id = str(item["txID"])
    if not _HEX64.match(tx_id):
        raise ValueError("txID is not 64 hex digits")
    stamp = item["block_timestamp"]
    if not isinstance(stamp, int) or isinstance(stamp, bool):
        raise TypeError("block_timestamp is not a number")
    contract = item["raw_data"]["contract"][0]
    value = contract["parameter"]["value"]
    owner = tron_address(value.get("owner_address"))
    to = {tron_address(value.get(k)) for k in ("to_address", "receiver_address", "contract_address")}
    named = set(to)
    if contract.get("type") == "TriggerSmartContract" and owner and isinstance(value.get("data"), str):
        call = decode_call_transfer(owner, tron_address(value.get("contract_address")) or "", value["data"])
        if call is not None:
            named.add(call.recipient)
    return _Entry(tx_id.lower(), stamp, owner, frozenset(a for a in to if a), frozenset(a for a in named if a), item)


def _not_recorded(why: str) -> Reply:
    return Reply.json({"success": False, "error": f"not recorded: {why}", "statusCode": 501}, status=501)


def _signature(address: str, query: Mapping[str, str]) -> str:
    """What a fingerprint is bound to: the account and every parameter but ``limit``/``fingerprint``."""
    kept = sorted((k, v) for k, v in query.items() if k not in ("limit", "fingerprint"))
    return hashlib.sha256(json.dumps([address, kept]).encode()).hexdigest()[:16]


def _make_fingerprint(signature: str, last: _Entry) -> str:
    token = json.dumps([signature, last.stamp, last.tx_id]).encode()
    return _FINGERPRINT + base64.urlsafe_b64encode(token).decode("ascii")


def _read_fingerprint(value: str, signature: str) -> tuple[int, str] | None:
    """The (timestamp, txID) a fingerprint this replay issued for this query points after; None for
    any other fingerprint."""
    if not value.startswith(_FINGERPRINT):
        return None
    try:
        sig, stamp, tx_id = json.loads(base64.urlsafe_b64decode(value[len(_FINGERPRINT) :]))
    except (ValueError, TypeError, binascii.Error):
        return None
    if sig != signature or not isinstance(stamp, int) or not isinstance(tx_id, str):
        return None
    return stamp, tx_id


def _value(request: Request) -> str | None:
    if "value" in request.query:
        return request.query["value"]
    try:
        body: Any = request.json()
    except (ValueError, json.JSONDecodeError):
        return None
    if isinstance(body, dict) and isinstance(body.get("value"), str):
        return str(body["value"])
    return None


def build_handler(fixtures_dir: Path) -> TronReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return TronReplay(recordings, skipped=skipped)
