"""The Bitcoin adapter against the recorded Esplora (testnet) and Blockbook (mainnet) answers.

What each recording shows is taken from fixtures/chains/SOURCES.md. The replay server's Esplora tip
is the highest recorded block height (``TIP``: 2581763 with the recordings of 2026-12-07; read from the
replay so that new recordings do not break the tests), so that block's transaction has 1 confirmation.
The recorded tip body (``/blocks/tip/height``, served with ``recorded_head=True``) is above every
recorded Esplora transaction; a tip *below* a transaction's block is made by a replay of only some
recordings. Blockbook's new recordings are in test_bitcoin_blockbook.py, the mutation properties in
test_bitcoin_mutations.py.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chains.base import AssetKind, ChainUnavailable, InvalidChainInput, Observation, TxStatus
from chains.bitcoin import BitcoinAdapter, script_address, script_type
from chains.replay import ReplayServer, Reply, Request
from chains.replay import bitcoin as bitcoin_replay
from chains.replay.recorded import read_recordings
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

P2SH_TX = "87f4cf756eef9979f0fb6a03db2ab2e0fd46060cf97714a990623093fe227a87"
P2WSH_TX = "19c6cd6b7b8a91e1a63d759eedd2818877a624771d38e00c3ffcedfdd09afc50"
TAPROOT_TX = "654c6a28f7ff1915d2b9abc2e18e32a37e0196203d64aced6221651f003f5e94"
OP_RETURN_TX = "9b0c48b79fe40c67f7a2837e6e59a138a16671caf7685dcd831bd3c51b9f6d21"
UNKNOWN = "ab" * 32
P2SH_BLOCK = 1444250
P2WSH_BLOCK = 2131550
OP_RETURN_BLOCK = 2581763


def recorded_bodies(fixtures_dir: Path, kind: str) -> list[Any]:
    """The parsed bodies of the Bitcoin recordings of one ``kind``, recognised by content as the
    replay does: ``esplora`` (a transaction with ``status``), ``blockbook`` (``blockHeight`` and
    ``confirmations``), ``address`` (a Blockbook address page), ``tip`` (a bare block height)."""
    found = []
    for rec in read_recordings(fixtures_dir / "bitcoin"):
        data = rec.data
        if isinstance(data, bool):
            continue
        if isinstance(data, int):
            shape = "tip"
        elif not isinstance(data, dict):
            continue
        elif "txid" in data and isinstance(data.get("status"), dict):
            shape = "esplora"
        elif "txid" in data and "blockHeight" in data and "confirmations" in data:
            shape = "blockbook"
        elif isinstance(data.get("address"), str) and "page" in data:
            shape = "address"
        else:
            continue
        if shape == kind:
            found.append(data)
    return found


def recorded_tip(fixtures_dir: Path) -> int:
    (tip,) = recorded_bodies(fixtures_dir, "tip")
    assert isinstance(tip, int)
    return tip


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


# ------------------------------------------------------------------ OP_RETURN (recorded 2026-12-07)


def test_op_return_output_is_never_a_transfer(testnet: BitcoinAdapter, tip: int) -> None:
    """SOURCES: 500000 -> mqbKtarY…, vout1 OP_RETURN (value 0, no address, data ef4f66bc…c1c2),
    1956600 change -> mowfvQDr…; fee 6700 from 2463300; block 2581763."""
    obs = testnet.lookup(OP_RETURN_TX)
    assert obs.tx_hash == OP_RETURN_TX and obs.status is TxStatus.SUCCESS
    assert obs.block_number == OP_RETURN_BLOCK and obs.confirmations == tip - OP_RETURN_BLOCK + 1
    assert obs.sender == "mhho1SuBpFHiWVJB6J7v9FQXjcRLHw6pKD"
    assert [(t.recipient, t.amount, t.index) for t in obs.transfers] == [
        ("mqbKtarYKnoEdPheFFDGRjksvEpb2vJGNh", 500_000, 0),
        ("mowfvQDraTDvRgZowL4tx5EatL1u78w65v", 1_956_600, 2),
    ]
    assert [(o["type"], o["address"], o["value"]) for o in obs.details["outputs"]] == [
        ("p2pkh", "mqbKtarYKnoEdPheFFDGRjksvEpb2vJGNh", 500_000),
        ("op_return", None, 0),
        ("p2pkh", "mowfvQDraTDvRgZowL4tx5EatL1u78w65v", 1_956_600),
    ]
    assert obs.details["op_return"] == ["ef4f66bcf4f55bc72c2c8e01894fe944a5fa3be3a8b2a2a474f0447838ddc1c2"]
    assert obs.fee == 6700 == 2_463_300 - 500_000 - 1_956_600
    assert "replaceable" not in obs.details  # confirmed, although its input signals BIP-125 (0xfffffffd)
    assert obs.details["inputs"][0]["sequence"] == 0xFFFFFFFD
    # the recipient's history holds it; the OP_RETURN output credits nobody
    (found,) = testnet.incoming("mqbKtarYKnoEdPheFFDGRjksvEpb2vJGNh", 0)
    assert found == obs


def test_output_scripts_decode_to_the_addresses_the_nodes_name(fixtures_dir: Path) -> None:
    """Every standard output script of every recording pays exactly the address the node names
    (the cross-check the adapter makes before it believes an address)."""
    checked = set()
    for body in recorded_bodies(fixtures_dir, "esplora"):
        for o in body["vout"]:
            assert script_address(o["scriptpubkey"], testnet=True) == o.get("scriptpubkey_address")
            checked.add(script_type(o["scriptpubkey"]))
    for body in recorded_bodies(fixtures_dir, "blockbook"):
        for o in body["vout"]:
            assert [script_address(o["hex"], testnet=False)] == o["addresses"]
            checked.add(script_type(o["hex"]))
    assert checked >= {"p2pkh", "p2sh", "p2wpkh", "p2wsh", "p2tr", "op_return"}


# ------------------------------------------------------------------ tips: recorded, and behind


@pytest.fixture
def recorded_head_server(fixtures_dir: Path) -> Iterator[ReplayServer]:
    with ReplayServer({"bitcoin": bitcoin_replay.build_handler(fixtures_dir, recorded_head=True)}) as server:
        yield server


def test_confirmations_from_the_recorded_tip(
    replay_config: Config, recorded_head_server: ReplayServer, fixtures_dir: Path
) -> None:
    """With the recorded ``/blocks/tip/height`` body (4550094, testnet3), every recorded testnet
    transaction is below the tip: consistent, confirmations counted from it."""
    head = recorded_tip(fixtures_dir)
    adapter = _adapter(replay_config, [recorded_head_server.url_for("bitcoin")], testnet=True)
    assert adapter.tip() == head == 4_550_094
    heights = {b["txid"]: b["status"]["block_height"] for b in recorded_bodies(fixtures_dir, "esplora")}
    assert heights.keys() >= {P2SH_TX, P2WSH_TX, OP_RETURN_TX} and max(heights.values()) <= head
    found = adapter.lookup_many(list(heights))
    assert {h: o.confirmations for h, o in found.items()} == {h: head - b + 1 for h, b in heights.items()}
    assert found[OP_RETURN_TX].confirmations == 4_550_094 - 2_581_763 + 1
    assert all(o.status is TxStatus.SUCCESS for o in found.values())


class _TipOf:
    """The full replay, except ``/blocks/tip/height``, which comes from another replay."""

    def __init__(self, tip_from: bitcoin_replay.BitcoinReplay, rest: bitcoin_replay.BitcoinReplay) -> None:
        self.tip_from, self.rest = tip_from, rest

    def handle(self, request: Request) -> Reply:
        return (self.tip_from if request.path == "/blocks/tip/height" else self.rest).handle(request)


def test_a_tip_below_a_reported_transaction_is_try_later(replay_config: Config, fixtures_dir: Path) -> None:
    """A node whose tip is below the block of a transaction it reports is behind: unavailable
    (fail over, try later), never a count of negative or zero confirmations. The tip here is the
    synthesized tip of a replay built from only the lowest recorded Esplora transaction."""
    recordings = read_recordings(fixtures_dir / "bitcoin")
    esplora = [r for r in recordings if isinstance(r.data, dict) and isinstance(r.data.get("status"), dict)]
    lowest = min(esplora, key=lambda r: r.data["status"]["block_height"])
    subset = bitcoin_replay.BitcoinReplay([lowest])
    assert subset.tip == lowest.data["status"]["block_height"] == P2SH_BLOCK
    full = bitcoin_replay.build_handler(fixtures_dir)
    with ReplayServer({"bitcoin": _TipOf(subset, full)}) as server:
        adapter = _adapter(replay_config, [server.url_for("bitcoin")], testnet=True)
        assert adapter.lookup(P2SH_TX).confirmations == 1  # its own block is the tip: consistent
        for higher in (P2WSH_TX, OP_RETURN_TX):
            with pytest.raises(ChainUnavailable, match="behind"):
                adapter.lookup(higher)
        with pytest.raises(ChainUnavailable, match="behind"):
            adapter.lookup_many([P2SH_TX, P2WSH_TX])  # one transaction above the tip taints the answer
        with pytest.raises(ChainUnavailable, match="behind"):
            adapter.incoming("2NEhVzd2Lom5g7ZF5K1qYrgZLpXecniqHcE", 0)


def test_the_decoder_refuses_a_tip_below_the_block(testnet: BitcoinAdapter, fixtures_dir: Path) -> None:
    (body,) = [b for b in recorded_bodies(fixtures_dir, "esplora") if b["txid"] == OP_RETURN_TX]
    assert testnet.decode_esplora(OP_RETURN_TX, body, OP_RETURN_BLOCK).confirmations == 1
    with pytest.raises(ChainUnavailable, match="behind"):
        testnet.decode_esplora(OP_RETURN_TX, body, OP_RETURN_BLOCK - 1)
    with pytest.raises(ChainUnavailable, match="no tip"):
        testnet.decode_esplora(OP_RETURN_TX, body, None)
