"""Settings that cannot work together, or values out of range: a ConfigError that says which
setting and what to write instead, at start, never at the first login."""

from __future__ import annotations

import ipaddress
import os
import re
from urllib.parse import urlsplit

from app.config.settings import SAML_ATTRIBUTE_RE, ConfigError, Settings


def _check_basics(settings: Settings) -> None:
    if settings.lockout_threshold < 1:
        raise ConfigError("UM2FA_LOCKOUT_THRESHOLD must be at least 1")
    if settings.lockout_seconds < 1:
        raise ConfigError("UM2FA_LOCKOUT_SECONDS must be at least 1")
    if settings.lockout_backoff_factor < 1:
        raise ConfigError("UM2FA_LOCKOUT_BACKOFF_FACTOR must be at least 1 (1: no backoff)")
    if settings.lockout_max_seconds < settings.lockout_seconds:
        raise ConfigError("UM2FA_LOCKOUT_MAX_SECONDS must be at least UM2FA_LOCKOUT_SECONDS")
    if settings.sso_second_factor not in ("session", "always"):
        raise ConfigError("UM2FA_SSO_SECOND_FACTOR must be 'session' or 'always'")
    if settings.new_user not in ("enrol", "deny", "allow"):
        raise ConfigError("UM2FA_NEW_USER must be 'enrol', 'deny' or 'allow'")
    if settings.log_format not in ("text", "json"):
        raise ConfigError("UM2FA_LOG_FORMAT must be 'text' or 'json'")
    if settings.session_store not in ("database", "redis"):
        raise ConfigError("UM2FA_SESSION_STORE must be 'database' or 'redis'")
    if settings.session_store == "redis" and not settings.redis_url:
        raise ConfigError("UM2FA_SESSION_STORE=redis needs UM2FA_REDIS_URL")
    if settings.session_lifetime_seconds < 60:
        raise ConfigError("UM2FA_SESSION_LIFETIME_SECONDS must be at least 60")
    if not 60 <= settings.saml_aggregate_refresh_seconds <= 7 * 86400:
        raise ConfigError("UM2FA_SAML_AGGREGATE_REFRESH_SECONDS must be between 60 and 604800 "
                          "(a week)")


def _check_recovery(settings: Settings) -> None:
    if settings.recovery_prefix == "/" or any(c in settings.recovery_prefix for c in "?#<> "):
        raise ConfigError("UM2FA_RECOVERY_PREFIX must be a path such as /recovery "
                          "(with UM2FA_RECOVERY_HOST set, that host serves it at /)")
    if not settings.recovery_roles:
        raise ConfigError("UM2FA_RECOVERY_ROLES must name at least one role, e.g. student,staff")
    if settings.recovery_max_failures < 1 or settings.recovery_lock_seconds < 1:
        raise ConfigError("UM2FA_RECOVERY_MAX_FAILURES and UM2FA_RECOVERY_LOCK_SECONDS "
                          "must be at least 1")
    if settings.recovery_max_failures_per_id < 1:
        raise ConfigError("UM2FA_RECOVERY_MAX_FAILURES_PER_ID must be at least 1")
    if settings.smtp_host and not settings.smtp_from:
        raise ConfigError("UM2FA_SMTP_FROM is required when UM2FA_SMTP_HOST is set")
    try:
        from zoneinfo import ZoneInfo

        ZoneInfo(settings.timezone)
    except (ValueError, KeyError, OSError) as exc:
        raise ConfigError("UM2FA_TIMEZONE must be an IANA time zone such as Asia/Macau") from exc
    if not 1 <= settings.notice_link_days <= 90:
        raise ConfigError("UM2FA_NOTICE_LINK_DAYS must be between 1 and 90")
    if not 0 <= settings.recovery_device_hold_hours <= 24 * 30:
        raise ConfigError("UM2FA_RECOVERY_DEVICE_HOLD_HOURS must be between 0 and 720")


def _check_push(settings: Settings) -> None:
    if not 10 <= settings.push_timeout <= 600:
        raise ConfigError("UM2FA_PUSH_TIMEOUT must be between 10 and 600 seconds")
    if not 1 <= settings.push_fanout_poll_seconds <= 60:
        raise ConfigError("UM2FA_PUSH_FANOUT_POLL_SECONDS must be between 1 and 60")
    _check_push_events(settings)
    if settings.push_max_pending < 1:
        raise ConfigError("UM2FA_PUSH_MAX_PENDING must be at least 1")
    if settings.push_fraud_block_minutes < 0:
        raise ConfigError("UM2FA_PUSH_FRAUD_BLOCK_MINUTES cannot be negative")
    if not 60 <= settings.activation_ttl_seconds <= 3600:
        raise ConfigError("UM2FA_ACTIVATION_TTL_SECONDS must be between 60 and 3600")
    _check_webpush(settings)


def _check_push_events(settings: Settings) -> None:
    url = settings.push_events_url.strip()
    if url not in ("", "off"):
        parts = urlsplit(url)
        absolute = parts.scheme in ("http", "https") and parts.netloc
        if not (absolute or (url.startswith("/") and not url.startswith("//"))) \
                or parts.query or parts.fragment:
            raise ConfigError("UM2FA_PUSH_EVENTS_URL must be off, a path such as /push/events, "
                              "or an http(s) URL without a query")
    if not 1 <= settings.push_events_max_streams <= 1_000_000:
        raise ConfigError("UM2FA_PUSH_EVENTS_MAX_STREAMS must be between 1 and 1000000")


_WEBPUSH_HOST = re.compile(r"(\*\.)?[a-z0-9-]+(\.[a-z0-9-]+)+")


def _check_webpush(settings: Settings) -> None:
    for host in settings.webpush_allowed_hosts:
        if not _WEBPUSH_HOST.fullmatch(host):
            raise ConfigError(f"UM2FA_WEBPUSH_ALLOWED_HOSTS: {host!r} is not a host name or "
                              "*. and a domain (e.g. fcm.googleapis.com, *.push.apple.com)")
    if settings.webpush_test_service:
        try:
            host, port = split_host_port(settings.webpush_test_service, 0)
            loopback = ipaddress.ip_address(host).is_loopback and port > 0
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError("UM2FA_WEBPUSH_TEST_SERVICE is for the tests' local push service "
                              "only: a loopback address and port, e.g. 127.0.0.1:8080 "
                              "(leave it empty in production)")


# A DNS domain of two labels or more: the scope of eduPersonPrincipalName and the scoped
# affiliations (alice@SCOPE), declared as shibmd:Scope in our metadata.
_SAML_SCOPE = re.compile(r"(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+"
                         r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?")


def _check_saml(settings: Settings) -> None:
    if not _SAML_SCOPE.fullmatch(settings.saml_scope):
        raise ConfigError("UM2FA_SAML_SCOPE must be the university's domain, such as "
                          f"um.edu.mo (not {settings.saml_scope!r}): it is the part after the "
                          "@ of alice@um.edu.mo")


def _check_radius_limits(settings: Settings) -> None:
    for name, low, high in (("radius_guess_user_limit", 1, 1000),
                            ("radius_guess_source_limit", 1, 100_000),
                            ("radius_guess_window_seconds", 60, 86_400),
                            ("radius_guess_backoff_seconds", 1, 3600),
                            ("radius_guess_max_delay_seconds", 0, 10),
                            ("radius_push_fatigue_limit", 1, 100),
                            ("radius_push_fatigue_window_seconds", 60, 86_400)):
        if not low <= getattr(settings, name) <= high:
            raise ConfigError(f"UM2FA_{name.upper()} must be between {low} and {high}")


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
    if not 1 <= settings.ldap_bind_pool_size <= 64:
        raise ConfigError("UM2FA_LDAP_BIND_POOL_SIZE must be between 1 and 64")
    if not 0 <= settings.ldap_attribute_max_age <= 86400:
        raise ConfigError("UM2FA_LDAP_ATTRIBUTE_MAX_AGE must be between 0 and 86400 seconds")


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
    if not SAML_ATTRIBUTE_RE.fullmatch(settings.sso_upstream_username_attribute):
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


KEY_MIN_LENGTH = 32
KEY_MIN_DISTINCT = 10


def _check_keys(settings: Settings) -> None:
    """UM2FA_SECRET_KEY and UM2FA_ENCRYPTION_KEY: at least 32 characters, at least 10 of them
    different (`um2fa keys generate --print-only`, `openssl rand -base64 32` or
    `openssl rand -hex 32`). An empty key is read from the instance directory by load_settings
    (app/config/keyfiles.py). The message never quotes the key."""
    for name in ("secret_key", "encryption_key"):
        key = getattr(settings, name)
        if key and (len(key) < KEY_MIN_LENGTH or len(set(key)) < KEY_MIN_DISTINCT):
            raise ConfigError(
                f"UM2FA_{name.upper()} is too weak: use at least {KEY_MIN_LENGTH} characters, "
                f"at least {KEY_MIN_DISTINCT} of them different; make one with "
                "`um2fa keys generate --print-only`, or leave it unset and make the instance "
                "directory's with `um2fa keys generate`")


def _check_languages(settings: Settings) -> None:
    from app.i18n.languages import KNOWN

    unknown = [lang for lang in settings.languages if lang not in KNOWN]
    if unknown or not settings.languages:
        raise ConfigError(f"UM2FA_LANGUAGES must list languages we have catalogs for "
                          f"({', '.join(KNOWN)}), e.g. en,zh_Hant,pt")
    if settings.default_language not in settings.languages:
        raise ConfigError("UM2FA_DEFAULT_LANGUAGE must be one of UM2FA_LANGUAGES "
                          f"({', '.join(settings.languages)})")


AAGUID_RE = re.compile(r"[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}")


def _check_webauthn(settings: Settings) -> None:
    bad = [a for a in settings.webauthn_aaguids if not AAGUID_RE.fullmatch(a.strip())]
    if bad:
        raise ConfigError(f"UM2FA_WEBAUTHN_AAGUIDS must be a comma list of AAGUIDs such as "
                          f"cb69481e-8ff7-4039-93ec-0a2729a154a8 (not {bad[0][:40]!r}); "
                          "docs/passkeys.md")


def _check_web_limits(settings: Settings) -> None:
    from limits import parse_many

    for name in sorted(vars(settings)):
        if not name.startswith("ratelimit_") or name == "ratelimit_key_prefix":
            continue
        value = getattr(settings, name)
        try:
            parsed = parse_many(value)
        except ValueError:
            parsed = []
        if len(parsed) != 1:
            raise ConfigError(f"UM2FA_{name.upper()} must be one limit such as '10 per minute' "
                              f"or '50 per hour' (not {value[:40]!r})")


def check(settings: Settings) -> None:
    """Every check; the first that fails raises."""
    for one in (_check_basics, _check_keys, _check_recovery, _check_push, _check_saml,
                _check_radius_limits, _check_web_limits, _check_ldap,
                _check_upstream_radius, _check_upstream, _check_languages, _check_webauthn):
        one(settings)
