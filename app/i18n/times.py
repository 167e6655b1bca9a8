"""Times as people read them: in the university's time zone (UM2FA_TIMEZONE), in the page's
language, by Babel's date formats for that language where the zone is (Macau's by default:
`zh_Hant_MO`, `pt_MO`, `en_MO`). The audit record and the logs stay in UTC."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import cache
from zoneinfo import ZoneInfo

from babel import Locale, UnknownLocaleError
from babel.core import get_global
from babel.dates import format_date, format_time, get_timezone_gmt, get_timezone_location

from app.i18n.text import _, current_language

_zone = "Asia/Macau"  # set from UM2FA_TIMEZONE by the app (configure)


def configure(timezone: str) -> None:
    global _zone
    _zone = timezone
    _locale.cache_clear()


@cache
def _locale(language: str) -> Locale:
    territory = get_global("zone_territories").get(_zone)
    if territory:
        try:
            return Locale.parse(f"{language}_{territory}")
        except (UnknownLocaleError, ValueError):
            pass
    return Locale.parse(language)


def _here(when: datetime) -> datetime:
    aware = when if when.tzinfo is not None else when.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(_zone))


def local(when: datetime) -> str:
    """Date and time: "6 Dec 2026, 3:26 pm", "2026年12月6日 下午3:26", "06/12/2026, 3:26 p.m."."""
    locale = _locale(current_language())
    here = _here(when)
    return locale.datetime_formats["medium"].format(format_time(here, "short", locale=locale),
                                                    format_date(here, "medium", locale=locale))


def local_date(when: datetime) -> str:
    return format_date(_here(when), "long", locale=_locale(current_language()))


def local_clock(when: datetime) -> str:
    """Only the time of day (a passcode that expires within the hour)."""
    return format_time(_here(when), "short", locale=_locale(current_language()))


def local_iso(when: datetime) -> str:
    """For `<time datetime>`: ISO 8601 with the local offset."""
    return _here(when).isoformat(timespec="seconds")


def zone() -> str:
    """The time zone, named once where times are shown: "Macao time (GMT+08:00)"."""
    locale = _locale(current_language())
    tz = ZoneInfo(_zone)
    city = get_timezone_location(tz, locale=locale, return_city=True)
    offset = get_timezone_gmt(datetime.now(tz), "long", locale=locale)
    return _("%(city)s time (%(offset)s)", city=city, offset=offset)
