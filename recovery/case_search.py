"""Find any case from one search box: by reference, user id, whole or partial transaction hash,
deposit address, or the sender or recipient of its transfers, through every status.

Pure reads. The search is two steps:

1. **Whole identifiers**, each through an index: the reference, the user id, the transaction hash
   (``ix_cases_network_tx``), the refund's hash, the deposit address (``ix_cases_search``),
   and the senders and recipients of the transfers the chain check stored for the case's
   transaction or refund (``observed_transfers``: ``ix_observed_transfers_sender``,
   ``ix_observed_recipient``). Identifiers are compared in their canonical stored spelling
   (``chains/addresses.py``): hex hashes and EVM addresses are found whatever their case (an EVM
   address is stored with its EIP-55 checksum; hashes in lower or upper case by family), Base58
   (TRON, Solana, legacy Bitcoin, XRP Ledger, Stellar) only as typed, since there case is part
   of the address; bech32 (segwit Bitcoin, Cosmos) in lower case, as stored.
2. Only when no case anywhere has that whole identifier, and the text has at least
   :data:`MIN_SUBSTRING` characters, **part of** a reference, user id, hash or deposit address:
   on PostgreSQL through the trigram index of ``case_fragments`` (a copy of those five columns that
   triggers on ``cases`` keep, migration 0015), on SQLite a scan of ``ix_cases_search``.
   A fragment of hex digits (after an optional 0x) is matched whatever its case; any other
   fragment of a hash or address as typed (references and user ids in any case).

Both steps give a condition on ``cases`` (:class:`Search`) that the queue combines with its filters
(``recovery/queues.py``); the condition is one SQL statement on SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import and_, column, false, func, or_, select, table, union
from sqlalchemy.sql.elements import ColumnElement
from sqlmodel import Session, col

from recovery.db import Database
from recovery.models import FRAGMENT_COLUMNS, Case, ObservedTransfer

#: a substring search scans the table: only from this many characters on
MIN_SUBSTRING = 3
#: a search text longer than any identifier is cut here (nothing stored is longer)
MAX_TEXT = 256

_HEX = re.compile(r"[0-9a-fA-F]+")
_BASE58 = re.compile(r"[1-9A-HJ-NP-Za-km-z]+")


@dataclass(frozen=True)
class Terms:
    """What a search text can be, spelled as the database stores it."""

    text: str
    #: whole hashes and addresses, in every canonical spelling the text can have (case-sensitive)
    chain_forms: tuple[str, ...]
    #: whole references and user ids (the text as typed, in lower and in upper case)
    name_forms: tuple[str, ...]
    #: the text is hex digits (after an optional 0x): a fragment is matched whatever its case
    hex_fragment: bool


def terms(text: str) -> Terms:
    """The spellings a search text is looked up in (see the module's docstring)."""
    text = text.strip()[:MAX_TEXT]
    body = text[2:] if text[:2] in ("0x", "0X") else text
    chain: list[str] = [text]
    hex_digits = bool(body) and _HEX.fullmatch(body) is not None
    if hex_digits:
        lower, upper = body.lower(), body.upper()
        chain += [lower, upper, "0x" + lower]
        if len(body) == 40:  # an EVM address: stored with its EIP-55 checksum
            chain.append(_evm_checksum("0x" + lower))
        if len(body) == 42 and lower.startswith("41"):  # a TRON address in hex: stored in Base58
            chain.append(_tron_base58(lower))
    elif text == text.lower() or text == text.upper():
        # bech32 (segwit Bitcoin, Cosmos) is stored in lower case and may be typed in either
        chain.append(text.lower())
    if text[:1] == "X" and _BASE58.fullmatch(text):  # an XRP Ledger X-address: stored as its classic address
        chain.append(_xrpl_classic(text))
    names = [text, text.lower(), text.upper()]
    return Terms(text, _unique(chain), _unique(names), hex_digits)


def _unique(values: Sequence[str]) -> tuple[str, ...]:
    return tuple(v for v in dict.fromkeys(values) if v)


def _evm_checksum(lowercase: str) -> str:
    from chains.addresses import eip55_checksum

    return eip55_checksum(lowercase)


def _tron_base58(hex_address: str) -> str:
    from chains.addresses import normalize_address
    from chains.base import InvalidChainInput

    try:
        return normalize_address("tron", hex_address)
    except InvalidChainInput:
        return ""


def _xrpl_classic(address: str) -> str:
    from chains.addresses import normalize_address
    from chains.base import InvalidChainInput

    for testnet in (False, True):
        try:
            return normalize_address("xrpl", address, testnet=testnet)
        except InvalidChainInput:
            continue
    return ""


@dataclass(frozen=True)
class Search:
    """The search as a condition on ``cases``; ``scanning``: part of an identifier (a table scan)."""

    terms: Terms
    condition: ColumnElement[bool]
    scanning: bool


def whole_ids(found: Terms, networks: Sequence[str]) -> Any:
    """The ids of the cases one of whose identifiers is the whole text: one SELECT (a UNION of
    index lookups). ``networks``: every network a case may be on (the ``(network, tx_hash)`` and
    ``(network, recipient)`` indexes are used by naming them)."""
    chain, names = list(found.chain_forms), list(found.name_forms)
    nets = list(networks) or [""]
    hashes = union(
        select(col(ObservedTransfer.tx_hash)).where(col(ObservedTransfer.sender).in_(chain)),
        select(col(ObservedTransfer.tx_hash)).where(col(ObservedTransfer.network).in_(nets),
                                                    col(ObservedTransfer.recipient).in_(chain)),
    ).subquery()
    transferred = select(hashes.c.tx_hash)
    return union(
        select(col(Case.id)).where(col(Case.reference).in_(names)),
        select(col(Case.id)).where(col(Case.user_id).in_(names)),
        select(col(Case.id)).where(col(Case.network).in_(nets), col(Case.tx_hash).in_(chain)),
        select(col(Case.id)).where(col(Case.refund_tx_hash).in_(chain)),
        select(col(Case.id)).where(col(Case.deposit_address).in_(chain)),
        select(col(Case.id)).where(col(Case.network).in_(nets), col(Case.tx_hash).in_(transferred)),
        select(col(Case.id)).where(col(Case.refund_tx_hash).in_(transferred)),
    )


def _like_pattern(fragment: str) -> str:
    """``%fragment%`` with LIKE's wildcards (and the escape character ``/``) searched for literally."""
    return "%" + fragment.replace("/", "//").replace("%", "/%").replace("_", "/_") + "%"


def _contains_exact(db: Database, column: Any, fragment: str) -> ColumnElement[bool]:
    """``fragment`` inside ``column``, case-sensitively (SQLite's LIKE ignores ASCII case)."""
    if db.is_sqlite:
        return func.instr(column, fragment) > 0
    # the pattern is one bound value (not '%' || value || '%'): the trigram index reads it as it plans
    return column.like(_like_pattern(fragment), escape="/")  # type: ignore[no-any-return]


def _contains_any_case(db: Database, column: Any, fragment: str) -> ColumnElement[bool]:
    if db.is_sqlite:
        # SQLite's LIKE ignores ASCII case already; lower() on every row would only cost time
        return column.contains(fragment, autoescape=True)  # type: ignore[no-any-return]
    # ILIKE on the column itself (not lower(column) LIKE): ix_case_fragments_trgm answers it
    return column.ilike(_like_pattern(fragment), escape="/")  # type: ignore[no-any-return]


#: PostgreSQL's copy of every case's searched identifiers (migration 0015: kept by triggers on
#: ``cases``, so it holds what ``cases`` holds in the same transaction; no model of its own)
CASE_FRAGMENTS = table("case_fragments", column("case_id"), *(column(name) for name in FRAGMENT_COLUMNS))


def fragment_condition(db: Database, found: Terms) -> ColumnElement[bool]:
    """Part of a reference, user id, hash or deposit address. On PostgreSQL the trigram index of
    ``case_fragments`` (``ix_case_fragments_trgm``) finds the few rows that can match, and each one is
    checked with the condition itself (the index ignores case; a case-sensitive LIKE is still exact).
    A text the index can do little with (no letters or digits, as ``---``, or found in most cases, as
    ``RC-``) is answered by a scan of that narrow table, the planner's choice. SQLite scans
    ``ix_cases_search`` (every column read is in that index, so the rows and their decision JSON
    are not read)."""
    text = found.text
    source: Any = Case.__table__.c if db.is_sqlite else CASE_FRAGMENTS.c  # type: ignore[attr-defined]
    ids = source.id if db.is_sqlite else source.case_id
    names = [source.reference, source.user_id]
    chain = [source.tx_hash, source.deposit_address, source.refund_tx_hash]
    parts = [_contains_any_case(db, column, text) for column in names]
    if found.hex_fragment:
        parts += [_contains_any_case(db, column, text) for column in chain]
    else:
        parts += [_contains_exact(db, column, text) for column in chain]
    return col(Case.id).in_(select(ids).where(or_(*parts)))


#: a search's matching ids are read once and the page's queries use them (``id IN (...)``), up to
#: this many; beyond it each query repeats the search (a part of a hash in most cases, say)
MAX_MATERIALIZED = 2000


def _materialized(session: Session, condition: ColumnElement[bool]) -> ColumnElement[bool] | None:
    """The ids ``condition`` matches, as a condition on the ids (None: none match); ``condition``
    itself when there are more than :data:`MAX_MATERIALIZED`."""
    ids = list(session.execute(select(col(Case.id)).where(condition).limit(MAX_MATERIALIZED + 1)).scalars())
    if not ids:
        return None
    if len(ids) > MAX_MATERIALIZED:
        return condition
    return col(Case.id).in_(sorted(int(i) for i in ids))


def search(db: Database, session: Session, text: str, networks: Sequence[str] | None = None) -> Search | None:
    """The search for ``text`` (None for an empty text). Whole identifiers when any case in any
    status has one; else part of one (from :data:`MIN_SUBSTRING` characters). ``networks``: the
    configured ones (else read from the cases).

    The search runs here, once: the condition names the matching ids (up to
    :data:`MAX_MATERIALIZED`), so the page, its count and the count per status that use it read
    only those cases."""
    found = terms(text)
    if not found.text:
        return None
    if networks is None:
        networks = [str(n) for n in session.execute(select(col(Case.network)).distinct()).scalars()]
    ids = whole_ids(found, networks)
    whole = col(Case.id).in_(select(ids.subquery().c.id))
    matched = _materialized(session, whole)
    if matched is not None:
        return Search(found, matched, False)
    if len(found.text) < MIN_SUBSTRING:
        return Search(found, false(), False)
    matched = _materialized(session, fragment_condition(db, found))
    return Search(found, matched if matched is not None else false(), True)


def find(db: Database, text: str, networks: Sequence[str] | None = None, limit: int = 50) -> list[str]:
    """The references of the cases a search finds, in every status, oldest first (at most ``limit``)."""
    with db.read() as session:
        found = search(db, session, text, networks)
        if found is None:
            return []
        rows = session.execute(
            select(col(Case.reference)).where(found.condition).order_by(col(Case.id)).limit(limit)
        ).scalars()
        return [str(r) for r in rows]


def by_status(db: Database, session: Session, condition: ColumnElement[bool],
              others: Sequence[ColumnElement[bool]] = ()) -> dict[str, int]:
    """How many cases match, per status (``others``: further conditions, e.g. the queue's filters
    other than the status)."""
    rows = session.execute(
        select(col(Case.status), func.count()).where(and_(condition, *others)).group_by(col(Case.status))
    ).all()
    return {str(status): int(count) for status, count in rows}
