"""Setting values as environment variables and TOML give them, turned into typed values (or a
ConfigError that names the setting)."""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from app.config.settings import (
    LDAP_ATTRIBUTE_RE,
    LDAP_DEFAULT_ATTRIBUTES,
    SAML_ATTRIBUTE_RE,
    UPSTREAM_ATTRIBUTE_FIELDS,
    ConfigError,
    Settings,
    parse_networks,
)

_INT_FIELDS = {f.name for f in fields(Settings) if f.type == "int"}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type == "bool"}
_LIST_FIELDS = {f.name for f in fields(Settings) if f.type == "tuple[str, ...]"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_NET_FIELDS = {"campus_networks", "trusted_proxies", "metrics_networks", "admin_networks"}


def _coerce_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text not in _TRUE | _FALSE:
        raise ConfigError(f"UM2FA_{name.upper()} must be true or false")
    return text in _TRUE


def _coerce_list(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    return tuple(str(item).strip().lower() for item in items if str(item).strip())


def _language_name(value: str) -> str:
    """A language as its catalog is named ("zh-hant", "ZH_HANT" -> "zh_Hant"); one we have no
    catalog for is kept as written, for the config check to name."""
    from app.i18n.languages import KNOWN

    text = value.strip()
    wanted = text.replace("-", "_").lower()
    return next((known for known in KNOWN if known.lower() == wanted), text)


def _attribute_table(value: Any, setting: str, fields: Any, pattern: Any, kind: str,
                     example: str) -> dict[str, str]:
    """A TOML table, or JSON text in UM2FA_<SETTING>: our field -> an attribute name of `kind`
    ("" where the value is empty), every field one of `fields`."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError(f"{setting} must be a JSON object such as {example}") from exc
    if not isinstance(value, dict):
        raise ConfigError(f"{setting} must be a table (TOML) or object (JSON)")
    table: dict[str, str] = {}
    for key, attr in value.items():
        if key not in fields:
            raise ConfigError(f"{setting}: unknown field {key!r}; the fields are "
                              f"{', '.join(fields)}")
        attr = "" if attr is None else str(attr).strip()
        if attr and not pattern.fullmatch(attr):
            raise ConfigError(f"{setting}: {attr!r} (for {key}) is not {kind}")
        table[key] = attr
    return table


def _coerce_ldap_attributes(value: Any) -> dict[str, str]:
    """UM2FA_LDAP_ATTRIBUTES, merged over the defaults."""
    mapping = {**LDAP_DEFAULT_ATTRIBUTES, **_attribute_table(
        value, "UM2FA_LDAP_ATTRIBUTES", LDAP_DEFAULT_ATTRIBUTES, LDAP_ATTRIBUTE_RE,
        "an LDAP attribute name", '{"dob": "umDateOfBirth"}')}
    if not mapping["username"]:
        raise ConfigError("UM2FA_LDAP_ATTRIBUTES: username must name an attribute (e.g. uid)")
    return mapping


def _coerce_upstream_attributes(value: Any) -> dict[str, str]:
    """UM2FA_SSO_UPSTREAM_ATTRIBUTES: field -> SAML attribute (empty ones left out)."""
    table = _attribute_table(value, "UM2FA_SSO_UPSTREAM_ATTRIBUTES", UPSTREAM_ATTRIBUTE_FIELDS,
                             SAML_ATTRIBUTE_RE, "a SAML attribute name",
                             '{"mail": "urn:oid:0.9.2342.19200300.100.1.3"}')
    return {key: attr for key, attr in table.items() if attr}


def _coerce_role_attributes(value: Any) -> dict[str, tuple[tuple[str, str], ...]]:
    """UM2FA_RADIUS_ROLE_ATTRIBUTES: role -> attribute -> text or number (or a list of them)."""
    raw: Any = value or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ConfigError("UM2FA_RADIUS_ROLE_ATTRIBUTES is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise ConfigError("radius_role_attributes must map roles to attribute tables")
    table: dict[str, tuple[tuple[str, str], ...]] = {}
    for role, attrs in raw.items():
        if not isinstance(attrs, dict):
            raise ConfigError(f"radius_role_attributes.{role} must be a table of attributes")
        pairs = []
        for name, item_or_list in attrs.items():
            for item in item_or_list if isinstance(item_or_list, list) else [item_or_list]:
                if not isinstance(item, str | int) or isinstance(item, bool):
                    raise ConfigError(f"radius_role_attributes.{role}.{name} must be text or a "
                                      "number (or a list of them)")
                pairs.append((str(name), str(item)))
        table[str(role)] = tuple(pairs)
    return table


def coerce(name: str, value: Any) -> Any:
    """The typed value of setting `name`."""
    if name == "ldap_attributes":
        return _coerce_ldap_attributes(value)
    if name == "radius_role_attributes":
        return _coerce_role_attributes(value)
    if name == "sso_upstream_attributes":
        return _coerce_upstream_attributes(value)
    if name in _NET_FIELDS:
        return parse_networks(value)
    if name == "instance_dir":
        return Path(value)
    if name in _BOOL_FIELDS:
        return _coerce_bool(name, value)
    if name == "languages":  # catalog names keep their case: zh_Hant
        return tuple(_language_name(item) for item in _coerce_list(value))
    if name == "default_language":
        return _language_name(str(value))
    if name in _LIST_FIELDS:
        return _coerce_list(value)
    if name == "recovery_prefix":
        return "/" + str(value).strip().strip("/")
    if name == "recovery_host":
        return str(value).strip().lower()
    if name in _INT_FIELDS:
        try:
            return int(value)
        except (TypeError, ValueError) as exc:
            raise ConfigError(f"UM2FA_{name.upper()} must be a whole number") from exc
    return value
