""" "Recent activity" in "My Settings & Devices": the person's last sign-ins and device changes
(when in local time, from where, which door), each with "This wasn't me"."""

from __future__ import annotations

from app.core import audit, support, users
from tests.conftest import (
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    csrf_token,
    make_user,
    post,
    sign_in,
    totp_code,
)


def settings_client(app, client, clock) -> None:
    make_user(app)
    device_id, secret = add_totp_device(app, name="Phone")
    sign_in(client)
    response = post(client, "/prompt", {"next": "settings", "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)},
                    token_from="/prompt?next=settings")
    assert response.headers["Location"] == "/settings"


def test_recent_activity_lists_sign_ins_and_device_changes(app, client, clock):
    settings_client(app, client, clock)
    page = client.get("/settings").get_data(as_text=True)
    assert "Recent activity" in page and "My Settings &amp; Devices" in page
    assert "Signed in with your password" in page and "Confirmed with a second factor" in page
    assert "Device added: Phone" in page and "Macao time (GMT+08:00)" in page  # local time
    assert "the 2FA portal" in page and "127.0.0.1" in page
    # the guide's texts are still there
    assert "Device Options" in page and "Add a new device" in page
    with committed(app) as c:
        rows = support.recent_activity(c, users.get(c, "alice"))
    assert [r.action for r in rows] == ["factor", "sign_in", "device.add"]
    assert page.count("This wasn't me") >= 3


def test_this_wasnt_me_on_a_sign_in_signs_out_and_locks(app, client, clock):
    settings_client(app, client, clock)
    [sign_in_row] = audit_rows(app, "sign_in")
    url = f"/settings/activity/{sign_in_row.id}/wasnt-me"
    assert url in client.get("/settings").get_data(as_text=True)
    confirm = client.get(url).get_data(as_text=True)
    assert "Signed in with your password" in confirm and "the 2FA portal" in confirm
    assert audit_rows(app, "activity.wasnt_me") == []  # a GET changes nothing
    done = client.post(url, data={"csrf_token": csrf_token(client, url)})
    assert done.status_code == 200 and "Your account is locked" in done.get_data(as_text=True)
    [row] = audit_rows(app, "activity.wasnt_me")
    assert row.result == "ok" and "Signed in with your password" in row.detail
    with committed(app) as c:
        assert users.get(c, "alice").disabled
    assert client.get("/settings").status_code == 302  # signed out


def test_this_wasnt_me_only_on_ones_own_activity(app, client, clock):
    make_user(app, "bob")
    with committed(app) as c:
        audit.record(c, TEST_ORIGIN, "sign_in", "ok", username="bob")
    settings_client(app, client, clock)
    bobs = audit_rows(app, "sign_in")[0]
    assert bobs.username == "bob"
    url = f"/settings/activity/{bobs.id}/wasnt-me"
    assert client.get(url).status_code == 404
    assert client.post(url, data={"csrf_token": csrf_token(client, "/settings")}).status_code \
        == 404
    assert "user.lock" not in [r.action for r in audit_rows(app)]
    assert client.post(f"/settings/activity/{bobs.id}/wasnt-me").status_code == 400

