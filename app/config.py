"""One settings object, read from UM2FA_* environment variables and an optional TOML file.

Precedence (highest first): explicit overrides (tests), environment, the TOML file named by
UM2FA_CONFIG, built-in defaults. Keys generated on first start live in the instance directory.
"""

from __future__ import annotations

import ipaddress
import os
import secrets
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parent.parent

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CAMPUS = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"


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
    # Push to the companion app (docs/device-api.md)
    push_timeout: int = 60
    push_max_pending: int = 3
    push_fraud_block_minutes: int = 20
    verified_push: bool = True
    activation_ttl_seconds: int = 600
    ratelimit_activate_address: str = "10 per minute"
    # Web Push endpoints must be https; tests allow http://127.0.0.1 for the local stub.
    webpush_allow_http: bool = False
    webpush_subject: str = "mailto:it-helpdesk@um.edu.mo"
    admin_emails: tuple[str, ...] = ()
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def ratelimit_storage_uri(self) -> str:
        return self.redis_url or "memory://"


_INT_FIELDS = {f.name for f in fields(Settings) if f.type == "int"}
_BOOL_FIELDS = {f.name for f in fields(Settings) if f.type == "bool"}
_LIST_FIELDS = {f.name for f in fields(Settings) if f.type == "tuple[str, ...]"}
_TRUE, _FALSE = {"1", "true", "yes", "on"}, {"0", "false", "no", "off", ""}
_NET_FIELDS = {"campus_networks", "trusted_proxies"}


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


def _coerce(name: str, value: Any) -> Any:
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
    key = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(key + "\n")
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
    if settings.push_max_pending < 1:
        raise ConfigError("UM2FA_PUSH_MAX_PENDING must be at least 1")
    if settings.push_fraud_block_minutes < 0:
        raise ConfigError("UM2FA_PUSH_FRAUD_BLOCK_MINUTES cannot be negative")
    if not 60 <= settings.activation_ttl_seconds <= 3600:
        raise ConfigError("UM2FA_ACTIVATION_TTL_SECONDS must be between 60 and 3600")


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
    _check_recovery(settings)
    _check_push(settings)
    if updates:
        settings = Settings(**{**{f.name: getattr(settings, f.name) for f in fields(Settings)},
                               **updates})
    return settings
