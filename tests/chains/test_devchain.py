"""Local chains: `recovery devchain up|status|down` with a temporary configuration and var dir on
free ports, bulk seeding, tokens installed at configured addresses, the contracts."""

from __future__ import annotations

import re
import shutil
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest
from eth_utils.address import to_checksum_address
from typer.testing import CliRunner

from app import cli
from app.demo.serving import free_port
from chains import devchain
from chains.devchain import DEV_ACCOUNTS, Devchain, DevchainError, SeedTransfer, local_chains, pid_alive
from chains.evm import EvmAdapter
from recovery.config import load_config
from recovery.settings import REPO_ROOT, get_settings
from tests.fixtures_anvil import EvmTestbed, fresh_address

pytestmark = pytest.mark.anvil
runner = CliRunner()



@pytest.fixture
def local_setup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, object]]:
    """A copy of the shipped configuration whose ethereum and bsc nodes are on free loopback ports
    (polygon and arbitrum point at remote providers: not local chains), and an empty var dir."""
    config_dir = tmp_path / "config"
    shutil.copytree(REPO_ROOT / "config", config_dir)
    ports = {"ethereum": free_port(), "bsc": free_port()}
    text = (config_dir / "networks.toml").read_text()
    for name in ("ethereum", "bsc", "polygon", "arbitrum"):
        url = tomllib.loads(text)["networks"][name]["rpc_urls"][0]
        new = f"http://127.0.0.1:{ports[name]}" if name in ports else f"https://{name}.rpc.example/v1"
        text = text.replace(f'rpc_urls = ["{url}"]', f'rpc_urls = ["{new}"]')
    (config_dir / "networks.toml").write_text(text)
    var_dir = tmp_path / "var"
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(var_dir))
    get_settings.cache_clear()
    try:
        yield {"ports": ports, "config_dir": config_dir, "var_dir": var_dir}
    finally:
        Devchain(load_config(config_dir), var_dir / "devchain").down()  # whatever the test left running
        get_settings.cache_clear()


def run(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli.app, ["devchain", *args], env={"COLUMNS": "200"})
    return result.exit_code, result.output


def state_of(output: str, network: str) -> str:
    match = re.search(rf"{network}\s.*?\s(running|started|stopped|wrong chain|port busy)\b", output)
    assert match, output
    return match.group(1)


def chain_id_at(port: int) -> int:
    return int(devchain.rpc(f"http://127.0.0.1:{port}", timeout=5).call("eth_chainId"), 16)


def test_devchain_up_status_down(local_setup: dict[str, object]) -> None:
    ports = local_setup["ports"]
    var_dir = local_setup["var_dir"]
    assert isinstance(ports, dict) and isinstance(var_dir, Path)

    code, out = run("up")
    assert code == 0, out
    assert state_of(out, "ethereum") == state_of(out, "bsc") == "started"
    assert "polygon" not in out and "arbitrum" not in out  # remote providers: nothing to start
    assert (chain_id_at(ports["ethereum"]), chain_id_at(ports["bsc"])) == (1, 56)
    pids = {name: int((var_dir / "devchain" / f"{name}.pid").read_text()) for name in ports}
    assert all(pid_alive(pid) for pid in pids.values())
    assert (var_dir / "devchain" / "ethereum.log").is_file()

    code, out = run("up")  # idempotent: already running, nothing new started
    assert code == 0 and state_of(out, "ethereum") == state_of(out, "bsc") == "running", out
    assert {name: int((var_dir / "devchain" / f"{name}.pid").read_text()) for name in ports} == pids

    devchain.mine(f"http://127.0.0.1:{ports['bsc']}", 3)
    code, out = run("status")
    assert code == 0 and state_of(out, "bsc") == "running", out
    assert re.search(rf"bsc\s.*\b{pids['bsc']}\b\s.*\b3\b", out), out  # pid and block height

    code, out = run("down")
    assert code == 0 and state_of(out, "ethereum") == state_of(out, "bsc") == "stopped", out
    assert not any(pid_alive(pid) for pid in pids.values())
    assert not list((var_dir / "devchain").glob("*.pid"))
    code, out = run("status")
    assert code == 0 and state_of(out, "ethereum") == "stopped", out


def test_devchain_up_refuses_a_port_where_another_chain_answers(
    local_setup: dict[str, object], tmp_path: Path
) -> None:
    ports = local_setup["ports"]
    assert isinstance(ports, dict)
    squatter = devchain.start_anvil(999, port=ports["ethereum"], log_path=tmp_path / "squatter.log")
    try:
        code, out = run("up")
        assert code == 1
        assert state_of(out, "ethereum") == "wrong chain" and state_of(out, "bsc") == "started", out
        assert "chain id 999" in out
        assert chain_id_at(ports["ethereum"]) == 999  # left alone
    finally:
        squatter.stop()


def test_local_chains_are_the_loopback_evm_networks() -> None:
    config = load_config(REPO_ROOT / "config")
    chains = {c.name: c for c in local_chains(config)}
    assert set(chains) == {"ethereum", "bsc", "polygon", "arbitrum"}  # the shipped config is all local
    assert (chains["bsc"].chain_id, chains["bsc"].port, chains["bsc"].url) == (56, 8546, "http://127.0.0.1:8546")


def test_anvil_listens_on_loopback_only(tmp_path: Path) -> None:
    with pytest.raises(DevchainError, match="loopback only"):
        devchain.start_anvil(1, host="0.0.0.0", log_path=tmp_path / "a.log")  # noqa: S104 - the point
    assert not (tmp_path / "a.log").exists()


def test_an_anvil_binary_that_is_not_there_is_reported(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("RECOVERY_ANVIL_BIN", str(tmp_path / "nope"))
    with pytest.raises(DevchainError, match="RECOVERY_ANVIL_BIN"):
        devchain.anvil_binary()


def test_seed_transfers_mines_everything_and_turns_automine_back_on(evm_testbed: EvmTestbed) -> None:
    url = evm_testbed.url("bsc")
    usdt = evm_testbed.tokens["bsc"]["USDT"]
    senders = DEV_ACCOUNTS[:3]
    recipients = [fresh_address() for _ in range(60)]
    transfers = [
        SeedTransfer(senders[i % 3], to, value=10**9 + i) if i % 2 else
        SeedTransfer(DEV_ACCOUNTS[0], to, token=usdt, amount=10**18 + i)
        for i, to in enumerate(recipients)
    ]
    before = devchain.balances(url, recipients)
    hashes = devchain.seed_transfers(url, transfers, batch_size=25)
    assert len(hashes) == len(set(hashes)) == 60
    observed = EvmAdapter(evm_testbed.config.network("bsc")).lookup_many(hashes)
    for i, h in enumerate(hashes):
        obs = observed[h]
        assert obs.status.value == "success", h
        (transfer,) = obs.transfers
        assert transfer.recipient == recipients[i]
        assert transfer.amount == (10**9 + i if i % 2 else 10**18 + i)
    after = devchain.balances(url, recipients)
    assert all(after[to] - before[to] == 10**9 + i for i, to in enumerate(recipients) if i % 2)
    transport = devchain.rpc(url)
    assert transport.call("anvil_getAutomine") is True
    assert int(transport.call("txpool_status")["pending"], 16) == 0


def test_a_failed_seeding_leaves_nothing_in_the_pool(evm_testbed: EvmTestbed) -> None:
    url = evm_testbed.url("bsc")
    stranger = fresh_address()  # not an unlocked dev account: anvil cannot sign for it
    recipient = fresh_address()
    good = [SeedTransfer(DEV_ACCOUNTS[4], recipient, value=7) for _ in range(3)]
    with pytest.raises(DevchainError, match="eth_sendTransaction failed"):
        devchain.seed_transfers(url, [*good, SeedTransfer(stranger, fresh_address(), value=1)], batch_size=2)
    transport = devchain.rpc(url)
    assert int(transport.call("txpool_status")["pending"], 16) == 0
    assert transport.call("anvil_getAutomine") is True
    assert devchain.balances(url, [recipient])[recipient] == 21  # what was accepted got mined


def test_mine_snapshot_and_revert(evm_testbed: EvmTestbed) -> None:
    url = evm_testbed.url("bsc")
    transport = devchain.rpc(url)
    start = int(transport.call("eth_blockNumber"), 16)
    snapshot = devchain.snapshot(url)
    devchain.mine(url, 5)
    assert int(transport.call("eth_blockNumber"), 16) == start + 5
    devchain.revert(url, snapshot)
    assert int(transport.call("eth_blockNumber"), 16) == start
    with pytest.raises(DevchainError, match="evm_revert"):
        devchain.revert(url, snapshot)  # a snapshot is used up by reverting to it
    devchain.mine(url, 6)  # leave the chain higher than before, for adapters that saw it


def test_a_token_installed_at_a_chosen_address(evm_testbed: EvmTestbed) -> None:
    url = evm_testbed.url("bsc")
    address = fresh_address()
    name = "Wrapped Thing With A Name Longer Than One Storage Slot"  # stored outside its slot
    installed = devchain.install_token(url, address, name, "WTH", 8)
    assert installed == to_checksum_address(address)
    holder = fresh_address()
    devchain.mint(url, installed, holder, 12_345)
    info = EvmAdapter(evm_testbed.config.network("bsc")).token_info(installed)
    assert (info.symbol, info.name, info.decimals) == ("WTH", name, 8)
    w3 = devchain.web3_for(url)
    token = w3.eth.contract(address=to_checksum_address(installed), abi=devchain.artifact("TestToken").abi)
    assert token.functions.balanceOf(holder).call() == 12_345


def test_contract_artifacts_are_compiled_from_the_current_sources() -> None:
    for name in ("TestToken", "MultiTransfer", "Forwarder"):
        art = devchain.artifact(name)
        assert art.bytecode.startswith("0x") and len(art.bytecode) > 100
        assert any(entry.get("name") for entry in art.abi)
    with pytest.raises(DevchainError, match="no contract source"):
        devchain.artifact("NoSuchContract")


def test_an_attached_node_keeps_its_spilled_state_in_a_home_removed_when_it_stops(tmp_path: Path) -> None:
    """anvil writes old states under ~/.foundry/anvil/tmp and leaves them when stopped (tens of
    gigabytes after a few bench runs): an attached node gets a home of its own, gone after stop()."""
    node = devchain.start_anvil(31337, log_path=tmp_path / "home.log")
    try:
        assert node.home is not None and node.home.is_dir()
        assert node.home != Path.home()
        with open(f"/proc/{node.pid}/environ", "rb") as environ:
            assert f"HOME={node.home}".encode() in environ.read().split(b"\0")
    finally:
        node.stop()
    assert not node.home.exists()
