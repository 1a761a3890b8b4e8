"""The TRON adapter against the recorded java-tron answers (served by the replay server).

What each recording shows is taken from fixtures/chains/SOURCES.md; the head block the replay server
reports is the highest recorded block (75772270), so that block's transaction has 1 confirmation.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest

from chains import addresses
from chains.base import AssetKind, ChainUnavailable, InvalidChainInput, Observation, TxStatus
from chains.replay import ReplayServer
from chains.replay import tron as tron_replay
from chains.tron import TronAdapter, decode_call_transfer, decode_log_transfers, tron_address
from recovery.config import Config
from tests.fixtures_replay import FAST, network_at

TRX = "5a9935a1b7be0150a511111582bbfed62ddb873333b3986bd712e6105fe90ad5"
TRC20_CALL = "0b9e01dde099e590564200cbc9f348bb289d6751be8c7a30f70e58355880c9da"
MEMO_TX = "5977852dfc1e2009a54436efcd896153d459e4ea67a50e931a8d145a58ecee72"
TRC20_INFO = "0af79242191c6728b79e858a36a4b5c65e4e52b9fcee4dc5af30eac57b6d0953"
USDT = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"
UNKNOWN = "ab" * 32
HEAD = 75772270


@pytest.fixture
def adapter(replay_config: Config, replay_faults: object) -> TronAdapter:
    return TronAdapter(network_at(replay_config.network("tron"), [_url(replay_config)], **FAST))


def _url(config: Config) -> str:
    return config.network("tron").rpc_urls[0]


def _load(fixtures_dir: Path, name: str) -> dict[str, object]:
    data = json.loads((fixtures_dir / "tron" / name).read_text())
    assert isinstance(data, dict)
    return data


# ------------------------------------------------------------------ every recording, decoded


def test_trx_transfer(adapter: TronAdapter) -> None:
    obs = adapter.lookup(TRX)
    assert obs.status is TxStatus.SUCCESS
    assert obs.block_number == 75772270 and obs.confirmations == 75772270 - HEAD + 1
    assert obs.timestamp == datetime.fromtimestamp(1757976723, tz=UTC)
    assert obs.sender == "TEB39Rt69QkgD1BKhqaRNqGxfQzCarkRCb"
    assert obs.fee == 1_100_000  # 1 TRX activation + 0.1 TRX bandwidth
    assert obs.memo is None
    (t,) = obs.transfers
    assert (t.kind, t.sender, t.recipient, t.amount, t.contract) == (
        AssetKind.NATIVE,
        "TEB39Rt69QkgD1BKhqaRNqGxfQzCarkRCb",
        "TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51",
        25_000_000,
        None,
    )
    assert obs.details["contract_type"] == "TransferContract"
    assert obs.details["net_fee"] == 100_000


def test_trc20_call_without_info_is_pending_with_the_call_data_transfer(
    adapter: TronAdapter, fixtures_dir: Path
) -> None:
    """No info body was recorded for this hash: the node answers {} for it, as for a transaction
    not yet in a block; the body's transfer(address,uint256) call still says where it goes."""
    obs = adapter.lookup(TRC20_CALL)
    assert obs.status is TxStatus.PENDING and obs.block_number is None and obs.confirmations == 0
    assert obs.sender == "TEB39Rt69QkgD1BKhqaRNqGxfQzCarkRCb"
    (t,) = obs.transfers
    assert (t.kind, t.recipient, t.amount, t.contract) == (
        AssetKind.TOKEN,
        "TL1mBABLk68nZwt92dgGc43p5uk1j3YtY9",
        25_000_000,
        USDT,
    )
    assert obs.details["attempted"]["recipient"] == "TL1mBABLk68nZwt92dgGc43p5uk1j3YtY9"
    # the quirk the recording shows: the address word carries the 0x41 prefix byte
    body = _load(fixtures_dir, "gettransactionbyid_trc20_usdt_transfer.json")
    data = body["raw_data"]["contract"][0]["parameter"]["value"]["data"]  # type: ignore[index]
    assert data[8 : 8 + 24] == "0" * 22 + "41"
    assert obs.details["fee_limit"] == 32_831_820


def test_memo_from_raw_data(adapter: TronAdapter) -> None:
    obs = adapter.lookup(MEMO_TX)
    assert obs.memo == "=:TRON.USDT:TNAwd1WFe7GHTxovGU9MeT6mi3J4KAZMvP:0/1/0:g1:50"
    (t,) = obs.transfers
    assert (t.kind, t.sender, t.recipient, t.amount) == (
        AssetKind.NATIVE,
        "TNAwd1WFe7GHTxovGU9MeT6mi3J4KAZMvP",
        "TRsfEERvjCap9cAuZqmFc9FztLzgYnAy3C",
        200_000_000,
    )
    assert obs.status is TxStatus.PENDING  # no info body was recorded for it


def test_trc20_transfer_log_from_info_alone(adapter: TronAdapter) -> None:
    obs = adapter.lookup(TRC20_INFO)
    assert obs.status is TxStatus.SUCCESS
    assert obs.block_number == 30864600 and obs.confirmations == HEAD - 30864600 + 1
    assert obs.timestamp == datetime.fromtimestamp(1623056091, tz=UTC)
    assert obs.details["body_missing"] is True and obs.details["transfers_from"] == "event logs"
    (t,) = obs.transfers
    assert (t.kind, t.sender, t.recipient, t.amount, t.contract) == (
        AssetKind.TOKEN,
        "TWpZXLfsvVuQuJZLkdWNY7XY2teePqPpz7",
        "TBA6CypYJizwA9XdC7Ubgc5F1bxrQ7SqPt",
        0x1FB6E57F,
        USDT,
    )
    assert t.amount == 532_079_999  # 532.079999 USDT
    assert obs.fee == 0 and obs.details["energy_usage_total"] == 14631


def test_unknown_hash_is_not_found(adapter: TronAdapter, replay_server: ReplayServer) -> None:
    before = replay_server.requests["tron"]
    obs = adapter.lookup(UNKNOWN)
    assert obs.status is TxStatus.NOT_FOUND and not obs.found and obs.transfers == ()
    assert replay_server.requests["tron"] - before == 2  # no head request for nothing found


def test_lookup_many_keys_by_the_given_spelling(adapter: TronAdapter) -> None:
    given = [TRX, "0x" + TRX.upper(), TRC20_INFO, UNKNOWN, MEMO_TX]
    found = adapter.lookup_many(given)
    assert list(found) == given
    assert found[TRX] == found["0x" + TRX.upper()] and found[TRX].tx_hash == TRX
    assert [found[h].status for h in given] == [
        TxStatus.SUCCESS,
        TxStatus.SUCCESS,
        TxStatus.SUCCESS,
        TxStatus.NOT_FOUND,
        TxStatus.PENDING,
    ]
    assert adapter.lookup_many([]) == {}


def test_decoders_on_the_recorded_bodies(fixtures_dir: Path) -> None:
    body = _load(fixtures_dir, "gettransactionbyid_trc20_usdt_transfer.json")
    value = body["raw_data"]["contract"][0]["parameter"]["value"]  # type: ignore[index]
    call = decode_call_transfer(tron_address(value["owner_address"]) or "", USDT, value["data"])
    assert call is not None and (call.recipient, call.amount, call.method) == (
        "TL1mBABLk68nZwt92dgGc43p5uk1j3YtY9",
        25_000_000,
        "transfer",
    )
    # the same call data with the 0x41 byte cleared decodes to the same recipient
    plain = value["data"][:8] + "0" * 24 + value["data"][32:]
    again = decode_call_transfer("TEB39Rt69QkgD1BKhqaRNqGxfQzCarkRCb", USDT, plain)
    assert again is not None and again.recipient == call.recipient
    assert decode_call_transfer("TEB39Rt69QkgD1BKhqaRNqGxfQzCarkRCb", USDT, "095ea7b3" + value["data"][8:]) is None
    info = _load(fixtures_dir, "gettransactioninfobyid_trc20_usdt_transfer.json")
    assert [t.amount for t in decode_log_transfers(info)] == [532_079_999]
    assert decode_log_transfers(_load(fixtures_dir, "gettransactioninfobyid_trx_transfer.json")) == []


def test_addresses_hex_and_base58() -> None:
    assert tron_address("413d9324021d2d2da7805c8e599b00da23bfa2ee2d") == "TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51"
    assert tron_address("a614f803b6fd780986a42c78ec9c7f77e6ded13c") == USDT  # a log's 20-byte address
    assert tron_address(USDT) == USDT
    assert tron_address("not an address") is None and tron_address(None) is None
    assert addresses.normalize_address("tron", "41a614f803b6fd780986a42c78ec9c7f77e6ded13c") == USDT
    # the EVM twin holds the same 20 bytes
    assert addresses.tron_to_evm(USDT).lower() == "0xa614f803b6fd780986a42c78ec9c7f77e6ded13c"
    assert addresses.evm_to_tron("0xa614f803b6fd780986a42c78ec9c7f77e6ded13c") == USDT


def test_adapter_validation(adapter: TronAdapter, replay_server: ReplayServer) -> None:
    assert adapter.is_address("TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51")
    assert not adapter.is_address("TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv5l")
    assert (
        adapter.normalize_address("413d9324021d2d2da7805c8e599b00da23bfa2ee2d") == "TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51"
    )
    assert adapter.normalize_tx_hash("0x" + TRX.upper()) == TRX
    assert adapter.is_tx_hash(TRX) and not adapter.is_tx_hash(TRX[:-1])
    before = replay_server.requests["tron"]
    for bad in (TRX[:-1], TRX + "0", "zz" * 32, " " + TRX, ""):
        with pytest.raises(InvalidChainInput) as caught:
            adapter.lookup_many([TRX, bad])
        assert caught.value.field == "tx_hash"
    with pytest.raises(TypeError):
        adapter.lookup_many(TRX)
    assert replay_server.requests["tron"] == before  # refused before any request


# ------------------------------------------------------------------ faults and failover


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
def test_a_node_that_keeps_failing_is_unavailable_never_not_found(
    adapter: TronAdapter, replay_server: ReplayServer, kind: str
) -> None:
    replay_server.faults.inject("tron", kind, count=2)  # retry_attempts = 2, one URL
    with pytest.raises(ChainUnavailable) as caught:
        adapter.lookup(TRX)
    assert caught.value.network == "tron"
    assert replay_server.faults.pending() == 0
    assert adapter.lookup(TRX).status is TxStatus.SUCCESS


@pytest.mark.parametrize("kind", ["503", "truncated", "empty"])
def test_one_bad_answer_is_retried(adapter: TronAdapter, replay_server: ReplayServer, kind: str) -> None:
    clean = adapter.lookup(TRC20_INFO)
    replay_server.faults.inject("tron", kind, count=1)
    assert adapter.lookup(TRC20_INFO) == clean


def test_unknown_hash_under_faults_is_never_not_found(adapter: TronAdapter, replay_server: ReplayServer) -> None:
    replay_server.faults.inject("tron", "empty", count=2, path="/wallet/gettransactioninfobyid")
    with pytest.raises(ChainUnavailable):
        adapter.lookup(UNKNOWN)


def test_head_fault_makes_the_lookup_unavailable(adapter: TronAdapter, replay_server: ReplayServer) -> None:
    replay_server.faults.inject("tron", "503", count=2, path="/wallet/getnowblock")
    with pytest.raises(ChainUnavailable):
        adapter.lookup(TRX)


@pytest.fixture
def broken_server(fixtures_dir: Path) -> Iterator[ReplayServer]:
    with ReplayServer({"tron": tron_replay.build_handler(fixtures_dir)}, hold_seconds=2.0) as server:
        server.faults.inject("tron", "503", rate=1.0)
        yield server


def test_failover_to_the_second_url(
    replay_config: Config, replay_server: ReplayServer, broken_server: ReplayServer, replay_faults: object
) -> None:
    net = network_at(
        replay_config.network("tron"),
        [broken_server.url_for("tron"), _url(replay_config)],
        **{**FAST, "cooldown_seconds": 60},
    )
    adapter = TronAdapter(net)
    obs = adapter.lookup(TRX)
    assert obs.status is TxStatus.SUCCESS and obs.transfers[0].amount == 25_000_000
    first, second = adapter.transport.state()
    assert first.failures >= 1 and first.cooling_for > 0 and "503" in (first.last_error or "")
    assert second.failures == 0
    # the broken URL now cools down: the next lookup goes straight to the good one
    asked = broken_server.requests["tron"]
    adapter.lookup(TRC20_INFO)
    assert broken_server.requests["tron"] == asked


# ------------------------------------------------------------------ incoming


def test_incoming_validates_its_input(adapter: TronAdapter) -> None:
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming("0x3d9324021d2d2da7805c8e599b00da23bfa2ee2d", 0)
    assert caught.value.field == "deposit_address"
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming("TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51", 100, 99)
    assert caught.value.field == "until"
    with pytest.raises(InvalidChainInput):
        adapter.incoming("TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51", -1)


def test_incoming_without_a_recorded_history_is_unavailable_not_empty(adapter: TronAdapter) -> None:
    """No TronGrid account-history answer was recorded; the replay server says so with a 501, and
    the adapter must not turn that into "nothing arrived"."""
    with pytest.raises(ChainUnavailable):
        adapter.incoming("TFanVGmnjKqFRd8dVQAccZE2t42Vu4rv51", 1_757_976_000)


def test_observation_round_trips_through_json(adapter: TronAdapter) -> None:
    for tx_hash in (TRX, TRC20_CALL, MEMO_TX, TRC20_INFO):
        obs = adapter.lookup(tx_hash)
        assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs
