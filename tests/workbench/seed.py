"""A small, realistic workbench world: real transactions on the local anvil chains, appeals filed
and worked through ``CaseService``, stray deposits found by ``recovery scan`` (detected cases),
operator accounts of every role."""

from __future__ import annotations

import csv
import random
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from functools import cache
from pathlib import Path

from argon2 import PasswordHasher

from chains import devchain
from recovery.checking import CaseChecker, ChainGateway
from recovery.db import Database
from recovery.imports import import_addresses
from recovery.intake import validate_appeal
from recovery.models import Operator
from recovery.scan import Scanner, ScanOptions
from recovery.services import SYSTEM, Actor, CaseService
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed, fresh_address

PASSWORD = "correct horse battery staple"
OPERATORS: dict[str, Role] = {
    "sara": Role.SPECIALIST,
    "tom": Role.SPECIALIST,
    "alice": Role.APPROVER,
    "bob": Role.APPROVER,
    "ada": Role.ADMIN,
    "ari": Role.AUDITOR,
}
SARA = Actor("sara", Role.SPECIALIST)
TOM = Actor("tom", Role.SPECIALIST)
ALICE = Actor("alice", Role.APPROVER)
#: sara's comment when she sends the big case for approval
BIG_COMMENT = "Owner verified on a video call; the address is theirs."
#: shown verbatim wherever it appears; it must never become markup
HOSTILE = '<script>alert("pwned")</script> <img src=x onerror=alert(1)> **bold** [link](http://example.com) :red[x]'


@cache
def password_hash() -> str:
    return PasswordHasher().hash(PASSWORD)


@dataclass(frozen=True)
class ChainFacts:
    """Transactions sent once per test session; every seeded database reuses them."""

    addresses: dict[str, str]  # user id -> ethereum deposit address
    small: str  # 500 USDT to user-1
    big: str  # 5000 USDT to user-2
    contested: str  # 40 USDT to user-5 (appealed by user-5 and user-6)
    credited: str  # 300 USDT to user-7 (approved and credited)
    unlisted: str  # an unlisted token to user-3
    #: user-9's ethereum deposit address: nobody appeals what reaches it, the scan finds it
    stray_address: str
    stray_wrong_network: str  # 250 USDT sent on BNB Smart Chain to user-9's ethereum address
    stray_uncredited: str  # 120 USDT on ethereum to user-9, never credited
    stray_dust: str  # 0.30 USDT on ethereum to user-9: recorded by the scan, not opened
    #: per network, the first block holding a stray deposit (the scan starts there)
    stray_from: dict[str, int]


#: the user who owns ``ChainFacts.stray_address``
STRAY_USER = "user-9"
SCANNED_NETWORKS = ("ethereum", "bsc")


def head(testbed: EvmTestbed, network: str) -> int:
    return int(devchain.rpc(testbed.url(network)).call("eth_blockNumber"), 16)


def block_time(testbed: EvmTestbed, network: str, tx_hash: str) -> datetime:
    """The time of the block holding the transaction, straight from the node."""
    node = devchain.rpc(testbed.url(network))
    receipt = node.call("eth_getTransactionReceipt", [tx_hash])
    block = node.call("eth_getBlockByNumber", [receipt["blockNumber"], False])
    return datetime.fromtimestamp(int(block["timestamp"], 16), UTC)


def send_chain_facts(testbed: EvmTestbed) -> ChainFacts:
    addresses = {f"user-{i}": fresh_address() for i in range(1, 9)}
    usdt = 10**6
    small = testbed.send_token("ethereum", "USDT", addresses["user-1"], 500 * usdt)
    big = testbed.send_token("ethereum", "USDT", addresses["user-2"], 5000 * usdt)
    contested = testbed.send_token("ethereum", "USDT", addresses["user-5"], 40 * usdt)
    credited = testbed.send_token("ethereum", "USDT", addresses["user-7"], 300 * usdt)
    token = testbed.new_token("ethereum", "Shiny Coin", "SHINY", 18, 10**27)
    unlisted = testbed.send_token("ethereum", token, addresses["user-3"], 25 * 10**18)
    stray = fresh_address()
    stray_from = {network: head(testbed, network) + 1 for network in SCANNED_NETWORKS}
    wrong_network = testbed.send_token("bsc", "USDT", stray, 250 * 10**18)
    uncredited = testbed.send_token("ethereum", "USDT", stray, 120 * usdt)
    dust = testbed.send_token("ethereum", "USDT", stray, 300_000)
    testbed.mine("ethereum", 20)
    testbed.mine("bsc", 20)
    return ChainFacts(addresses, small, big, contested, credited, unlisted, stray, wrong_network, uncredited, dust,
                      stray_from)


@dataclass(frozen=True)
class World:
    small: str  # in_review, credit of 500 USD, carries a hostile note
    big: str  # in_review, credit of 5000 USD (four-eyes), assigned to sara, sent for approval by sara
    unlisted: str  # in_review, unlisted token (refund)
    contested: tuple[str, str]
    credited: str  # credited (resolved): sent by sara, approved by alice, credited by tom
    rejected: str  # rejected (resolved)
    not_found: str  # awaiting_chain
    overdue: tuple[str, str]  # submitted five days ago, never checked: past their SLA
    #: opened by ``recovery scan`` (origin ``detected``, in review): (wrong network on bsc, uncredited on ethereum)
    detected: tuple[str, str]


def add_operators(db: Database) -> None:
    with db.write() as session:
        for name, role in OPERATORS.items():
            session.add(Operator(username=name, password_hash=password_hash(), role=role.value))


def _file(service: CaseService, user: str, tx_hash: str, address: str, amount: str | None = None) -> str:
    raw = {"network": "ethereum", "asset": "USDT", "tx_hash": tx_hash, "deposit_address": address,
           "amount": amount}
    case, _ = service.submit(validate_appeal(service.config, raw, user), Actor(user, Role.USER))
    return case.reference or ""


def hold_addresses(service: CaseService, path: Path, addresses: dict[str, str]) -> None:
    """Import ethereum deposit addresses (user id -> address) as the exchange's CSV import does."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user_id", "network", "address", "memo", "kind"])
        for user, address in addresses.items():
            writer.writerow([user, "ethereum", address, "", "eoa"])
    import_addresses(service.db, service.config, path)


def scan(service: CaseService, gateway: ChainGateway, network: str, from_block: int) -> list[str]:
    """One run of ``recovery scan``'s own code path on one network (which keeps it off the TRON
    twin: there is no TRON node here); returns the references of the cases it opened."""
    summary = Scanner(service, gateway, ScanOptions(network=network, from_block=from_block, workers=1)).run()
    if summary.errors or summary.unavailable:
        raise RuntimeError(f"the scan of {network} failed: {summary.to_json()}")
    return summary.opened_cases


def detect(service: CaseService, gateway: ChainGateway, facts: ChainFacts) -> tuple[str, str]:
    """The stray deposits to user-9 become detected cases, now (the dust is recorded only). Only
    user-9's address is held yet, so what other tests send to the other users' addresses is never
    scanned."""
    opened = {network: scan(service, gateway, network, facts.stray_from[network]) for network in SCANNED_NETWORKS}
    if [len(opened[n]) for n in SCANNED_NETWORKS] != [1, 1]:
        raise RuntimeError(f"the seed's scan opened {opened}, expected one case per network")
    return opened["bsc"][0], opened["ethereum"][0]


def seed(service: CaseService, gateway: ChainGateway, facts: ChainFacts, clock: Clock, folder: Path) -> World:
    db = service.db
    add_operators(db)
    start = clock.now
    hold_addresses(service, folder / "stray-addresses.csv", {STRAY_USER: facts.stray_address})
    detected = detect(service, gateway, facts)
    hold_addresses(service, folder / "addresses.csv", facts.addresses)
    checker = CaseChecker(service, gateway)
    a = facts.addresses

    clock.now = start - timedelta(days=5)
    overdue = (_file(service, "user-8", "0x" + secrets.token_hex(32), a["user-8"]),
               _file(service, "user-8", "0x" + secrets.token_hex(32), a["user-8"]))
    clock.now = start - timedelta(days=2)
    credited = _file(service, "user-7", facts.credited, a["user-7"], "300")
    rejected = _file(service, "user-4", "0x" + secrets.token_hex(32), fresh_address())
    checker.check([credited, rejected], actor=SYSTEM)
    clock.now = start - timedelta(days=1)
    case = service.get(credited).case
    case = service.send_for_approval(credited, SARA, expected_version=case.version)
    case = service.approve(credited, ALICE, expected_version=case.version)
    # four eyes at payment too: whoever records the credit is not the approver
    service.mark_credited(credited, TOM, expected_version=case.version, ledger_reference="LEDGER-1")
    case = service.get(rejected).case
    service.reject(rejected, "not_our_address", SARA, expected_version=case.version, message="Not ours.")

    clock.now = start - timedelta(hours=3)
    small = _file(service, "user-1", facts.small, a["user-1"], "500")
    big = _file(service, "user-2", facts.big, a["user-2"], "5000")
    unlisted = _file(service, "user-3", facts.unlisted, a["user-3"])
    contested = (_file(service, "user-5", facts.contested, a["user-5"], "40"),
                 _file(service, "user-6", facts.contested, a["user-5"], "40"))
    not_found = _file(service, "user-4", "0x" + secrets.token_hex(32), a["user-4"])
    checker.check([small, big, unlisted, *contested, not_found], actor=SYSTEM)
    clock.now = start
    case = service.get(big).case
    case = service.assign(big, "sara", SARA, expected_version=case.version)
    service.send_for_approval(big, SARA, expected_version=case.version, comment=BIG_COMMENT)
    case = service.get(small).case
    service.note(small, HOSTILE, SARA, expected_version=case.version)
    return World(small, big, unlisted, contested, credited, rejected, not_found, overdue, detected)


def seed_history(service: CaseService, gateway: ChainGateway, testbed: EvmTestbed, clock: Clock, folder: Path,
                 appeals: int = 36, days: int = 24) -> list[str]:
    """Weeks of appeals (real transfers) worked by the team, for the dashboard and screenshots."""
    rng = random.Random(7)
    checker = CaseChecker(service, gateway)
    start = clock.now
    users = {f"hist-{i}": fresh_address() for i in range(12)}
    csv_rows = [["user_id", "network", "address", "memo", "kind"]]
    csv_rows += [[user, "ethereum", address, "", "eoa"] for user, address in users.items()]
    path = folder / "history-addresses.csv"
    with path.open("w", newline="") as handle:
        csv.writer(handle).writerows(csv_rows)
    import_addresses(service.db, service.config, path)
    sent: list[tuple[str, str, str, int]] = []
    for _ in range(appeals):
        user = rng.choice(list(users))
        symbol = rng.choice(["USDT", "USDC"])
        amount = rng.choice([20, 75, 150, 400, 900, 1500, 2600])
        if rng.random() < 0.35:
            # sent on BNB Smart Chain to the user's Ethereum address: a wrong-network recovery with a fee
            tx = testbed.send_token("bsc", symbol, users[user], amount * 10**18)
        else:
            tx = testbed.send_token("ethereum", symbol, users[user], amount * 10**6)
        sent.append((user, symbol, tx, amount))
    testbed.mine("ethereum", 15)
    testbed.mine("bsc", 20)
    references: list[str] = []
    for i, (user, symbol, tx, amount) in enumerate(sent):
        day = days - 1 - (i * days) // appeals
        clock.now = start - timedelta(days=day, hours=rng.randint(0, 8))
        raw = {"network": "ethereum", "asset": symbol, "tx_hash": tx, "deposit_address": users[user],
               "amount": str(amount)}
        case, _ = service.submit(validate_appeal(service.config, raw, user), Actor(user, Role.USER))
        reference = case.reference or ""
        checker.check([reference], actor=SYSTEM)
        references.append(reference)
        if day < 3:
            continue  # recent: still in the queue
        clock.now += timedelta(hours=rng.randint(2, 60))
        case = service.get(reference).case
        preparer = rng.choice([SARA, TOM])
        payer = TOM if preparer is SARA else SARA
        case = service.assign(reference, preparer.name, SARA, expected_version=case.version)
        roll = rng.random()
        if roll < 0.15:
            service.reject(reference, "ownership_not_proven", preparer, expected_version=case.version)
        elif roll < 0.25:
            service.request_info(reference, "Please send a screenshot of the withdrawal.", preparer,
                                 expected_version=case.version)
        else:
            # the assignee sends it for approval, an approver approves, the other specialist books the credit
            case = service.send_for_approval(reference, preparer, expected_version=case.version)
            case = service.approve(reference, ALICE, expected_version=case.version)
            clock.now += timedelta(hours=rng.randint(1, 20))
            service.mark_credited(reference, payer, expected_version=case.version,
                                  ledger_reference=f"LEDGER-{reference}")
    clock.now = start
    return references
