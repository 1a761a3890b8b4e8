"""The user's language: gettext catalogs (Babel), ``Accept-Language`` negotiation, and numbers and
dates formatted for the locale.

The English sentences live in the code (``recovery/user_text.py``, marked with :func:`N_`) and in
``config/templates.toml``; their translations in ``recovery/locales/<lang>/LC_MESSAGES/recovery.po``,
read with Babel when first needed (no compiled ``.mo`` to keep in step). ``python -m recovery.i18n
extract`` rewrites ``recovery/locales/recovery.pot`` and merges it into every catalog (new
messages arrive empty and are then shown in English until translated; a test refuses that).

Placeholders are ``str.format`` names (``{network}``); every translation must use the same set.
"""

from __future__ import annotations

import re
import string
import sys
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, localcontext
from functools import cache, lru_cache
from pathlib import Path
from typing import Any

#: the languages the user-facing text is offered in; the first is the source language
LANGUAGES: tuple[str, ...] = ("en", "es", "vi")
DEFAULT_LANGUAGE = LANGUAGES[0]
DOMAIN = "recovery"
LOCALE_DIR = Path(__file__).parent / "locales"

_LANGUAGE_RANGE = re.compile(r"^(?:\*|[A-Za-z]{1,8}(?:-[A-Za-z0-9]{1,8})*)$")
_QUALITY = re.compile(r"^q=(0(?:\.\d{0,3})?|1(?:\.0{0,3})?)$", re.IGNORECASE)


def N_(message: str) -> str:
    """Mark an English sentence for the catalogs (``pybabel``/``extract`` finds it); returns it as is."""
    return message


def placeholders(message: str) -> frozenset[str]:
    """The ``{name}`` placeholders of a message (a translation must keep exactly these)."""
    return frozenset(name for _text, name, _spec, _conv in string.Formatter().parse(message) if name)


def negotiate(header: str | None, available: Iterable[str] = LANGUAGES) -> str:
    """The best offered language for an ``Accept-Language`` header (RFC 9110 §12.5.4): ranges in
    order of quality, a range matching its language or any of its subtags' prefixes (``es-MX`` ->
    ``es``), ``*`` the default; malformed parts are ignored, never an error."""
    offered = list(available)
    if not header:
        return offered[0]
    ranked: list[tuple[float, int, str]] = []
    for position, part in enumerate(header.split(",")[:32]):
        pieces = [p.strip() for p in part.split(";")]
        tag, params = pieces[0], pieces[1:]
        if not _LANGUAGE_RANGE.match(tag):
            continue
        quality = 1.0
        for param in params:
            matched = _QUALITY.match(param)
            if matched:
                quality = float(matched.group(1))
        if quality > 0:
            ranked.append((-quality, position, tag.lower()))
    for _quality, _position, tag in sorted(ranked):
        if tag == "*":
            return offered[0]
        primary = tag.split("-")[0]
        if primary in offered:
            return primary
    return offered[0]


@cache
def catalog(language: str) -> Mapping[str, str]:
    """English message -> its translation (only translated, non-fuzzy entries); empty for English
    and for a language without a catalog."""
    from babel.messages.pofile import read_po

    if language == DEFAULT_LANGUAGE:
        return {}
    path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
    if not path.is_file():
        return {}
    with path.open("rb") as handle:
        parsed = read_po(handle, locale=language, domain=DOMAIN)
    return {
        str(message.id): str(message.string)
        for message in parsed
        if message.id and isinstance(message.id, str) and isinstance(message.string, str) and message.string
        and not message.fuzzy
    }


def _plain(value: Decimal) -> str:
    """``value`` in fixed-point notation without trailing zeros (``1E+2`` -> ``100``; ``2.50`` -> ``2.5``)."""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _rounded(value: Decimal, places: int) -> Decimal:
    """``value`` to ``places`` decimals, half up, with the precision it needs (an 18-decimal token
    with a 12-digit supply has more digits than the default context's 28)."""
    with localcontext() as context:
        context.prec = max(context.prec, len(value.as_tuple().digits) + places + 2)
        return value.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)


def to_decimals(value: Decimal, decimals: int | None) -> Decimal:
    """An amount rounded to the asset's decimals (half up) where they are known."""
    exponent = value.as_tuple().exponent
    if decimals is None or not isinstance(exponent, int) or exponent >= -decimals:
        return value
    return _rounded(value, decimals)


def to_cents(value: Decimal) -> Decimal:
    return _rounded(value, 2)


class Translator:
    """The user-facing text and figures of one language (its Babel locale data read once)."""

    def __init__(self, language: str = DEFAULT_LANGUAGE) -> None:
        from babel import Locale

        self.language = language
        self._locale = Locale.parse(language)
        currency = self._locale.currency_formats["standard"]
        dollar = str(self._locale.currency_symbols.get("USD", "US$"))
        #: the standard currency pattern's (prefix, suffix) for a positive and a negative amount
        self._usd = tuple((str(prefix).replace("¤", dollar), str(suffix).replace("¤", dollar))
                          for prefix, suffix in zip(currency.prefix, currency.suffix, strict=True))
        symbols = self._locale.number_symbols["latn"]
        self._point, self._group = str(symbols["decimal"]), str(symbols["group"])
        self._minus = str(symbols["minusSign"])
        self._grouping = self._locale.decimal_formats[None].grouping

    def text(self, message: str, **params: Any) -> str:
        """``message`` in this language (English where no translation exists) with its placeholders filled."""
        translated = catalog(self.language).get(message, message)
        return translated.format(**params) if params else translated

    def number(self, value: Decimal, decimals: int | None = None) -> str:
        """A decimal amount for this locale: to the asset's decimals, trailing zeros dropped,
        grouped (``2,275.09`` in English, ``2.275,09`` in Spanish)."""
        return _written(self, value, decimals)

    def write_number(self, value: Decimal, decimals: int | None) -> str:
        # Babel's own pattern (``#,##0.###`` for these locales, every decimal kept) written out:
        # its ``apply`` cost ten times more, on the busiest read of the API (a test holds them equal)
        text = _plain(to_decimals(value, decimals))
        negative = text.startswith("-")
        whole, _, fraction = text.lstrip("-").partition(".")
        first, rest = self._grouping
        groups = [whole[-first:]] if len(whole) > first else [whole]
        whole = whole[:-first] if len(whole) > first else ""
        while whole:
            groups.insert(0, whole[-rest:])
            whole = whole[:-rest]
        figure = self._group.join(groups) + (self._point + fraction if fraction else "")
        return self._minus + figure if negative else figure

    def amount(self, value: Decimal, decimals: int | None, unit: str | None) -> str:
        figure = self.number(value, decimals)
        return f"{figure} {unit}" if unit else figure

    def usd(self, value: Decimal) -> str:
        """US dollars to the cent for this locale (``$1,234.50``; ``1.234,50 US$``)."""
        cents = to_cents(value)
        prefix, suffix = self._usd[1 if cents.is_signed() else 0]
        figure = self.number(abs(cents))
        whole, point, fraction = figure.partition(self._point)
        return f"{prefix}{whole}{self._point}{(fraction if point else '').ljust(2, '0')}{suffix}"

    def day(self, moment: datetime) -> str:
        """A date for this locale (``December 7, 2026``; ``7 de diciembre de 2026``), the day of ``moment`` in UTC."""
        from babel.dates import format_date

        return format_date(moment.astimezone(UTC).date(), format="long", locale=self._locale)

    def items(self, values: Iterable[str]) -> str:
        """A list in running text (``a, b and c``; ``a, b y c``)."""
        from babel.lists import format_list

        listed = [v for v in values if v]
        return format_list(listed, locale=self._locale) if listed else ""


@lru_cache(maxsize=16384)
def _written(tr: Translator, value: Decimal, decimals: int | None) -> str:
    """Numbers written, remembered: a view writes each amount two or three times, and the same
    case is read again and again (equal decimals write the same text, ``1.0`` as ``1.00``)."""
    return tr.write_number(value, decimals)


@cache
def translator(language: str) -> Translator:
    return Translator(language if language in LANGUAGES else DEFAULT_LANGUAGE)


def untranslated_templates(templates: Mapping[str, Any]) -> list[str]:
    """A warning per information-request template whose message a language's catalog lacks (its
    users read it in English until it is translated: ``python -m recovery.i18n extract``)."""
    warnings = []
    for name, template in sorted(templates.items()):
        missing = [language for language in LANGUAGES[1:] if template.message.strip() not in catalog(language)]
        if missing:
            warnings.append(f"templates.toml: [templates.{name}] has no translation in {', '.join(missing)}; "
                            "those users read it in English (python -m recovery.i18n extract, then translate)")
    return warnings


# ----------------------------------------------------------------------------------- extraction

def _template_messages(config_dir: Path) -> list[tuple[str, str]]:
    """(message, where) of the information-request templates, which admins edit in TOML."""
    import tomllib

    path = config_dir / "templates.toml"
    if not path.is_file():
        return []
    with path.open("rb") as handle:
        table = tomllib.load(handle).get("templates", {})
    return [(entry["message"].strip(), f"config/templates.toml:{name}")
            for name, entry in table.items() if isinstance(entry, dict) and isinstance(entry.get("message"), str)]


def source_messages(config_dir: Path | None = None) -> dict[str, str]:
    """Every English message the catalogs must translate -> where it comes from."""
    from recovery import user_text

    found = {message: f"recovery/user_text.py:{name}" for name, message in user_text.all_messages()}
    root = Path(__file__).resolve().parent.parent
    for message, where in _template_messages(config_dir or root / "config"):
        found.setdefault(message, where)
    return found


def extract(config_dir: Path | None = None) -> None:
    """Rewrite the template catalog and merge it into every language's catalog (Babel's update)."""
    from babel.messages.catalog import Catalog
    from babel.messages.pofile import read_po, write_po

    template = Catalog(project="deposit-recovery", domain=DOMAIN, charset="utf-8")
    for message, where in sorted(source_messages(config_dir).items(), key=lambda item: item[1]):
        source, _, name = where.rpartition(":")
        template.add(message, locations=[(source, 0)], auto_comments=[name])
    LOCALE_DIR.mkdir(parents=True, exist_ok=True)
    with (LOCALE_DIR / f"{DOMAIN}.pot").open("wb") as handle:
        write_po(handle, template, omit_header=False, sort_output=False, include_lineno=False, width=100)
    for language in LANGUAGES[1:]:
        path = LOCALE_DIR / language / "LC_MESSAGES" / f"{DOMAIN}.po"
        if path.is_file():
            with path.open("rb") as handle:
                existing = read_po(handle, locale=language, domain=DOMAIN)
        else:
            existing = Catalog(locale=language, domain=DOMAIN, project="deposit-recovery", charset="utf-8")
        existing.update(template, no_fuzzy_matching=True)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as handle:
            write_po(handle, existing, omit_header=False, sort_output=False, include_lineno=False, width=100,
                     ignore_obsolete=True)


if __name__ == "__main__":  # pragma: no cover - a maintainer's command
    if sys.argv[1:] != ["extract"]:
        sys.exit("usage: python -m recovery.i18n extract")
    extract()
