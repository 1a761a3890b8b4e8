"""Replays the recorded Horizon answers in ``<fixtures>/stellar/`` (mounted as ``/stellar``).

Recordings are recognised by their content and indexed by the transaction hash they answer:

- ``GET /transactions/{hash}``: a recorded transaction (a body with ``hash`` and
  ``envelope_xdr``) is served **byte for byte**, whatever Horizon schema it was recorded in (two are
  2018/2019 documentation examples without ``fee_charged``; one lacks ``successful``). Any other
  hash gets Horizon's real 404 "Resource Missing" problem document.
- ``GET /transactions/{hash}/payments``: a recorded payments page (``_embedded.records`` whose
  ``transaction_hash`` is that hash) is served byte for byte. For a recorded transaction whose
  payments page nobody recorded the answer is 501 "not recorded" (an adapter sees a server error,
  never an invented empty page); for an unknown hash, the 404 problem.
- ``GET /accounts/{id}/payments``: **assembled** from the recorded payment records (each served as
  it was recorded) whose ``from``/``to``/``funder``/``account``/``into`` is the account, honouring
  ``order``, ``cursor`` (operation ids compare as numbers) and ``limit``. An account that only
  recorded *transactions* mention (so its real page would hold payments nobody recorded) gets 501
  "not recorded"; an account no recording mentions gets the 404 problem (Horizon's answer for an
  account it does not know). ``join=transactions`` is not honoured: no joined page was recorded, so
  the records carry no embedded transaction and the adapter reads each transaction by its hash.
  Records of failed transactions (``transaction_successful: false``) are listed only with
  ``include_failed=true``, as Horizon does.
- ``GET /operations/{id}``: a recorded operation (a single record with ``type`` and
  ``transaction_hash``), byte for byte; its record also joins the account payment pages above.
- ``GET /``: by default **not a recording.** Only ``history_latest_ledger`` and ``core_latest_ledger`` are
  given: the highest ``ledger`` of a recorded transaction (58575576 with the shipped recordings,
  the pubnet transaction ``dbc69dff…``), so that transaction has exactly one confirmation. The
  testnet examples' ledgers are lower, so they count as older. Built with ``recorded_head=True``,
  the recorded Horizon root is served byte for byte instead; it is older than some recorded
  transactions, so such a replay describes a Horizon that is behind (the adapters' "try later").

A file of any other shape is set aside with a note in ``skipped``; it never stops the server.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Final

from stellar_sdk import FeeBumpTransactionEnvelope, MuxedAccount, Network, TransactionBuilder

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "StellarReplay", "build_handler"]

FOLDER: Final = "stellar"
_PARTIES: Final = ("from", "to", "funder", "account", "into")


def _problem(status: int, title: str, detail: str) -> Reply:
    kind = "not_found" if status == 404 else "not_implemented"
    body = {"type": f"https://stellar.org/horizon-errors/{kind}", "title": title, "status": status, "detail": detail}
    return Reply(status, json.dumps(body).encode(), {"Content-Type": "application/problem+json; charset=utf-8"})


def _missing() -> Reply:
    return _problem(
        404,
        "Resource Missing",
        "The resource at the url requested was not found.  This usually occurs for one of two reasons:  "
        "The url requested is not valid, or no data in our database could be found with the parameters provided.",
    )


def _not_recorded(what: str) -> Reply:
    return _problem(501, "Not Recorded", f"{what} was not recorded; the replay cannot answer it")


class StellarReplay:
    def __init__(
        self,
        recordings: list[Recording],
        *,
        recorded_head: bool = False,
        skipped: list[SkippedRecording] | None = None,
    ) -> None:
        #: files set aside, with the reason
        self.skipped: list[SkippedRecording] = list(skipped or [])
        #: hash -> recorded transaction
        self.transactions: dict[str, Recording] = {}
        #: hash -> recorded payments page
        self.payment_pages: dict[str, Recording] = {}
        #: every recorded payment record, as recorded
        self.records: list[Mapping[str, Any]] = []
        #: operation id -> a recorded single operation
        self.operations: dict[str, Recording] = {}
        #: the recorded Horizon root, if any
        self.root: Recording | None = None
        self.recorded_head = recorded_head
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a Horizon answer", exc)
        #: accounts recorded transactions name (in their fields or their envelope), for "not recorded"
        self.mentioned: set[str] = set()
        for rec in self.transactions.values():
            self.mentioned.update(_accounts_of(rec.data))
        ledgers = [(int(r.data["ledger"]), h) for h, r in self.transactions.items()]
        #: (ledger, hash of the transaction that shows it) reported by ``GET /``
        self.head: tuple[int, str] | None = max(ledgers) if ledgers else None

    def _index(self, rec: Recording) -> None:
        data = rec.data
        if not isinstance(data, Mapping):
            raise TypeError("not a JSON object")
        if "envelope_xdr" in data:
            _accounts_of(data)  # the envelope must decode
            int(data["ledger"])
            self.transactions[str(data["hash"]).lower()] = rec
        elif isinstance(data.get("_embedded"), Mapping):
            records = list(data["_embedded"]["records"])
            hashes = {str(r["transaction_hash"]).lower() for r in records}
            for r in records:
                int(r["paging_token"])
            if len(hashes) == 1:
                self.payment_pages[hashes.pop()] = rec
            self.records.extend(records)
        elif "transaction_hash" in data and "type" in data and "paging_token" in data:
            int(data["paging_token"])
            self.operations[str(data["id"])] = rec
            self.records.append(data)
        elif "horizon_version" in data and "history_latest_ledger" in data:
            self.root = rec
        else:
            raise ValueError(f"no known Horizon answer has these fields: {sorted(data)[:8]}")

    def handle(self, request: Request) -> Reply:
        if request.method != "GET":
            return _missing()
        parts = [p for p in request.path.split("/") if p]
        if not parts:
            if self.recorded_head and self.root is not None:
                return Reply.json(self.root.raw)
            if self.head is None:
                return _not_recorded("the latest ledger")
            ledger = self.head[0]
            return Reply.json({"history_latest_ledger": ledger, "core_latest_ledger": ledger})
        if parts[0] == "transactions" and len(parts) == 2:
            rec = self.transactions.get(parts[1].lower())
            return Reply.json(rec.raw) if rec is not None else _missing()
        if parts[0] == "transactions" and len(parts) == 3 and parts[2] == "payments":
            tx_hash = parts[1].lower()
            page = self.payment_pages.get(tx_hash)
            if page is not None:
                return Reply.json(page.raw)
            return _not_recorded(f"the payments of {tx_hash}") if tx_hash in self.transactions else _missing()
        if parts[0] == "accounts" and len(parts) == 3 and parts[2] == "payments":
            return self._account_payments(parts[1], request.query)
        if parts[0] == "operations" and len(parts) == 2:
            op = self.operations.get(parts[1])
            return Reply.json(op.raw) if op is not None else _missing()
        return _missing()

    def _account_payments(self, account: str, query: Mapping[str, str]) -> Reply:
        by_id = {str(r.get("id")): r for r in self.records if any(r.get(k) == account for k in _PARTIES)}
        named = list(by_id.values())
        include_failed = query.get("include_failed") == "true"
        records = [r for r in named if include_failed or r.get("transaction_successful", True) is not False]
        if not named:
            if account in self.mentioned:
                return _not_recorded(f"the payments of account {account}")
            return _missing()
        descending = query.get("order") == "desc"
        try:
            limit = max(1, min(int(query.get("limit") or 10), 200))
            cursor = int(query["cursor"]) if query.get("cursor") else None
        except ValueError:
            return _problem(400, "Bad Request", "cursor and limit must be integers")
        chosen = sorted(records, key=lambda r: int(r["paging_token"]), reverse=descending)
        if cursor is not None:
            after = cursor
            chosen = [
                r for r in chosen if int(r["paging_token"]) != after and (int(r["paging_token"]) < after) == descending
            ]
        page = chosen[:limit]
        base = f"/accounts/{account}/payments"
        last = page[-1]["paging_token"] if page else query.get("cursor", "")
        body = {
            "_links": {
                "self": {"href": f"{base}?cursor={query.get('cursor', '')}&limit={limit}"},
                "next": {"href": f"{base}?cursor={last}&limit={limit}"},
            },
            "_embedded": {"records": page},
        }
        return Reply.json(body)


def _accounts_of(transaction: Mapping[str, Any]) -> set[str]:
    """Every G… account a recorded transaction names: its JSON fields and its envelope's source and
    operation sources and destinations (decoded with stellar-sdk)."""
    found = {v for v in transaction.values() if isinstance(v, str) and v.startswith("G") and len(v) == 56}
    envelope = TransactionBuilder.from_xdr(transaction["envelope_xdr"], Network.PUBLIC_NETWORK_PASSPHRASE)
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        tx = envelope.transaction.inner_transaction_envelope.transaction
    else:
        tx = envelope.transaction
    for holder in [tx, *tx.operations]:
        for name in ("source", "destination"):
            value = getattr(holder, name, None)
            if isinstance(value, MuxedAccount):
                found.add(str(value.account_id))
            elif isinstance(value, str):
                found.add(value)
    return found


def build_handler(fixtures_dir: Path, *, recorded_head: bool = False) -> StellarReplay:
    skipped: list[SkippedRecording] = []
    recordings = read_recordings(fixtures_dir / FOLDER, skipped)
    return StellarReplay(recordings, recorded_head=recorded_head, skipped=skipped)
