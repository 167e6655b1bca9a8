"""The companion app (the PWA at /app/) in Debian's Chromium, against a live server.

The app's own pieces first: the shell (page, manifest, service worker), its WebCrypto against
the server's checks (TOTP, P1363 signatures), then activation and answers through the device
API with pushes started by core in this process (on the live server's database). Last, the whole
story through the web pages: enrol the companion app on one page while the "phone" page opens
the activation link, then sign in with "Send me a Push" and approve (or deny) on the phone.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
import urllib.request
from contextlib import contextmanager

import pyotp
import pytest
from playwright.sync_api import Page, expect

from app import create_app
from app.core import device_keys, devices, push, users
from app.core.context import Origin
from app.extensions import core
from tests.browser.steps import (
    add_alice,
    add_device_until_app,
    assert_clean_console,
    assert_in_place,
    continue_to_login,
    enter_passcode,
    follow,
    issue_recovery,
    mark_page,
    name_device,
    sign_in,
)
from tests.peers.push_device import PushDevice

pytestmark = pytest.mark.browser

ORIGIN = Origin(door="portal", client_addr="10.0.0.7")


@contextmanager
def server_core(server):
    """A core Context on the live server's own database and keys (same instance directory)."""
    app = create_app({"instance_dir": server.instance_dir})
    try:
        with app.app_context():
            ctx = core.context()
            yield ctx
            ctx.db.commit()
    finally:
        core.database(app).dispose()


def new_activation(server) -> str:
    """What the enrolment page does for the companion app: a pending device and its code."""
    with server_core(server) as ctx:
        device = devices.begin_enrolment(ctx, ORIGIN, users.get(ctx, "alice"), "mobile",
                                         "android", kind="push")
        return push.new_activation(ctx, device)


def device_secret(server) -> str:
    with server_core(server) as ctx:
        [device] = push.push_devices(users.get(ctx, "alice"))
        return devices.secret_of(ctx, device)


def start_push(server, *, timeout: int | None = None) -> tuple[str, str]:
    with server_core(server) as ctx:
        request = push.start(ctx, ORIGIN, users.get(ctx, "alice"), None,
                             service="2FA portal", timeout=timeout)
        return request.public_id, request.number


def push_status(server, public_id: str) -> str:
    with server_core(server) as ctx:
        return push.status(ctx, users.get(ctx, "alice"), public_id)


def activate_phone(phone: Page, server, shots) -> None:
    phone.goto(f"{server.url}/app/#activate={new_activation(server)}")
    expect(phone.get_by_role("heading", name="Activate this phone")).to_be_visible()
    shots("phone-activate")
    phone.get_by_role("button", name="Activate").click()
    expect(phone.get_by_role("status").first).to_contain_text("This phone is activated for alice")
    expect(phone.locator(".account .a-code")).to_have_text(re.compile(r"^\d{6}$"))
    assert "#activate" not in phone.url  # the used code leaves the address bar


def request_card(phone: Page):
    return phone.locator("article.request").first


# --- the shell ------------------------------------------------------------------------------

def test_shell_manifest_and_service_worker(live_server, page: Page, shots) -> None:
    with urllib.request.urlopen(live_server.url + "/app/manifest.webmanifest") as r:  # noqa: S310
        assert r.headers.get_content_type() == "application/manifest+json"
        manifest = json.load(r)
    assert manifest["name"] == "UM 2FA"
    assert manifest["start_url"] == "/app/" and manifest["display"] == "standalone"
    assert {"192x192", "512x512"} <= {icon["sizes"] for icon in manifest["icons"]}
    for icon in manifest["icons"]:
        with urllib.request.urlopen(live_server.url + icon["src"]) as r:  # noqa: S310
            assert r.status == 200
    with urllib.request.urlopen(live_server.url + "/app/sw.js") as r:  # noqa: S310
        assert r.headers.get_content_type() == "text/javascript"
        assert "Content-Security-Policy" in r.headers

    page.goto(live_server.url + "/app/")
    expect(page.get_by_role("heading", name="Activate this phone")).to_be_visible()
    scope = page.evaluate("navigator.serviceWorker.ready.then(r => r.scope)")
    assert scope == live_server.url + "/app/"
    # The shell is cached for offline passcodes.
    cached = page.evaluate("caches.open('um2fa-companion-v1').then(c => c.keys())"
                           ".then(keys => keys.map(k => new URL(k.url).pathname))")
    assert {"/app/", "/static/companion/app.js", "/static/companion/crypto.js"} <= set(cached)
    shots("empty-app")
    # An unusable code gets a clear message, not a stack trace.
    page.get_by_label("Activation link or code").fill("http://x/app/#activate=nope-not-a-code-x")
    page.get_by_role("button", name="Activate").click()
    expect(page.get_by_role("alert")).to_contain_text("activation link is not valid")
    assert_clean_console(page, allow=("400",))


def test_webcrypto_matches_the_server(live_server, page: Page) -> None:
    """TOTP from the non-extractable HMAC key and the P1363 signatures, checked by Python."""
    page.goto(live_server.url + "/app/")
    secret = pyotp.random_base32(32)
    times = [0, 59, 1111111109, 1234567890, 2000000000, int(time.time())]
    result = page.evaluate("""async ([secret, times]) => {
        const c = await import('/static/companion/crypto.js');
        const key = await c.importTotpKey(secret);
        const codes = [];
        for (const t of times) codes.push(await c.totp(key, t));
        const pair = await c.newDeviceKey();
        let exported = true;
        try { await crypto.subtle.exportKey('pkcs8', pair.privateKey); } catch { exported = false; }
        const message = c.answerMessage('abc', 'approve', '042');
        return {codes, exported, extractable: key.extractable || pair.privateKey.extractable,
                spki: await c.exportPublicKey(pair),
                signature: await c.signText(pair.privateKey, message),
                hash: await c.sha256Hex('{"a": "é"}')};
    }""", [secret, times])
    assert result["codes"] == [pyotp.TOTP(secret).at(t) for t in times]
    assert result["exported"] is False and result["extractable"] is False
    der = device_keys.load_public_key(result["spki"])
    message = device_keys.answer_message("abc", "approve", "042")
    assert device_keys.verify(der, message, result["signature"])
    assert not device_keys.verify(der, message + "x", result["signature"])
    assert result["hash"] == hashlib.sha256('{"a": "é"}'.encode()).hexdigest()


# --- activation and answers through the device API --------------------------------------------

def test_activate_then_approve_deny_mismatch_fraud_and_expiry(live_server, page: Page,
                                                              shots) -> None:
    add_alice(live_server)
    phone = page
    activate_phone(phone, live_server, shots)
    # The passcode on the phone is the device's TOTP (read around one instant).
    secret = device_secret(live_server)
    shown = phone.locator(".account .a-code").inner_text()
    assert shown in {pyotp.TOTP(secret).at(time.time() + d) for d in (-30, 0, 30)}
    expect(phone.locator(".account .a-left")).to_contain_text("changes in")
    shots("phone-passcode")

    # Approve with the Verified Push number.
    public_id, number = start_push(live_server)
    card = request_card(phone)
    expect(card).to_contain_text("alice")
    expect(card).to_contain_text("2FA portal")
    expect(card).to_contain_text("10.0.0.7")
    field = card.get_by_label("Enter the number shown on your login screen")
    expect(field).to_be_visible()
    field.fill(number)
    shots("phone-request")
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_contain_text("Approved")
    shots("phone-approved")
    assert push_status(live_server, public_id) == "approved"

    # The notification's link (/app/#request=<id>) opens the app on that request.
    phone.goto(f"{live_server.url}/app/#request={public_id}")
    card = phone.locator(f"article.request.focus[data-id='{public_id}']")
    expect(card.get_by_role("status")).to_contain_text("Approved")
    assert "#request" not in phone.url
    pending_id, _ = start_push(live_server)
    phone.goto(f"{live_server.url}/app/#request={pending_id}")
    card = phone.locator(f"article.request.focus[data-id='{pending_id}']")
    expect(card.get_by_role("button", name="Approve")).to_be_visible()
    card.get_by_role("button", name="Deny").click()
    card.get_by_role("button", name="No, just deny").click()
    expect(card.get_by_role("status")).to_contain_text("Denied")

    # Deny: "Was this you?" -> "No, just deny".
    public_id, _ = start_push(live_server)
    card = phone.locator(f"article.request[data-id='{public_id}']")
    card.get_by_role("button", name="Deny").click()
    expect(card.get_by_role("group", name="Was this you?")).to_be_visible()
    shots("phone-was-this-you")
    card.get_by_role("button", name="No, just deny").click()
    expect(card.get_by_role("status")).to_contain_text("Denied")
    assert push_status(live_server, public_id) == "denied"

    # A wrong number.
    public_id, number = start_push(live_server)
    card = phone.locator(f"article.request[data-id='{public_id}']")
    card.get_by_label("Enter the number shown on your login screen").fill(
        f"{(int(number) + 1) % 1000:03d}")
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_contain_text("The number did not match")
    assert push_status(live_server, public_id) == "mismatch"

    # Expired before an answer (started with a 3 s timeout).
    public_id, _ = start_push(live_server, timeout=3)
    card = phone.locator(f"article.request[data-id='{public_id}']")
    expect(card).to_be_visible()
    expect(card.get_by_role("status")).to_contain_text("Expired", timeout=10000)
    shots("phone-expired")

    # Report as fraud.
    public_id, _ = start_push(live_server)
    card = phone.locator(f"article.request[data-id='{public_id}']")
    card.get_by_role("button", name="Deny").click()
    card.get_by_role("button", name="Report as fraud").click()
    expect(card.get_by_role("status")).to_contain_text("Reported as fraud")
    assert push_status(live_server, public_id) == "fraud"
    shots("phone-fraud")
    assert_clean_console(phone)


def registration_id(context, phone: Page, scope: str) -> str:
    """The service worker's registration id, from the DevTools protocol."""
    cdp = context.new_cdp_session(phone)
    found: dict[str, str] = {}

    def seen(event) -> None:
        for registration in event["registrations"]:
            if registration["scopeURL"] == scope and not registration["isDeleted"]:
                found["id"] = registration["registrationId"]

    cdp.on("ServiceWorker.workerRegistrationUpdated", seen)
    cdp.send("ServiceWorker.enable")
    deadline = time.monotonic() + 5
    while "id" not in found:
        assert time.monotonic() < deadline, "no service worker registration"
        phone.wait_for_timeout(100)
    phone.cdp = cdp
    return found["id"]


def test_no_push_service_push_message_and_offline_passcodes(live_server, browser,
                                                            shots) -> None:
    """Headless Chromium has no push service: subscribing fails and the app polls. A push
    message (delivered through DevTools) shows the notification. Offline, the cached shell
    still shows the passcode."""
    add_alice(live_server)
    context = browser.new_context(viewport={"width": 412, "height": 900})
    context.grant_permissions(["notifications"], origin=live_server.url)
    phone = context.new_page()
    errors: list[str] = []
    phone.on("console", lambda m: m.type == "error" and errors.append(m.text))
    try:
        phone_shots = type(shots)(phone, shots.dir.name)
        activate_phone(phone, live_server, phone_shots)
        expect(phone.get_by_text("Notifications are not available here")).to_be_visible(
            timeout=20000)
        public_id, number = start_push(live_server)
        card = request_card(phone)
        card.get_by_label("Enter the number shown on your login screen").fill(number)
        card.get_by_role("button", name="Approve").click()
        expect(card.get_by_role("status")).to_contain_text("Approved")
        phone_shots("phone-no-push-service")
        assert push_status(live_server, public_id) == "approved"

        # A push message: only the id rides it; the worker shows the notification.
        scope = live_server.url + "/app/"
        public_id, _ = start_push(live_server)
        phone.cdp = None
        reg = registration_id(context, phone, scope)
        phone.cdp.send("ServiceWorker.deliverPushMessage", {
            "origin": live_server.url + "/", "registrationId": reg,
            "data": json.dumps({"type": "push", "id": public_id})})
        titles = phone.evaluate("""async (id) => {
            const registration = await navigator.serviceWorker.ready;
            for (let i = 0; i < 50; i++) {
                const found = await registration.getNotifications({tag: 'request-' + id});
                if (found.length) return found.map(n => [n.title, n.data.id]);
                await new Promise(r => setTimeout(r, 100));
            }
            return [];
        }""", public_id)
        assert titles == [["Login request - tap to review", public_id]]
        expect(phone.locator(f"article.request[data-id='{public_id}']")).to_be_visible()

        # Offline: the service worker serves the cached shell; the passcode still shows.
        secret = device_secret(live_server)
        context.set_offline(True)
        phone.reload()
        expect(phone.locator(".account .a-code")).to_have_text(re.compile(r"^\d{6}$"))
        shown = phone.locator(".account .a-code").inner_text()
        assert shown in {pyotp.TOTP(secret).at(time.time() + d) for d in (-30, 0, 30)}
        expect(phone.get_by_text("Offline")).to_be_visible()
        phone_shots("phone-offline-passcode")
        context.set_offline(False)
        # Chromium says so itself: "...does not support the Push API in incognito mode";
        # offline, the polls fail as they should.
        assert [e for e in errors if "Push API" not in e
                and "ERR_INTERNET_DISCONNECTED" not in e] == []
    finally:
        context.close()


# --- the whole story through the web pages ----------------------------------------------------



def shot(shots, page: Page, label: str) -> None:
    """One numbered series for both pages (the phone's labels start with "phone-")."""
    shots.page = page
    shots(label)


def enrol_companion_app(page: Page, server, shots) -> Page:
    """ "Add a new device" -> the UM 2FA app; the phone (another page in the same browser) opens
    the activation link shown under the QR code, and the enrolment page moves on by itself;
    name it, then "Continue to Login"."""
    recovery = issue_recovery(server)
    sign_in(page, server, shots)
    follow(page, shots, "Add a new device")
    enter_passcode(page, shots, recovery, "recovery-passcode-typed")
    add_device_until_app(page, shots)
    page.get_by_role("button", name="UM 2FA app - Send me a Push").click()
    expect(page.get_by_role("heading", name="Activate the UM 2FA app")).to_be_visible()
    expect(page.get_by_role("img", name="QR code with the activation link")).to_be_visible()
    link = page.locator("#activation-link").inner_text().strip()
    assert link.startswith(server.url + "/app/#activate=")
    shot(shots, page, "enrol-qr")

    phone = page.context.new_page()
    phone.console_errors = []
    phone.on("console", lambda m: m.type == "error" and phone.console_errors.append(m.text))
    phone.set_viewport_size({"width": 412, "height": 900})
    phone.goto(link)
    expect(phone.get_by_label("Activation link or code")).not_to_have_value("")
    shot(shots, phone, "phone-activate")
    phone.get_by_role("button", name="Activate").click()
    expect(phone.get_by_role("status").first).to_contain_text("This phone is activated")
    expect(phone.locator(".account .a-code")).to_have_text(re.compile(r"^\d{6}$"))
    shot(shots, phone, "phone-activated")

    # No click on the enrolment page: htmx polling notices the activation.
    expect(page.get_by_role("heading", name="Give your device a name")).to_be_visible(
        timeout=10000)
    shots.page = page
    name_device(page, shots, "Alice's phone", {"name": "enrol-name", "added": "enrol-added"})
    continue_to_login(page)
    return phone


def send_push(page: Page, shots, label: str) -> str:
    """ "Send me a Push" in the prompt; the Verified Push number it shows."""
    page.get_by_role("radio", name="Alice's phone").check()
    page.get_by_role("button", name="Send me a Push").click()
    number = page.locator("#push-status .passcode-big")
    expect(number).to_have_text(re.compile(r"^\d{3}$"))
    shot(shots, page, f"{label}-push-sent")
    return number.inner_text()


def test_enrol_then_sign_in_with_a_push(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    phone = enrol_companion_app(page, live_server, shots)
    number = send_push(page, shots, "login")

    card = request_card(phone)
    expect(card).to_contain_text("alice")
    # where the sign-in comes from, in words (issue 17, point 7)
    expect(card.locator(".r-addr")).to_have_text("On campus (127.0.0.1)")
    expect(card.locator(".r-service")).to_have_text("2FA portal")
    card.get_by_label("Enter the number shown on your login screen").fill(number)
    shot(shots, phone, "phone-number-typed")
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_contain_text("Approved")
    shot(shots, phone, "phone-approved")

    # The login page finishes by itself (htmx polling, then HX-Redirect).
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible(timeout=5000)
    shot(shots, page, "login-done")
    assert_clean_console(page)
    assert_clean_console(phone)


def test_deny_on_the_phone_shows_the_message(live_server, page: Page, shots) -> None:
    add_alice(live_server)
    phone = enrol_companion_app(page, live_server, shots)
    send_push(page, shots, "login")

    card = request_card(phone)
    card.get_by_role("button", name="Deny").click()
    expect(card.get_by_role("group", name="Was this you?")).to_be_visible()
    shot(shots, phone, "phone-was-this-you")
    card.get_by_role("button", name="No, just deny").click()
    expect(card.get_by_role("status")).to_contain_text("Denied")
    shot(shots, phone, "phone-denied")

    expect(page.locator("#push-status")).to_contain_text(push.MESSAGES["denied"], timeout=5000)
    # try again from the methods bar; its buttons are not repeated under the message
    expect(page.get_by_role("button", name="Send me a Push")).to_have_count(1)
    expect(page.get_by_role("link", name="Enter a Passcode")).to_have_count(1)
    shot(shots, page, "login-denied")
    assert_clean_console(page)
    assert_clean_console(phone)


def test_automatically_send_me_a_push(live_server, page: Page, shots) -> None:
    """Issue 17, point 5: "Automatically send me a push" ticked in "My Settings & Devices"
    (htmx, in place); at the next sign-in the prompt arrives with the push pending, without a
    click, and approving it on the phone lets the person in."""
    add_alice(live_server)
    phone = page.context.new_page()
    phone.console_errors = []
    phone.on("console", lambda m: m.type == "error" and phone.console_errors.append(m.text))
    phone.set_viewport_size({"width": 412, "height": 900})
    activate_phone(phone, live_server, lambda label: None)
    sign_in(page, live_server, shots)
    follow(page, shots, "My Settings & Devices")
    enter_passcode(page, shots, pyotp.TOTP(device_secret(live_server)).now(), "step-up")
    box = page.get_by_role("checkbox", name="Automatically send me a push")
    expect(box).not_to_be_checked()
    url = mark_page(page)
    box.check()
    page.locator("#auto-push").get_by_role("button", name="Save").click()
    expect(page.locator("#auto-push").get_by_role("status")).to_have_text(
        "Saved: the 2FA prompt now sends a push as soon as it opens.")
    assert_in_place(page, url)
    expect(box).to_be_checked()
    shot(shots, page, "auto-push-on")

    page.get_by_role("button", name="Sign out").click()
    sign_in(page, live_server, shots, label="again-")
    page.get_by_role("link", name="My Settings & Devices").click()
    # no click: the prompt arrives with the push sent and its number shown
    status = page.locator("#push-status")
    expect(status).to_contain_text("Sent automatically")
    number = status.locator(".passcode-big")
    expect(number).to_have_text(re.compile(r"^\d{3}$"))
    expect(page.get_by_role("button", name="Send me a Push")).to_be_visible()
    expect(page.get_by_role("link", name="Enter a Passcode")).to_be_visible()
    shot(shots, page, "auto-push-sent")

    card = request_card(phone)
    card.get_by_label("Enter the number shown on your login screen").fill(number.inner_text())
    card.get_by_role("button", name="Approve").click()
    expect(card.get_by_role("status")).to_contain_text("Approved")
    # the prompt finishes by itself (htmx polling, then HX-Redirect)
    expect(page.get_by_role("checkbox", name="Automatically send me a push")).to_be_checked(
        timeout=5000)
    shot(shots, page, "auto-push-signed-in")
    assert_clean_console(page)
    assert_clean_console(phone)


def test_the_app_lists_a_notice_and_this_wasnt_me_undoes_it(live_server, page: Page,
                                                             shots) -> None:
    """Issue 13, point 2: the companion app tells of a device added elsewhere, and its
    "This wasn't me" removes that device and locks the account."""
    add_alice(live_server)
    phone = page
    activate_phone(phone, live_server, shots)
    with server_core(live_server) as ctx:
        devices.add_totp(ctx, Origin(door="portal", client_addr="203.0.113.9"),
                         users.get(ctx, "alice"), "Thief's phone")
    phone.reload()
    notice = phone.locator("#notices li").first
    expect(notice).to_contain_text("A device was added to your account: Thief's phone")
    expect(notice).to_contain_text("203.0.113.9")
    expect(notice).to_contain_text("Macao time (GMT+08:00)")
    shots("phone-notice")
    phone.once("dialog", lambda dialog: dialog.accept())
    notice.get_by_role("button", name="This wasn't me").click()
    expect(phone.get_by_role("status").first).to_contain_text("your account is locked")
    with server_core(live_server) as ctx:
        alice = users.get(ctx, "alice")
        assert alice.disabled
        assert [d.name for d in devices.list_for(ctx, alice)] == ["Android mobile phone"]
    expect(phone.locator("#notices li").first.get_by_role("button")).to_have_count(0)
    assert_clean_console(phone)


def test_the_app_speaks_the_browsers_language(live_server, browser) -> None:
    """Issue 16: a phone set to Traditional Chinese gets the app in Chinese: the page's own
    texts from the server, the script's from /app/strings/zh_Hant.json."""
    add_alice(live_server)
    context = browser.new_context(locale="zh-TW", viewport={"width": 420, "height": 860})
    phone = context.new_page()
    phone.console_errors = []
    phone.on("console", lambda m: m.type == "error" and phone.console_errors.append(m.text))
    try:
        phone.goto(f"{live_server.url}/app/")
        assert phone.locator("html").get_attribute("lang") == "zh-Hant"
        expect(phone.get_by_role("heading", name="啟用此手提電話")).to_be_visible()
        phone.get_by_role("button", name="啟用").click()  # no code: the script's own text
        expect(phone.get_by_role("alert")).to_contain_text("請貼上 2FA 網站提供的啟用連結")
        phone.goto(f"{live_server.url}/app/#activate={new_activation(live_server)}")
        phone.get_by_role("button", name="啟用").click()
        expect(phone.get_by_role("status").first).to_contain_text("此手提電話已為")
        expect(phone.locator(".account .a-left")).to_contain_text("秒後更新")
        expect(phone.get_by_role("heading", name="驗證碼")).to_be_visible()
        assert_clean_console(phone)
    finally:
        context.close()


# --- the login page hears the answer at once (issue 17, point 6) -----------------------------

def status_asks(page: Page) -> list[float]:
    """The times (monotonic) of htmx's requests to the status route, as they happen."""
    asked: list[float] = []
    page.on("request", lambda r: r.resource_type == "xhr" and "/prompt/push?" in r.url
            and asked.append(time.monotonic()))
    return asked


def push_and_approve(page: Page, server, phone: PushDevice, shots, label: str, *,
                     streaming: bool) -> float:
    """ "Send me a Push" in the portal prompt, the phone approves (the device API); the seconds
    from the approval's answer to the page complete at /prompt/done."""
    page.goto(server.url + "/prompt?next=done")
    page.get_by_role("button", name="Send me a Push").click()
    number = page.locator("#push-status .passcode-big")
    expect(number).to_have_text(re.compile(r"^\d{3}$"))
    shot(shots, page, f"{label}-push-sent")
    stream = page.locator("#push-wait").get_attribute("sse-connect") or ""
    assert re.match(r"http://127\.0\.0\.1:\d+/push/events\?token=", stream), stream
    deadline = time.monotonic() + 5
    while streaming and "streams=1 " not in stream_health(stream):
        assert time.monotonic() < deadline, "the page's stream never opened"
        page.wait_for_timeout(50)
    request = phone.wait_for_request(timeout=5)
    page.wait_for_timeout(1500)  # the page waits a while first: its polls are seen (or not)
    # the countdown goes on, polled or counted down on the page
    expect(page.locator("#push-countdown .push-left")).to_have_text(
        re.compile(r"^This push expires in 5\d seconds\.$"))
    assert phone.approve(request["id"], number.inner_text()).status == 200
    approved = time.monotonic()
    page.wait_for_url("**/prompt/done", wait_until="load", timeout=10000)
    elapsed = time.monotonic() - approved
    expect(page.get_by_role("heading", name="You are all set!")).to_be_visible()
    return elapsed


def stream_health(stream_url: str) -> str:
    """The event server's /healthz ("ok streams=N subscribed=0/1")."""
    base = stream_url.split("/push/events", 1)[0]
    with urllib.request.urlopen(base + "/healthz", timeout=5) as r:  # noqa: S310 - 127.0.0.1
        return r.read().decode()


def test_the_page_leaves_the_prompt_at_once_and_polls_without_the_stream(live_server,
                                                                          page: Page, shots):
    add_alice(live_server)
    phone = PushDevice.with_url(live_server.url)
    assert phone.activate(new_activation(live_server)).status == 201
    sign_in(page, live_server, shots)
    asked = status_asks(page)

    # With the push event stream (`um2fa serve` runs it on a port of its own, which the CSP
    # allows): no polling while the stream is open, and the approval ends the wait at once.
    elapsed = push_and_approve(page, live_server, phone, shots, "stream", streaming=True)
    assert elapsed < 1.0  # a sanity bound; the figures are in docs/benchmarks.md
    assert len(asked) == 1  # the one ask the stream's "answered" made: no poll in 1.5 s
    assert_clean_console(page)

    # The event server cannot be reached: the page polls every second, and still completes.
    asked.clear()
    page.route("**/push/events?**", lambda route: route.abort())
    elapsed = push_and_approve(page, live_server, phone, shots, "polling", streaming=False)
    assert elapsed < 3.0
    assert len(asked) >= 2  # polled in the 1.5 s before the approval, and after it
    # the failed stream, as Chromium and htmx (its error event: "Event") report it
    assert_clean_console(page, allow=("ERR_FAILED", "/push/events", "Event"))
