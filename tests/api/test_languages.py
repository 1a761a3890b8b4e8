"""Issue 21: the user reads their appeal in their language (``Accept-Language``), through the real
API on both databases: every category, in English, Spanish and Vietnamese, amounts formatted for
the locale, and the answer says which language it speaks."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from recovery.i18n import catalog, translator
from recovery.intake import AppealDraft
from recovery.services import SYSTEM, Actor
from recovery.user_text import REASONS, STATUS_LABELS
from recovery.vocabulary import Category, Role
from tests.api.conftest import ApiWorld, bearer
from tests.rules.test_rules import SCENARIOS, Scenario, run

#: one rules scenario per category (the first of each in the rules' table)
BY_CATEGORY: dict[str, Scenario] = {}
for _s in SCENARIOS:
    BY_CATEGORY.setdefault(run(_s).category.value, _s)


def test_the_scenarios_cover_every_category() -> None:
    assert set(BY_CATEGORY) == {c.value for c in Category}


def file_decided(world: ApiWorld, s: Scenario, user: str = "alice") -> str:
    """The scenario's appeal filed by ``user`` and its decision recorded, through the service layer."""
    decision = run(s)
    appeal = s.appeal
    draft = AppealDraft(user_id=user, network=appeal.network, asset=appeal.asset or "USDT", tx_hash=appeal.tx_hash,
                        deposit_address=appeal.deposit_address or "0x" + "11" * 20, memo=appeal.memo,
                        claimed_amount=appeal.claimed_amount)
    case, _ = world.service.submit(draft, Actor(user, Role.USER))
    assert case.reference is not None
    world.service.apply_decision(case.reference, decision, SYSTEM, expected_version=case.version)
    return case.reference


def read(world: ApiWorld, reference: str, accept: str | None, user: str = "alice") -> Any:
    headers = bearer(user) | ({"Accept-Language": accept} if accept is not None else {})
    return world.client.get(f"/v1/appeals/{reference}", headers=headers)


@pytest.mark.parametrize("category", sorted(c.value for c in Category))
def test_every_category_reads_in_three_languages(world: ApiWorld, category: str) -> None:
    reference = file_decided(world, BY_CATEGORY[category])
    seen: dict[str, dict[str, Any]] = {}
    for language, accept in (("en", None), ("es", "es-MX,es;q=0.9,en;q=0.5"), ("vi", "vi-VN")):
        response = read(world, reference, accept)
        assert response.status_code == 200, response.text
        assert response.headers["content-language"] == language
        assert "accept-language" in response.headers["vary"].lower()
        view = response.json()
        assert view["language"] == language
        assert view["category"] == category  # the codes stay for machines, in every language
        texts = [view["status_label"], view["next_step"], *(r["text"] for r in view["reasons"]),
                 *(e["message"] for e in view["timeline"] if e["message"])]
        assert view["reasons"], "a decided case has reasons"
        assert all(text and "{" not in text for text in texts), texts
        unknown = translator(language).text(REASONS["unknown"])
        assert unknown not in texts, "every reason of a real decision has its own sentence"
        seen[language] = view
    english = seen["en"]
    for language in ("es", "vi"):
        other = seen[language]
        assert [r["code"] for r in other["reasons"]] == [r["code"] for r in english["reasons"]]
        assert [r["evidence"] for r in other["reasons"]] == [r["evidence"] for r in english["reasons"]]
        # every sentence is translated: none left in English
        for mine, theirs in zip(other["reasons"], english["reasons"], strict=True):
            assert mine["text"] != theirs["text"], (language, mine["code"])
        assert other["status_label"] == catalog(language)[STATUS_LABELS[english["status"]]]
        assert other["next_step"] != english["next_step"]


def test_amounts_are_formatted_for_the_locale_and_exact_for_machines(world: ApiWorld) -> None:
    """A 250 USDT deposit (6 decimals) and its fee: machine fields exact, USD to the cent, display per locale."""
    s = next(s for s in SCENARIOS if s.id.startswith("uncredited_valid"))
    reference = file_decided(world, s)
    english = read(world, reference, "en").json()
    spanish = read(world, reference, "es").json()
    assert english["amount"] == spanish["amount"]  # machine fields do not depend on the language
    assert Decimal(english["amount"]) > 0
    fee = english["fee"]
    if fee is not None and fee["usd"] is not None:
        assert fee["usd"] == format(Decimal(fee["usd"]).quantize(Decimal("0.01")), "f")
    amount = Decimal(english["amount"])
    assert english["display"]["amount"] == f"{translator('en').number(amount, 6)} {english['fee']['asset']}"
    assert spanish["display"]["amount"] == f"{translator('es').number(amount, 6)} {english['fee']['asset']}"


def test_an_unknown_or_malformed_language_gets_english(world: ApiWorld) -> None:
    reference = file_decided(world, BY_CATEGORY["tx_not_found"])
    for accept in ("de-DE, fr;q=0.8", "*", ";;;,q=2", "es;q=0, en;q=0.5", "x" * 300):
        response = read(world, reference, accept)
        assert response.status_code == 200
        assert response.headers["content-language"] == "en", accept
    listed = world.client.get("/v1/appeals", headers=bearer("alice") | {"Accept-Language": "vi"})
    assert listed.headers["content-language"] == "vi"
    assert listed.json()["appeals"][0]["language"] == "vi"



def scenario(name: str) -> Scenario:
    return next(s for s in SCENARIOS if s.id == name)


def test_an_18_decimal_asset_keeps_its_decimals_and_the_fee_its_cents(world: ApiWorld) -> None:
    """0.0005 ETH under the minimum, a fee of 0.000333333333333334 ETH: every wei shown, never float noise."""
    reference = file_decided(world, scenario("below_minimum_eth"))
    english = read(world, reference, "en").json()
    spanish = read(world, reference, "es").json()
    assert english["amount"] == "0.0005"
    assert english["fee"]["amount"] == "0.000333333333333334" and english["fee"]["asset"] == "ETH"
    assert english["fee"]["usd"] == "1.00"  # 0.000333333333333334 ETH at 3000 USD: 1.000000000000002 USD
    assert english["display"]["fee"] == "0.000333333333333334 ETH"
    assert english["display"]["fee_usd"] == "$1.00"
    assert spanish["display"]["fee"] == "0,000333333333333334 ETH"
    assert spanish["display"]["fee_usd"] == "1,00\xa0US$"
    assert "0,0005 ETH" in " ".join(r["text"] for r in spanish["reasons"])


def test_a_wrong_network_case_links_the_explorer_of_the_network_where_the_funds_are(world: ApiWorld) -> None:
    s = scenario("wrong_network_direct_eoa")
    reference = file_decided(world, s)
    view = read(world, reference, "vi").json()
    assert (view["network"], view["found_on_network"]) == (s.appeal.network, "bsc")
    assert view["explorer_url"] == world.service.config.network("bsc").explorer_link(s.appeal.tx_hash)
    wrong = next(r for r in view["reasons"] if r["code"] == "wrong_network")
    assert "bsc" in wrong["text"] and "khôi phục" in wrong["text"]  # "recover", in Vietnamese
