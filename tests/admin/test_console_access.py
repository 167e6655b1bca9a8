"""Who gets into the help-desk console and the admin API, and what each role may do there
(issue 15): every route of both is checked against each role."""

from __future__ import annotations

import dataclasses
import ipaddress
import re

import pytest
from werkzeug.routing import Rule

from app.core import admins
from tests.conftest import PASSWORD, audit_rows, csrf_token, issue_recovery, make_user, post
from tests.helpers.console import api_token, console_sign_in, make_admin, signed_in_console


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


def test_the_console_needs_a_sign_in_then_a_second_factor(app, client, clock):
    assert client.get("/admin/").headers["Location"] == "/admin/sign-in"
    secret = make_admin(app)
    post(client, "/admin/sign-in", {"username": "hd", "password": PASSWORD},
         token_from="/admin/sign-in")
    # the password alone opens nothing: the prompt comes first
    assert client.get("/admin/").headers["Location"] == "/prompt?next=admin"
    response = console_sign_in(client, clock, "hd", secret, offset=1)
    assert response.headers["Location"] == "/admin/"
    page = client.get("/admin/")
    assert page.status_code == 200 and "Help-desk console" in page.get_data(as_text=True)


def test_a_recovery_passcode_never_opens_the_console(app, client, clock):
    make_admin(app)
    code = issue_recovery(app, "hd")
    post(client, "/admin/sign-in", {"username": "hd", "password": PASSWORD},
         token_from="/admin/sign-in")
    post(client, "/prompt?next=admin", {"passcode": code, "device": ""},
         token_from="/prompt?next=admin")
    assert client.get("/admin/").headers["Location"] == "/prompt?next=admin"


def test_someone_without_a_role_is_refused(app, client, clock):
    from tests.conftest import add_totp_device

    make_user(app, "carol")
    _, secret = add_totp_device(app, "carol")
    console_sign_in(client, clock, "carol", secret)
    assert client.get("/admin/").status_code == 403


def test_the_console_answers_the_admin_networks_only(app, clock):
    client = signed_in_console(app, clock)
    app.config["UM2FA"] = dataclasses.replace(app.config["UM2FA"], admin_networks=(
        ipaddress.ip_network("10.9.0.0/16"),))
    assert client.get("/admin/").status_code == 403
    assert client.get("/api/v1/me", headers={"Authorization": "Bearer x"}).status_code == 403


def test_an_idle_console_session_ends(app, clock):
    client = signed_in_console(app, clock)
    assert client.get("/admin/").status_code == 200
    with client.session_transaction() as s:
        s["admin_seen"] -= app.config["UM2FA"].admin_idle_seconds + 1
    assert client.get("/admin/").headers["Location"] == "/admin/sign-in"
    with client.session_transaction() as s:
        assert "uid" not in s


def test_a_second_factor_long_ago_in_the_portal_does_not_open_the_console(app, clock):
    client = signed_in_console(app, clock)
    with client.session_transaction() as s:
        s["mfa_at"] -= app.config["UM2FA"].admin_idle_seconds + 1
    assert client.get("/admin/").headers["Location"] == "/admin/sign-in"


def test_admins_and_api_tokens_from_the_command_line(app, runner):
    make_user(app, "hd", role="staff")
    result = runner.invoke(args=["admins", "add", "hd", "--role", "helpdesk"])
    assert result.exit_code == 0 and "hd is now helpdesk" in result.output
    assert runner.invoke(args=["admins", "list"]).output == "hd\thelpdesk\n"
    result = runner.invoke(args=["admins", "add", "nobody", "--role", "admin"])
    assert result.exit_code == 1 and "no such user" in result.output
    result = runner.invoke(args=["api-tokens", "add", "idm", "--role", "admin"])
    token = result.output.strip()
    assert result.exit_code == 0 and re.fullmatch(r"um2fa_[A-Za-z0-9_-]{43}", token)
    assert "idm\tadmin\tlast used never" in runner.invoke(args=["api-tokens", "list"]).output
    assert runner.invoke(args=["api-tokens", "remove", "idm"]).exit_code == 0
    assert runner.invoke(args=["admins", "remove", "hd"]).exit_code == 0
    assert runner.invoke(args=["admins", "list"]).output == ""
    assert [r.action for r in audit_rows(app)][-4:] == [
        "admin.add", "api_token.add", "api_token.remove", "admin.remove"]
    assert token not in str([r.detail for r in audit_rows(app)])


# --- every route against every role ---------------------------------------------------------

SAMPLE = {"int": "1", "default": "alice", "string": "alice", "path": "alice"}


def _url(rule: Rule) -> str:
    url = rule.rule
    for match in re.finditer(r"<(?:(\w+)(?:\([^)]*\))?:)?(\w+)>", rule.rule):
        url = url.replace(match.group(0), SAMPLE.get(match.group(1) or "default", "1"))
    return url


def routes(app, prefix: str) -> list[tuple[Rule, str, str]]:
    """(rule, method, the console action of its view) for every route under `prefix`."""
    found = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(prefix):
            continue
        view = app.view_functions[rule.endpoint]
        action = getattr(view, "console_action", None)
        assert action is not None, f"{rule.rule} ({rule.endpoint}) declares no console action"
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            found.append((rule, method, action))
    return found


@pytest.mark.parametrize("role", admins.ROLES)
def test_every_console_route_answers_its_roles_and_refuses_the_others(app, clock, role):
    client = signed_in_console(app, clock, role)
    token = csrf_token(client, "/admin/")
    checked = 0
    for rule, method, action in routes(app, "admin."):
        if action == "public":
            continue
        response = client.open(_url(rule), method=method, headers={"X-CSRFToken": token},
                               data={"csrf_token": token})
        if admins.can(role, action):
            assert response.status_code != 403, (rule.rule, method, role)
        else:
            assert response.status_code == 403, (rule.rule, method, role, response.status_code)
        checked += 1
    assert checked >= 1


def test_every_api_route_refuses_a_removed_token(app):
    """A revoked token is refused at once, on every endpoint (and says so, in JSON)."""
    from app.core import api_tokens
    from tests.conftest import TEST_ORIGIN, committed

    token = api_token(app, "gone", admins.ADMIN)
    with committed(app) as c:
        api_tokens.remove(c, TEST_ORIGIN, "gone")
    checked = 0
    for rule, method, action in routes(app, "api."):
        if action == "public":
            continue
        answer = app.test_client().open(_url(rule), method=method, json={},
                                        headers={"Authorization": f"Bearer {token}"})
        assert answer.status_code == 401, (rule.rule, method, answer.status_code)
        assert "not valid" in answer.get_json()["error"]
        checked += 1
    assert checked >= 10


@pytest.mark.parametrize("role", admins.ROLES)
def test_every_api_route_answers_its_roles_and_refuses_the_others(app, role):
    token = api_token(app, role=role)
    for rule, method, action in routes(app, "api."):
        if action == "public":
            continue
        path = _url(rule)
        anonymous = app.test_client().open(path, method=method)
        assert anonymous.status_code == 401 and "error" in anonymous.get_json(), rule.rule
        response = app.test_client().open(path, method=method, json={},
                                          headers={"Authorization": f"Bearer {token}"})
        if admins.can(role, action):
            assert response.status_code != 403, (rule.rule, method, role)
        else:
            assert response.status_code == 403, (rule.rule, method, role)
            assert "error" in response.get_json()
