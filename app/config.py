"""One settings object, read from UM2FA_* environment variables and an optional TOML file.

Precedence (highest first): explicit overrides (tests), environment, the TOML file named by
UM2FA_CONFIG, built-in defaults. Keys generated on first start live in the instance directory.
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CAMPUS = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"

# Our user fields and the LDAP attributes they are read from (docs/ldap.md). An empty name: the
# field is not taken from the directory (date of birth and ID characters then stay ours).
LDAP_DEFAULT_ATTRIBUTES = {"username": "uid", "name": "cn", "mail": "mail",
                           "role": "employeeType", "dob": "", "id_last4": ""}
_LDAP_ATTRIBUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(\.[0-9]+)+")
# Our user fields that an upstream IdP's attributes may fill (IdP-proxy mode, docs/saml.md).
UPSTREAM_ATTRIBUTE_FIELDS = ("name", "mail", "role")
_SAML_ATTRIBUTE_RE = re.compile(r"[!-~]{1,256}")  # printable, no spaces: a Name or FriendlyName


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


def parse_networks(value: str | list[str]) -> tuple[Network, ...]:
    items = value.split(",") if isinstance(value, str) else value
    nets = []
    for item in items:
        item = item.strip()
        if not item:
            continue
        try:
            nets.append(ipaddress.ip_network(item, strict=False))
        except ValueError as exc:
            raise ConfigError(f"not a network in CIDR form: {item!r}") from exc
    return tuple(nets)


@dataclass(frozen=True)
class Settings:
    instance_dir: Path = PROJECT_ROOT / "instance"
    database_url: str = ""
    redis_url: str = ""
    secret_key: str = ""
    encryption_key: str = ""
    campus_networks: tuple[Network, ...] = parse_networks(DEFAULT_CAMPUS)
    trusted_proxies: tuple[Network, ...] = ()
    issuer: str = "UM 2FA"
    lockout_threshold: int = 10
    recovery_ttl_seconds: int = 3600
    stepup_ttl_seconds: int = 600
    totp_drift_steps: int = 1
    ratelimit_signin_address: str = "30 per minute"
    ratelimit_signin_user: str = "10 per minute"
    ratelimit_passcode_address: str = "30 per minute"
    ratelimit_passcode_user: str = "10 per minute"
    # Prepended to the rate-limit counters' keys: services sharing one Redis keep them apart.
    ratelimit_key_prefix: str = ""
    base_url: str = ""
    # Recovery portal (docs/recovery.md); list values are comma-separated in env vars.
    recovery_roles: tuple[str, ...] = ("student", "staff")
    recovery_prefix: str = "/recovery"
    recovery_host: str = ""
    recovery_max_failures: int = 5
    recovery_lock_seconds: int = 3600
    ratelimit_recovery_address: str = "20 per minute"
    ratelimit_recovery_user: str = "10 per hour"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_cafile: str = ""
    smtp_timeout: int = 10
    # SSO door (docs/saml.md)
    saml_scope: str = "um.edu.mo"
    saml_assertion_lifetime: int = 300
    saml_sign_metadata: bool = True
    sso_second_factor: str = "session"
    new_user: str = "enrol"
    remember_days: int = 0
    # IdP-proxy (docs/saml.md): the university's SAML IdP checks the password, we add the 2FA.
    sso_upstream_metadata: str = ""
    sso_upstream_username_attribute: str = "NameID"
    sso_upstream_attributes: dict[str, str] = field(default_factory=dict)
    # Push to the companion app (docs/device-api.md)
    push_timeout: int = 60
    push_max_pending: int = 3
    push_fraud_block_minutes: int = 20
    # With Redis, answers reach the RADIUS door's push waits at once (push fan-out); it still
    # polls the database this often in case an announcement is lost.
    push_fanout_poll_seconds: int = 2
    verified_push: bool = True
    activation_ttl_seconds: int = 600
    ratelimit_activate_address: str = "10 per minute"
    # Web Push endpoints must be https; tests allow http://127.0.0.1 for the local stub.
    webpush_allow_http: bool = False
    webpush_subject: str = "mailto:it-helpdesk@um.edu.mo"
    admin_emails: tuple[str, ...] = ()
    # Operators (docs/deploy.md): who may read /metrics, and the log format ("text" | "json").
    metrics_networks: tuple[Network, ...] = parse_networks("127.0.0.0/8,::1/128")
    metrics_token: str = field(default="", repr=False)
    log_format: str = "text"
    # Primary authentication: "local" (argon2 hashes in our database), "ldap" (docs/ldap.md) or
    # "radius" (an upstream RADIUS server checks passwords: docs/radius.md)
    directory: str = "local"
    ldap_url: str = ""
    ldap_user_dn_template: str = ""
    ldap_bind_dn: str = ""
    ldap_bind_password: str = field(default="", repr=False)
    ldap_base_dn: str = ""
    ldap_user_filter: str = "(uid={username})"
    ldap_starttls: bool = False
    ldap_ca_file: str = ""
    ldap_timeout: int = 5
    ldap_pool_size: int = 4
    ldap_attributes: dict[str, str] = field(default_factory=lambda: dict(LDAP_DEFAULT_ATTRIBUTES))
    upstream_radius_servers: tuple[str, ...] = ()  # host:port, tried in order
    upstream_radius_secret: str = field(default="", repr=False)
    upstream_radius_timeout: int = 3  # seconds to wait after each send
    upstream_radius_retries: int = 1  # retransmissions per server after the first send
    upstream_radius_nas_identifier: str = "um2fa"
    # Reply attributes per role on a VPN Access-Accept (docs/radius.md): a TOML table, or a JSON
    # object in UM2FA_RADIUS_ROLE_ATTRIBUTES, e.g. {"staff": {"Filter-Id": "staff"}}.
    radius_role_attributes: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # The VAPID key that signs Web Push wake-ups (default: made in the instance directory).
    vapid_private_key: str = ""
    # Settings this version does not know (kept, not used).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratelimit_storage_uri(self) -> str:
        return self.redis_url or "memory://"


_INT_FIELDS = {f.name for f in fields(Settings) if f.type == "int"}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type == "bool"}
_LIST_FIELDS = {f.name for f in fields(Settings) if f.type == "tuple[str, ...]"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_NET_FIELDS = {"campus_networks", "trusted_proxies", "metrics_networks"}


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


def _coerce_ldap_attributes(value: Any) -> dict[str, str]:
    """A TOML table, or JSON text in UM2FA_LDAP_ATTRIBUTES; merged over the defaults."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError("UM2FA_LDAP_ATTRIBUTES must be a JSON object such as "
                              '{"dob": "umDateOfBirth"}') from exc
    if not isinstance(value, dict):
        raise ConfigError("UM2FA_LDAP_ATTRIBUTES must be a table (TOML) or object (JSON)")
    mapping = dict(LDAP_DEFAULT_ATTRIBUTES)
    for key, attr in value.items():
        if key not in LDAP_DEFAULT_ATTRIBUTES:
            raise ConfigError(f"UM2FA_LDAP_ATTRIBUTES: unknown field {key!r}; the fields are "
                              f"{', '.join(LDAP_DEFAULT_ATTRIBUTES)}")
        attr = "" if attr is None else str(attr).strip()
        if attr and not _LDAP_ATTRIBUTE_RE.fullmatch(attr):
            raise ConfigError(f"UM2FA_LDAP_ATTRIBUTES: {attr!r} (for {key}) is not an LDAP "
                              "attribute name")
        mapping[key] = attr
    if not mapping["username"]:
        raise ConfigError("UM2FA_LDAP_ATTRIBUTES: username must name an attribute (e.g. uid)")
    return mapping


def _coerce_upstream_attributes(value: Any) -> dict[str, str]:
    """UM2FA_SSO_UPSTREAM_ATTRIBUTES: a TOML table or JSON object, field -> SAML attribute."""
    if isinstance(value, str):
        try:
            value = json.loads(value) if value.strip() else {}
        except json.JSONDecodeError as exc:
            raise ConfigError("UM2FA_SSO_UPSTREAM_ATTRIBUTES must be a JSON object such as "
                              '{"mail": "urn:oid:0.9.2342.19200300.100.1.3"}') from exc
    if not isinstance(value, dict):
        raise ConfigError("UM2FA_SSO_UPSTREAM_ATTRIBUTES must be a table (TOML) or object (JSON)")
    mapping: dict[str, str] = {}
    for key, attr in value.items():
        if key not in UPSTREAM_ATTRIBUTE_FIELDS:
            raise ConfigError(f"UM2FA_SSO_UPSTREAM_ATTRIBUTES: unknown field {key!r}; the fields "
                              f"are {', '.join(UPSTREAM_ATTRIBUTE_FIELDS)}")
        attr = "" if attr is None else str(attr).strip()
        if attr and not _SAML_ATTRIBUTE_RE.fullmatch(attr):
            raise ConfigError(f"UM2FA_SSO_UPSTREAM_ATTRIBUTES: {attr!r} (for {key}) is not a "
                              "SAML attribute name")
        if attr:
            mapping[key] = attr
    return mapping


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


def _coerce(name: str, value: Any) -> Any:
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
    instance_dir.mkdir(parents=True, exist_ok=True)
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


def _check_recovery(settings: Settings) -> None:
    if settings.recovery_prefix == "/" or any(c in settings.recovery_prefix for c in "?#<> "):
        raise ConfigError("UM2FA_RECOVERY_PREFIX must be a path such as /recovery "
                          "(with UM2FA_RECOVERY_HOST set, that host serves it at /)")
    if not settings.recovery_roles:
        raise ConfigError("UM2FA_RECOVERY_ROLES must name at least one role, e.g. student,staff")
    if settings.recovery_max_failures < 1 or settings.recovery_lock_seconds < 1:
        raise ConfigError("UM2FA_RECOVERY_MAX_FAILURES and UM2FA_RECOVERY_LOCK_SECONDS "
                          "must be at least 1")
    if settings.smtp_host and not settings.smtp_from:
        raise ConfigError("UM2FA_SMTP_FROM is required when UM2FA_SMTP_HOST is set")


def _check_push(settings: Settings) -> None:
    if not 10 <= settings.push_timeout <= 600:
        raise ConfigError("UM2FA_PUSH_TIMEOUT must be between 10 and 600 seconds")
    if not 1 <= settings.push_fanout_poll_seconds <= 60:
        raise ConfigError("UM2FA_PUSH_FANOUT_POLL_SECONDS must be between 1 and 60")
    if settings.push_max_pending < 1:
        raise ConfigError("UM2FA_PUSH_MAX_PENDING must be at least 1")
    if settings.push_fraud_block_minutes < 0:
        raise ConfigError("UM2FA_PUSH_FRAUD_BLOCK_MINUTES cannot be negative")
    if not 60 <= settings.activation_ttl_seconds <= 3600:
        raise ConfigError("UM2FA_ACTIVATION_TTL_SECONDS must be between 60 and 3600")


def _check_ldap_url(url: str, starttls: bool) -> None:
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a bad port
    except ValueError as exc:
        raise ConfigError(f"UM2FA_LDAP_URL {url!r} is not a URL") from exc
    if parts.scheme not in ("ldap", "ldaps") or not parts.hostname or parts.path not in ("", "/"):
        raise ConfigError("UM2FA_LDAP_URL must be ldaps://host[:port] or ldap://host[:port]")
    if parts.scheme == "ldaps" and starttls:
        raise ConfigError("UM2FA_LDAP_STARTTLS is for ldap:// URLs; ldaps:// is TLS already")
    if parts.scheme == "ldap" and not starttls and parts.hostname not in (
            "127.0.0.1", "localhost", "::1"):
        raise ConfigError("UM2FA_LDAP_URL: passwords would cross the network in clear; use "
                          "ldaps:// or set UM2FA_LDAP_STARTTLS=true")


def _check_ldap(settings: Settings) -> None:
    if settings.directory not in ("local", "ldap", "radius"):
        raise ConfigError("UM2FA_DIRECTORY must be 'local', 'ldap' or 'radius'")
    if settings.directory != "ldap":
        return
    if not settings.ldap_url:
        raise ConfigError("UM2FA_LDAP_URL is required with UM2FA_DIRECTORY=ldap")
    _check_ldap_url(settings.ldap_url, settings.ldap_starttls)
    template, search_filter = settings.ldap_user_dn_template, settings.ldap_user_filter
    if template and template.count("{username}") != 1:
        raise ConfigError("UM2FA_LDAP_USER_DN_TEMPLATE must contain {username} once, e.g. "
                          "uid={username},ou=people,dc=um,dc=edu,dc=mo")
    if not template and not settings.ldap_base_dn:
        raise ConfigError("with UM2FA_DIRECTORY=ldap set UM2FA_LDAP_USER_DN_TEMPLATE (bind as "
                          "the user) or UM2FA_LDAP_BASE_DN (search, then bind)")
    if settings.ldap_base_dn and (search_filter.count("{username}") != 1
                                  or not search_filter.startswith("(")
                                  or search_filter.count("(") != search_filter.count(")")):
        raise ConfigError("UM2FA_LDAP_USER_FILTER must be a filter in parentheses containing "
                          "{username} once, e.g. (uid={username})")
    if settings.ldap_bind_dn and not settings.ldap_bind_password:
        raise ConfigError("UM2FA_LDAP_BIND_PASSWORD is required with UM2FA_LDAP_BIND_DN")
    if settings.ldap_ca_file and not os.access(settings.ldap_ca_file, os.R_OK):
        raise ConfigError(f"UM2FA_LDAP_CA_FILE {settings.ldap_ca_file} cannot be read")
    if not 1 <= settings.ldap_timeout <= 60:
        raise ConfigError("UM2FA_LDAP_TIMEOUT must be between 1 and 60 seconds")
    if not 1 <= settings.ldap_pool_size <= 64:
        raise ConfigError("UM2FA_LDAP_POOL_SIZE must be between 1 and 64")


def _check_upstream(settings: Settings) -> None:
    path = settings.sso_upstream_metadata
    if not path:
        return
    if not os.path.isfile(path) or not os.access(path, os.R_OK):
        raise ConfigError(f"UM2FA_SSO_UPSTREAM_METADATA {path} cannot be read (the upstream "
                          "IdP's metadata XML file)")
    if not settings.base_url.startswith(("https://", "http://")):
        raise ConfigError("UM2FA_BASE_URL is required with UM2FA_SSO_UPSTREAM_METADATA: our "
                          "service provider's entity ID and ACS URL are made from it")
    if not _SAML_ATTRIBUTE_RE.fullmatch(settings.sso_upstream_username_attribute):
        raise ConfigError("UM2FA_SSO_UPSTREAM_USERNAME_ATTRIBUTE must be NameID or a SAML "
                          "attribute name (e.g. urn:oid:0.9.2342.19200300.100.1.1 or uid)")


def split_host_port(text: str, default_port: int) -> tuple[str, int]:
    """`host`, `host:port`, `[v6-address]` or `[v6-address]:port`. Raises ValueError."""
    text = text.strip()
    if text.startswith("["):
        host, sep, rest = text[1:].partition("]")
        if not sep or (rest and not rest.startswith(":")):
            raise ValueError(f"{text!r} is not [address]:port")
        port_text = rest[1:]
    elif text.count(":") > 1:
        raise ValueError(f"{text!r}: write an IPv6 address in brackets, e.g. [2001:db8::1]:1812")
    else:
        host, _sep, port_text = text.partition(":")
    if not host or any(c.isspace() or c in "/@[]" for c in host):
        raise ValueError(f"{text!r} does not name a host")
    if not port_text:
        return host, default_port
    if not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"{text!r}: the port must be a number from 1 to 65535")
    return host, int(port_text)


def _check_upstream_radius(settings: Settings) -> None:
    if settings.directory != "radius":
        return
    if not settings.upstream_radius_servers:
        raise ConfigError("UM2FA_UPSTREAM_RADIUS_SERVERS is required with UM2FA_DIRECTORY=radius "
                          "(host:port, comma-separated, tried in order)")
    for server in settings.upstream_radius_servers:
        try:
            split_host_port(server, 1812)
        except ValueError as exc:
            raise ConfigError(f"UM2FA_UPSTREAM_RADIUS_SERVERS: {exc}") from None
    secret = settings.upstream_radius_secret
    if not secret or len(secret.encode()) > 128 or not secret.isprintable():
        raise ConfigError("UM2FA_UPSTREAM_RADIUS_SECRET is required with UM2FA_DIRECTORY=radius: "
                          "the shared secret of the upstream server, up to 128 printable "
                          "characters")
    if not 1 <= settings.upstream_radius_timeout <= 30:
        raise ConfigError("UM2FA_UPSTREAM_RADIUS_TIMEOUT must be between 1 and 30 seconds")
    if not 0 <= settings.upstream_radius_retries <= 5:
        raise ConfigError("UM2FA_UPSTREAM_RADIUS_RETRIES must be between 0 and 5")
    nas_id = settings.upstream_radius_nas_identifier
    if not nas_id or len(nas_id.encode()) > 253 or not nas_id.isprintable():
        raise ConfigError("UM2FA_UPSTREAM_RADIUS_NAS_IDENTIFIER must be 1-253 printable "
                          "characters")


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
    coerced = {k: _coerce(k, v) for k, v in values.items()}
    settings = Settings(**coerced, extra=extra)
    inst = settings.instance_dir
    updates: dict[str, Any] = {}
    if not settings.database_url:
        inst.mkdir(parents=True, exist_ok=True)
        updates["database_url"] = f"sqlite:///{inst / 'um2fa.sqlite3'}"
    if not settings.secret_key:
        updates["secret_key"] = _instance_key(inst, "secret_key")
    if not settings.encryption_key:
        updates["encryption_key"] = _instance_key(inst, "encryption_key")
    if settings.lockout_threshold < 1:
        raise ConfigError("UM2FA_LOCKOUT_THRESHOLD must be at least 1")
    if settings.sso_second_factor not in ("session", "always"):
        raise ConfigError("UM2FA_SSO_SECOND_FACTOR must be 'session' or 'always'")
    if settings.new_user not in ("enrol", "deny", "allow"):
        raise ConfigError("UM2FA_NEW_USER must be 'enrol', 'deny' or 'allow'")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("UM2FA_LOG_FORMAT must be 'text' or 'json'")
    _check_recovery(settings)
    _check_push(settings)
    _check_ldap(settings)
    _check_upstream_radius(settings)
    _check_upstream(settings)
    if updates:
        settings = Settings(**{**{f.name: getattr(settings, f.name) for f in fields(Settings)},
                               **updates})
    return settings
