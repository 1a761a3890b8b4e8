"""Replays the recorded Horizon answers in ``<fixtures>/stellar/`` (mounted as ``/stellar``).

Recordings are recognised by their content (which request they answer), never by their name:

- ``GET /transactions/{hash}``: a recorded transaction (a body with ``hash`` and
  ``envelope_xdr``) is served **byte for byte**, whatever Horizon schema it was recorded in (two are
  2018/2019 documentation examples without ``fee_charged``; one lacks ``successful``). A hash
  that a recording shows exists but whose body nobody recorded gets 501 "not recorded" (Horizon
  would answer it; the replay cannot): the transaction of a recorded payment or operation record,
  and the *inner* hash of a recorded fee-bump transaction (Horizon serves a fee-bump transaction by
  its inner hash too, with ``hash``/``id`` set to the inner hash: an answer nobody recorded). Any
  other hash gets Horizon's real 404 "Resource Missing" problem document.
- ``GET /transactions/{hash}/payments``: a recorded payments page (``_embedded.records`` whose
  ``transaction_hash`` is that hash) is served byte for byte. For a transaction some recording
  shows (its body, or a record of it) whose payments page nobody recorded the answer is 501 "not
  recorded" (an adapter sees a server error, never an invented empty page); for an unknown hash,
  the 404 problem.
- ``GET /accounts/{id}/payments``: **assembled** from the recorded account payment pages (a page
  whose ``_links.self`` is ``/accounts/{id}/payments``), each record served as it was recorded.
  A recorded page tells which of the account's payments exist between two operation ids, and only
  there: recorded ``order=desc`` with an empty cursor and a *full* page (as many records as its
  ``limit``), it covers the account's history from its oldest record up (its newest record is the
  account's newest payment as of the recording, which the replay takes as the newest now); a page
  with fewer records than its limit reaches the start of the account's history. A request is
  answered (``order``, ``cursor``, ``limit``: operation ids compare as numbers) only when every
  record its page must hold, and the claim "nothing more" of a short page, lie inside that
  coverage; a page that would have to go past the oldest recorded record gets 501 "not recorded",
  never an invented end of history. Records of failed transactions (``transaction_successful:
  false``) are listed only with ``include_failed=true``, as Horizon does; a page recorded without
  it says nothing about failed ones, so ``include_failed=true`` over it is 501 too. An account
  other recordings name (a transaction's fields or envelope, an operation or payment record) but
  no account page covers also gets 501 "not recorded" (its real page holds payments nobody
  recorded); an account no recording names gets the 404 problem (the replay's world has nothing
  for it). ``join=transactions`` is not honoured: no joined page was recorded, so the records
  carry no embedded transaction and the adapter reads each transaction by its hash.
- ``GET /operations/{id}``: a recorded operation (a single record with ``type`` and
  ``transaction_hash``), byte for byte, and any record of a recorded page by its id (as recorded).
  Other ids: 404.
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
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Final
from urllib.parse import parse_qsl, urlsplit

from stellar_sdk import FeeBumpTransactionEnvelope, MuxedAccount, Network, TransactionBuilder

from chains.replay.recorded import Recording, SkippedRecording, note_unreadable, read_recordings
from chains.replay.server import Reply, Request

__all__ = ["FOLDER", "AccountCoverage", "StellarReplay", "build_handler"]

FOLDER: Final = "stellar"
_PARTIES: Final = ("from", "to", "funder", "account", "into", "source_account")
_TOP: Final = math.inf
_BOTTOM: Final = -math.inf


def _problem(status: int, title: str, detail: str) -> Reply:
    kind = "not_found" if status == 404 else "bad_request" if status == 400 else "not_implemented"
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


def _token(record: Mapping[str, Any]) -> int:
    return int(record["paging_token"])


@dataclass(frozen=True, slots=True)
class AccountCoverage:
    """What one recorded ``/accounts/{id}/payments`` page proves: the account's payments whose
    operation id lies in ``[low, high]`` are exactly the page's records (successful ones only,
    unless it was recorded with ``include_failed``). ``low``/``high`` may be infinite."""

    account: str
    low: float
    high: float
    include_failed: bool
    name: str

    def holds(self, low: float, high: float, include_failed: bool) -> bool:
        return self.low <= low and high <= self.high and (self.include_failed or not include_failed)


def _account_page(rec: Recording, records: list[Mapping[str, Any]]) -> AccountCoverage | None:
    """The coverage of a recorded account payments page (None if the page is not one)."""
    links = rec.data.get("_links")
    href = links.get("self", {}).get("href") if isinstance(links, Mapping) else None
    if not isinstance(href, str):
        return None
    url = urlsplit(href)
    parts = [p for p in url.path.split("/") if p]
    if len(parts) < 3 or parts[-3] != "accounts" or parts[-1] != "payments":
        return None
    query = dict(parse_qsl(url.query, keep_blank_values=True))
    limit = int(query.get("limit") or 10)
    cursor = int(query["cursor"]) if query.get("cursor") else None
    tokens = [_token(r) for r in records]
    full = len(records) >= limit
    if query.get("order") == "desc":
        high: float = (cursor - 1) if cursor is not None else _TOP
        low: float = min(tokens) if full and tokens else _BOTTOM
    else:
        low = (cursor + 1) if cursor is not None else _BOTTOM
        high = max(tokens) if full and tokens else _TOP
    return AccountCoverage(parts[-2], low, high, query.get("include_failed") == "true", rec.name)


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
        #: inner hash -> outer hash of a recorded fee-bump transaction
        self.inner_hashes: dict[str, str] = {}
        #: hash -> recorded payments page
        self.payment_pages: dict[str, Recording] = {}
        #: every recorded payment or operation record, as recorded
        self.records: list[Mapping[str, Any]] = []
        #: operation id -> a recorded single operation
        self.operations: dict[str, Recording] = {}
        #: account -> what its recorded payments pages cover
        self.coverage: dict[str, list[AccountCoverage]] = {}
        #: the recorded Horizon root, if any
        self.root: Recording | None = None
        self.recorded_head = recorded_head
        for rec in recordings:
            try:
                self._index(rec)
            except (KeyError, TypeError, ValueError, AttributeError) as exc:
                note_unreadable(self.skipped, rec.path, "a Horizon answer", exc)
        #: accounts some recording names (transaction fields or envelope, records), for "not recorded"
        self.mentioned: set[str] = set()
        for rec in self.transactions.values():
            self.mentioned.update(_accounts_of(rec.data))
        for record in self.records:
            self.mentioned.update(v for k in _PARTIES if isinstance(v := record.get(k), str))
        #: hashes recordings show exist (their records), with or without a recorded body
        self.listed: set[str] = {str(r["transaction_hash"]).lower() for r in self.records}
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
            tx_hash = str(data["hash"]).lower()
            self.transactions[tx_hash] = rec
            inner = data.get("inner_transaction")
            if isinstance(inner, Mapping) and isinstance(inner.get("hash"), str):
                self.inner_hashes[inner["hash"].lower()] = tx_hash
        elif isinstance(data.get("_embedded"), Mapping):
            records = list(data["_embedded"]["records"])
            hashes = {str(r["transaction_hash"]).lower() for r in records}
            for r in records:
                _token(r)
            page = _account_page(rec, records)
            if page is not None:
                self.coverage.setdefault(page.account, []).append(page)
            elif len(hashes) == 1:
                self.payment_pages[hashes.pop()] = rec
            self.records.extend(records)
        elif "transaction_hash" in data and "type" in data and "paging_token" in data:
            _token(data)
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
            tx_hash = parts[1].lower()
            rec = self.transactions.get(tx_hash)
            if rec is not None:
                return Reply.json(rec.raw)
            if tx_hash in self.inner_hashes:
                return _not_recorded(f"fee-bump transaction {self.inner_hashes[tx_hash]} asked for by its inner hash")
            return _not_recorded(f"transaction {tx_hash}") if tx_hash in self.listed else _missing()
        if parts[0] == "transactions" and len(parts) == 3 and parts[2] == "payments":
            tx_hash = parts[1].lower()
            page = self.payment_pages.get(tx_hash)
            if page is not None:
                return Reply.json(page.raw)
            known = tx_hash in self.transactions or tx_hash in self.listed or tx_hash in self.inner_hashes
            return _not_recorded(f"the payments of {tx_hash}") if known else _missing()
        if parts[0] == "accounts" and len(parts) == 3 and parts[2] == "payments":
            return self._account_payments(parts[1], request.query)
        if parts[0] == "operations" and len(parts) == 2:
            op = self.operations.get(parts[1])
            if op is not None:
                return Reply.json(op.raw)
            found = [r for r in self.records if str(r.get("id")) == parts[1]]
            return Reply.json(found[0]) if found else _missing()
        return _missing()

    def _account_payments(self, account: str, query: Mapping[str, str]) -> Reply:
        covers = self.coverage.get(account, [])
        if not covers:
            if account in self.mentioned:
                return _not_recorded(f"the payments of account {account}")
            return _missing()
        include_failed = query.get("include_failed") == "true"
        descending = query.get("order") == "desc"
        try:
            limit = int(query.get("limit") or 10)
            cursor = int(query["cursor"]) if query.get("cursor") else None
        except ValueError:
            return _problem(400, "Bad Request", "cursor and limit must be integers")
        if not 1 <= limit <= 200:
            return _problem(400, "Bad Request", "limit must be between 1 and 200")
        by_id = {str(r.get("id")): r for r in self.records if any(r.get(k) == account for k in _PARTIES[:5])}
        records = [r for r in by_id.values() if include_failed or r.get("transaction_successful", True) is not False]
        chosen = sorted(records, key=_token, reverse=descending)
        if cursor is not None:
            chosen = [r for r in chosen if (_token(r) < cursor if descending else _token(r) > cursor)]
        page = chosen[:limit]
        # the operation ids this page speaks for: from the cursor to its last record (or, for a
        # short page, to the end of the account's history)
        start: float = cursor if cursor is not None else (_TOP if descending else _BOTTOM)
        end: float = _token(page[-1]) if len(page) == limit else (_BOTTOM if descending else _TOP)
        low, high = (end, start - 1 if cursor is not None else start) if descending else (
            start + 1 if cursor is not None else start, end)
        if not any(c.holds(low, high, include_failed) for c in covers):
            return _not_recorded(
                f"the payments of account {account} between operation ids {_bound(low)} and {_bound(high)}"
            )
        base = f"/accounts/{account}/payments"
        order = "desc" if descending else "asc"
        last = page[-1]["paging_token"] if page else query.get("cursor", "")
        first = page[0]["paging_token"] if page else query.get("cursor", "")
        body = {
            "_links": {
                "self": {"href": f"{base}?cursor={query.get('cursor', '')}&limit={limit}&order={order}"},
                "next": {"href": f"{base}?cursor={last}&limit={limit}&order={order}"},
                "prev": {"href": f"{base}?cursor={first}&limit={limit}&order={'asc' if descending else 'desc'}"},
            },
            "_embedded": {"records": page},
        }
        return Reply.json(body)


def _bound(value: float) -> str:
    if value == _TOP:
        return "the newest"
    if value == _BOTTOM:
        return "the first"
    return str(int(value))


def _accounts_of(transaction: Mapping[str, Any]) -> set[str]:
    """Every G… account a recorded transaction names: its JSON fields and its envelope's source and
    operation sources and destinations (decoded with stellar-sdk)."""
    found = {v for v in transaction.values() if isinstance(v, str) and v.startswith("G") and len(v) == 56}
    envelope = TransactionBuilder.from_xdr(transaction["envelope_xdr"], Network.PUBLIC_NETWORK_PASSPHRASE)
    if isinstance(envelope, FeeBumpTransactionEnvelope):
        tx = envelope.transaction.inner_transaction_envelope.transaction
        found.add(str(envelope.transaction.fee_source.account_id))
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
