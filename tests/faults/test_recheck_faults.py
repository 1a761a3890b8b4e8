"""A re-check of 1,000 cases through nodes that fail 30% of the time: every case ends correctly
decided or still pending. No real transfer is called "not found", none is lost or duplicated."""

from __future__ import annotations

import dataclasses
import secrets
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlmodel import col, func, select

from chains import devchain
from recovery.audit import verify_chain
from recovery.checking import ChainGateway
from recovery.config import Config
from recovery.db import Database
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.recheck import Recheck, RecheckOptions, RecheckSummary
from recovery.services import CaseService
from tests.conftest import Clock, new_database
from tests.faults.test_adapter_faults import network_behind
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address
from tests.support.faultproxy import FaultProxy, fault_proxy

REAL = 900
MISSING = 100


@pytest.fixture
def proxies(evm_testbed: EvmTestbed) -> Iterator[dict[str, FaultProxy]]:
    with fault_proxy(evm_testbed.url("ethereum"), rate=0.3, seed=11, delay_seconds=0.8) as eth, \
            fault_proxy(evm_testbed.url("bsc"), rate=0.3, seed=12, delay_seconds=0.8) as bsc:
        yield {"ethereum": eth, "bsc": bsc}


def faulty_config(config: Config, proxies: dict[str, FaultProxy]) -> Config:
    networks = dict(config.networks)
    for name, proxy in proxies.items():
        networks[name] = network_behind(config.network(name), proxy.url)
    return dataclasses.replace(config, networks=networks)


@pytest.fixture
def sqlite_db(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Database]:
    """One backend is enough here: the leasing on PostgreSQL has its own tests."""
    yield from new_database("sqlite", request, tmp_path)


def test_thousand_cases_under_thirty_percent_faults(
    sqlite_db: Database, evm_testbed: EvmTestbed, clock: Clock, proxies: dict[str, FaultProxy]
) -> None:
    database = sqlite_db
    url = evm_testbed.url("ethereum")
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    addresses = [fresh_address() for _ in range(REAL)]
    hashes = devchain.seed_transfers(
        url, [devchain.SeedTransfer(FUNDER, a, token=usdt, amount=(10 + i) * 10**6) for i, a in enumerate(addresses)]
    )
    evm_testbed.mine("ethereum", 12)
    missing = ["0x" + secrets.token_hex(32) for _ in range(MISSING)]
    with database.write() as session:
        for i, (address, tx) in enumerate(zip(addresses, hashes, strict=True)):
            session.add(DepositAddress(user_id=f"u{i}", network="ethereum", address=address, kind="eoa"))
            session.add(Case(user_id=f"u{i}", network="ethereum", asset="USDT", tx_hash=tx, deposit_address=address,
                             status="submitted", flags=[], reference=f"RC-R{i:06d}"))
        for j, tx in enumerate(missing):
            session.add(Case(user_id=f"m{j}", network="ethereum", asset="USDT", tx_hash=tx,
                             deposit_address=addresses[j], status="submitted", flags=[], reference=f"RC-M{j:06d}"))
    service = CaseService(database, evm_testbed.config, clock)
    gateway = ChainGateway(faulty_config(evm_testbed.config, proxies))
    summaries: list[RecheckSummary] = []
    for _ in range(3):  # the batch job runs again later; faults stay at 30% throughout
        clock.advance(minutes=10)
        summaries.append(Recheck(service, gateway, RecheckOptions(workers=2, batch_size=50)).run())

    injected = sum(sum(p.injected.values()) for p in proxies.values())
    requests = sum(p.requests for p in proxies.values())
    assert injected > 30 and injected > 0.2 * requests, ({n: p.injected for n, p in proxies.items()}, requests)
    real = set(hashes)
    with database.read() as session:
        rows = session.exec(select(Case)).all()
        per_case = Counter(session.exec(select(CaseEvent.case_id).where(CaseEvent.action == "chain_result")).all())
        total = session.exec(select(func.count()).select_from(Case)).one()
        leased = session.exec(select(func.count()).select_from(Case).where(col(Case.lease_owner).is_not(None))).one()
        chain_ok = verify_chain(session).ok
    assert total == REAL + MISSING and leased == 0 and chain_ok
    wrong = [c.reference for c in rows if c.tx_hash in real and c.category not in (None, "uncredited_valid")]
    assert not wrong, wrong  # a real deposit is never "not found" or anything else
    for case in rows:
        if case.tx_hash in real:
            assert (case.status, case.category) in {("in_review", "uncredited_valid"), ("submitted", None)}
        else:
            assert (case.status, case.category) in {("awaiting_chain", "tx_not_found"), ("submitted", None)}
    assert per_case, [s.to_json() for s in summaries]
    assert max(per_case.values()) <= 2  # decided once; a missing hash may be re-confirmed at most once more
    decided = sum(1 for c in rows if c.category is not None)
    assert decided > 0.9 * total, (decided, [s.to_json()["unavailable"] for s in summaries])
