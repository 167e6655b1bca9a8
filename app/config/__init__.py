"""One settings object, read from UM2FA_* environment variables and an optional TOML file.

Precedence (highest first): explicit overrides (tests), environment, the TOML file named by
UM2FA_CONFIG, built-in defaults. Keys generated on first start live in the instance directory.

`settings` holds the Settings object and its defaults, `values` turns text into typed values,
`checks` refuses settings that cannot work; `load_settings` here puts them together.
"""

from __future__ import annotations

import os
import secrets
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.config.checks import check, split_host_port
from app.config.files import private_directory, private_file, write_private
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


def _instance_key(instance_dir: Path, name: str) -> str:
    """Read a key from the instance directory, generating it on first start."""
    path = instance_dir / name
    if path.exists():
        return path.read_text().strip()
    private_directory(instance_dir)
    # Written whole under a private name, then linked into place: several processes starting
    # at once (web and RADIUS units on first boot) end up with the one key that won, and none
    # reads a half-written file.
    key = secrets.token_urlsafe(32)
    scratch = instance_dir / f".{name}.{os.getpid()}.{secrets.token_hex(4)}"
    fd = os.open(scratch, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "w") as fh:
            fh.write(key + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        os.link(scratch, path)
    except FileExistsError:
        return path.read_text().strip()
    finally:
        scratch.unlink(missing_ok=True)
    return key


def load_settings(overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
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
    settings = Settings(**coerced, extra=extra)
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
    if not settings.secret_key:
        updates["secret_key"] = _instance_key(inst, "secret_key")
    if not settings.encryption_key:
        updates["encryption_key"] = _instance_key(inst, "encryption_key")
    if updates:
        settings = Settings(**{**{f.name: getattr(settings, f.name) for f in fields(Settings)},
                               **updates})
    check(settings)
    return settings
