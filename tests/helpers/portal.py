"""The portal's steps through Flask's test client (portal and SSO prompt tests)."""

from __future__ import annotations

import re

from tests.conftest import post, totp_code


def text(response) -> str:
    return response.get_data(as_text=True)


def step_up(client, passcode: str, next_step: str = "add", device: str = ""):
    return post(client, "/prompt", {"next": next_step, "passcode": passcode, "device": device},
                token_from=f"/prompt?next={next_step}")


def enrol(client, clock, device_type="tablet", platform="ios", name="My iPad"):
    """Type, platform, app, activation, name. Returns (device name page response, secret)."""
    assert post(client, "/devices/add/type", {"device_type": device_type},
                token_from="/devices/add/type").headers["Location"] == "/devices/add/platform"
    assert post(client, "/devices/add/platform", {"platform": platform},
                token_from="/devices/add/platform").headers["Location"] == "/devices/add/app"
    assert post(client, "/devices/add/app", token_from="/devices/add/app"
                ).headers["Location"] == "/devices/add/activate"
    page = text(client.get("/devices/add/activate"))
    secret = re.search(r'<code id="secret" class="secret">([A-Z2-7 ]+)</code>', page).group(1)
    secret = secret.replace(" ", "")
    response = post(client, "/devices/add/activate", {"passcode": totp_code(secret, clock.now)},
                    token_from="/devices/add/activate")
    assert response.headers["Location"] == "/devices/add/name"
    response = post(client, "/devices/add/name", {"name": name}, token_from="/devices/add/name")
    assert response.headers["Location"] == "/devices/add/done"
    return client.get("/devices/add/done"), secret
