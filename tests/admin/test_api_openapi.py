"""The admin API's OpenAPI document lists every endpoint the API has."""

from __future__ import annotations

import re

import pytest

from tests.helpers.console import api_token


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


def test_every_api_endpoint_is_in_the_openapi_document(app, client):
    document = client.get("/api/v1/openapi.json").get_json()
    assert document["openapi"].startswith("3.") and document["paths"]
    listed = {(path, method) for path, ops in document["paths"].items() for method in ops}
    routes = {(re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).removeprefix("/api/v1"),
               method.lower())
              for rule in app.url_map.iter_rules() if rule.endpoint.startswith("api.")
              and rule.endpoint != "api.openapi"
              for method in rule.methods - {"HEAD", "OPTIONS"}}
    assert routes and routes == listed
    for ops in document["paths"].values():
        for operation in ops.values():
            assert operation["summary"] and {"401", "403"} <= set(operation["responses"])


def test_me_says_which_token_calls(app, client):
    token = api_token(app, "idm", "admin")
    answer = client.get("/api/v1/me", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200 and answer.get_json() == {"name": "idm", "role": "admin"}
    assert client.get("/api/v1/me").status_code == 401
    bad = client.get("/api/v1/me", headers={"Authorization": "Bearer um2fa_nope"})
    assert bad.status_code == 401 and bad.get_json() == {
        "error": "the API token is not valid (unknown or removed)"}
