"""New appeal, Approvals, Dashboard, Configuration, Audit and Operators pages; the CLI command."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlmodel import select
from streamlit.testing.v1 import AppTest
from typer.testing import CliRunner

from app.cli_workbench import MAIN_SCRIPT, streamlit_command
from app.workbench.context import Workbench
from app.workbench.payout_reads import payout_sla
from recovery import queues
from recovery.fees import compute_fee, match_rule
from recovery.models import Case
from recovery.operators import list_operators
from recovery.services import Actor
from recovery.vocabulary import CaseStatus, Origin, Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed
from tests.support.tamper import as_dba
from tests.workbench.conftest import field_value, frame_with, markdown_texts, plain_texts, signed_in_app
from tests.workbench.seed import BIG_COMMENT, SARA, ChainFacts, World, block_time

ALICE = Actor("alice", Role.APPROVER)
BOB = Actor("bob", Role.APPROVER)


def count_cases(wb: Workbench) -> int:
    return queues.count_cases(wb.db)


# ------------------------------------------------------------------------------ new appeal
def fill_appeal(at: AppTest, **fields: str) -> AppTest:
    for name, value in fields.items():
        if name == "network":
            at.selectbox(key="new_network").set_value(value)
        else:
            at.text_input(key=f"new_{name}").input(value)
    at.button(key="new_submit").click().run()
    assert not at.exception, at.exception
    return at


def test_intake_files_and_checks_an_appeal(wb: Workbench, world: World, evm_testbed: EvmTestbed,
                                           chain_facts: ChainFacts) -> None:
    address = chain_facts.addresses["user-1"]
    tx = evm_testbed.send_token("ethereum", "USDT", address, 75 * 10**6)
    evm_testbed.mine("ethereum", 15)
    at = signed_in_app("sara", "views/new_appeal.py")
    fill_appeal(at, user_id="user-1", network="ethereum", asset="usdt", tx_hash=tx.upper().replace("0X", "0x"),
                deposit_address=address.lower(), amount="75")
    assert any("filed for the user" in str(s.value) for s in at.success)
    reference = at.session_state["wb_new_reference"]
    case = wb.cases.get(reference).case
    # normalized like the API does it, opened as an intake, classified on the chain
    assert (case.origin, case.asset, case.tx_hash, case.deposit_address) == (Origin.INTAKE, "USDT", tx, address)
    assert case.status == CaseStatus.IN_REVIEW and case.category == "uncredited_valid"
    assert wb.cases.get(reference).events[0].actor == "sara"
    at.button(key="new_open").click().run()
    assert [t.value for t in at.title] == [f"Case {reference}"]


def test_intake_names_every_bad_field_and_stores_nothing(wb: Workbench, world: World) -> None:
    before = count_cases(wb)
    at = signed_in_app("sara", "views/new_appeal.py")
    fill_appeal(at, user_id="user 1", network="ethereum", asset="USDT", tx_hash="0x1234",
                deposit_address="not-an-address", amount="-3")
    lines = plain_texts(at)
    for field in ("user_id", "tx_hash", "deposit_address", "amount"):
        assert any(line.startswith(f"{field}:") for line in lines), field
    assert count_cases(wb) == before


def test_intake_of_an_existing_appeal_files_nothing_new(wb: Workbench, world: World) -> None:
    case = wb.cases.get(world.small).case
    at = signed_in_app("tom", "views/new_appeal.py")
    fill_appeal(at, user_id=case.user_id, network="ethereum", asset="USDT", tx_hash=case.tx_hash,
                deposit_address=case.deposit_address)
    assert any("already has an appeal" in str(i.value) for i in at.info)
    assert at.session_state["wb_new_reference"] == world.small


# ------------------------------------------------------------------------------ approvals
def approvals(username: str) -> Any:
    at = signed_in_app(username, "views/approvals.py")
    assert not at.exception, at.exception
    return frame_with(at, "sent by")


def test_approvals_lists_only_the_cases_sent_for_approval(wb: Workbench, world: World) -> None:
    # small and unlisted are in review with a credit and a refund, but nobody sent them: not listed
    table = approvals("alice")
    assert list(table["reference"]) == [world.big]
    assert table.iloc[0][["needs an approver", "sent by", "comment", "you prepared it"]].tolist() == [
        "yes", "sara", BIG_COMMENT, ""]
    small = wb.cases.send_for_approval(world.small, SARA, expected_version=wb.cases.get(world.small).case.version)
    wb.cases.send_for_approval(world.unlisted, ALICE, expected_version=wb.cases.get(world.unlisted).case.version,
                               comment="Refund to the sender.")
    table = approvals("alice")
    rows = {r["reference"]: r for r in table.to_dict("records")}
    assert list(table["reference"]) == [world.big, world.small, world.unlisted], "largest first, unknown last"
    assert [rows[r]["needs an approver"] for r in table["reference"]] == ["yes", "no", "yes"]
    assert (rows[world.unlisted]["sent by"], rows[world.unlisted]["comment"]) == ("alice", "Refund to the sender.")
    assert rows[world.unlisted]["you prepared it"] == "you prepared it"
    assert rows[world.small]["comment"] == "-"
    assert approvals("bob")["you prepared it"].tolist() == ["", "", ""]
    # once approved a case leaves the list
    wb.cases.approve(world.small, BOB, expected_version=small.version)
    assert list(approvals("bob")["reference"]) == [world.big, world.unlisted]
    at = signed_in_app("bob", "views/approvals.py")
    at.session_state["ap_table"] = {"selection": {"rows": [0], "columns": [], "cells": []}}
    at.button(key="ap_open").click().run()
    assert [t.value for t in at.title] == [f"Case {world.big}"]


def test_approvals_says_when_nothing_was_sent(wb: Workbench, world: World) -> None:
    case = wb.cases.get(world.big).case
    wb.cases.approve(world.big, BOB, expected_version=case.version)
    at = signed_in_app("alice", "views/approvals.py")
    assert any("Nothing is waiting for an approver" in str(i.value) for i in at.info)
    assert not [f for f in at.dataframe if "sent by" in getattr(f.value, "columns", [])]


# ------------------------------------------------------------------------------ dashboard
def test_dashboard_figures(wb: Workbench, world: World) -> None:
    at = signed_in_app("ari", "views/dashboard.py")
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    # the eight open appeals and the two cases the scan detected
    assert metrics["Open backlog"] == "10"
    assert metrics["Awaiting a decision"] == "10"
    assert metrics["Past their SLA"] == "2"
    assert metrics["Decided late"] == "0 of 2"
    assert metrics["First decision, median"] == "24.0 h"
    # status, backlog, age, per day, the weekly trend, the throughput per operator, value by payout week
    assert [c.key for c in at.get("vega_lite_chart")] == [
        "dash_chart_status", "dash_chart_backlog", "dash_chart_age", "dash_chart_days", "dash_chart_trend",
        "dash_chart_throughput", "dash_chart_paid_weeks"]
    # the value recovered by payout date (the seeded credit, booked a day ago), to the cent
    money = frame_with(at, "network")
    assert money.to_dict("records") == [
        {"network": "ethereum", "cases": 1, "value": "$300.00", "fees": "$0.00", "to the users": "$300.00",
         "value unknown": 0}
    ]
    # detected vs appealed: two of the twelve cases were found by the scan, none is finished yet
    assert metrics["Detected by the scan"] == "2 (16.7 %)"
    assert metrics["Appealed"] == "10 (83.3 %)"
    origins = frame_with(at, "deposit time unknown")
    assert list(origins["origin"]) == ["detected (by the scan)", "appealed (all)", "· by the user",
                                       "· filed by an operator"]
    assert [list(origins[c]) for c in ("cases", "share", "open", "finished")] == [
        ["2", "10", "10", "0"], ["16.7 %", "83.3 %", "83.3 %", "0.0 %"], ["2", "8", "8", "0"], ["0", "2", "2", "0"]]
    # the six appeals found on the chain have a deposit time; the other four (never found) are counted apart
    assert list(origins["deposit time known"]) == ["2", "6", "6", "0"]
    assert list(origins["deposit time unknown"]) == ["0", "4", "4", "0"]
    assert list(origins["deposit to case, median"])[3] == "-"
    at.selectbox(key="dash_days").set_value(7).run()
    assert not at.exception and len(frame_with(at, "network")) == 1


def test_dashboard_counts_payouts_past_their_sla(wb: Workbench, world: World, wb_clock: Clock) -> None:
    def metrics() -> dict[str, str]:
        at = signed_in_app("ari", "views/dashboard.py")
        assert not at.exception, at.exception
        return {m.label: m.value for m in at.metric}

    assert [metrics()[k] for k in ("Payouts waiting", "Payouts past their SLA", "Refunds awaiting proof",
                                   "Refund mismatches open")] == ["0", "0", "0", "0"]
    wb.cases.approve(world.small, BOB, expected_version=wb.cases.get(world.small).case.version)
    assert [metrics()[k] for k in ("Payouts waiting", "Payouts past their SLA")] == ["1", "0"]
    wb_clock.advance(hours=wb.config.policy.payout_sla_hours + 2)
    at = signed_in_app("ari", "views/dashboard.py")
    assert {m.label: m.value for m in at.metric}["Payouts past their SLA"] == "1"
    late = frame_with(at, "overdue by")
    assert late[["reference", "kind", "asset", "amount", "approved by", "overdue by"]].values.tolist() == [
        [world.small, "credit", "USDT", "500", "bob", "2h 0m"]]
    # paid: no longer waiting
    case = wb.cases.get(world.small).case
    wb.cases.mark_credited(world.small, SARA, expected_version=case.version, ledger_reference="LEDGER-5")
    assert [metrics()[k] for k in ("Payouts waiting", "Payouts past their SLA")] == ["0", "0"]
    assert payout_sla(wb.db, wb.now(), 1).waiting == 0


def test_dashboard_queries_on_both_backends(seeded_any: tuple[Workbench, World]) -> None:
    wb, world = seeded_any
    data = queues.dashboard(wb.db, wb.now())
    assert data.by_status == {"submitted": 2, "awaiting_chain": 1, "in_review": 7, "credited": 1, "rejected": 1}
    # user-6's appeal of user-5's deposit reads to user-6 like an address that is not ours (issue 18)
    assert data.backlog_by_category == {"unclassified": 2, "tx_not_found": 1, "uncredited_valid": 4,
                                        "not_our_address": 1, "unlisted_token": 1, "wrong_network": 1}
    assert (data.sla.awaiting, data.sla.breached, data.sla.due_soon) == (10, 2, 0)
    assert (data.sla.decided, data.sla.decided_late) == (2, 0)
    assert dict((label, (ok, late)) for label, ok, late in data.age_buckets)["3-7 days"] == (0, 2)
    # decided one day after filing (approval and rejection), resolved the same day
    assert data.first_decision == queues.Percentiles(2, 24.0, 24.0)
    assert data.resolution == queues.Percentiles(2, 24.0, 24.0)
    assert [(m.network, m.category, m.cases, m.value_usd, m.fee_usd) for m in data.money] == [
        ("ethereum", "uncredited_valid", 1, Decimal("300"), Decimal("0"))]
    # the seed files six appeals three hours before its start and detects two at its start: within
    # three hours after midnight (UTC) the six fall on the day before
    today = 8 if (wb.now() - timedelta(hours=3)).date() == wb.now().date() else 2
    assert sum(n for _, n in data.per_day) == 12 and data.per_day[-1][1] == today
    # a decision after the SLA due time counts as late; an older window leaves the old cases out
    case = wb.cases.get(world.overdue[0]).case
    wb.cases.reject(world.overdue[0], "other", Actor("sara", Role.SPECIALIST), expected_version=case.version)
    later = queues.dashboard(wb.db, wb.now())
    assert (later.sla.decided, later.sla.decided_late, later.sla.breached) == (3, 1, 1)
    assert sum(n for _, n in queues.dashboard(wb.db, wb.now(), days=1).per_day) == today


def test_dashboard_detected_vs_appealed_from_the_block_times(seeded_any: tuple[Workbench, World],
                                                               evm_testbed: EvmTestbed,
                                                               chain_facts: ChainFacts) -> None:
    """Deposit to case in the seeded world, against the block times read from the nodes here."""
    wb, world = seeded_any
    data = queues.dashboard(wb.db, wb.now())

    def waited(reference: str, network: str, tx_hash: str) -> float:
        opened: datetime = wb.cases.get(reference).case.created_at
        # an appeal filed before its block (the seed files some "hours ago") waited for nothing
        return max(timedelta(0), opened - block_time(evm_testbed, network, tx_hash)).total_seconds()

    detected = [waited(world.detected[0], "bsc", chain_facts.stray_wrong_network),
                waited(world.detected[1], "ethereum", chain_facts.stray_uncredited)]
    on_chain = {world.small: chain_facts.small, world.big: chain_facts.big, world.unlisted: chain_facts.unlisted,
                world.contested[0]: chain_facts.contested, world.contested[1]: chain_facts.contested,
                world.credited: chain_facts.credited}
    appealed = [waited(reference, "ethereum", tx) for reference, tx in on_chain.items()]
    assert data.origin("detected") == queues.OriginRow("detected", 2, 2, 0, 16.7, queues.percentiles(detected), 0)
    # rejected, not_found and the two overdue appeals were never found on the chain: unknown
    assert data.origin("appeal") == queues.OriginRow("appeal", 10, 8, 2, 83.3, queues.percentiles(appealed), 4)
    assert data.origin("intake") == queues.OriginRow("intake", 0, 0, 0, 0.0, queues.Percentiles(0, None, None), 0)
    assert data.origin(queues.APPEALED) == dataclasses.replace(data.origin("appeal"), origin="appealed")


def test_percentiles_are_nearest_rank() -> None:
    hours = [3600.0 * h for h in (5, 1, 4, 2, 3, 10, 6, 7, 8, 9)]
    assert queues.percentiles(hours) == queues.Percentiles(10, 5.0, 9.0)
    assert queues.percentiles([]) == queues.Percentiles(0, None, None)


# ------------------------------------------------------------------------------ configuration
def test_configuration_shows_what_is_loaded(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara", "views/configuration.py")
    networks = frame_with(at, "family")
    assert set(networks["network"]) == set(wb.config.networks)
    assert len(frame_with(at, "decimals")) == len(wb.config.assets)
    assert len(frame_with(at, "flat USD")) == len(wb.config.fees)
    assert field_value(at, "four-eyes above (USD)") == "1000"


def test_fee_calculator_uses_the_fee_rules(wb: Workbench, world: World) -> None:
    at = signed_in_app("sara", "views/configuration.py")
    at.selectbox(key="fee_category").set_value("wrong_network")
    at.selectbox(key="fee_network").set_value("ethereum").run()
    at.selectbox(key="fee_asset").set_value("USDT")
    at.text_input(key="fee_amount").input("1000").run()
    matched = match_rule(wb.config.fees, "wrong_network", "ethereum", ["USDT"])
    usdt = wb.config.asset_by_symbol("ethereum", "USDT")
    assert usdt is not None and usdt.price_usd is not None
    expected = compute_fee(matched, Decimal(1000), usdt.decimals, usdt.price_usd)
    metrics = {m.label: m.value for m in at.metric}
    assert expected.fee == Decimal(45)
    assert metrics["Fee"] == "45 USDT"
    assert Decimal(metrics["Net to the user"]) == Decimal(955)
    assert field_value(at, "rule") == matched.label() if matched else False


@pytest.mark.parametrize(("amount", "message"), [("abc", "amount: 'abc' is not a decimal number"),
                                                  ("1.0000001", "has more than 6 decimals")])
def test_fee_calculator_explains_bad_amounts(wb: Workbench, world: World, amount: str, message: str) -> None:
    at = signed_in_app("sara", "views/configuration.py")
    at.selectbox(key="fee_asset").set_value("USDT")
    at.text_input(key="fee_amount").input(amount).run()
    assert not at.exception
    assert any(message in line for line in plain_texts(at))


# ------------------------------------------------------------------------------ audit
def test_audit_verify_and_a_tampered_event(wb: Workbench, world: World) -> None:
    at = signed_in_app("ari", "views/audit.py")
    at.button(key="audit_verify").click().run()
    events = len(list(queues.export_events_jsonl(wb.db)))
    assert any(f"intact: {events} events verified" in str(s.value) for s in at.success)
    as_dba(wb.db, "UPDATE case_events SET actor = 'mallory' WHERE id = 3")  # the database's administrator
    at.button(key="audit_verify").click().run()
    assert any("broken at event 3" in str(e.value) for e in at.error)
    assert "content does not match its hash (edited)" in plain_texts(at)


def test_audit_export_has_every_event_with_its_case(wb: Workbench, world: World) -> None:
    lines = [json.loads(line) for line in queues.export_events_jsonl(wb.db, batch=4)]
    assert [e["id"] for e in lines] == list(range(1, len(lines) + 1))
    with wb.db.read() as session:
        references = {c.id: c.reference for c in session.exec(select(Case)).all()}
    assert all(e["reference"] == references.get(e["case_id"]) for e in lines)
    assert {e["action"] for e in lines if e["case_id"] is None} == {"addresses_imported"}  # events about no case
    assert all(len(e["hash"]) == 64 and len(e["prev_hash"]) == 64 and e["key_id"] for e in lines)
    at = signed_in_app("alice", "views/audit.py")
    assert "audit_export" in [d.key for d in at.get("download_button")]
    assert len(frame_with(at, "actor_role")) == min(50, len(lines))


# ------------------------------------------------------------------------------ operators
def add(at: AppTest, username: str, role: str, password: str, again: str | None = None) -> AppTest:
    at.text_input(key="op_username").input(username)
    at.selectbox(key="op_role").set_value(role)
    at.text_input(key="op_password").input(password)
    at.text_input(key="op_password2").input(again if again is not None else password)
    return at.button(key="op_add_submit").click().run()


def test_admins_manage_operators(wb: Workbench, world: World) -> None:
    at = signed_in_app("ada", "views/operators.py")
    add(at, "newbie", "specialist", "a long enough secret")
    assert any("Operator account created" in str(s.value) for s in at.success)
    assert {"newbie": "specialist"}.items() <= {o.username: o.role for o in list_operators(wb.db)}.items()
    add(at, "Bad Name", "specialist", "short")
    assert any(line.startswith("username:") for line in plain_texts(at))
    assert any(line.startswith("password:") for line in plain_texts(at))
    add(at, "other", "approver", "a long enough secret", "a different secret!!")
    assert any("The two passwords differ" in str(e.value) for e in at.error)
    at.selectbox(key="op_toggle_user").set_value("tom")
    at.button(key="op_disable").click().run()
    assert not next(o for o in list_operators(wb.db) if o.username == "tom").active
    at.selectbox(key="op_toggle_user").set_value("ada")
    at.button(key="op_disable").click().run()
    assert any("cannot disable your own account" in str(e.value) for e in at.error)
    assert next(o for o in list_operators(wb.db) if o.username == "ada").active


def test_auditors_read_operators_but_change_nothing(wb: Workbench, world: World) -> None:
    at = signed_in_app("ari", "views/operators.py")
    assert set(frame_with(at, "last sign-in")["username"]) == {"ada", "alice", "ari", "bob", "sara", "tom"}
    assert not [b for b in at.button if str(b.key).startswith("op_")]
    assert "password_hash" not in frame_with(at, "last sign-in").columns
    assert not any("$argon2" in text for text in markdown_texts(at) + plain_texts(at))


# ------------------------------------------------------------------------------ the command
def test_the_command_serves_on_loopback_without_telemetry() -> None:
    command = streamlit_command("127.0.0.1", 8600)
    options = dict(zip(command[5::2], command[6::2], strict=True))
    assert command[1:5] == ["-m", "streamlit", "run", str(MAIN_SCRIPT)]
    assert options["--server.address"] == "127.0.0.1"
    assert options["--server.port"] == "8600"
    assert options["--browser.gatherUsageStats"] == "false"
    assert options["--server.headless"] == "true"
    secrets_file = Path("/etc/recovery/secrets.toml")
    assert streamlit_command("127.0.0.1", 1, secrets_file)[-2:] == ["--secrets.files", str(secrets_file)]


def test_the_command_is_mounted() -> None:
    from app.cli import app

    result = CliRunner().invoke(app, ["workbench", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0 and "--port" in result.output and "Loopback by default" in result.output
