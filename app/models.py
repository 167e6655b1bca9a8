from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Boolean,
    DateTime,
    ForeignKey,
    Integer,
    LargeBinary,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    false,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    pass


class User(Base):
    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True, index=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    email: Mapped[str] = mapped_column(String(254), default="")
    # Released to SAML service providers as givenName and sn (never guessed from the display
    # name: which part of "Chan Tai Man" is the surname is the directory's to say).
    given_name: Mapped[str] = mapped_column(String(100), default="")
    surname: Mapped[str] = mapped_column(String(100), default="")
    role: Mapped[str] = mapped_column(String(32), default="student")
    password_hash: Mapped[str | None] = mapped_column(String(200), nullable=True)
    dob_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    id_last4_hash: Mapped[bytes | None] = mapped_column(LargeBinary(32), nullable=True)
    disabled: Mapped[bool] = mapped_column(Boolean, default=False)
    failed_factor_count: Mapped[int] = mapped_column(Integer, default=0)
    locked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # When the lockout lifts by itself (app/core/lockout.py), and how many locks in a row (the
    # backoff); a good second factor resets the count.
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    lockout_level: Mapped[int] = mapped_column(Integer, default=0)
    # When the user first had an active device: a user who removed every device is not "new"
    # (UM2FA_NEW_USER=allow lets only never-enrolled users through with a password alone).
    enrolled_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Set by a push reported as fraud: no pushes to this user until then.
    push_blocked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # The language the user chose (docs/languages.md), for pages once signed in and for mail.
    # Deferred: read only where it is used (app/core/preferences.py), never by a login.
    language: Mapped[str | None] = mapped_column(String(16), nullable=True, deferred=True)
    # "Automatically send me a push" ("My Settings & Devices"): a 2FA prompt sends the push as
    # it opens. Deferred like `language`: read and written only by app/core/preferences.py.
    auto_push: Mapped[bool | None] = mapped_column(Boolean, nullable=True, deferred=True,
                                                   server_default=false())

    # When the row was last brought up to date from the LDAP directory's attributes at a
    # sign-in by its own username (app/core/provisioning.py): a VPN login within
    # UM2FA_LDAP_ATTRIBUTE_MAX_AGE of it does not read them again. Deferred: read without the
    # ORM (provisioning.attributes_fresh), never loaded with the user.
    directory_synced_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True,
                                                                 deferred=True)

    devices: Mapped[list[Device]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="Device.id")


class Device(Base):
    """A second-factor device. `secret_enc` holds the TOTP seed encrypted with the instance key.

    kind "totp": a standard authenticator app (passcodes). kind "push": the companion app, which
    shows passcodes from the same kind of seed and answers pushes; `public_key` is its P-256 key
    (SubjectPublicKeyInfo, DER) and `push_subscription` its Web Push subscription (JSON), if any.
    """

    __tablename__ = "devices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(64), default="")
    kind: Mapped[str] = mapped_column(String(16), default="totp")
    device_type: Mapped[str] = mapped_column(String(16), default="mobile")
    platform: Mapped[str] = mapped_column(String(16), default="other")
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    is_default: Mapped[bool] = mapped_column(Boolean, default=False)
    last_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    public_key: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)
    push_subscription: Mapped[str | None] = mapped_column(Text, nullable=True)
    # "recovery" when the enrolment was authenticated by a recovery passcode (such a device may
    # not remove the others for a while: UM2FA_RECOVERY_DEVICE_HOLD_HOURS), else "".
    enrolled_via: Mapped[str] = mapped_column(String(16), default="")

    user: Mapped[User] = relationship(back_populates="devices")


class WebAuthnCredential(Base):
    """A security key's or passkey's credential (docs/passkeys.md), for its Device row (kind
    "webauthn"). Only public data: the credential id, its COSE public key, the signature counter
    and the authenticator's AAGUID; the private key never leaves the authenticator."""

    __tablename__ = "webauthn_credentials"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           unique=True)
    credential_id: Mapped[bytes] = mapped_column(LargeBinary(1023), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    aaguid: Mapped[str] = mapped_column(String(36), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ActivationCode(Base):
    """The single-use code in a companion app's activation link (stored as a keyed hash)."""

    __tablename__ = "activation_codes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class PushRequest(Base):
    """One "Send me a Push": who signs in to what, from where, and the answer.

    `public_id` names it in URLs and the device API. `number` is the Verified Push number shown
    on the login screen (empty when the policy is off). status: pending, approved, denied,
    fraud, expired, used (an approval that completed its login).
    """

    __tablename__ = "push_requests"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    device_id: Mapped[int] = mapped_column(ForeignKey("devices.id", ondelete="CASCADE"),
                                           index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    number: Mapped[str] = mapped_column(String(8), default="")
    door: Mapped[str] = mapped_column(String(16))
    service: Mapped[str] = mapped_column(String(200), default="")
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    answered_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # The device's signature over the answer (evidence of who approved or denied).
    answer_signature: Mapped[bytes | None] = mapped_column(LargeBinary, nullable=True)


class DeviceNonce(Base):
    """Signatures of device API calls already seen, kept past the timestamp window so that a
    replayed call is refused on any node."""

    __tablename__ = "device_nonces"

    digest: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RecoveryPasscode(Base):
    __tablename__ = "recovery_passcodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    code_hash: Mapped[bytes] = mapped_column(LargeBinary(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class AuditEvent(Base):
    __tablename__ = "audit_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    username: Mapped[str] = mapped_column(String(64), default="", index=True)
    door: Mapped[str] = mapped_column(String(16))
    action: Mapped[str] = mapped_column(String(48))
    result: Mapped[str] = mapped_column(String(16))
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    device: Mapped[str] = mapped_column(String(80), default="")
    detail: Mapped[str] = mapped_column(Text, default="")
    # Who acted, when it was not the user: a help-desk person or administrator (console), an
    # API token's name ("api:NAME"), empty for the user's own steps.
    actor: Mapped[str] = mapped_column(String(80), default="", index=True)



class RadiusClient(Base):
    """A NAS (VPN concentrator) allowed to send Access-Requests. The shared secret is encrypted
    with the instance key; `network` is a CIDR and the most specific one matching a source wins."""

    __tablename__ = "radius_clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    network: Mapped[str] = mapped_column(String(64), unique=True)
    secret_enc: Mapped[bytes] = mapped_column(LargeBinary)
    mode: Mapped[str] = mapped_column(String(16), default="append")
    delimiter: Mapped[str] = mapped_column(String(4), default=",")
    require_message_authenticator: Mapped[bool] = mapped_column(Boolean, default=True)
    fail_mode: Mapped[str] = mapped_column(String(8), default="secure")
    push_timeout: Mapped[int] = mapped_column(Integer, default=60)
    # The language of its Reply-Messages (docs/languages.md); None: UM2FA_DEFAULT_LANGUAGE.
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    # A RADIUS proxy (FreeRADIUS) in front of several NAS: its NAS policies apply per NAS.
    proxy: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RadiusNasPolicy(Base):
    """The policy of one NAS behind a proxy client (docs/radius.md, "Behind a FreeRADIUS
    proxy"): matched by the proxied request's NAS-Identifier and/or NAS-IP-Address; a setting
    left None is the proxy client's own."""

    __tablename__ = "radius_nas_policies"
    __table_args__ = (UniqueConstraint("client_id", "name"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("radius_clients.id", ondelete="CASCADE"),
                                           index=True)
    name: Mapped[str] = mapped_column(String(64))
    nas_identifier: Mapped[str | None] = mapped_column(String(64), nullable=True)
    nas_network: Mapped[str | None] = mapped_column(String(64), nullable=True)
    mode: Mapped[str | None] = mapped_column(String(16), nullable=True)
    fail_mode: Mapped[str | None] = mapped_column(String(8), nullable=True)
    push_timeout: Mapped[int | None] = mapped_column(Integer, nullable=True)
    language: Mapped[str | None] = mapped_column(String(16), nullable=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RadiusChallenge(Base):
    """An outstanding Access-Challenge: its State (stored as a keyed hash), single use, bound to
    the user and the RADIUS client it was sent to."""

    __tablename__ = "radius_challenges"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    state_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    # the client's name, or "proxy/nas policy" for a NAS behind a proxy client
    client_name: Mapped[str] = mapped_column(String(140))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # A Verified Push sent in answer to an earlier challenge: this State's answer waits for it.
    push_id: Mapped[str | None] = mapped_column(String(32), nullable=True)


class AttemptCounter(Base):
    """A failure counter of app/core/attempts.py when there is no Redis: failed VPN passwords
    per username or per NAS + Calling-Station-Id, VPN pushes not approved per user. The key is
    a keyed hash (a typed username may be a password); forgotten after `expires_at`."""

    __tablename__ = "attempt_counters"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    key_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RecoveryFlow(Base):
    """One walk through the recovery portal, bound to a browser by a random token in its session
    (stored here as a keyed hash). Its stage only moves forward, by conditional UPDATEs, so a
    step cannot be skipped or replayed, on one node or several."""

    __tablename__ = "recovery_flows"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    username: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(32))
    identity_ok: Mapped[bool] = mapped_column(Boolean, default=False)
    # Which identity checks failed, for the audit record at the end (never shown to the user).
    identity_detail: Mapped[str] = mapped_column(String(120), default="")
    stage: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RecoveryGuard(Base):
    """Failed recovery verifications per UMPASS ID as typed (a keyed hash, so IDs that do not
    exist are counted the same way), and the lock they lead to."""

    __tablename__ = "recovery_guards"

    subject: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    window_start: Mapped[datetime] = mapped_column(UTCDateTime)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    # Locks in a row for this key (the backoff: app/core/lockout.py: backoff_seconds).
    level: Mapped[int] = mapped_column(Integer, default=0)


class ServiceProvider(Base):
    """A SAML service provider registered from its metadata (lists are JSON text)."""

    __tablename__ = "service_providers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    entity_id: Mapped[str] = mapped_column(String(512), unique=True)
    name: Mapped[str] = mapped_column(String(200), default="")
    acs_urls: Mapped[str] = mapped_column(Text)
    slo_url: Mapped[str] = mapped_column(String(1024), default="")
    certs: Mapped[str] = mapped_column(Text, default="[]")
    sign_requests: Mapped[bool] = mapped_column(Boolean, default=False)
    nameid_formats: Mapped[str] = mapped_column(Text, default="[]")
    metadata_xml: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # What the SP asks for in its metadata: [{"name": ..., "required": bool}] (RequestedAttribute),
    # its entity categories (mdattr:EntityAttributes) and subject-id:req ("" when it says none).
    requested_attributes: Mapped[str] = mapped_column(Text, default="[]")
    entity_categories: Mapped[str] = mapped_column(Text, default="[]")
    subject_id_req: Mapped[str] = mapped_column(String(32), default="")
    # The release policy set by an operator (`um2fa sp set --release`, the console, the API):
    # a JSON list of attribute names; NULL: the default policy (app/core/attribute_release.py).
    release: Mapped[str | None] = mapped_column(Text, nullable=True)
    # The SP's encryption certificates and the algorithms its metadata lists (EncryptionMethod);
    # assertions are encrypted when it has a certificate, unless an operator switched it off.
    encryption_certs: Mapped[str] = mapped_column(Text, default="[]")
    encryption_methods: Mapped[str] = mapped_column(Text, default="[]")
    encrypt_assertions: Mapped[bool] = mapped_column(Boolean, default=True)
    # May this SP receive the email address as NameID (emailAddress format)?
    allow_email_nameid: Mapped[bool] = mapped_column(Boolean, default=False)
    # The federation metadata aggregate this SP came from (NULL: registered on its own).
    aggregate_id: Mapped[int | None] = mapped_column(
        ForeignKey("metadata_aggregates.id", ondelete="CASCADE"), nullable=True, index=True)


class MetadataAggregate(Base):
    """A federation's signed metadata aggregate (`um2fa sp add --aggregate`): where it is, the
    certificate it must be signed with, which SPs of it to take, and when to read it again."""

    __tablename__ = "metadata_aggregates"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    url: Mapped[str] = mapped_column(String(1024), unique=True)
    cert_pem: Mapped[str] = mapped_column(Text)
    # Only SPs with one of these entity categories (JSON list; empty: every SP).
    categories: Mapped[str] = mapped_column(Text, default="[]")
    valid_until: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    refreshed_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
    next_refresh_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_error: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class UpstreamAssertion(Base):
    """An assertion from the upstream IdP (IdP-proxy mode) that has been used, by a hash of its
    issuer and ID, kept until it expires so that no node accepts it a second time."""

    __tablename__ = "upstream_assertions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    assertion_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class WebSession(Base):
    """A browser session (app/core/browser_sessions.py): found by a keyed hash of the cookie's
    random id; `data` is encrypted with the instance key."""

    __tablename__ = "web_sessions"

    key: Mapped[bytes] = mapped_column(LargeBinary(32), primary_key=True)
    user_id: Mapped[int | None] = mapped_column(Integer, nullable=True, index=True)
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)


class RememberedBrowser(Base):
    """A browser that "Remember me" let skip the second factor (app/core/remembered.py): the
    cookie holds a random token, found here by its keyed hash; the user can "Forget" it."""

    __tablename__ = "remembered_browsers"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    label: Mapped[str] = mapped_column(String(120), default="")
    address: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Notice(Base):
    """What the user was told about a change to their second factor (app/core/notices.py): by
    email and in the companion app, with a "This wasn't me" link whose token is kept here only
    as a keyed hash; it works once (`used_at`) until `expires_at`. `device_id` is the device
    just added, `passcode_id` the recovery passcode just issued (what "This wasn't me" undoes);
    plain ids, not foreign keys: the device may be gone by then."""

    __tablename__ = "notices"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    event: Mapped[str] = mapped_column(String(32))
    device_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    device_name: Mapped[str] = mapped_column(String(64), default="")
    passcode_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    door: Mapped[str] = mapped_column(String(16), default="")
    client_addr: Mapped[str] = mapped_column(String(64), default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime)
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)


class Admin(Base):
    """A person who may use the help-desk console (`um2fa admins add`): role helpdesk or admin."""

    __tablename__ = "admins"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiToken(Base):
    """A bearer token for the admin API (`um2fa api-tokens add`): only its keyed hash is kept."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    role: Mapped[str] = mapped_column(String(16))
    token_hash: Mapped[bytes] = mapped_column(LargeBinary(32), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime, nullable=True)
