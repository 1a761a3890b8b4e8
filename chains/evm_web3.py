"""The web3.py handle of an EVM adapter: a provider that sends through the adapter's failover transport.

Kept apart from :mod:`chains.evm` so that a process that only looks transactions up (the re-check's
worker processes, the scan) never imports web3 (about a second of start-up per process): the
lookups send raw JSON-RPC batches through :class:`~chains.transport.Transport` themselves, and
web3 is imported the first time an adapter's :attr:`~chains.evm.EvmAdapter.w3` handle is used.
"""

from __future__ import annotations

from typing import Any, cast

from web3 import Web3
from web3.middleware import ExtraDataToPOAMiddleware
from web3.providers.base import JSONBaseProvider
from web3.types import RPCEndpoint, RPCResponse

from chains.transport import JsonRpcError, Transport

__all__ = ["TransportProvider", "web3_handle"]


class TransportProvider(JSONBaseProvider):
    """A web3 provider that sends through a :class:`Transport` (retries, failover, cooldown)."""

    def __init__(self, transport: Transport) -> None:
        super().__init__()
        self.transport = transport

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            result = self.transport.call(str(method), params or [])
        except JsonRpcError as error:
            return cast(
                RPCResponse,
                {"jsonrpc": "2.0", "id": 0, "error": {"code": error.code, "message": error.message}},
            )
        return cast(RPCResponse, {"jsonrpc": "2.0", "id": 0, "result": result})

    def make_batch_request(self, requests: list[tuple[RPCEndpoint, Any]]) -> list[RPCResponse]:
        replies = self.transport.batch([(str(m), p or []) for m, p in requests])
        out: list[RPCResponse] = []
        for position, reply in enumerate(replies):
            if isinstance(reply, JsonRpcError):
                body: dict[str, Any] = {"error": {"code": reply.code, "message": reply.message}}
            else:
                body = {"result": reply}
            out.append(cast(RPCResponse, {"jsonrpc": "2.0", "id": position, **body}))
        return out

    def is_connected(self, show_traceback: bool = False) -> bool:
        try:
            self.transport.call("eth_chainId")
        except Exception:
            if show_traceback:
                raise
            return False
        return True


def web3_handle(transport: Transport, *, poa: bool) -> Web3:
    """A Web3 on ``transport``, with the extra-data middleware on proof-of-authority chains."""
    w3 = Web3(TransportProvider(transport))
    if poa:
        w3.middleware_onion.inject(ExtraDataToPOAMiddleware, layer=0)
    return w3
