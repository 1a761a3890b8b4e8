"""Reliability report: a re-check through faulty nodes and hostile requests against the API.

    python -m bench.reliability [--cases 1000] [--fault-rate 0.3] [--hostile 500]

Starts its own anvil chains (chain ids 1 and 56), seeds real USDT deposits plus unknown hashes,
puts a fault-injecting proxy (drops, delays, 429/503, truncated or garbage JSON, a node that is
behind) in front of each chain, runs the re-check three times, and checks every case against
what is really on chain. Then sends generated hostile bodies to the API. Prints one table; the
"must be 0" rows are the ones that matter.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import random
import secrets
import string
import tempfile
import time
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

from sqlmodel import func, select

from app.api import create_app
from app.api_settings import ApiSettings
from chains import devchain
from recovery import migrate
from recovery.checking import ChainGateway
from recovery.config import Config, load_config
from recovery.db import Database, connect
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.recheck import Recheck, RecheckOptions
from recovery.services import CaseService
from recovery.settings import REPO_ROOT
from tests.faults.test_adapter_faults import network_behind
from tests.support.faultproxy import FaultProxy

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

NASTY = ["'; DROP TABLE cases; --", "<script>alert(1)</script>", "\" OR 1=1 --", "\u202e", "0x" + "g" * 64, "-1",
         "1e308", "NaN", "", " ", "ethereum", "USDT", "0x" + "ab" * 32, "1" * 5000]
FIELDS = ("network", "asset", "tx_hash", "deposit_address", "memo", "amount")


def chains(root: Path) -> dict[str, devchain.AnvilNode]:
    return {name: devchain.start_anvil(chain_id, log_path=root / f"{name}.log")
            for name, chain_id in (("ethereum", 1), ("bsc", 56))}


def config_for(base: Config, urls: dict[str, str]) -> Config:
    evm = {n.name for n in base.networks_of_family("evm")}
    networks = {name: net for name, net in base.networks.items() if name in urls or name not in evm}
    for name, url in urls.items():
        networks[name] = network_behind(base.network(name), url)
    return dataclasses.replace(base, networks=networks, assets=tuple(a for a in base.assets if a.network in networks))


def hostile_body(rng: random.Random) -> Any:
    def value() -> Any:
        kind = rng.randrange(6)
        if kind == 0:
            return rng.choice(NASTY)
        if kind == 1:
            return "".join(rng.choice(string.printable) for _ in range(rng.randrange(40)))
        if kind == 2:
            return rng.choice([None, True, 3.14, -7, 10**30, [], {}])
        return rng.choice(NASTY) + rng.choice(NASTY)

    if rng.random() < 0.1:
        return value()
    return {rng.choice(FIELDS) if rng.random() < 0.8 else str(value()): value() for _ in range(rng.randrange(8))}


def count(db: Database, model: type) -> int:
    with db.read() as session:
        return int(session.exec(select(func.count()).select_from(model)).one())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", type=int, default=1000)
    parser.add_argument("--missing", type=int, default=100)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--hostile", type=int, default=500)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="reliability-"))
    base = load_config(REPO_ROOT / "config")
    nodes = chains(root)
    proxies: dict[str, FaultProxy] = {}
    try:
        for name, node in nodes.items():
            devchain.install_listed_tokens(node.url, base, name)
            proxies[name] = FaultProxy(node.url, rate=args.fault_rate, seed=len(name), delay_seconds=0.8).start()
        clean = config_for(base, {n: node.url for n, node in nodes.items()})
        faulty = config_for(base, {n: p.url for n, p in proxies.items()})
        usdt = clean.asset_by_symbol("ethereum", "USDT")
        assert usdt is not None and usdt.contract is not None
        url = nodes["ethereum"].url
        devchain.mint(url, usdt.contract, devchain.DEV_ACCOUNTS[0], 10**30)
        addresses = ["0x" + secrets.token_hex(20) for _ in range(args.cases)]
        from eth_utils.address import to_checksum_address

        addresses = [str(to_checksum_address(a)) for a in addresses]
        funder = devchain.DEV_ACCOUNTS[0]
        transfers = [devchain.SeedTransfer(funder, a, token=usdt.contract, amount=10**6 + i)
                     for i, a in enumerate(addresses)]
        hashes = devchain.seed_transfers(url, transfers)
        devchain.mine(url, 20)
        db = connect(f"sqlite:///{root / 'reliability.db'}")
        migrate.upgrade(db)
        with db.write() as session:
            for i, (address, tx) in enumerate(zip(addresses, hashes, strict=True)):
                session.add(DepositAddress(user_id=f"u{i}", network="ethereum", address=address, kind="eoa"))
                session.add(Case(user_id=f"u{i}", network="ethereum", asset="USDT", tx_hash=tx,
                                 deposit_address=address, status="submitted", flags=[], reference=f"RC-B{i:06d}"))
            for j in range(args.missing):
                unknown = "0x" + secrets.token_hex(32)
                session.add(Case(user_id=f"m{j}", network="ethereum", asset="USDT", tx_hash=unknown,
                                 deposit_address=addresses[j], status="submitted", flags=[], reference=f"RC-X{j:06d}"))
        service = CaseService(db, clean)
        began = time.monotonic()
        processed = 0
        for _ in range(3):
            run = Recheck(service, ChainGateway(faulty), RecheckOptions(workers=2, batch_size=50)).run()
            processed += run.processed
        elapsed = time.monotonic() - began
        real = set(hashes)
        with db.read() as session:
            rows = session.exec(select(Case)).all()
            decided = session.exec(select(CaseEvent.case_id, CaseEvent.details).where(
                CaseEvent.action == "chain_result")).all()
        truth = {c.id: ("uncredited_valid" if c.tx_hash in real else "tx_not_found") for c in rows}
        # every decision ever recorded counts, not only the last one: a wrong one that was later
        # corrected was still wrong when it was made
        wrong = sum(1 for case_id, details in decided
                    if details.get("category") is not None and details["category"] != truth[case_id])
        per_decision = Counter((case_id, details.get("category")) for case_id, details in decided)
        duplicated = sum(n - 1 for n in per_decision.values() if n > 1)
        lost = args.cases + args.missing - len(rows)
        pending = sum(1 for c in rows if c.category is None)

        client = TestClient(create_app(service, ApiSettings(jwt_secret="r" * 48, rate_limit=100_000)),
                            raise_server_exceptions=False)
        import jwt

        token = jwt.encode({"sub": "mallory", "iat": int(time.time()), "exp": int(time.time()) + 3600}, "r" * 48)
        rng = random.Random(1)
        server_errors = stored_on_reject = 0
        for _ in range(args.hostile):
            before = count(db, Case)
            reply = client.post("/v1/appeals", content=json.dumps(hostile_body(rng)),
                                headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
            server_errors += reply.status_code >= 500
            stored_on_reject += reply.status_code >= 400 and count(db, Case) != before
        faults = sum(sum(p.injected.values()) for p in proxies.values())
        requests = sum(p.requests for p in proxies.values())
        print(f"{'reliability report':<44}{'value':>12}")
        for label, value in [
            ("node requests", requests),
            (f"faults injected ({args.fault_rate:.0%} rate)", faults),
            ("cases", args.cases + args.missing),
            ("case checks processed (3 runs)", processed),
            ("cases still pending (chain unavailable)", pending),
            ("wrong decisions (must be 0)", wrong),
            ("lost cases (must be 0)", lost),
            ("duplicated decisions (must be 0)", duplicated),
            ("hostile API requests", args.hostile),
            ("5xx answers (must be 0)", server_errors),
            ("rows stored on a rejected request (must be 0)", stored_on_reject),
            ("re-check seconds (3 runs, with faults)", f"{elapsed:.1f}"),
        ]:
            print(f"{label:<44}{value!s:>12}")
        db.dispose()
    finally:
        for proxy in proxies.values():
            proxy.stop()
        for node in nodes.values():
            node.stop()


if __name__ == "__main__":
    main()
