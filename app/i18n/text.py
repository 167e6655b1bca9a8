"""Translated text, for every door: the web (the request's language), the RADIUS door (the
RADIUS client's language) and mail (the user's language).

The doors set the language (`use_language`, or the request's choice in app/web/language.py);
code that makes a text calls `_` when it makes it. Texts kept in module constants are marked
with `N_` (so the extractor finds them) and translated with `_` where they are used; a form's
labels and validator messages are `_l` (lazy_gettext), translated when the form is shown.
"""

from __future__ import annotations

import contextvars
from collections.abc import Iterator
from contextlib import contextmanager
from functools import cache
from typing import Any

from babel.support import LazyProxy, NullTranslations, Translations

from app.i18n.languages import CATALOGS, SOURCE

DOMAIN = "messages"

_language: contextvars.ContextVar[str | None] = contextvars.ContextVar("um2fa_language",
                                                                       default=None)
_default = SOURCE  # set from UM2FA_DEFAULT_LANGUAGE by the app (configure)
_request_language = None  # a callable the web door installs: the request's choice, or None


def configure(default_language: str, request_language: Any = None) -> None:
    global _default, _request_language
    _default = default_language
    if request_language is not None:
        _request_language = request_language


@cache
def catalog(language: str) -> NullTranslations:
    if language == SOURCE:
        return NullTranslations()
    return Translations.load(str(CATALOGS), [language], DOMAIN)


def current_language() -> str:
    chosen = _language.get()
    if chosen:
        return chosen
    if _request_language is not None:
        chosen = _request_language()
        if chosen:
            return chosen
    return _default


@contextmanager
def use_language(language: str | None) -> Iterator[None]:
    """Texts made inside the block are in `language` (None: leave the choice as it is)."""
    if not language:
        yield
        return
    token = _language.set(language)
    try:
        yield
    finally:
        _language.reset(token)


def gettext(message: str, **params: Any) -> str:
    text = catalog(current_language()).ugettext(message)
    return text % params if params else text


def ngettext(singular: str, plural: str, num: int, **params: Any) -> str:
    params.setdefault("num", num)
    return plural_text(singular, plural, num) % params


def plural_text(singular: str, plural: str, num: int) -> str:
    """The translated form for `num`, its placeholders unfilled (Jinja fills them itself)."""
    return catalog(current_language()).ungettext(singular, plural, num)


def pgettext(context: str, message: str, **params: Any) -> str:
    text = catalog(current_language()).upgettext(context, message)
    return text % params if params else text


def lazy_gettext(message: str, **params: Any) -> LazyProxy:
    """A text translated each time it is shown (WTForms labels and validators, made at import
    time). Not for JSON: `str()` it first."""
    return LazyProxy(gettext, message, enable_cache=False, **params)


def N_(message: str) -> str:  # noqa: N802 - the name the extractor knows
    """Marks a text for the catalogs; `_` translates it where it is shown."""
    return message


_ = gettext
