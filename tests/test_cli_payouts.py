"""The payout commands on real anvil chains, on SQLite and PostgreSQL: four eyes through the CLI
(``cases credit`` and ``refunds record`` by the approver are refused, naming the rule, nothing
changed; ``cases approve`` above the threshold without ``send-for-approval`` is refused), and the
refund hand-off end to end: ``refunds list --json`` gives the unsigned EIP-1559 transaction, which
is sent exactly as listed from the deposit address (anvil's impersonation, or signed offline with
eth_account), ``refunds record`` takes its hash, the re-check proves it and the case is refunded.
A from-address without gas says how much native coin it needs first; a node that cannot answer
leaves the error in the entry and the command exits 1."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from eth_account import Account
from typer.testing import CliRunner

from app import cli
from app.demo.chainworld import impersonate
from bench.recheck import write_config_dir
from chains import devchain
from recovery.db import Database
from recovery.models import DepositAddress
from recovery.operators import add_operator
from recovery.services import Actor, CaseService
from recovery.settings import get_settings
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import FUNDER, EvmTestbed, dead_url
from tests.test_batch_recheck import appeal
from tests.test_payouts import PEPE_NET_UNITS, PEPE_PRICE, PEPE_UNITS, approved_refund, decided, recheck

runner = CliRunner()
PASSWORD = "correct horse battery staple"
TRANSFER_SELECTOR = "0xa9059cbb"


@pytest.fixture(scope="module")
def config_dir(evm_testbed: EvmTestbed, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped configuration on disk with the test anvils as its EVM networks (what the CLI loads)."""
    return write_config_dir(tmp_path_factory.mktemp("cli-payouts-config"),
                            {name: evm_testbed.url(name) for name in ("ethereum", "bsc")})


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock, config_dir: Path,
          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CaseService]:
    """The service over the parametrized database (to build cases), the CLI pointed at the same
    database and configuration, and the team: ada (admin), maria (specialist), omar (approver)."""
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECOVERY_OPERATOR_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    add_operator(database, "ada", PASSWORD, "admin")
    for name, role in (("maria", "specialist"), ("omar", "approver")):
        add_operator(database, name, PASSWORD, role, actor="ada")
    yield CaseService(database, evm_testbed.config, clock)
    get_settings.cache_clear()


def run(*args: str) -> tuple[int, str, str]:
    result = runner.invoke(cli.app, list(args))
    return result.exit_code, result.stdout, result.stderr


def snapshot(service: CaseService, reference: str) -> tuple[str, int, int]:
    view = service.get(reference)
    return view.case.status, view.case.version, len(view.events)


def listed(*args: str) -> tuple[int, list[dict[str, Any]], str]:
    code, out, err = run("refunds", "list", "--json", *args)
    return code, json.loads(out), err


def entry_for(entries: list[dict[str, Any]], reference: str) -> dict[str, Any]:
    [entry] = [e for e in entries if e["reference"] == reference]
    return entry


def rpc(testbed: EvmTestbed, method: str, *params: Any) -> Any:
    return devchain.rpc(testbed.url("ethereum")).call(method, list(params))


# ------------------------------------------------------------------------------------------ four eyes


def test_the_approver_cannot_pay_the_credit_they_approved(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, _tx, _address = decided(cases, evm_testbed, "kim", "USDT", 2000 * 10**6)  # above the threshold
    before = snapshot(cases, reference)
    code, _, err = run("cases", "approve", reference, "--as", "omar")
    assert code == 1 and "send it for approval" in err and "1000 USD threshold" in err
    assert snapshot(cases, reference) == before
    code, out, err = run("cases", "send-for-approval", reference, "--as", "maria", "--comment", "checked")
    assert code == 0 and "sent for approval by maria (specialist)" in out, err
    code, _, err = run("cases", "approve", reference, "--as", "maria")  # a specialist, above the threshold
    assert code == 1 and "an approver must approve it" in err
    code, out, err = run("cases", "approve", reference, "--as", "omar", "--comment", "ok")
    assert code == 0 and "now approved" in out, err

    approved = snapshot(cases, reference)
    code, _, err = run("cases", "credit", reference, "--as", "omar", "--ledger-reference", "L-77")
    assert code == 1 and "four-eyes rule" in err and "omar approved this payout" in err
    code, _, err = run("cases", "credit", reference, "--as", "maria")  # the ledger reference is required
    assert code == 1 and "ledger_reference" in err
    assert snapshot(cases, reference) == approved
    payout = cases.payout(reference)
    assert payout is not None and payout.state == "approved"

    code, out, err = run("cases", "credit", reference, "--as", "maria", "--ledger-reference", "L-77", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "credited"
    assert run("cases", "close", reference, "--as", "maria")[0] == 0
    code, _, err = run("cases", "reopen", reference, "--as", "maria", "--reason", "the user says it is missing")
    assert code == 1 and "specialist may not reopen" in err
    code, out, err = run("cases", "reopen", reference, "--as", "omar", "--reason", "the user says it is missing")
    assert code == 0 and "now in_review" in out, err
    code, _, err = run("cases", "reject", reference, "--as", "maria", "--reason-code", "duplicate")
    assert code == 0, err
    assert run("audit", "verify")[0] == 0


def test_the_approver_cannot_record_the_refund_they_approved(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference, _token, _address = approved_refund(cases, evm_testbed, "nia")  # approved by omar
    before = snapshot(cases, reference)
    code, _, err = run("refunds", "record", reference, "0x" + "ab" * 32, "--as", "omar")
    assert code == 1 and "four-eyes rule" in err and "omar approved this payout" in err
    assert snapshot(cases, reference) == before
    payout = cases.payout(reference)
    assert payout is not None and payout.state == "approved" and payout.refund_tx_hash is None


# ------------------------------------------------------------------------------------------ the hand-off


def test_a_refund_handed_off_sent_as_listed_recorded_and_proven(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    reference, _tx, address = decided(cases, evm_testbed, "dora", token, PEPE_UNITS)
    assert run("cases", "send-for-approval", reference, "--as", "maria")[0] == 0
    assert run("cases", "approve", reference, "--as", "omar")[0] == 1  # no price: a valuation first
    assert run("cases", "set-valuation", reference, "--as", "maria", "--price-usd", PEPE_PRICE, "--source", "quote",
               "--reason", "no listed price")[0] == 0
    assert run("cases", "approve", reference, "--as", "omar")[0] == 0

    code, entries, err = listed("--network", "ethereum")
    assert code == 0, err
    entry = entry_for(entries, reference)
    assert {k: entry[k] for k in ("network", "decimals", "amount", "amount_units", "memo", "error")} == {
        "network": "ethereum", "decimals": 18, "amount": "4200", "amount_units": str(PEPE_NET_UNITS), "memo": None,
        "error": None}
    assert entry["contract"].lower() == entry["asset"].lower() == token.lower()  # an unlisted token: its contract
    assert (entry["from_address"].lower(), entry["to_address"].lower()) == (address.lower(), FUNDER.lower())
    tx = entry["unsigned_tx"]
    assert set(tx) == {"type", "chainId", "nonce", "to", "value", "data", "gas", "maxFeePerGas",
                       "maxPriorityFeePerGas"}
    assert (tx["type"], tx["chainId"], tx["value"], tx["to"].lower()) == ("0x2", "0x1", "0x0", token.lower())
    assert tx["nonce"] == rpc(evm_testbed, "eth_getTransactionCount", address, "pending")
    assert tx["data"].startswith(TRANSFER_SELECTOR) and FUNDER.lower()[2:] in tx["data"].lower()
    assert int(tx["data"][-64:], 16) == PEPE_NET_UNITS
    assert int(tx["maxFeePerGas"], 16) >= int(tx["maxPriorityFeePerGas"], 16) > 0
    # the deposit address holds the tokens but no ether: it needs gas first, exactly gas x max fee
    needs = entry["needs_native"]
    assert needs is not None and needs["asset"] == "ETH"
    assert int(needs["amount_units"]) == int(tx["gas"], 16) * int(tx["maxFeePerGas"], 16)

    # the payer: exactly the listed fields, sent from the deposit address (impersonation funds its gas)
    impersonate(evm_testbed.url("ethereum"), entry["from_address"])
    refund = rpc(evm_testbed, "eth_sendTransaction", {"from": entry["from_address"], **tx})
    evm_testbed.mine("ethereum", 1)
    receipt = rpc(evm_testbed, "eth_getTransactionReceipt", refund)
    assert receipt["status"] == "0x1"

    code, out, err = run("refunds", "record", reference, refund, "--as", "maria")
    assert code == 0 and "now refund_pending" in out, err
    assert all(e["reference"] != reference for e in listed()[1])  # paid: no longer waiting
    evm_testbed.mine("ethereum", 12)
    if isinstance(cases.clock, Clock):
        cases.clock.advance(minutes=5)
    code, out, err = run("recheck", "--processes", "0", "--json")
    assert code == 0, err
    summary = json.loads(out)
    assert summary["refunds_confirmed"] == 1
    case = cases.get(reference).case
    assert (case.status, case.refund_tx_hash) == ("refunded", refund.lower())
    # the re-check published an anchor (the first one: none was younger than the configured minutes)
    assert summary["anchor"] is not None and summary["anchor_error"] is None
    code, out, err = run("recheck", "--processes", "0", "--json")
    assert code == 0 and json.loads(out)["anchor"] is None, err  # at most every N minutes
    code, data_out, _ = run("audit", "verify", "--json")
    assert code == 0 and json.loads(data_out)["anchors_checked"] == 1


def test_several_refunds_from_one_address_take_successive_nonces_and_sign_offline(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    """A deposit address whose key the test holds (the exchange's signer): two refunds from it are
    listed with successive nonces, what it lacks for their gas is said first, and once funded both
    transactions are signed offline with eth_account exactly as listed and proven on chain."""
    signer = Account.create()
    with cases.db.write() as session:
        for network in ("ethereum", "bsc"):
            session.add(DepositAddress(user_id="ravi", network=network, address=signer.address, kind="eoa"))
    token = evm_testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    references = []
    for _ in range(2):
        tx = evm_testbed.send_token("ethereum", token, signer.address, PEPE_UNITS)
        references.append(appeal(cases, "ravi", "ethereum", token, tx, signer.address))
    evm_testbed.mine("ethereum", 12)
    recheck(cases)
    for reference in references:
        assert run("cases", "set-valuation", reference, "--as", "maria", "--price-usd", PEPE_PRICE, "--source",
                   "quote", "--reason", "no listed price")[0] == 0
        assert run("cases", "send-for-approval", reference, "--as", "maria")[0] == 0
        assert run("cases", "approve", reference, "--as", "omar")[0] == 0

    code, entries, err = listed()
    assert code == 0, err
    first, second = (entry_for(entries, r) for r in references)
    assert [int(e["unsigned_tx"]["nonce"], 16) for e in (first, second)] == [0, 1]
    costs = [int(e["unsigned_tx"]["gas"], 16) * int(e["unsigned_tx"]["maxFeePerGas"], 16) for e in (first, second)]
    assert [int(e["needs_native"]["amount_units"]) for e in (first, second)] == costs

    # funded (the node's fee suggestion follows what the funding transaction itself paid: ample margin)
    evm_testbed.send_native("ethereum", signer.address, 10**17)
    code, entries, err = listed()
    assert code == 0, err
    first, second = (entry_for(entries, r) for r in references)
    assert first["needs_native"] is None and second["needs_native"] is None
    hashes = []
    for entry in (first, second):
        signed = Account.sign_transaction(entry["unsigned_tx"], signer.key)
        hashes.append(rpc(evm_testbed, "eth_sendRawTransaction", signed.raw_transaction.to_0x_hex()))
    evm_testbed.mine("ethereum", 1)
    for tx_hash, reference in zip(hashes, references, strict=True):
        assert rpc(evm_testbed, "eth_getTransactionReceipt", tx_hash)["status"] == "0x1"
        assert run("refunds", "record", reference, tx_hash, "--as", "maria")[0] == 0
    evm_testbed.mine("ethereum", 12)
    assert recheck(cases).refunds_confirmed == 2
    assert [cases.get(r).case.status for r in references] == ["refunded", "refunded"]


def test_a_node_that_cannot_answer_leaves_the_error_in_the_entry(
    cases: CaseService, evm_testbed: EvmTestbed, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _token, _address = approved_refund(cases, evm_testbed, "ugo")
    down = write_config_dir(tmp_path / "down", {"ethereum": dead_url(), "bsc": evm_testbed.url("bsc")})
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(down))
    get_settings.cache_clear()
    code, entries, err = listed()
    assert code == 1 and reference in err and "could not be prepared" in err
    entry = entry_for(entries, reference)
    assert entry["unsigned_tx"] is None and entry["needs_native"] is None
    assert "no node of ethereum answered" in entry["error"]
    assert entry["amount_units"] == str(PEPE_NET_UNITS)  # the payout itself is still listed
    code, out, err = run("refunds", "list")  # the table lists it, and says what went wrong
    assert code == 1 and reference in out and f"error: {reference}: no node of ethereum answered" in err
    assert cases.get(reference).case.status == "approved"


def test_request_info_from_a_template_or_in_words_and_a_rejection_with_the_finding_s_code(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    """Issue 21: `recovery cases request-info REF --as NAME --message TEXT | --template NAME`; a
    rejection without --reason-code carries the code that matches the finding."""
    reference, _tx, _address = decided(cases, evm_testbed, "ola", "USDT", 30 * 10**6)
    before = snapshot(cases, reference)
    assert run("cases", "request-info", reference, "--as", "maria")[0] == 2  # neither --message nor --template
    code, _, err = run("cases", "request-info", reference, "--as", "maria", "--template", "nope")
    assert code == 2 and "--template: 'nope' is not a template" in err and "screenshot" in err
    assert snapshot(cases, reference) == before
    code, out, err = run("cases", "request-info", reference, "--as", "maria", "--template", "screenshot", "--json")
    assert code == 0, err
    assert json.loads(out)["status"] == "needs_info"
    asked = cases.get(reference).events[-1]
    assert (asked.action, asked.details["template"]) == ("request_info", "screenshot")
    assert asked.details["message"] == cases.config.templates["screenshot"].message
    assert cases.get(reference).case.sla_due_at is None
    code, _, err = run("cases", "request-info", reference, "--as", "maria", "--message", "Which wallet?")
    assert code == 1 and "cannot request_info a case that is needs_info" in err
    waiting = cases.get(reference).case.version
    cases.provide_info(reference, "MetaMask", Actor("ola", Role.USER), expected_version=waiting)
    code, out, err = run("cases", "request-info", reference, "--as", "maria", "--message", "And the date?")
    assert code == 0 and "now needs_info" in out, err
    assert cases.get(reference).events[-1].details["message"] == "And the date?"
    code, out, err = run("cases", "reject", reference, "--as", "maria")
    assert code == 0, err
    assert cases.get(reference).events[-1].details["reason_code"] == "not_recoverable"
