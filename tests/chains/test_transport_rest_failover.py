"""REST calls (GET/POST with a path) fail over like JSON-RPC calls: a failure is charged to the
configured base URL, never raised as a stray KeyError."""

from __future__ import annotations

import socket

import pytest

from chains.base import ChainUnavailable
from chains.transport import Transport, TransportOptions


def dead_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{sock.getsockname()[1]}/api"


@pytest.mark.parametrize("method", ["get", "post"])
def test_a_dead_rest_node_is_unavailable_and_cools_down(method: str) -> None:
    transport = Transport("x", [dead_url()], TransportOptions(attempts=1, connect_timeout=0.5))
    with pytest.raises(ChainUnavailable):
        if method == "get":
            transport.get_json("/tx/1")
        else:
            transport.post_json("/wallet/gettransactionbyid", {"value": "00"})
    state = transport.state()[0]
    assert state.failures == 1 and state.cooling_for > 0
