"""Refusals a person reads and the audit records: one text, two languages."""

from __future__ import annotations

from app.i18n.text import gettext


class Refusal(ValueError):
    """A refusal whose message is safe to show: `message` is an English text with `%(name)s`
    placeholders, marked for the catalogs where it is raised (`N_`). `str()` is it filled in,
    in English (the audit record, the logs, the CLI); `translated()` is it in the current
    language (a page). `terms` names the params whose values are marked texts too ("request",
    "assertion"), translated with it."""

    def __init__(self, message: str, *, terms: tuple[str, ...] = (), **params: object) -> None:
        super().__init__(message % params if params else message)
        self.message, self.params, self.terms = message, params, terms

    def translated(self) -> str:
        params = dict(self.params)
        for term in self.terms:
            params[term] = gettext(str(params[term]))
        return gettext(self.message, **params)


def said(reason: str | Exception) -> str:
    """A refusal in the current language: a text marked with `N_`, a Refusal, or any other
    exception's text as it is."""
    if isinstance(reason, Refusal):
        return reason.translated()
    if isinstance(reason, Exception):
        return str(reason)
    return gettext(reason)
