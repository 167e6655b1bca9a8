"""Issue 16: the admin API sets a RADIUS client's Reply-Message language ("language": one of
UM2FA_LANGUAGES, or null for UM2FA_DEFAULT_LANGUAGE), on create and PATCH."""

from __future__ import annotations

from app.core import admins, radius_clients
from tests.admin.test_api_settings import Api
from tests.conftest import audit_rows, committed
from tests.helpers.console import api_token


def test_the_language_is_set_on_create_and_patch_and_checked(app):
    api = Api(app, api_token(app, "idm", admins.ADMIN))
    added = api("POST", "/api/v1/radius-clients",
                {"name": "vpn1", "address": "10.0.0.5", "language": "zh_Hant"})
    assert added.status_code == 200 and added.get_json()["language"] == "zh_Hant"
    plain = api("POST", "/api/v1/radius-clients", {"name": "vpn2", "address": "10.0.0.6"})
    assert plain.get_json()["language"] is None
    listed = api("GET", "/api/v1/radius-clients").get_json()["radius_clients"]
    assert {c["name"]: c["language"] for c in listed} == {"vpn1": "zh_Hant", "vpn2": None}

    changed = api("PATCH", "/api/v1/radius-clients/vpn2", {"language": "pt"})
    assert changed.status_code == 200 and changed.get_json()["language"] == "pt"
    both = api("PATCH", "/api/v1/radius-clients/vpn1", {"language": None, "mode": "challenge"})
    assert both.status_code == 200
    assert (both.get_json()["language"], both.get_json()["mode"]) == (None, "challenge")
    with committed(app) as c:
        assert {r.name: r.language for r in radius_clients.load(c)} == {"vpn1": None,
                                                                         "vpn2": "pt"}
    assert [r.detail for r in audit_rows(app, "radius_client.language")] == [
        "vpn2: default -> pt", "vpn1: zh_Hant -> default"]

    for body in ({"language": "klingon"}, {"language": 7}, {"language": "pt", "mode": "x"},
                 {"languages": "pt"}):
        refused = api("PATCH", "/api/v1/radius-clients/vpn2", body)
        assert refused.status_code == 400, body
    assert api("GET", "/api/v1/radius-clients").get_json()["radius_clients"][1]["language"] == "pt"
    bad = api("POST", "/api/v1/radius-clients",
              {"name": "vpn3", "address": "10.0.0.7", "language": "fr"})
    assert bad.status_code == 400 and "language" in bad.get_json()["error"]


def test_the_openapi_document_names_the_language(app):
    api = Api(app, api_token(app, "idm", admins.ADMIN))
    doc = api("GET", "/api/v1/openapi.json")
    assert doc.status_code == 200
    assert '"language"' in doc.get_data(as_text=True)
