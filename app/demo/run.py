"""``recovery demo``: a fresh database under ``var/demo/`` full of realistic cases on real local chains.

Steps: start one anvil per EVM network of the configuration (block times starting four weeks
ago), write the demo's own configuration (the shipped one pointed at those chains, with Polygon
USDC deposits suspended), deploy the demo contracts and send every transaction of the plan day by
day, import deposit addresses and credited deposits through the CSV importers, file the appeals
(historical days through the service layer on a simulated clock; the appeal team works them a
day or two later), check them on the chains, and leave cases in every status. Then serve, or
with ``--no-serve`` print a summary and stop the chains.
"""

from __future__ import annotations

import csv
import os
import random
import secrets
import shutil
import sys
import time
import tomllib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import jwt
import requests
import tomli_w
from sqlmodel import col, func, select

from app.demo import memos, plan
from app.demo.chainworld import HOT_WALLET, USER_WALLETS, ChainWorld, DemoAppeal, TxSpec, impersonate, send_all
from app.demo.chainworld import token_transfer as token_tx
from app.demo.serving import DemoError, free_port, serve
from chains import devchain
from chains.devchain import AnvilNode
from chains.replay import ReplayServer, serve_recorded
from recovery import migrate, valuation
from recovery.audit import verify_chain
from recovery.audit_keys import load_keyring, reset_cache
from recovery.checking import CaseChecker, ChainGateway
from recovery.config import Config, load_config
from recovery.db import Database, connect
from recovery.imports import import_addresses, import_credits
from recovery.intake import validate_appeal
from recovery.models import Case
from recovery.operators import add_operator
from recovery.recheck import Recheck, RecheckOptions
from recovery.services import SYSTEM, Actor, CaseService, rejection_reason_for
from recovery.vocabulary import CaseStatus, Origin, Recoverable, Resolution, Role

MARKER = ".recovery-demo"

#: demo sign-ins, one per role (printed by the demo; never use these anywhere else)
OPERATORS: dict[str, tuple[Role, str]] = {
    "maria": (Role.SPECIALIST, "demo-specialist-1"),
    "sam": (Role.SPECIALIST, "demo-specialist-2"),
    "omar": (Role.APPROVER, "demo-approver-1"),
    "ada": (Role.ADMIN, "demo-admin-1"),
    "ari": (Role.AUDITOR, "demo-auditor-1"),
}
SPECIALIST = Actor("maria", Role.SPECIALIST)
SECOND_SPECIALIST = Actor("sam", Role.SPECIALIST)
APPROVER = Actor("omar", Role.APPROVER)


@dataclass
class DemoOptions:
    root: Path = Path("var/demo")
    appeals: int = 300
    users: int = 60
    seed: int = 7
    log: Callable[[str], None] = print
    #: recorded chain responses for the memo networks (absent: those cases are skipped, saying so)
    fixtures_dir: Path | None = None


@dataclass
class DemoResult:
    root: Path
    database_url: str
    config_dir: Path
    chains: dict[str, str]
    statuses: dict[str, int] = field(default_factory=dict)
    categories: dict[str, int] = field(default_factory=dict)
    cases: int = 0
    events: int = 0
    audit_ok: bool = False
    elapsed: float = 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "root": str(self.root),
            "database_url": self.database_url,
            "config_dir": str(self.config_dir),
            "chains": self.chains,
            "cases": self.cases,
            "events": self.events,
            "audit_chain_verified": self.audit_ok,
            "statuses": self.statuses,
            "categories": self.categories,
            "elapsed_seconds": round(self.elapsed, 1),
        }


class Clock:
    """The simulated time of the demo's history."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


def reset_root(root: Path) -> None:
    """Empty the demo folder, refusing any folder the demo did not create."""
    if root.exists():
        if any(root.iterdir()) and not (root / MARKER).exists():
            raise DemoError(f"{root} exists and was not created by the demo: refusing to delete it")
        shutil.rmtree(root)
    root.mkdir(parents=True)
    (root / MARKER).write_text("created by `recovery demo`; deleted and rebuilt by every run\n")


@contextmanager
def local_chains(config: Config, root: Path, start: datetime) -> Iterator[dict[str, AnvilNode]]:
    """One anvil per EVM network on an ephemeral loopback port, genesis at ``start``; stopped on exit."""
    nodes: dict[str, AnvilNode] = {}
    try:
        for network in config.networks_of_family("evm"):
            assert network.chain_id is not None
            nodes[network.name] = devchain.start_anvil(
                network.chain_id,
                log_path=root / "chains" / f"{network.name}.log",
                extra_args=["--timestamp", str(int(start.timestamp()))],
            )
        yield nodes
    finally:
        for node in nodes.values():
            node.stop()


def write_config(source: Path, target: Path, urls: dict[str, str], replay_url: str | None) -> Path:
    """The shipped configuration pointed at the demo's chains, with Polygon USDC deposits suspended."""
    target.mkdir(parents=True, exist_ok=True)
    for name in ("fees.toml", "policy.toml"):
        if (source / name).exists():
            shutil.copyfile(source / name, target / name)
    networks = tomllib.loads((source / "networks.toml").read_text())
    for name, entry in networks["networks"].items():
        if name in urls:
            entry["rpc_urls"] = [urls[name]]
        elif replay_url is not None and entry["family"] != "evm":
            entry["rpc_urls"] = [f"{replay_url}/{entry['family']}"]
    (target / "networks.toml").write_text(
        "# Written by `recovery demo`: the shipped networks pointed at the demo's local chains.\n"
        + tomli_w.dumps(networks)
    )
    assets = tomllib.loads((source / "assets.toml").read_text())
    for asset in assets["assets"]:
        if asset["network"] == "polygon" and asset["symbol"] == "USDC":
            asset["deposits_enabled"] = False
    (target / "assets.toml").write_text(
        "# Written by `recovery demo`: the shipped assets; Polygon USDC deposits suspended for the demo.\n"
        + tomli_w.dumps(assets)
    )
    return target


def send_history(world: ChainWorld, start: datetime, rng: random.Random) -> None:
    """Send every appeal's transaction on its day (block times on that day), then confirm them all."""
    for day in range(plan.DAYS):
        by_network: dict[str, list[DemoAppeal]] = {}
        for appeal in world.appeals:
            if appeal.day == day and appeal.tx is not None:
                by_network.setdefault(appeal.tx.network, []).append(appeal)
        at = start + timedelta(days=day, hours=rng.randint(0, 6))
        for network, appeals in by_network.items():
            specs = [a.tx for a in appeals if a.tx is not None]
            for appeal, tx_hash in zip(appeals, send_all(world.urls[network], specs, at=at), strict=True):
                appeal.tx_hash = tx_hash
    now = datetime.now(UTC) - timedelta(hours=2)
    for url in world.urls.values():
        transport = devchain.rpc(url)
        transport.call("evm_setNextBlockTimestamp", [int(now.timestamp())])
        devchain.mine(url, 100)


def write_imports(world: ChainWorld, folder: Path, memo_rows: list[memos.MemoRow]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    addresses = folder / "deposit_addresses.csv"
    with addresses.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["user_id", "network", "address", "memo", "kind"])
        for user in world.users:
            for network in user.issued:
                writer.writerow([user.user_id, network, user.address, "", user.kind])
        for row in memo_rows:
            writer.writerow([row.user_id, row.network, row.address, row.memo, "eoa"])
        writer.writerow(["", "ethereum", plan.EXCHANGE_WALLET, "", "wallet"])  # an exchange wallet: no user
    credits = folder / "credited_deposits.csv"
    with credits.open("w", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["network", "tx_hash", "user_id", "asset", "amount"])
        for appeal in world.appeals:
            if appeal.credited and appeal.tx is not None and appeal.amount is not None:
                writer.writerow([appeal.tx.network, appeal.tx_hash, appeal.user.user_id, appeal.asset,
                                 format(appeal.amount, "f")])
    return addresses, credits


class Team:
    """The appeal team working cases on the simulated clock."""

    def __init__(self, service: CaseService, world: ChainWorld, rng: random.Random) -> None:
        self.service = service
        self.world = world
        self.rng = rng

    def _case(self, reference: str) -> Case:
        return self.service.get(reference).case

    def work(self, reference: str, appeal: DemoAppeal) -> None:
        case = self._case(reference)
        if case.status != CaseStatus.IN_REVIEW:
            return
        case = self.service.assign(reference, self.rng.choice(["maria", "sam"]), SPECIALIST,
                                   expected_version=case.version)
        if appeal.plan.startswith("reject:"):
            code = appeal.plan.split(":", 1)[1]
            self._reject(case, code)
        elif appeal.plan == "request_info":
            self.service.request_info(reference, "Please send a screenshot of the withdrawal in your wallet.",
                                      SPECIALIST, expected_version=case.version)
        elif case.recoverable == Recoverable.NO:
            self._reject(case, rejection_reason_for(case))
        elif case.recoverable == Recoverable.YES and case.resolution == Resolution.CREDIT:
            case = self.approve(case)
            if self.rng.random() < 0.8:
                case = self.service.mark_credited(reference, SPECIALIST, expected_version=case.version,
                                                  ledger_reference=f"LEDGER-{case.id:06d}")
                if self.rng.random() < 0.5:
                    self.service.close(reference, SPECIALIST, expected_version=case.version)
        elif case.resolution == Resolution.REFUND:
            case = self.approve(case)
            if appeal.tx is not None and self.rng.random() < 0.8:
                self.refund(case, appeal)

    def approve(self, case: Case) -> Case:
        """The specialist sends the case for approval (valuing an asset without a price first: about
        400 USD, so the fee rule's flat fee applies); an approver (someone else) approves it."""
        reference = case.reference or ""
        if valuation.needs_valuation(case) and case.amount:
            price = max(Decimal("0.00000001"), (Decimal(400) / case.amount).quantize(Decimal("0.00000001")))
            case = self.service.set_valuation(reference, SPECIALIST, expected_version=case.version,
                                              price_usd=price, source="demo: a DEX quote",
                                              reason="The token has no listed price.")
        case = self.service.send_for_approval(reference, SPECIALIST, expected_version=case.version)
        return self.service.approve(reference, APPROVER, expected_version=case.version)

    def _reject(self, case: Case, code: str) -> None:
        reference = case.reference or ""
        case = self.service.reject(reference, code, SPECIALIST, expected_version=case.version,
                                   message="Details are in the reasons of your appeal.")
        if self.rng.random() < 0.4:
            self.service.close(reference, SPECIALIST, expected_version=case.version)

    def refund(self, case: Case, appeal: DemoAppeal) -> None:
        """Send the tokens back from the deposit address (a real transaction) and record it."""
        assert appeal.tx is not None and appeal.tx_hash is not None
        payout = self.service.payout(case.reference or "")
        assert payout is not None and payout.to_address is not None  # fixed by the approval
        url = self.world.urls[appeal.tx.network]
        impersonate(url, appeal.deposit_address)
        tx = token_tx(appeal.tx.network, appeal.deposit_address, appeal.tx.to, payout.to_address,
                      int(payout.amount_units))
        refund_hash = send_all(url, [tx])[0]
        self.service.record_refund(case.reference or "", refund_hash, SPECIALIST, expected_version=case.version)


def _user(user_id: str) -> Actor:
    return Actor(user_id, Role.USER)


def _raw(appeal: DemoAppeal) -> dict[str, Any]:
    return {
        "network": appeal.network,
        "asset": appeal.asset,
        "tx_hash": appeal.tx_hash,
        "deposit_address": appeal.deposit_address,
        "amount": format(appeal.amount, "f") if appeal.amount is not None else None,
    }


def file_history(service: CaseService, checker: CaseChecker, clock: Clock, world: ChainWorld,
                 start: datetime, rng: random.Random) -> dict[str, DemoAppeal]:
    """Day by day: appeals filed a few hours after their deposit, checked minutes later; the team
    works each day's cases two days later."""
    team = Team(service, world, rng)
    filed: dict[str, DemoAppeal] = {}
    by_day: dict[int, list[str]] = {}
    for day in range(plan.DAYS):
        clock.now = start + timedelta(days=day, hours=8)
        references = []
        for appeal in (a for a in world.appeals if a.day == day):
            clock.now += timedelta(minutes=rng.randint(1, 40))
            for user_id in [appeal.user.user_id] + ([appeal.also_by.user_id] if appeal.also_by else []):
                draft = validate_appeal(service.config, _raw(appeal), user_id)
                case, _ = service.submit(draft, _user(user_id))
                references.append(case.reference or "")
                filed[case.reference or ""] = appeal
        clock.now += timedelta(minutes=5)
        checker.check(references, actor=SYSTEM)
        by_day[day] = references
        clock.now = start + timedelta(days=day, hours=15)
        if day >= 2:
            for reference in by_day.get(day - 2, []):
                clock.now += timedelta(minutes=rng.randint(2, 30))
                team.work(reference, filed[reference])
    return filed


def run_demo(options: DemoOptions, source_config: Path) -> tuple[DemoResult, ExitStack]:
    """Build the demo. The returned ExitStack keeps the chains running until it is closed."""
    began = time.monotonic()
    rng = random.Random(options.seed)
    root = options.root.resolve()
    reset_root(root)
    if not os.environ.get("RECOVERY_AUDIT_KEY"):
        # the demo's own audit key, beside its data, for this process and the servers it starts
        os.environ["RECOVERY_AUDIT_KEY"] = str(load_keyring(root).path)
        reset_cache()
    start = (datetime.now(UTC) - timedelta(days=plan.DAYS + 1)).replace(minute=0, second=0, microsecond=0)
    stack = ExitStack()
    try:
        source = load_config(source_config)
        options.log(f"starting {len(source.networks_of_family('evm'))} local EVM chains")
        nodes = stack.enter_context(local_chains(source, root, start))
        urls = {name: node.url for name, node in nodes.items()}
        replay = start_replay(options, stack)
        config_dir = write_config(source_config, root / "config", urls, replay.url if replay else None)
        config = load_config(config_dir)
        database_url = f"sqlite:///{root / 'recovery.db'}"
        db = connect(database_url)
        stack.callback(db.dispose)
        migrate.upgrade(db)

        world = ChainWorld(urls)
        options.log("deploying tokens and contracts")
        plan_world(world, config, rng, options)
        options.log(f"sending {sum(1 for a in world.appeals if a.tx)} transactions over {plan.DAYS} days")
        send_history(world, start, rng)
        memo_world = memos.build(config, replay) if replay else memos.MemoWorld([], [])
        addresses_csv, credits_csv = write_imports(world, root / "imports", memo_world.rows)
        import_addresses(db, config, addresses_csv)
        import_credits(db, config, credits_csv)
        for username, (role, password) in OPERATORS.items():
            add_operator(db, username, password, role.value)

        clock = Clock(start)
        service = CaseService(db, config, clock)
        checker = CaseChecker(service, ChainGateway(config))
        options.log(f"filing {len(world.appeals)} appeals day by day")
        file_history(service, checker, clock, world, start, rng)
        for url in urls.values():  # the refunds sent by the team get their confirmations
            devchain.mine(url, 30)
        with running_api(root, database_url, config_dir) as api:
            options.log(f"filing today's appeals through the API at {api.url}")
            file_memo_appeals(memo_world, api)
            fresh_appeals(world, api, urls, rng)
        finish_today(world, service, checker, urls, rng)
        options.log("re-checking every case that needs the chain")
        today = CaseService(db, config)
        Recheck(today, checker.gateway, RecheckOptions(workers=2)).run()
        close_some_refunds(today, rng)
        after_recheck(world, today, urls, rng)

        result = DemoResult(root, database_url, config_dir, urls)
        summarize(db, result)
        result.elapsed = time.monotonic() - began
        return result, stack
    except BaseException:
        stack.close()
        raise


def plan_world(world: ChainWorld, config: Config, rng: random.Random, options: DemoOptions) -> None:
    from app.demo.chainworld import prepare_contracts

    prepare_contracts(world, config)
    plan.make_users(world, rng, options.users)
    plan.make_appeals(world, rng, options.appeals)


def start_replay(options: DemoOptions, stack: ExitStack) -> ReplayServer | None:
    """The local stand-in for the memo networks, serving the recorded responses."""
    folder = options.fixtures_dir
    if folder is None or not folder.is_dir():
        options.log(f"recorded chain responses not found at {folder}: memo-network cases skipped")
        return None
    server = serve_recorded(folder)
    stack.callback(server.stop)
    options.log(f"serving the recorded memo-network transactions at {server.url}")
    for skipped in server.skipped:
        options.log(f"recording set aside: {skipped}")
    return server


def file_memo_appeals(memo_world: memos.MemoWorld, api: ApiClient) -> None:
    """Today's appeals about the recorded XRP Ledger and Cosmos transactions, through the real API
    (which checks them on the chain at once)."""
    for appeal in memo_world.appeals:
        body = {"network": appeal.network, "asset": appeal.asset, "tx_hash": appeal.tx_hash,
                "deposit_address": appeal.deposit_address, "memo": appeal.memo}
        if appeal.amount is not None:
            body["amount"] = format(appeal.amount, "f")
        api.appeal(appeal.user_id, body)


def fresh_appeals(world: ChainWorld, api: ApiClient, urls: dict[str, str], rng: random.Random) -> None:
    """Users who deposited USDT this morning appeal through the appeal form (the API checks at once)."""
    users = [u for u in world.users if u.kind == "eoa" and "ethereum" in u.issued]
    chosen = rng.sample(users, 5)
    specs = [token_tx("ethereum", USER_WALLETS[4], world.tokens["ethereum"]["USDT"], u.address, (100 + i) * 10**6)
             for i, u in enumerate(chosen)]
    hashes = send_all(urls["ethereum"], specs)
    devchain.mine(urls["ethereum"], 12)
    for i, (user, tx_hash) in enumerate(zip(chosen, hashes, strict=True)):
        api.appeal(user.user_id, {"network": "ethereum", "asset": "USDT", "tx_hash": tx_hash,
                                  "deposit_address": user.address, "amount": str(100 + i)})


class ApiClient:
    """The demo's users filing appeals through the running API (``recovery api``), over HTTP."""

    def __init__(self, url: str, secret: str) -> None:
        self.url = url
        self.secret = secret
        self.filed = 0

    def appeal(self, user_id: str, body: dict[str, Any]) -> dict[str, Any]:
        issued = int(time.time())
        token = jwt.encode({"sub": user_id, "iat": issued, "exp": issued + 600}, self.secret, algorithm="HS256")
        reply = requests.post(f"{self.url}/v1/appeals", json=body, timeout=30,
                              headers={"Authorization": f"Bearer {token}"})
        if reply.status_code not in (200, 201):
            raise DemoError(f"the API refused a demo appeal ({reply.status_code}): {reply.text[:300]}")
        self.filed += 1
        result: dict[str, Any] = reply.json()
        return result


@contextmanager
def running_api(root: Path, database_url: str, config_dir: Path) -> Iterator[ApiClient]:
    """`recovery api` on a free loopback port over the demo's database, for the demo's own appeals."""
    secret = secrets.token_urlsafe(32)
    port = free_port()
    env = {**os.environ, "RECOVERY_DATABASE_URL": database_url, "RECOVERY_CONFIG_DIR": str(config_dir),
           "RECOVERY_VAR_DIR": str(root), "RECOVERY_API_JWT_SECRET": secret}
    recovery = str(Path(sys.executable).with_name("recovery"))
    with serve([recovery, "api", "--host", "127.0.0.1", "--port", str(port)], env,
               f"http://127.0.0.1:{port}/healthz", root / "logs" / "seeding-api.log"):
        yield ApiClient(f"http://127.0.0.1:{port}", secret)


def finish_today(world: ChainWorld, service: CaseService, checker: CaseChecker, urls: dict[str, str],
                 rng: random.Random) -> None:
    """Today: a deposit still confirming, fresh appeals not yet checked, a user who withdraws."""
    real = Clock(datetime.now(UTC))
    today = CaseService(service.db, service.config, real)
    users = [u for u in world.users if u.kind == "eoa" and "ethereum" in u.issued]
    confirming = rng.sample(users, 2)
    specs = [TxSpec("ethereum", USER_WALLETS[3], u.address, value=10**17) for u in confirming]
    hashes = send_all(urls["ethereum"], specs)
    references = []
    for user, tx_hash in zip(confirming, hashes, strict=True):
        draft = validate_appeal(service.config, {"network": "ethereum", "asset": "ETH", "tx_hash": tx_hash,
                                                 "deposit_address": user.address, "amount": "0.1"}, user.user_id)
        case, _ = today.submit(draft, _user(user.user_id))
        references.append(case.reference or "")
    CaseChecker(today, checker.gateway).check(references, actor=SYSTEM)


def after_recheck(world: ChainWorld, today: CaseService, urls: dict[str, str], rng: random.Random) -> None:
    """What arrived after the last re-check: fresh appeals (submitted), a refund just sent
    (refund_pending), and a user who withdraws an appeal."""
    users = [u for u in world.users if u.kind == "eoa" and "ethereum" in u.issued]
    fresh = rng.sample(users, 3)
    specs = [TxSpec("ethereum", HOT_WALLET, u.address, value=5 * 10**16) for u in fresh]
    for user, tx_hash in zip(fresh, send_all(urls["ethereum"], specs), strict=True):
        # taken from a support chat by a specialist: waits for the next re-check in `submitted`
        draft = validate_appeal(today.config, {"network": "ethereum", "asset": "ETH", "tx_hash": tx_hash,
                                               "deposit_address": user.address}, user.user_id)
        today.submit(draft, SPECIALIST, origin=Origin.INTAKE)
    by_tx = {a.tx_hash: a for a in world.appeals if a.tx_hash}
    with today.db.read() as session:
        refundable = session.exec(
            select(Case).where(Case.resolution == Resolution.REFUND.value,
                               col(Case.status).in_([CaseStatus.APPROVED.value, CaseStatus.IN_REVIEW.value]),
                               col(Case.refund_tx_hash).is_(None))
            .order_by(col(Case.status))
        ).all()
    for case in refundable:
        appeal = by_tx.get(case.tx_hash)
        if appeal is None or appeal.tx is None:
            continue
        team = Team(today, world, rng)
        if case.status == CaseStatus.IN_REVIEW.value:
            case = team.approve(case)
        team.refund(case, appeal)
        break
    with today.db.read() as session:
        open_case = session.exec(
            select(Case).where(Case.status == CaseStatus.IN_REVIEW.value, Case.network == "ethereum")
            .order_by(col(Case.id).desc())
        ).first()
    if open_case is not None:
        today.withdraw(open_case.reference or "", _user(open_case.user_id), expected_version=open_case.version)


def close_some_refunds(service: CaseService, rng: random.Random) -> None:
    """The team archives about half of the refunds the re-check confirmed."""
    with service.db.read() as session:
        refunded = session.exec(select(Case).where(Case.status == CaseStatus.REFUNDED.value)).all()
    for case in refunded:
        if rng.random() < 0.5:
            service.close(case.reference or "", SPECIALIST, expected_version=case.version)


def summarize(db: Database, result: DemoResult) -> None:
    with db.read() as session:
        statuses = session.exec(select(Case.status, func.count()).group_by(Case.status)).all()
        categories = session.exec(select(Case.category, func.count()).group_by(Case.category)).all()
    result.statuses = dict(sorted((str(s), int(n)) for s, n in statuses))
    result.categories = dict(sorted((str(c or "unclassified"), int(n)) for c, n in categories))
    result.cases = sum(result.statuses.values())
    with db.read() as session:
        report = verify_chain(session)
    result.audit_ok = report.ok
    result.events = report.events_checked


__all__ = ["OPERATORS", "DemoError", "DemoOptions", "DemoResult", "run_demo"]
