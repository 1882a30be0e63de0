"""The console's message catalogs are complete in both languages and consistent with each other."""

from __future__ import annotations

import re
from decimal import Decimal

from iotfin.console.i18n import LOCALES, Messages, catalog_files, read_catalog
from iotfin.console.messages import missing_ids, used_ids

PLACEHOLDER = re.compile(r"\{(\w+)\}")


def test_every_text_the_console_uses_is_in_both_catalogs() -> None:
    assert used_ids(), "the extractor found no message ids: extraction is broken"
    assert missing_ids() == {language: [] for language in LOCALES}, "run: python -m iotfin.console.messages"


def test_translations_keep_their_placeholders_and_files_agree() -> None:
    for language in LOCALES:
        seen: dict[str, tuple[str, str]] = {}
        for path in catalog_files(language):
            for msgid, text in read_catalog(path, language).items():
                assert set(PLACEHOLDER.findall(text)) == set(PLACEHOLDER.findall(msgid)), (path.name, msgid, text)
                if msgid in seen:  # the same id in two files must say the same thing
                    assert seen[msgid][1] == text, (msgid, seen[msgid][0], path.name)
                seen[msgid] = (path.name, text)


def test_a_missing_message_is_marked_not_hidden() -> None:
    text = Messages("en").gettext("a text nobody translated")
    assert text.startswith("⟦")


def test_money_numbers_and_dates_follow_the_locale() -> None:
    zh, en = Messages("zh"), Messages("en")
    assert zh.money("1234567.8") == "¥1,234,567.80"
    assert en.money(Decimal("1234567.8")) == "CN¥1,234,567.80"
    assert zh.date("2026-12-05") == "2026年12月5日" and en.date("2026-12-05") == "Dec 5, 2026"
    assert zh.datetime("2026-12-05T16:30:00Z") == "2026-12-06 00:30"  # shown in Asia/Shanghai time
    assert zh.percent("0.1234") == "12.3%" and en.number("1234.5", 2) == "1,234.50"
    assert zh.text({"zh": "正常", "en": "normal"}) == "正常" and en.text({"zh": "正常", "en": "normal"}) == "normal"
