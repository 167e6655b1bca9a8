"""`um2fa sp …` and `um2fa saml …`: the service-provider registry and the IdP's keys."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session
from app.core import aggregates, attribute_release, sp_summary
from app.core import service_providers as sps
from saml import keys as saml_keys
from saml.aggregate import load as load_aggregate
from saml.aggregate import read_certificate
from saml.aggregate_refresh import refresh
from saml.sp_metadata import register as register_metadata
from saml.xml import SamlError

_DETAIL_LINES = 20


@click.group("sp", help="SAML service providers allowed to use the SSO door.")
def sp_group() -> None: ...


@sp_group.command("add")
@click.option("--metadata", "metadata_file", type=click.File("rb"),
              help="The SP's SAML metadata (XML).")
@click.option("--aggregate", "aggregate_url", metavar="URL",
              help="A federation's signed metadata aggregate (http or https): every SP in it.")
@click.option("--cert", "cert_file", type=click.File("rb"),
              help="With --aggregate: the PEM certificate the aggregate must be signed with.")
@click.option("--category", "categories", multiple=True, metavar="URI",
              help="With --aggregate: keep only SPs with this entity category (repeatable).")
@click.option("--replace", is_flag=True, help="Update an SP (or aggregate) already registered.")
@with_appcontext
def sp_add(metadata_file, aggregate_url, cert_file, categories, replace) -> None:
    """Register one SP (--metadata FILE), or a federation's SPs (--aggregate URL --cert FILE)."""
    if bool(metadata_file) == bool(aggregate_url):
        raise click.UsageError("give either --metadata FILE or --aggregate URL --cert FILE")
    if aggregate_url:
        if cert_file is None:
            raise click.UsageError("--aggregate needs --cert FILE (the federation's signing "
                                   "certificate, PEM)")
        _add_aggregate(aggregate_url, cert_file, list(categories), replace)
        return
    if cert_file or categories:
        raise click.UsageError("--cert and --category go with --aggregate")
    with core_session() as ctx:
        try:
            _, meta = register_metadata(ctx, CLI, metadata_file.read(), replace=replace)
        except SamlError as exc:
            raise click.ClickException(f"{metadata_file.name}: {exc}") from exc
        except sps.ServiceProviderError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"registered {meta.entity_id} ({len(meta.acs_urls)} ACS URL(s)"
               f"{', signs its requests' if meta.authn_requests_signed else ''})")


def _add_aggregate(url: str, cert_file, categories: list[str], replace: bool) -> None:
    try:
        cert_pem = read_certificate(cert_file.read())
    except SamlError as exc:
        raise click.ClickException(f"{cert_file.name}: {exc}") from exc
    with core_session() as ctx:
        try:
            loaded = load_aggregate(url, cert_pem, ctx.now())
            report = aggregates.add(ctx, CLI, url, cert_pem, categories, loaded,
                                    replace=replace)
        except SamlError as exc:
            raise click.ClickException(f"{url}: refused, nothing changed: {exc}") from exc
        except aggregates.AggregateError as exc:
            raise click.ClickException(str(exc)) from exc
    _echo_report(report)


def _echo_report(report: aggregates.Report) -> None:
    click.echo(report.summary())
    for line in report.details()[:_DETAIL_LINES]:
        click.echo(f"  {line}")
    if len(report.details()) > _DETAIL_LINES:
        click.echo(f"  … and {len(report.details()) - _DETAIL_LINES} more")


@sp_group.command("refresh")
@click.option("--all", "every", is_flag=True, help="Every aggregate, not only the due ones.")
@with_appcontext
def sp_refresh(every) -> None:
    """Read the federation aggregates that are due again (for cron; `um2fa serve` does it too)."""
    outcomes = refresh(CLI, every=every)
    for outcome in outcomes:
        if outcome.report is not None:
            _echo_report(outcome.report)
        else:
            click.echo(f"{outcome.url}: refused, nothing changed: {outcome.error}", err=True)
    if not outcomes:
        click.echo("no aggregate is due")
    if any(o.error for o in outcomes):
        raise SystemExit(1)


@sp_group.command("aggregates")
@with_appcontext
def sp_aggregates() -> None:
    """The federation aggregates: URL, SPs, valid until, last refresh, last error."""
    with core_session() as ctx:
        for aggregate, count in aggregates.listing(ctx):
            click.echo("\t".join([
                aggregate.url, f"{count} SPs", f"valid until {_when(aggregate.valid_until)}",
                f"refreshed {_when(aggregate.refreshed_at)}",
                f"next {_when(aggregate.next_refresh_at)}",
                aggregate.last_error or "ok"]))


@sp_group.command("remove-aggregate")
@click.argument("url")
@with_appcontext
def sp_remove_aggregate(url) -> None:
    """Remove a federation aggregate and every SP registered from it."""
    with core_session() as ctx:
        try:
            count = aggregates.remove(ctx, CLI, url)
        except aggregates.AggregateError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {url} and its {count} SP(s)")


def _when(moment) -> str:
    return f"{moment:%Y-%m-%d %H:%M:%S}Z" if moment is not None else "never"


@sp_group.command("list")
@with_appcontext
def sp_list() -> None:
    with core_session() as ctx:
        for sp in sps.all_providers(ctx):
            signed = "signed requests" if sp.sign_requests else ""
            click.echo("\t".join([sp.entity_id, sp.name, ", ".join(sps.acs_urls(sp)), signed]))


@sp_group.command("set")
@click.argument("entity_id")
@click.option("--release", "release", metavar="ATTRIBUTES",
              help="Release exactly these attributes (comma-separated friendly or urn:oid "
                   "names) instead of the default policy.")
@click.option("--default-release", is_flag=True,
              help="Back to the default policy: pairwise-id, what the SP's metadata requests, "
                   "the R&S bundle for R&S SPs.")
@click.option("--encrypt/--no-encrypt", default=None,
              help="Encrypt assertions to the SP's encryption key (default: on).")
@click.option("--email-nameid/--no-email-nameid", default=None,
              help="May the SP receive the email address as its NameID (default: off).")
@with_appcontext
def sp_set(entity_id, release, default_release, encrypt, email_nameid) -> None:
    """Change what one service provider receives."""
    if release is not None and default_release:
        raise click.ClickException("give --release or --default-release, not both")
    try:
        names = None if release is None else attribute_release.resolve(
            [n.strip() for n in release.split(",") if n.strip()])
    except attribute_release.ReleaseError as exc:
        raise click.ClickException(str(exc)) from exc
    with core_session() as ctx:
        try:
            sp = sps.set_options(ctx, CLI, entity_id, sps.Options(
                release=names, default_release=default_release, encrypt=encrypt,
                email_nameid=email_nameid))
        except sps.ServiceProviderError as exc:
            raise click.ClickException(str(exc)) from exc
        _show(ctx, sp)


@sp_group.command("show")
@click.argument("entity_id")
@with_appcontext
def sp_show(entity_id) -> None:
    """What one service provider asks for and receives."""
    with core_session() as ctx:
        sp = sps.lookup(ctx, entity_id)
        if sp is None:
            raise click.ClickException(f"no such service provider: {entity_id}")
        _show(ctx, sp)


def _show(ctx, sp) -> None:
    for label, value in sp_summary.describe(ctx, sp):
        click.echo(f"{label}: {value}")


@sp_group.command("remove")
@click.argument("entity_id")
@with_appcontext
def sp_remove(entity_id) -> None:
    with core_session() as ctx:
        try:
            sps.remove(ctx, CLI, entity_id)
        except sps.ServiceProviderError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"removed {entity_id}")


@click.group("saml", help="The SAML identity provider's keys and metadata.")
def saml_group() -> None: ...


def _entity_id() -> str:
    base = current_app.config["UM2FA"].base_url.rstrip("/")
    if not base:
        raise click.ClickException("set UM2FA_BASE_URL (e.g. https://2fa.example.edu) first")
    return base + "/saml/metadata"


@saml_group.command("rotate-key")
@click.option("--encryption", is_flag=True,
              help="Add an encryption key (what SPs encrypt NameIDs to) instead of a signing "
                   "key.")
@with_appcontext
def saml_rotate_key(encryption) -> None:
    """Add a new signing key (both are published; the new one signs from the next start), or
    with --encryption a new encryption key (published first from the next start; every one
    still decrypts)."""
    settings = current_app.config["UM2FA"]
    instance = settings.instance_dir
    prefix = saml_keys.ENCRYPTION if encryption else saml_keys.SIGNING
    # The first key exists before the second; with a shared database this node must have the
    # service's (MissingKeys otherwise): a rotation adds to the keys every node shares.
    saml_keys.load_all(instance, _entity_id(), prefix, make=settings.makes_keys)
    key = saml_keys.generate(instance, _entity_id(), prefix)
    count = len(saml_keys.load_all(instance, _entity_id(), prefix, make=False))
    if encryption:
        click.echo(f"encryption key {key.number} added; after a restart the metadata publishes "
                   f"{count} encryption certificate(s), the new one first, and every one "
                   "still decrypts.")
    else:
        click.echo(f"signing key {key.number} added; metadata now publishes {count} "
                   "certificate(s). Restart the service to sign with it.")


@saml_group.command("metadata")
@click.option("--unsigned", is_flag=True)
@with_appcontext
def saml_metadata(unsigned) -> None:
    """Print the IdP metadata, for registering UM 2FA with a service provider."""
    base = _entity_id().removesuffix("/saml/metadata")
    with current_app.test_request_context("/saml/metadata", base_url=base,
                                          query_string={"signed": "0" if unsigned else "1"}):
        from app.web.sso import metadata

        click.echo(metadata().get_data(as_text=True))


@saml_group.command("upstream-metadata")
@with_appcontext
def saml_upstream_metadata() -> None:
    """Print our SP metadata for the upstream IdP (IdP-proxy mode, docs/saml.md)."""
    from saml import upstream

    settings = current_app.config["UM2FA"]
    keys = saml_keys.load_all(settings.instance_dir, _entity_id(), make=settings.makes_keys)
    click.echo(upstream.sp_metadata(upstream.ServiceProvider.from_settings(settings, keys)))
