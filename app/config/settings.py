"""The settings object: every setting with its default, and the values it is made of."""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

DEFAULT_CAMPUS = "127.0.0.0/8,::1/128,10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"

# Our user fields and the LDAP attributes they are read from (docs/ldap.md). An empty name: the
# field is not taken from the directory (date of birth and ID characters then stay ours).
LDAP_DEFAULT_ATTRIBUTES = {"username": "uid", "name": "cn", "mail": "mail",
                           "given_name": "givenName", "surname": "sn",
                           "role": "employeeType", "dob": "", "id_last4": ""}
LDAP_ATTRIBUTE_RE = re.compile(r"[A-Za-z][A-Za-z0-9-]{0,63}|[0-9]+(\.[0-9]+)+")
# Our user fields that an upstream IdP's attributes may fill (IdP-proxy mode, docs/saml.md).
UPSTREAM_ATTRIBUTE_FIELDS = ("name", "mail", "given_name", "surname", "role")
SAML_ATTRIBUTE_RE = re.compile(r"[!-~]{1,256}")  # printable, no spaces: a Name or FriendlyName


class ConfigError(ValueError):
    """A setting has a value that cannot be used."""


# Chrome/Android (FCM), Firefox (Mozilla autopush), Safari (Apple), Edge/Windows (WNS).
WEBPUSH_DEFAULT_HOSTS = ("fcm.googleapis.com", "*.push.services.mozilla.com", "*.push.apple.com",
                         "*.notify.windows.com")


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
    # A lockout lifts by itself after lockout_seconds; each further lock without a good second
    # factor in between lasts lockout_backoff_factor times longer, at most lockout_max_seconds.
    # An administrator's lock (`um2fa users lock`) never lifts by itself.
    lockout_seconds: int = 900
    lockout_backoff_factor: int = 2
    lockout_max_seconds: int = 14400
    recovery_ttl_seconds: int = 3600
    stepup_ttl_seconds: int = 600
    # Browser sessions (docs/security.md): kept server-side, in "database" or "redis"; a session
    # lasts this long from sign-in, however busy.
    session_store: str = "database"
    session_lifetime_seconds: int = 8 * 3600
    totp_drift_steps: int = 1
    ratelimit_signin_address: str = "30 per minute"
    # The per-account limits count per account *and* client address, so that one client's
    # guesses do not block the person everywhere; the ceilings count per account from every
    # address (a distributed attack) and are higher.
    ratelimit_signin_user: str = "10 per minute"
    ratelimit_signin_user_ceiling: str = "50 per minute"
    ratelimit_passcode_address: str = "30 per minute"
    ratelimit_passcode_user: str = "10 per minute"
    ratelimit_passcode_user_ceiling: str = "30 per minute"
    # Prepended to the rate-limit counters' keys: services sharing one Redis keep them apart.
    ratelimit_key_prefix: str = ""
    base_url: str = ""
    # Security keys (docs/passkeys.md): when set, only authenticators whose AAGUID is listed
    # may be added (attestation "direct"); for staff keys the university hands out.
    webauthn_aaguids: tuple[str, ...] = ()
    # Recovery portal (docs/recovery.md); list values are comma-separated in env vars.
    recovery_roles: tuple[str, ...] = ("student", "staff")
    recovery_prefix: str = "/recovery"
    recovery_host: str = ""
    # Failed verifications per UMPASS ID and client address that lock recovery for them (the
    # first lock recovery_lock_seconds, then longer, as the lockout's backoff); per UMPASS ID
    # from every address, recovery_max_failures_per_id lock it for everyone.
    recovery_max_failures: int = 5
    recovery_max_failures_per_id: int = 20
    recovery_lock_seconds: int = 900
    ratelimit_recovery_address: str = "20 per minute"
    ratelimit_recovery_user: str = "10 per hour"
    ratelimit_recovery_user_ceiling: str = "50 per hour"
    smtp_host: str = ""
    smtp_port: int = 25
    smtp_from: str = ""
    smtp_starttls: bool = False
    smtp_user: str = ""
    smtp_password: str = ""
    smtp_cafile: str = ""
    smtp_timeout: int = 10
    # Notices of changes to the second factor (app/core/notices.py): times in this time zone
    # (IANA name); "This wasn't me" links work once, for this many days.
    timezone: str = "Asia/Macau"
    notice_link_days: int = 7
    # Languages (docs/languages.md): the catalogs offered, in the switcher's order, and the one
    # for a browser that asks for none of them (and for RADIUS clients and mail by default).
    languages: tuple[str, ...] = ("en", "zh_Hant", "pt")
    default_language: str = "en"
    # A device enrolled with a recovery passcode may not remove the user's other devices for
    # this many hours (0: no hold).
    recovery_device_hold_hours: int = 24
    # SSO door (docs/saml.md)
    saml_scope: str = "um.edu.mo"
    saml_assertion_lifetime: int = 300
    saml_sign_metadata: bool = True
    sso_second_factor: str = "session"
    new_user: str = "enrol"
    remember_days: int = 0
    # Federation metadata aggregates (docs/saml.md): read again at least this often (sooner when
    # the aggregate's cacheDuration says so, never after its validUntil).
    saml_aggregate_refresh_seconds: int = 6 * 3600
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
    # The push event stream (docs/deploy.md): where a login page waiting for its push hears the
    # answer at once. "": `um2fa serve` runs it itself (same host, a port of its own); behind
    # gunicorn, /push/events on the page's own origin, which the proxy sends to
    # `um2fa push-events`. A path or an http(s) URL names it elsewhere; "off": pages only poll.
    push_events_url: str = ""
    # Streams one event server process holds at once (each is a socket); past it, pages poll.
    push_events_max_streams: int = 10000
    verified_push: bool = True
    activation_ttl_seconds: int = 600
    ratelimit_activate_address: str = "10 per minute"
    # Web Push goes only to the public push services (https, port 443, every address the
    # name resolves to public): host names, or "*." + a domain for any name under it.
    webpush_allowed_hosts: tuple[str, ...] = WEBPUSH_DEFAULT_HOSTS
    # Tests only: the host:port (a loopback address) of a local push service reached over plain
    # http (tests/peers/push_service.py). Empty in production: nothing allows loopback.
    webpush_test_service: str = ""
    webpush_subject: str = "mailto:it-helpdesk@um.edu.mo"
    admin_emails: tuple[str, ...] = ()
    # Operators (docs/deploy.md): who may read /metrics, and the log format ("text" | "json").
    metrics_networks: tuple[Network, ...] = parse_networks("127.0.0.0/8,::1/128")
    # The help-desk console (docs/admin.md): where it answers (empty: the campus networks), how
    # long an idle console session lasts, and the LDAP groups whose members have each role.
    admin_networks: tuple[Network, ...] = ()
    admin_idle_seconds: int = 1800
    admin_groups_helpdesk: str = ""
    admin_groups_admin: str = ""
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
    ldap_bind_pool_size: int = 8
    # A VPN login skips reading the directory's attributes (the bind still checks the password)
    # when the user's row was brought up to date from them within this many seconds; 0: read
    # them at every login (docs/ldap.md, "How fresh the attributes are").
    ldap_attribute_max_age: int = 3600
    ldap_attributes: dict[str, str] = field(default_factory=lambda: dict(LDAP_DEFAULT_ATTRIBUTES))
    upstream_radius_servers: tuple[str, ...] = ()  # host:port, tried in order
    upstream_radius_secret: str = field(default="", repr=False)
    upstream_radius_timeout: int = 3  # seconds to wait after each send
    upstream_radius_retries: int = 1  # retransmissions per server after the first send
    upstream_radius_nas_identifier: str = "um2fa"
    # Reply attributes per role on a VPN Access-Accept (docs/radius.md): a TOML table, or a JSON
    # object in UM2FA_RADIUS_ROLE_ATTRIBUTES, e.g. {"staff": {"Filter-Id": "staff"}}.
    radius_role_attributes: dict[str, tuple[tuple[str, str], ...]] = field(default_factory=dict)
    # Password guessing at the VPN door (docs/radius.md): failed passwords per typed username and
    # per NAS + Calling-Station-Id, forgotten `window` seconds after the last one; past the limit
    # the key waits backoff, 2 x backoff, 4 x ... seconds (at most the window) between checks, and
    # an Access-Reject is held up to `max_delay` seconds. Shared through Redis when
    # UM2FA_REDIS_URL is set, else through the database.
    radius_guess_user_limit: int = 5
    radius_guess_source_limit: int = 20
    radius_guess_window_seconds: int = 900
    radius_guess_backoff_seconds: int = 1
    radius_guess_max_delay_seconds: int = 2
    # Push fatigue at the VPN door: after this many VPN pushes in a row that were not approved,
    # no push is sent until `window` seconds after the last one (an approval resets the count).
    radius_push_fatigue_limit: int = 3
    radius_push_fatigue_window_seconds: int = 600
    # The VAPID key that signs Web Push wake-ups (default: made in the instance directory).
    vapid_private_key: str = ""
    # Settings this version does not know (kept, not used).
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def makes_keys(self) -> bool:
        """Whether a key missing on this node is made on first start: only on SQLite (one
        machine). With a shared database several nodes may serve, each must have the same
        keys, and a missing one stops the node instead (app/config/keyfiles.py)."""
        return not self.database_url or self.database_url.startswith("sqlite")
