"""Observations and transfers survive their JSON form (stored as evidence) unchanged."""

from __future__ import annotations

import json
from dataclasses import fields
from datetime import UTC, datetime

from chains.base import AssetKind, Observation, Transfer, TxStatus


def test_every_transfer_field_is_in_its_json_form() -> None:
    transfer = Transfer(AssetKind.TOKEN, "0xa", "0xb", 2**200 + 1, 3, contract="0xc", memo="7", internal=True,
                        symbol="USDT", token_name="Tether USD", decimals=6)

    stored = transfer.to_json()

    assert set(stored) == {f.name for f in fields(Transfer)}
    assert stored["amount"] == str(2**200 + 1) and stored["kind"] == "token"
    assert Transfer.from_json(json.loads(json.dumps(stored))) == transfer


def test_an_observation_round_trips_through_json() -> None:
    obs = Observation("ethereum", "0x" + "ab" * 32, TxStatus.SUCCESS, block_number=7, block_hash="0x" + "cd" * 32,
                      confirmations=12, timestamp=datetime(2026, 11, 2, tzinfo=UTC), sender="0xa",
                      transfers=(Transfer(AssetKind.NATIVE, "0xa", "0xb", 10**18, 0),), fee=21_000,
                      details={"gas_used": 21_000})

    assert Observation.from_json(json.loads(json.dumps(obs.to_json()))) == obs
