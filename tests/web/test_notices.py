"""Issue 13, point 2: the user hears of every change to their second factor, on every channel,
with a one-click "This wasn't me"; a device enrolled with a recovery passcode is held back.

The attacks: someone who learnt the password and personal details gets a recovery passcode,
adds their own phone and removes the person's, unnoticed; or locks the person out. Real peers:
an SMTP server (aiosmtpd) on 127.0.0.1, the local Web Push service, the companion app's signed
calls, Flask's test client as the browser."""

from __future__ import annotations

import dataclasses
import re
from datetime import datetime, timedelta
from email import message_from_bytes
from email.policy import default as default_policy
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from app.core import devices, notices, passcodes, recovery, users
from app.core.context import Origin
from app.i18n import local as local_text
from app.i18n import use_language
from app.models import Device, Notice, RecoveryPasscode, User
from tests.conftest import (
    add_totp_device,
    audit_rows,
    committed,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.helpers.mail import delivered, running_inbox
from tests.helpers.portal import text
from tests.peers.live import free_port
from tests.peers.push_device import API, PushDevice, enrol
from tests.peers.push_service import PushService

BASE = "https://2fa.example.edu"
HELP_DESK = "helpdesk@um.example.edu"
LINK_RE = re.compile(re.escape(BASE) + r"(/this-wasnt-me/[A-Za-z0-9_-]+)")
THIEF = Origin(door="recovery", client_addr="203.0.113.9")


@pytest.fixture
def push_service():
    with PushService() as service:
        yield service


@pytest.fixture
def smtp_port() -> int:
    return free_port()  # chosen now, not at import: nothing else has taken it meanwhile


@pytest.fixture
def inbox(smtp_port):
    with running_inbox(smtp_port) as box:
        yield box


@pytest.fixture
def settings_overrides(push_service, smtp_port) -> dict:
    return {"smtp_host": "127.0.0.1", "smtp_port": smtp_port, "smtp_from": "2fa@um.example.edu",
            "smtp_timeout": 5, "base_url": BASE, "admin_emails": HELP_DESK,
            "webpush_test_service": push_service.host_port, "lockout_threshold": 3}


@pytest.fixture
def phone(app, client, inbox, push_service) -> PushDevice:
    """alice, with the companion app (Web Push on); the set-up's own notices are cleared."""
    make_user(app)
    device = PushDevice.with_client(client)
    assert device.activate(enrol(app), subscription=push_service.subscribe()).status == 201
    assert len(mails_to(inbox)) == 1
    assert push_service.messages == []  # the device just added is not told of itself
    inbox.messages.clear()
    push_service.messages.clear()
    return device


def mails_to(inbox, address: str = "alice@example.edu") -> list:
    return [message_from_bytes(raw, policy=default_policy)
            for _sender, to, raw in delivered(inbox) if address in to]


def local(clock) -> str:
    """The time as the mail says it (English: "6 Dec 2026, 3:26 pm", Macau time)."""
    from app.i18n import local as local_words

    return local_words(datetime.fromtimestamp(clock.now, ZoneInfo("Asia/Macau")))


def told(inbox, push_service, phone, clock, event: str, what: str, where: str) -> str:
    """One email with what, when (local time), from where and the link; one wake-up to the
    companion app and the notice in its list. Returns the link's path."""
    [mail] = mails_to(inbox)
    body = mail.get_content()
    assert what in mail["Subject"] and what in body
    assert f"When: {local(clock)}" in body and "Times in this message are Macao time" in body
    assert where in body
    [wake] = push_service.wait_for(1)
    assert wake.payload["type"] == "notice"
    listed = phone.call("GET", f"{API}/notices")
    assert listed.status == 200
    assert [n["event"] for n in listed.data["notices"]][0] == event
    assert listed.data["notices"][0]["id"] == wake.payload["id"]
    return LINK_RE.search(body).group(1)


# --- each of the four events tells the user on every channel --------------------------------

def test_a_recovery_passcode_issued_is_told_by_email_and_in_the_app(app, phone, inbox,
                                                                    push_service, clock):
    with committed(app) as c:
        code, _row = recovery.issue(c, THIEF, users.get(c, "alice"))
    told(inbox, push_service, phone, clock, "recovery_issued",
         "A recovery passcode was issued", "203.0.113.9, through the recovery portal")
    raw = delivered(inbox)[0][2].decode()
    assert code not in raw and f"{code[:3]} {code[3:6]} {code[6:]}" not in raw


def test_a_device_added_is_told_by_email_and_in_the_app(app, phone, inbox, push_service, clock):
    with committed(app) as c:
        devices.add_totp(c, Origin("cli", "10.9.8.7"), users.get(c, "alice"), "Thief's phone")
    told(inbox, push_service, phone, clock, "device_added",
         "A device was added to your account: Thief's phone", "10.9.8.7, through the IT help")


def test_a_device_removed_is_told_by_email_and_in_the_app(app, phone, inbox, push_service,
                                                          clock):
    device_id, _secret = add_totp_device(app, name="Old phone")
    delivered(inbox)
    push_service.wait_for(1)
    inbox.messages.clear()
    push_service.messages.clear()
    with committed(app) as c:
        devices.remove(c, Origin("portal", "10.0.0.5"), users.get(c, "alice"), device_id)
    told(inbox, push_service, phone, clock, "device_removed",
         "A device was removed from your account: Old phone", "10.0.0.5, through the 2FA")


def test_the_account_locked_is_told_by_email_and_in_the_app(app, phone, inbox, push_service,
                                                            clock):
    vpn = Origin("radius", "192.0.2.50")
    with committed(app) as c:
        alice = users.get(c, "alice")
        for _ in range(3):
            passcodes.verify_passcode(c, vpn, alice, "123456", device_id=999999)
    told(inbox, push_service, phone, clock, "account_locked",
         "Your account was locked", "192.0.2.50, through the VPN")


def test_a_rolled_back_action_tells_nobody(app, phone, inbox, push_service):
    with committed(app) as c:
        recovery.issue(c, THIEF, users.get(c, "alice"))
        c.db.rollback()
    assert mails_to(inbox) == []
    with committed(app) as c:
        assert c.db.scalars(select(Notice).where(Notice.event == "recovery_issued")).all() == []
    assert push_service.messages == []


def test_a_mail_server_that_is_down_does_not_stop_the_action(app, phone, inbox, push_service):
    with committed(app) as c:
        c.settings = dataclasses.replace(c.settings, smtp_port=free_port())
        devices.add_totp(c, THIEF, users.get(c, "alice"), "Tablet")
    delivered(inbox)
    [failed] = [r for r in audit_rows(app, "notice.email") if r.result == "fail"]
    assert "Connection" in failed.detail
    with committed(app) as c:
        assert any(d.name == "Tablet" for d in devices.list_for(c, users.get(c, "alice")))


# --- "This wasn't me" -------------------------------------------------------------------------

def added_by_thief(app, inbox, push_service) -> tuple[int, str]:
    """The thief adds a device; returns (its id, the link's path from alice's email)."""
    with committed(app) as c:
        device, _ = devices.add_totp(c, THIEF, users.get(c, "alice"), "Thief's phone")
        device_id = device.id
    [mail] = mails_to(inbox)
    push_service.wait_for(1)
    return device_id, LINK_RE.search(mail.get_content()).group(1)


def signed_in(client) -> bool:
    return "Sign out" in text(client.get("/"))


def off_campus(app):
    browser = app.test_client()
    browser.environ_base["REMOTE_ADDR"] = "198.51.100.23"
    return browser


def alice(app) -> User:
    with committed(app) as c:
        user = users.get(c, "alice")
        c.db.expunge(user)
        return user


def device_exists(app, device_id: int) -> bool:
    with committed(app) as c:
        return c.db.get(Device, device_id) is not None


def test_opening_the_link_changes_nothing(app, phone, inbox, push_service):
    laptop = app.test_client()
    assert sign_in(laptop).status_code == 302
    device_id, path = added_by_thief(app, inbox, push_service)
    page = off_campus(app).get(path)
    assert page.status_code == 200
    assert "Thief&#39;s phone" in text(page) and "This wasn't me</button>" in text(page)
    assert device_exists(app, device_id) and not alice(app).disabled and signed_in(laptop)
    assert audit_rows(app, "notice.wasnt_me") == []


def test_this_wasnt_me_removes_the_device_signs_out_locks_and_alerts_the_help_desk(
        app, phone, inbox, push_service):
    laptop = app.test_client()
    assert sign_in(laptop).status_code == 302
    device_id, path = added_by_thief(app, inbox, push_service)
    inbox.messages.clear()
    browser = off_campus(app)
    response = post(browser, path, token_from=path)
    assert response.status_code == 200 and "Your account is locked" in text(response)
    assert not device_exists(app, device_id)
    assert alice(app).disabled
    assert not signed_in(laptop)
    [alert] = mails_to(inbox, HELP_DESK)
    assert "alice" in alert["Subject"] and "198.51.100.23" in alert.get_content()
    [done] = audit_rows(app, "notice.wasnt_me")
    assert done.result == "ok" and "removed" in done.detail


def test_this_wasnt_me_revokes_the_recovery_passcode_just_issued(app, phone, inbox,
                                                                  push_service):
    with committed(app) as c:
        code, row = recovery.issue(c, THIEF, users.get(c, "alice"))
        passcode_id = row.id
    path = LINK_RE.search(mails_to(inbox)[0].get_content()).group(1)
    assert post(off_campus(app), path, token_from=path).status_code == 200
    with committed(app) as c:
        assert c.db.get(RecoveryPasscode, passcode_id).revoked_at is not None
    assert alice(app).disabled


def test_a_second_use_of_the_link_does_nothing(app, phone, inbox, push_service, runner):
    _device_id, path = added_by_thief(app, inbox, push_service)
    browser = off_campus(app)
    assert post(browser, path, token_from=path).status_code == 200
    assert runner.invoke(args=["users", "unlock", "alice"]).exit_code == 0
    assert len(mails_to(inbox, HELP_DESK)) == 1
    inbox.messages.clear()
    again = post(browser, path, token_from="/recovery/")
    assert again.status_code == 409 and "used already" in text(again)
    assert not alice(app).disabled and mails_to(inbox, HELP_DESK) == []
    assert [r.result for r in audit_rows(app, "notice.wasnt_me")] == ["ok", "fail"]


def test_an_expired_link_does_nothing(app, phone, inbox, push_service, clock):
    device_id, path = added_by_thief(app, inbox, push_service)
    clock.advance(8 * 86400)
    browser = off_campus(app)
    assert "This link has expired" in text(browser.get(path))
    response = post(browser, path, token_from="/recovery/")
    assert response.status_code == 404 and "expired" in text(response)
    assert device_exists(app, device_id) and not alice(app).disabled


def test_a_forged_link_does_nothing(app, phone, inbox, push_service):
    device_id, path = added_by_thief(app, inbox, push_service)
    forged = path[:-4] + ("AAAA" if not path.endswith("AAAA") else "BBBB")
    browser = off_campus(app)
    assert browser.get(forged).status_code == 404
    response = post(browser, forged, token_from="/recovery/")
    assert response.status_code == 404 and "not valid" in text(response)
    assert device_exists(app, device_id) and not alice(app).disabled
    assert post(browser, "/this-wasnt-me/" + "x" * 500, token_from="/recovery/"
                ).status_code == 404


def test_the_companion_app_can_say_this_wasnt_me_once(app, phone, inbox, push_service):
    device_id, _path = added_by_thief(app, inbox, push_service)
    [wake] = push_service.messages
    notice_id = wake.payload["id"]
    reply = phone.call("POST", f"{API}/notices/{notice_id}/wasnt-me")
    assert reply.status == 200 and reply.data == {"status": "locked"}
    assert not device_exists(app, device_id) and alice(app).disabled
    with committed(app) as c:
        users.unlock(c, THIEF, "alice")
    assert phone.call("POST", f"{API}/notices/{notice_id}/wasnt-me").status == 409
    assert phone.call("POST", f"{API}/notices/999999/wasnt-me").status == 404
    assert not alice(app).disabled


def test_another_users_notice_is_not_found_by_the_app(app, phone, inbox, push_service):
    make_user(app, "bob")
    with committed(app) as c:
        recovery.issue(c, THIEF, users.get(c, "bob"))
        notice_id = c.db.scalars(select(Notice.id).where(
            Notice.user_id == users.get(c, "bob").id)).one()
    assert phone.call("POST", f"{API}/notices/{notice_id}/wasnt-me").status == 404
    listed = phone.call("GET", f"{API}/notices").data["notices"]
    assert str(notice_id) not in [n["id"] for n in listed]


# --- the hold on a device enrolled with a recovery passcode ---------------------------------

@pytest.fixture
def two_devices(app) -> tuple[int, int, str]:
    """alice's own phone, and a phone enrolled with a recovery passcode just now (point 1
    sets enrolled_via; here it is set on the row). Returns (own id, recovery id, its secret)."""
    make_user(app)
    own, _ = add_totp_device(app, name="Own phone")
    new, secret = add_totp_device(app, name="New phone")
    with committed(app) as c:
        c.db.get(Device, new).enrolled_via = "recovery"
    return own, new, secret


def second_factor_with(app, client, clock, device_id: int, secret: str) -> None:
    assert sign_in(client).status_code == 302
    response = post(client, "/prompt", {"next": "settings", "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)},
                    token_from="/prompt?next=settings")
    assert response.headers["Location"] == "/settings"


@pytest.mark.parametrize("settings_overrides", [{}])
def test_a_recovery_device_cannot_remove_the_others_during_the_hold(app, client, clock,
                                                                    two_devices):
    own, new, secret = two_devices
    second_factor_with(app, client, clock, new, secret)
    assert "added with a recovery passcode" in text(client.get(f"/settings/devices/{own}/remove"))
    response = post(client, f"/settings/devices/{own}/remove", token_from="/settings")
    assert response.status_code == 403
    page = text(response)
    assert "added with a recovery passcode" in page
    until = datetime.fromtimestamp(clock.now, ZoneInfo("Asia/Macau")) + timedelta(hours=24)
    # local time, the zone named (app/i18n: "7 Dec 2026, 6:44 pm Macao time (GMT+08:00)")
    with use_language("en"):
        assert f"{local_text(until)} Macao time (GMT+08:00)" in page
    assert device_exists(app, own)
    [held] = [r for r in audit_rows(app, "device.remove") if r.result == "held"]
    assert held.device == "Own phone"


@pytest.mark.parametrize("settings_overrides", [{}])
def test_after_the_hold_the_recovery_device_may_remove_the_others(app, client, clock,
                                                                  two_devices):
    own, new, secret = two_devices
    with committed(app) as c:
        c.db.get(Device, new).created_at = c.now() - timedelta(hours=24, minutes=1)
    second_factor_with(app, client, clock, new, secret)
    response = post(client, f"/settings/devices/{own}/remove", token_from="/settings")
    assert response.status_code == 302 and not device_exists(app, own)


@pytest.mark.parametrize("settings_overrides", [{}])
def test_the_recovery_device_may_remove_itself(app, client, clock, two_devices):
    own, new, secret = two_devices
    second_factor_with(app, client, clock, new, secret)
    assert post(client, f"/settings/devices/{new}/remove",
                token_from="/settings").status_code == 302
    assert not device_exists(app, new) and device_exists(app, own)


@pytest.mark.parametrize("settings_overrides", [{}])
def test_the_persons_own_device_removes_the_recovery_device_at_once(app, client, clock,
                                                                    two_devices):
    own, new, _secret = two_devices
    with committed(app) as c:
        own_secret = devices.secret_of(c, c.db.get(Device, own))
    second_factor_with(app, client, clock, own, own_secret)
    assert post(client, f"/settings/devices/{new}/remove",
                token_from="/settings").status_code == 302
    assert not device_exists(app, new) and device_exists(app, own)


@pytest.mark.parametrize("settings_overrides", [{}])
def test_no_hold_when_the_user_has_no_other_device(app, two_devices):
    own, new, _secret = two_devices
    with committed(app) as c:
        alice_row = users.get(c, "alice")
        assert devices.hold_until(c, alice_row, c.db.get(Device, new)) is not None
        devices.remove(c, THIEF, alice_row, own)
    with committed(app) as c:
        alice_row = users.get(c, "alice")
        assert devices.hold_until(c, alice_row, c.db.get(Device, new)) is None


def test_notices_name_no_secret_and_keep_only_a_hash_of_the_token(app, phone, inbox,
                                                                  push_service):
    _device_id, path = added_by_thief(app, inbox, push_service)
    token = path.rsplit("/", 1)[1]
    with committed(app) as c:
        rows = c.db.scalars(select(Notice)).all()
        assert all(token.encode() not in r.token_hash for r in rows)
        assert notices.find(c, token) is not None


def test_this_wasnt_me_on_recent_activity_alerts_the_help_desk(app, client, clock, inbox):
    """ "My Settings & Devices" -> Recent activity -> "This wasn't me" on a sign-in: the alert
    says what, when and from where, and that the person saw it in their recent activity."""
    make_user(app)
    device_id, secret = add_totp_device(app)
    sign_in(client)
    post(client, "/prompt", {"next": "settings", "device": str(device_id),
                             "passcode": totp_code(secret, clock.now)},
         token_from="/prompt?next=settings")
    [row] = audit_rows(app, "sign_in")
    url = f"/settings/activity/{row.id}/wasnt-me"
    assert "Your account is locked" in text(post(client, url, token_from=url))
    [alert] = mails_to(inbox, HELP_DESK)
    body = alert.get_content()
    assert "alice" in alert["Subject"] and "on their recent activity" in body
    assert "Signed in with your password" in body and "through the 2FA portal" in body
