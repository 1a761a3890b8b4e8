"""Replays the recorded Cosmos SDK LCD (REST gateway) answers in ``<fixtures>/cosmos/``.

Recordings (``GET /cosmos/tx/v1beta1/txs/{hash}`` bodies: ``tx`` + ``tx_response``) are indexed by
``tx_response.txhash`` and served byte for byte:

- ``GET /cosmos/tx/v1beta1/txs/{hash}``: the recording, or 404 with the gRPC-gateway error body
  ``{"code": 5, "message": "tx not found: <hash>", "details": []}`` (code 5 = NotFound), which is
  what an LCD answers for an unknown hash.
- ``GET /cosmos/base/tendermint/v1beta1/blocks/latest``: **not a recording.** A minimal block whose
  ``header.height`` and ``header.time`` are the highest recorded ``tx_response.height`` and that
  transaction's ``timestamp`` (30033798 with the shipped recordings); so the transaction of that
  block has exactly 1 confirmation.
- ``GET /cosmos/tx/v1beta1/txs?query=...`` (SDK 0.50; ``events=...`` of older SDKs too): built from
  the recordings, **not a recording of this call**: the recorded transactions matching every
  condition (``type.attr='value'`` against ``tx_response.events``, ``tx.height`` compared with
  ``= >= <= > <``), in the ``GetTxsEvent`` shape (``txs``, ``tx_responses``, ``pagination``,
  ``total``), paged by ``page``/``limit``. A recording whose ``events`` list is empty (the IBC one)
  is matched on its ``MsgSend`` messages instead: ``transfer.recipient`` = ``to_address``,
  ``transfer.sender``/``message.sender`` = ``from_address``.

A file of any other shape is set aside with a note in ``skipped``; it never stops the server.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "CosmosReplay", "build_handler"]

FOLDER: Final = "cosmos"
_TX_PATH: Final = "/cosmos/tx/v1beta1/txs"
_LATEST: Final = "/cosmos/base/tendermint/v1beta1/blocks/latest"
_MSG_SEND: Final = "/cosmos.bank.v1beta1.MsgSend"
_CONDITION: Final = re.compile(r"^\s*([A-Za-z0-9_.\-]+)\s*(>=|<=|=|>|<)\s*(?:'([^']*)'|(\S+))\s*$")
_DEFAULT_LIMIT: Final = 100


class CosmosReplay:
    def __init__(self, recordings: list[Recording], *, skipped: list[SkippedRecording] | None = None) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        self.txs: dict[str, Recording] = {}
        for rec in recordings:
            data = rec.data
            try:
                if not (isinstance(data, dict) and isinstance(data.get("tx_response"), dict)):
                    raise ValueError("not a GetTx answer (no tx_response)")
                response = data["tx_response"]
                int(response["height"])
                str(response["timestamp"])
                self.txs[str(response["txhash"]).upper()] = rec
            except (KeyError, TypeError, ValueError) as exc:
                note_unreadable(self.skipped, rec.path, "a Cosmos LCD answer", exc)
        heads = [
            (int(r.data["tx_response"]["height"]), str(r.data["tx_response"]["timestamp"])) for r in self.txs.values()
        ]
        #: (height, time) of the block ``blocks/latest`` reports; see the module docstring
        self.head: tuple[int, str] | None = max(heads) if heads else None

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return _grpc_error(12, "Not Implemented", 501)
        path = request.path.rstrip("/")
        if path == _LATEST:
            if self.head is None:
                return _grpc_error(12, "no recorded block", 501)
            height, time = self.head
            return Reply.json({"block_id": {}, "block": {"header": {"height": str(height), "time": time}}})
        if path.startswith(_TX_PATH + "/"):
            tx_hash = path[len(_TX_PATH) + 1 :]
            rec = self.txs.get(tx_hash.upper())
            if rec is None:
                return _grpc_error(5, f"tx not found: {tx_hash}", 404)
            return Reply.json(rec.raw)
        if path == _TX_PATH:
            return self._search(request)
        return _grpc_error(12, "Not Implemented", 501)

    def _search(self, request: Request) -> Reply:
        texts = [v for k, v in request.query_items if k == "query"]
        texts += [v for k, v in request.query_items if k == "events"]
        conditions: list[tuple[str, str, str]] = []
        for text in texts:
            for part in re.split(r"\s+AND\s+", text):
                match = _CONDITION.match(part)
                if match is None:
                    return _grpc_error(3, f"invalid query condition: {part!r}", 400)
                key, op, quoted, bare = match.groups()
                conditions.append((key, op, quoted if quoted is not None else bare))
        if not conditions:
            return _grpc_error(3, "query cannot be empty", 400)
        try:
            page = int(request.query.get("page") or 1)
            limit = int(request.query.get("limit") or request.query.get("pagination.limit") or _DEFAULT_LIMIT)
        except ValueError:
            return _grpc_error(3, "page and limit must be integers", 400)
        if page < 1 or limit < 1:
            return _grpc_error(3, "page and limit must be positive", 400)
        found = [r.data for r in self.txs.values() if all(_matches(r.data, c) for c in conditions)]
        found.sort(key=lambda d: int(d["tx_response"]["height"]))
        if request.query.get("order_by") == "ORDER_BY_DESC":
            found.reverse()
        chunk = found[(page - 1) * limit : page * limit]
        return Reply.json(
            {
                "txs": [d["tx"] for d in chunk],
                "tx_responses": [d["tx_response"] for d in chunk],
                "pagination": None,
                "total": str(len(found)),
            }
        )


def _grpc_error(code: int, message: str, status: int) -> Reply:
    return Reply.json({"code": code, "message": message, "details": []}, status=status)


def _attributes(data: dict[str, Any], key: str) -> Iterable[str]:
    kind, _, attr = key.partition(".")
    events = data["tx_response"].get("events") or []
    if events:
        for event in events:
            if event.get("type") == kind:
                for item in event.get("attributes", ()):
                    if item.get("key") == attr:
                        yield str(item.get("value"))
        return
    for message in data["tx"]["body"].get("messages", ()):
        if message.get("@type") != _MSG_SEND:
            continue
        if key == "transfer.recipient":
            yield str(message.get("to_address"))
        elif key in ("transfer.sender", "message.sender"):
            yield str(message.get("from_address"))


def _matches(data: dict[str, Any], condition: tuple[str, str, str]) -> bool:
    key, op, value = condition
    if key == "tx.height":
        height = int(data["tx_response"]["height"])
        try:
            wanted = int(value)
        except ValueError:
            return False
        return {
            "=": height == wanted,
            ">=": height >= wanted,
            "<=": height <= wanted,
            ">": height > wanted,
            "<": height < wanted,
        }[op]
    if key == "tx.hash":
        return op == "=" and str(data["tx_response"]["txhash"]).upper() == value.upper()
    return op == "=" and value in set(_attributes(data, key))


def build_handler(fixtures_dir: Path) -> CosmosReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return CosmosReplay(recordings, skipped=skipped)
