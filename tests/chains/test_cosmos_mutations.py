"""Property: no mutation of a recorded Cosmos ``GetTx`` answer (a field removed, a value of another
type, an unknown message type or enum value) makes the adapter report a success with a transfer
the recorded answer does not have. The adapter's own decoding path is used (the one ``lookup``
takes after the HTTP call): it may answer "try later" (:class:`ChainUnavailable`) or report the
transaction unclear or failed; any other exception would escape ``lookup`` and is a bug."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.base import ChainUnavailable, Observation
from chains.cosmos import CosmosAdapter
from recovery.config import Config
from tests.support.mutations import assert_no_new_credit, mutated_bodies

pytestmark = pytest.mark.fixtures

HEAD = 40_000_000


def _bodies(fixtures_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every recorded GetTx answer, recognised by its content."""
    out = []
    for path in sorted((fixtures_dir / "cosmos").glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except ValueError:
            continue
        if isinstance(data, dict) and isinstance(data.get("tx_response"), dict) and "txhash" in data["tx_response"]:
            out.append((path.name, data))
    return out


def _observe(adapter: CosmosAdapter, tx_hash: str, body: Any) -> Observation | None:
    try:
        return adapter._observation(tx_hash, body, HEAD)
    except ChainUnavailable:
        return None


def test_mutations_never_add_a_credit(fixtures_dir: Path, default_config: Config) -> None:
    adapter = CosmosAdapter(default_config.network("cosmoshub"))
    recordings = _bodies(fixtures_dir)
    assert len(recordings) >= 2
    originals = {}
    for name, body in recordings:
        tx_hash = body["tx_response"]["txhash"].upper()
        originals[name] = (tx_hash, body, adapter._observation(tx_hash, body, HEAD))

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(originals)))
        tx_hash, body, original = originals[name]
        what, mutated_body = data.draw(mutated_bodies(body))
        mutated = _observe(adapter, tx_hash, mutated_body)
        if mutated is not None:
            assert_no_new_credit(original, mutated, f"{name}: {what}")

    run()
