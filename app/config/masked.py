"""The effective settings as the console shows them: every field with its value, secrets masked.

A field is secret by its name (any of SECRET_WORDS in it: secret_key, encryption_key,
smtp_password, ldap_bind_password, metrics_token, vapid_private_key, upstream_radius_secret, and
whatever such field is added later); inside any other value, a password in a URL
(postgresql://user:PASSWORD@host, redis://:PASSWORD@host) is masked too.
"""

from __future__ import annotations

import re
from dataclasses import fields
from typing import Any

from app.config.settings import Settings

SECRET_WORDS = ("password", "secret", "key", "token", "private")
MASK = "********"
NOT_SET = "(not set)"
# scheme://[user]:password@ — the password is what lies between the first ':' after the
# scheme's '//' and the last '@' before the host.
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^:/@\s]*:)[^\s]*@")


def is_secret(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def mask_urls(text: str) -> str:
    return _URL_PASSWORD.sub(lambda m: m.group("head") + MASK + "@", text)


def shown(name: str, value: Any) -> str:
    """How the value of the setting (or nested key) `name` is shown."""
    if is_secret(name):
        return MASK if value not in ("", None, {}, (), []) else NOT_SET
    if isinstance(value, dict):
        return "; ".join(f"{key}={shown(str(key), item)}" for key, item in value.items()) \
            or NOT_SET
    if isinstance(value, list | tuple):
        return ", ".join(shown(name, item) for item in value) or NOT_SET
    if value == "":
        return NOT_SET
    return mask_urls(str(value))


def effective(settings: Settings) -> list[tuple[str, str]]:
    """(name, value shown) for every field of the settings, in their declared order."""
    return [(f.name, shown(f.name, getattr(settings, f.name))) for f in fields(Settings)]
