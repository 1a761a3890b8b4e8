"""The message catalogs (issue 21): every user-facing sentence exists in every language with the
same placeholders; the language is chosen from ``Accept-Language``; figures and dates follow the
locale; a specialist's own words are never "translated"."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from types import SimpleNamespace

import pytest
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal
from hypothesis import given, settings
from hypothesis import strategies as st

from recovery.config import Config
from recovery.i18n import DOMAIN, LANGUAGES, LOCALE_DIR, catalog, negotiate, placeholders, source_messages, translator
from recovery.public import appeal_view, conversation
from recovery.replies import close_due
from recovery.user_text import REJECTIONS
from tests.test_public_view import case_row

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("language", LANGUAGES[1:])
def test_every_message_is_translated_with_the_same_placeholders(language: str) -> None:
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=language)
    entries = {m.id: m for m in parsed if isinstance(m.id, str) and m.id}
    sources = source_messages(ROOT / "config")
    assert set(entries) == set(sources), "run `python -m recovery.i18n extract`, then translate"
    for message_id, entry in entries.items():
        assert isinstance(entry.string, str) and entry.string.strip(), (language, sources[message_id])
        assert not entry.fuzzy, (language, sources[message_id])
        assert placeholders(entry.string) == placeholders(message_id), (language, sources[message_id])
    assert len(catalog(language)) == len(sources)


def test_the_template_catalog_lists_every_source_message() -> None:
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("rb") as handle:
        template = {m.id for m in read_po(handle) if isinstance(m.id, str) and m.id}
    assert template == set(source_messages(ROOT / "config"))


def test_every_shipped_information_template_is_translated(default_config: Config) -> None:
    assert default_config.templates
    for name, template in default_config.templates.items():
        for language in LANGUAGES[1:]:
            assert template.message.strip() in catalog(language), (name, language)


def test_every_rejection_code_has_a_message() -> None:
    from recovery.services import REJECTION_REASONS

    assert set(REJECTION_REASONS) <= set(REJECTIONS)


@pytest.mark.parametrize(("header", "language"), [
    (None, "en"), ("", "en"), ("es", "es"), ("es-MX", "es"), ("ES-es", "es"), ("vi-VN,vi;q=0.9", "vi"),
    ("fr-FR, es;q=0.4, vi;q=0.8", "vi"), ("de, *;q=0.1", "en"), ("es;q=0, vi;q=0.2", "vi"),
    ("es;q=0", "en"), ("es;q=2", "es"), ("1234, es", "es"), ("x" * 5000, "en"), (",,,;;;", "en"),
])
def test_the_language_is_negotiated_from_accept_language(header: str | None, language: str) -> None:
    assert negotiate(header) == language


def test_amounts_keep_every_decimal_of_an_18_decimal_asset_and_never_show_float_noise() -> None:
    wei = Decimal("0.000466666666666666")
    assert translator("en").amount(wei, 18, "ETH") == "0.000466666666666666 ETH"
    assert translator("es").amount(wei, 18, "ETH") == "0,000466666666666666 ETH"
    assert translator("en").amount(Decimal("2275.090000"), 6, "USDT") == "2,275.09 USDT"
    assert translator("vi").amount(Decimal("2275.090000"), 6, "USDT") == "2.275,09 USDT"
    assert translator("en").amount(Decimal("1E+3"), 18, "ETH") == "1,000 ETH"
    # more digits than the asset has are rounded to its decimals, never shown
    assert translator("en").number(Decimal("1.0000005"), 6) == "1.000001"
    assert translator("en").usd(Decimal("1.000000000000002")) == "$1.00"
    assert translator("es").usd(Decimal("1234.505")) == "1234,51\xa0US$".replace("1234", "1.234")


def test_the_view_of_an_18_decimal_deposit(default_config: Config) -> None:
    view = appeal_view(case_row(None, network="ethereum", asset="ETH", amount=Decimal("0.000466666666666666"),
                                claimed_amount=Decimal("0.0005"), net_amount=Decimal("0.000433333333333333")),
                       [], default_config, "es")
    assert view["amount"] == "0.000466666666666666"
    assert view["display"] == {"claimed_amount": "0,0005 ETH", "amount": "0,000466666666666666 ETH", "fee": None,
                               "fee_usd": None, "net_amount": "0,000433333333333333 ETH"}


def _event(action: str, at: datetime, **details: object) -> SimpleNamespace:
    return SimpleNamespace(action=action, from_status=None, to_status=None, details=details, created_at=at)


def test_questions_in_a_templates_words_are_translated_and_a_specialists_own_words_are_not(
        default_config: Config) -> None:
    asked_at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    template = default_config.templates["screenshot"]
    events = [
        _event("request_info", asked_at, message=template.message, template="screenshot"),
        _event("remind_info", asked_at + timedelta(hours=default_config.policy.info_reminder_hours),
               message="We are still waiting (stored in English)"),
        _event("request_info", asked_at + timedelta(hours=default_config.policy.info_reminder_hours + 1),
               message="¿Puede enviar el PDF? / Own words"),
    ]
    said = conversation(events, translator("es"), default_config.policy)
    assert said[0]["message"] == catalog("es")[template.message.strip()]
    closes = translator("es").day(close_due(asked_at, default_config.policy))
    assert closes in said[1]["message"] and "Seguimos esperando" in said[1]["message"]
    assert said[2]["message"] == "¿Puede enviar el PDF? / Own words"


@settings(max_examples=300, deadline=None)
@given(units=st.integers(min_value=-10**24, max_value=10**24), exponent=st.integers(min_value=0, max_value=18),
       language=st.sampled_from(LANGUAGES))
def test_numbers_are_written_exactly_as_babels_pattern_writes_them(units: int, exponent: int, language: str) -> None:
    """The API's own number writer (for speed) gives Babel's output for every amount."""
    value = Decimal(units).scaleb(-exponent)
    plain = value.normalize() if value != value.to_integral_value() else value.quantize(Decimal(1))
    assert translator(language).number(value) == format_decimal(plain, locale=language, decimal_quantization=False)
    cents = value.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    assert translator(language).usd(value) == format_currency(cents, "USD", locale=language)


def test_amounts_wider_than_the_default_decimal_precision_are_written_whole() -> None:
    """A 12-digit supply of an 18-decimal token has 30 digits: nothing is lost or raised."""
    value = Decimal("123456789012.123456789012345678")
    assert translator("en").amount(value, 18, "MEME") == "123,456,789,012.123456789012345678 MEME"
    rounded = translator("en").number(Decimal("123456789012.1234567890123456789"), 18)
    assert rounded == "123,456,789,012.123456789012345679"


def test_config_check_warns_of_a_template_without_a_translation(tmp_path: Path,
                                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """An admin's new wording has no translation yet: the check says so (its users read English)."""
    import json
    import shutil

    from typer.testing import CliRunner

    from app import cli
    from recovery.settings import get_settings

    config_dir = tmp_path / "config"
    shutil.copytree(ROOT / "config", config_dir)
    templates = config_dir / "templates.toml"
    text = templates.read_text(encoding="utf-8")
    templates.write_text(text.replace("Please send a screenshot of the withdrawal",
                                      "Please send us a screenshot of the withdrawal"), encoding="utf-8")
    monkeypatch.setenv("RECOVERY_CONFIG_DIR", str(config_dir))
    monkeypatch.setenv("RECOVERY_DATABASE_URL", f"sqlite:///{tmp_path / 'unused.db'}")
    get_settings.cache_clear()
    try:
        result = CliRunner().invoke(cli.app, ["config", "check", "--json"])
        assert result.exit_code == 0, result.output
        warnings = json.loads(result.stdout)["warnings"]
        assert len(warnings) == 1 and "[templates.screenshot]" in warnings[0] and "es, vi" in warnings[0]
        shutil.copy(ROOT / "config" / "templates.toml", templates)
        get_settings.cache_clear()
        again = CliRunner().invoke(cli.app, ["config", "check", "--json"])
        assert json.loads(again.stdout)["warnings"] == []
    finally:
        get_settings.cache_clear()
