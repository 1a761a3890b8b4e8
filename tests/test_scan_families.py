"""``recovery scan`` on the recorded TRON, Bitcoin and Stellar histories (the XRP Ledger's is in
test_scan.py): each family's ``incoming`` opens cases for what reached an address we hold, and a
history the recordings do not cover leaves the address unavailable (its place kept), never scanned
as empty.
"""

from __future__ import annotations

import dataclasses
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest

from chains.replay import bitcoin as bitcoin_replay
from chains.replay import tron as tron_replay
from recovery.config import Config
from recovery.db import Database
from recovery.models import DepositAddress
from recovery.services import CaseService
from tests.conftest import Clock
from tests.fixtures_replay import FAST, network_at
from tests.test_scan import cases_by_tx, cursors, findings, run_scan

#: the account of the recorded TronGrid page of TRC-10 transfers (its whole history up to meta.at)
TRC10_ACCOUNT = "TFFriedwRtWdFuzerDDtkoQTZ29smDZ1MB"
#: a testnet address paid 1 BTC in a recorded Esplora transaction (block 2131550)
BTC_ADDRESS = "2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE"
BTC_TX = "19c6cd6b7b8a91e1a63d759eedd2818877a624771d38e00c3ffcedfdd09afc50"
#: the account of the recorded Horizon payments page (older history exists that nobody recorded)
XLM_ACCOUNT = "GDKIJJIKXLOM2NRMPNQZUUYK24ZPVFC6426GZAEP3KUK6KEJLACCWNMX"


def only(config: Config, name: str, **extra: Any) -> Config:
    """The replay configuration with one network (given extra keys), its assets and fees."""
    base = config.network(name)
    network = network_at(base, base.rpc_urls, **{**FAST, **extra})
    return dataclasses.replace(
        config, networks=MappingProxyType({name: network}),
        assets=tuple(a for a in config.assets if a.network == name),
        fees=tuple(f for f in config.fees if f.network in ("*", name)))


def held(service: CaseService, user: str, network: str, address: str, memo: str = "") -> None:
    with service.db.write() as session:
        session.add(DepositAddress(user_id=user, network=network, address=address, memo=memo, kind="eoa"))


def test_tron_trc10_deposits_from_the_recorded_account_pages(
    database: Database, replay_config: Config, clock: Clock, fixtures_dir: Path
) -> None:
    page = next(p for p in tron_replay.build_handler(fixtures_dir).account_pages
                if p.data["meta"].get("fingerprint") is None)  # the whole history of TFFriedw… up to meta.at
    recorded_at = int(page.data["meta"]["at"]) // 1000
    head = tron_replay.build_handler(fixtures_dir).head
    assert head is not None
    # the scan stops where the recording stops (scan_lag_seconds), and the TRC-20 index was not
    # recorded: the operator opts out of it explicitly (trc20_history = false)
    config = only(replay_config, "tron", trc20_history=False, scan_start_block=1586000000,
                  scan_lag_seconds=head[1] // 1000 - recorded_at + 60)
    service = CaseService(database, config, clock)
    held(service, "tia", "tron", TRC10_ACCOUNT)
    summary = run_scan(service)
    assert (summary.scanned, summary.unavailable) == (1, 0)
    by_tx = {tx[:8]: rows for tx, rows in cases_by_tx(database).items()}
    opened = {key: [(c.user_id, c.category, c.asset) for c in rows] for key, rows in by_tx.items()}
    # f6804d16…: 2980411 units of TRC-10 asset 1002000 (not listed: a refund case for the owner)
    assert opened["f6804d16"] == [("tia", "unlisted_token", "1002000")]
    assert {f.kind for f in findings(database)} == {"trc10"}
    assert run_scan(service).found == 0  # the cursor moved: nothing is found twice


def test_tron_without_the_trc20_index_is_unavailable_not_empty(
    database: Database, replay_config: Config, clock: Clock
) -> None:
    service = CaseService(database, only(replay_config, "tron", scan_start_block=1586000000), clock)
    held(service, "tia", "tron", TRC10_ACCOUNT)
    summary = run_scan(service)
    assert (summary.scanned, summary.unavailable) == (0, 1)
    [cursor] = cursors(database)
    assert cursor.scanned_to is None and cursor.last_error  # tried again from the same place next run


def test_bitcoin_deposit_found_in_the_recorded_address_history(
    database: Database, replay_config: Config, clock: Clock, fixtures_dir: Path
) -> None:
    tip = bitcoin_replay.build_handler(fixtures_dir).tip
    assert tip is not None
    service = CaseService(database, only(replay_config, "bitcoin", testnet=True), clock)
    held(service, "bea", "bitcoin", BTC_ADDRESS)
    summary = run_scan(service)
    assert (summary.scanned, summary.unavailable) == (1, 0)
    [case] = cases_by_tx(database)[BTC_TX]
    assert (case.user_id, case.category, case.origin) == ("bea", "uncredited_valid", "detected")
    assert case.amount == Decimal(1)
    [cursor] = cursors(database)
    assert cursor.scanned_to == tip - 1  # two confirmations required: the tip itself waits


def test_blockbook_history_listing_unrecorded_transactions_is_unavailable(
    database: Database, replay_config: Config, clock: Clock, fixtures_dir: Path
) -> None:
    [page] = bitcoin_replay.build_handler(fixtures_dir).blockbook_addresses.values()
    service = CaseService(database, only(replay_config, "bitcoin", api="blockbook"), clock)
    held(service, "ben", "bitcoin", page.data["address"])
    summary = run_scan(service)
    assert (summary.scanned, summary.unavailable, summary.found) == (0, 1, 0)


def test_stellar_history_beyond_the_recording_is_unavailable_not_empty(
    database: Database, replay_config: Config, clock: Clock
) -> None:
    service = CaseService(database, only(replay_config, "stellar"), clock)
    held(service, "sol", "stellar", XLM_ACCOUNT, memo="42")
    summary = run_scan(service)
    assert (summary.scanned, summary.unavailable, summary.found) == (0, 1, 0)
    [cursor] = cursors(database)
    assert cursor.scanned_to is None


@pytest.fixture(autouse=True)
def _clear_faults(replay_faults: object) -> None:
    """Each test starts with the replay server answering normally."""
