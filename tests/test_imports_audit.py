"""Imports change who owns which address and what counts as credited: each one is an audit event
(file digest, rows, who) written with the rows; a refused import leaves neither."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from sqlmodel import select

from recovery.audit import verify_chain
from recovery.imports import ImportFailed, import_addresses, import_credits
from recovery.models import CaseEvent
from recovery.services import CaseService

ADDRESS = "0x" + "ab" * 20
TX = "0x" + "cd" * 32


def events(service: CaseService) -> list[CaseEvent]:
    with service.db.read() as session:
        return list(session.exec(select(CaseEvent).where(CaseEvent.case_id == None)).all())  # noqa: E711


def test_an_address_import_is_audited_with_its_digest(service: CaseService, tmp_path: Path) -> None:
    path = tmp_path / "addresses.csv"
    path.write_text(f"user_id,network,address,memo,kind\nalice,ethereum,{ADDRESS},,eoa\n")
    import_addresses(service.db, service.config, path, actor="ada", actor_role="admin")
    [event] = events(service)
    assert (event.actor, event.action) == ("ada", "addresses_imported")
    assert event.details == {"file": "addresses.csv", "sha256": hashlib.sha256(path.read_bytes()).hexdigest(),
                             "rows": 1, "inserted": 1, "unchanged": 0}
    with service.db.read() as session:
        assert verify_chain(session).ok


def test_a_refused_import_leaves_no_event(service: CaseService, tmp_path: Path) -> None:
    good = tmp_path / "credits.csv"
    good.write_text(f"network,tx_hash,user_id,asset,amount\nethereum,{TX},alice,USDT,10\n")
    import_credits(service.db, service.config, good, actor="ada")
    bad = tmp_path / "contradicting.csv"
    bad.write_text(f"network,tx_hash,user_id,asset,amount\nethereum,{TX},alice,USDT,11\n")
    with pytest.raises(ImportFailed, match="amount"):
        import_credits(service.db, service.config, bad, actor="ada")
    assert [e.action for e in events(service)] == ["credits_imported"]
