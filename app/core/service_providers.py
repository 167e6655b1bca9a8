"""The registry of SAML service providers: who may ask us for an assertion, and where to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import select

from app.core import audit
from app.core.context import Context, Origin
from app.models import ServiceProvider


class ServiceProviderError(ValueError):
    """The message is safe to show."""


@dataclass
class Registration:
    entity_id: str
    acs_urls: list[str]
    slo_url: str = ""
    certs: list[str] = field(default_factory=list)
    sign_requests: bool = False
    nameid_formats: list[str] = field(default_factory=list)
    name: str = ""
    metadata_xml: str = ""
    requested_attributes: list[dict] = field(default_factory=list)
    entity_categories: list[str] = field(default_factory=list)
    subject_id_req: str = ""
    encryption_certs: list[str] = field(default_factory=list)
    encryption_methods: list[str] = field(default_factory=list)


def find(ctx: Context, entity_id: str) -> ServiceProvider | None:
    return ctx.db.scalar(select(ServiceProvider).where(ServiceProvider.entity_id == entity_id))


def all_providers(ctx: Context) -> list[ServiceProvider]:
    return list(ctx.db.scalars(select(ServiceProvider).order_by(ServiceProvider.entity_id)))


def register(ctx: Context, origin: Origin, reg: Registration, *,
             replace: bool = False) -> ServiceProvider:
    for url in reg.acs_urls + ([reg.slo_url] if reg.slo_url else []):
        if not url.startswith(("https://", "http://")):
            raise ServiceProviderError(f"not an http(s) URL in the metadata: {url}")
    sp = find(ctx, reg.entity_id)
    if sp is not None and not replace:
        raise ServiceProviderError(f"service provider {reg.entity_id} is already registered "
                                   "(use --replace to update it)")
    if sp is None:
        sp = ServiceProvider(entity_id=reg.entity_id, created_at=ctx.now())
        ctx.db.add(sp)
    sp.name = reg.name or reg.entity_id
    sp.acs_urls = json.dumps(reg.acs_urls)
    sp.slo_url = reg.slo_url
    sp.certs = json.dumps(reg.certs)
    sp.sign_requests = reg.sign_requests
    sp.nameid_formats = json.dumps(reg.nameid_formats)
    sp.metadata_xml = reg.metadata_xml
    sp.requested_attributes = json.dumps(reg.requested_attributes)
    sp.entity_categories = json.dumps(reg.entity_categories)
    sp.subject_id_req = reg.subject_id_req
    sp.encryption_certs = json.dumps(reg.encryption_certs)
    sp.encryption_methods = json.dumps(reg.encryption_methods)
    ctx.db.flush()
    audit.record(ctx, origin, "sp.register", "ok", detail=reg.entity_id)
    return sp


def remove(ctx: Context, origin: Origin, entity_id: str) -> None:
    sp = find(ctx, entity_id)
    if sp is None:
        raise ServiceProviderError(f"no such service provider: {entity_id}")
    ctx.db.delete(sp)
    audit.record(ctx, origin, "sp.remove", "ok", detail=entity_id)


def acs_urls(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.acs_urls)


def certs(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.certs)


def nameid_formats(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.nameid_formats)


def choose_acs(sp: ServiceProvider, requested: str) -> str:
    """The requested ACS URL if the SP registered it, else the SP's default one."""
    urls = acs_urls(sp)
    if not requested:
        return urls[0]
    if requested not in urls:
        raise ServiceProviderError("The service asked for its answer to go to an address it "
                                   "has not registered.")
    return requested
