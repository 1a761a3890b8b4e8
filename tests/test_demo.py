"""`recovery demo --no-serve`: the whole product end to end on real local chains, as a newcomer runs it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from recovery.audit import verify_chain
from recovery.audit_keys import load_keyring
from recovery.db import connect
from recovery.vocabulary import CaseStatus, Category
from tests.support.demo import demo_copy, run_demo

#: categories that only memo networks produce (served from the recorded responses)
MEMO_CATEGORIES = {Category.MISSING_MEMO, Category.WRONG_MEMO}


@pytest.fixture(scope="module")
def demo_summary(demo_run: dict[str, Any], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    return demo_copy(demo_run, tmp_path_factory.mktemp("demo-status"))


def test_every_status_is_present(demo_summary: dict[str, Any]) -> None:
    assert set(demo_summary["statuses"]) == {s.value for s in CaseStatus}


def test_every_evm_category_is_present(demo_summary: dict[str, Any]) -> None:
    evm_categories = {c.value for c in Category} - {c.value for c in MEMO_CATEGORIES}
    assert evm_categories <= set(demo_summary["categories"])


def test_memo_categories_come_from_the_recorded_transactions(
    demo_summary: dict[str, Any], fixtures_dir: Path
) -> None:
    assert {c.value for c in MEMO_CATEGORIES} <= set(demo_summary["categories"])


def test_audit_chain_verifies(demo_summary: dict[str, Any]) -> None:
    assert demo_summary["audit_chain_verified"] is True
    db = connect(demo_summary["database_url"])
    # the demo signs with its own key, kept beside its data
    root = Path(demo_summary["database_url"].removeprefix("sqlite:///")).parent
    ring = load_keyring(root, str(root / "audit-key.json"), create=False)
    with db.read() as session:
        result = verify_chain(session, ring=ring)
        assert not verify_chain(session).ok  # not with another key (the test session's)
    db.dispose()
    assert result.ok and result.events_checked == demo_summary["events"] > demo_summary["cases"]


def test_chains_are_stopped_after_no_serve(demo_summary: dict[str, Any]) -> None:
    import requests

    for url in demo_summary["chains"].values():
        with pytest.raises(requests.ConnectionError):
            requests.post(url, json={"jsonrpc": "2.0", "id": 1, "method": "eth_chainId"}, timeout=2)


def test_refuses_a_folder_it_did_not_create(tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    precious.mkdir()
    (precious / "keep.txt").write_text("mine")
    done = run_demo(precious, "--appeals", "20")
    assert done.returncode == 1
    assert "not created by the demo" in done.stderr
    assert (precious / "keep.txt").read_text() == "mine"
