"""The non-EVM chains for the tests: one local :class:`~chains.replay.ReplayServer` per test session
answering every family's real API paths with the recorded responses in ``fixtures_dir``.

``replay_config`` is the shipped configuration with each non-EVM network's ``rpc_urls`` pointed at
the server (``<server>/<family>``); EVM networks are left as they are (see ``evm_testbed``).
Tests that inject faults must clear them (``replay_server.faults.clear()``) or use the
``replay_faults`` fixture, which does it for them.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from types import MappingProxyType

import pytest

from chains.replay import Faults, ReplayServer, serve_recorded
from recovery.config import Config, Network


@pytest.fixture(scope="session")
def replay_server(fixtures_dir: Path) -> Iterator[ReplayServer]:
    """The session's replay server (skips, saying why, when the recordings are absent)."""
    server = serve_recorded(fixtures_dir, hold_seconds=3.0)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def replay_faults(replay_server: ReplayServer) -> Iterator[Faults]:
    """The server's fault injector, cleared after the test."""
    replay_server.faults.clear()
    try:
        yield replay_server.faults
    finally:
        replay_server.faults.clear()


@pytest.fixture(scope="session")
def replay_config(default_config: Config, replay_server: ReplayServer) -> Config:
    networks = {
        name: net if net.family == "evm" else net.model_copy(update={"rpc_urls": (replay_server.url_for(net.family),)})
        for name, net in default_config.networks.items()
    }
    return dataclasses.replace(default_config, networks=MappingProxyType(networks))


def network_at(base: Network, urls: Sequence[str], **extra: object) -> Network:
    """``base`` pointed at ``urls``, with extra keys (e.g. short timeouts for fault tests)."""
    data = base.model_dump()
    data.update(base.model_extra or {})
    data.update(extra)
    data["rpc_urls"] = list(urls)
    return Network.model_validate(data)


#: transport settings for fault tests: fail fast, no cooldown carried between tests
FAST: Mapping[str, object] = MappingProxyType(
    {
        "timeout_seconds": 0.4,
        "connect_timeout_seconds": 0.4,
        "retry_attempts": 2,
        "retry_wait_max_seconds": 0.01,
        "cooldown_seconds": 0,
    }
)
