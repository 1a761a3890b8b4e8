"""The Bitcoin adapter against the recorded Esplora (testnet) and Blockbook (mainnet) answers.

What each recording shows is taken from fixtures/chains/SOURCES.md. The replay server's Esplora tip
is the highest recorded block height (``TIP``: 2581763 with the recordings of 2026-12-07; read from the
replay so that new recordings do not break the tests), so that block's transaction has 1 confirmation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chains.base import AssetKind, ChainUnavailable, InvalidChainInput, Observation, TxStatus
from chains.bitcoin import BitcoinAdapter
from chains.replay import ReplayServer
from chains.replay import bitcoin as bitcoin_replay
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

P2SH_TX = "87f4cf756eef9979f0fb6a03db2ab2e0fd46060cf97714a990623093fe227a87"
P2WSH_TX = "19c6cd6b7b8a91e1a63d759eedd2818877a624771d38e00c3ffcedfdd09afc50"
TAPROOT_TX = "654c6a28f7ff1915d2b9abc2e18e32a37e0196203d64aced6221651f003f5e94"
UNKNOWN = "ab" * 32
P2WSH_BLOCK = 2131550


@pytest.fixture(scope="module")
def tip(fixtures_dir: Path) -> int:
    replay = bitcoin_replay.build_handler(fixtures_dir)
    assert replay.tip is not None and replay.tip >= P2WSH_BLOCK
    return replay.tip


def _adapter(config: Config, urls: list[str] | None = None, **extra: object) -> BitcoinAdapter:
    base = config.network("bitcoin")
    return BitcoinAdapter(network_at(base, urls or [base.rpc_urls[0]], **{**FAST, **extra}))


@pytest.fixture
def testnet(replay_config: Config, replay_faults: object) -> BitcoinAdapter:
    return _adapter(replay_config, testnet=True)


@pytest.fixture
def blockbook(replay_config: Config, replay_faults: object) -> BitcoinAdapter:
    return _adapter(replay_config, api="blockbook")


def _recorded(fixtures_dir: Path, name: str) -> dict[str, object]:
    data = json.loads((fixtures_dir / "bitcoin" / name).read_text())
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------ Esplora recordings


def test_p2sh_multisig_payment(testnet: BitcoinAdapter, fixtures_dir: Path, tip: int) -> None:
    obs = testnet.lookup(P2SH_TX)
    assert obs.status is TxStatus.SUCCESS
    assert obs.block_number == 1444250 and obs.confirmations == tip - 1444250 + 1
    assert obs.block_hash == "00000000000000578a392afd24073df83d1db9831991a23e3998484c9ccd9dcc"
    assert obs.timestamp == datetime.fromtimestamp(1542731460, tz=UTC)
    assert obs.sender == "2NCgafDsUvFi6tg5bHED6C6Q4shmH7n8jkR"
    assert [(t.kind, t.recipient, t.amount, t.index) for t in obs.transfers] == [
        (AssetKind.NATIVE, "2My1QBzpW7sPdRLeUab7ta1adeKpWferNbs", 100_000, 0),
        (AssetKind.NATIVE, "2NFxDVK4y8KjMRsurZHZuyjtcMtH6hLVhPi", 899_065, 1),
    ]
    assert obs.fee == 935
    inputs = sum(i["value"] for i in obs.details["inputs"])
    assert inputs - sum(t.amount for t in obs.transfers) == obs.fee
    assert [o["type"] for o in obs.details["outputs"]] == ["p2sh", "p2sh"]
    # testnet P2SH shares its version byte with Bitcoin Cash testnet's legacy format
    assert "Bitcoin Cash" in obs.details["address_collisions"]["2My1QBzpW7sPdRLeUab7ta1adeKpWferNbs"][0]


def test_p2wsh_change_and_one_btc(testnet: BitcoinAdapter, tip: int) -> None:
    obs = testnet.lookup(P2WSH_TX)
    assert obs.status is TxStatus.SUCCESS and obs.block_number == P2WSH_BLOCK
    assert obs.confirmations == tip - P2WSH_BLOCK + 1
    assert obs.sender == "tb1q2ajf7llsxvff7r0fpm42tmd5nz43cr8mg85f3788rm4cy7uwajdsusr2mg"
    assert [(t.recipient, t.amount) for t in obs.transfers] == [
        ("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", 100_000_000),
        ("tb1q2wqmwu89mh5ztajnvasj8nr32szq6mfwxzvgvqyydzv8xpnvdpvq34wgpv", 9_698_898_249),
    ]
    assert [o["type"] for o in obs.details["outputs"]] == ["p2sh", "p2wsh"]
    assert obs.fee == 194 and obs.details["weight"] == 758


def test_unknown_txid_is_not_found(testnet: BitcoinAdapter) -> None:
    obs = testnet.lookup(UNKNOWN)
    assert obs.status is TxStatus.NOT_FOUND and obs.transfers == ()


def test_a_404_that_is_not_esplora_s_answer_is_unavailable(replay_config: Config, replay_server: ReplayServer) -> None:
    """A wrong base URL (here: the TRON API) answers 404 too; that must not read as 'not found'."""
    wrong = _adapter(replay_config, [replay_server.url_for("tron")], testnet=True)
    with pytest.raises(ChainUnavailable, match="not Esplora"):
        wrong.lookup(UNKNOWN)


def test_lookup_many(testnet: BitcoinAdapter) -> None:
    given = [P2SH_TX, P2SH_TX.upper(), P2WSH_TX, UNKNOWN]
    found = testnet.lookup_many(given)
    assert list(found) == given and found[P2SH_TX] == found[P2SH_TX.upper()]
    assert [found[h].status for h in given] == [TxStatus.SUCCESS] * 3 + [TxStatus.NOT_FOUND]


def test_incoming_from_the_address_history(testnet: BitcoinAdapter, tip: int) -> None:
    """The replay server builds the address history from the recorded transactions."""
    (obs,) = testnet.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", 0)
    assert obs.tx_hash == P2WSH_TX and obs.confirmations == tip - P2WSH_BLOCK + 1
    block = P2WSH_BLOCK
    assert testnet.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", block, block)[0].tx_hash == P2WSH_TX
    assert testnet.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", block + 1) == []
    assert testnet.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", 0, block - 1) == []
    change = testnet.incoming("tb1q2wqmwu89mh5ztajnvasj8nr32szq6mfwxzvgvqyydzv8xpnvdpvq34wgpv", 0)
    assert [o.tx_hash for o in change] == [P2WSH_TX]
    # an address that only spent in the recordings received nothing
    assert testnet.incoming("2NCgafDsUvFi6tg5bHED6C6Q4shmH7n8jkR", 0) == []


def test_incoming_validates_its_input(testnet: BitcoinAdapter) -> None:
    with pytest.raises(InvalidChainInput) as caught:
        testnet.incoming("bc1prs529jr4v69hlm35u305j6tnk6erk6n9s48nl3raw0gz54k9twls6pvnee", 0)
    assert caught.value.field == "deposit_address" and "mainnet" in caught.value.message
    with pytest.raises(InvalidChainInput) as caught:
        testnet.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", 10, 9)
    assert caught.value.field == "until"


# ------------------------------------------------------------------ Blockbook recording


def test_blockbook_taproot_inscription_transfer(blockbook: BitcoinAdapter, fixtures_dir: Path) -> None:
    obs = blockbook.lookup(TAPROOT_TX)
    recorded = _recorded(fixtures_dir, "blockbook_tx_taproot.json")
    assert obs.status is TxStatus.SUCCESS and obs.block_number == 873006
    assert obs.confirmations == recorded["confirmations"] == 69076  # Blockbook counts them itself
    assert obs.block_hash == recorded["blockHash"]
    assert obs.timestamp == datetime.fromtimestamp(1733199947, tz=UTC)
    assert obs.sender == "bc1p8l0xktmerqgwgrq6l6cejzc3dhph5z8cv6ae083cuvcjhpnten7s2wjswr"
    (t,) = obs.transfers
    assert (t.kind, t.recipient, t.amount) == (
        AssetKind.NATIVE,
        "bc1prs529jr4v69hlm35u305j6tnk6erk6n9s48nl3raw0gz54k9twls6pvnee",
        546,
    )
    assert obs.details["outputs"][0]["type"] == "p2tr"
    assert obs.fee == 1694 == 2240 - 546
    assert "address_collisions" not in obs.details  # segwit addresses collide with nothing


def test_blockbook_unknown_txid_is_not_found(blockbook: BitcoinAdapter) -> None:
    assert blockbook.lookup(UNKNOWN).status is TxStatus.NOT_FOUND


# ------------------------------------------------------------------ addresses and hashes


def test_address_and_hash_validation(
    testnet: BitcoinAdapter, blockbook: BitcoinAdapter, replay_server: ReplayServer
) -> None:
    assert testnet.is_address("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE")  # P2SH
    assert testnet.is_address("tb1q2wqmwu89mh5ztajnvasj8nr32szq6mfwxzvgvqyydzv8xpnvdpvq34wgpv")  # P2WSH
    assert not testnet.is_address("bc1prs529jr4v69hlm35u305j6tnk6erk6n9s48nl3raw0gz54k9twls6pvnee")
    assert blockbook.is_address("bc1prs529jr4v69hlm35u305j6tnk6erk6n9s48nl3raw0gz54k9twls6pvnee")  # taproot
    assert not blockbook.is_address("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE")
    assert (
        blockbook.normalize_address("BC1PRS529JR4V69HLM35U305J6TNK6ERK6N9S48NL3RAW0GZ54K9TWLS6PVNEE")
        == "bc1prs529jr4v69hlm35u305j6tnk6erk6n9s48nl3raw0gz54k9twls6pvnee"
    )
    assert testnet.normalize_tx_hash(P2SH_TX.upper()) == P2SH_TX
    before = replay_server.requests["bitcoin"]
    for bad in (P2SH_TX[:-1], "0x" + P2SH_TX, "g" * 64, P2SH_TX + " "):
        with pytest.raises(InvalidChainInput) as caught:
            testnet.lookup_many([P2WSH_TX, bad])
        assert caught.value.field == "tx_hash"
        assert not testnet.is_tx_hash(bad)
    assert replay_server.requests["bitcoin"] == before


def test_configuration_errors(replay_config: Config) -> None:
    with pytest.raises(ValueError, match="api must be"):
        _adapter(replay_config, api="electrum")
    with pytest.raises(ValueError, match="testnet"):
        _adapter(replay_config, testnet="yes")


# ------------------------------------------------------------------ faults and failover


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
@pytest.mark.parametrize("api", ["esplora", "blockbook"])
def test_a_failing_server_is_unavailable_never_not_found(
    replay_config: Config, replay_server: ReplayServer, replay_faults: object, kind: str, api: str
) -> None:
    adapter = _adapter(replay_config, testnet=api == "esplora", api=api)
    tx_hash = P2SH_TX if api == "esplora" else TAPROOT_TX
    replay_server.faults.inject("bitcoin", kind, count=2)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(tx_hash)
    replay_server.faults.inject("bitcoin", kind, count=2)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(UNKNOWN)  # an unknown txid too: the failure is not a "not found"
    assert adapter.lookup(tx_hash).status is TxStatus.SUCCESS


@pytest.mark.parametrize("kind", ["503", "truncated", "garbage"])
def test_one_bad_answer_is_retried(testnet: BitcoinAdapter, replay_server: ReplayServer, kind: str) -> None:
    clean = testnet.lookup_many([P2SH_TX, P2WSH_TX])
    replay_server.faults.inject("bitcoin", kind, count=1)
    assert testnet.lookup_many([P2SH_TX, P2WSH_TX]) == clean


def test_tip_failure_makes_the_lookup_unavailable(testnet: BitcoinAdapter, replay_server: ReplayServer) -> None:
    replay_server.faults.inject("bitcoin", "garbage", count=2, path="/blocks/tip/height")
    with pytest.raises(ChainUnavailable):
        testnet.lookup(P2SH_TX)


@pytest.fixture
def broken_server(fixtures_dir: Path) -> Iterator[ReplayServer]:
    with ReplayServer({"bitcoin": bitcoin_replay.build_handler(fixtures_dir)}, hold_seconds=2.0) as server:
        server.faults.inject("bitcoin", "429", rate=1.0)
        yield server


def test_failover_to_the_second_url(
    replay_config: Config, replay_server: ReplayServer, broken_server: ReplayServer, replay_faults: object
) -> None:
    good = replay_config.network("bitcoin").rpc_urls[0]
    adapter = _adapter(replay_config, [broken_server.url_for("bitcoin"), good], testnet=True, cooldown_seconds=60)
    assert adapter.lookup(P2WSH_TX).transfers[0].amount == 100_000_000
    first, second = adapter.transport.state()
    assert first.failures >= 1 and "429" in (first.last_error or "") and second.failures == 0
    assert broken_server.requests["bitcoin"] >= 1


def test_observation_round_trips_through_json(testnet: BitcoinAdapter, blockbook: BitcoinAdapter) -> None:
    for obs in (testnet.lookup(P2SH_TX), testnet.lookup(P2WSH_TX), blockbook.lookup(TAPROOT_TX)):
        assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs
