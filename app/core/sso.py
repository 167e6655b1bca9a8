"""What the SSO door may release and when: the second-factor policy and NameIDs (attributes:
attribute_release.py)."""

from __future__ import annotations

import base64
import enum
import secrets
from dataclasses import dataclass

from app.core import devices
from app.core import service_providers as sps
from app.core.context import Context
from app.i18n import N_
from app.i18n.refusal import Refusal
from app.models import ServiceProvider, User

MFA_CONTEXT = "https://refeds.org/profile/mfa"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
TRANSIENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"


class SsoError(Refusal):
    """The message is safe to show on the SSO error page (app/i18n/refusal.py)."""


class NameIdPolicyError(SsoError):
    """The SP asked for a NameID we do not give it: the SP gets an InvalidNameIDPolicy status."""


class Step(enum.Enum):
    ISSUE = "issue"      # answer the service provider now
    PROMPT = "prompt"    # ask for a second factor
    ENROL = "enrol"      # the user has no device: add one first (needs a recovery passcode)
    DENY = "deny"        # policy refuses


@dataclass
class SecondFactorState:
    """What the door knows about this browser: a second factor earlier in the session,
    for this very request, or a still-valid "remember me"."""

    in_session: bool = False
    for_this_request: bool = False
    remembered: bool = False


def next_step(ctx: Context, user: User, state: SecondFactorState, *,
              sp_requires_mfa: bool) -> Step:
    policy = ctx.settings.sso_second_factor
    done = state.for_this_request or (policy == "session" and state.in_session)
    has_devices = bool(devices.active_devices(user))
    if done or (state.remembered and has_devices):
        return Step.ISSUE
    if has_devices:
        return Step.PROMPT
    if ctx.settings.new_user == "allow" and user.enrolled_at is None:
        # A service that demands MFA cannot take a password-only login: offer enrolment.
        # Only a user who never had a device is new: one who removed every device (or whose
        # devices someone with the password removed) enrols again, with a recovery passcode.
        return Step.ENROL if sp_requires_mfa else Step.ISSUE
    return Step.DENY if ctx.settings.new_user == "deny" else Step.ENROL


def mfa_done(ctx: Context, state: SecondFactorState, user: User) -> bool:
    policy = ctx.settings.sso_second_factor
    return (state.for_this_request or (policy == "session" and state.in_session)
            or (state.remembered and bool(devices.active_devices(user))))


def authn_context(mfa: bool) -> str:
    return MFA_CONTEXT if mfa else PASSWORD_CONTEXT


def requires_mfa(requested_contexts: list[str]) -> bool:
    return MFA_CONTEXT in requested_contexts


def nameid_format(requested: str, sp: ServiceProvider) -> str:
    """The NameID format for this request: the request's NameIDPolicy first, then the SP's
    metadata, persistent by default. The email address only to an SP allowed to have it."""
    offered = [PERSISTENT, TRANSIENT] + ([EMAIL] if sp.allow_email_nameid else [])
    if requested and requested != UNSPECIFIED:
        if requested not in offered:
            raise NameIdPolicyError(
                N_("This service asks for a kind of user identifier the university's sign-in "
                   "service does not give it (%(format)s)."), format=requested[:100])
        return requested
    return next((f for f in sps.nameid_formats(sp) if f in offered), PERSISTENT)


def nameid(ctx: Context, user: User, sp_entity_id: str, fmt: str) -> str:
    """The NameID's value. A persistent ID is opaque and different for every SP, so SPs cannot
    join their records; a transient one is new every time."""
    if fmt == EMAIL:
        if not user.email:
            raise SsoError(N_("This service asks for your email address, but your account has "
                              "none. Please contact the IT help desk."))
        return user.email
    if fmt == TRANSIENT:
        return "_" + secrets.token_hex(16)
    digest = ctx.keys.keyed_hash("saml-persistent-id", f"{sp_entity_id}\x00{user.id}")
    return base64.urlsafe_b64encode(digest).decode().rstrip("=")
