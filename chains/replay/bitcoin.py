"""Replays the recorded Bitcoin API answers in ``<fixtures>/bitcoin/``: Esplora and Blockbook.

Recordings are recognised by their content: an Esplora transaction has a ``status`` object, a
Blockbook transaction ``blockHeight`` and ``confirmations``, a Blockbook address page ``address``
and ``txids``/``txs``, and a bare number is a recorded Esplora ``/blocks/tip/height`` body. A file
of any other shape is set aside with a note in ``skipped``; it never stops the server.

Esplora (Blockstream testnet recordings), served byte for byte by txid:

- ``GET /tx/{txid}``: the recording, or 404 with the text ``Transaction not found`` (Esplora's
  real answer for an unknown txid).
- ``GET /tx/{txid}/status``: the recording's own ``status`` object.
- ``GET /blocks/tip/height``: by default **not a recording.** The highest ``status.block_height``
  among the Esplora recordings (2581763 with the shipped ones), as plain text like Esplora answers;
  so the transaction of that block has exactly 1 confirmation. Built with ``recorded_head=True``,
  the recorded tip body is served byte for byte instead (``4550094``, testnet3: above every
  recorded Esplora transaction, so that replay is consistent, not behind; a tip below a reported
  transaction's block, which an adapter must answer with "try later", is the synthesized tip of a
  replay built from only some recordings, see :attr:`BitcoinReplay.tip`).
- ``GET /address/{address}/txs`` (and ``/txs/chain/{last_seen_txid}`` for the next page): built
  from the recordings, **not a recording of this call**: the recorded transactions that pay to or
  spend from the address (same objects as ``/tx/{txid}``), newest first. The real answer holds the
  address's whole history; here only what was recorded can appear.

Blockbook (mainnet recordings), by txid or address:

- ``GET /api/v2/tx/{txid}``: the recording, or 400 ``{"error": "Transaction '<txid>' not found"}``
  (Blockbook's answer for an unknown txid). Blockbook reports ``confirmations`` itself, so no tip
  is needed.
- ``GET /api/v2/address/{address}``: the recorded address page, byte for byte, whatever the query
  (each address was recorded once, with ``details=txids``); an address nobody recorded gets 501
  "not recorded" (an adapter sees a server error, never an invented empty history).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "BitcoinReplay", "build_handler"]

FOLDER: Final = "bitcoin"
#: Esplora's page sizes: unconfirmed transactions first (up to 50), then 25 confirmed per page
_MEMPOOL_PAGE: Final = 50
_CHAIN_PAGE: Final = 25


class BitcoinReplay:
    def __init__(
        self,
        recordings: list[Recording],
        *,
        recorded_head: bool = False,
        skipped: list[SkippedRecording] | None = None,
    ) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        self.esplora: dict[str, Recording] = {}
        self.blockbook: dict[str, Recording] = {}
        #: address -> recorded Blockbook address page
        self.blockbook_addresses: dict[str, Recording] = {}
        #: a recorded Esplora tip height body, if any
        self.recorded_tip: Recording | None = None
        self.recorded_head = recorded_head
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a Bitcoin API answer", exc)
        heights = [
            int(r.data["status"]["block_height"]) for r in self.esplora.values() if r.data["status"].get("confirmed")
        ]
        #: what ``/blocks/tip/height`` answers; see the module docstring
        self.tip: int | None = max(heights) if heights else None

    def _index(self, rec: Recording) -> None:
        data = rec.data
        if isinstance(data, int) and not isinstance(data, bool):
            self.recorded_tip = rec
            return
        if not isinstance(data, dict):
            raise TypeError("not a JSON object or a block height")
        if "txid" in data and isinstance(data.get("status"), dict) and "vout" in data:
            int(data["status"].get("block_height") or 0)
            self.esplora[str(data["txid"]).lower()] = rec
        elif "txid" in data and "blockHeight" in data and "confirmations" in data:
            self.blockbook[str(data["txid"]).lower()] = rec
        elif isinstance(data.get("address"), str) and ("txids" in data or "txs" in data) and "page" in data:
            self.blockbook_addresses[data["address"]] = rec
        else:
            raise ValueError(f"no known Esplora or Blockbook answer has these fields: {sorted(data)[:8]}")

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply.text("Method Not Allowed", status=405)
        parts = [p for p in request.path.split("/") if p]
        if parts[:3] == ["api", "v2", "address"] and len(parts) == 4:
            page = self.blockbook_addresses.get(parts[3])
            if page is None:
                return Reply.json({"error": f"the history of {parts[3]} was not recorded"}, status=501)
            return Reply.json(page.raw)
        if parts[:2] == ["api", "v2"] and len(parts) == 4 and parts[2] == "tx":
            rec = self.blockbook.get(parts[3].lower())
            if rec is None:
                return Reply.json({"error": f"Transaction '{parts[3]}' not found"}, status=400)
            return Reply.json(rec.raw)
        if parts == ["blocks", "tip", "height"]:
            if self.recorded_head and self.recorded_tip is not None:
                return Reply(200, self.recorded_tip.raw, {"Content-Type": "text/plain"})
            if self.tip is None:
                return Reply.text("no recorded block", status=501)
            return Reply.text(str(self.tip))
        if len(parts) in (2, 3) and parts[0] == "tx":
            rec = self.esplora.get(parts[1].lower())
            if rec is None:
                return Reply.text("Transaction not found", status=404)
            if len(parts) == 2:
                return Reply.json(rec.raw)
            if parts[2] == "status":
                return Reply.json(rec.data["status"])
        if len(parts) >= 3 and parts[0] == "address" and parts[2] == "txs":
            return self._address_txs(parts[1], parts[3:])
        return Reply.text(f"not in the recordings: {request.path}", status=404)

    def _address_txs(self, address: str, rest: list[str]) -> Reply:
        touching = [r.data for r in self.esplora.values() if _touches(r.data, address)]
        mempool = [tx for tx in touching if not tx["status"].get("confirmed")]
        chain = sorted(
            (tx for tx in touching if tx["status"].get("confirmed")),
            key=lambda tx: (-int(tx["status"]["block_height"]), tx["txid"]),
        )
        if not rest:
            return Reply.json(mempool[:_MEMPOOL_PAGE] + chain[:_CHAIN_PAGE])
        if rest[0] == "mempool" and len(rest) == 1:
            return Reply.json(mempool[:_MEMPOOL_PAGE])
        if rest[0] == "chain" and len(rest) <= 2:
            if len(rest) == 2:
                ids = [tx["txid"] for tx in chain]
                last = rest[1].lower()
                chain = chain[ids.index(last) + 1 :] if last in ids else []
            return Reply.json(chain[:_CHAIN_PAGE])
        return Reply.text("not in the recordings", status=404)


def _touches(tx: dict[str, Any], address: str) -> bool:
    outs = (o.get("scriptpubkey_address") for o in tx.get("vout", ()))
    ins = ((i.get("prevout") or {}).get("scriptpubkey_address") for i in tx.get("vin", ()))
    return address in set(outs) | set(ins)


def build_handler(fixtures_dir: Path, *, recorded_head: bool = False) -> BitcoinReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return BitcoinReplay(recordings, recorded_head=recorded_head, skipped=skipped)
