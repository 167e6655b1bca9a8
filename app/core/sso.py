"""What the SSO door may release and when: the second-factor policy, NameIDs, attributes."""

from __future__ import annotations

import base64
import enum
from dataclasses import dataclass

from app.core import devices
from app.core.context import Context
from app.models import User

MFA_CONTEXT = "https://refeds.org/profile/mfa"
PASSWORD_CONTEXT = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport"  # noqa: S105
PERSISTENT = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
EMAIL = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress"
UNSPECIFIED = "urn:oasis:names:tc:SAML:1.1:nameid-format:unspecified"
AFFILIATIONS = {"student": ["student", "member"], "staff": ["staff", "member"]}


class SsoError(ValueError):
    """The message is safe to show on the SSO error page."""


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


def nameid(ctx: Context, user: User, sp_entity_id: str, requested: str,
           sp_formats: list[str]) -> tuple[str, str]:
    """The NameID the SP asked for (request first, then its metadata); persistent by default.

    A persistent ID is opaque and different for every SP, so SPs cannot join their records."""
    wanted = requested if requested and requested != UNSPECIFIED else next(
        (f for f in sp_formats if f in (PERSISTENT, EMAIL)), PERSISTENT)
    if wanted == EMAIL:
        if not user.email:
            raise SsoError("This service asks for your email address, but your account has "
                           "none. Please contact the IT help desk.")
        return EMAIL, user.email
    if wanted != PERSISTENT:
        raise SsoError("This service asks for a kind of user identifier we do not provide.")
    digest = ctx.keys.keyed_hash("saml-persistent-id", f"{sp_entity_id}\x00{user.id}")
    return PERSISTENT, base64.urlsafe_b64encode(digest).decode().rstrip("=")


def attributes(ctx: Context, user: User) -> dict[str, list[str]]:
    released = {
        "uid": [user.username],
        "displayName": [user.display_name or user.username],
        "eduPersonPrincipalName": [f"{user.username}@{ctx.settings.saml_scope}"],
        "eduPersonAffiliation": AFFILIATIONS.get(user.role, ["member"]),
    }
    if user.email:
        released["mail"] = [user.email]
    return released
