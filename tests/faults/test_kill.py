"""`recovery recheck` killed with SIGKILL at ten different moments: after each kill the database
is consistent (every case decided exactly once or untouched, versions match the audit trail, the
chain verifies), and a last run finishes everything."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
import tomllib
from collections import Counter
from pathlib import Path

import tomli_w
from sqlmodel import select

from chains import devchain
from recovery import migrate
from recovery.audit import verify_chain
from recovery.db import Database, connect
from recovery.models import Case, CaseEvent, DepositAddress
from recovery.settings import REPO_ROOT
from tests.fixtures_anvil import FUNDER, EvmTestbed, fresh_address

RECOVERY = str(Path(sys.executable).with_name("recovery"))
CASES = 400
KILLS = 10


def write_test_config(testbed: EvmTestbed, target: Path) -> Path:
    """The shipped configuration with only the test chains as EVM networks."""
    target.mkdir(parents=True)
    source = REPO_ROOT / "config"
    networks = tomllib.loads((source / "networks.toml").read_text())
    kept = {}
    for name, entry in networks["networks"].items():
        if entry["family"] != "evm":
            kept[name] = entry
        elif name in testbed.nodes:
            kept[name] = entry | {"rpc_urls": [testbed.url(name)]}
    (target / "networks.toml").write_text(tomli_w.dumps({"networks": kept}))
    assets = tomllib.loads((source / "assets.toml").read_text())
    assets["assets"] = [a for a in assets["assets"] if a["network"] in kept]
    (target / "assets.toml").write_text(tomli_w.dumps(assets))
    for name in ("fees.toml", "policy.toml"):
        (target / name).write_bytes((source / name).read_bytes())
    return target


def check_consistent(db: Database) -> Counter[str]:
    with db.read() as session:
        assert verify_chain(session).ok
        cases = session.exec(select(Case)).all()
        events = Counter(session.exec(select(CaseEvent.case_id)).all())
    for case in cases:
        assert case.id is not None
        decided = events[case.id]
        assert case.version == 1 + decided, case.reference  # no half-written case
        if decided:
            assert decided == 1 and (case.status, case.category) == ("in_review", "uncredited_valid")
        else:
            assert (case.status, case.category) == ("submitted", None)
    return Counter(c.status for c in cases)


def decided(db: Database) -> int:
    with db.read() as session:
        return len(session.exec(select(CaseEvent.id).where(CaseEvent.action == "chain_result")).all())


def test_recheck_killed_ten_times_then_finished(evm_testbed: EvmTestbed, tmp_path: Path) -> None:
    config_dir = write_test_config(evm_testbed, tmp_path / "config")
    url = f"sqlite:///{tmp_path / 'kill.db'}"
    db = connect(url)
    migrate.upgrade(db)
    usdt = evm_testbed.tokens["ethereum"]["USDT"]
    addresses = [fresh_address() for _ in range(CASES)]
    hashes = devchain.seed_transfers(
        evm_testbed.url("ethereum"),
        [devchain.SeedTransfer(FUNDER, a, token=usdt, amount=(5 + i) * 10**6) for i, a in enumerate(addresses)],
    )
    evm_testbed.mine("ethereum", 12)
    with db.write() as session:
        for i, (address, tx) in enumerate(zip(addresses, hashes, strict=True)):
            session.add(DepositAddress(user_id=f"k{i}", network="ethereum", address=address, kind="eoa"))
            session.add(Case(user_id=f"k{i}", network="ethereum", asset="USDT", tx_hash=tx, deposit_address=address,
                             status="submitted", flags=[], reference=f"RC-K{i:06d}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("RECOVERY_")}
    env |= {"RECOVERY_DATABASE_URL": url, "RECOVERY_CONFIG_DIR": str(config_dir), "RECOVERY_VAR_DIR": str(tmp_path),
            # the runs sign with the key this process verifies with
            "RECOVERY_AUDIT_KEY": os.environ["RECOVERY_AUDIT_KEY"]}
    command = [RECOVERY, "recheck", "--batch-size", "20", "--workers", "2", "--json"]
    rng = random.Random(5)
    killed_mid_run = 0
    for _ in range(KILLS):
        # a random moment: when the database shows a random number more cases decided
        # (small steps, so even the tenth run is killed with most of the work still ahead of it)
        target = decided(db) + rng.randint(1, 20)
        process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        deadline = time.monotonic() + 120
        while process.poll() is None and decided(db) < target and time.monotonic() < deadline:
            time.sleep(0.02)
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
            killed_mid_run += 1
        process.wait(timeout=30)
        if process.stderr:
            process.stderr.close()
        check_consistent(db)
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    statuses = check_consistent(db)
    db.dispose()
    assert statuses == {"in_review": CASES}
    assert killed_mid_run == KILLS
