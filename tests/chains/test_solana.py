"""Solana adapter: every recorded ``getTransaction`` answer in ``solana/`` decoded and checked
against what SOURCES.md says it shows, then the adapter over HTTP against the replay server."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from chains.base import AssetKind, ChainAdapter, ChainUnavailable, InvalidChainInput, TxStatus
from chains.registry import adapter_for
from chains.replay import ReplayServer
from chains.solana import SolanaAdapter, account_keys, decode_transaction
from chains.transport import JsonRpcError, Transport
from recovery.config import Config, Network
from recovery.registry import DepositAddress, InMemoryRegistry
from recovery.rules import Appeal, classify

pytestmark = pytest.mark.fixtures

LOOKUP_TABLE = "2CxNRsyRT7y88GBwvAB3hRg8wijMSZh3VNYXAdUesGSyvbRJbRR2q9G1KSEpQENmXHmmMLHiXumw4dp8CvzQMjrM"
SOL_DUST = "t6DpS6U7G2UG4QwDq4mPM7F45Rnttxp2pHGRwTYsF7frxAs7KmSWWDcpMneMUULbKndkZy8iUvSU1AZUsqzDCPN"
USDC_ATA = "4dHnggcXjvmMJY2J6iGqse12PeCYQzuTySgwJa36K8MuntmwNrCNztvYRX5ZGpQXzKjaf7g5vaZM7LTuXLNbi2Zx"
SPL_2021 = "571KPeovLmZJLniYkRJ7Td2Gj71J3pJi5qBThb8mwErsWzMpqw93Ty9YnAmkYuNd9jszGrUm4mK3zvS6BVsRvxZB"
USDC = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v"
USDC_OWNER = "3UJQqKq8Xyx4aVRmHgEwpQZiW7toYRQCTy6Bgp1RdKnK"
USDC_TOKEN_ACCOUNT = "8dqL6jKduEJwfAem49yAvXB8YczkDPgVCgU88VPfTnAP"
LOOKUP_DESTINATION = "G1wZ113tiUHdSpQEBcid8n1x8BAvcWZoZgxPKxgE5B7o"
DUST_RECEIVER = "DfXygSm4jCyNCybVYYK6DwvWqjKee8pbDmJGcLWNDXjh"
SPL_2021_TOKEN_ACCOUNT = "4ijqHixcbzhxQbfJWAoPkvBhokBDRGtXyqVcMN8ywj8W"
#: the highest recorded slot (the USDC transfer), which the replay's getSlot reports
HEAD = 355393521


def result(fixtures_dir: Path, name: str) -> Any:
    data = json.loads((fixtures_dir / "solana" / name).read_bytes())
    return data["result"] if "jsonrpc" in data else data


# --------------------------------------------------------------------------------------------------
# the recordings, decoded directly


def test_sol_transfer_to_a_lookup_table_address_jsonparsed(fixtures_dir: Path) -> None:
    r = result(fixtures_dir, "getTransaction_jsonParsed_sol_transfer_lookup_table_devnet_docs.json")
    obs = decode_transaction("solana", LOOKUP_TABLE, r, HEAD)
    assert obs.status is TxStatus.SUCCESS and obs.block_number == 166974442 and obs.fee == 5000
    (t,) = obs.transfers
    assert (t.kind, t.recipient, t.amount) == (AssetKind.NATIVE, LOOKUP_DESTINATION, 10_000_000)
    assert t.sender == obs.sender == "9aE476sH92Vz7DMPyq5WLPkrKWivxeuTKEFKd2sZZcde"
    assert obs.details["version"] == 0
    assert obs.details["address_lookup_tables"] == ["4syr5pBaboZy4cZyF6sys82uGD7jEvoAP2ZMaoich4fZ"]
    assert obs.details["loaded_addresses"] == [LOOKUP_DESTINATION]


def test_sol_transfer_json_encoding_decodes_instruction_data(fixtures_dir: Path) -> None:
    r = result(fixtures_dir, "getTransaction_json_sol_transfer.json")
    assert account_keys(r) == [
        "DyB4TbDBqPUsCfsJMuoqjktEAod7D3KMNULSo7R1Rb61",
        DUST_RECEIVER,
        "11111111111111111111111111111111",
    ]
    obs = decode_transaction("solana", SOL_DUST, r, HEAD)
    (t,) = obs.transfers
    assert (t.sender, t.recipient, t.amount) == ("DyB4TbDBqPUsCfsJMuoqjktEAod7D3KMNULSo7R1Rb61", DUST_RECEIVER, 2173)
    # the balances agree: the receiver gained exactly what the instruction says
    assert r["meta"]["postBalances"][1] - r["meta"]["preBalances"][1] == 2173
    assert obs.confirmations == HEAD - 350464523 + 1 and obs.memo is None


def test_usdc_to_a_new_token_account_is_credited_to_its_owner(fixtures_dir: Path) -> None:
    r = result(fixtures_dir, "getTransaction_json_usdc_transfer_create_ata.json")
    obs = decode_transaction("solana", USDC_ATA, r, HEAD)
    assert obs.status is TxStatus.SUCCESS and obs.confirmations == 1
    # creating the token account funds it with rent (a system CreateAccount): not a transfer
    (t,) = obs.transfers
    assert (t.kind, t.contract, t.amount, t.decimals) == (AssetKind.TOKEN, USDC, 100_000, 6)
    assert t.recipient == USDC_OWNER and t.sender == "37BenMAXFJMo3GaXKb2XLsNQXmd6VbbdShZWnwDj9D6k"
    (spl,) = obs.details["spl"]
    assert spl["destination_token_account"] == USDC_TOKEN_ACCOUNT and spl["owner_resolved"] is True


def test_old_spl_transfer_checked_with_authority_other_than_fee_payer(fixtures_dir: Path) -> None:
    obs = decode_transaction(
        "solana", SPL_2021, result(fixtures_dir, "transaction_result_jsonParsed_spl_transferChecked_mainnet.json"), HEAD
    )
    (t,) = obs.transfers
    assert (t.contract, t.amount, t.decimals) == ("4k3Dyjzvzp8eMZWUXbBCjEvwSkkk59S5iCNLY3QrkX6R", 1082, 6)
    # 2021 token balances name no owner: the token account stays the recipient, flagged
    assert t.recipient == SPL_2021_TOKEN_ACCOUNT and obs.details["spl"][0]["owner_resolved"] is False
    assert t.sender == "3h1zGmCwsRJnVk5BuRNMLsPaQu1y2aqXqXDWYCgrp5UG"  # the signing authority
    assert obs.sender == obs.details["fee_payer"] == "FG4Y3yX4AAchp1HvNZ7LfzFTewF2f6nDoMDCohTFrdpT"
    assert obs.fee == 10000 and obs.block_number == 84082971


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
def adapter(replay_config: Config) -> SolanaAdapter:
    return SolanaAdapter(replay_config.networks["solana"])


def test_lookup_every_recorded_transaction_in_one_batch(adapter: SolanaAdapter, replay_server: ReplayServer) -> None:
    unknown = SOL_DUST[:-4] + "1111"
    before = replay_server.requests["solana"]
    observed = adapter.lookup_many([LOOKUP_TABLE, SOL_DUST, USDC_ATA, SPL_2021, unknown])
    assert replay_server.requests["solana"] == before + 1  # one batch, getSlot included
    assert observed[unknown].status is TxStatus.NOT_FOUND
    assert observed[USDC_ATA].confirmations == 1 and observed[USDC_ATA].transfers[0].recipient == USDC_OWNER
    assert observed[LOOKUP_TABLE].transfers[0].recipient == LOOKUP_DESTINATION
    assert observed[SOL_DUST].transfers[0].amount == 2173
    assert observed[SPL_2021].transfers[0].amount == 1082


def test_json_encoding_adapter_reads_the_same(replay_config: Config, replay_server: ReplayServer) -> None:
    network = network_at(replay_config.networks["solana"], replay_server.url_for("solana"), encoding="json")
    as_json = SolanaAdapter(network)
    assert as_json.lookup(USDC_ATA).transfers[0].recipient == USDC_OWNER


def test_a_node_refuses_v0_without_max_supported_version(replay_server: ReplayServer) -> None:
    transport = Transport("solana", [replay_server.url_for("solana")])
    with pytest.raises(JsonRpcError) as caught:
        transport.call("getTransaction", [LOOKUP_TABLE, {"encoding": "jsonParsed"}])
    assert caught.value.code == -32015
    assert transport.call("getTransaction", [LOOKUP_TABLE, {"maxSupportedTransactionVersion": 0}])["slot"] == 166974442


def test_incoming_spl_through_the_owners_token_account(adapter: SolanaAdapter) -> None:
    assert adapter.token_accounts(USDC_OWNER) == [USDC_TOKEN_ACCOUNT]
    (obs,) = adapter.incoming(USDC_OWNER, 0)
    assert obs.tx_hash == USDC_ATA and obs.transfers[0].contract == USDC


def test_incoming_sol(adapter: SolanaAdapter) -> None:
    assert [o.tx_hash for o in adapter.incoming(LOOKUP_DESTINATION, 0)] == [LOOKUP_TABLE]
    assert [o.tx_hash for o in adapter.incoming(DUST_RECEIVER, 350464523, 350464523)] == [SOL_DUST]
    assert adapter.incoming(DUST_RECEIVER, 350464524) == []
    assert adapter.incoming(DUST_RECEIVER, 0, 350464522) == []
    # the sender and the fee payer received nothing
    assert adapter.incoming("DyB4TbDBqPUsCfsJMuoqjktEAod7D3KMNULSo7R1Rb61", 0) == []


def test_incoming_to_a_token_account_whose_owner_is_unknown(adapter: SolanaAdapter) -> None:
    assert [o.tx_hash for o in adapter.incoming(SPL_2021_TOKEN_ACCOUNT, 0)] == [SPL_2021]


def test_incoming_refuses_bad_input(adapter: SolanaAdapter) -> None:
    with pytest.raises(InvalidChainInput) as caught:
        adapter.incoming(DUST_RECEIVER, 5, 4)
    assert caught.value.field == "until"
    with pytest.raises(InvalidChainInput):
        adapter.incoming("0x" + "ab" * 20, 0)


@pytest.mark.parametrize("bad", ["", "0x" + "ab" * 32, SOL_DUST[:40], SOL_DUST[:-1] + "0", "ab" * 32])
def test_invalid_signatures_are_refused_before_any_request(
    adapter: SolanaAdapter, replay_server: ReplayServer, bad: str
) -> None:
    before = replay_server.requests["solana"]
    with pytest.raises(InvalidChainInput) as caught:
        adapter.lookup_many([SOL_DUST, bad])
    assert caught.value.field == "tx_hash"
    assert replay_server.requests["solana"] == before


@pytest.mark.parametrize("kind", ["429", "503", "timeout", "truncated", "garbage", "empty", "reset"])
def test_faults_are_unavailable_never_not_found(replay_config: Config, replay_server: ReplayServer,
                                                 replay_faults: Any, kind: str) -> None:
    adapter = SolanaAdapter(network_at(replay_config.networks["solana"], replay_server.url_for("solana")))
    unknown = SOL_DUST[:-4] + "1111"
    replay_faults.inject("solana", kind, count=1)
    with pytest.raises(ChainUnavailable):
        adapter.lookup(unknown)
    replay_faults.inject("solana", kind, count=1)
    with pytest.raises(ChainUnavailable):
        adapter.incoming(DUST_RECEIVER, 0)
    assert adapter.lookup(SOL_DUST).status is TxStatus.SUCCESS


def test_failover_to_the_second_url(replay_config: Config, replay_server: ReplayServer) -> None:
    adapter = SolanaAdapter(
        network_at(replay_config.networks["solana"], "http://127.0.0.1:9/solana", replay_server.url_for("solana"))
    )
    assert adapter.lookup(USDC_ATA).transfers[0].amount == 100_000
    assert [o.tx_hash for o in adapter.incoming(USDC_OWNER, 0)] == [USDC_ATA]
    first, second = adapter.transport.state()
    assert first.failures >= 1 and second.failures == 0


def test_head_and_a_node_behind_a_seen_slot(adapter: SolanaAdapter) -> None:
    assert adapter.head() == HEAD
    with pytest.raises(ChainUnavailable, match="behind"):
        adapter.head(at_least=HEAD + 1)


def test_the_registry_serves_the_family(replay_config: Config) -> None:
    adapter = adapter_for(replay_config.network("solana"))
    assert isinstance(adapter, SolanaAdapter) and isinstance(adapter, ChainAdapter)


def test_spl_deposit_to_an_owner_through_the_rules(adapter: SolanaAdapter, replay_config: Config) -> None:
    """The USDC transfer lands in a token account; the rules see the owner, our address. It is at
    the replay's head slot, so it has 1 of the 32 confirmations the network asks for."""
    registry = InMemoryRegistry()
    registry.add_address(DepositAddress("alice", "solana", USDC_OWNER, None, "eoa"))
    obs = adapter.lookup(USDC_ATA)
    decision = classify(Appeal("alice", "solana", USDC_ATA), {"solana": obs}, registry, replay_config,
                        datetime(2026, 1, 1, tzinfo=UTC))
    assert decision.category == "awaiting_confirmations"
    assert "not_our_address" not in [r.code for r in decision.reasons]
