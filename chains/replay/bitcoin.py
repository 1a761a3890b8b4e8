"""Replays the recorded Bitcoin API answers in ``<fixtures>/bitcoin/``: Esplora and Blockbook.

Esplora (``esplora_tx_*.json``, Blockstream testnet recordings), served byte for byte by txid:

- ``GET /tx/{txid}``: the recording, or 404 with the text ``Transaction not found`` (Esplora's
  real answer for an unknown txid).
- ``GET /tx/{txid}/status``: the recording's own ``status`` object.
- ``GET /blocks/tip/height``: **not a recording.** The highest ``status.block_height`` among the
  Esplora recordings (2131550 with the shipped ones), as plain text like Esplora answers; so the
  transaction of that block has exactly 1 confirmation.
- ``GET /address/{address}/txs`` (and ``/txs/chain/{last_seen_txid}`` for the next page): built
  from the recordings, **not a recording of this call**: the recorded transactions that pay to or
  spend from the address (same objects as ``/tx/{txid}``), newest first. The real answer holds the
  address's whole history; here only what was recorded can appear.

Blockbook (``blockbook_tx_*.json``, a mainnet recording), by txid:

- ``GET /api/v2/tx/{txid}``: the recording, or 400 ``{"error": "Transaction '<txid>' not found"}``
  (Blockbook's answer for an unknown txid). Blockbook reports ``confirmations`` itself, so no tip
  is needed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Final

from chains.replay.recorded import Recording, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "BitcoinReplay", "build_handler"]

FOLDER: Final = "bitcoin"
#: Esplora's page sizes: unconfirmed transactions first (up to 50), then 25 confirmed per page
_MEMPOOL_PAGE: Final = 50
_CHAIN_PAGE: Final = 25


class BitcoinReplay:
    def __init__(self, recordings: list[Recording]) -> None:
        self.esplora: dict[str, Recording] = {}
        self.blockbook: dict[str, Recording] = {}
        for rec in recordings:
            if rec.name.startswith("esplora_tx_"):
                self.esplora[str(rec.data["txid"]).lower()] = rec
            elif rec.name.startswith("blockbook_tx_"):
                self.blockbook[str(rec.data["txid"]).lower()] = rec
        heights = [
            int(r.data["status"]["block_height"]) for r in self.esplora.values() if r.data["status"].get("confirmed")
        ]
        #: what ``/blocks/tip/height`` answers; see the module docstring
        self.tip: int | None = max(heights) if heights else None

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return Reply.text("Method Not Allowed", status=405)
        parts = [p for p in request.path.split("/") if p]
        if parts[:2] == ["api", "v2"] and len(parts) == 4 and parts[2] == "tx":
            rec = self.blockbook.get(parts[3].lower())
            if rec is None:
                return Reply.json({"error": f"Transaction '{parts[3]}' not found"}, status=400)
            return Reply.json(rec.raw)
        if parts == ["blocks", "tip", "height"]:
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


def build_handler(fixtures_dir: Path) -> BitcoinReplay:
    return BitcoinReplay(read_recordings(fixtures_dir / FOLDER))
