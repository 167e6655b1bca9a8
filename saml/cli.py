"""`um2fa sp …` and `um2fa saml …`: the service-provider registry and the IdP's keys."""

from __future__ import annotations

import click
from flask import current_app
from flask.cli import with_appcontext

from app.cli.common import CLI, core_session
from app.core import service_providers as sps
from saml import keys as saml_keys
from saml.sp_metadata import parse_sp_metadata
from saml.xml import SamlError


@click.group("sp", help="SAML service providers allowed to use the SSO door.")
def sp_group() -> None: ...


@sp_group.command("add")
@click.option("--metadata", "metadata_file", required=True, type=click.File("rb"),
              help="The SP's SAML metadata (XML).")
@click.option("--replace", is_flag=True, help="Update an SP that is already registered.")
@with_appcontext
def sp_add(metadata_file, replace) -> None:
    raw = metadata_file.read()
    try:
        meta = parse_sp_metadata(raw)
    except SamlError as exc:
        raise click.ClickException(f"{metadata_file.name}: {exc}") from exc
    with core_session() as ctx:
        try:
            sps.register(ctx, CLI, meta.registration(raw.decode("utf-8", "replace")),
                         replace=replace)
        except sps.ServiceProviderError as exc:
            raise click.ClickException(str(exc)) from exc
    click.echo(f"registered {meta.entity_id} ({len(meta.acs_urls)} ACS URL(s)"
               f"{', signs its requests' if meta.authn_requests_signed else ''})")


@sp_group.command("list")
@with_appcontext
def sp_list() -> None:
    with core_session() as ctx:
        for sp in sps.all_providers(ctx):
            signed = "signed requests" if sp.sign_requests else ""
            click.echo("\t".join([sp.entity_id, sp.name, ", ".join(sps.acs_urls(sp)), signed]))


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
@with_appcontext
def saml_rotate_key() -> None:
    """Add a new signing key. Both are published; the new one signs from the next start."""
    instance = current_app.config["UM2FA"].instance_dir
    saml_keys.load_all(instance, _entity_id())  # the first key exists before the second
    key = saml_keys.generate(instance, _entity_id())
    click.echo(f"signing key {key.number} added; metadata now publishes "
               f"{len(saml_keys.load_all(instance, _entity_id()))} certificate(s). "
               "Restart the service to sign with it.")


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
    keys = saml_keys.load_all(settings.instance_dir, _entity_id())
    sp = upstream.ServiceProvider(base_url=_entity_id().removesuffix("/saml/metadata"),
                                  key=keys[-1],
                                  username_attribute=settings.sso_upstream_username_attribute,
                                  previous_cert=keys[-2].cert_pem if len(keys) > 1 else "")
    click.echo(upstream.sp_metadata(sp))
