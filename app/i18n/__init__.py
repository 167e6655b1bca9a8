"""Languages and local time (docs/languages.md): what every door uses to speak to a person."""

from app.i18n.languages import KNOWN, html_tag, name
from app.i18n.text import (
    N_,
    _,
    current_language,
    gettext,
    lazy_gettext,
    ngettext,
    pgettext,
    use_language,
)
from app.i18n.times import local, local_clock, local_date, local_iso, zone

_l = lazy_gettext


def configure(default_language: str, timezone: str) -> None:
    """The process's default language and time zone (UM2FA_DEFAULT_LANGUAGE, UM2FA_TIMEZONE),
    for every door: app/bootstrap.py calls it for the web app, the RADIUS server and the CLI."""
    from app.i18n import text, times

    text.configure(default_language)
    times.configure(timezone)

__all__ = ["KNOWN", "N_", "_", "_l", "configure", "current_language", "gettext", "html_tag",
           "lazy_gettext", "local", "local_clock", "local_date", "local_iso", "name", "ngettext",
           "pgettext", "use_language", "zone"]
