"""The registry of SAML service providers: who may ask us for an assertion, and where to."""

from __future__ import annotations

import json
from dataclasses import dataclass, field

from sqlalchemy import func, select

from app.core import audit
from app.core.context import Context, Origin
from app.i18n import N_
from app.i18n.refusal import Refusal
from app.models import MetadataAggregate, ServiceProvider


class ServiceProviderError(Refusal):
    """The message is safe to show (English in the audit and the CLI, translated on a page:
    app/i18n/refusal.py)."""


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
    """The SP that may be answered now: registered, and, when it came from a federation's
    metadata aggregate, that aggregate still valid (its validUntil not passed without a
    successful refresh). One SELECT with the aggregate's validUntil alongside."""
    row = ctx.db.execute(
        select(ServiceProvider, MetadataAggregate.valid_until)
        .outerjoin(MetadataAggregate, ServiceProvider.aggregate_id == MetadataAggregate.id)
        .where(ServiceProvider.entity_id == entity_id)).first()
    if row is None:
        return None
    sp, valid_until = row
    if sp.aggregate_id is not None and (valid_until is None or valid_until <= ctx.now()):
        return None
    return sp


def lookup(ctx: Context, entity_id: str) -> ServiceProvider | None:
    """The registered SP, usable or not (the registry's own bookkeeping)."""
    return ctx.db.scalar(select(ServiceProvider).where(ServiceProvider.entity_id == entity_id))


def all_providers(ctx: Context) -> list[ServiceProvider]:
    return list(ctx.db.scalars(select(ServiceProvider).order_by(ServiceProvider.entity_id)))


def get(ctx: Context, sp_id: int) -> ServiceProvider | None:
    return ctx.db.get(ServiceProvider, sp_id)


OWN = "own"


def listing(ctx: Context, offset: int = 0,
            limit: int = 100) -> tuple[list[tuple[ServiceProvider, str]], int]:
    """One page of the registered SPs by entity ID, each with its source ("own": registered on
    its own, else the URL of the aggregate that brought it), and how many there are."""
    total = ctx.db.scalar(select(func.count()).select_from(ServiceProvider)) or 0
    rows = ctx.db.execute(
        select(ServiceProvider, MetadataAggregate.url)
        .outerjoin(MetadataAggregate, ServiceProvider.aggregate_id == MetadataAggregate.id)
        .order_by(ServiceProvider.entity_id).offset(max(offset, 0)).limit(max(limit, 0))).all()
    return [(sp, url or OWN) for sp, url in rows], total


def source(ctx: Context, sp: ServiceProvider) -> str:
    """"own", or the URL of the aggregate the SP came from."""
    if sp.aggregate_id is None:
        return OWN
    aggregate = ctx.db.get(MetadataAggregate, sp.aggregate_id)
    return aggregate.url if aggregate is not None else OWN


def register(ctx: Context, origin: Origin, reg: Registration, *,
             replace: bool = False) -> ServiceProvider:
    """Register an SP on its own (its metadata file). With `replace`, an SP that came from an
    aggregate is taken over: refreshing the aggregate leaves it alone from then on."""
    check(reg)
    sp = lookup(ctx, reg.entity_id)
    if sp is not None and not replace:
        raise ServiceProviderError(N_("service provider %(entity_id)s is already registered (to "
                                     "update it: --replace on the command line, \"replace\" in "
                                     "the console and the API)"), entity_id=reg.entity_id)
    if sp is None:
        sp = ServiceProvider(entity_id=reg.entity_id, created_at=ctx.now())
        ctx.db.add(sp)
    sp.aggregate_id = None
    fill(sp, reg)
    ctx.db.flush()
    audit.record(ctx, origin, "sp.register", "ok", detail=reg.entity_id)
    return sp


def check(reg: Registration) -> None:
    """What every registration needs, on its own or from an aggregate: http(s) URLs only."""
    for url in reg.acs_urls + ([reg.slo_url] if reg.slo_url else []):
        if not url.startswith(("https://", "http://")):
            raise ServiceProviderError(N_("not an http(s) URL in the metadata: %(url)s"), url=url)


def fill(sp: ServiceProvider, reg: Registration) -> None:
    """Copy what the metadata says onto `sp`; the operator's settings for it (release,
    encrypt_assertions, allow_email_nameid) are left as they are."""
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


def remove(ctx: Context, origin: Origin, entity_id: str) -> None:
    sp = lookup(ctx, entity_id)
    if sp is None:
        raise ServiceProviderError(N_("no such service provider: %(entity_id)s"),
                                     entity_id=entity_id)
    if sp.aggregate_id is not None:
        raise ServiceProviderError(N_("service provider %(entity_id)s comes from a federation's "
                                     "metadata aggregate and would come back with its next "
                                     "refresh: filter the aggregate by category, or remove the "
                                     "aggregate (um2fa sp aggregates)"), entity_id=entity_id)
    ctx.db.delete(sp)
    audit.record(ctx, origin, "sp.remove", "ok", detail=entity_id)


def acs_urls(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.acs_urls)


def certs(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.certs)


def nameid_formats(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.nameid_formats)


def requested_attributes(sp: ServiceProvider) -> list[dict]:
    return json.loads(sp.requested_attributes or "[]")


def entity_categories(sp: ServiceProvider) -> list[str]:
    return json.loads(sp.entity_categories or "[]")


def release_policy(sp: ServiceProvider) -> list[str] | None:
    """The operator's list of attributes for this SP, or None for the default policy."""
    return None if sp.release is None else json.loads(sp.release)


@dataclass
class Options:
    """An operator's per-SP settings (`um2fa sp set`); None leaves one as it is."""

    release: list[str] | None = None
    default_release: bool = False
    encrypt: bool | None = None
    email_nameid: bool | None = None


def set_options(ctx: Context, origin: Origin, entity_id: str, options: Options) -> ServiceProvider:
    """`options.release`: friendly names (attribute_release.resolve checks an operator's)."""
    sp = lookup(ctx, entity_id)
    if sp is None:
        raise ServiceProviderError(N_("no such service provider: %(entity_id)s"),
                                     entity_id=entity_id)
    changed = []
    if options.release is not None:
        sp.release = json.dumps(options.release)
        changed.append(f"release={sp.release}")
    elif options.default_release:
        sp.release = None
        changed.append("release=default")
    if options.encrypt is not None:
        sp.encrypt_assertions = options.encrypt
        changed.append(f"encrypt={options.encrypt}")
    if options.email_nameid is not None:
        sp.allow_email_nameid = options.email_nameid
        changed.append(f"email_nameid={options.email_nameid}")
    ctx.db.flush()
    audit.record(ctx, origin, "sp.settings", "ok", detail=f"{entity_id} {' '.join(changed)}"[:200])
    return sp


def encryption_certs(sp: ServiceProvider) -> list[str]:
    """The SP's encryption certificates (base64 DER), in its metadata's order."""
    return json.loads(sp.encryption_certs or "[]")


def encryption_methods(sp: ServiceProvider) -> list[str]:
    """The EncryptionMethod algorithm URIs its metadata lists (often none)."""
    return json.loads(sp.encryption_methods or "[]")


def choose_acs(sp: ServiceProvider, requested: str) -> str:
    """The requested ACS URL if the SP registered it, else the SP's default one."""
    urls = acs_urls(sp)
    if not requested:
        return urls[0]
    if requested not in urls:
        raise ServiceProviderError(N_("The service asked for its answer to go to an address it "
                                     "has not registered."))
    return requested
