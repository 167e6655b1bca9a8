"""Issue 16, point 2: every catalog is complete. A text in the code that is not in the committed
templates (translations/*.pot), a msgid missing, empty or fuzzy in a language, or a placeholder
in one and not the other fails here. `scripts/i18n extract` then `update` and translate."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
from babel.messages.pofile import read_po

from app.i18n.languages import KNOWN, SOURCE

ROOT = Path(__file__).resolve().parents[2]
CATALOGS = ROOT / "translations"
DOMAINS = ("messages", "companion")
LANGUAGES = [lang for lang in KNOWN if lang != SOURCE]
PLACEHOLDER = re.compile(r"%\((\w+)\)[sdfr]|%[sd]|\{\w*\}")


def _read(path: Path):
    with path.open("rb") as f:
        return read_po(f)


def _ids(catalog) -> set:
    return {m.id for m in catalog if m.id}


def _text(msgid) -> tuple[str, ...]:
    return msgid if isinstance(msgid, tuple) else (msgid,)


def _placeholders(text: str) -> list[str]:
    return sorted(m.group(0) for m in PLACEHOLDER.finditer(text))


def test_the_three_languages_have_catalogs():
    assert {"zh_Hant", "pt"} <= set(LANGUAGES)


@pytest.fixture(scope="module")
def extracted(tmp_path_factory) -> Path:
    """The texts in the code now, extracted as scripts/i18n extracts them."""
    out = tmp_path_factory.mktemp("pot")
    subprocess.run([str(ROOT / "scripts/i18n"), "extract", str(out)], cwd=ROOT, check=True,
                   capture_output=True)
    return out


@pytest.mark.parametrize("domain", DOMAINS)
def test_the_committed_templates_hold_every_text_in_the_code(extracted, domain):
    in_code = _ids(_read(extracted / f"{domain}.pot"))
    committed = _ids(_read(CATALOGS / f"{domain}.pot"))
    missing = sorted(map(str, in_code - committed))
    assert not missing, (f"texts not in translations/{domain}.pot (run scripts/i18n extract, "
                         f"update, and translate them): {missing[:20]}")
    assert in_code, f"no text was found for {domain}: is babel.cfg right?"


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_every_text_is_translated_not_fuzzy_with_the_same_placeholders(extracted, domain,
                                                                       language):
    wanted = _read(extracted / f"{domain}.pot")
    catalog = _read(CATALOGS / language / "LC_MESSAGES" / f"{domain}.po")
    problems = []
    for source in wanted:
        if not source.id:
            continue
        entry = catalog.get(source.id, source.context)
        if entry is None:
            problems.append(f"missing: {source.id!r}")
            continue
        if entry.fuzzy:
            problems.append(f"fuzzy: {source.id!r}")
        strings = entry.string if isinstance(entry.string, tuple) else (entry.string,)
        if not all(s.strip() for s in strings):
            problems.append(f"untranslated: {source.id!r}")
            continue
        expected = _placeholders(_text(source.id)[-1])
        for s in strings:
            if _placeholders(s) != expected:
                problems.append(f"placeholders differ: {source.id!r} -> {s!r}")
    assert not problems, f"{language}/{domain}.po: {len(problems)} problems: {problems[:15]}"


@pytest.mark.parametrize("language", LANGUAGES)
def test_catalogs_compile_and_are_not_english(language):
    from babel.support import Translations

    translations = Translations.load(str(CATALOGS), [language], "messages")
    assert translations.ugettext("Sign out") != "Sign out"


def test_portuguese_plurals_are_portugals_zero_is_plural():
    """Babel's `pt` rule is Brazil's (0 is singular, a third "many" form); Portugal and Macau
    say "0 segundos": the catalogs' header keeps nplurals=2; plural=(n != 1)."""
    from babel.support import Translations

    translations = Translations.load(str(CATALOGS), ["pt"], "messages")
    assert [translations.plural(n) for n in (0, 1, 2, 1_000_000)] == [1, 0, 1, 1]
