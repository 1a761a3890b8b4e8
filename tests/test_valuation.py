"""Manual valuation (recovery.valuation through CaseService.set_valuation) and the approval it
unlocks, on real anvil chains, on SQLite and PostgreSQL, through the services and the CLI.

A refund of an unlisted token has a fee rule ("80 USD flat", unlisted_token in fees.toml) that no
price turns into tokens: approving it is refused on every path until a valuation is set, and then
only by someone other than whoever set it, an approver, once the case was sent for approval (a
manually valued case is four-eyes at any value). Bad input names the field; an edited row, a stale
valuation or an uneconomical one is refused.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import col, select

from recovery import valuation
from recovery.db import Database
from recovery.errors import Forbidden, InvalidTransition, ValidationFailed
from recovery.models import Case
from recovery.operators import add_operator
from recovery.services import Actor, CaseService
from recovery.settings import get_settings
from recovery.vocabulary import Role
from tests.conftest import Clock
from tests.fixtures_anvil import EvmTestbed
from tests.test_cli_payouts import PASSWORD, config_dir, run  # noqa: F401  (config_dir: a fixture)
from tests.test_payouts import PEPE_UNITS, decided

SARA = Actor("sara", Role.SPECIALIST)
TOM = Actor("tom", Role.SPECIALIST)
OMAR = Actor("omar", Role.APPROVER)
OLGA = Actor("olga", Role.APPROVER)
ADA = Actor("ada", Role.ADMIN)
#: 5000 PEPE at 0.1 USD: 500 USD, fee 80 USD flat = 800 PEPE, net 4200 PEPE
PRICE = "0.1"
FEE = Decimal(800)
NET = Decimal(4200)


@pytest.fixture
def cases(database: Database, evm_testbed: EvmTestbed, clock: Clock, config_dir: Path,  # noqa: F811
          monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[CaseService]:
    """The service on the parametrized database; the CLI on the same database and configuration;
    the team: ada (admin), sara and tom (specialists), omar and olga (approvers)."""
    monkeypatch.setenv("RECOVERY_DATABASE_URL", database.engine.url.render_as_string(hide_password=False))
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("RECOVERY_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("RECOVERY_OPERATOR_PASSWORD", PASSWORD)
    get_settings.cache_clear()
    add_operator(database, "ada", PASSWORD, "admin")
    for name, role in (("sara", "specialist"), ("tom", "specialist"), ("omar", "approver"), ("olga", "approver")):
        add_operator(database, name, PASSWORD, role, actor="ada")
    yield CaseService(database, evm_testbed.config, clock)
    get_settings.cache_clear()


def unlisted(service: CaseService, testbed: EvmTestbed, user: str) -> str:
    """A 5000 PEPE deposit (an unlisted token, no price) decided: a refund whose fee is not set."""
    token = testbed.new_token("ethereum", "Pepe", "PEPE", 18, 10**30)
    reference, _tx, _address = decided(service, testbed, user, token, PEPE_UNITS)
    case = service.get(reference).case
    assert (case.category, case.resolution, case.value_usd, case.fee_amount) == ("unlisted_token", "refund", None,
                                                                                   None)
    assert valuation.needs_valuation(case)
    return reference


def version(service: CaseService, reference: str) -> int:
    return service.get(reference).case.version


def snapshot(service: CaseService, reference: str) -> tuple[int, int, str]:
    view = service.get(reference)
    return view.case.version, len(view.events), view.case.status


def send(service: CaseService, reference: str, actor: Actor = SARA) -> None:
    service.send_for_approval(reference, actor, expected_version=version(service, reference))


def value(service: CaseService, reference: str, actor: Actor = SARA, price: str = PRICE) -> Case:
    return service.set_valuation(reference, actor, expected_version=version(service, reference), price_usd=price,
                                 source="DEX mid price, 3 venues", reason="Thin market; the median of three quotes.")


# ------------------------------------------------------------------------------------------ services
def test_approval_is_refused_until_a_valuation_is_set(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference = unlisted(cases, evm_testbed, "val-a")
    send(cases, reference)
    before = snapshot(cases, reference)
    for approver in (OMAR, ADA):
        with pytest.raises(InvalidTransition, match=r"has no USD price.*set a valuation"):
            cases.approve(reference, approver, expected_version=version(cases, reference))
    assert snapshot(cases, reference) == before and cases.payout(reference) is None

    case = value(cases, reference)
    assert (case.value_usd, case.fee_amount, case.net_amount, case.fee_usd) == (Decimal(500), FEE, NET, Decimal(80))
    assert (case.fee_amount or 0) + (case.net_amount or 0) == Decimal(5000)
    assert (case.decision or {})["fee"]["fee"] is None, "the engine's breakdown stays as the engine left it"
    [event] = [e for e in cases.get(reference).events if e.action == "set_valuation"]
    assert (event.actor, event.details["price_usd"], event.details["source"]) == ("sara", "0.1",
                                                                                 "DEX mid price, 3 venues")
    assert (event.details["fee"], event.details["net"], event.details["fee_usd"]) == ("800", "4200", "80")
    assert event.details["before"]["fee_amount"] is None

    approved = cases.approve(reference, OMAR, expected_version=case.version)
    assert approved.status == "approved"
    payout = cases.payout(reference)
    assert payout is not None and payout.amount_units == NET * 10**18, "the refund is net of the valued fee"
    [approval] = [e for e in cases.get(reference).events if e.action == "approve"]
    assert approval.details["payout"]["fee_undetermined"] is False
    assert approval.details["valuation"]["price_usd"] == "0.1" and approval.details["valuation"]["set_by"] == ["sara"]
    assert "sara" in approval.details["preparers"]


def test_whoever_set_the_valuation_never_approves_and_four_eyes_still_applies(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    """The misuse: a low price puts the case under the four-eyes threshold (0.05 USD: 250 USD) and the
    one who set it approves alone. Refused for the valuer, for another specialist, and for an
    approver until it was sent for approval."""
    reference = unlisted(cases, evm_testbed, "val-b")
    case = value(cases, reference, ADA, price="0.05")
    assert case.value_usd == Decimal(250) and case.value_usd < cases.config.policy.four_eyes_above_usd
    with pytest.raises(Forbidden, match=r"ada prepared this case|ada set the valuation"):
        cases.approve(reference, ADA, expected_version=case.version)
    with pytest.raises(Forbidden, match="manual valuation: an approver must approve it"):
        cases.approve(reference, TOM, expected_version=case.version)
    with pytest.raises(Forbidden, match="send it for approval first"):
        cases.approve(reference, OMAR, expected_version=case.version)
    send(cases, reference, SARA)
    with pytest.raises(Forbidden, match="ada"):
        cases.approve(reference, ADA, expected_version=version(cases, reference))
    assert cases.approve(reference, OLGA, expected_version=version(cases, reference)).status == "approved"


def test_an_approver_who_set_the_valuation_is_refused_even_without_preparing_otherwise(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    reference = unlisted(cases, evm_testbed, "val-c")
    send(cases, reference, SARA)
    value(cases, reference, OMAR)
    with pytest.raises(Forbidden, match="omar"):
        cases.approve(reference, OMAR, expected_version=version(cases, reference))
    # the four-eyes check of the valuation itself (not only the preparers): called directly
    with cases.db.read() as session:
        case = session.get(Case, cases.get(reference).case.id)
        assert case is not None
        with pytest.raises(Forbidden, match="omar set the valuation"):
            valuation.approval_check(session, case, "omar")
        assert valuation.approval_check(session, case, "olga")["valuation"]["set_by"] == ["omar"]


@pytest.mark.parametrize(("price", "message"), [
    ("0", "must be positive"), ("-1", "must be positive"), ("NaN", "finite"), ("Infinity", "finite"),
    ("abc", "not a decimal number"), ("", "is required"), ("1e12", "below"), ("0.000000001", "8 decimal places"),
])
def test_a_bad_price_is_refused_naming_the_field(
    cases: CaseService, evm_testbed: EvmTestbed, price: str, message: str
) -> None:
    reference = unlisted(cases, evm_testbed, "val-p")
    before = snapshot(cases, reference)
    with pytest.raises(ValidationFailed) as caught:
        value(cases, reference, price=price)
    assert [e.field for e in caught.value.errors] == ["price_usd"] and message in str(caught.value)
    with pytest.raises(ValidationFailed) as caught:
        cases.set_valuation(reference, SARA, expected_version=before[0], price_usd=PRICE, source=" ", reason="")
    assert [e.field for e in caught.value.errors] == ["source", "reason"]
    with pytest.raises(ValidationFailed, match="price_usd"):
        valuation.parse_price(0.1)  # type: ignore[arg-type]
    assert snapshot(cases, reference) == before


def test_a_priced_asset_or_a_case_paying_nothing_takes_no_valuation(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    reference, _tx, _address = decided(cases, evm_testbed, "val-d", "USDT", 200 * 10**6)
    with pytest.raises(InvalidTransition, match="already determined"):
        value(cases, reference)
    with pytest.raises(Forbidden, match="auditor may not set_valuation"):
        cases.set_valuation(reference, Actor("ari", Role.AUDITOR), expected_version=version(cases, reference),
                            price_usd="1", source="x", reason="y")
    other = unlisted(cases, evm_testbed, "val-e")
    cases.reject(other, "not_economical", SARA, expected_version=version(cases, other))
    with pytest.raises(InvalidTransition, match="cannot set_valuation a case that is rejected"):
        value(cases, other)


def test_an_uneconomical_valuation_is_not_approved(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference = unlisted(cases, evm_testbed, "val-f")
    case = value(cases, reference, price="0.018")  # 90 USD: under the rule's 100 USD minimum
    assert "not_economical" in case.flags
    send(cases, reference, TOM)
    with pytest.raises(InvalidTransition, match="not economical"):
        cases.approve(reference, OMAR, expected_version=version(cases, reference))
    value(cases, reference, TOM, price="1")  # a second valuation replaces the first
    case = cases.get(reference).case
    assert (case.value_usd, case.fee_amount) == (Decimal(5000), Decimal(80))
    with pytest.raises(Forbidden, match="tom"):
        cases.approve(reference, Actor("tom", Role.ADMIN), expected_version=case.version)
    assert cases.approve(reference, OMAR, expected_version=case.version).status == "approved"


def test_a_row_edited_behind_the_audit_or_a_stale_valuation_is_refused(
    cases: CaseService, evm_testbed: EvmTestbed
) -> None:
    reference = unlisted(cases, evm_testbed, "val-g")
    value(cases, reference)
    send(cases, reference, SARA)
    # an insider lowers the fee on the row (net raised to the whole deposit)
    with cases.db.write() as session:
        session.execute(update(Case).where(col(Case.reference) == reference)
                        .values(fee_amount=Decimal(0), net_amount=Decimal(5000)))
    with pytest.raises(InvalidTransition, match="does not match its audited set_valuation event"):
        cases.approve(reference, OMAR, expected_version=version(cases, reference))
    # set again through the service: the row and the event agree
    value(cases, reference, TOM)
    send(cases, reference, SARA)
    # the category is overridden since: the valuation was for the old category's fee rule
    cases.override_category(reference, "wrong_network", "It landed on another network.", SARA,
                            expected_version=version(cases, reference))
    with pytest.raises(InvalidTransition, match="made for category unlisted_token"):
        cases.approve(reference, OMAR, expected_version=version(cases, reference))


def test_an_inserted_valuation_without_its_event_is_refused(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference = unlisted(cases, evm_testbed, "val-h")
    send(cases, reference, SARA)
    case = cases.get(reference).case
    with cases.db.read() as session:
        row = session.get(Case, case.id)
        assert row is not None
        fee = valuation.valued_fee(row, cases.config, Decimal("0.1"))
    forged = valuation.Valuation(Decimal("0.1"), "x", "y", "sara", "2026-01-01T00:00:00+00:00", "unlisted_token", fee)
    with cases.db.write() as session:
        session.execute(update(Case).where(col(Case.reference) == reference).values(
            decision={**(case.decision or {}), "valuation": forged.to_json()}, value_usd=fee.value_usd,
            fee_amount=fee.fee, net_amount=fee.net))
    with pytest.raises(InvalidTransition, match="does not match its audited set_valuation event"):
        cases.approve(reference, OMAR, expected_version=version(cases, reference))


# ------------------------------------------------------------------------------------------ CLI
def test_the_cli_refuses_approval_then_values_and_approves(cases: CaseService, evm_testbed: EvmTestbed) -> None:
    reference = unlisted(cases, evm_testbed, "val-cli")
    assert run("cases", "send-for-approval", reference, "--as", "sara")[0] == 0
    before = snapshot(cases, reference)
    code, _, err = run("cases", "approve", reference, "--as", "omar")
    assert code == 1 and "set a valuation" in err, err
    assert snapshot(cases, reference) == before

    code, _, err = run("cases", "set-valuation", reference, "--as", "sara", "--price-usd", "-3", "--source", "x",
                       "--reason", "y")
    assert code == 1 and "price_usd: must be positive" in err
    code, _, err = run("cases", "set-valuation", reference, "--as", "sara", "--price-usd", "0.1", "--source", "",
                       "--reason", "y")
    assert code == 1 and "source: is required" in err
    code, _, err = run("cases", "set-valuation", reference, "--as", "ari", "--price-usd", "0.1", "--source", "x",
                       "--reason", "y")
    assert code == 1, err  # no such operator: the sign-in refuses
    code, _, err = run("cases", "set-valuation", reference, "--price-usd", "0.1", "--source", "x", "--reason", "y")
    assert code == 2, err  # --as is required
    assert snapshot(cases, reference) == before

    code, out, err = run("cases", "set-valuation", reference, "--as", "sara", "--price-usd", PRICE,
                         "--source", "DEX mid price", "--reason", "three quotes", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert (data["fee_amount"], data["net_amount"], data["actor"]) == ("800", "4200", "sara")
    code, _, err = run("cases", "approve", reference, "--as", "sara")
    assert code == 1 and "its value comes from a manual valuation: an approver must approve it" in err, err
    code, out, err = run("cases", "approve", reference, "--as", "omar")
    assert code == 0 and "now approved" in out, err
    assert run("audit", "verify")[0] == 0


def test_the_user_sees_the_fee_set_by_a_valuation_and_no_longer_reads_that_it_waits_for_one(
        cases: CaseService, evm_testbed: EvmTestbed) -> None:
    """The valuation changes the fee quote the user reads: a timeline entry (pushed like any change
    the user can see), the fee sentence with the figures, and no more "no price" reason."""
    from types import SimpleNamespace

    from recovery.public import appeal_view, own_events
    from recovery.webhook_outbox import event_type

    reference = unlisted(cases, evm_testbed, "alice")

    def view() -> dict[str, Any]:
        with cases.db.read() as session:
            case = session.exec(select(Case).where(Case.reference == reference)).one()
            assert case.id is not None
            return appeal_view(case, own_events(session, [case.id])[case.id], cases.config, "es")

    before = view()
    assert "no_price" in [r["code"] for r in before["reasons"]]
    value(cases, reference)
    after = view()
    assert "no_price" not in [r["code"] for r in after["reasons"]]
    assert after["timeline"][-1]["event"] == "fee_set" and "valoró el depósito" in after["timeline"][-1]["message"]
    assert after["fee"]["usd"] is not None and after["display"]["fee"] is not None
    fee = next(r["text"] for r in after["reasons"] if r["code"] == "fee")
    assert after["display"]["fee"] in fee and after["display"]["net_amount"] in fee
    valued = cases.get(reference).events[-1]
    assert valued.action == "set_valuation"
    assert event_type(SimpleNamespace(**{k: getattr(valued, k) for k in (
        "case_id", "action", "from_status", "to_status", "details", "created_at")})) == "fee_set"  # pushed
