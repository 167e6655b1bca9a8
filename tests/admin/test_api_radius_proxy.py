"""Issue 18, point 8: the admin API marks a RADIUS client as a proxy and manages the policies of
the NAS behind it (the same rules as `um2fa radius-clients nas`)."""

from __future__ import annotations

from app.core import admins, radius_clients
from tests.admin.test_api_settings import Api
from tests.conftest import audit_rows, committed
from tests.helpers.console import api_token


def test_a_proxy_and_its_nas_policies(app):
    api = Api(app, api_token(app, "idm", admins.ADMIN))
    added = api("POST", "/api/v1/radius-clients", {"name": "univ-proxy", "address": "10.9.0.1",
                                                   "proxy": True, "push_timeout": 50})
    assert added.status_code == 200, added.get_json()
    body = added.get_json()
    assert (body["proxy"], body["proxy_wait"], body["nas_policies"]) == \
        (True, "needs a configured proxy", [])
    plain = api("POST", "/api/v1/radius-clients", {"name": "fw1", "address": "10.0.0.5"})
    assert plain.get_json()["proxy"] is False and "proxy_wait" not in plain.get_json()

    made = api("POST", "/api/v1/radius-clients/univ-proxy/nas-policies",
               {"name": "vpn-a", "nas_identifier": "vpn-a", "nas_network": "10.1.0.5",
                "mode": "challenge", "push_timeout": 15})
    assert made.status_code == 201, made.get_json()
    assert made.get_json()["effective"] == {"mode": "challenge", "fail_mode": "secure",
                                            "push_timeout": 15, "language": None}
    assert made.get_json()["nas_network"] == "10.1.0.5/32"
    assert made.get_json()["proxy_wait"] == "fits"
    lab = api("POST", "/api/v1/radius-clients/univ-proxy/nas-policies",
              {"name": "lab", "nas_network": "10.2.0.0/16", "language": "pt"})
    assert lab.status_code == 201 and lab.get_json()["mode"] is None  # the proxy's
    for path, body, status in (
            ("fw1", {"name": "x", "nas_identifier": "x"}, 400),  # not a proxy
            ("nobody", {"name": "x", "nas_identifier": "x"}, 404),
            ("univ-proxy", {"name": "x"}, 400),  # matches nothing
            ("univ-proxy", {"name": "x", "nas_identifier": 7}, 400),
            ("univ-proxy", {"name": "x", "nas_identifier": "x", "push_timeout": "9"}, 400),
            ("univ-proxy", {"name": "x", "nas_identifier": "x", "colour": "red"}, 400),
            ("univ-proxy", {"name": "vpn-a", "nas_identifier": "y"}, 400)):
        refused = api("POST", f"/api/v1/radius-clients/{path}/nas-policies", body)
        assert refused.status_code == status, (path, body, refused.get_json())

    listed = {c["name"]: c for c in api("GET", "/api/v1/radius-clients")
              .get_json()["radius_clients"]}
    assert [p["name"] for p in listed["univ-proxy"]["nas_policies"]] == ["lab", "vpn-a"]
    assert listed["univ-proxy"]["nas_policies"][0]["effective"]["push_timeout"] == 50

    kept = api("PATCH", "/api/v1/radius-clients/univ-proxy", {"proxy": False, "mode": "challenge"})
    assert kept.status_code == 400 and "has NAS policies" in kept.get_json()["error"]
    gone = api("DELETE", "/api/v1/radius-clients/univ-proxy/nas-policies/lab")
    assert gone.status_code == 200 and gone.get_json() == {"removed": "univ-proxy/nas lab"}
    assert api("DELETE", "/api/v1/radius-clients/univ-proxy/nas-policies/lab").status_code == 404
    turned = api("PATCH", "/api/v1/radius-clients/fw1", {"proxy": True})
    assert turned.status_code == 200 and turned.get_json()["proxy_wait"] == "too long"
    with committed(app) as c:
        loaded = {x.name: x for x in radius_clients.load(c)}
    assert loaded["univ-proxy"].mode == "append"  # the refused PATCH changed nothing
    assert loaded["univ-proxy"].for_nas("vpn-a", "10.1.0.5").label == "univ-proxy/nas vpn-a"
    assert loaded["fw1"].proxy
    assert [r.action for r in audit_rows(app) if r.action.startswith("radius_client.nas")] == \
        ["radius_client.nas_add", "radius_client.nas_add", "radius_client.nas_remove"]
    doc = api("GET", "/api/v1/openapi.json").get_data(as_text=True)
    assert "/radius-clients/{name}/nas-policies" in doc and '"proxy_wait"' in doc
