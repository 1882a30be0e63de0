"""Which message ids the console uses, and which the catalogs lack.

    python -m iotfin.console.messages            # lists ids missing from a catalog (exit 1 if any)
    python -m iotfin.console.messages --add FILE # appends the missing ids to FILE in both languages,
                                                 # English filled in, Chinese empty (to translate)

Ids are extracted with Babel's extractors: Jinja templates (`_()`, `gettext`, `ngettext`) and the
page code (`_()`, `page._()`, `N_()` for ids stored in data such as navigation entries). Role names
are looked up by key (`role.<name>`) and listed from the identity model.
"""

from __future__ import annotations

import sys
from pathlib import Path

from babel.messages.catalog import Catalog
from babel.messages.extract import extract
from babel.messages.pofile import read_po, write_po

from iotfin.console.i18n import LOCALE_DIR, LOCALES, catalog_files, read_catalog
from iotfin.identity.model import ROLES

HERE = Path(__file__).parent
KEYWORDS = {"_": None, "gettext": None, "ngettext": (1, 2), "N_": None}


def N_(msgid: str) -> str:  # noqa: N802 - the conventional name of gettext's no-op marker
    """Marks a message id kept in data (navigation, choices) for extraction; translated where shown."""
    return msgid


def used_ids() -> dict[str, str]:
    """Every message id the console uses -> the first file that uses it."""
    found: dict[str, str] = {}
    for path in sorted((HERE / "templates").rglob("*.html")):
        with path.open("rb") as fh:
            for _, msg, _, _ in extract("jinja2.ext:babel_extract", fh, keywords=KEYWORDS,
                                        options={"extensions": "jinja2.ext.i18n"}):
                for msgid in msg if isinstance(msg, tuple) else (msg,):
                    if msgid:
                        found.setdefault(msgid, str(path.relative_to(HERE)))
    for path in sorted(HERE.rglob("*.py")):
        with path.open("rb") as fh:
            for _, msg, _, _ in extract("python", fh, keywords=KEYWORDS):
                for msgid in msg if isinstance(msg, tuple) else (msg,):
                    if msgid:
                        found.setdefault(msgid, str(path.relative_to(HERE)))
    for role in ROLES:
        found.setdefault(f"role.{role}", "identity roles")
    return found


def missing_ids() -> dict[str, list[str]]:
    """language -> ids used but absent (or untranslated) in that language's catalogs."""
    used = used_ids()
    result: dict[str, list[str]] = {}
    for language in LOCALES:
        merged: dict[str, str] = {}
        for path in catalog_files(language):
            merged.update(read_catalog(path, language))
        result[language] = sorted(msgid for msgid in used if msgid not in merged)
    return result


def add_missing(file_name: str) -> int:
    """Append the missing ids to `<locale>/LC_MESSAGES/<file_name>` of both languages."""
    missing = missing_ids()
    todo = sorted(set(missing["zh"]) | set(missing["en"]))
    for language, locale in LOCALES.items():
        path = LOCALE_DIR / locale / "LC_MESSAGES" / file_name
        if path.exists():
            with path.open("rb") as fh:
                po = read_po(fh, locale=locale)
        else:
            po = Catalog(locale=locale, project="iotfin console", charset="utf-8")
        for msgid in todo:
            if msgid not in missing[language]:
                continue
            existing = po.get(msgid)
            if existing is None or not existing.string:
                po.add(msgid, msgid if language == "en" and not msgid.startswith("role.") else "")
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("wb") as fh:
            write_po(fh, po, width=0, omit_header=False, sort_output=False)
    return len(todo)


def main(argv: list[str]) -> int:
    if len(argv) >= 2 and argv[0] == "--add":
        print(f"added {add_missing(argv[1])} ids to {argv[1]} (translate the empty ones)")
        return 0
    missing = missing_ids()
    for language, ids in missing.items():
        for msgid in ids:
            print(f"{language}\t{msgid}")
    return 1 if any(missing.values()) else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
