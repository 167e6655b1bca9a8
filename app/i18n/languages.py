"""The languages we speak, their tags, and the choice from a browser's Accept-Language.

A language is named by its catalog (`en`, `zh_Hant`, `pt`); pages carry the BCP 47 tag
(`<html lang="zh-Hant">`)."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from babel import Locale

SOURCE = "en"  # the msgids are English: it needs no catalog
CATALOGS = Path(__file__).resolve().parents[2] / "translations"
# Every language with a catalog under translations/ (README: adding a language), and English.
KNOWN = (SOURCE, *sorted({p.parent.parent.name for p in CATALOGS.glob("*/LC_MESSAGES/*.po")}))
# What the switcher shows: each language in its own words (Babel's name for one not here).
_NAMES = {"en": "English", "zh_Hant": "繁體中文", "pt": "Português"}


def name(language: str) -> str:
    return _NAMES.get(language) or Locale.parse(language).get_display_name(language) or language


def html_tag(language: str) -> str:
    """`zh_Hant` -> `zh-Hant`: the tag for `lang` attributes and Content-Language."""
    return language.replace("_", "-")


def _catalog_for_tag(tag: str) -> str | None:
    """The catalog a browser's language tag asks for, or None.

    Chinese in Taiwan, Hong Kong and Macau, or in Traditional script, is 繁體中文 (other Chinese
    is `zh_Hans`, which we do not offer); every Portuguese (Portugal, Brazil, Macau) is
    Português; English in any region is English; another language is its primary subtag, the
    name of its catalog if one is added (README: adding a language)."""
    parts = tag.strip().lower().replace("_", "-").split("-")
    if not parts or not parts[0]:
        return None
    primary, rest = parts[0], parts[1:]
    if primary == "zh":
        if "hant" in rest or any(r in ("tw", "hk", "mo") for r in rest):
            return "zh_Hant"
        return "zh_Hans"
    return primary if primary.isalpha() else None


def from_accept_language(values: Iterable[str], offered: Iterable[str]) -> str | None:
    """The first of the browser's languages (in its order of preference) that we offer."""
    offered = tuple(offered)
    for tag in values:
        chosen = _catalog_for_tag(tag)
        if chosen is not None and chosen in offered:
            return chosen
    return None


def supported(language: str | None, offered: Iterable[str]) -> str | None:
    """`language` if it names one we offer (as a catalog name or a tag), else None."""
    if not language:
        return None
    offered = tuple(offered)
    if language in offered:
        return language
    chosen = _catalog_for_tag(language)
    return chosen if chosen in offered else None
