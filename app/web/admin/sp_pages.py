"""Console pages for SAML service providers, role admin: the list (paged), adding one from its
metadata (a file or pasted XML; parsed and registered as `um2fa sp add --metadata` does), what
one asks for and receives (`um2fa sp show`'s lines), its release policy and switches (`um2fa sp
set`'s), removing one."""

from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from app.core import attribute_release, sp_summary
from app.core import service_providers as sps
from app.extensions import core
from app.i18n import N_, _
from app.i18n.refusal import said
from app.web.admin.base import bp, confirm_then, console_origin, menu, requires
from saml.sp_metadata import register as register_metadata
from saml.xml import SamlError

ACTION = "service_providers.manage"
PAGE_SIZE = 100

menu("admin.service_providers", N_("Service providers"), ACTION)


def _page_number() -> int:
    raw = request.args.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 6 else 1


@bp.get("/service-providers", endpoint="service_providers")
@requires(ACTION)
def service_providers_page():
    page = max(_page_number(), 1)
    rows, total = sps.listing(core.context(), (page - 1) * PAGE_SIZE, PAGE_SIZE)
    pages = max((total + PAGE_SIZE - 1) // PAGE_SIZE, 1)
    return render_template("admin/service_providers.html", rows=rows, total=total, page=page,
                           pages=pages, own=sps.OWN)


def _submitted_metadata() -> str:
    """The uploaded file's XML if one was chosen, else the pasted XML."""
    upload = request.files.get("metadata_file")
    if upload is not None and upload.filename:
        return upload.read().decode("utf-8", "replace")
    return request.form.get("metadata_xml", "")


@bp.route("/service-providers/add", methods=["GET", "POST"])
@requires(ACTION)
def service_provider_add():
    if request.method == "GET":
        return render_template("admin/service_provider_add.html", xml="", replace=False)
    xml, replace = _submitted_metadata(), bool(request.form.get("replace"))
    if not xml.strip():
        error = _("Choose a metadata file or paste the SP's metadata XML.")
    else:
        try:
            sp, _created = register_metadata(core.context(), console_origin(), xml, replace=replace)
        except (SamlError, sps.ServiceProviderError) as exc:
            error = said(exc)
        else:
            flash(_("Registered %(entity_id)s.", entity_id=sp.entity_id))
            return redirect(url_for("admin.service_provider", sp_id=sp.id))
    # the XML stays in the form (a file's too), so nothing is lost
    return render_template("admin/service_provider_add.html", xml=xml, replace=replace,
                           error=error), 400


def _found(sp_id: int):
    ctx = core.context()
    sp = sps.get(ctx, sp_id)
    if sp is None:
        abort(404, _("There is no such service provider."))
    return ctx, sp


def _sp_page(ctx, sp, error: str = "", status: int = 200):
    """One SP's page: its facts, and the settings form with what it receives now ticked."""
    return render_template("admin/service_provider.html", sp=sp,
                           facts=sp_summary.in_words(sp_summary.describe(ctx, sp)),
                           own=sp.aggregate_id is None,
                           catalog=attribute_release.CATALOG.values(),
                           released=attribute_release.policy(sp), error=error), status


@bp.get("/service-providers/<int:sp_id>")
@requires(ACTION)
def service_provider(sp_id: int):
    ctx, sp = _found(sp_id)
    return _sp_page(ctx, sp)


def _submitted_options() -> sps.Options:
    """The settings form as `um2fa sp set` options. The form always holds both switches (an
    unticked box is not sent: off). ValueError (ReleaseError for an unknown attribute name)
    with a message to show."""
    options = sps.Options(encrypt=bool(request.form.get("encrypt")),
                          email_nameid=bool(request.form.get("email_nameid")))
    choice = request.form.get("release")
    if choice == "default":
        options.default_release = True
    elif choice == "list":
        options.release = attribute_release.resolve(request.form.getlist("attribute"))
    else:
        raise ValueError(_("Choose the default policy or only the attributes ticked."))
    return options


@bp.post("/service-providers/<int:sp_id>/settings")
@requires(ACTION)
def service_provider_settings(sp_id: int):
    ctx, sp = _found(sp_id)
    try:
        options = _submitted_options()
    except ValueError as exc:
        return _sp_page(ctx, sp, error=said(exc), status=400)
    sps.set_options(ctx, console_origin(), sp.entity_id, options)
    flash(_("Saved the settings of %(name)s.", name=sp.name))
    return redirect(url_for("admin.service_provider", sp_id=sp_id))


@bp.route("/service-providers/<int:sp_id>/remove", methods=["GET", "POST"])
@requires(ACTION)
def service_provider_remove(sp_id: int):
    ctx, sp = _found(sp_id)
    return confirm_then(
        title=_("Remove %(name)s?", name=sp.name),
        back=url_for("admin.service_provider", sp_id=sp_id),
        question=_("%(entity_id)s will no longer get assertions from UM 2FA.",
                   entity_id=sp.entity_id),
        act=lambda: sps.remove(ctx, console_origin(), sp.entity_id),
        done=_("Removed %(entity_id)s.", entity_id=sp.entity_id),
        then=url_for("admin.service_providers"),
        refused=(sps.ServiceProviderError,))
