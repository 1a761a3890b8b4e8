"""Property: no mutation of a recorded Solana ``getTransaction`` result (``json``, ``jsonParsed``
and ``base64`` recordings alike: a field removed, a value of another type, an unknown enum value)
makes the decoder report a success with a transfer the recorded answer does not have. It may
raise an unusable answer (the adapter's "try later") or report the transaction unclear or failed;
any other exception would escape the adapter's public ``lookup`` and is a bug."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chains.base import Observation
from chains.solana import decode_transaction, from_wire
from chains.transport import UnusableAnswer
from tests.support.mutations import assert_no_new_credit, mutated_bodies

pytestmark = pytest.mark.fixtures

HEAD = 400_000_000


def _results(fixtures_dir: Path) -> list[tuple[str, dict[str, Any]]]:
    """Every recorded getTransaction result (enveloped or not), recognised by its content."""
    out = []
    for path in sorted((fixtures_dir / "solana").glob("*.json")):
        try:
            data = json.loads(path.read_bytes())
        except ValueError:
            continue
        result = data.get("result") if isinstance(data, dict) and "jsonrpc" in data else data
        if isinstance(result, dict) and "transaction" in result and "meta" in result and "slot" in result:
            out.append((path.name, result))
    return out


def _signature(result: dict[str, Any]) -> str:
    signature: str = from_wire(result)["transaction"]["signatures"][0]
    return signature


def _decode(signature: str, result: Any) -> Observation | None:
    try:
        return decode_transaction("solana", signature, result, HEAD)
    except UnusableAnswer:
        return None


def test_every_shape_is_covered(fixtures_dir: Path) -> None:
    shapes = set()
    for _, result in _results(fixtures_dir):
        tx = result["transaction"]
        if isinstance(tx, list):
            shapes.add(tx[1])
        else:
            keys = tx["message"]["accountKeys"]
            shapes.add("jsonParsed" if isinstance(keys[0], dict) else "json")
    assert shapes >= {"json", "jsonParsed", "base64"}


def test_mutations_never_add_a_credit(fixtures_dir: Path) -> None:
    recordings = _results(fixtures_dir)
    assert len(recordings) >= 5
    originals = {
        name: (_signature(r), r, decode_transaction("solana", _signature(r), r, HEAD)) for name, r in recordings
    }

    @settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.data())
    def run(data: st.DataObject) -> None:
        name = data.draw(st.sampled_from(sorted(originals)))
        signature, result, original = originals[name]
        what, body = data.draw(mutated_bodies(result))
        mutated = _decode(signature, body)
        if mutated is not None:
            assert_no_new_credit(original, mutated, f"{name}: {what}")

    run()
