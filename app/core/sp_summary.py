"""What one service provider asks for and receives, in words: `um2fa sp show`, the console's
page of an SP and the admin API read the same lines from here. They stay English (the API's
JSON keys are the labels); the console shows them translated (`in_words`)."""

from __future__ import annotations

from app.core import attribute_release, sp_encryption
from app.core import service_providers as sps
from app.core.context import Context
from app.i18n import N_, _
from app.models import ServiceProvider

# The labels and the fixed values of `describe`, for the console to translate.
WORDS = frozenset((
    N_("entity ID"), N_("name"), N_("source"), N_("ACS URLs"), N_("SLO URL"),
    N_("entity categories"), N_("subject-id:req"), N_("requested attributes"),
    N_("released (default)"), N_("released (operator's list)"), N_("email NameID"),
    N_("encrypted assertions"), N_("allowed"), N_("not allowed"), N_("no (switched off)"),
    N_("no (no encryption key)")))


def encryption(sp: ServiceProvider) -> str:
    chosen = sp_encryption.for_assertions(sp)
    if chosen is not None:
        data, transport = (uri.rsplit("#", 1)[-1] for uri in (chosen.algorithm,
                                                              chosen.key_transport))
        return f"yes ({data}, {transport})"
    return "no (switched off)" if not sp.encrypt_assertions else "no (no encryption key)"


def describe(ctx: Context, sp: ServiceProvider) -> list[tuple[str, str]]:
    """(label, value) for each fact about the SP, in the order they are shown."""
    requested = ", ".join(a["name"] + (" (required)" if a["required"] else "")
                          for a in sps.requested_attributes(sp))
    policy = "operator's list" if sp.release is not None else "default"
    return [
        ("entity ID", sp.entity_id), ("name", sp.name), ("source", sps.source(ctx, sp)),
        ("ACS URLs", ", ".join(sps.acs_urls(sp))), ("SLO URL", sp.slo_url or "-"),
        ("entity categories", ", ".join(sps.entity_categories(sp)) or "-"),
        ("subject-id:req", sp.subject_id_req or "-"),
        ("requested attributes", requested or "-"),
        (f"released ({policy})", ", ".join(attribute_release.policy(sp))),
        ("email NameID", "allowed" if sp.allow_email_nameid else "not allowed"),
        ("encrypted assertions", encryption(sp))]


def in_words(facts: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """`describe`'s lines in the current language (values that are data stay as they are)."""
    return [(_(label) if label in WORDS else label, _(value) if value in WORDS else value)
            for label, value in facts]
