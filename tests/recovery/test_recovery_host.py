"""Where the recovery portal is served: a path prefix, or the root of its own host name;
and its settings."""

from __future__ import annotations

import pytest

from app.config import ConfigError, load_settings
from tests.conftest import make_user
from tests.helpers import recovery_steps as steps

HOST = "recovery.example.edu"
ON_HOST = {"base_url": f"http://{HOST}"}


@pytest.mark.parametrize("settings_overrides", [{"recovery_prefix": "/lost/"}])
def test_a_configured_path_prefix(app, client):
    make_user(app)
    body = client.get("/lost/").get_data(as_text=True)
    assert 'href="/lost/identify/student"' in body
    assert client.get("/recovery/").status_code == 404
    step2, step3, step4 = steps.walk(client, prefix="/lost")
    assert step2.headers["Location"] == "/lost/options"
    assert step3.headers["Location"] == "/lost/password"
    assert steps.passcode_of(step4)


@pytest.mark.parametrize("settings_overrides", [{"recovery_host": HOST.upper(),
                                                 "base_url": "https://2fa.example.edu"}])
def test_its_own_host_name_serves_it_at_the_root(app, client):
    make_user(app)
    page = client.get("/", **ON_HOST)
    body = page.get_data(as_text=True)
    assert page.status_code == 200 and "Recovery portal" in body
    assert 'href="/identify/student"' in body and "/recovery/" not in body
    form = client.get("/identify/student", **ON_HOST).get_data(as_text=True)
    assert 'action="/identify/student"' in form and 'href="/">(choose another role)' in form
    step2, step3, step4 = steps.walk(client, prefix="", http=ON_HOST)
    assert step2.headers["Location"] == "/options"
    assert step3.headers["Location"] == "/password"
    code = steps.passcode_of(step4)
    assert client.get("/password", **ON_HOST).headers["Location"] == "/"  # spent
    assert 'href="https://2fa.example.edu/">Go to the 2FA portal' in step4.get_data(
        as_text=True)
    # Host names are case-insensitive and a port does not matter.
    assert client.get("/", base_url=f"http://{HOST.title()}:8080").status_code == 200
    assert client.get("/static/css/site.css", **ON_HOST).status_code == 200
    # Nothing else of the service answers on the recovery host ...
    for url in ("/sign-in", "/settings", "/devices/add", "/prompt"):
        assert client.get(url, **ON_HOST).status_code == 404
    # ... and the recovery portal does not answer on the service's own host,
    assert client.get("/recovery/").status_code == 404
    # where the 2FA portal still is, and takes the passcode.
    assert "UMPASS password" in client.get("/").get_data(as_text=True)
    assert steps.use_in_portal(app.test_client(), code).status_code == 302


@pytest.mark.parametrize("settings_overrides", [{"recovery_host": f"{HOST}:8443"}])
def test_a_host_name_with_a_port_must_match_the_port(app, client):
    assert client.get("/", base_url=f"https://{HOST}:8443").get_data(as_text=True).count(
        "Recovery portal") >= 1
    assert "Recovery portal" not in client.get("/", base_url=f"https://{HOST}").get_data(
        as_text=True)


@pytest.mark.parametrize("settings_overrides", [{"recovery_host": HOST,
                                                 "campus_networks": "10.0.0.0/8"}])
def test_the_recovery_host_is_reachable_from_off_campus(app, client):
    make_user(app)
    assert client.get("/").status_code == 403
    assert steps.passcode_of(steps.walk(client, prefix="", http=ON_HOST)[2])


def test_settings_from_the_environment(tmp_path):
    settings = load_settings({"instance_dir": tmp_path}, environ={
        "UM2FA_RECOVERY_ROLES": "Student, Staff,,alumni ",
        "UM2FA_RECOVERY_PREFIX": "account-recovery/",
        "UM2FA_RECOVERY_HOST": " Recovery.Account.Example.EDU ",
        "UM2FA_RECOVERY_MAX_FAILURES": "3",
        "UM2FA_RECOVERY_LOCK_SECONDS": "1800",
        "UM2FA_SMTP_HOST": "mail.example.edu", "UM2FA_SMTP_PORT": "587",
        "UM2FA_SMTP_FROM": "2fa@example.edu", "UM2FA_SMTP_STARTTLS": "yes",
    })
    assert settings.recovery_roles == ("student", "staff", "alumni")
    assert settings.recovery_prefix == "/account-recovery"
    assert settings.recovery_host == "recovery.account.example.edu"
    assert (settings.recovery_max_failures, settings.recovery_lock_seconds) == (3, 1800)
    assert (settings.smtp_port, settings.smtp_starttls) == (587, True)
    defaults = load_settings({"instance_dir": tmp_path}, environ={})
    assert defaults.recovery_roles == ("student", "staff") and not defaults.smtp_starttls
    assert defaults.recovery_prefix == "/recovery" and defaults.smtp_host == ""


@pytest.mark.parametrize(("env", "message"), [
    ({"UM2FA_RECOVERY_PREFIX": "/"}, "UM2FA_RECOVERY_PREFIX"),
    ({"UM2FA_RECOVERY_ROLES": " , "}, "UM2FA_RECOVERY_ROLES"),
    ({"UM2FA_RECOVERY_MAX_FAILURES": "0"}, "UM2FA_RECOVERY_MAX_FAILURES"),
    ({"UM2FA_RECOVERY_LOCK_SECONDS": "an hour"}, "whole number"),
    ({"UM2FA_SMTP_STARTTLS": "maybe"}, "UM2FA_SMTP_STARTTLS must be true or false"),
    ({"UM2FA_SMTP_HOST": "mail.example.edu"}, "UM2FA_SMTP_FROM is required"),
])
def test_bad_settings_are_named(tmp_path, env, message):
    with pytest.raises(ConfigError, match=message):
        load_settings({"instance_dir": tmp_path}, environ=env)
