"""Real receipts recorded from Ethereum mainnet, Arbitrum One and HyperEVM (see SOURCES.md in the
fixtures folder) decoded by the adapter's pure decoder. Expected figures are the ones SOURCES.md
states for each receipt."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from chains.base import AssetKind
from chains.evm import TRANSFER_TOPIC, decode_receipt_transfers
from recovery.config import Config

pytestmark = pytest.mark.fixtures


def receipt(fixtures_dir: Path, name: str) -> dict[str, Any]:
    body = json.loads((fixtures_dir / "evm" / name).read_text(encoding="utf-8"))
    result: dict[str, Any] = body["result"]
    return result


def test_arbitrum_usdt_transfer(fixtures_dir: Path, default_config: Config) -> None:
    (transfer,) = decode_receipt_transfers(receipt(fixtures_dir, "receipt_arbitrum_usdt_transfer.json"))
    usdt = default_config.asset_by_symbol("arbitrum", "USDT")
    assert usdt is not None
    assert transfer.kind is AssetKind.TOKEN
    assert transfer.contract == usdt.contract  # checksummed: the configured Arbitrum USDT
    assert transfer.sender.lower() == "0x8d7460e51bcf4ed26877cb77e56f3ce7e9f5eb8f"
    assert transfer.recipient.lower() == "0x2fc617e933a52713247ce25730f6695920b3befe"
    assert transfer.amount == 0x49430C
    assert usdt.from_base_units(transfer.amount) == Decimal("4.801292")
    assert transfer.index == 0x18  # the log index
    assert not transfer.internal and transfer.memo is None


def test_mainnet_swap_keeps_every_transfer_log_from_any_contract(fixtures_dir: Path, default_config: Config) -> None:
    """A Uniswap-v3 swap: tx.to is a router, the USDT Transfer log comes from the USDT contract and
    pays the sender; the token sold is another Transfer log; Approval and Swap logs are not transfers."""
    data = receipt(fixtures_dir, "receipt_mainnet_swap_with_usdt_transfer_log.json")
    transfers = decode_receipt_transfers(data)
    sender = "0x901c7c311d39e0b26257219765e71e8db3107a81"
    pool = "0xa82f91562e1cef9dec93a4ad328d01ea7827910a"
    usdt = default_config.asset_by_symbol("ethereum", "USDT")
    assert usdt is not None and usdt.contract is not None

    assert len(data["logs"]) == 4 and len(transfers) == 2
    paid, sold = transfers
    assert (paid.contract, paid.sender.lower(), paid.recipient.lower()) == (usdt.contract, pool, sender)
    assert paid.amount == 0x103F1BFEF and usdt.from_base_units(paid.amount) == Decimal("4361.142255")
    assert paid.index == 0x24E
    assert paid.contract is not None and paid.contract.lower() != data["to"]  # not from tx.to
    assert (sold.sender.lower(), sold.recipient.lower()) == (sender, pool)
    assert sold.contract is not None and sold.contract.lower() == "0xb7135877cd5d40aa3b086ac6f21c51bbafbbb41f"
    assert sold.amount == 50_000 * 10**18 and sold.index == 0x250
    # the logs left out are the Approval (0x24f) and the pool's Swap (0x251)
    skipped = [log for log in data["logs"] if int(log["logIndex"], 16) not in (paid.index, sold.index)]
    assert [log["topics"][0] == TRANSFER_TOPIC for log in skipped] == [False, False]


def test_a_native_transfer_receipt_has_no_token_transfers(fixtures_dir: Path) -> None:
    data = receipt(fixtures_dir, "receipt_hyperevm_native_transfer_no_logs.json")
    assert data["logs"] == [] and int(data["gasUsed"], 16) == 21_000
    assert decode_receipt_transfers(data) == []


def test_decoding_does_not_depend_on_key_order_or_spelling(fixtures_dir: Path) -> None:
    """The getblock receipt has alphabetical keys; the same logs in another order and with
    upper-case hex decode to the same transfers."""
    data = receipt(fixtures_dir, "receipt_mainnet_swap_with_usdt_transfer_log.json")
    shuffled = {
        **{k: data[k] for k in reversed(list(data))},
        "logs": [
            {key: (value.upper().replace("0X", "0x") if key in ("address", "data") else value)
             for key, value in reversed(list(log.items()))}
            for log in data["logs"]
        ],
    }
    assert decode_receipt_transfers(shuffled) == decode_receipt_transfers(data)
