"""The help-desk console and the admin API in tests: people with a console role, signed in as
they would (the password, then a passcode at the portal's prompt), and API tokens."""

from __future__ import annotations

from app.core import admins, api_tokens
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    committed,
    make_user,
    post,
    totp_code,
)


def make_admin(app, username: str = "hd", role: str = admins.HELPDESK) -> str:
    """A staff member with a TOTP device and a console role: the device's secret."""
    make_user(app, username, role="staff")
    _, secret = add_totp_device(app, username)
    with committed(app) as c:
        admins.add(c, TEST_ORIGIN, username, role)
    return secret


def console_sign_in(client, clock, username: str, secret: str, *, offset: int = 0):
    """The console's sign-in (password), then the 2FA prompt: the response of the passcode."""
    response = post(client, "/admin/sign-in", {"username": username, "password": PASSWORD},
                    token_from="/admin/sign-in")
    assert response.headers["Location"] == "/prompt?next=admin", response.get_data(as_text=True)
    return post(client, "/prompt?next=admin",
                {"passcode": totp_code(secret, clock.now, offset), "device": ""},
                token_from="/prompt?next=admin")


def signed_in_console(app, clock, role: str = admins.HELPDESK, username: str = ""):
    """A fresh browser whose person has `role` and is signed in to the console."""
    client = app.test_client()
    username = username or ("hd" if role == admins.HELPDESK else "boss")
    secret = make_admin(app, username, role)
    response = console_sign_in(client, clock, username, secret)
    assert response.headers["Location"] == "/admin/", response.get_data(as_text=True)
    return client


def api_token(app, name: str = "idm", role: str = admins.HELPDESK) -> str:
    with committed(app) as c:
        return api_tokens.add(c, TEST_ORIGIN, name, role)
