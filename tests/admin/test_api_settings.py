"""The admin API for RADIUS clients and service providers (issue 15): every endpoint's
success, 401 (no token, a removed token), 403 (a help-desk token), 400 and 404."""

from __future__ import annotations

from urllib.parse import quote

import pytest

from app.core import admins, api_tokens, attribute_release, radius_clients
from app.core import service_providers as sps
from tests.conftest import TEST_ORIGIN, audit_rows, committed
from tests.helpers.console import api_token
from tests.peers.saml_sp import TestSP

SP = TestSP(base="https://myum.example.edu", name="myUM")
SP_PATH = "/api/v1/service-providers/" + quote(SP.entity_id, safe="")


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


class Api:
    """A client that calls the API with one token."""

    def __init__(self, app, token: str | None) -> None:
        self.client, self.token = app.test_client(), token

    def __call__(self, method: str, path: str, json=None):
        headers = {"Authorization": f"Bearer {self.token}"} if self.token else {}
        return self.client.open(path, method=method, json=json, headers=headers)


@pytest.fixture
def admin_api(app):
    return Api(app, api_token(app, "idm", admins.ADMIN))


def add_client(api, **fields):
    return api("POST", "/api/v1/radius-clients",
               {"name": "vpn1", "address": "10.0.0.5", "mode": "append", **fields})


def add_sp(api, **fields):
    return api("POST", "/api/v1/service-providers", {"metadata": SP.metadata(), **fields})


# every endpoint: (method, path, body) with something there to act on
ENDPOINTS = [
    ("GET", "/api/v1/radius-clients", None),
    ("POST", "/api/v1/radius-clients", {"name": "vpn9", "address": "10.9.0.0/16"}),
    ("PATCH", "/api/v1/radius-clients/vpn1", {"mode": "challenge"}),
    ("DELETE", "/api/v1/radius-clients/vpn1", None),
    ("GET", "/api/v1/service-providers", None),
    ("POST", "/api/v1/service-providers", {"metadata": SP.metadata(), "replace": True}),
    ("GET", SP_PATH, None),
    ("PATCH", SP_PATH, {"encrypt": False}),
    ("DELETE", SP_PATH, None),
]


@pytest.mark.parametrize("method, path, json", ENDPOINTS)
def test_no_token_a_removed_token_and_a_helpdesk_token_are_refused(app, admin_api, method,
                                                                    path, json):
    add_client(admin_api)
    add_sp(admin_api)
    assert Api(app, None)(method, path, json).status_code == 401
    removed = api_token(app, "gone", admins.ADMIN)
    with committed(app) as c:
        api_tokens.remove(c, TEST_ORIGIN, "gone")
    refused = Api(app, removed)(method, path, json)
    assert refused.status_code == 401 and refused.get_json() == {
        "error": "the API token is not valid (unknown or removed)"}
    helpdesk = Api(app, api_token(app, "hd", admins.HELPDESK))(method, path, json)
    assert helpdesk.status_code == 403 and "may not" in helpdesk.get_json()["error"]
    assert admin_api(method, path, json).status_code == 200  # and the admin's token may


# --- RADIUS clients ------------------------------------------------------------------------

def test_radius_clients_are_added_listed_changed_and_removed(app, admin_api):
    added = add_client(admin_api, mode="challenge")
    body = added.get_json()
    assert added.status_code == 200 and added.headers["Cache-Control"] == "no-store"
    assert body["name"] == "vpn1" and body["network"] == "10.0.0.5/32"
    assert body["mode"] == "challenge" and len(body["secret"]) >= 16
    with committed(app) as c:
        assert radius_clients.load(c)[0].secret.decode() == body["secret"]
    listed = admin_api("GET", "/api/v1/radius-clients").get_json()["radius_clients"]
    assert [c["name"] for c in listed] == ["vpn1"] and "secret" not in listed[0]
    changed = admin_api("PATCH", "/api/v1/radius-clients/vpn1", {"mode": "second-factor"})
    assert changed.status_code == 200 and changed.get_json()["mode"] == "second-factor"
    removed = admin_api("DELETE", "/api/v1/radius-clients/vpn1")
    assert removed.status_code == 200 and removed.get_json() == {"removed": "vpn1"}
    assert admin_api("GET", "/api/v1/radius-clients").get_json() == {"radius_clients": []}
    assert [(r.action, r.door, r.actor) for r in audit_rows(app)
            if r.action.startswith("radius_client.")] == [
        ("radius_client.add", "api", "api:idm"), ("radius_client.mode", "api", "api:idm"),
        ("radius_client.remove", "api", "api:idm")]
    assert body["secret"] not in str([r.detail for r in audit_rows(app)])


def test_a_typed_secret_and_the_other_options_are_taken(app, admin_api):
    added = add_client(admin_api, secret="a-typed-secret-of-24-chars", fail_mode="safe",
                       push_timeout=30, require_message_authenticator=False, delimiter=";")
    assert added.status_code == 200, added.get_json()
    with committed(app) as c:
        client = radius_clients.load(c)[0]
    assert client.secret == b"a-typed-secret-of-24-chars" and client.fail_mode == "safe"
    assert (client.push_timeout, client.delimiter) == (30, ";")
    assert not client.require_message_authenticator


@pytest.mark.parametrize("fields, message", [
    ({"address": "nowhere"}, "not an address"),
    ({"name": "bad name!"}, "client name"),
    ({"mode": "sideways"}, "mode must be one of"),
    ({"secret": "short"}, "shared secret must have"),
    ({"push_timeout": "30"}, "push_timeout must be an integer"),
    ({"require_message_authenticator": "no"}, "must be true or false"),
    ({"name": None}, "name is required"),
    ({"name": 7}, "name must be a string"),
])
def test_bad_radius_client_input_is_a_400(app, admin_api, fields, message):
    answer = add_client(admin_api, **fields)
    assert answer.status_code == 400 and message in answer.get_json()["error"]
    assert admin_api("GET", "/api/v1/radius-clients").get_json() == {"radius_clients": []}


def test_radius_client_errors(admin_api):
    add_client(admin_api)
    again = add_client(admin_api)
    assert again.status_code == 400 and "already exists" in again.get_json()["error"]
    not_json = admin_api.client.post("/api/v1/radius-clients", data="name=vpn2", headers={
        "Authorization": f"Bearer {admin_api.token}"})
    assert not_json.status_code == 400 and "JSON object" in not_json.get_json()["error"]
    bad_mode = admin_api("PATCH", "/api/v1/radius-clients/vpn1", {"mode": "sideways"})
    assert bad_mode.status_code == 400 and "mode must be one of" in bad_mode.get_json()["error"]
    assert admin_api("PATCH", "/api/v1/radius-clients/vpn1", {}).status_code == 400
    for method, json in (("PATCH", {"mode": "append"}), ("DELETE", None)):
        missing = admin_api(method, "/api/v1/radius-clients/nope", json)
        assert missing.status_code == 404
        assert missing.get_json() == {"error": "no RADIUS client named nope"}


# --- service providers ---------------------------------------------------------------------

def test_service_providers_are_registered_listed_shown_and_removed(app, admin_api):
    added = add_sp(admin_api)
    body = added.get_json()
    assert added.status_code == 200
    assert (body["entity_id"], body["name"], body["source"]) == (SP.entity_id, "myUM", "own")
    assert body["details"]["ACS URLs"] == "https://myum.example.edu/acs"
    listed = admin_api("GET", "/api/v1/service-providers").get_json()
    assert listed == {"service_providers": [{"entity_id": SP.entity_id, "name": "myUM",
                                             "source": "own"}],
                      "total": 1, "offset": 0, "limit": 100}
    # the entity ID percent-encoded, or appended as it is
    for path in (SP_PATH, "/api/v1/service-providers/" + SP.entity_id):
        shown = admin_api("GET", path)
        assert shown.status_code == 200 and shown.get_json() == body
    removed = admin_api("DELETE", SP_PATH)
    assert removed.status_code == 200 and removed.get_json() == {"removed": SP.entity_id}
    assert admin_api("GET", SP_PATH).status_code == 404
    assert [(r.action, r.actor) for r in audit_rows(app) if r.action.startswith("sp.")] == [
        ("sp.register", "api:idm"), ("sp.remove", "api:idm")]


def test_the_service_provider_list_is_paged(admin_api):
    for n in range(3):
        sp = TestSP(base=f"https://sp{n}.example.edu", name=f"SP {n}")
        assert admin_api("POST", "/api/v1/service-providers",
                         {"metadata": sp.metadata()}).status_code == 200
    page = admin_api("GET", "/api/v1/service-providers?offset=1&limit=1").get_json()
    assert [s["name"] for s in page["service_providers"]] == ["SP 1"]
    assert (page["total"], page["offset"], page["limit"]) == (3, 1, 1)
    for query in ("limit=0", "limit=5000", "offset=-1", "offset=x"):
        bad = admin_api("GET", f"/api/v1/service-providers?{query}")
        assert bad.status_code == 400 and "must be a whole number" in bad.get_json()["error"]


@pytest.mark.parametrize("json, message", [
    ({"metadata": "<not xml"}, "not well-formed"),
    ({"metadata": '<md:EntityDescriptor xmlns:md="urn:oasis:names:tc:SAML:2.0:metadata" '
                  'entityID="x"/>'}, "no entityID or no SPSSODescriptor"),
    ({"metadata": '<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>'},
     "document type"),
    ({}, "metadata is required"),
    ({"metadata": SP.metadata(), "replace": "yes"}, "replace must be true or false"),
    ({"metadata": SP.metadata().replace('index="1"', 'index="x"')}, "index"),
])
def test_bad_metadata_is_a_400(app, admin_api, json, message):
    answer = admin_api("POST", "/api/v1/service-providers", json)
    assert answer.status_code == 400 and message in answer.get_json()["error"]
    assert not audit_rows(app, "sp.register")


def test_service_provider_errors(admin_api):
    add_sp(admin_api)
    again = add_sp(admin_api)
    assert again.status_code == 400 and "already registered" in again.get_json()["error"]
    assert add_sp(admin_api, replace=True).status_code == 200
    for method in ("GET", "DELETE"):
        missing = admin_api(method, "/api/v1/service-providers/https%3A%2F%2Fnope")
        assert missing.status_code == 404
        assert missing.get_json() == {"error": "no such service provider: https://nope"}


def test_an_sp_from_a_federation_aggregate_says_so_and_is_not_removed_alone(app, admin_api):
    from app.models import MetadataAggregate

    add_sp(admin_api)
    feed = "https://mds.example.org/feed.xml"
    with committed(app) as c:
        aggregate = MetadataAggregate(url=feed, cert_pem="-")
        c.db.add(aggregate)
        c.db.flush()
        sps.lookup(c, SP.entity_id).aggregate_id = aggregate.id
    assert admin_api("GET", SP_PATH).get_json()["source"] == feed
    listed = admin_api("GET", "/api/v1/service-providers").get_json()["service_providers"]
    assert listed[0]["source"] == feed
    refused = admin_api("DELETE", SP_PATH)
    assert refused.status_code == 400 and "aggregate" in refused.get_json()["error"]


# --- a service provider's release policy and switches ------------------------------------

DEFAULT = ["pairwise-id", "eduPersonPrincipalName", "eduPersonAffiliation", "mail",
           "displayName", "uid"]  # what TestSP's metadata requests, and its pairwise-id


def stored(app) -> tuple[list[str], bool, bool, bool]:
    """(the effective release, an operator's list?, encrypt, email NameID) as the core has it."""
    with committed(app) as c:
        sp = sps.lookup(c, SP.entity_id)
        return (attribute_release.policy(sp), sp.release is not None, sp.encrypt_assertions,
                sp.allow_email_nameid)


def test_an_sps_release_policy_and_switches_are_set(app, admin_api):
    add_sp(admin_api)
    assert stored(app) == (DEFAULT, False, True, False)
    changed = admin_api("PATCH", SP_PATH, {
        "release": ["eduPersonPrincipalName", "urn:oid:2.5.4.4"], "encrypt": False,
        "email_nameid": True})
    body = changed.get_json()
    assert changed.status_code == 200, body
    assert body == admin_api("GET", SP_PATH).get_json()  # the SP, as GET answers it
    details = body["details"]
    assert details["released (operator's list)"] == "eduPersonPrincipalName, sn"
    assert (details["email NameID"], details["encrypted assertions"]) == (
        "allowed", "no (switched off)")
    assert stored(app) == (["eduPersonPrincipalName", "sn"], True, False, True)
    # each field is optional: what is left out stays as it is
    assert admin_api("PATCH", SP_PATH, {"encrypt": True}).status_code == 200
    assert stored(app) == (["eduPersonPrincipalName", "sn"], True, True, True)
    back = admin_api("PATCH", SP_PATH, {"release": "default"}).get_json()
    assert back["details"]["released (default)"] == ", ".join(DEFAULT)
    assert stored(app) == (DEFAULT, False, True, True)
    rows = audit_rows(app, "sp.settings")
    assert [(r.door, r.actor) for r in rows] == [("api", "api:idm")] * 3
    assert rows[0].detail.startswith(SP.entity_id) and "email_nameid=True" in rows[0].detail


def test_an_empty_release_list_releases_nothing(app, admin_api):
    add_sp(admin_api)
    assert admin_api("PATCH", SP_PATH, {"release": []}).status_code == 200
    assert stored(app) == ([], True, True, False)


@pytest.mark.parametrize("json, message", [
    ({"release": ["uid", "socialSecurityNumber"]}, "unknown attribute(s): socialSecurityNumber"),
    ({"release": "everything"}, 'release must be a list of attribute names or "default"'),
    ({"release": ["uid", 7]}, 'release must be a list of attribute names or "default"'),
    ({"release": None}, 'release must be a list of attribute names or "default"'),
    ({"encrypt": "no"}, "encrypt must be true or false"),
    ({"email_nameid": 1}, "email_nameid must be true or false"),
    ({"encrypt": None}, "encrypt must be true or false"),
    ({}, "nothing to change: give release, encrypt or email_nameid"),
    ({"encrypted": False}, "unknown field(s): encrypted"),
])
def test_bad_sp_settings_are_a_400_and_change_nothing(app, admin_api, json, message):
    add_sp(admin_api)
    answer = admin_api("PATCH", SP_PATH, {"email_nameid": True, **json} if json else json)
    assert answer.status_code == 400 and message in answer.get_json()["error"], \
        answer.get_json()
    assert stored(app) == (DEFAULT, False, True, False)
    assert not audit_rows(app, "sp.settings")


def test_the_settings_of_no_such_sp_are_a_404(admin_api):
    missing = admin_api("PATCH", "/api/v1/service-providers/https%3A%2F%2Fnope",
                        {"encrypt": False})
    assert missing.status_code == 404
    assert missing.get_json() == {"error": "no such service provider: https://nope"}
