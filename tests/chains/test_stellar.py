"""Stellar adapter: every recorded Horizon answer in ``stellar/`` decoded and checked against what
SOURCES.md says it shows, then the adapter over HTTP against the replay server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from stellar_sdk import MuxedAccount

from chains.base import AssetKind, ChainAdapter, ChainUnavailable, InvalidChainInput, TxStatus
from chains.registry import adapter_for
from chains.replay import ReplayServer
from chains.stellar import (
    STROOP_DECIMALS,
    StellarAdapter,
    decode_transaction,
    ledger_of_paging_token,
    parse_payment_record,
    parse_payments_page,
)
from chains.transport import UnusableAnswer
from recovery.config import Config, Network
from recovery.registry import DepositAddress, InMemoryRegistry
from recovery.rules import Appeal, classify

pytestmark = pytest.mark.fixtures

PUBNET_XLM = "dbc69dff72e4ca7ddf47311e12da09ac5952c777d19855f95f13b0ec624f8baf"
TEXT_MEMO = "cb9a25394acb6fe0d1d9bdea5afc01cafe2c6fde59a96ddceb2564a65780a81f"
CREDIT12 = "85b0084a82a055dc1b3c9312277c97b13baca5377d23d4b4fde36c01467edf9c"
PAYMENTS_TX = "622d566df3ee61848be3c3211f614310082f4a09c959cbee7be6990b0dccdba8"
GAME_COIN = "nCntGameCoin:GDLMDXI6EVVUIXWRU4S2YVZRMELHUEX3WKOX6XFW77QQC6KZJ4CZ7NRB"
PAYMENT_RECEIVER = "GAWHFIIG2LTBO4Q5ZCTMPGYVV3FSQE4TCXPFTL44V5BN5FLR3GRGJB5G"
PAYMENT_SENDER = "GCEDON5M2HFQ5P5MVWYGKH3K4S3ZKQFZ5AYLWNXPSGVOHLJUXQRYL35Z"
#: the highest recorded ledger (transaction dbc69dff…), which the replay's GET / reports
HEAD = 58575576
# the recordings of 2026-12-07 (SOURCES.md)
FAILED_TX = "ced549af061dc39758ce222f78f027e82b5077176a4e2efbeb4dc04086150b7d"
FEE_BUMP = "01f25077d5924dc2381055b22befacfdb7d6466325e2511d9cc0739d23bf14f0"
FEE_BUMP_INNER = "e96bb6dfa0085e03c19c8dfb6dff81bb3d00e25e80a3d2f2c1c795f88b2f6b7c"
FEE_PAYER = "GA4QH4AJGERVYX4PBY55JYTQJ4RTLJIBYV7OCYIV56LWZE5MVDH3R3UQ"
INNER_SOURCE = "GBYODLTHLR7PPEVS2LSXHXHWSL4OGMEFFIINE23RPWJAWVN6WZXZD25O"
STRICT_SEND_OP = "150660589386170369"
STRICT_RECEIVE_FAILED_OP = "150661572933464065"
HISTORY_ACCOUNT = "GDKIJJIKXLOM2NRMPNQZUUYK24ZPVFC6426GZAEP3KUK6KEJLACCWNMX"


def muxed(account: str, muxed_id: int) -> str:
    address = MuxedAccount(account, muxed_id).account_muxed
    assert address is not None
    return address


def load(fixtures_dir: Path, name: str) -> Any:
    return json.loads((fixtures_dir / "stellar" / name).read_bytes())


# --------------------------------------------------------------------------------------------------
# the recordings, decoded directly


def test_pubnet_native_payment_without_memo(fixtures_dir: Path) -> None:
    obs = decode_transaction("stellar", load(fixtures_dir, "transaction_success_memo_none.json"), HEAD)
    assert obs.tx_hash == PUBNET_XLM and obs.status is TxStatus.SUCCESS
    assert obs.block_number == HEAD and obs.confirmations == 1 and obs.fee == 100
    assert obs.memo is None and obs.details["memo_type"] == "none"
    (t,) = obs.transfers
    assert t.kind is AssetKind.NATIVE and t.contract is None
    assert t.sender == "GAN2JTIWVKGZIDN5R2AFYLUV4IUXLBG3MQA3R5ECIIM5RUYT74Y3LDOP"
    assert t.recipient == "GDMP73OGYG7RFR4AHAIFF3B5X3HJ6HP7PJURS5SHMYOYPSLKD3VYVTPF"
    assert t.amount == 100_000  # 0.01 XLM in stroops


def test_text_memo_self_payment_2019_schema(fixtures_dir: Path) -> None:
    obs = decode_transaction("stellar", load(fixtures_dir, "transaction_memo_text_testnet_docs.json"), HEAD)
    assert obs.tx_hash == TEXT_MEMO and obs.status is TxStatus.SUCCESS
    assert obs.memo == "afsdfas" and obs.details["memo_type"] == "text"
    assert obs.fee == 100  # fee_paid: the schema has no fee_charged
    (t,) = obs.transfers
    assert t.sender == t.recipient == "GCDLRUXOD6KA53G5ILL435TZAISNLPS4EKIHSOVY3MVD3DVJ333NO4DT"
    assert t.amount == 500 * 10**STROOP_DECIMALS and t.kind is AssetKind.NATIVE
    assert obs.confirmations == HEAD - 2352988 + 1


def test_credit_asset_2018_schema_without_successful(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "transaction_memo_none_testnet_docs.json")
    assert "successful" not in body  # success is read from result_xdr
    obs = decode_transaction("stellar", body, HEAD)
    assert obs.tx_hash == CREDIT12 and obs.status is TxStatus.SUCCESS and obs.memo is None
    (t,) = obs.transfers
    assert t.kind is AssetKind.TOKEN and t.contract == GAME_COIN and t.symbol == "nCntGameCoin"
    assert t.decimals == 7 and t.amount == 10**7
    assert t.recipient == "GB4OMVGHXSZRVT6KTXV22LPWIVYZES7B43RQ3P54BKIH3U36GOPS645Y"


def test_payments_page_of_a_transaction(fixtures_dir: Path) -> None:
    (record,) = parse_payments_page(load(fixtures_dir, "payments_for_transaction_credit_alphanum12_testnet_docs.json"))
    assert record.tx_hash == PAYMENTS_TX and record.ledger == ledger_of_paging_token("43456504870744065") == 10118006
    assert record.successful is None  # the old schema has no transaction_successful
    t = record.transfer
    assert t is not None and (t.sender, t.recipient) == (PAYMENT_SENDER, PAYMENT_RECEIVER)
    assert (t.contract, t.amount, t.index) == (GAME_COIN, 10**7, 0)


def test_an_answer_contradicting_its_result_xdr_is_unusable(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "transaction_success_memo_none.json")
    with pytest.raises(UnusableAnswer, match="disagrees"):
        decode_transaction("stellar", {**body, "successful": False}, HEAD)
    with pytest.raises(UnusableAnswer):
        decode_transaction("stellar", {**body, "envelope_xdr": "AAAA"}, HEAD)


def test_failed_path_payment_is_failed_and_its_fee_charged(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "horizon_tx_failed_path_payment_strict_receive_too_few_offers.json")
    obs = decode_transaction("stellar", body, HEAD)
    assert obs.tx_hash == FAILED_TX and obs.block_number == 52429114
    assert obs.status is TxStatus.FAILED and obs.transfers == ()
    assert obs.fee == 100  # fee_charged "100": paid although nothing was delivered
    assert obs.sender == "GAC6MRNVZNVFKAQRFGVJBNZ734T3HPJH3OVTKY433STDPZVRDI75UDLD"
    assert "fee_account" not in obs.details  # source = fee_account
    assert obs.memo is None and obs.details["memo_type"] == "none"
    assert obs.details["result_code"] == "txFAILED"
    assert obs.details["operation_results"] == ["PATH_PAYMENT_STRICT_RECEIVE_TOO_FEW_OFFERS"]
    (attempt,) = obs.details["attempted"]  # what it tried: 13.0034153 yXLM to GAINDVHG…HAUS
    assert attempt["to"] == "GAINDVHGHGSIH6AO4C2DBLOWSPGL6CVPBBNKVXIOFZANAWFZPTVOHAUS"
    assert attempt["asset"].startswith("yXLM:") and attempt["amount"] == 130_034_153


def test_fee_bump_sender_is_the_inner_source_not_the_fee_payer(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "horizon_tx_fee_bump.json")
    assert body["fee_account"] != body["source_account"]
    obs = decode_transaction("stellar", body, HEAD)
    assert obs.tx_hash == FEE_BUMP and obs.status is TxStatus.SUCCESS and obs.block_number == 52428726
    assert obs.sender == INNER_SOURCE != FEE_PAYER
    assert obs.details["fee_account"] == FEE_PAYER and obs.details["fee_bump"] is True
    assert obs.details["inner_hash"] == FEE_BUMP_INNER and obs.fee == 200
    # its one operation, a strict-receive path payment, names its own source (here the fee payer),
    # and is credited in the destination asset and amount: 1.1352859 XLM
    (t,) = obs.transfers
    assert (t.sender, t.recipient, t.kind, t.contract) == (FEE_PAYER, FEE_PAYER, AssetKind.NATIVE, None)
    assert t.amount == 11_352_859


def test_a_fee_account_contradicting_the_envelope_is_unusable(fixtures_dir: Path) -> None:
    body = load(fixtures_dir, "horizon_tx_fee_bump.json")
    with pytest.raises(UnusableAnswer, match="fee_account"):
        decode_transaction("stellar", {**body, "fee_account": INNER_SOURCE}, HEAD)
    with pytest.raises(UnusableAnswer, match="source_account"):
        decode_transaction("stellar", {**body, "source_account": FEE_PAYER}, HEAD)


def test_path_payment_operation_records(fixtures_dir: Path) -> None:
    sent = parse_payment_record(load(fixtures_dir, "horizon_op_path_payment_strict_send.json"))
    assert sent.kind == "path_payment_strict_send" and sent.successful is True and sent.recognised
    assert sent.tx_hash.startswith("add2a945") and sent.tx_hash.endswith("eb31")
    assert sent.ledger == int(STRICT_SEND_OP) >> 32
    t = sent.transfer
    assert t is not None and t.kind is AssetKind.TOKEN and t.symbol == "BTC"
    assert t.contract == "BTC:GAUTUYY2THLF7SGITDFMXJVYH3LHDSMGEAKSBU267M2K7A3W543CKUEF"
    assert t.amount == 5045  # 0.0005045 BTC arrived, not the 57.49888 XLM that left
    assert t.sender == t.recipient == sent.recipient == "GDBKRQWEUJGRWWCAGK75L4PZXM2S3DQQIG6S43Y2GMN3IUFZWCLSRA46"

    failed = parse_payment_record(load(fixtures_dir, "horizon_op_path_payment_strict_receive_failed.json"))
    assert failed.kind == "path_payment_strict_receive" and failed.successful is False
    assert failed.transfer is None  # listed, but a failed operation delivers nothing
    assert failed.recipient == "GDQLBBDNG5L3TZLR5RPVQFT4CUORSTHWX3GJBHCCADXBJV55ZHW6CL5B"
    assert failed.tx_hash.startswith("999119fc") and failed.tx_hash.endswith("629e")


def test_account_payments_page_records(fixtures_dir: Path) -> None:
    page = load(fixtures_dir, "horizon_account_payments_page_native_mainnet.json")
    assert "next" in page["_links"] and "prev" in page["_links"]
    records = parse_payments_page(page)
    assert len(records) == 25 and all(r.kind == "payment" and r.successful is True for r in records)
    assert all(r.transfer is not None and r.transfer.kind is AssetKind.NATIVE for r in records)
    first = records[0]
    assert first.tx_hash.startswith("9fbf86268628fc41") and first.tx_hash.endswith("d648")
    assert first.transfer is not None and first.transfer.amount == 8_354_897 * 10**STROOP_DECIMALS
    assert first.transfer.recipient == first.recipient == HISTORY_ACCOUNT
    assert first.transfer.sender.startswith("GCTUYXRT") and first.transfer.sender.endswith("VHYN")
    amounts = {r.transfer.amount for r in records if r.transfer is not None}
    assert {1, 100} <= amounts  # the dust: 0.0000001 and 0.0000100 XLM
    by_tx = [r.tx_hash for r in records]
    (double,) = {h for h in by_tx if by_tx.count(h) == 2}  # one transaction with two payments
    assert double.startswith("fc663771")
    assert [r.transfer.index for r in records if r.tx_hash == double and r.transfer] == [4, 3]  # TOID order - 1
    incoming = [r for r in records if r.recipient == HISTORY_ACCOUNT]
    assert 0 < len(incoming) < 25  # incoming and outgoing
    assert all(r.transaction is None for r in records)  # no memo, no transaction in a payment record


# --------------------------------------------------------------------------------------------------
# over HTTP


def network_at(base: Network, *urls: str, **extra: Any) -> Network:
    data = base.model_dump()
    data.update(base.model_extra or {})
    data.update(rpc_urls=list(urls), timeout_seconds=0.5, connect_timeout_seconds=0.5, retry_attempts=1,
                retry_wait_max_seconds=0.01, cooldown_seconds=0)
    data.update(extra)
    return Network.model_validate(data)


@pytest.fixture
def adapter(replay_config: Config) -> StellarAdapter:
    return StellarAdapter(replay_config.networks["stellar"])


def test_lookup_every_recorded_transaction(adapter: StellarAdapter) -> None:
    unknown = "ab" * 32
    observed = adapter.lookup_many([PUBNET_XLM.upper(), TEXT_MEMO, CREDIT12, unknown])
    assert observed[PUBNET_XLM.upper()].tx_hash == PUBNET_XLM
    assert observed[PUBNET_XLM.upper()].confirmations == 1
    assert observed[TEXT_MEMO].memo == "afsdfas"
    assert observed[CREDIT12].transfers[0].contract == GAME_COIN
    assert observed[unknown].status is TxStatus.NOT_FOUND


def test_payments_of_a_transaction_over_http(adapter: StellarAdapter) -> None:
    records = adapter.payments(PAYMENTS_TX)
    assert records is not None and [r.transfer.recipient for r in records if r.transfer] == [PAYMENT_RECEIVER]
    assert adapter.payments("ab" * 32) is None
    with pytest.raises(ChainUnavailable):  # recorded transaction, unrecorded payments page: 501
        adapter.payments(PUBNET_XLM)


def test_incoming_for_accounts_no_recorded_account_page_covers_is_not_recorded(adapter: StellarAdapter) -> None:
    """These accounts appear only in a transaction's payments page or in transactions; their real
    account history holds payments nobody recorded: the replay answers 501, never an empty page,
    and the adapter says "try later", never "nothing arrived"."""
    for account in (PAYMENT_RECEIVER, PAYMENT_SENDER, "GDMP73OGYG7RFR4AHAIFF3B5X3HJ6HP7PJURS5SHMYOYPSLKD3VYVTPF"):
        with pytest.raises(ChainUnavailable, match="501"):
            adapter.incoming(account, 10118007)
    with pytest.raises(ChainUnavailable):  # a muxed address reads its base account's history
        adapter.incoming(muxed(PAYMENT_RECEIVER, 42), 0)


def test_incoming_for_an_account_no_recording_names_is_empty(adapter: StellarAdapter) -> None:
    # Horizon's 404 for the account: it never received anything
    assert adapter.incoming("GAAZI4TCR3TY5OJHCTJC2A4QSY6CJWJH5IAJTGKIN2ER7LBNVKOCCWN7", 0) == []


def test_lookup_the_new_recordings_over_http(adapter: StellarAdapter) -> None:
    observed = adapter.lookup_many([FAILED_TX, FEE_BUMP])
    failed, bumped = observed[FAILED_TX], observed[FEE_BUMP]
    assert failed.status is TxStatus.FAILED and failed.fee == 100
    assert failed.confirmations == HEAD - 52429114 + 1
    assert bumped.status is TxStatus.SUCCESS and bumped.sender == INNER_SOURCE
    assert bumped.details["fee_account"] == FEE_PAYER


def test_what_the_replay_cannot_serve_is_never_not_found(adapter: StellarAdapter) -> None:
    """Horizon serves a fee-bump transaction by its inner hash too, and knows every transaction its
    records list: nobody recorded those bodies, so the replay says 501, never 404."""
    with pytest.raises(ChainUnavailable, match="501"):
        adapter.lookup(FEE_BUMP_INNER)
    listed = "9fbf86268628fc41da6c984a764793f43bcac3b92ed2add6c87ecd0c9fe4d648"  # in the account page
    with pytest.raises(ChainUnavailable, match="501"):
        adapter.lookup(listed)


def test_operations_over_http(adapter: StellarAdapter) -> None:
    sent = adapter.operation(STRICT_SEND_OP)
    assert sent is not None and sent.transfer is not None and sent.transfer.symbol == "BTC"
    failed = adapter.operation(STRICT_RECEIVE_FAILED_OP)
    assert failed is not None and failed.successful is False and failed.transfer is None
    assert adapter.operation("1") is None  # Horizon's 404
    with pytest.raises(InvalidChainInput):
        adapter.operation("0x10")


def test_muxed_addresses_resolve_to_account_and_id(adapter: StellarAdapter) -> None:
    address = muxed(PAYMENT_RECEIVER, 2**64 - 1)
    assert adapter.is_address(address) and adapter.normalize_address(address) == address
    assert adapter.split_address(address) == (PAYMENT_RECEIVER, 2**64 - 1)
    assert adapter.split_address(PAYMENT_RECEIVER) == (PAYMENT_RECEIVER, None)
    with pytest.raises(InvalidChainInput):
        adapter.split_address(PAYMENT_RECEIVER.lower())


@pytest.mark.parametrize("bad", ["", "0x" + "ab" * 32, "ab" * 33, "gg" * 32])
def test_invalid_hashes_are_refused_before_any_request(
    adapter: StellarAdapter, replay_server: ReplayServer, bad: str
) -> None:
    before = replay_server.requests["stellar"]
    with pytest.raises(InvalidChainInput) as caught:
        adapter.lookup_many([PUBNET_XLM, bad])
    assert caught.value.field == "tx_hash"
    assert replay_server.requests["stellar"] == before


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
def test_faults_are_unavailable_never_not_found(replay_config: Config, replay_server: ReplayServer,
                                                 replay_faults: Any, kind: str) -> None:
    adapter = StellarAdapter(network_at(replay_config.networks["stellar"], replay_server.url_for("stellar")))
    replay_faults.inject("stellar", kind, count=1)
    if kind == "truncated":  # the 404 status line arrives intact: Horizon said "not found"
        assert adapter.lookup("ab" * 32).status is TxStatus.NOT_FOUND
    else:
        with pytest.raises(ChainUnavailable):
            adapter.lookup("ab" * 32)
    replay_faults.inject("stellar", kind, count=1)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(PUBNET_XLM)
    assert adapter.lookup(PUBNET_XLM).status is TxStatus.SUCCESS


def test_failover_to_the_second_url(replay_config: Config, replay_server: ReplayServer) -> None:
    adapter = StellarAdapter(
        network_at(replay_config.networks["stellar"], "http://127.0.0.1:9/stellar", replay_server.url_for("stellar"))
    )
    assert adapter.lookup(TEXT_MEMO).memo == "afsdfas"
    first, second = adapter.transport.state()
    assert first.failures >= 1 and second.failures == 0


def test_head_and_a_horizon_behind_a_seen_ledger(adapter: StellarAdapter) -> None:
    assert adapter.head() == HEAD
    with pytest.raises(ChainUnavailable, match="behind"):
        adapter.head(at_least=HEAD + 1)


def test_the_registry_serves_the_family(replay_config: Config) -> None:
    adapter = adapter_for(replay_config.network("stellar"))
    assert isinstance(adapter, StellarAdapter) and isinstance(adapter, ChainAdapter)


@pytest.mark.parametrize(
    ("tx_hash", "address", "category", "code"),
    [
        (TEXT_MEMO, "GCDLRUXOD6KA53G5ILL435TZAISNLPS4EKIHSOVY3MVD3DVJ333NO4DT", "wrong_memo", "memo_malformed"),
        (PUBNET_XLM, "GDMP73OGYG7RFR4AHAIFF3B5X3HJ6HP7PJURS5SHMYOYPSLKD3VYVTPF", "missing_memo", "missing_memo"),
    ],
    ids=["text-memo-on-a-memo-id-network", "no-memo"],
)
def test_memos_through_the_rules(
    adapter: StellarAdapter, replay_config: Config, tx_hash: str, address: str, category: str, code: str
) -> None:
    registry = InMemoryRegistry()
    registry.add_address(DepositAddress("alice", "stellar", address, "12", "eoa"))
    obs = adapter.lookup(tx_hash)
    decision = classify(Appeal("alice", "stellar", tx_hash), {"stellar": obs}, registry, replay_config,
                        datetime(2026, 1, 1, tzinfo=UTC))
    assert decision.category == category and code in [r.code for r in decision.reasons]


def test_a_failed_transaction_through_the_rules(adapter: StellarAdapter, replay_config: Config) -> None:
    registry = InMemoryRegistry()
    registry.add_address(
        DepositAddress("alice", "stellar", "GAINDVHGHGSIH6AO4C2DBLOWSPGL6CVPBBNKVXIOFZANAWFZPTVOHAUS", "12", "eoa")
    )
    obs = adapter.lookup(FAILED_TX)
    decision = classify(Appeal("alice", "stellar", FAILED_TX), {"stellar": obs}, registry, replay_config,
                        datetime(2026, 1, 1, tzinfo=UTC))
    assert decision.category == "tx_failed" and "tx_failed" in [r.code for r in decision.reasons]
