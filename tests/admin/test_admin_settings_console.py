"""The administrators' console pages for the service's own settings (issue 15): RADIUS
clients, service providers, administrators, API tokens, the effective settings."""

from __future__ import annotations

import dataclasses
import html
import io
import re

import pytest

from app.core import admins, attribute_release, radius_clients
from app.core import service_providers as sps
from app.core.attribute_release import CATALOG
from tests.conftest import add_totp_device, audit_rows, committed, csrf_token, make_user
from tests.helpers.console import signed_in_console
from tests.helpers.sso import IDP, make_sp, sign_in_through_prompt
from tests.peers.saml_sp import TestSP


@pytest.fixture
def settings_overrides():
    # base_url: the SSO door answers Flask's test client (the release policy's sign-ins)
    return {"campus_networks": "127.0.0.0/8", "base_url": IDP}


@pytest.fixture
def console(app, clock):
    return signed_in_console(app, clock, admins.ADMIN)


def send(client, url: str, data: dict | None = None, **kwargs):
    return client.post(url, data={"csrf_token": csrf_token(client, "/admin/"), **(data or {})},
                       **kwargs)


def last_audit(app, action: str):
    rows = audit_rows(app, action)
    assert rows, f"no {action} audited"
    return rows[-1]


# --- RADIUS clients ------------------------------------------------------------------------

def test_a_radius_client_is_added_and_its_secret_shown_once(app, console):
    answer = send(console, "/admin/radius-clients",
                  {"name": "vpn1", "address": "10.0.0.5", "mode": "challenge"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    with committed(app) as c:
        secret = radius_clients.load(c)[0].secret.decode()
    assert f'id="radius-secret">{secret}<' in page and "shown this once" in page
    listing = console.get("/admin/radius-clients").get_data(as_text=True)
    assert "vpn1" in listing and "10.0.0.5/32" in listing and secret not in listing
    row = last_audit(app, "radius_client.add")
    assert (row.door, row.actor) == ("admin", "boss") and secret not in row.detail


def test_a_typed_secret_is_taken(app, console):
    answer = send(console, "/admin/radius-clients",
                  {"name": "vpn2", "address": "10.0.1.0/24", "mode": "append",
                   "secret": "a-typed-secret-of-24-chars"})
    assert answer.status_code == 200
    with committed(app) as c:
        assert radius_clients.load(c)[0].secret == b"a-typed-secret-of-24-chars"


@pytest.mark.parametrize("data, message", [
    ({"name": "vpn1", "address": "not-an-address", "mode": "append"}, "not an address"),
    ({"name": "bad name!", "address": "10.0.0.5", "mode": "append"}, "client name"),
    ({"name": "vpn1", "address": "10.0.0.5", "mode": "sideways"}, "mode must be one of"),
    ({"name": "vpn1", "address": "10.0.0.5", "mode": "append", "secret": "short"},
     "shared secret must have"),
])
def test_bad_radius_input_keeps_the_form(app, console, data, message):
    answer = send(console, "/admin/radius-clients", data)
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and message in html.unescape(page)
    assert f'value="{html.escape(data["name"])}"' in page
    assert f'value="{data["address"]}"' in page
    assert not audit_rows(app, "radius_client.add")


def test_a_radius_clients_mode_changes_and_it_is_removed(app, console):
    send(console, "/admin/radius-clients", {"name": "vpn1", "address": "10.0.0.5",
                                            "mode": "append"})
    answer = send(console, "/admin/radius-clients/vpn1/mode", {"mode": "second-factor"})
    assert answer.status_code == 302
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1").mode == "second-factor"
    assert last_audit(app, "radius_client.mode").actor == "boss"
    bad = send(console, "/admin/radius-clients/vpn1/mode", {"mode": "sideways"})
    assert bad.status_code == 400 and "mode must be one of" in bad.get_data(as_text=True)
    assert send(console, "/admin/radius-clients/nope/mode", {"mode": "append"}).status_code \
        == 404
    confirm = console.get("/admin/radius-clients/vpn1/remove")
    assert confirm.status_code == 200 and "Remove the RADIUS client vpn1?" in \
        html.unescape(confirm.get_data(as_text=True))
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1") is not None  # a GET removes nothing
    assert send(console, "/admin/radius-clients/vpn1/remove").status_code == 302
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1") is None
    assert last_audit(app, "radius_client.remove").actor == "boss"
    assert console.get("/admin/radius-clients/vpn1/remove").status_code == 404



def test_a_radius_clients_reply_message_language_is_chosen_shown_and_changed(app, console):
    form = console.get("/admin/radius-clients").get_data(as_text=True)
    assert '<select id="rc-language" name="language">' in form
    assert '<option value="" selected>Default (English)</option>' in form
    assert '<option value="zh_Hant">繁體中文</option>' in form
    assert '<option value="pt">Português</option>' in form
    answer = send(console, "/admin/radius-clients", {"name": "vpn1", "address": "10.0.0.5",
                                                     "mode": "append", "language": "pt"})
    assert answer.status_code == 200
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1").language == "pt"
        assert radius_clients.load(c)[0].language == "pt"
    assert "language=pt" in last_audit(app, "radius_client.add").detail
    listing = console.get("/admin/radius-clients").get_data(as_text=True)
    row = listing.split('id="radius-client-vpn1"')[1].split("</tr>")[0]
    assert '<option value="pt" selected>Português</option>' in row
    # changed to Chinese, then back to the default
    answer = send(console, "/admin/radius-clients/vpn1/language", {"language": "zh_Hant"})
    assert answer.status_code == 302
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1").language == "zh_Hant"
    changed = last_audit(app, "radius_client.language")
    assert changed.actor == "boss" and changed.detail == "vpn1: pt -> zh_Hant"
    assert "vpn1 now answers in 繁體中文." in console.get("/admin/radius-clients").get_data(
        as_text=True)
    assert send(console, "/admin/radius-clients/vpn1/language", {"language": ""}).status_code \
        == 302
    with committed(app) as c:
        assert radius_clients.find(c, "vpn1").language is None
    assert last_audit(app, "radius_client.language").detail == "vpn1: zh_Hant -> default"
    # a language not offered is refused with the page and its message; an unknown client: 404
    bad = send(console, "/admin/radius-clients/vpn1/language", {"language": "fr"})
    assert bad.status_code == 400 and "the language must be one of" in bad.get_data(as_text=True)
    bad = send(console, "/admin/radius-clients", {"name": "vpn2", "address": "10.0.0.6",
                                                  "mode": "append", "language": "xx"})
    assert bad.status_code == 400 and "the language must be one of" in bad.get_data(as_text=True)
    assert send(console, "/admin/radius-clients/nope/language", {"language": "pt"}).status_code \
        == 404


# --- service providers ---------------------------------------------------------------------

def test_an_sp_is_added_by_pasting_its_metadata_shown_and_removed(app, console):
    sp = TestSP(base="https://myum.example.edu", name="myUM")
    answer = send(console, "/admin/service-providers/add", {"metadata_xml": sp.metadata()})
    assert answer.status_code == 302
    shown = console.get(answer.headers["Location"]).get_data(as_text=True)
    assert sp.entity_id in shown and "https://myum.example.edu/acs" in shown
    assert "requested attributes" in shown and "encrypted assertions" in shown
    listing = console.get("/admin/service-providers").get_data(as_text=True)
    assert "myUM" in listing and sp.entity_id in listing and "registered on its own" in listing
    assert last_audit(app, "sp.register").actor == "boss"
    remove = answer.headers["Location"] + "/remove"
    assert "Remove myUM?" in console.get(remove).get_data(as_text=True)
    assert send(console, remove).status_code == 302
    assert "No service providers yet" in console.get("/admin/service-providers").get_data(
        as_text=True)
    assert last_audit(app, "sp.remove").actor == "boss"
    assert console.get(answer.headers["Location"]).status_code == 404


def test_an_sp_is_added_by_uploading_its_metadata_and_replaced(app, console):
    sp = TestSP(base="https://files.example.edu", name="Files")
    upload = {"metadata_file": (io.BytesIO(sp.metadata().encode()), "sp.xml")}
    first = send(console, "/admin/service-providers/add", upload,
                 content_type="multipart/form-data")
    assert first.status_code == 302
    again = send(console, "/admin/service-providers/add", {"metadata_xml": sp.metadata()})
    assert again.status_code == 400 and "already registered" in again.get_data(as_text=True)
    replaced = send(console, "/admin/service-providers/add",
                    {"metadata_xml": sp.metadata(), "replace": "1"})
    assert replaced.status_code == 302


@pytest.mark.parametrize("xml, message", [
    ("<not xml", "not well-formed"),
    ('<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" entityID="x"/>',
     "no entityID or no SPSSODescriptor"),
    ("   ", "Choose a metadata file or paste"),
])
def test_bad_metadata_is_refused_and_kept_in_the_form(app, console, xml, message):
    answer = send(console, "/admin/service-providers/add", {"metadata_xml": xml})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and message in page
    assert f"{xml}</textarea>" in html.unescape(page)
    assert not audit_rows(app, "sp.register")


def test_an_uploaded_file_that_is_refused_comes_back_as_text(app, console):
    upload = {"metadata_file": (io.BytesIO(b"<broken"), "sp.xml")}
    answer = send(console, "/admin/service-providers/add", upload,
                  content_type="multipart/form-data")
    assert answer.status_code == 400 and "&lt;broken</textarea>" in answer.get_data(as_text=True)


def test_service_provider_pages_for_what_is_not_there(console):
    assert console.get("/admin/service-providers/99").status_code == 404
    assert send(console, "/admin/service-providers/99/remove").status_code == 404
    assert console.get("/admin/service-providers?page=x").status_code == 200


# --- a service provider's release policy and switches ------------------------------------

def sp_id_of(app, entity_id: str) -> int:
    with committed(app) as c:
        return sps.lookup(c, entity_id).id


def stored(app, entity_id: str) -> tuple[list[str], bool, bool, bool]:
    """(the effective release, an operator's list?, encrypt, email NameID) as the core has it."""
    with committed(app) as c:
        sp = sps.lookup(c, entity_id)
        return (attribute_release.policy(sp), sp.release is not None, sp.encrypt_assertions,
                sp.allow_email_nameid)


def released(app, clock, sp, device: tuple[int, str], *, offset: int = 0) -> set[str]:
    """The attributes (friendly names) the SP reads from alice's next sign-in, in a new browser
    (python3-saml validates the Response)."""
    device_id, secret = device
    response, request_id = sign_in_through_prompt(app.test_client(), app, sp, clock, secret,
                                                  device_id, offset=offset)
    auth = sp.acs_post(response, request_id)
    assert auth.get_errors() == [], auth.get_last_error_reason()
    friendly = {a.oid: a.friendly for a in CATALOG.values()}
    return {friendly[name] for name in auth.get_attributes()}


def fact(page: str, label: str) -> str:
    """One line of the SP's table (`um2fa sp show`'s label: value)."""
    match = re.search(f"<th>{re.escape(label)}</th><td>([^<]*)</td>", page)
    assert match, f"no {label} on the page"
    return match.group(1)


def test_the_sp_page_has_the_settings_form_with_the_current_choices(app, client, console):
    sp = make_sp(client, app)  # requests uid, mail, displayName, eppn, affiliation
    page = html.unescape(console.get(f"/admin/service-providers/{sp_id_of(app, sp.entity_id)}")
                         .get_data(as_text=True))
    assert 'name="csrf_token"' in page and "/settings" in page
    assert fact(page, "released (default)") == \
        "pairwise-id, eduPersonPrincipalName, eduPersonAffiliation, mail, displayName, uid"
    for name in CATALOG:
        assert f'value="{name}"' in page
    checked = set(re.findall(r'name="attribute" value="([^"]+)" checked', page))
    assert checked == {"pairwise-id", "eduPersonPrincipalName", "eduPersonAffiliation", "mail",
                       "displayName", "uid"}
    assert re.search(r'name="release" value="default" checked', page)
    assert re.search(r'name="encrypt" value="1" checked', page)
    assert not re.search(r'name="email_nameid" value="1" checked', page)


def test_the_release_policy_and_switches_are_set_and_the_next_sign_in_follows(app, client,
                                                                              clock, console):
    make_user(app, email="alice@example.edu", role="staff", name="Alice Chan",
              given_name="Alice", surname="Chan")
    device = add_totp_device(app)
    sp = make_sp(client, app)
    url = f"/admin/service-providers/{sp_id_of(app, sp.entity_id)}"
    answer = send(console, url + "/settings", {
        "release": "list", "attribute": ["eduPersonPrincipalName", "sn"], "email_nameid": "1"})
    assert answer.status_code == 302 and answer.headers["Location"] == url
    page = html.unescape(console.get(url).get_data(as_text=True))
    assert "Saved the settings of Test SP." in page
    assert fact(page, "released (operator's list)") == "eduPersonPrincipalName, sn"
    assert fact(page, "email NameID") == "allowed"
    assert fact(page, "encrypted assertions") == "no (switched off)"
    assert re.search(r'name="release" value="list" checked', page)
    assert stored(app, sp.entity_id) == (["eduPersonPrincipalName", "sn"], True, False, True)
    row = last_audit(app, "sp.settings")
    assert (row.door, row.actor) == ("admin", "boss") and row.detail.startswith(sp.entity_id)
    assert released(app, clock, sp, device) == {"eduPersonPrincipalName", "sn"}
    # and back to the default policy, encryption on, no email NameID
    assert send(console, url + "/settings", {"release": "default", "encrypt": "1",
                                             "attribute": ["sn"]}).status_code == 302
    assert stored(app, sp.entity_id) == (
        ["pairwise-id", "eduPersonPrincipalName", "eduPersonAffiliation", "mail", "displayName",
         "uid"], False, True, False)
    assert released(app, clock, sp, device, offset=1) == {
        "pairwise-id", "eduPersonPrincipalName", "eduPersonAffiliation", "mail", "displayName",
        "uid"}
    assert [r.actor for r in audit_rows(app, "sp.settings")] == ["boss", "boss"]


def test_only_these_attributes_with_none_ticked_releases_nothing(app, client, console):
    sp = make_sp(client, app)
    url = f"/admin/service-providers/{sp_id_of(app, sp.entity_id)}"
    assert send(console, url + "/settings", {"release": "list"}).status_code == 302
    assert stored(app, sp.entity_id) == ([], True, False, False)


@pytest.mark.parametrize("data, message", [
    ({"release": "list", "attribute": ["uid", "socialSecurityNumber"], "encrypt": "1"},
     "unknown attribute(s): socialSecurityNumber"),
    ({"release": "everything", "attribute": ["uid"]}, "Choose the default policy or"),
    ({"attribute": ["uid"]}, "Choose the default policy or"),
])
def test_bad_settings_are_a_400_and_change_nothing(app, client, console, data, message):
    sp = make_sp(client, app)
    before = stored(app, sp.entity_id)
    answer = send(console, f"/admin/service-providers/{sp_id_of(app, sp.entity_id)}/settings",
                  {"email_nameid": "1", **data})
    page = html.unescape(answer.get_data(as_text=True))
    assert answer.status_code == 400 and message in page
    assert fact(page, "released (default)")  # the page as it was, with the reason
    assert stored(app, sp.entity_id) == before
    assert not audit_rows(app, "sp.settings")


def test_the_settings_of_no_such_sp_are_a_404(console):
    assert send(console, "/admin/service-providers/99/settings",
                {"release": "default"}).status_code == 404


# --- administrators and API tokens ---------------------------------------------------------

def test_administrators_are_added_changed_and_removed(app, console):
    make_user(app, "dora", role="staff")
    assert send(console, "/admin/admins", {"username": "dora", "role": "helpdesk"}) \
        .status_code == 302
    assert "dora" in console.get("/admin/admins").get_data(as_text=True)
    assert send(console, "/admin/admins/dora/role", {"role": "admin"}).status_code == 302
    with committed(app) as c:
        assert admins.find(c, "dora").role == admins.ADMIN
    assert "Remove dora" in html.unescape(console.get("/admin/admins/dora/remove")
                                          .get_data(as_text=True))
    assert send(console, "/admin/admins/dora/remove").status_code == 302
    with committed(app) as c:
        assert admins.find(c, "dora") is None
    assert [(r.action, r.actor) for r in audit_rows(app) if r.username == "dora"][-3:] == [
        ("admin.add", "boss"), ("admin.add", "boss"), ("admin.remove", "boss")]
    assert send(console, "/admin/admins/dora/role", {"role": "admin"}).status_code == 404


def test_bad_administrator_input_keeps_the_form(app, console):
    answer = send(console, "/admin/admins", {"username": "nobody", "role": "helpdesk"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 400 and "no such user: nobody" in page
    assert 'value="nobody"' in page
    make_user(app, "dora")
    bad = send(console, "/admin/admins", {"username": "dora", "role": "root"})
    assert bad.status_code == 400 and "role must be one of" in bad.get_data(as_text=True)


def test_an_administrator_cannot_take_away_their_own_admin_role(app, console):
    for url, data in (("/admin/admins/boss/remove", {}),
                      ("/admin/admins/boss/role", {"role": "helpdesk"}),
                      ("/admin/admins", {"username": "boss", "role": "helpdesk"})):
        answer = send(console, url, data)
        assert answer.status_code == 400, url
        assert "cannot take away your own admin role" in answer.get_data(as_text=True)
    with committed(app) as c:
        assert admins.find(c, "boss").role == admins.ADMIN
    page = console.get("/admin/admins").get_data(as_text=True)
    assert "boss (you)" in page and "/admin/admins/boss/remove" not in page


def test_an_api_token_is_shown_once_works_and_is_removed(app, console):
    answer = send(console, "/admin/api-tokens", {"name": "idm", "role": "helpdesk"})
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200 and answer.headers["Cache-Control"] == "no-store"
    token = page.split('id="api-token">', 1)[1].split("<", 1)[0]
    me = app.test_client().get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert me.get_json() == {"name": "idm", "role": "helpdesk"}
    listing = console.get("/admin/api-tokens").get_data(as_text=True)
    assert "idm" in listing and token not in listing and "never" not in listing
    assert last_audit(app, "api_token.add").actor == "boss"
    bad = send(console, "/admin/api-tokens", {"name": "idm", "role": "helpdesk"})
    assert bad.status_code == 400 and "exists" in bad.get_data(as_text=True)
    assert console.get("/admin/api-tokens/idm/remove").status_code == 200
    assert send(console, "/admin/api-tokens/idm/remove").status_code == 302
    assert app.test_client().get("/api/v1/me", headers={
        "Authorization": f"Bearer {token}"}).status_code == 401
    assert console.get("/admin/api-tokens/idm/remove").status_code == 404
    assert token not in str([(r.detail, r.actor) for r in audit_rows(app)])


# --- settings ------------------------------------------------------------------------------

def test_the_effective_settings_are_shown_with_secrets_masked(app, console):
    settings = dataclasses.replace(
        app.config["UM2FA"], smtp_password="smtp-pass-123", ldap_bind_password="ldap-pw-456",
        redis_url="redis://:redis-pw-789@127.0.0.1:6379/0", metrics_token="metrics-tok-1",
        extra={"some_api_token": "extra-tok-2"})
    app.config["UM2FA"] = settings
    answer = console.get("/admin/settings")
    page = answer.get_data(as_text=True)
    assert answer.status_code == 200
    for secret in (settings.secret_key, settings.encryption_key, "smtp-pass-123",
                   "ldap-pw-456", "redis-pw-789", "metrics-tok-1", "extra-tok-2"):
        assert secret not in page
    assert "redis://:********@127.0.0.1:6379/0" in page
    assert "lockout_threshold" in page and "campus_networks" in page and "127.0.0.0/8" in page


def test_the_help_desk_sees_none_of_these_pages(app, clock):
    client = signed_in_console(app, clock, admins.HELPDESK)
    home = client.get("/admin/").get_data(as_text=True)
    for url in ("/admin/radius-clients", "/admin/service-providers", "/admin/admins",
                "/admin/api-tokens", "/admin/settings"):
        assert url not in home
        assert client.get(url).status_code == 403
    admin_home = signed_in_console(app, clock, admins.ADMIN).get("/admin/").get_data(
        as_text=True)
    assert all(url in admin_home for url in ("/admin/radius-clients", "/admin/settings"))


def test_an_sp_from_a_federation_aggregate_is_listed_with_its_source(app, console):
    from app.core import service_providers as sps
    from app.models import MetadataAggregate

    sp = TestSP(base="https://fed.example.edu", name="Federated")
    assert send(console, "/admin/service-providers/add",
                {"metadata_xml": sp.metadata()}).status_code == 302
    with committed(app) as c:
        aggregate = MetadataAggregate(url="https://mds.example.org/feed.xml", cert_pem="-")
        c.db.add(aggregate)
        c.db.flush()
        found = sps.lookup(c, sp.entity_id)
        found.aggregate_id, sp_id = aggregate.id, found.id
    listing = console.get("/admin/service-providers").get_data(as_text=True)
    assert "aggregate https://mds.example.org/feed.xml" in listing
    shown = console.get(f"/admin/service-providers/{sp_id}").get_data(as_text=True)
    assert f"/admin/service-providers/{sp_id}/remove" not in shown
    refused = send(console, f"/admin/service-providers/{sp_id}/remove")
    assert refused.status_code == 400 and "aggregate" in refused.get_data(as_text=True)
