"""Input no door takes (app/web/input_guard.py): a NUL anywhere, an id past the database's
integer. Each was a 500 on PostgreSQL somewhere before this one check."""

from __future__ import annotations

import pytest

from tests.conftest import csrf_token, make_user, post, sign_in


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


@pytest.mark.parametrize("path", [
    "/admin/radius-clients/a%00/remove", "/admin/admins/a%00/remove", "/recovery/?x=%00",
    "/saml/sso?SAMLRequest=%00", "/api/v1/service-providers/a%00", "/static/css/site.css%00",
])
def test_a_nul_in_the_path_or_query_is_a_400(client, path):
    answer = client.get(path)
    assert answer.status_code == 400 and "NUL" in answer.get_data(as_text=True)


def test_a_nul_in_a_form_is_a_400_before_the_view(app, client):
    make_user(app)
    answer = post(client, "/sign-in", {"username": "alice\x00", "password": "x"})
    assert answer.status_code == 400 and "NUL" in answer.get_data(as_text=True)


def test_an_id_past_the_database_integer_is_a_404(app, client):
    make_user(app)
    sign_in(client)
    token = csrf_token(client, "/")
    for path in ("/settings/activity/99999999999/wasnt-me", "/admin/users/alice/devices/"
                 "99999999999/remove", "/admin/service-providers/99999999999"):
        assert client.get(path, headers={"X-CSRFToken": token}).status_code in (404, 405), path
