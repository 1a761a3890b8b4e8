"""What the benchmarks share: a configuration narrowed to the bench's own networks, and the raw
batched JSON-RPC lookups that are the node's own limit."""

from __future__ import annotations

import json
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import requests
import tomli_w

from recovery.config import load_config
from recovery.settings import REPO_ROOT


def write_config_for(target: Path, networks: Mapping[str, Mapping[str, Any]]) -> Path:
    """The shipped configuration with only ``networks`` (name -> entry), their assets and fee rules,
    and the shipped policy and information-request templates, written to ``target`` and checked
    (an invalid one is refused)."""
    source = REPO_ROOT / "config"
    assets = [a for a in tomllib.loads((source / "assets.toml").read_text())["assets"] if a["network"] in networks]
    fees = [f for f in tomllib.loads((source / "fees.toml").read_text())["fees"]
            if f.get("network", "*") in ("*", *networks)]
    target.mkdir(parents=True, exist_ok=True)
    (target / "networks.toml").write_text(tomli_w.dumps({"networks": dict(networks)}))
    (target / "assets.toml").write_text(tomli_w.dumps({"assets": assets}))
    (target / "fees.toml").write_text(tomli_w.dumps({"fees": fees}))
    for optional in ("policy.toml", "templates.toml"):
        if (source / optional).exists():
            (target / optional).write_text((source / optional).read_text())
    load_config(target)  # refuse to benchmark an invalid configuration
    return target


def shipped_networks() -> dict[str, dict[str, Any]]:
    """The networks of the shipped configuration, by name."""
    text = (REPO_ROOT / "config" / "networks.toml").read_text()
    networks: dict[str, dict[str, Any]] = tomllib.loads(text)["networks"]
    return networks


def raw_batched(url: str, hashes: Sequence[str], chunk: int) -> int:
    """``eth_getTransactionByHash`` + ``eth_getTransactionReceipt`` for every hash, ``chunk`` hashes per
    HTTP request, answers parsed with ``json`` and nothing else; returns how many receipts were found."""
    session = requests.Session()
    session.headers["Content-Type"] = "application/json"
    seen = 0
    for start in range(0, len(hashes), chunk):
        payload = []
        for i, h in enumerate(hashes[start : start + chunk]):
            payload.append({"jsonrpc": "2.0", "id": 2 * i, "method": "eth_getTransactionByHash", "params": [h]})
            payload.append({"jsonrpc": "2.0", "id": 2 * i + 1, "method": "eth_getTransactionReceipt", "params": [h]})
        reply = session.post(url, data=json.dumps(payload), timeout=120)
        reply.raise_for_status()
        seen += sum(1 for a in json.loads(reply.content) if a.get("id", 1) % 2 and a.get("result"))
    session.close()
    return seen
