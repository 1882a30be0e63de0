"""The console's languages: message catalogs (Babel .po files) and locale formatting.

Message ids are the English texts (or dotted keys such as ``role.approver``);
`locales/<locale>/LC_MESSAGES/*.po` hold the catalogs, English included, so a missing translation is visible in either language. The .po files are read at
start-up with Babel (no compiled .mo files to keep in step). A message missing from the active
catalog renders as ``⟦msgid⟧`` and is counted, so a page with an untranslated text cannot pass the
browser tests, and `tests/console/test_messages.py` checks every id in the templates and page code is
in both catalogs.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import date, datetime
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from babel import Locale
from babel.dates import format_date, format_datetime
from babel.messages.pofile import read_po
from babel.numbers import format_currency, format_decimal, format_percent

LOCALES: dict[str, str] = {"zh": "zh_CN", "en": "en"}   # the console's language codes -> catalog locales
DEFAULT_LANGUAGE = "zh"
LOCALE_DIR = Path(__file__).with_name("locales")
SHANGHAI = ZoneInfo("Asia/Shanghai")
MISSING_MARK = "⟦"

log = logging.getLogger(__name__)
#: Messages looked up and not found, by (language, msgid) — read by the tests and /healthz-style checks.
missing: Counter[tuple[str, str]] = Counter()


def catalog_files(language: str) -> list[Path]:
    """The .po files of one language: one per page module (`officer.po`, `portal.po`, ...) and
    `console.po` for the shared frame, so each audience's texts are kept (and reviewed) together."""
    return sorted((LOCALE_DIR / LOCALES[language] / "LC_MESSAGES").glob("*.po"))


def read_catalog(path: Path, language: str) -> dict[str, str]:
    with path.open("rb") as fh:
        po = read_po(fh, locale=LOCALES[language])
    return {str(m.id): str(m.string) for m in po if m.id and isinstance(m.id, str) and m.string and not m.fuzzy}


@cache
def catalog(language: str) -> dict[str, str]:
    """msgid -> translation of one language, all its files merged (empty translations left out)."""
    merged: dict[str, str] = {}
    for path in catalog_files(language):
        merged.update(read_catalog(path, language))
    return merged


def language_of(value: str | None) -> str:
    return value if value in LOCALES else DEFAULT_LANGUAGE


class Messages:
    """Texts and formats of one language, handed to templates and page code."""

    def __init__(self, language: str):
        self.language = language_of(language)
        self.locale = Locale.parse(LOCALES[self.language])
        self._catalog = catalog(self.language)

    def gettext(self, msgid: str, **params: Any) -> str:
        text = self._catalog.get(msgid)
        if text is None:
            missing[(self.language, msgid)] += 1
            log.warning("console message missing in %s: %r", self.language, msgid)
            text = f"{MISSING_MARK}{msgid}⟧"
        return text.format(**params) if params else text

    def ngettext(self, singular: str, plural: str, n: int, **params: Any) -> str:
        # Chinese has one plural form; English two. The catalog holds both ids as separate entries.
        return self.gettext(singular if n == 1 else plural, n=n, **params)

    # --- formats --------------------------------------------------------------------------------

    def text(self, value: Any) -> str:
        """A {zh, en} text from the API in this language (falling back to the other)."""
        if isinstance(value, dict):
            return str(value.get(self.language) or value.get("en") or value.get("zh") or "")
        return "" if value is None else str(value)

    def money(self, value: Any, currency: str = "CNY") -> str:
        if value is None or value == "":
            return "—"
        return format_currency(Decimal(str(value)), currency, locale=self.locale)

    def number(self, value: Any, digits: int | None = None) -> str:
        if value is None or value == "":
            return "—"
        number = Decimal(str(value))
        pattern = None if digits is None else ("#,##0." + "0" * digits if digits else "#,##0")
        return format_decimal(number, format=pattern, locale=self.locale)

    def percent(self, value: Any, digits: int = 1) -> str:
        if value is None or value == "":
            return "—"
        return format_percent(Decimal(str(value)), format="#,##0." + "0" * digits + "%", locale=self.locale)

    def date(self, value: Any) -> str:
        if value is None or value == "":
            return "—"
        if isinstance(value, str):
            value = datetime.fromisoformat(value) if "T" in value else date.fromisoformat(value)
        if isinstance(value, datetime):
            value = value.astimezone(SHANGHAI).date() if value.tzinfo else value.date()
        return format_date(value, format="medium", locale=self.locale)

    def datetime(self, value: Any) -> str:
        """A moment in Asia/Shanghai time (business time of the platform), to the minute."""
        if value is None or value == "":
            return "—"
        if isinstance(value, int | float):
            value = datetime.fromtimestamp(value / 1000, tz=SHANGHAI)
        elif isinstance(value, str):
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        if value.tzinfo is None:
            value = value.replace(tzinfo=ZoneInfo("UTC"))
        return format_datetime(value.astimezone(SHANGHAI), format="yyyy-MM-dd HH:mm", locale=self.locale)

    def filters(self) -> dict[str, Any]:
        return {"money": self.money, "number": self.number, "percent": self.percent, "date": self.date,
                "datetime": self.datetime, "txt": self.text}
