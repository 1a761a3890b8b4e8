"""Transaction lookups per second on a local anvil: the EVM adapter against two baselines.

    python -m bench.lookups --n 2000

Starts its own anvil (chain id 1, an ephemeral loopback port), installs the listed USDT at its
mainnet address, seeds N transfers (half native, half USDT) with :func:`chains.devchain.seed_transfers`,
then measures, in the same run and on the same hashes:

(a) ``EvmAdapter.lookup_many`` (full observations: status, confirmations, timestamps, decoded
    transfers, token metadata, internal transfers traced where the call ran contract code);
(b) naive sequential web3: ``get_transaction`` + ``get_transaction_receipt`` per hash (on a subset,
    scaled: the rate is per lookup, so the subset size does not change it);
(c) raw batched JSON-RPC over ``requests``: ``eth_getTransactionByHash`` + ``eth_getTransactionReceipt``
    for a chunk of hashes in one HTTP request, answers parsed with ``json`` and nothing else.

It prints each rate and the ratios a/b (goal >= 8) and a/c (goal >= 0.7).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from eth_utils.address import to_checksum_address

from bench.common import raw_batched
from chains import devchain
from chains.base import Observation, TxStatus
from chains.devchain import DEV_ACCOUNTS, SeedTransfer
from chains.evm import EvmAdapter
from recovery.config import Config, Network, load_config
from recovery.settings import REPO_ROOT

GOAL_AB = 8.0
GOAL_AC = 0.7


@dataclass(frozen=True)
class Rate:
    label: str
    lookups: int
    seconds: float
    note: str = ""

    @property
    def per_second(self) -> float:
        return self.lookups / self.seconds


def seed(url: str, n: int, usdt: str) -> list[str]:
    """N transfers from the ten dev accounts: even positions native, odd ones USDT."""
    transfers = []
    for i in range(n):
        sender = DEV_ACCOUNTS[i % len(DEV_ACCOUNTS)]
        recipient = to_checksum_address(f"0x{0xBE0000 + i:040x}")
        if i % 2 == 0:
            transfers.append(SeedTransfer(sender, recipient, value=10**15 + i))
        else:
            transfers.append(SeedTransfer(sender, recipient, token=usdt, amount=10**6 + i))
    return devchain.seed_transfers(url, transfers)


def naive_web3(url: str, hashes: Sequence[str]) -> int:
    w3 = devchain.web3_for(url)
    seen = 0
    for h in hashes:
        w3.eth.get_transaction(h)  # type: ignore[arg-type]
        w3.eth.get_transaction_receipt(h)  # type: ignore[arg-type]
        seen += 1
    return seen


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.lookups", description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=2000, help="transfers to seed and look up (default 2000)")
    parser.add_argument("--naive", type=int, default=250, help="hashes looked up by the naive baseline (b)")
    parser.add_argument("--repeat", type=int, default=3, help="interleaved runs of every contender; "
                        "the fastest of each counts")
    parser.add_argument("--chunk", type=int, default=0, help="hashes per raw batch in (c) (default: the "
                        "adapter's lookup_batch_size)")
    parser.add_argument("--anvil-log", type=Path, default=None, help="anvil's log file (default: a temp dir)")
    args = parser.parse_args(argv)
    if args.n < 2 or args.naive < 1 or args.repeat < 1:
        parser.error("--n must be at least 2, --naive and --repeat at least 1")

    config = load_config(REPO_ROOT / "config")
    with tempfile.TemporaryDirectory(prefix="bench-lookups-") as tmp:
        log_path = args.anvil_log or Path(tmp) / "anvil.log"
        node = devchain.start_anvil(1, log_path=log_path)
        try:
            return run(args, config.network("ethereum"), node.url, config, node.pid)
        finally:
            node.stop()


def node_cpu(pid: int) -> float:
    """CPU seconds (user + system) the node process has used so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run(args: argparse.Namespace, base: Network, url: str, config: Config, pid: int) -> int:
    usdt = devchain.install_listed_tokens(url, config, "ethereum")["USDT"]
    for account in DEV_ACCOUNTS:
        devchain.mint(url, usdt, account, 10**24)
    start = time.perf_counter()
    hashes = seed(url, args.n, usdt)
    seeded = time.perf_counter() - start
    devchain.mine(url, 12)
    network = base.model_copy(update={"rpc_urls": (url,)})
    chunk = args.chunk or EvmAdapter(network).batch_size
    print(f"anvil {url}: seeded {len(hashes)} transfers (half native, half USDT) in {seeded:.2f}s "
          f"({len(hashes) / seeded:,.0f} tx/s)")

    # (a) the adapter: a fresh adapter per run (cold caches: block timestamps, token metadata)
    last: dict[str, dict[str, Observation]] = {}

    def adapter_run(net: Network, keep: bool = False) -> int:
        adapter = EvmAdapter(net)
        try:
            observations = adapter.lookup_many(hashes)
        finally:
            adapter.close()
        if keep:
            last["obs"] = observations
        return sum(1 for o in observations.values() if o.status is TxStatus.SUCCESS)

    warm_adapter = EvmAdapter(network)
    warm_adapter.lookup_many(hashes[:10])
    serial = network.model_copy(update={"lookup_concurrency": 1})
    subset = hashes[: min(args.naive, len(hashes))]

    contenders: dict[str, Callable[[], int]] = {
        "a": lambda: adapter_run(network, keep=True),
        "a1": lambda: adapter_run(serial),
        "aw": lambda: sum(1 for o in warm_adapter.lookup_many(hashes).values() if o.found),
        "c": lambda: raw_batched(url, hashes, chunk),
        "b": lambda: naive_web3(url, subset),
    }
    raw_batched(url, hashes, chunk)  # warm the node's own caches once: every contender meets the same node
    times: dict[str, list[float]] = {key: [] for key in contenders}
    cpu: dict[str, list[float]] = {key: [] for key in contenders}
    node: dict[str, list[float]] = {key: [] for key in contenders}
    counts: dict[str, int] = {}
    # interleaved, so that load from other processes falls on every contender alike
    for _ in range(args.repeat):
        for key, contender in contenders.items():
            started, started_cpu, started_node = time.perf_counter(), time.process_time(), node_cpu(pid)
            counts[key] = contender()
            times[key].append(time.perf_counter() - started)
            cpu[key].append(time.process_time() - started_cpu)
            node[key].append(node_cpu(pid) - started_node)
    warm_adapter.close()
    expected = {"a": len(hashes), "a1": len(hashes), "aw": len(hashes), "c": len(hashes), "b": len(subset)}
    if counts != expected:
        print(f"error: not every seeded transfer was found: {counts} (expected {expected})", file=sys.stderr)
        return 1
    observations = last["obs"]
    traced = sum(1 for o in observations.values() if o.details.get("internal_transfers") == "traced")
    transfers = sum(len(o.transfers) for o in observations.values())
    concurrency = EvmAdapter(network).concurrency

    rates = {
        "a": Rate(f"(a) EvmAdapter.lookup_many (fresh adapter, {concurrency} batches in flight)", len(hashes),
                  min(times["a"]), f"{transfers} transfers decoded, {traced} txs traced"),
        "a1": Rate("(a1) the same, one batch at a time", len(hashes), min(times["a1"])),
        "aw": Rate("(aw) the same, warm adapter (caches filled)", len(hashes), min(times["aw"])),
        "b": Rate("(b) naive sequential web3", len(subset), min(times["b"]),
                  f"measured on {len(subset)} of {len(hashes)} hashes (a rate per lookup)"),
        "c": Rate(f"(c) raw batched JSON-RPC, {chunk} hashes per request", len(hashes), min(times["c"])),
    }
    print(f"best of {args.repeat} interleaved runs each; client/node = CPU microseconds per lookup spent in this "
          "process / in anvil (medians: the cost, whatever the machine's load)")
    print(f"{'contender':<66} {'lookups/s':>10} {'client':>7} {'node':>6}  runs (s)")
    cost: dict[str, float] = {}
    for key in ("a", "a1", "aw", "b", "c"):
        rate = rates[key]
        runs = " ".join(f"{t:.2f}" for t in times[key])
        client_us = statistics.median(cpu[key]) / rate.lookups * 1e6
        node_us = statistics.median(node[key]) / rate.lookups * 1e6
        cost[key] = client_us + node_us
        print(f"{rate.label:<66} {rate.per_second:>10,.0f} {client_us:>7.0f} {node_us:>6.0f}  {runs}  {rate.note}")
    a, b, c = rates["a"].per_second, rates["b"].per_second, rates["c"].per_second
    ab, ac = a / b, a / c
    print(f"a/b  = {ab:5.1f}  (goal >= {GOAL_AB:g}: {'met' if ab >= GOAL_AB else 'NOT met'})")
    print(f"a/c  = {ac:5.2f}  (goal >= {GOAL_AC:g}: {'met' if ac >= GOAL_AC else 'NOT met'})")
    print(f"a1/c = {rates['a1'].per_second / c:5.2f}  (one batch at a time)   "
          f"aw/c = {rates['aw'].per_second / c:5.2f}  (warm adapter)")
    # each repetition ran a, b and c back to back: their ratio is less disturbed by load that comes and goes
    paired_ac = statistics.median(tc / ta for ta, tc in zip(times["a"], times["c"], strict=True))
    paired_ab = statistics.median(
        (len(hashes) / ta) / (len(subset) / tb) for ta, tb in zip(times["a"], times["b"], strict=True)
    )
    print(f"paired (same repetition), median over {args.repeat}: a/c = {paired_ac:.2f}, a/b = {paired_ab:.1f}")
    print(f"CPU cost (client + node per lookup): a/c = {cost['c'] / cost['a']:.2f}, a/b = {cost['b'] / cost['a']:.1f} "
          "(cost ratios: higher is cheaper for a)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
