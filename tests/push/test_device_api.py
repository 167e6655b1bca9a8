"""The device API through the Python phone (tests/peers/push_device.py): activation, signed calls,
approve / deny / fraud, expiry, replays, Verified Push numbers and the JSON error contract."""

from __future__ import annotations

import json
import logging
import threading
from datetime import timedelta
from email import message_from_bytes
from email.policy import default as default_policy

import pytest
from aiosmtpd.controller import Controller
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from app.core import device_keys, lockout, push, users
from app.extensions import core
from app.models import Device, PushRequest, User
from tests.conftest import TEST_ORIGIN, audit_rows, committed, make_user
from tests.helpers.mail import Inbox, delivered
from tests.peers.live import free_port, make_live_server
from tests.peers.push_device import (
    API,
    PushDevice,
    activation_string,
    b64url,
    b64url_decode,
    code_from_link,
    enrol,
    send_push,
)


@pytest.fixture
def phone(app, client, clock) -> PushDevice:
    """alice, with an activated companion app."""
    make_user(app)
    device = PushDevice.with_client(client, clock=clock)
    assert device.activate(enrol(app)).status == 201
    return device


def user_row(app, username: str = "alice") -> User:
    with committed(app) as c:
        user = users.get(c, username)
        c.db.expunge(user)
        return user


def push_row(app, public_id: str) -> PushRequest:
    from sqlalchemy import select

    with committed(app) as c:
        row = c.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
        c.db.expunge(row)
        return row


def assert_json_error(reply, status: int) -> str:
    assert reply.status == status, (reply.status, reply.text)
    assert reply.content_type == "application/json", reply.text
    assert "<html" not in reply.text.lower() and "Traceback" not in reply.text
    assert reply.error
    return reply.error


# --- config and activation ------------------------------------------------------------------

def test_config_names_the_issuer_and_the_vapid_key(client, clock):
    reply = PushDevice.with_client(client, clock=clock).config()
    assert reply.status == 200 and reply.data["issuer"] == "UM 2FA"
    point = b64url_decode(reply.data["vapid_public_key"])
    assert len(point) == 65 and point[0] == 4
    assert reply.data["server_time"] == int(clock())


def test_activation_registers_the_key_and_returns_the_totp_seed(app, client, clock):
    make_user(app)
    link = enrol(app)
    assert "/app/#activate=" in link
    phone = PushDevice.with_client(client, clock=clock)
    reply = phone.activate(link)
    assert reply.status == 201, reply.text
    assert reply.data["username"] == "alice" and reply.data["issuer"] == "UM 2FA"
    assert reply.data["device_name"] == "iOS mobile phone"
    assert reply.data["totp"] | {"secret": ""} == {"secret": "", "digits": 6, "period": 30,
                                                   "algorithm": "SHA1"}
    assert reply.data["server_time"] == int(clock())
    with committed(app) as c:
        device = c.db.get(Device, int(phone.device_id))
        assert device.active and device.is_default and device.kind == "push"
        assert b64url(device.public_key) == phone.public_key
        assert device.push_subscription is None
    [row] = [r for r in audit_rows(app, "device.activate") if r.result == "ok"]
    assert row.door == "device-api" and row.username == "alice"
    assert phone.totp_secret not in json.dumps([r.detail for r in audit_rows(app)])


def test_the_phones_passcode_signs_in(app, phone, clock):
    from app.core import passcodes
    from app.core.factors import totp as totp_factor

    with committed(app) as c:
        secret = totp_factor.device_secret(c, c.db.get(Device, int(phone.device_id)))
    assert secret == phone.totp_secret
    now = clock()
    assert totp_factor.matching_step(secret, phone.passcode(), now, 0) == int(now) // 30
    with committed(app) as c:
        outcome = passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"),
                                         phone.passcode())
        assert outcome.ok and outcome.device.id == int(phone.device_id)


def test_an_activation_code_works_once(app, client, clock):
    make_user(app)
    link = enrol(app)
    first = PushDevice.with_client(client, clock=clock)
    assert first.activate(link).status == 201
    second = PushDevice.with_client(client, clock=clock)
    error = assert_json_error(second.activate(link), 400)
    assert "used already or has expired" in error
    with committed(app) as c:
        device = c.db.get(Device, int(first.device_id))
        assert b64url(device.public_key) == first.public_key


def test_an_activation_code_expires_after_ten_minutes(app, client, clock):
    make_user(app)
    link = enrol(app)
    clock.advance(601)
    assert_json_error(PushDevice.with_client(client, clock=clock).activate(link), 400)
    in_time = enrol(app)
    clock.advance(599)
    assert PushDevice.with_client(client, clock=clock).activate(in_time).status == 201


def test_a_new_enrolment_replaces_the_old_code(app, client, clock):
    make_user(app)
    old = enrol(app)
    new = enrol(app)
    assert_json_error(PushDevice.with_client(client, clock=clock).activate(old), 400)
    assert PushDevice.with_client(client, clock=clock).activate(new).status == 201


def test_activation_needs_a_proof_by_the_same_key(app, client, clock):
    make_user(app)
    link = enrol(app)
    phone = PushDevice.with_client(client, clock=clock)
    other = PushDevice.with_client(client, clock=clock)
    code = code_from_link(link)
    error = assert_json_error(phone.activate(link, proof=other.sign(activation_string(code))),
                              400)
    assert "signature does not match" in error
    assert_json_error(phone.activate(link, proof=phone.sign(activation_string("other"))), 400)
    assert_json_error(phone.activate(link, proof="not-a-signature"), 400)
    assert phone.activate(link).status == 201  # a failed proof does not spend the code


def _spki(key) -> str:
    return b64url(key.public_key().public_bytes(serialization.Encoding.DER,
                                                serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.mark.parametrize("bad_key, words", [
    ("", "non-empty"),
    ("AAAA", "cannot be read"),
    ("%%%%", "wrong size"),
    ("QUFB" * 101, "too long"),
    ("p384", "must be ECDSA P-256"),
    ("rsa", "wrong size"),
])
def test_a_bad_public_key_is_refused(app, client, clock, bad_key, words):
    make_user(app)
    link = enrol(app)
    if bad_key == "p384":
        bad_key = _spki(ec.generate_private_key(ec.SECP384R1()))
    elif bad_key == "rsa":
        bad_key = _spki(rsa.generate_private_key(65537, 2048))
    phone = PushDevice.with_client(client, clock=clock)
    assert words in assert_json_error(phone.activate(link, public_key=bad_key), 400)
    assert phone.activate(link).status == 201


SUBSCRIPTION = {"endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                "keys": {"p256dh": b64url(ec.generate_private_key(ec.SECP256R1()).public_key()
                                          .public_bytes(serialization.Encoding.X962,
                                                        serialization.PublicFormat
                                                        .UncompressedPoint)),
                         "auth": b64url(b"0123456789abcdef")}}


def test_activation_with_a_subscription_stores_it(app, client, clock):
    make_user(app)
    phone = PushDevice.with_client(client, clock=clock)
    assert phone.activate(enrol(app), subscription=SUBSCRIPTION).status == 201
    with committed(app) as c:
        stored = json.loads(c.db.get(Device, int(phone.device_id)).push_subscription)
    assert stored == SUBSCRIPTION


def test_a_bad_subscription_fails_the_activation_without_spending_the_code(app, client, clock):
    make_user(app)
    link = enrol(app)
    phone = PushDevice.with_client(client, clock=clock)
    http = {**SUBSCRIPTION, "endpoint": "http://push.example.net/x"}
    assert "https" in assert_json_error(phone.activate(link, subscription=http), 400)
    with committed(app) as c:
        assert not c.db.get(Device, int(code_device(app))).active
    assert phone.activate(link).status == 201


@pytest.mark.parametrize("endpoint", [
    "https://127.0.0.1/x", "https://10.0.0.7/x", "https://169.254.169.254/latest/meta-data/",
    "https://push.example.net/send/abc", "https://fcm.googleapis.com:8443/fcm/send/abc"])
def test_a_subscription_to_an_internal_or_unknown_host_is_refused(app, client, clock, endpoint):
    """A companion device may not make the server connect where it likes (issue 13, point
    11): only the public push services, on port 443, at activation and later."""
    make_user(app)
    link = enrol(app)
    phone = PushDevice.with_client(client, clock=clock)
    message = assert_json_error(phone.activate(link, subscription={**SUBSCRIPTION,
                                                                   "endpoint": endpoint}), 400)
    assert "push service" in message and "fcm.googleapis.com" in message
    assert phone.activate(link).status == 201
    message = assert_json_error(phone.set_subscription({**SUBSCRIPTION, "endpoint": endpoint}),
                                400)
    assert "push service" in message
    with committed(app) as c:
        assert c.db.get(Device, int(phone.device_id)).push_subscription is None


def code_device(app) -> int:
    from sqlalchemy import select

    with committed(app) as c:
        return c.db.scalar(select(Device.id).where(Device.kind == "push"))


@pytest.mark.parametrize("body", [b"", b"not json", b"[1, 2]", b"\xff\xfe",
                                  b'{"code": 5, "public_key": "x", "proof": "y"}',
                                  b'{"code": "x", "public_key": "y"}',
                                  b'{"code": "a", "public_key": "b", "proof": "c", '
                                  b'"subscription": "yes"}',
                                  b"[" * 5000, b'{"code": ' + b"9" * 5000 + b"}"])
def test_a_malformed_activation_is_a_json_400(client, body):
    reply = client.post(f"{API}/activate", data=body, content_type="application/json")
    assert reply.status_code == 400 and reply.is_json and reply.get_json()["error"]


@pytest.mark.parametrize("settings_overrides", [{"ratelimit_activate_address": "3 per minute"}])
def test_activation_is_rate_limited_per_address(client):
    body = {"code": "guess", "public_key": "x", "proof": "y"}
    statuses = [client.post(f"{API}/activate", json=body).status_code for _ in range(4)]
    assert statuses == [400, 400, 400, 429]
    reply = client.post(f"{API}/activate", json=body)
    assert reply.status_code == 429 and "Too many" in reply.get_json()["error"]


@pytest.mark.parametrize("settings_overrides", [{"campus_networks": "10.0.0.0/8"}])
def test_the_api_answers_off_campus_without_csrf_or_cookies(app, client, clock):
    make_user(app)
    assert client.get("/").status_code == 403  # the portal is campus only
    phone = PushDevice.with_client(client, clock=clock)
    assert phone.activate(enrol(app)).status == 201
    assert phone.pending() == []
    assert phone.call("GET", f"{API}/requests").status == 200


# --- answering pushes -----------------------------------------------------------------------

def test_a_push_says_on_campus_or_off_campus_and_names_the_service(app, phone):
    """Issue 17, point 7: the phone learns where a sign-in comes from in words a person knows
    (the service's name; on or off campus), not only an address."""
    on_campus, _ = send_push(app, service="VPN (Staff VPN)", client_addr="10.1.2.3")
    off_campus, _ = send_push(app, service="myUM", client_addr="203.0.113.9")
    unknown, _ = send_push(app, service="myUM", client_addr="")
    shown = {r["id"]: r for r in phone.pending()}
    assert shown[on_campus]["campus"] is True
    assert shown[on_campus]["service"] == "VPN (Staff VPN)"
    assert shown[off_campus]["campus"] is False and shown[unknown]["campus"] is None
    assert phone.details(on_campus).data["campus"] is True


def test_approve_with_the_typed_number(app, phone, clock):
    public_id, number = send_push(app, service="myUM")
    assert len(number) == 3 and number.isdigit()
    [shown] = phone.pending()
    assert shown == {"id": public_id, "username": "alice", "door": "test", "service": "myUM",
                     "client_addr": "192.0.2.7", "campus": False,
                     "created_at": shown["created_at"], "expires_at": shown["expires_at"],
                     "verified": True}
    assert number not in json.dumps(phone.details(public_id).data)  # typed, never shown
    assert phone.details(public_id).data["status"] == "pending"
    reply = phone.approve(public_id, number)
    assert reply.status == 200 and reply.data == {"status": "approved"}
    assert phone.details(public_id).data["status"] == "approved"
    assert phone.pending() == []
    row = push_row(app, public_id)
    assert row.status == "approved" and row.answered_at is not None
    with committed(app) as c:  # the answer is kept as evidence, checkable by anyone
        key = c.db.get(Device, int(phone.device_id)).public_key
    message = device_keys.answer_message(public_id, "approve", number)
    assert device_keys.verify(key, message, b64url(row.answer_signature))
    [answered] = audit_rows(app, "push.answer")
    assert answered.result == "approved" and answered.door == "device-api"


def test_an_approved_push_completes_the_login_once(app, phone):
    public_id, number = send_push(app)
    assert phone.approve(public_id, number).data["status"] == "approved"
    with committed(app) as c:
        alice = users.get(c, "alice")
        alice.failed_factor_count = 3
        c.db.flush()
        assert push.complete(c, TEST_ORIGIN, alice, public_id)
        assert alice.failed_factor_count == 0
    with committed(app) as c:
        assert not push.complete(c, TEST_ORIGIN, users.get(c, "alice"), public_id)
        assert push.status(c, users.get(c, "alice"), public_id) == "used"
    assert phone.details(public_id).data["status"] == "used"
    assert_json_error(phone.approve(public_id, number), 409)


def test_deny(app, phone):
    public_id, _ = send_push(app)
    assert phone.deny(public_id).data == {"status": "denied"}
    with committed(app) as c:
        alice = users.get(c, "alice")
        assert push.status(c, alice, public_id) == "denied"
        assert not push.complete(c, TEST_ORIGIN, alice, public_id)
        assert alice.push_blocked_until is None
    # a denial is a failed second factor: consecutive denials lock (issue 13, point 4)
    assert user_row(app).failed_factor_count == 1


@pytest.mark.parametrize("settings_overrides", [{"verified_push": False}])
def test_the_number_is_ignored_without_verified_push(app, phone):
    public_id, number = send_push(app)
    assert number == ""
    assert phone.details(public_id).data["verified"] is False
    assert phone.approve(public_id).data == {"status": "approved"}


@pytest.mark.parametrize("settings_overrides", [{"lockout_threshold": 3}])
def test_a_wrong_number_is_a_mismatch_and_counts_toward_lockout(app, phone):
    for attempt in range(3):
        public_id, number = send_push(app)
        wrong = f"{(int(number) + 1) % 1000:03d}"
        assert phone.approve(public_id, wrong).data == {"status": "mismatch"}
        assert user_row(app).failed_factor_count == attempt + 1
    assert lockout.is_locked(user_row(app))
    assert [r.result for r in audit_rows(app, "lockout")] == ["locked"]
    with committed(app) as c, pytest.raises(push.PushError, match="locked"):
        push.start(c, TEST_ORIGIN, users.get(c, "alice"), None, service="myUM")


def test_an_empty_number_is_a_mismatch_for_a_verified_push(app, phone):
    public_id, _ = send_push(app)
    assert phone.approve(public_id, "").data == {"status": "mismatch"}


def test_a_push_to_a_locked_user_is_refused(app, phone):
    with committed(app) as c:
        users.lock(c, TEST_ORIGIN, "alice")
    with pytest.raises(push.PushError, match="locked"):
        send_push(app)
    assert phone.pending() == []


SMTP_PORT = free_port()
FRAUD_SETTINGS = {"smtp_host": "127.0.0.1", "smtp_port": SMTP_PORT,
                  "smtp_from": "2fa@um.example.edu", "smtp_timeout": 5,
                  "admin_emails": "sec@um.example.edu,helpdesk@um.example.edu"}


@pytest.fixture
def inbox():
    box = Inbox()
    controller = Controller(box, hostname="127.0.0.1", port=SMTP_PORT)
    controller.start()
    yield box
    controller.stop()


@pytest.mark.parametrize("settings_overrides", [FRAUD_SETTINGS])
def test_fraud_blocks_pushes_is_audited_and_tells_the_admins(app, phone, clock, inbox, caplog):
    public_id, _ = send_push(app, service="myUM", client_addr="198.51.100.9")
    with caplog.at_level(logging.WARNING, logger="um2fa.push"):
        assert phone.report_fraud(public_id).data == {"status": "fraud"}
    assert any("push reported as fraud" in r.getMessage() for r in caplog.records)
    blocked_until = user_row(app).push_blocked_until
    assert blocked_until == push_row(app, public_id).answered_at + timedelta(minutes=20)
    [fraud] = audit_rows(app, "push.fraud")
    assert fraud.result == "blocked" and "198.51.100.9" in fraud.detail
    [notified] = audit_rows(app, "push.fraud_notify")
    assert notified.result == "ok"
    # the administrators' alert (alice's own notices, e.g. of the phone's enrolment, leave on
    # the mail threads whenever they do: not counted here)
    [(sender, recipients, raw)] = [m for m in delivered(inbox) if
                                   "sec@um.example.edu" in m[1]]
    assert sender == "2fa@um.example.edu"
    assert sorted(recipients) == ["helpdesk@um.example.edu", "sec@um.example.edu"]
    msg = message_from_bytes(raw, policy=default_policy)
    assert msg["Subject"] == "UM 2FA: a push to alice was reported as fraud"
    assert "198.51.100.9" in msg.get_content() and "myUM" in msg.get_content()

    with pytest.raises(push.PushError, match="paused"):
        send_push(app)
    assert [r.result for r in audit_rows(app, "push.start")][-1] == "blocked"
    clock.advance(20 * 60 - 1)
    with pytest.raises(push.PushError, match="paused"):
        send_push(app)
    clock.advance(2)
    public_id, number = send_push(app)
    assert phone.approve(public_id, number).data == {"status": "approved"}


def test_fraud_without_smtp_is_still_blocked_and_audited(app, phone):
    public_id, _ = send_push(app)
    assert phone.report_fraud(public_id).data == {"status": "fraud"}
    assert user_row(app).push_blocked_until is not None
    assert audit_rows(app, "push.fraud") and not audit_rows(app, "push.fraud_notify")


def test_fraud_also_stops_the_pushes_already_waiting(app, phone):
    """Pushes sent before the fraud report (likely the same attacker's) cannot be approved
    afterwards, and an approval not yet used for its login no longer completes it."""
    approved_id, approved_number = send_push(app)
    assert phone.approve(approved_id, approved_number).data == {"status": "approved"}
    waiting_id, waiting_number = send_push(app)
    reported_id, _ = send_push(app)
    assert phone.report_fraud(reported_id).data == {"status": "fraud"}
    assert phone.pending() == []
    assert push_row(app, waiting_id).status == "denied"
    assert_json_error(phone.approve(waiting_id, waiting_number), 409)
    with committed(app) as c:
        alice = users.get(c, "alice")
        assert push.status(c, alice, waiting_id) == "denied"
        assert not push.complete(c, TEST_ORIGIN, alice, waiting_id)
        assert not push.complete(c, TEST_ORIGIN, alice, approved_id)
    assert "blocked" in [r.result for r in audit_rows(app, "factor")]


def test_a_push_expires_after_sixty_seconds(app, phone, clock):
    public_id, number = send_push(app)
    clock.advance(59)
    assert [r["id"] for r in phone.pending()] == [public_id]
    clock.advance(1)
    assert phone.pending() == []
    assert phone.details(public_id).data["status"] == "expired"
    assert "expired" in assert_json_error(phone.approve(public_id, number), 409)
    with committed(app) as c:
        alice = users.get(c, "alice")
        assert push.status(c, alice, public_id) == "expired"
        assert not push.complete(c, TEST_ORIGIN, alice, public_id)


def test_at_most_three_pending_pushes(app, phone, clock):
    ids = [send_push(app)[0] for _ in range(3)]
    with pytest.raises(push.PushError, match="too many pushes"):
        send_push(app)
    assert [r["id"] for r in phone.pending()] == ids
    assert phone.deny(ids[0]).status == 200
    ids.append(send_push(app)[0])
    with pytest.raises(push.PushError, match="too many pushes"):
        send_push(app)
    clock.advance(61)
    assert send_push(app)[0]
    assert [r.result for r in audit_rows(app, "push.start")].count("refused") == 2


def test_an_answer_for_another_users_request_is_404(app, client, phone, clock):
    make_user(app, "bob")
    bobs_phone = PushDevice.with_client(client, clock=clock)
    assert bobs_phone.activate(enrol(app, "bob")).status == 201
    public_id, number = send_push(app, "alice")
    assert_json_error(bobs_phone.details(public_id), 404)
    assert_json_error(bobs_phone.approve(public_id, number), 404)
    assert bobs_phone.pending() == []
    assert push_row(app, public_id).status == "pending"
    assert_json_error(phone.details("no-such-request"), 404)


def test_an_answer_not_signed_by_the_device_key_is_refused(app, phone, client, clock):
    public_id, number = send_push(app)
    thief = PushDevice.with_client(client, clock=clock)
    forged = thief.sign(f"UM2FA-ANSWER-1\n{public_id}\napprove\n{number}")
    assert "signature" in assert_json_error(
        phone.answer(public_id, "approve", number, signature=forged), 401)
    # signed for another decision or number: the server checks what was actually sent
    deny_sig = phone.sign(f"UM2FA-ANSWER-1\n{public_id}\ndeny\n")
    assert_json_error(phone.answer(public_id, "approve", number, signature=deny_sig), 401)
    assert push_row(app, public_id).status == "pending"
    assert [r.result for r in audit_rows(app, "push.answer")] == ["bad-signature"] * 2
    assert phone.approve(public_id, number).data == {"status": "approved"}


@pytest.mark.parametrize("payload", [{"decision": "maybe", "number": "", "signature": "x"},
                                     {"decision": "approve", "number": 123, "signature": "x"},
                                     {"decision": "approve", "number": ""},
                                     ["approve"]])
def test_a_malformed_answer_is_a_json_400(app, phone, payload):
    public_id, _ = send_push(app)
    assert_json_error(phone.call("POST", f"{API}/requests/{public_id}/answer", payload), 400)


def test_an_answer_with_a_huge_number_in_its_json_is_a_400(app, phone):
    public_id, _ = send_push(app)
    path = f"{API}/requests/{public_id}/answer"
    body = b'{"decision": ' + b"9" * 5000 + b"}"  # past Python's int-from-string limit
    reply = phone.transport.send("POST", path, body, phone.signed_headers("POST", path, body))
    assert "JSON" in assert_json_error(reply, 400)


@pytest.mark.parametrize("request_id, status", [("a%00b", 400), ("%C3%A9", 404),
                                                ("x" * 300, 404)])
def test_an_odd_request_id_is_a_client_error(app, phone, request_id, status):
    """Also on PostgreSQL, which refuses a NUL in a string parameter (a NUL is refused before
    any view: app/web/input_guard.py)."""
    from urllib.parse import unquote

    for method, path, body in (
            ("GET", f"{API}/requests/{request_id}", b""),
            ("POST", f"{API}/requests/{request_id}/answer",
             json.dumps({"decision": "deny", "number": "", "signature": "AA"}).encode())):
        headers = phone.signed_headers(method, unquote(path), body)  # signed as request.path
        assert_json_error(phone.transport.send(method, path, body, headers), status)


# --- signed calls ---------------------------------------------------------------------------

def test_a_call_signed_by_another_key_is_refused(app, phone, client, clock):
    thief = PushDevice.with_client(client, clock=clock, device_id=phone.device_id)
    assert "bad signature" in assert_json_error(thief.call("GET", f"{API}/requests"), 401)


def test_a_signature_covers_method_path_body_and_timestamp(app, phone):
    public_id, number = send_push(app)
    body = json.dumps({"decision": "approve", "number": number,
                       "signature": phone.sign(f"UM2FA-ANSWER-1\n{public_id}\napprove\n"
                                               f"{number}")}).encode()
    path = f"{API}/requests/{public_id}/answer"
    headers = phone.signed_headers("POST", path, b'{"decision": "deny"}')
    reply = phone.transport.send("POST", path, body, headers)  # another body
    assert "bad signature" in assert_json_error(reply, 401)
    headers = phone.signed_headers("GET", f"{API}/requests", b"")
    assert_json_error(phone.transport.send("GET", f"{API}/requests?x=1", b"", headers), 401)
    assert_json_error(phone.transport.send("POST", path, body, headers), 401)
    headers = phone.signed_headers("GET", f"{API}/requests?x=1", b"")
    assert phone.transport.send("GET", f"{API}/requests?x=1", b"", headers).status == 200
    assert push_row(app, public_id).status == "pending"


def test_a_replayed_call_is_refused(app, phone):
    assert phone.call("GET", f"{API}/requests").status == 200
    assert "replay" in assert_json_error(phone.replay(), 401)
    assert phone.call("GET", f"{API}/requests").status == 200  # a fresh signature is fine


def test_a_replayed_answer_is_refused(app, phone):
    public_id, number = send_push(app)
    assert phone.deny(public_id).status == 200
    answer_call = phone.last_call
    assert "replay" in assert_json_error(phone.replay(answer_call), 401)
    # the same signed answer in a freshly signed call: already answered
    body = json.loads(answer_call.body)
    assert "already answered" in assert_json_error(
        phone.answer(public_id, "approve", number,
                     signature=phone.sign(f"UM2FA-ANSWER-1\n{public_id}\napprove\n{number}")),
        409)
    assert_json_error(phone.call("POST", answer_call.path, body), 409)
    assert push_row(app, public_id).status == "denied"


def test_the_timestamp_must_be_within_sixty_seconds(app, phone, clock):
    clock.now = now = int(clock())
    for stamp in (now - 61, now + 61, 0):
        error = assert_json_error(phone.call("GET", f"{API}/requests", timestamp=stamp), 401)
        assert "window" in error
    for stamp in (now - 60, now + 60):
        assert phone.call("GET", f"{API}/requests", timestamp=stamp).status == 200


def test_the_replay_memory_outlives_the_window(app, phone, clock):
    clock.now = int(clock())
    assert phone.call("GET", f"{API}/requests").status == 200
    call = phone.last_call
    clock.advance(60)
    assert "replay" in assert_json_error(phone.replay(call), 401)
    clock.advance(2)
    assert "window" in assert_json_error(phone.replay(call), 401)


@pytest.mark.parametrize("headers", [
    {},
    {"X-UM2FA-Device": "1", "X-UM2FA-Timestamp": "1"},
    {"X-UM2FA-Device": "99999", "X-UM2FA-Timestamp": "1", "X-UM2FA-Signature": "AA"},
    {"X-UM2FA-Device": "9" * 40, "X-UM2FA-Timestamp": "1", "X-UM2FA-Signature": "AA"},
    {"X-UM2FA-Device": "abc", "X-UM2FA-Timestamp": "1", "X-UM2FA-Signature": "AA"},
    {"X-UM2FA-Device": "1", "X-UM2FA-Timestamp": "soon", "X-UM2FA-Signature": "AA"},
    {"X-UM2FA-Device": "1", "X-UM2FA-Timestamp": "9" * 40, "X-UM2FA-Signature": "AA"},
])
def test_unsigned_or_malformed_calls_are_401(phone, client, headers):
    reply = client.get(f"{API}/requests", headers=headers)
    assert reply.status_code == 401 and reply.is_json
    assert reply.get_json()["error"].startswith("Not authenticated")


def test_activating_the_companion_app_marks_the_user_as_enrolled(app, phone):
    """Enrolled once, never new again (UM2FA_NEW_USER=allow: tests/sso/test_sso.py)."""
    assert user_row(app).enrolled_at is not None


def test_a_removed_device_can_no_longer_call(app, phone):
    from app.core import devices

    with committed(app) as c:
        devices.remove(c, TEST_ORIGIN, users.get(c, "alice"), int(phone.device_id),
                       last_confirmed=True)
    assert "unknown or inactive" in assert_json_error(phone.call("GET", f"{API}/requests"), 401)


def test_the_subscription_can_be_set_and_removed(app, phone):
    assert phone.set_subscription(SUBSCRIPTION).data == {"ok": True}
    with committed(app) as c:
        assert json.loads(c.db.get(Device, int(phone.device_id)).push_subscription) \
            == SUBSCRIPTION
    assert "https" in assert_json_error(
        phone.set_subscription({**SUBSCRIPTION, "endpoint": "ftp://x"}), 400)
    assert_json_error(phone.call("PUT", f"{API}/subscription", {}), 400)
    assert phone.call("GET", f"{API}/requests").data["push_subscribed"] is True
    assert phone.set_subscription(None).data == {"ok": True}
    # the app learns it has none (e.g. cleared after a 410 from the push service)
    assert phone.call("GET", f"{API}/requests").data["push_subscribed"] is False
    with committed(app) as c:
        assert c.db.get(Device, int(phone.device_id)).push_subscription is None
    assert [r.detail for r in audit_rows(app, "device.subscription")] == ["set", "removed"]


# --- the JSON error contract ----------------------------------------------------------------

def test_errors_under_the_api_prefix_are_json(app, client, phone, monkeypatch):
    for reply, status in ((client.get(f"{API}/nothing"), 404),
                          (client.get("/api/device/v2/requests"), 404),
                          (client.get(f"{API}/activate"), 405),
                          (client.delete(f"{API}/requests"), 405),
                          (client.post(f"{API}/activate", data=b"x" * 20000,
                                       content_type="application/json"), 413)):
        assert reply.status_code == status and reply.is_json, reply.get_data(as_text=True)
        assert "<html" not in reply.get_data(as_text=True).lower()
    assert client.get("/no-such-page").content_type.startswith("text/html")

    def broken(*_args, **_kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(push, "pending_for", broken)
    reply = phone.call("GET", f"{API}/requests")
    assert reply.status == 500 and reply.content_type == "application/json"
    assert "secret internals" not in reply.text and "Traceback" not in reply.text


# --- against a live server ------------------------------------------------------------------

def test_the_phone_works_against_a_live_server(tmp_path):
    from app import create_app

    server = make_live_server(tmp_path).start()
    try:
        server.cli("users", "add", "carol", "--password", "correct-horse-9",
                   "--dob", "2001-02-03", "--id-last4", "123A", "--role", "staff")
        app = create_app({"instance_dir": server.instance_dir, "database_url":
                          f"sqlite:///{server.instance_dir / 'um2fa.sqlite3'}"})
        phone = PushDevice.with_url(server.url)
        assert phone.config().status == 200
        assert phone.activate(enrol(app, "carol")).status == 201
        public_id, number = send_push(app, "carol")
        found: list[dict] = []
        stop = threading.Event()

        def decide(request: dict) -> tuple[str, str]:
            found.append(request)
            stop.set()
            return "approve", number

        worker = threading.Thread(target=phone.answer_pushes, args=(decide, stop),
                                  kwargs={"interval": 0.1, "max_seconds": 10})
        worker.start()
        worker.join(15)
        assert [r["id"] for r in found] == [public_id]
        assert phone.details(public_id).data["status"] == "approved"
        assert "replay" in phone.replay().error
        error = phone.transport.send("GET", f"{API}/nothing", b"", {})
        assert error.status == 404 and error.content_type == "application/json"
        core.database(app).dispose()
    finally:
        server.stop()
