"""Proactive detection (``recovery scan``) on the real anvil chains, on SQLite and PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from types import MappingProxyType
from typing import Any

import pytest
import tomli_w
from sqlalchemy import update
from sqlmodel import col, func, select
from typer.testing import CliRunner

from app.api_settings import ApiSettings
from app.cli import app as cli
from chains import devchain
from chains.addresses import evm_to_tron
from chains.devchain import SeedTransfer
from recovery.audit import verify_chain
from recovery.checking import ChainGateway
from recovery.config import Config, Network
from recovery.db import Database
from recovery.errors import ValidationFailed
from recovery.intake import validate_appeal
from recovery.leases import RunnerBusy
from recovery.models import Case, CaseEvent, CreditedDeposit, DepositAddress, ScanCursor, ScanFinding
from recovery.scan import Scanner, ScanOptions, ScanSummary, UnitLeases, plan_units
from recovery.services import SYSTEM, Actor, CaseService
from recovery.settings import REPO_ROOT, get_settings
from recovery.vocabulary import Origin, Role
from tests.api.conftest import SECRET, bearer, make_client
from tests.conftest import Clock, new_database
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.fixtures_replay import FAST, network_at

NETWORKS = ("ethereum", "bsc")
SETTLE = 15  # bsc's confirmations (ethereum needs 12)


def head(testbed: EvmTestbed, network: str) -> int:
    return int(devchain.rpc(testbed.url(network)).call("eth_blockNumber"), 16)


def scan_config(testbed: EvmTestbed, *, suspended: tuple[str, str] | None = None) -> Config:
    """The testbed's EVM networks only, each starting its scan at the current head (so a test
    scans its own blocks, not the whole shared session's), optionally with one asset suspended."""
    base = testbed.config
    networks = {
        name: Network.model_validate({**base.network(name).model_dump(), "scan_start_block": head(testbed, name) + 1})
        for name in NETWORKS
    }
    assets = tuple(
        a.model_copy(update={"deposits_enabled": False}) if (a.network, a.symbol) == suspended else a
        for a in base.assets if a.network in networks
    )
    fees = tuple(f for f in base.fees if f.network in ("*", *networks))
    return dataclasses.replace(base, networks=MappingProxyType(networks), assets=assets, fees=fees)


def write_config(config: Config, folder: Path) -> Path:
    """The configuration as TOML files, for a ``recovery`` child process."""
    def clean(data: dict[str, Any]) -> dict[str, Any]:
        return {k: v for k, v in data.items() if v is not None}

    folder.mkdir(parents=True, exist_ok=True)
    networks = {n.name: clean(n.model_dump(mode="json", exclude={"name"})) for n in config.networks.values()}
    (folder / "networks.toml").write_text(tomli_w.dumps({"networks": networks}))
    (folder / "assets.toml").write_text(tomli_w.dumps({"assets": [clean(a.model_dump(mode="json"))
                                                                  for a in config.assets]}))
    (folder / "fees.toml").write_text(tomli_w.dumps({"fees": [clean(f.model_dump(mode="json"))
                                                              for f in config.fees]}))
    (folder / "policy.toml").write_text(tomli_w.dumps({"policy": clean(config.policy.model_dump(mode="json"))}))
    return folder


def hold(service: CaseService, user: str, networks: tuple[str, ...] = ("ethereum",), kind: str = "eoa") -> str:
    address = fresh_address()
    with service.db.write() as session:
        for network in networks:
            session.add(DepositAddress(user_id=user, network=network, address=address, kind=kind))
    return address


def run_scan(service: CaseService, **options: Any) -> ScanSummary:
    if isinstance(service.clock, Clock):
        service.clock.advance(minutes=5)
    return Scanner(service, ChainGateway(service.config), ScanOptions(**options)).run()


def settle(testbed: EvmTestbed) -> None:
    for network in NETWORKS:
        testbed.mine(network, SETTLE)


def cases_by_tx(db: Database) -> dict[str, list[Case]]:
    with db.read() as session:
        rows = session.exec(select(Case).order_by(col(Case.id))).all()
    found: dict[str, list[Case]] = {}
    for row in rows:
        found.setdefault(row.tx_hash, []).append(row)
    return found


def findings(db: Database) -> list[ScanFinding]:
    with db.read() as session:
        return list(session.exec(select(ScanFinding).order_by(col(ScanFinding.id))).all())


def event_count(db: Database) -> int:
    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(CaseEvent)).one())


@dataclasses.dataclass
class Strays:
    """One stray deposit of each EVM kind (and the transfers that must not become cases)."""

    alice: str
    bob: str
    vault: str
    opened: dict[str, tuple[str, str]]  # tx -> (user, category)
    recorded: dict[str, str]  # tx -> outcome
    credited: str
    spam_token: str


def send_strays(service: CaseService, testbed: EvmTestbed) -> Strays:
    alice = hold(service, "alice")  # issued for ethereum only
    bob = hold(service, "bob", NETWORKS)  # issued for both
    vault = hold(service, "carol", kind="contract")  # a contract: exists on ethereum only
    pepe = testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    fake = testbed.new_token("ethereum", "Tether USD", "USDT", 6, 10**30)
    spam = testbed.new_token("ethereum", "Visit claim-now.example", "CLAIM", 18, 10**30)
    forwarder = testbed.deploy("ethereum", "Forwarder", bob)
    opened = {
        testbed.send_token("bsc", "USDT", alice, 250 * 10**18): ("alice", "wrong_network"),
        testbed.send_token("bsc", "USDT", vault, 75 * 10**18): ("carol", "wrong_network"),
        testbed.send_token("ethereum", pepe, bob, 5000 * 10**18): ("bob", "unlisted_token"),
        testbed.send_native("ethereum", bob, 5 * 10**14): ("bob", "below_minimum"),  # 0.0005 ETH, 1.5 USD
        testbed.send_native("ethereum", bob, 5 * 10**16): ("bob", "uncredited_valid"),
        testbed.send_token("bsc", "USDC", bob, 30 * 10**18): ("bob", "deposit_suspended"),
        devchain.seed_transfers(testbed.url("ethereum"), [SeedTransfer(FUNDER, forwarder, value=2 * 10**16,
                                                                       gas=100_000)])[0]: ("bob", "internal_transfer"),
    }
    recorded = {
        testbed.send_token("ethereum", fake, bob, 900 * 10**6): "counterfeit",
        testbed.send_token("ethereum", spam, alice, 0): "dust",  # address-poisoning style zero transfer
        testbed.send_token("ethereum", "USDT", alice, 300_000): "dust",  # 0.30 USD
        testbed.send_token("ethereum", spam, bob, 10**18): "dust",  # priced by the run's price list
    }
    credited = testbed.send_token("ethereum", "USDT", bob, 120 * 10**6)
    with service.db.write() as session:
        session.add(CreditedDeposit(network="ethereum", tx_hash=credited, user_id="bob", asset="USDT",
                                    amount=Decimal(120)))
    settle(testbed)
    return Strays(alice, bob, vault, opened, recorded, credited, spam)


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> CaseService:
    return CaseService(database, scan_config(evm_testbed, suspended=("bsc", "USDC")), clock)


# ----------------------------------------------------------------------------------------------- finding


def test_every_evm_kind_found_once(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    strays = send_strays(cases, evm_testbed)
    prices = {("ethereum", strays.spam_token): Decimal("0.05")}
    summary = run_scan(cases, prices=prices)

    by_tx = cases_by_tx(cases.db)
    assert set(by_tx) == set(strays.opened)  # nothing else became a case: no counterfeit, dust or credited
    for tx, (user, category) in strays.opened.items():
        [case] = by_tx[tx]
        assert (case.user_id, case.origin, case.category) == (user, "detected", category), tx
        assert case.status == "in_review" and case.decision is not None
    assert summary.opened == len(strays.opened)
    assert summary.categories == Counter(c for _, c in strays.opened.values())
    assert (summary.counterfeit, summary.dust, summary.credited) == (1, 3, 1)
    bsc_usdt = next(c for [c] in by_tx.values() if c.user_id == "alice")
    assert (bsc_usdt.network, bsc_usdt.asset, bsc_usdt.amount, bsc_usdt.recoverable) == (
        "bsc", "USDT", Decimal(250), "yes")
    vault_case = next(c for [c] in by_tx.values() if c.user_id == "carol")
    assert vault_case.recoverable == "no"  # a contract exists only where it was deployed
    events = cases.get(bsc_usdt.reference or "").events
    first = events[0]
    assert (first.action, first.actor, first.details.get("origin")) == ("submit", "system", "detected")

    outcomes = {f.tx_hash: f.outcome for f in findings(cases.db)}
    for tx, outcome in strays.recorded.items():
        assert outcomes[tx] == outcome
    assert strays.credited not in outcomes
    assert all(outcomes[tx] == "opened" for tx in strays.opened)
    counterfeit = next(f for f in findings(cases.db) if f.outcome == "counterfeit")
    assert (counterfeit.category, counterfeit.case_id, counterfeit.user_id) == ("counterfeit_token", None, "bob")

    # a second run finds nothing new: the cursors moved past every block
    before = (event_count(cases.db), len(findings(cases.db)))
    again = run_scan(cases, prices=prices)
    assert (again.found, again.opened, again.blocks) == (0, 0, 0)
    assert again.up_to_date == again.units > 0
    assert (event_count(cases.db), len(findings(cases.db))) == before

    # even re-scanning the same blocks (cursors reset) finds every transfer as already seen
    with cases.db.write() as session:
        session.execute(update(ScanCursor).values(scanned_to=None))
    rescan = run_scan(cases, prices=prices)
    assert (rescan.found, rescan.opened) == (0, 0)
    assert rescan.seen_before == len(strays.opened) + len(strays.recorded)
    assert (event_count(cases.db), len(findings(cases.db))) == before
    assert {tx: len(rows) for tx, rows in cases_by_tx(cases.db).items()} == dict.fromkeys(strays.opened, 1)


def test_user_appeal_after_detection_joins_the_detected_case(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    alice = hold(cases, "alice")
    tx = evm_testbed.send_token("bsc", "USDT", alice, 250 * 10**18)
    settle(evm_testbed)
    run_scan(cases)
    [detected] = cases_by_tx(cases.db)[tx]
    assert (detected.origin, detected.network, detected.category) == ("detected", "bsc", "wrong_network")
    events = event_count(cases.db)

    # alice appeals it as she remembers it (she thinks she sent it on ethereum): she gets the detected case
    draft = validate_appeal(cases.config, {"network": "ethereum", "asset": "USDT", "tx_hash": tx.upper().replace(
        "0X", "0x"), "deposit_address": alice, "amount": "250"}, "alice")
    joined, created = cases.submit(draft, Actor("alice", Role.USER))
    assert (created, joined.reference) == (False, detected.reference)
    # and through the API, on either network: the same case, shown with the same fields as her appeals
    client = make_client(cases, ApiSettings(jwt_secret=SECRET))
    try:
        for network in ("ethereum", "bsc"):
            reply = client.post("/v1/appeals", json={"network": network, "asset": "USDT", "tx_hash": tx,
                                                     "deposit_address": alice}, headers=bearer("alice"))
            assert reply.status_code == 200, reply.text
            assert reply.json()["reference"] == detected.reference
        listed = client.get("/v1/appeals", headers=bearer("alice")).json()
        assert [a["reference"] for a in listed["appeals"]] == [detected.reference]
        view = listed["appeals"][0]
        assert (view["category"], view["found_on_network"], view["status"]) == ("wrong_network", "bsc", "in_review")
        assert view["fee"] is not None and view["reasons"]
        assert client.get("/v1/appeals", headers=bearer("bob")).json()["appeals"] == []
    finally:
        client.close()
    assert len(cases_by_tx(cases.db)[tx]) == 1
    assert event_count(cases.db) == events  # joining writes nothing

    # another user's appeal for the same transfer is their own (contested) case, never the detected one
    other, created = cases.submit(dataclasses.replace(draft, user_id="mallory"), Actor("mallory", Role.USER))
    assert created and other.reference != detected.reference


def test_an_appeal_filed_before_the_scan_is_not_detected_again(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    alice = hold(cases, "alice")
    tx = evm_testbed.send_token("bsc", "USDT", alice, 90 * 10**18)
    settle(evm_testbed)
    draft = validate_appeal(cases.config, {"network": "ethereum", "asset": "USDT", "tx_hash": tx,
                                           "deposit_address": alice}, "alice")
    appeal, _ = cases.submit(draft, Actor("alice", Role.USER))
    summary = run_scan(cases)
    assert (summary.opened, summary.appealed) == (0, 1)
    assert [c.reference for c in cases_by_tx(cases.db)[tx]] == [appeal.reference]
    [finding] = findings(cases.db)
    assert (finding.outcome, finding.case_id) == ("appealed", appeal.id)


def test_a_range_the_node_refuses_is_halved(database: Database, evm_testbed: EvmTestbed, clock: Clock) -> None:
    evm_testbed.mine("ethereum", 800)
    config = scan_config(evm_testbed)
    start = head(evm_testbed, "ethereum") - 700  # anvil's trace_filter takes at most 300 blocks at once
    networks = dict(config.networks, ethereum=Network.model_validate(
        {**config.network("ethereum").model_dump(), "scan_start_block": start}))
    service = CaseService(database, dataclasses.replace(config, networks=MappingProxyType(networks)), clock)
    bob = hold(service, "bob")
    tx = evm_testbed.send_native("ethereum", bob, 3 * 10**16)
    settle(evm_testbed)
    summary = run_scan(service, network="ethereum")
    assert summary.opened == 1 and summary.unavailable == 0
    assert summary.blocks == head(evm_testbed, "ethereum") - 12 + 1 - start + 1
    [case] = cases_by_tx(database)[tx]
    assert (case.user_id, case.category) == ("bob", "uncredited_valid")


SHARED_XRPL = "rsRy14FvipgqudiGmptJBhr1RtpsgfzKMM"  # a recorded 329.1748 XRP payment with tag 1288227521
DUST_XRPL = "rnZmVGX6f4pUYyS4oXYJzoLdRojQV8y297"  # 1-drop payments without a tag, tagged XRP, RLUSD (account_tx page)


def xrpl_only(config: Config) -> Config:
    """The replay configuration with the XRP Ledger as the only network."""
    return dataclasses.replace(
        config, networks=MappingProxyType({"xrpl": config.network("xrpl")}),
        assets=tuple(a for a in config.assets if a.network == "xrpl"),
        fees=tuple(f for f in config.fees if f.network in ("*", "xrpl")))


@pytest.mark.parametrize(("tag", "user", "category"), [
    ("1288227521", "zoe", "uncredited_valid"),
    ("7", f"shared:xrpl:{SHARED_XRPL}", "wrong_memo"),
])
def test_memo_network_on_the_recorded_xrp_ledger(database: Database, replay_config: Config, clock: Clock,
                                                  tag: str, user: str, category: str) -> None:
    config = xrpl_only(replay_config)
    service = CaseService(database, config, clock)
    with database.write() as session:
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo=tag, kind="eoa"))
        session.add(DepositAddress(user_id="ada", network="xrpl", address=DUST_XRPL, memo="5", kind="eoa"))
    summary = run_scan(service)
    # every payment the ledger history shows reaching the two addresses is handled exactly once
    adapter = ChainGateway(config).adapter("xrpl")
    arrived = [o for address in (SHARED_XRPL, DUST_XRPL) for o in adapter.incoming(address, 0)]
    keys = Counter((f.network, f.tx_hash, f.transfer_index) for f in findings(database))
    assert set(keys.values()) == {1} and {tx for _, tx, _ in keys} == {o.tx_hash for o in arrived}
    assert summary.scanned == 2 and summary.found == len(keys)
    by_tx = cases_by_tx(database)
    [shared] = adapter.incoming(SHARED_XRPL, 0)
    [case] = by_tx[shared.tx_hash]
    assert (case.user_id, case.category, case.network, case.memo, case.amount) == (
        user, category, "xrpl", "1288227521", Decimal("329.1748"))
    assert case.origin == "detected"
    # the recorded 1-drop payments without a tag are dust, held for the shared address, not cases
    dust = {f.tx_hash[:8]: f for f in findings(database) if f.outcome == "dust"}
    for known in ("66B94DCE", "00778C36"):
        assert (dust[known].category, dust[known].user_id, dust[known].amount) == (
            "missing_memo", f"shared:xrpl:{DUST_XRPL}", Decimal("0.000001"))
        assert not [c for tx, rows in by_tx.items() if tx.startswith(known) for c in rows]
    # held for the address: a payment with someone else's tag (1234; ada holds 5), one without a tag,
    # and an RLUSD issued-currency payment (not listed)
    opened = {tx[:8]: rows for tx, rows in by_tx.items()}
    held = f"shared:xrpl:{DUST_XRPL}"
    assert [(c.category, c.user_id, c.memo, c.amount) for c in opened["3A7BBEC9"]] == [
        ("wrong_memo", held, "1234", Decimal("1"))]
    assert [(c.category, c.user_id, c.amount) for c in opened["0CC023DA"]] == [("missing_memo", held, Decimal("15"))]
    assert [(c.category, c.user_id) for c in opened["6CFABA22"]] == [("unlisted_token", held)]
    if user == "zoe":  # her appeal (the tag is hers) joins the detected case
        draft = validate_appeal(config, {"network": "xrpl", "asset": "XRP", "tx_hash": case.tx_hash,
                                         "deposit_address": SHARED_XRPL, "memo": tag}, "zoe")
        joined, created = service.submit(draft, Actor("zoe", Role.USER))
        assert (joined.reference, created) == (case.reference, False)
    assert run_scan(service).found == 0


def test_the_tron_twin_is_scanned_and_an_outage_keeps_its_place(
    database: Database, evm_testbed: EvmTestbed, replay_config: Config, clock: Clock
) -> None:
    # the recordings hold no TRON account history: the replay answers 501, as a failing provider would
    base = scan_config(evm_testbed)
    tron = network_at(replay_config.network("tron"), replay_config.network("tron").rpc_urls, **FAST)
    config = dataclasses.replace(
        base, networks=MappingProxyType({**base.networks, "tron": tron}),
        assets=base.assets + tuple(a for a in replay_config.assets if a.network == "tron"))
    service = CaseService(database, config, clock)
    alice = hold(service, "alice")
    tx = evm_testbed.send_token("bsc", "USDT", alice, 250 * 10**18)
    settle(evm_testbed)
    summary = run_scan(service)
    assert (summary.units, summary.scanned, summary.unavailable) == (3, 2, 1)
    assert summary.unavailable_networks == Counter({"tron": 1})
    [twin] = [c for c in cursors(database) if c.network == "tron"]
    assert twin.address == evm_to_tron(alice) and twin.scanned_to is None
    assert twin.last_error and "unavailable" in twin.last_error
    assert [c.user_id for c in cases_by_tx(database)[tx]] == ["alice"]  # the other networks went on
    again = run_scan(service)
    assert (again.unavailable, again.up_to_date) == (1, 2)  # tried again, still from its first block


# ----------------------------------------------------------------------------------------------- restarts


def many_strays(service: CaseService, testbed: EvmTestbed, users: int) -> dict[str, str]:
    """Per user an address issued for ethereum with a wrong-network USDT on bsc and an uncredited
    ETH deposit on ethereum; returns tx -> user."""
    owners: dict[str, str] = {}
    usdt = testbed.tokens["bsc"]["USDT"]
    for i in range(users):
        name = f"user{i:02d}"
        address = hold(service, name)
        [wrong] = devchain.seed_transfers(testbed.url("bsc"), [SeedTransfer(FUNDER, address, token=usdt,
                                                                            amount=(20 + i) * 10**18)])
        [valid] = devchain.seed_transfers(testbed.url("ethereum"), [SeedTransfer(FUNDER, address,
                                                                                 value=10**16 + i)])
        owners[wrong] = owners[valid] = name
    settle(testbed)
    return owners


def assert_each_found_once(service: CaseService, owners: dict[str, str]) -> None:
    by_tx = cases_by_tx(service.db)
    assert set(by_tx) == set(owners)
    for tx, user in owners.items():
        [case] = by_tx[tx]
        assert (case.user_id, case.origin) == (user, "detected")
        assert case.status == "in_review", case.reference
    keys = Counter((f.network, f.tx_hash, f.kind, f.transfer_index) for f in findings(service.db))
    assert set(keys.values()) == {1} and {tx for _, tx, _, _ in keys} == set(owners)


def cursors(db: Database) -> list[ScanCursor]:
    with db.read() as session:
        return list(session.exec(select(ScanCursor).order_by(col(ScanCursor.id))).all())


def test_limit_then_the_next_run_continues(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    owners = many_strays(cases, evm_testbed, 5)
    first = run_scan(cases, limit=3, chunk_blocks=3, workers=2, batch_size=2)
    assert first.units == 3 and first.scanned == 3
    done = [c for c in cursors(cases.db) if c.scanned_to is not None]
    assert len(done) == 3 and len(cursors(cases.db)) == 10  # 5 addresses x 2 networks
    assert 0 < len(cases_by_tx(cases.db)) < len(owners)
    second = run_scan(cases, chunk_blocks=3)
    assert second.up_to_date == 3 and second.scanned == 7
    assert first.opened + second.opened == len(owners)
    assert_each_found_once(cases, owners)
    assert all(c.lease_owner is None for c in cursors(cases.db))


def test_a_case_opened_by_a_scanner_stopped_before_its_findings_is_finished(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    owners = many_strays(cases, evm_testbed, 2)
    run_scan(cases)
    # what a scanner killed between opening cases and saving its chunk leaves: cases, no findings,
    # cursors where they were; one case not decided yet
    with cases.db.write() as session:
        session.execute(update(ScanCursor).values(scanned_to=None))
        for finding in session.exec(select(ScanFinding)).all():
            session.delete(finding)
        session.execute(update(Case).where(col(Case.id) == 1).values(status="submitted", decision=None,
                                                                        category=None))
    summary = run_scan(cases)
    assert (summary.opened, summary.resumed) == (0, len(owners))
    assert_each_found_once(cases, owners)


def scan_process(database: Database, config_dir: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {**os.environ, "RECOVERY_DATABASE_URL": database.engine.url.render_as_string(hide_password=False),
           "RECOVERY_CONFIG_DIR": str(config_dir)}
    return subprocess.Popen([sys.executable, "-m", "app.cli", "scan", "--json", *args], cwd=REPO_ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)


def test_killed_mid_run_the_next_run_leaves_no_gap_and_no_duplicate(
    cases: CaseService, evm_testbed: EvmTestbed, tmp_path: Path
) -> None:
    owners = many_strays(cases, evm_testbed, 6)
    config_dir = write_config(cases.config, tmp_path / "config")
    child = scan_process(cases.db, config_dir, "--chunk-blocks", "1", "--workers", "1", "--batch-size", "1")
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and child.poll() is None:
            if findings(cases.db):  # some work saved, most not yet
                break
            time.sleep(0.02)
        assert child.poll() is None, child.communicate()[1].decode()[-2000:]
        child.send_signal(signal.SIGKILL)
        assert child.wait(timeout=30) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    partial = len(cases_by_tx(cases.db))
    assert 0 < partial < len(owners)
    # the next run (here with big chunks) takes over the killed scanner's leases and finishes
    summary = run_scan(cases)
    assert summary.opened + summary.resumed + partial >= len(owners)
    assert_each_found_once(cases, owners)
    safe = {n: head(evm_testbed, n) - cases.config.network(n).confirmations + 1 for n in NETWORKS}
    assert {(c.network, c.scanned_to) for c in cursors(cases.db)} == set(safe.items())


# ----------------------------------------------------------------------------------------------- sharing


@pytest.fixture
def pg_cases(request: pytest.FixtureRequest, tmp_path: Path, evm_testbed: EvmTestbed, clock: Clock
             ) -> Iterator[CaseService]:
    for db in new_database("postgresql", request, tmp_path):
        yield CaseService(db, scan_config(evm_testbed), clock)


@pytest.fixture
def sqlite_cases(request: pytest.FixtureRequest, tmp_path: Path, evm_testbed: EvmTestbed, clock: Clock
                 ) -> Iterator[CaseService]:
    for db in new_database("sqlite", request, tmp_path):
        yield CaseService(db, scan_config(evm_testbed), clock)


def test_two_scanners_share_the_addresses_on_postgresql(pg_cases: CaseService, evm_testbed: EvmTestbed) -> None:
    owners = many_strays(pg_cases, evm_testbed, 6)
    results: list[ScanSummary] = []
    errors: list[BaseException] = []

    def one() -> None:
        try:
            results.append(Scanner(pg_cases, ChainGateway(pg_cases.config),
                                   ScanOptions(chunk_blocks=2, workers=2, batch_size=1)).run())
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=one) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not errors and len(results) == 2
    assert sum(r.opened + r.resumed for r in results) == len(owners)
    assert sum(r.scanned for r in results) == 12  # each (network, address) scanned by one of them
    assert_each_found_once(pg_cases, owners)


def test_one_scanner_at_a_time_on_sqlite(sqlite_cases: CaseService, evm_testbed: EvmTestbed) -> None:
    other = UnitLeases(sqlite_cases.db, "scan:other", lease_seconds=60, clock=sqlite_cases.clock)
    with other, pytest.raises(RunnerBusy, match="another scan is already running"):
        run_scan(sqlite_cases)
    run_scan(sqlite_cases)  # free again once the other one stopped


# ----------------------------------------------------------------------------------------------- planning


def test_every_network_of_the_family_and_the_tron_twin(default_config: Config) -> None:
    key, contract = fresh_address(), fresh_address()
    rows = [("ethereum", key, "eoa"), ("bsc", key, "eoa"), ("ethereum", contract, "contract")]
    evm = {n.name for n in default_config.networks_of_family("evm")}
    units, unsupported = plan_units(default_config, rows, families=frozenset({"evm"}))
    assert units == {(n, a) for n in evm for a in (key, contract)}
    assert unsupported == Counter({"tron": 1})  # the EOA's twin only: a contract has no key elsewhere
    with_tron, none = plan_units(default_config, rows, families=frozenset({"evm", "tron"}))
    assert with_tron - units == {("tron", evm_to_tron(key))} and not none
    only_bsc, _ = plan_units(default_config, rows, "bsc", families=frozenset({"evm"}))
    assert only_bsc == {("bsc", key), ("bsc", contract)}


def test_cli_scans_and_reports_json(tmp_path: Path, cases: CaseService, evm_testbed: EvmTestbed,
                                    monkeypatch: pytest.MonkeyPatch) -> None:
    alice = hold(cases, "alice")
    tx = evm_testbed.send_token("bsc", "USDT", alice, 250 * 10**18)
    spam = evm_testbed.new_token("ethereum", "Airdrop", "AIR", 18, 10**30)
    evm_testbed.send_token("ethereum", spam, alice, 10**20)  # 100 AIR at 0.001 USD: dust
    settle(evm_testbed)
    prices = tmp_path / "prices.csv"
    prices.write_text(f"network,asset,price_usd\nethereum,{spam},0.001\n")
    bad_prices = tmp_path / "bad.csv"
    bad_prices.write_text("network,asset,price_usd\nethereum,AIR,cheap\ndogechain,DOGE,1\n")
    monkeypatch.setenv("RECOVERY_DATABASE_URL", cases.db.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(write_config(cases.config, tmp_path / "config")))
    get_settings.cache_clear()
    try:
        refused = CliRunner().invoke(cli, ["scan", "--network", "dogechain"])
        assert refused.exit_code == 2 and "--network: unknown network 'dogechain'" in refused.output
        only_eth = CliRunner().invoke(cli, ["scan", "--json", "--network", "ethereum", "--prices", str(prices)])
        assert only_eth.exit_code == 0, only_eth.output
        assert json.loads(only_eth.stdout)["dust"] == 1 and not cases_by_tx(cases.db)
        refused = CliRunner().invoke(cli, ["scan", "--prices", str(bad_prices)])
        assert refused.exit_code == 2
        assert "line 2: price_usd" in refused.output and "line 3: network" in refused.output
        result = CliRunner().invoke(cli, ["scan", "--json", "--chunk-blocks", "4", "--prices", str(prices)])
        assert result.exit_code == 0, result.output
        report = json.loads(result.stdout)
    finally:
        get_settings.cache_clear()
    assert (report["opened"], report["dust"], report["categories"], report["options"]["chunk_blocks"]) == (
        1, 0, {"wrong_network": 1}, 4)
    assert report["opened_cases"] == [cases_by_tx(cases.db)[tx][0].reference]


def test_an_appeal_for_an_unmatched_memo_claims_the_shared_address_case(
    database: Database, replay_config: Config
) -> None:
    clock = Clock(datetime(2025, 9, 1, tzinfo=UTC))  # a week after the recorded payment: not expired
    config = xrpl_only(replay_config)
    service = CaseService(database, config, clock)
    with database.write() as session:  # the recorded payment's tag 1288227521 is nobody's
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
        session.add(DepositAddress(user_id="ada", network="xrpl", address=SHARED_XRPL, memo="5", kind="eoa"))
    run_scan(service)
    [shared] = [c for rows in cases_by_tx(database).values() for c in rows]
    placeholder = f"shared:xrpl:{SHARED_XRPL}"
    assert (shared.user_id, shared.category, shared.credited_user_id) == (placeholder, "wrong_memo", placeholder)

    def body(memo: str | None) -> dict[str, Any]:
        return {"network": "xrpl", "asset": "XRP", "tx_hash": shared.tx_hash.lower(), "deposit_address": SHARED_XRPL,
                "amount": "329.1748", **({"memo": memo} if memo else {})}

    client = make_client(service, ApiSettings(jwt_secret=SECRET, rate_limit=1))
    try:
        # someone who holds no memo at that address files an appeal of their own (both contested)
        mallory = client.post("/v1/appeals", json=body(None), headers=bearer("mallory"))
        assert mallory.status_code == 201 and mallory.json()["reference"] != shared.reference
        # zoe (a memo of hers at that address: she sent with a wrong tag) claims the held case
        zoe = client.post("/v1/appeals", json=body("7"), headers=bearer("zoe"))
        assert zoe.status_code == 200, zoe.text
        view = zoe.json()
        assert (view["reference"], view["origin"], view["claimed_amount"]) == (shared.reference, "detected",
                                                                               "329.1748")
        events = [(e["event"], e["message"]) for e in view["timeline"]]
        assert events[0][0] == "detected" and "shared deposit address without a memo" in events[0][1]
        assert ("submitted", "Appeal received and linked to the case we opened for this deposit; the appeal team "
                "will confirm that you sent it before crediting it to your account.") in events
        assert events[-1][0] == "checked"  # checked again for her
        assert "shared:" not in zoe.text and "mallory" not in zoe.text
        listed = client.get("/v1/appeals", headers=bearer("zoe")).json()
        assert [a["reference"] for a in listed["appeals"]] == [shared.reference]
        before = event_count(database)
        again = client.post("/v1/appeals", json=body("7"), headers=bearer("zoe"))
        assert (again.status_code, again.json()["reference"]) == (200, shared.reference)
        assert event_count(database) == before  # idempotent: nothing more written
        # the case is zoe's now: ada (another memo at the address) files her own, contested appeal
        ada = client.post("/v1/appeals", json=body("5"), headers=bearer("ada"))
        assert ada.status_code == 201 and ada.json()["reference"] != shared.reference
    finally:
        client.close()

    view_ = service.get(shared.reference or "")
    case = view_.case
    assert (case.user_id, case.origin, case.credited_user_id, case.category) == ("zoe", "detected", "zoe",
                                                                                "wrong_memo")
    assert "contested" in case.flags
    [claim] = [e for e in view_.events if e.action == "claim"]
    assert (claim.actor, claim.actor_role, claim.from_status, claim.to_status) == ("zoe", "user", "in_review",
                                                                                    "in_review")
    assert (claim.details["previous_user_id"], claim.details["user_id"], claim.details["memo"]) == (
        placeholder, "zoe", "7")
    assert view_.case.decision is not None and view_.case.decision["credited_user_id"] == "zoe"
    assert {c.user_id for rows in cases_by_tx(database).values() for c in rows} == {"zoe", "mallory", "ada"}
    with database.read() as session:
        assert verify_chain(session).ok
    assert run_scan(service).found == 0


def test_the_system_never_claims_and_a_finished_shared_case_is_not_claimed(
    database: Database, replay_config: Config, clock: Clock
) -> None:
    config = xrpl_only(replay_config)
    service = CaseService(database, config, clock)
    with database.write() as session:
        session.add(DepositAddress(user_id="zoe", network="xrpl", address=SHARED_XRPL, memo="7", kind="eoa"))
    run_scan(service)
    [shared] = [c for rows in cases_by_tx(database).values() for c in rows]
    draft = validate_appeal(config, {"network": "xrpl", "asset": "XRP", "tx_hash": shared.tx_hash,
                                     "deposit_address": SHARED_XRPL, "memo": "7"}, "zoe")
    # the scan opening a case for zoe for the same transaction (another transfer of it) does not claim
    mine, created = service.submit(draft, SYSTEM, origin=Origin.DETECTED)
    assert created and mine.reference != shared.reference
    assert service.get(shared.reference or "").case.user_id.startswith("shared:")
    # nobody but the system opens cases under the placeholder
    with pytest.raises(ValidationFailed, match="user_id"):
        service.submit(dataclasses.replace(draft, user_id=shared.user_id), Actor("ops", Role.SPECIALIST))
    # a shared case the team already rejected is not claimed: the appeal is a case of its own
    other = dataclasses.replace(draft, user_id="ada")
    with database.write() as session:
        session.add(DepositAddress(user_id="ada", network="xrpl", address=SHARED_XRPL, memo="5", kind="eoa"))
    held = service.get(shared.reference or "").case
    service.reject(shared.reference or "", "ownership_not_proven", Actor("ops", Role.SPECIALIST),
                   expected_version=held.version)
    ada, created = service.submit(other, Actor("ada", Role.USER))
    assert created and ada.reference != shared.reference
    assert service.get(shared.reference or "").case.user_id == shared.user_id


def test_an_exchange_wallet_is_not_scanned_and_owns_nothing(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    """A hot wallet (kind wallet, no user) gets no cursor and no detected case: a stray there waits for an
    appeal with ownership proof (unattributed_deposit)."""
    alice = hold(cases, "alice")
    wallet = hold(cases, "", kind="wallet")
    to_wallet = evm_testbed.send_token("ethereum", "USDT", wallet, 40 * 10**6)
    to_alice = evm_testbed.send_token("ethereum", "USDT", alice, 40 * 10**6)
    settle(evm_testbed)
    summary = run_scan(cases)
    assert {c.address for c in cursors(cases.db)} == {alice}
    found = cases_by_tx(cases.db)
    assert to_wallet not in found and [c.user_id for c in found[to_alice]] == ["alice"]
    assert summary.opened == 1 and all(f.tx_hash != to_wallet for f in findings(cases.db))
