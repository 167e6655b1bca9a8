"""IdP-proxy mode: the university's SAML IdP checked the password, we decide the rest.

The SSO door (saml/upstream.py, app/web/sso_upstream.py) validates the upstream's Response and
hands over what it says about the person; here we refuse a second use of the same assertion
(on any node: the database remembers it until it expires) and find or create the local user,
whose second factor then follows the usual SSO policy (app/core/sso.py)."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

from sqlalchemy import delete, insert
from sqlalchemy.exc import IntegrityError

from app.core import audit, lockout, provisioning, users
from app.core.context import Context, Origin
from app.core.directory import DirectoryUser
from app.i18n import N_
from app.i18n.refusal import Refusal
from app.models import UpstreamAssertion, User

# Kept this long after its own expiry, so that clock skew cannot bring an assertion back.
REPLAY_MARGIN = timedelta(minutes=5)


class UpstreamError(Refusal):
    """The message is safe to show on the SSO error page (app/i18n/refusal.py)."""


def claim_assertion(ctx: Context, issuer: str, assertion_id: str,
                    not_on_or_after: datetime) -> bool:
    """True the first time this assertion is seen, on any node; False for a replay."""
    digest = hashlib.sha256(f"{issuer}\x00{assertion_id}".encode()).digest()
    now = ctx.now()
    ctx.db.execute(delete(UpstreamAssertion).where(UpstreamAssertion.expires_at < now))
    try:
        with ctx.db.begin_nested():
            ctx.db.execute(insert(UpstreamAssertion).values(
                assertion_hash=digest,
                expires_at=max(not_on_or_after, now) + REPLAY_MARGIN))
    except IntegrityError:
        return False
    return True


def _role(values: list[str]) -> str | None:
    """The first value that is one of our roles (eduPersonAffiliation lists several)."""
    return next((v.strip().lower() for v in values if v.strip().lower() in users.ROLES), None)


def describe(username: str, attributes: dict[str, list[str]], mapping: dict[str, str],
             scope: str) -> DirectoryUser:
    """The person as the upstream describes them. A scoped username (`alice@<scope>`, as in
    eduPersonPrincipalName) is taken without our scope."""
    name = username.strip().lower().removesuffix("@" + scope.lower())

    def first(field: str) -> str | None:
        values = [v for v in attributes.get(mapping.get(field, ""), []) if v.strip()]
        return values[0].strip() if values else None

    role_attr = mapping.get("role")
    return DirectoryUser(username=name, display_name=first("name"), email=first("mail"),
                         given_name=first("given_name"), surname=first("surname"),
                         role=_role(attributes.get(role_attr, [])) if role_attr else None)


def sign_in(ctx: Context, origin: Origin, found: DirectoryUser, upstream: str) -> User:
    """The primary step done by the upstream IdP: the local user (created on the first sign-in,
    mapped attributes brought up to date), audited like a password sign-in."""
    try:
        user = provisioning.sync_user(ctx, origin, found)
    except users.UserError as exc:
        audit.record(ctx, origin, "sign_in", "fail", username=found.username[:64],
                     detail=f"upstream IdP: unusable username ({upstream[:100]})")
        raise UpstreamError(N_("The university sign-in service named a user that cannot "
                               "have an account here. Please contact the IT help desk.")) from exc
    if lockout.is_locked(user, ctx.now()):
        audit.record(ctx, origin, "sign_in", "fail", username=user.username,
                     detail="locked; upstream IdP")
        raise UpstreamError(N_("Your account is locked. Please contact the IT help desk."))
    audit.record(ctx, origin, "sign_in", "ok", username=user.username,
                 detail=f"upstream IdP {upstream[:150]}")
    return user
