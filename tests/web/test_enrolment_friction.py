"""Issue 17, "Enrolment without friction" (points 1, 3, 4 and 5), through Flask's test client.

Each test failed on the code before it: the first login right after activation was refused as
a replay; the wizard had no "Back" or "Cancel"; a user without a device clicked once more for
the passcode field; every device was suggested the same name; a failed push repeated the
prompt's buttons.
"""

from __future__ import annotations

import re

from app.core import devices, users
from app.models import Device
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    issue_recovery,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.helpers.portal import enrol, step_up, text


def _enrolled(app, client, clock, **kwargs) -> tuple[str, int]:
    """alice signs in, steps up with a recovery passcode and adds a device (activated at
    clock.now). (its secret, its id)"""
    make_user(app)
    sign_in(client)
    step_up(client, issue_recovery(app))
    _, secret = enrol(client, clock, **kwargs)
    with app.app_context():
        from app.extensions import core

        device_id = core.context().db.query(Device.id).filter(Device.active).scalar()
    return secret, device_id


def _login(client, device_id: int, code: str):
    return post(client, "/prompt", {"next": "done", "device": str(device_id), "passcode": code},
                token_from="/prompt?next=done")


def test_the_first_login_right_after_activation_takes_the_same_code(app, client, clock):
    secret, device_id = _enrolled(app, client, clock)
    code = totp_code(secret, clock.now)  # the step the activation used, still current
    assert _login(client, device_id, code).headers["Location"] == "/prompt/done"
    rows = [r.detail for r in audit_rows(app, "factor") if r.result == "ok"]
    assert rows == ["recovery", "totp:activation"]  # the login recorded as the activation's
    # once: the same code again is a replay, as ever
    response = _login(client, device_id, code)
    assert response.status_code == 401 and "already been used" in text(response)


def test_the_activation_covers_no_other_session(app, client, clock):
    secret, device_id = _enrolled(app, client, clock)
    other = app.test_client()
    sign_in(other)
    response = _login(other, device_id, totp_code(secret, clock.now))
    assert response.status_code == 401 and "already been used" in text(response)


def test_the_activation_covers_nothing_once_a_later_code_was_used(app, client, clock):
    secret, device_id = _enrolled(app, client, clock)
    assert _login(client, device_id, totp_code(secret, clock.now, 1)).status_code == 302
    response = _login(client, device_id, totp_code(secret, clock.now))
    assert response.status_code == 401


def test_without_a_device_the_passcode_field_is_there_at_once(app, client):
    make_user(app)
    sign_in(client)
    page = text(client.get("/prompt?next=add"))
    assert 'name="passcode"' in page and "autofocus" in page
    assert ">Enter a Passcode</a>" not in page  # nothing to click first
    assert "type your 9-digit recovery passcode below" in page


def test_every_step_has_back_and_cancel(app, client):
    make_user(app)
    sign_in(client)
    step_up(client, issue_recovery(app))
    back = {"type": "/", "platform": "/devices/add/type", "app": "/devices/add/platform",
            "activate": "/devices/add/app"}
    post(client, "/devices/add/type", {"device_type": "mobile"}, token_from="/devices/add/type")
    post(client, "/devices/add/platform", {"platform": "android"},
         token_from="/devices/add/platform")
    post(client, "/devices/add/app", token_from="/devices/add/app")
    for step, url in {"type": "/devices/add/type", "platform": "/devices/add/platform",
                      "app": "/devices/add/app", "activate": "/devices/add/activate"}.items():
        page = text(client.get(url))
        assert f'href="{back[step]}">Back</a>' in page, step
        assert 'action="/devices/add/cancel"' in page and ">Cancel</button>" in page, step
    # "Back" from the QR code and a new choice: still one pending device
    assert "I have Duo Mobile installed" in text(client.get("/devices/add/app"))
    # "Cancel": the pending device is gone, the wizard left, the audit says so
    response = post(client, "/devices/add/cancel", token_from="/devices/add/activate")
    assert response.headers["Location"] == "/"  # a recovery passcode opens nothing else
    with app.app_context():
        from app.extensions import core

        assert core.context().db.query(Device).count() == 0
    assert [r.result for r in audit_rows(app, "device.enrol_cancel")] == ["ok"]
    assert client.get("/devices/add/activate").headers["Location"].startswith("/devices/add")


def test_cancel_after_a_device_login_goes_to_settings(app, client, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    sign_in(client)
    assert step_up(client, totp_code(secret, clock.now)).status_code == 302
    page = text(client.get("/devices/add/type"))
    assert 'href="/settings">Back</a>' in page
    assert post(client, "/devices/add/cancel", token_from="/devices/add/type"
                ).headers["Location"] == "/settings"


def test_suggested_names_are_distinct_and_prefilled(app, client, clock):
    _enrolled(app, client, clock, device_type="mobile", platform="android",
              name="Android mobile phone")
    step_up(client, issue_recovery(app))
    post(client, "/devices/add/type", {"device_type": "mobile"}, token_from="/devices/add/type")
    post(client, "/devices/add/platform", {"platform": "android"},
         token_from="/devices/add/platform")
    post(client, "/devices/add/app", {"app": "push"}, token_from="/devices/add/app")
    with app.app_context():
        from app.extensions import core

        pending = core.context().db.query(Device).filter(~Device.active).one()
        assert pending.name == "Android mobile phone 2"


def test_two_devices_may_not_share_a_name(app):
    make_user(app)
    with app.app_context():
        from app.extensions import core

        ctx = core.context()
        alice = users.get(ctx, "alice")
        first, _ = devices.add_totp(ctx, TEST_ORIGIN, alice, "Phone")
        second, _ = devices.add_totp(ctx, TEST_ORIGIN, alice, "Tablet")
        assert devices.suggested_name(alice, "mobile", "ios") == "iOS mobile phone"
        try:
            devices.rename(ctx, TEST_ORIGIN, alice, second.id, " phone ")
        except devices.DeviceError as exc:
            assert "already have a device named" in str(exc)
        else:
            raise AssertionError("a second device named Phone")
        assert devices.rename(ctx, TEST_ORIGIN, alice, first.id, "Phone").name == "Phone"
        assert re.fullmatch(r"Tablet", second.name)
