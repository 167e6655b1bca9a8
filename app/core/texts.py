"""Texts kept in module constants and translated when they are read."""

from __future__ import annotations

from typing import Any

from app.i18n import _


class Translated(dict):
    """A dict of messages marked with `N_`: `messages[key]` and `messages.get(key)` give the
    text in the current language (the web request's, or the one a door set with
    `use_language`), at the moment the message is built."""

    def __getitem__(self, key: Any) -> str:
        return _(super().__getitem__(key))

    def get(self, key: Any, default: Any = None) -> Any:
        return self[key] if key in self else default  # noqa: SIM401 - translated

    def source(self, key: Any) -> str:
        """The English text (the msgid), e.g. for an audit record."""
        return super().__getitem__(key)
