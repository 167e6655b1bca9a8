"""Admin API for SAML service providers (role admin): list (paged), register from metadata,
what one asks for and receives, its release policy and switches (`um2fa sp set`), remove. An
SP is named by its entity ID in the path, appended as it is or percent-encoded (docs/admin.md)."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.core import attribute_release, sp_summary
from app.core import service_providers as sps
from app.extensions import core
from app.models import ServiceProvider
from app.web.api import params
from app.web.api.base import ApiError, api_origin, bp, documented, requires
from saml.sp_metadata import register as register_metadata
from saml.xml import MAX_XML_BYTES, SamlError

ACTION = "service_providers.manage"

BRIEF = {"type": "object", "properties": {
    "entity_id": {"type": "string"}, "name": {"type": "string"},
    "source": {"type": "string", "description": "\"own\", or the URL of the federation "
                                                "aggregate it came from"}}}
DETAIL = {"type": "object", "properties": {
    **BRIEF["properties"],
    "details": {"type": "object", "description": "what `um2fa sp show` prints: label -> "
                                                 "value", "additionalProperties": {
                                                     "type": "string"}}}}


def _detail(ctx, sp: ServiceProvider) -> dict[str, Any]:
    return {"entity_id": sp.entity_id, "name": sp.name, "source": sps.source(ctx, sp),
            "details": dict(sp_summary.describe(ctx, sp))}


def _found(ctx, entity_id: str) -> ServiceProvider:
    sp = sps.lookup(ctx, entity_id)
    if sp is None:
        raise ApiError(404, f"no such service provider: {entity_id}")
    return sp


@bp.get("/service-providers")
@requires(ACTION)
@documented("The registered service providers, by entity ID", query=params.PAGING_QUERY,
            statuses=(400,), returns={"type": "object", "properties": {
                "service_providers": {"type": "array", "items": BRIEF},
                "total": {"type": "integer"}, "offset": {"type": "integer"},
                "limit": {"type": "integer"}}})
def service_providers_list():
    offset, limit = params.paging()
    rows, total = sps.listing(core.context(), offset, limit)
    return jsonify({"service_providers": [
        {"entity_id": sp.entity_id, "name": sp.name, "source": source} for sp, source in rows],
        "total": total, "offset": offset, "limit": limit})


@bp.post("/service-providers")
@requires(ACTION)
@documented("Register a service provider from its SAML metadata", statuses=(400,),
            returns=DETAIL, body={"type": "object", "required": ["metadata"], "properties": {
                "metadata": {"type": "string", "description": "the md:EntityDescriptor XML"},
                "replace": {"type": "boolean", "description": "update an SP already "
                                                              "registered (default false)"}}})
def service_provider_add():
    # the metadata XML inside: up to the SAML parser's own bound, JSON escaping included
    data = params.json_body(2 * MAX_XML_BYTES)
    xml, replace = params.required_text(data, "metadata"), params.flag(data, "replace", False)
    ctx = core.context()
    try:
        sp, _ = register_metadata(ctx, api_origin(), xml, replace=replace)
    except (SamlError, sps.ServiceProviderError) as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify(_detail(ctx, sp))


@bp.get("/service-providers/<path:entity_id>")
@requires(ACTION)
@documented("What one service provider asks for and receives", statuses=(404,),
            returns=DETAIL)
def service_provider_show(entity_id: str):
    ctx = core.context()
    return jsonify(_detail(ctx, _found(ctx, entity_id)))


SETTINGS = ("release", "encrypt", "email_nameid")
RELEASE_TYPE = 'release must be a list of attribute names or "default"'


def _options(data: dict[str, Any]) -> sps.Options:
    """What a PATCH asks to change, read strictly; the attribute names resolved as
    `um2fa sp set --release` resolves them."""
    params.change_fields(data, SETTINGS)
    options = sps.Options(encrypt=params.optional_flag(data, "encrypt"),
                          email_nameid=params.optional_flag(data, "email_nameid"))
    if "release" in data:
        release = data["release"]
        if release == "default":
            options.default_release = True
        elif isinstance(release, list) and all(isinstance(n, str) for n in release):
            try:
                options.release = attribute_release.resolve(release)
            except attribute_release.ReleaseError as exc:
                raise ApiError(400, str(exc)) from exc
        else:
            raise ApiError(400, RELEASE_TYPE)
    return options


@bp.patch("/service-providers/<path:entity_id>")
@requires(ACTION)
@documented("Change what one service provider receives: its release policy and switches "
            "(as `um2fa sp set`); a field left out stays as it is", statuses=(400, 404),
            returns=DETAIL, body={"type": "object", "minProperties": 1,
                                  "additionalProperties": False, "properties": {
                "release": {"oneOf": [
                    {"type": "array", "items": {"type": "string"},
                     "description": "only these attributes (friendly or urn:oid names; [] "
                                    "releases none)"},
                    {"type": "string", "enum": ["default"],
                     "description": "back to the default policy"}]},
                "encrypt": {"type": "boolean", "description": "encrypt assertions to an SP "
                                                             "with an encryption key"},
                "email_nameid": {"type": "boolean", "description": "may receive the email "
                                                                  "address as NameID"}}})
def service_provider_settings(entity_id: str):
    ctx = core.context()
    sp = _found(ctx, entity_id)
    options = _options(params.json_body())
    sp = sps.set_options(ctx, api_origin(), sp.entity_id, options)
    return jsonify(_detail(ctx, sp))


@bp.delete("/service-providers/<path:entity_id>")
@requires(ACTION)
@documented("Remove a service provider (not one a federation aggregate brought: 400)",
            statuses=(400, 404), returns={"type": "object", "properties": {
                "removed": {"type": "string"}}})
def service_provider_remove(entity_id: str):
    ctx = core.context()
    sp = _found(ctx, entity_id)
    try:
        sps.remove(ctx, api_origin(), sp.entity_id)
    except sps.ServiceProviderError as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify({"removed": sp.entity_id})
