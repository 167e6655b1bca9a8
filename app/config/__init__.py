"""One settings object, read from UM2FA_* environment variables and an optional TOML file.

Precedence (highest first): explicit overrides (tests), environment, the TOML file named by
UM2FA_CONFIG, built-in defaults. Keys not given are read from the instance directory; on SQLite
they are made there on first start, with a shared database a missing one stops the node
(`keyfiles`).

`settings` holds the Settings object and its defaults, `values` turns text into typed values,
`checks` refuses settings that cannot work; `load_settings` here puts them together.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.config.checks import check, split_host_port
from app.config.files import private_directory, private_file, write_private
from app.config.keyfiles import NAMES as KEY_NAMES
from app.config.keyfiles import MissingKeys, make_key, read_key, where
from app.config.settings import (
    DEFAULT_CAMPUS,
    LDAP_DEFAULT_ATTRIBUTES,
    PROJECT_ROOT,
    UPSTREAM_ATTRIBUTE_FIELDS,
    ConfigError,
    Network,
    Settings,
    parse_networks,
)
from app.config.values import coerce


def _read_toml(path: str) -> dict[str, Any]:
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigError(f"cannot read UM2FA_CONFIG file {path}: {exc.strerror}") from exc
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"UM2FA_CONFIG file {path} is not valid TOML: {exc}") from exc
    return {k.lower(): v for k, v in data.items()}


def read_settings(overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """The settings as given (environment, TOML file, overrides), typed but neither checked nor
    completed: no file is made or read from the instance directory. `um2fa keys generate` needs
    them before there are keys; everything else calls `load_settings`."""
    environ = dict(os.environ if environ is None else environ)
    known = {f.name for f in fields(Settings)} - {"extra"}
    values: dict[str, Any] = {}
    extra: dict[str, Any] = {}
    if environ.get("UM2FA_CONFIG"):
        for key, value in _read_toml(environ["UM2FA_CONFIG"]).items():
            (values if key in known else extra)[key] = value
    for key, value in environ.items():
        if key.startswith("UM2FA_") and key != "UM2FA_CONFIG":
            name = key[6:].lower()
            (values if name in known else extra)[name] = value
    for key, value in (overrides or {}).items():
        (values if key in known else extra)[key] = value
    coerced = {k: coerce(k, v) for k, v in values.items()}
    return Settings(**coerced, extra=extra)


def load_settings(overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    settings = read_settings(overrides, environ)
    inst = settings.instance_dir
    if inst.is_dir():  # made looser before (by hand, an old version): ours only again
        private_directory(inst)
        if (inst / "saml").is_dir():
            private_directory(inst / "saml")
    updates: dict[str, Any] = {}
    if not settings.database_url:
        private_directory(inst)
        database = private_file(inst / "um2fa.sqlite3")
        updates["database_url"] = f"sqlite:///{database}"
    missing = []
    for name in KEY_NAMES:
        if getattr(settings, name):
            continue
        key = read_key(inst, name)
        if key is None and settings.makes_keys:
            key = make_key(inst, name)
        if key is None:
            missing.append(where(inst, name))
        else:
            updates[name] = key
    if missing:
        raise MissingKeys(missing)
    if updates:
        settings = Settings(**{**{f.name: getattr(settings, f.name) for f in fields(Settings)},
                               **updates})
    check(settings)
    return settings
