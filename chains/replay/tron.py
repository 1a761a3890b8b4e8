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
- Account history (TronGrid ``/v1/accounts/{address}/transactions``): answers 501 "not recorded"
  (an adapter sees a server error: unavailable, never an empty history). The recorded pages are
  kept in ``account_pages``.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "TronReplay", "build_handler"]

FOLDER: Final = "tron"
_HEX64: Final = re.compile(r"^[0-9a-fA-F]{64}$")


class TronReplay:
    def __init__(self, recordings: list[Recording], *, skipped: list[SkippedRecording] | None = None) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        self.transactions: dict[str, Recording] = {}
        self.infos: dict[str, Recording] = {}
        #: recorded TronGrid ``/v1/accounts/{address}/transactions`` pages
        self.account_pages: list[Recording] = []
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a TRON answer", exc)
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
        if path.startswith("/v1/accounts/"):
            return Reply.json({"success": False, "error": "account history was not recorded"}, status=501)
        return Reply.json({"Error": f"no such endpoint in the recordings: {request.path}"}, status=404)

    def _by_id(self, request: Request, table: dict[str, Recording]) -> Reply:
        value = _value(request)
        if value is None:
            return Reply.json({"Error": "class java.lang.NullPointerException : null"})
        if not _HEX64.match(value):
            return Reply.json({"Error": f"class java.lang.IllegalArgumentException : invalid hex {value!r}"})
        rec = table.get(value.lower())
        return Reply.json(rec.raw if rec is not None else {})


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
