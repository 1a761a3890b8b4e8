"""The JSON-RPC transport against real local HTTP servers: what counts as an outage (retry, fail
over, cool down) and what is the node's real answer."""

from __future__ import annotations

import shutil
import time
import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import tomli_w

from chains.base import ChainUnavailable
from chains.transport import JsonRpcError, Transport, TransportOptions, UnusableAnswer, positive_option
from recovery.config import Config, load_config
from recovery.settings import REPO_ROOT
from tests.fixtures_anvil import LocalNode, Reply, dead_url, network_variant, rpc_error

FAST = TransportOptions(timeout=2.0, connect_timeout=1.0, attempts=3, cooldown=30.0, wait_initial=0.001, wait_max=0.01)


def answer(request: Any, result: Callable[[dict[str, Any]], Any] = lambda c: f"{c['method']}:{c['params']}") -> Reply:
    """A well-formed answer to every call of the request (``result`` computes each result)."""
    calls = request if isinstance(request, list) else [request]
    replies = [{"jsonrpc": "2.0", "id": c["id"], "result": result(c)} for c in calls]
    return Reply(replies if isinstance(request, list) else replies[0])


def healthy(request: Any, _: int) -> Reply:
    return answer(request)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_json_rpc_error_object_is_the_nodes_answer_not_an_outage() -> None:
    with LocalNode(lambda req, _: rpc_error(req, 3, "execution reverted")) as node:
        transport = Transport("t", [node.url], FAST)
        with pytest.raises(JsonRpcError) as caught:
            transport.call("eth_call", [{}])
        assert (caught.value.code, caught.value.message) == (3, "execution reverted")
        assert len(node.received) == 1  # not retried
        assert transport.state()[0].failures == 0 and transport.state()[0].cooling_for == 0


def test_a_batch_returns_an_error_object_in_place_of_that_calls_result() -> None:
    def mixed(request: Any, _: int) -> Reply:
        first, second = request
        return Reply([
            {"jsonrpc": "2.0", "id": second["id"], "error": {"code": -32000, "message": "header not found"}},
            {"jsonrpc": "2.0", "id": first["id"], "result": "0x1"},
        ])

    with LocalNode(mixed) as node:
        first, second = Transport("t", [node.url], FAST).batch([("eth_chainId", []), ("eth_getBlockByHash", ["0x0"])])
    assert first == "0x1"
    assert isinstance(second, JsonRpcError) and second.message == "header not found"


@pytest.mark.parametrize("error", [
    {"code": -32005, "message": "daily request limit exceeded"},
    {"code": 429, "message": "Too Many Requests"},
    {"code": -32000, "message": "rate limited, slow down"},
])
def test_a_rate_limit_error_object_is_transient(error: dict[str, Any]) -> None:
    def limited(request: Any, _: int) -> Reply:
        return rpc_error(request, error["code"], error["message"])

    with LocalNode(limited) as bad, LocalNode(healthy) as good:
        transport = Transport("t", [bad.url, good.url], FAST)
        assert transport.call("eth_chainId") == "eth_chainId:[]"
        bad_state = transport.state()[0]
        assert bad_state.failures == 1 and bad_state.cooling_for > 0
        assert "rate limited" in (bad_state.last_error or "")
        # alone, the rate-limited node is "try again later" after every attempt
        alone = Transport("t", [bad.url], FAST)
        before = len(bad.received)
        with pytest.raises(ChainUnavailable, match="rate limited"):
            alone.call("eth_chainId")
        assert len(bad.received) - before == FAST.attempts


def test_one_rate_limited_item_makes_the_whole_batch_transient() -> None:
    def partly_limited(request: Any, count: int) -> Reply:
        if count > 0:
            return answer(request)
        first, second = request
        return Reply([
            {"jsonrpc": "2.0", "id": first["id"], "result": "0x1"},
            {"jsonrpc": "2.0", "id": second["id"], "error": {"code": -32005, "message": "rate limit exceeded"}},
        ])

    with LocalNode(partly_limited) as node:
        replies = Transport("t", [node.url], FAST).batch([("a", []), ("b", [1])])
    assert replies == ["a:[]", "b:[1]"]
    assert len(node.received) == 2


def test_http_429_is_retried_then_unavailable() -> None:
    with LocalNode(lambda req, _: Reply({"error": "too many requests"}, 429, {"Retry-After": "0"})) as node:
        with pytest.raises(ChainUnavailable, match="HTTP 429") as caught:
            Transport("bsc", [node.url], FAST).call("eth_blockNumber")
        assert len(node.received) == FAST.attempts
        assert caught.value.network == "bsc"


def test_http_429_then_an_answer_succeeds_on_retry() -> None:
    def two_429s(request: Any, count: int) -> Reply:
        return Reply(b"slow down", 429) if count < 2 else answer(request)

    with LocalNode(two_429s) as node:
        assert Transport("t", [node.url], FAST).call("eth_blockNumber") == "eth_blockNumber:[]"
        assert len(node.received) == 3


def test_retry_after_is_honoured() -> None:
    def once_429(request: Any, count: int) -> Reply:
        return Reply(b"", 429, {"Retry-After": "0.4"}) if count == 0 else answer(request)

    options = TransportOptions(attempts=2, wait_initial=0.001, wait_max=2.0)
    with LocalNode(once_429) as node:
        Transport("t", [node.url], options).call("eth_blockNumber")
        first, second = node.received
    assert second.at - first.at >= 0.4


def test_retry_after_is_capped_by_wait_max() -> None:
    def once_429(request: Any, count: int) -> Reply:
        return Reply(b"", 429, {"Retry-After": "3600"}) if count == 0 else answer(request)

    options = TransportOptions(attempts=2, wait_initial=0.001, wait_max=0.05)
    with LocalNode(once_429) as node:
        Transport("t", [node.url], options).call("eth_blockNumber")
        first, second = node.received
    assert second.at - first.at < 5  # an hour was asked for; wait_max (0.05 s) wins


@pytest.mark.parametrize("garbage", [
    Reply(b"<html><body>502 Bad Gateway</body></html>", 200),
    Reply(b'{"jsonrpc": "2.0", "id": 1, "res', 200),
    Reply({"jsonrpc": "2.0", "id": 999999, "result": "0x1"}),  # someone else's answer
    Reply({"id": 1, "result": "0x1"}),  # not JSON-RPC 2.0
    Reply({"jsonrpc": "2.0", "id": 1}),  # neither result nor error
    Reply(b"Service Unavailable", 503),
    Reply(b"", 403),
], ids=["html", "truncated", "wrong-id", "no-version", "no-result", "503", "403"])
def test_garbage_fails_over_to_the_next_url(garbage: Reply) -> None:
    with LocalNode(lambda req, _: garbage) as bad, LocalNode(healthy) as good:
        transport = Transport("t", [bad.url, good.url], FAST)
        assert transport.call("eth_chainId") == "eth_chainId:[]"
        assert transport.state()[0].failures == 1
        with pytest.raises(ChainUnavailable):
            Transport("t", [bad.url], FAST).call("eth_chainId")


def test_a_node_that_is_down_fails_over_and_cools_down() -> None:
    down = dead_url()
    with LocalNode(healthy) as good:
        transport = Transport("t", [down, good.url], FAST)
        assert transport.call("eth_chainId") == "eth_chainId:[]"
        assert transport.call("eth_chainId") == "eth_chainId:[]"
        state = transport.state()
    assert state[0].failures == 1  # tried once, then cooling: the second call went straight to the good one
    assert "connection error" in (state[0].last_error or "")
    assert state[1].failures == 0


def test_a_timeout_is_transient() -> None:
    def slow(request: Any, _: int) -> Reply:
        time.sleep(0.6)
        return answer(request)

    options = TransportOptions(timeout=0.2, connect_timeout=0.2, attempts=1)
    with LocalNode(slow) as bad, LocalNode(healthy) as good:
        transport = Transport("t", [bad.url, good.url], options)
        assert transport.call("x") == "x:[]"
        assert "timeout" in (transport.state()[0].last_error or "")


def test_cooldown_orders_urls_healthy_first_then_soonest_back() -> None:
    order: list[str] = []
    failing: set[str] = set()

    def node(name: str) -> Callable[[Any, int], Reply]:
        def behaviour(request: Any, _: int) -> Reply:
            order.append(name)
            return Reply(b"down", 503) if name in failing else answer(request)
        return behaviour

    clock = Clock()
    with LocalNode(node("a")) as a, LocalNode(node("b")) as b, LocalNode(node("c")) as c:
        transport = Transport("t", [a.url, b.url, c.url], FAST, clock=clock)
        failing.add("a")
        transport.call("m")  # a fails at t=0 (back at 30), b answers
        assert order == ["a", "b"]
        clock.now += 10
        failing.add("b")
        order.clear()
        transport.call("m")  # healthy b and c in order, then the cooling a
        assert order == ["b", "c"]  # b fails at t=10 (back at 40), c answers
        clock.now += 5
        failing.update({"c"})
        failing.discard("a")
        order.clear()
        transport.call("m")  # only c is healthy; then a (back at 30) before b (back at 40)
        assert order == ["c", "a"]
        # a answered: healthy again at once; b still cooling, c cooling
        assert [s.cooling_for > 0 for s in transport.state()] == [False, True, True]
        clock.now += 100  # every cooldown over: configured order again
        failing.clear()
        order.clear()
        transport.call("m")
        assert order == ["a"]


def test_urls_in_cooldown_are_tried_last_not_skipped() -> None:
    flaky_count = [0]

    def flaky(request: Any, _: int) -> Reply:
        flaky_count[0] += 1
        return Reply(b"", 502) if flaky_count[0] == 1 else answer(request)

    clock = Clock()
    with LocalNode(flaky) as only:
        transport = Transport("t", [only.url], TransportOptions(attempts=2, wait_initial=0, wait_max=0), clock=clock)
        assert transport.call("m") == "m:[]"  # failed, cooling, yet asked again on the retry
        assert len(only.received) == 2


def test_a_validate_hook_can_reject_an_answer_and_fail_over() -> None:
    def stale(request: Any, _: int) -> Reply:
        return answer(request, lambda c: "0x1")

    def fresh(request: Any, _: int) -> Reply:
        return answer(request, lambda c: "0x64")

    def not_behind(result: Any) -> None:
        if int(result, 16) < 50:
            raise UnusableAnswer(f"head {int(result, 16)} is behind")

    with LocalNode(stale) as behind, LocalNode(fresh) as current:
        transport = Transport("t", [behind.url, current.url], FAST)
        assert transport.call("eth_blockNumber", validate=not_behind) == "0x64"
        assert "behind" in (transport.state()[0].last_error or "")


def test_batches_are_chunked_at_max_batch_size() -> None:
    with LocalNode(healthy) as node:
        replies = Transport("t", [node.url], TransportOptions(max_batch_size=3)).batch([("m", [i]) for i in range(7)])
        sizes = [len(r.body) for r in node.received]
    assert replies == [f"m:[{i}]" for i in range(7)]
    assert sizes == [3, 3, 1]


@pytest.mark.parametrize("refusal", [
    Reply(b"request entity too large", 413),
    Reply({"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch too large"}}),
    Reply([{"jsonrpc": "2.0", "id": None, "error": {"code": -32600, "message": "batch limit 4 exceeded"}}]),
], ids=["413", "error-object", "error-list"])
def test_a_refused_batch_is_split_and_the_limit_learned(refusal: Reply) -> None:
    def limit_4(request: Any, _: int) -> Reply:
        if isinstance(request, list) and len(request) > 4:
            return refusal
        return answer(request)

    with LocalNode(limit_4) as node:
        transport = Transport("t", [node.url], TransportOptions(max_batch_size=100))
        calls = [("m", [i]) for i in range(10)]
        assert transport.batch(calls) == [f"m:[{i}]" for i in range(10)]
        refused_first = sum(1 for r in node.received if len(r.body) > 4)
        node.received.clear()
        assert transport.batch(calls) == [f"m:[{i}]" for i in range(10)]
        sizes = [len(r.body) if r.is_batch else 1 for r in node.received]
    assert refused_first >= 1
    assert max(sizes) <= 4 and sum(sizes) == 10  # learned: no refused request the second time
    assert transport.state()[0].failures == 0  # a refusal is not an outage


def test_replies_missing_from_a_batch_are_asked_for_again() -> None:
    def drops_last(request: Any, count: int) -> Reply:
        full = answer(request).body
        return Reply(full[:-1] if count == 0 and isinstance(full, list) else full)

    with LocalNode(drops_last) as node:
        replies = Transport("t", [node.url], FAST).batch([("m", [i]) for i in range(5)])
        asked_again = node.received[1].methods
    assert replies == [f"m:[{i}]" for i in range(5)]
    assert asked_again == ["m"]


def test_a_batch_answered_with_no_reply_at_all_fails_over() -> None:
    with LocalNode(lambda req, _: Reply([])) as empty, LocalNode(healthy) as good:
        transport = Transport("t", [empty.url, good.url], FAST)
        assert transport.batch([("m", [1]), ("m", [2])]) == ["m:[1]", "m:[2]"]
        assert "no reply to any call" in (transport.state()[0].last_error or "")


def test_options_come_from_the_network_entry(default_config: Config) -> None:
    base = default_config.network("ethereum")
    network = network_variant(base, timeout_seconds=4, retry_attempts=5, cooldown_seconds=7, max_batch_size=9,
                              retry_wait_max_seconds="0.5", connect_timeout_seconds=1)
    options = TransportOptions.from_network(network)
    assert (options.timeout, options.attempts, options.cooldown, options.max_batch_size, options.wait_max,
            options.connect_timeout) == (4.0, 5, 7.0, 9, 0.5, 1.0)
    with pytest.raises(ValueError, match="retry_attempts must be a number"):
        TransportOptions.from_network(network_variant(base, retry_attempts=[1]))
    with pytest.raises(ValueError, match="at least 1"):
        TransportOptions.from_network(network_variant(base, retry_attempts=0))
    with pytest.raises(ValueError, match="at least one URL"):
        Transport("t", [])


def test_fractional_seconds_in_networks_toml_are_accepted(tmp_path: Path) -> None:
    # the loader reads TOML floats as Decimal; a timeout of 0.3 s must still be a valid option
    source = REPO_ROOT / "config"
    shutil.copytree(source, tmp_path / "config")
    path = tmp_path / "config" / "networks.toml"
    networks = tomllib.loads(path.read_text())
    networks["networks"]["ethereum"].update(connect_timeout_seconds=0.3, timeout_seconds=2.5)
    path.write_text(tomli_w.dumps(networks))

    options = TransportOptions.from_network(load_config(tmp_path / "config").network("ethereum"))

    assert (options.connect_timeout, options.timeout) == (0.3, 2.5)


@pytest.mark.parametrize("bad", [0, -3, True, "4", 2.5])
def test_integer_network_keys_must_be_at_least_one(bad: object) -> None:
    with pytest.raises(ValueError, match="network n: lookup_concurrency must be an integer >= 1"):
        positive_option({"lookup_concurrency": bad}, "lookup_concurrency", 4, "n")
    assert positive_option({}, "lookup_concurrency", 4, "n") == 4
    assert positive_option({"lookup_concurrency": 9}, "lookup_concurrency", 4, "n") == 9
