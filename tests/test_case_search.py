"""recovery/case_search.py on SQLite and PostgreSQL: every status, whole identifiers in their stored
spelling (hex and EVM in any case, Base58 only as typed), senders and recipients of the stored
transfers, parts of hashes and addresses, and the matches a status filter hides."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import base58
import pytest
from sqlalchemy import select
from sqlalchemy import text as sa_text
from sqlmodel import col

from chains.addresses import eip55_checksum, evm_to_tron
from recovery import case_search, queues
from recovery.db import Database
from recovery.models import Case, ObservedTransfer
from recovery.queues import ACTIVE_STATUSES, QueueFilter

NOW = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
EVM_TX = "0x" + "3a" * 16 + "c4" * 16
EVM_DEPOSIT = eip55_checksum("0x" + "ab12" * 10)
EVM_SENDER = eip55_checksum("0x" + "9f0e" * 10)
TRON_TX = "5d" * 32
TRON_DEPOSIT = evm_to_tron(eip55_checksum("0x" + "0123456789" * 4))
TRON_SENDER = evm_to_tron(eip55_checksum("0x" + "fedcba9876" * 4))
SOLANA_SIGNATURE = base58.b58encode(bytes(range(64))).decode()
SOLANA_SENDER = base58.b58encode(bytes(range(100, 132))).decode()
XRPL_TX = "E7" * 32
BTC_DEPOSIT = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq"
REFUND_TX = "0x" + "77" * 32
REFUND_TO = eip55_checksum("0x" + "5eed" * 10)


def _case(case_id: int, status: str, network: str, tx_hash: str, deposit_address: str, user: str,
          **extra: Any) -> Case:
    return Case(id=case_id, reference=f"RC-{case_id:06d}", user_id=user, network=network, asset="USDT",
                tx_hash=tx_hash, deposit_address=deposit_address, status=status, flags=[],
                created_at=NOW - timedelta(days=case_id), updated_at=NOW, claimed_amount=Decimal("10"), **extra)


def _transfer(network: str, tx_hash: str, sender: str, recipient: str, index: int = 0) -> ObservedTransfer:
    return ObservedTransfer(network=network, tx_hash=tx_hash, transfer_index=index, kind="token", sender=sender,
                            recipient=recipient, amount_base_units=Decimal(10))


@pytest.fixture
def db(database: Database) -> Database:
    """Five cases on five chain families, one of them credited and one refunded."""
    with database.write() as session:
        session.add(_case(1, "credited", "ethereum", EVM_TX, EVM_DEPOSIT, "user-0019"))
        session.add(_case(2, "in_review", "tron", TRON_TX, TRON_DEPOSIT, "user-0020"))
        session.add(_case(3, "in_review", "solana", SOLANA_SIGNATURE, SOLANA_SENDER[::-1], "user-0021"))
        session.add(_case(4, "needs_info", "xrpl", XRPL_TX, "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "user-0022"))
        session.add(_case(5, "refunded", "bitcoin", "aa" * 32, BTC_DEPOSIT, "user-0023",
                          refund_tx_hash=REFUND_TX))
        session.flush()
        # a wrong-network deposit: the transfer was found on bsc, the appeal claims ethereum
        session.add(_transfer("bsc", EVM_TX, EVM_SENDER, EVM_DEPOSIT))
        session.add(_transfer("tron", TRON_TX, TRON_SENDER, TRON_DEPOSIT))
        session.add(_transfer("solana", SOLANA_SIGNATURE, SOLANA_SENDER, SOLANA_SENDER[::-1]))
        session.add(_transfer("ethereum", REFUND_TX, EVM_DEPOSIT, REFUND_TO))
    return database


def found(db: Database, text: str) -> list[str]:
    return case_search.find(db, text)


def test_whole_identifiers_in_every_status(db: Database) -> None:
    assert found(db, "RC-000001") == ["RC-000001"]  # credited: a finished status
    assert found(db, "rc-000004") == ["RC-000004"]
    assert found(db, "USER-0023") == ["RC-000005"]
    assert found(db, EVM_TX) == ["RC-000001"]
    assert found(db, f"  {EVM_TX}  ") == ["RC-000001"]  # pasted with spaces
    assert found(db, TRON_TX) == ["RC-000002"]
    assert found(db, SOLANA_SIGNATURE) == ["RC-000003"]
    assert found(db, REFUND_TX) == ["RC-000005"]


def test_hex_hashes_and_evm_addresses_in_any_case(db: Database) -> None:
    assert found(db, EVM_TX.upper().replace("0X", "0x")) == ["RC-000001"]
    assert found(db, EVM_TX[2:]) == ["RC-000001"]  # without its 0x
    assert found(db, XRPL_TX.lower()) == ["RC-000004"]  # stored in upper case
    assert found(db, "0x" + TRON_TX.upper()) == ["RC-000002"]
    assert found(db, EVM_DEPOSIT.lower()) == ["RC-000001", "RC-000005"]  # deposit address; refund's sender
    assert found(db, EVM_DEPOSIT.upper().replace("0X", "0x")) == ["RC-000001", "RC-000005"]
    assert found(db, BTC_DEPOSIT.upper()) == ["RC-000005"]  # bech32: stored in lower case


def test_senders_and_recipients_of_the_stored_transfers(db: Database) -> None:
    # the address the user sent from, found on another network than the one claimed
    assert found(db, EVM_SENDER) == ["RC-000001"]
    assert found(db, EVM_SENDER.lower()) == ["RC-000001"]
    assert found(db, TRON_SENDER) == ["RC-000002"]
    assert found(db, SOLANA_SENDER) == ["RC-000003"]
    # the refund's recipient
    assert found(db, REFUND_TO.lower()) == ["RC-000005"]


def test_base58_is_case_sensitive(db: Database) -> None:
    assert found(db, TRON_SENDER.swapcase()) == []
    assert found(db, TRON_DEPOSIT.swapcase()) == []
    assert found(db, SOLANA_SIGNATURE.swapcase()) == []
    assert found(db, SOLANA_SIGNATURE[10:30]) == ["RC-000003"]  # part of it, as typed
    assert found(db, SOLANA_SIGNATURE[10:30].swapcase()) == []
    assert found(db, TRON_DEPOSIT[5:20]) == ["RC-000002"]


def test_parts_of_hashes_addresses_and_references(db: Database) -> None:
    assert found(db, EVM_TX[20:40].upper()) == ["RC-000001"]
    assert found(db, "00000") == ["RC-000001", "RC-000002", "RC-000003", "RC-000004", "RC-000005"]
    assert found(db, "rc-00000") == ["RC-000001", "RC-000002", "RC-000003", "RC-000004", "RC-000005"]
    assert found(db, "ser-002") == ["RC-000002", "RC-000003", "RC-000004", "RC-000005"]
    assert found(db, "%%%") == [] and found(db, "___") == []  # LIKE wildcards are searched for literally
    assert found(db, "00") == []  # two characters: whole identifiers only
    assert found(db, "   ") == []


def _digest(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()


#: identifiers whose parts are searched: every stored spelling (hex in lower and in upper case,
#: EIP-55 checksums, Base58, bech32) and user ids with LIKE's wildcards and its escape character
MIXED_DEPOSIT = eip55_checksum("0x" + _digest("deposit")[:40])
MIXED_CASES: list[tuple[str, str, str, str, str, str | None]] = [
    # (network, status, tx_hash, deposit_address, user_id, refund_tx_hash)
    ("ethereum", "closed", "0x" + _digest("tx-6"), MIXED_DEPOSIT, "acct_7/b%", None),
    ("xrpl", "credited", _digest("tx-7").upper(), "rEb8TK3gBgk5auZkwc6sHnwrGVJH8DuaLh", "acct-7-b", None),
    ("solana", "refunded", base58.b58encode(bytes.fromhex(_digest("s1") + _digest("s2"))).decode(),
     base58.b58encode(bytes.fromhex(_digest("sol-address"))).decode(), "USER-0030", "0x" + _digest("refund-8")),
    ("bitcoin", "in_review", _digest("tx-9"), "bc1q" + "qpzry9x8gf2tvdw0s3jn54khce6mua7l"[::-1] + "xyz",
     "user-0031", None),
    ("polygon", "needs_info", "0x" + _digest("tx-10"), eip55_checksum("0x" + _digest("other")[:40]), "user-0032",
     None),
]


@pytest.fixture
def mixed(db: Database) -> Database:
    """The five cases and five more whose identifiers mix their stored spellings."""
    with db.write() as session:
        for offset, (network, status, tx_hash, deposit, user, refund) in enumerate(MIXED_CASES):
            session.add(_case(6 + offset, status, network, tx_hash, deposit, user, refund_tx_hash=refund))
    return db


def expected_parts(db: Database, text: str) -> list[str]:
    """The cases holding ``text`` as the module's docstring says, computed here: a fragment of hex
    digits (after an optional 0x) in any case; else references and user ids in any case, hashes and
    addresses as typed."""
    body = text[2:] if text[:2] in ("0x", "0X") else text
    hex_digits = bool(body) and all(c in "0123456789abcdefABCDEF" for c in body)
    with db.read() as session:
        cases = list(session.execute(select(Case).order_by(col(Case.id))).scalars())
    out = []
    for case in cases:
        names = [case.reference or "", case.user_id]
        chain = [case.tx_hash, case.deposit_address, case.refund_tx_hash or ""]
        if any(text.lower() in value.lower() for value in names) or any(
                (text.lower() in value.lower()) if hex_digits else (text in value) for value in chain):
            out.append(str(case.reference))
    return out


def fragments() -> list[str]:
    """Parts of every identifier of the cases (each as stored, in lower, upper and swapped case),
    of 3 and 12 characters, at the start, the middle and the end."""
    values = [EVM_TX, EVM_DEPOSIT, TRON_TX, TRON_DEPOSIT, SOLANA_SIGNATURE, XRPL_TX, BTC_DEPOSIT, REFUND_TX,
              SOLANA_SENDER[::-1]]
    for _network, _status, tx_hash, deposit, user, refund in MIXED_CASES:
        values += [tx_hash, deposit, user] + ([refund] if refund else [])
    texts: list[str] = []
    for value in values:
        for length in (3, 12):
            for start in (0, len(value) // 3, len(value) - length):
                part = value[max(0, start):max(0, start) + length]
                texts += [part, part.lower(), part.upper(), part.swapcase()]
    texts += ["RC-00000", "rc-000009", "t_7/b%", "T_7/B", "_7/", "/b%", "%%%", "___", "7-b", "ser-003"]
    return list(dict.fromkeys(t for t in texts if len(t) >= case_search.MIN_SUBSTRING))


def parts_found(db: Database, text: str, *, without_scans: bool = False) -> list[str]:
    """The cases ``fragment_condition`` finds; ``without_scans``: PostgreSQL may not scan the table
    or an index in order (it looks the text up by its trigrams in ix_cases_fragments)."""
    with db.read() as session:
        if without_scans and db.is_postgresql:
            # (jit off: a plan priced as disabled would be compiled, 300 ms a query)
            for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan", "jit"):
                session.execute(sa_text(f"SET LOCAL {setting} = off"))
        condition = case_search.fragment_condition(db, case_search.terms(text))
        rows = session.execute(select(col(Case.reference)).where(condition).order_by(col(Case.id))).scalars()
        return [str(r) for r in rows]


def test_parts_of_hashes_match_in_every_case_they_can_be_typed(mixed: Database) -> None:
    tx, refund = MIXED_CASES[0][2], MIXED_CASES[2][5]
    assert found(mixed, tx[22:34].upper()) == ["RC-000006"]  # stored in lower case, typed in upper
    assert found(mixed, MIXED_CASES[1][2][30:42].lower()) == ["RC-000007"]  # stored in upper case (XRPL)
    part = MIXED_DEPOSIT[8:20]
    assert part not in (part.lower(), part.upper())  # the checksum mixes the case here
    assert found(mixed, part.lower()) == found(mixed, part.upper()) == found(mixed, part) == ["RC-000006"]
    assert refund is not None and found(mixed, refund[40:52].upper()) == ["RC-000008"]
    signature = MIXED_CASES[2][2]
    assert found(mixed, signature[20:32]) == ["RC-000008"]  # Base58: as typed
    assert found(mixed, signature[20:32].swapcase()) == []
    assert found(mixed, "t_7/b%") == ["RC-000006"]  # LIKE's wildcards and escape character, literally
    assert found(mixed, "t_7/b_") == [] and found(mixed, "t%7") == []


def test_every_part_finds_exactly_the_cases_that_hold_it(mixed: Database) -> None:
    """Every part of every identifier, in every case, against the documented rule; on PostgreSQL once
    more through the trigram index (no scan allowed): an index that lost a match or a spelling, or
    a condition the index cannot answer exactly, fails here."""
    texts = fragments()
    assert len(texts) > 300
    wrong = {}
    for text in texts:
        expected = expected_parts(mixed, text)
        got = parts_found(mixed, text)
        if got != expected:
            wrong[text] = (expected, got)
        if mixed.is_postgresql:
            through_index = parts_found(mixed, text, without_scans=True)
            if through_index != expected:
                wrong["index: " + text] = (expected, through_index)
    assert wrong == {}


def test_a_whole_identifier_wins_over_parts(db: Database) -> None:
    with db.read() as session:
        whole = case_search.search(db, session, EVM_TX)
        part = case_search.search(db, session, EVM_TX[5:25])
    assert whole is not None and not whole.scanning
    assert part is not None and part.scanning


def test_the_matches_the_status_filter_hides(db: Database) -> None:
    filt = QueueFilter(statuses=ACTIVE_STATUSES, text=EVM_TX)
    page = queues.queue_page(db, filt, NOW)
    assert page.total == 0
    hidden = queues.hidden_by_status(db, filt, NOW)
    assert hidden.by_status == {"credited": 1} and hidden.total == 1 and hidden.finished_only
    # the other filters still apply to the hidden count
    assert queues.hidden_by_status(db, QueueFilter(statuses=ACTIVE_STATUSES, networks=("tron",), text=EVM_TX),
                                   NOW).total == 0
    # a part of a user id: open cases shown, the finished one counted
    filt = QueueFilter(statuses=ACTIVE_STATUSES, text="user-002")
    assert {r.reference for r in queues.queue_page(db, filt, NOW).rows} == {"RC-000002", "RC-000003",
                                                                             "RC-000004"}
    assert queues.hidden_by_status(db, filt, NOW).by_status == {"refunded": 1}
    # nothing hidden without a status filter or a search
    assert queues.hidden_by_status(db, QueueFilter(text=EVM_TX), NOW).total == 0
    assert queues.hidden_by_status(db, QueueFilter(statuses=ACTIVE_STATUSES), NOW).total == 0
    # the row says where the funds were found
    with db.write() as session:
        case = session.get(Case, 1)
        assert case is not None
        case.deposit_network = "bsc"
        session.add(case)
    assert queues.queue_page(db, QueueFilter(text=EVM_SENDER), NOW).rows[0].deposit_network == "bsc"


def test_terms_spell_the_text_as_stored() -> None:
    evm = case_search.terms(EVM_DEPOSIT.lower())
    assert EVM_DEPOSIT in evm.chain_forms and evm.hex_fragment
    tron_hex = "41" + EVM_DEPOSIT[2:].lower()
    assert evm_to_tron(EVM_DEPOSIT) in case_search.terms(tron_hex).chain_forms
    tron = case_search.terms(TRON_SENDER)
    assert tron.chain_forms == (TRON_SENDER,) and not tron.hex_fragment


def test_the_case_search_migration_goes_down_and_up_again(database: Database) -> None:
    from sqlalchemy import inspect

    from recovery import migrate

    def indexes(table: str) -> set[str]:
        return {str(index["name"]) for index in inspect(database.engine).get_indexes(table)}

    assert "ix_cases_search" in indexes("cases")
    assert "ix_observed_transfers_sender" in indexes("observed_transfers")
    migrate.downgrade(database, "0011_webhook_outbox")
    assert "ix_cases_search" not in indexes("cases")
    assert "saved_views" not in inspect(database.engine).get_table_names()
    migrate.upgrade(database)
    assert "ix_observed_transfers_sender" in indexes("observed_transfers")
    assert "saved_views" in inspect(database.engine).get_table_names()


def test_parts_are_looked_up_through_an_index(mixed: Database) -> None:
    """On PostgreSQL a part of a hash can be answered by the trigram index of case_fragments alone (no
    scan): the condition is written on the columns themselves, with the pattern as one value. SQLite has no
    trigram index: it scans ix_cases_search alone, never the rows (they carry the decision JSON)."""
    for text in (MIXED_CASES[0][2][22:34].upper(), MIXED_DEPOSIT[8:20].lower(), "t_7/b%"):
        query = select(col(Case.id)).where(case_search.fragment_condition(mixed, case_search.terms(text)))
        sql = str(query.compile(dialect=mixed.engine.dialect, compile_kwargs={"literal_binds": True}))
        with mixed.read() as session:
            if mixed.is_sqlite:
                plan = "\n".join(str(row) for row in session.execute(sa_text("EXPLAIN QUERY PLAN " + sql)))
                assert "COVERING INDEX ix_cases_search" in plan, plan
                continue
            for setting in ("enable_seqscan", "enable_indexscan", "enable_indexonlyscan", "jit"):
                session.execute(sa_text(f"SET LOCAL {setting} = off"))
            plan = "\n".join(str(line) for line in session.execute(sa_text("EXPLAIN " + sql)).scalars())
        assert "Bitmap Index Scan on ix_case_fragments_trgm" in plan, plan
        assert "Seq Scan" not in plan, plan


def _fragments(db: Database) -> dict[int, tuple[Any, ...]]:
    with db.read() as session:
        return {int(r[0]): tuple(r[1:]) for r in session.execute(sa_text(
            "SELECT case_id, reference, user_id, tx_hash, deposit_address, refund_tx_hash FROM case_fragments"))}


def _identifiers(db: Database) -> dict[int, tuple[Any, ...]]:
    with db.read() as session:
        return {int(r[0]): tuple(r[1:]) for r in session.execute(sa_text(
            "SELECT id, reference, user_id, tx_hash, deposit_address, refund_tx_hash FROM cases"))}


def test_the_case_fragments_migrations_go_down_and_up_again(db: Database) -> None:
    """0014 put a trigram index on ``cases``; 0015 moves it onto ``case_fragments``, filled from the
    cases there are, and back down. SQLite has neither."""
    from sqlalchemy import inspect

    from recovery import migrate

    def indexes(table: str) -> set[str]:
        return {str(index["name"]) for index in inspect(db.engine).get_indexes(table)}

    def tables() -> set[str]:
        return set(inspect(db.engine).get_table_names())

    pg = db.is_postgresql
    assert ("case_fragments" in tables()) == pg and "ix_cases_fragments" not in indexes("cases")
    migrate.downgrade(db, "0014_case_search_fragments")
    assert "case_fragments" not in tables() and ("ix_cases_fragments" in indexes("cases")) == pg
    migrate.downgrade(db, "0013_team_read_indexes")
    assert "ix_cases_fragments" not in indexes("cases")
    migrate.upgrade(db)
    assert ("case_fragments" in tables()) == pg and "ix_cases_fragments" not in indexes("cases")
    if pg:
        assert indexes("case_fragments") == {"ix_case_fragments_trgm"}
        assert _fragments(db) == _identifiers(db) and len(_fragments(db)) == 5  # the cases filed before


def test_the_fragments_follow_every_write_of_a_case(database: Database) -> None:
    """PostgreSQL: the copy is kept by triggers whatever writes ``cases`` (the ORM, a bulk insert, SQL
    by hand), in the same transaction; an update that changes none of the five identifiers (a status
    change, a lease stamp) does not touch it. SQLite: the search reads ``cases`` itself."""
    from sqlalchemy import insert, update

    with database.write() as session:
        session.add(_case(1, "submitted", "ethereum", EVM_TX, EVM_DEPOSIT, "user-0019"))
    with database.write() as session:  # a bulk insert, as an import or the benchmarks write
        session.connection().execute(insert(Case), [
            {"id": n, "reference": f"RC-{n:06d}", "user_id": f"user-{n}", "origin": "appeal", "network": "tron",
             "asset": "USDT", "tx_hash": f"{n:02x}" * 32, "deposit_address": TRON_DEPOSIT, "status": "submitted",
             "flags": [], "created_at": NOW, "updated_at": NOW, "version": 1, "check_count": 0} for n in (2, 3)])
    refund = "0x" + "5c" * 32
    with database.write() as session:
        session.execute(update(Case).where(col(Case.id) == 2).values(refund_tx_hash=refund))
    if database.is_sqlite:
        assert found_part(database, refund[10:30]) == ["RC-000002"]
        return
    assert _fragments(database) == _identifiers(database) and len(_identifiers(database)) == 3
    assert _fragments(database)[2][4] == refund

    def row_version() -> str:
        with database.read() as session:
            return str(session.execute(sa_text("SELECT xmin FROM case_fragments WHERE case_id = 3")).scalar_one())

    before = row_version()
    with database.write() as session:  # what the re-check and the leases write
        session.execute(update(Case).where(col(Case.id) == 3).values(status="in_review", version=2, updated_at=NOW,
                                                                     lease_owner="runner-1"))
        session.execute(update(Case).where(col(Case.id) == 3).values(tx_hash=f"{3:02x}" * 32))  # named, unchanged
    assert row_version() == before
    with database.write() as session:  # by hand, in SQL
        session.execute(sa_text("UPDATE cases SET user_id = 'user-renamed', reference = 'RC-777777' WHERE id = 3"))
    with pytest.raises(RuntimeError), database.write() as session:  # a transaction that fails leaves both as they were
        session.execute(sa_text("UPDATE cases SET deposit_address = 'TNotKept' WHERE id = 1"))
        raise RuntimeError("rolled back")
    assert row_version() != before
    assert _fragments(database) == _identifiers(database)
    assert _fragments(database)[3][:2] == ("RC-777777", "user-renamed")
    assert found_part(database, refund[10:30]) == ["RC-000002"] and found_part(database, "r-renam") == ["RC-777777"]
    with database.write() as session:
        session.execute(sa_text("DELETE FROM cases WHERE id = 1"))
    assert sorted(_fragments(database)) == [2, 3]


def found_part(db: Database, text: str) -> list[str]:
    with db.read() as session:
        condition = case_search.fragment_condition(db, case_search.terms(text))
        return [str(r) for r in session.execute(select(col(Case.reference)).where(condition).order_by(col(Case.id)))
                .scalars()]
