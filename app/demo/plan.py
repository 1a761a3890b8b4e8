"""What happens in the demo: users, their deposit addresses, and the appeals they file, day by day.

The plan is deterministic for a seed. Each story names the situation a user is in (a deposit on
the wrong network, an unlisted token, a counterfeit, ...) and builds the transaction that puts
them there; the rules engine, not this file, decides the category.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from decimal import Decimal

from app.demo.chainworld import (
    EMPTY_WALLET,
    USER_WALLETS,
    ChainWorld,
    DemoAppeal,
    TxSpec,
    UserAccount,
    forward,
    fresh_address,
    token_transfer,
)
from chains import devchain

#: networks where ordinary users get deposit addresses; arbitrum is never issued in the demo
ISSUED_FULL = ("ethereum", "bsc", "polygon")
ISSUED_LEGACY = ("ethereum",)
DAYS = 28

Story = Callable[[ChainWorld, random.Random, UserAccount, int], DemoAppeal]


def _usdt_units(network: str, amount: Decimal) -> int:
    decimals = 18 if network == "bsc" else 6
    return int(amount.scaleb(decimals))


def _amount(rng: random.Random, low: int, high: int) -> Decimal:
    return Decimal(rng.randint(low * 100, high * 100)).scaleb(-2)


def _usdt(world: ChainWorld, network: str, sender: str, to: str, amount: Decimal) -> TxSpec:
    return token_transfer(network, sender, world.tokens[network]["USDT"], to, _usdt_units(network, amount))


#: an exchange wallet (hot, cold, withdrawal) of the demo's books: held by no user (kind wallet)
EXCHANGE_WALLET = "0xEceCecECEcecEceceCECEcEcECeCeCeCeCECECEc"


def _wallet(rng: random.Random) -> str:
    return rng.choice(USER_WALLETS[2:])


def valid_usdt(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    network = rng.choice(user.issued)
    amount = _amount(rng, 20, 4000)
    tx = _usdt(world, network, _wallet(rng), user.address, amount)
    return DemoAppeal("uncredited deposit", user, network, "USDT", day, tx, user.address, amount)


def valid_native(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = Decimal(rng.randint(5, 300)).scaleb(-2)
    tx = TxSpec("ethereum", _wallet(rng), user.address, value=int(amount.scaleb(18)))
    return DemoAppeal("uncredited ETH deposit", user, "ethereum", "ETH", day, tx, user.address, amount)


def amount_mismatch(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    appeal = valid_usdt(world, rng, user, day)
    appeal.story = "claims more than arrived"
    appeal.amount = (appeal.amount or Decimal(0)) + 100
    return appeal


def credited(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    appeal = valid_usdt(world, rng, user, day)
    appeal.story = "was credited already"
    appeal.credited = True
    appeal.plan = "reject:duplicate"
    return appeal


def wrong_network(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    landing = rng.choice([n for n in ("bsc", "polygon") if n not in user.issued])
    amount = _amount(rng, 100, 5000)
    tx = _usdt(world, landing, _wallet(rng), user.address, amount)
    return DemoAppeal("USDT sent on the wrong network", user, "ethereum", "USDT", day, tx, user.address, amount)


def wrong_network_conditional(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 200, 3000)
    tx = _usdt(world, "arbitrum", _wallet(rng), user.address, amount)
    return DemoAppeal("USDT sent on Arbitrum", user, "ethereum", "USDT", day, tx, user.address, amount,
                      plan="request_info")


def wrong_network_contract(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 100, 2000)
    tx = _usdt(world, "bsc", _wallet(rng), user.address, amount)
    return DemoAppeal("sent to a contract wallet on the wrong network", user, "ethereum", "USDT", day, tx,
                      user.address, amount, plan="reject:not_recoverable")


def unlisted(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    units = rng.randint(10_000, 5_000_000) * 10**18
    tx = token_transfer("ethereum", USER_WALLETS[0], world.unlisted["ethereum"], user.address, units)
    return DemoAppeal("unlisted token", user, "ethereum", world.unlisted["ethereum"], day, tx, user.address,
                      plan="refund")


def counterfeit(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 500, 9000)
    tx = token_transfer("ethereum", USER_WALLETS[1], world.counterfeit["ethereum"], user.address,
                        int(amount.scaleb(6)))
    return DemoAppeal("fake USDT", user, "ethereum", "USDT", day, tx, user.address, amount,
                      plan="reject:counterfeit_token")


def failed(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 50, 500)
    tx = _usdt(world, "ethereum", EMPTY_WALLET, user.address, amount)
    return DemoAppeal("reverted transfer", user, "ethereum", "USDT", day, tx, user.address, amount,
                      plan="reject:other")


def not_ours(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 20, 800)
    tx = _usdt(world, "ethereum", _wallet(rng), fresh_address(rng), amount)
    return DemoAppeal("sent to someone else", user, "ethereum", "USDT", day, tx, user.address, amount,
                      plan="reject:not_our_address")


def not_found(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    appeal = DemoAppeal("a hash no chain knows", user, "ethereum", "USDT", day, None, user.address,
                        _amount(rng, 20, 800))
    appeal.tx_hash = "0x" + rng.randbytes(32).hex()
    return appeal


def below_minimum(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = Decimal(rng.randint(1, 9)).scaleb(-4)
    tx = TxSpec("ethereum", _wallet(rng), user.address, value=int(amount.scaleb(18)))
    return DemoAppeal("under the minimum deposit", user, "ethereum", "ETH", day, tx, user.address, amount)


def internal(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = Decimal(rng.randint(5, 150)).scaleb(-2)
    tx = forward("ethereum", _wallet(rng), world.forwarders["ethereum"], user.address, int(amount.scaleb(18)))
    return DemoAppeal("ETH delivered by a contract", user, "ethereum", "ETH", day, tx, user.address, amount)


def suspended(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    amount = _amount(rng, 50, 1500)
    tx = token_transfer("polygon", _wallet(rng), world.tokens["polygon"]["USDC"], user.address,
                        int(amount.scaleb(6)))
    return DemoAppeal("USDC while Polygon USDC deposits were suspended", user, "polygon", "USDC", day, tx,
                      user.address, amount, plan="request_info")


def exchange_wallet(world: ChainWorld, rng: random.Random, user: UserAccount, day: int) -> DemoAppeal:
    """USDT sent to one of the exchange's own wallets (copied from a withdrawal): no account's deposit,
    credited only once the sender proves they sent it."""
    amount = _amount(rng, 50, 900)
    tx = _usdt(world, "ethereum", _wallet(rng), EXCHANGE_WALLET, amount)
    return DemoAppeal("sent to an exchange wallet", user, "ethereum", "USDT", day, tx, EXCHANGE_WALLET, amount,
                      plan="request_info")


#: (story, weight, needs): needs = which users qualify
STORIES: tuple[tuple[Story, int, str], ...] = (
    (valid_usdt, 26, "full"),
    (valid_native, 8, "full"),
    (amount_mismatch, 4, "full"),
    (credited, 7, "full"),
    (wrong_network, 14, "legacy"),
    (wrong_network_conditional, 4, "full"),
    (wrong_network_contract, 2, "contract"),
    (unlisted, 6, "full"),
    (counterfeit, 5, "full"),
    (failed, 4, "full"),
    (not_ours, 5, "full"),
    (not_found, 4, "full"),
    (below_minimum, 4, "full"),
    (internal, 4, "full"),
    (suspended, 3, "full"),
    (exchange_wallet, 2, "full"),
)


def make_users(world: ChainWorld, rng: random.Random, count: int) -> None:
    """Ordinary users (deposit addresses issued on three networks), legacy users (Ethereum only),
    and a few whose deposit address is a contract wallet deployed on Ethereum."""
    w3 = devchain.web3_for(world.urls["ethereum"])
    for i in range(count):
        user_id = f"user-{i + 1:04d}"
        if i < 3:
            address = devchain.deploy(w3, "Forwarder", USER_WALLETS[0])
            world.users.append(UserAccount(user_id, address, ISSUED_LEGACY, kind="contract"))
        elif i % 3 == 0:
            world.users.append(UserAccount(user_id, fresh_address(rng), ISSUED_LEGACY))
        else:
            world.users.append(UserAccount(user_id, fresh_address(rng), ISSUED_FULL))


def make_appeals(world: ChainWorld, rng: random.Random, count: int) -> None:
    """``count`` appeals spread over :data:`DAYS` days (more recently, more of them), plus the
    special cases: another user's address, a contested transfer, a deposit still confirming."""
    pools = {
        "full": [u for u in world.users if u.kind == "eoa" and u.issued == ISSUED_FULL],
        "legacy": [u for u in world.users if u.kind == "eoa" and u.issued == ISSUED_LEGACY],
        "contract": [u for u in world.users if u.kind == "contract"],
    }
    stories = [s for s, _, _ in STORIES]
    weights = [w for _, w, _ in STORIES]
    needs = {s: n for s, _, n in STORIES}
    for i in range(count):
        day = min(DAYS - 1, int(rng.triangular(0, DAYS, DAYS)))
        # every story at least once (early enough for the team to work it), then by weight
        story = stories[i] if i < len(stories) else rng.choices(stories, weights)[0]
        if i < len(stories):
            day = rng.randint(0, DAYS // 2)
        user = rng.choice(pools[needs[story]])
        world.appeals.append(story(world, rng, user, day))
    # a transfer that reached user B's address, appealed by user A
    a, b = rng.sample(pools["full"], 2)
    appeal = valid_usdt(world, rng, b, DAYS - 3)
    appeal.story, appeal.user = "another user's address", a
    world.appeals.append(appeal)
    # two users appeal the same transfer
    c, d = rng.sample(pools["full"], 2)
    contested = valid_usdt(world, rng, c, DAYS - 2)
    contested.story, contested.also_by = "two users claim one transfer", d
    world.appeals.append(contested)
