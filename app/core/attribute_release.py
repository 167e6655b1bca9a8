"""Which attributes leave the IdP for a service provider, and their values.

The policy: an operator's list for the SP (`um2fa sp set --release`) when there is one; else
the pairwise-id, what the SP's metadata asks for (RequestedAttribute), the subject identifier its
`subject-id:req` names, and the REFEDS Research and Scholarship bundle for SPs in that entity
category. Nothing else is released. A RequestedAttribute marked isRequired that cannot be
released (unknown to us, left out by the operator's list, or without a value for this person)
stops the sign-in with a message, rather than sending the SP an answer it said it cannot use.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

from app.core import service_providers as sps
from app.core.context import Context
from app.i18n import _
from app.models import ServiceProvider, User

RS_CATEGORY = "http://refeds.org/category/research-and-scholarship"
AFFILIATIONS = {"student": ["student", "member"], "staff": ["staff", "member"]}


@dataclass(frozen=True)
class Attribute:
    friendly: str
    oid: str


# What we can release, under the names eduPerson, inetOrgPerson, SCHAC and the SAML V2.0
# Subject Identifier Attributes Profile publish (the urn:oid name goes on the wire).
CATALOG = {a.friendly: a for a in (
    Attribute("subject-id", "urn:oasis:names:tc:SAML:attribute:subject-id"),
    Attribute("pairwise-id", "urn:oasis:names:tc:SAML:attribute:pairwise-id"),
    Attribute("eduPersonPrincipalName", "urn:oid:1.3.6.1.4.1.5923.1.1.1.6"),
    Attribute("eduPersonScopedAffiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.9"),
    Attribute("eduPersonAffiliation", "urn:oid:1.3.6.1.4.1.5923.1.1.1.1"),
    Attribute("mail", "urn:oid:0.9.2342.19200300.100.1.3"),
    Attribute("displayName", "urn:oid:2.16.840.1.113730.3.1.241"),
    Attribute("givenName", "urn:oid:2.5.4.42"),
    Attribute("sn", "urn:oid:2.5.4.4"),
    Attribute("uid", "urn:oid:0.9.2342.19200300.100.1.1"),
    Attribute("schacHomeOrganization", "urn:oid:1.3.6.1.4.1.25178.1.2.9"),
)}
_BY_NAME = {**{a.oid: a.friendly for a in CATALOG.values()},
            **{a.friendly: a.friendly for a in CATALOG.values()}}
# REFEDS R&S: a shared user identifier, the person's name, email, and the scoped affiliation.
RS_BUNDLE = ("subject-id", "eduPersonPrincipalName", "mail", "displayName", "givenName", "sn",
             "eduPersonScopedAffiliation")


class ReleaseError(ValueError):
    """A required attribute cannot be released; the message is safe to show the person."""


def known(name: str) -> str | None:
    """Our friendly name for an attribute named by its urn:oid name or friendly name."""
    return _BY_NAME.get(name)


def resolve(names: list[str]) -> list[str]:
    """An operator's attribute names (friendly or urn:oid) as friendly names, catalog order."""
    unknown = [n for n in names if known(n) is None]
    if unknown:
        raise ReleaseError(_("unknown attribute(s): %(unknown)s; known: %(known)s",
                             unknown=", ".join(unknown), known=", ".join(CATALOG)))
    wanted = {known(n) for n in names}
    return [name for name in CATALOG if name in wanted]


def policy(sp: ServiceProvider) -> list[str]:
    """The friendly names this SP may receive, in catalog order."""
    explicit = sps.release_policy(sp)
    if explicit is not None:
        wanted = set(explicit)
    else:
        wanted = {"pairwise-id"}
        wanted.update(n for a in sps.requested_attributes(sp) if (n := known(a["name"])))
        if sp.subject_id_req in ("subject-id", "pairwise-id"):
            wanted.add(sp.subject_id_req)
        if RS_CATEGORY in sps.entity_categories(sp):
            wanted.update(RS_BUNDLE)
    return [name for name in CATALOG if name in wanted]


def _opaque(ctx: Context, purpose: str, data: str) -> str:
    """26 lower-case base32 characters of a keyed hash: within the profile's
    [0-9a-z][0-9a-z=-]* unique-ID alphabet, stable while the instance key is."""
    digest = ctx.keys.keyed_hash(purpose, data)
    return base64.b32encode(digest).decode().rstrip("=").lower()[:26]


def values(ctx: Context, user: User, sp_entity_id: str) -> dict[str, list[str]]:
    """Every attribute we hold for this person, as this SP would see it."""
    scope = ctx.settings.saml_scope
    affiliations = AFFILIATIONS.get(user.role, ["member"])
    pairwise = _opaque(ctx, "saml-pairwise-id", f"{sp_entity_id}\x00{user.id}")
    found = {
        "subject-id": [f"{_opaque(ctx, 'saml-subject-id', str(user.id))}@{scope}"],
        "pairwise-id": [f"{pairwise}@{scope}"],
        "eduPersonPrincipalName": [f"{user.username}@{scope}"],
        "eduPersonScopedAffiliation": [f"{a}@{scope}" for a in affiliations],
        "eduPersonAffiliation": affiliations,
        "mail": [user.email],
        "displayName": [user.display_name],
        "givenName": [user.given_name],
        "sn": [user.surname],
        "uid": [user.username],
        "schacHomeOrganization": [scope],
    }
    return {name: vals for name, vals in found.items() if all(vals)}


def release(ctx: Context, user: User, sp: ServiceProvider) -> dict[str, list[str]]:
    """The attributes this SP receives for this person, by friendly name; ReleaseError when a
    required one cannot be sent."""
    allowed = policy(sp)
    available = values(ctx, user, sp.entity_id)
    for asked in sps.requested_attributes(sp):
        if not asked["required"]:
            continue
        name = known(asked["name"])
        if name is None or name not in allowed:
            raise ReleaseError(
                f"This service requires information ({asked['name'][:80]}) that the "
                "university's sign-in service does not release to it. Please contact the "
                "service's administrators.")
        if name not in available:
            raise ReleaseError(
                f"This service requires your {name}, which your account does not have. "
                "Please contact the IT help desk.")
    return {name: available[name] for name in allowed if name in available}
