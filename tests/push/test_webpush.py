"""Web Push end to end: app.core.webpush sends through pywebpush to a local push service
(tests/peers/push_service.py) that checks VAPID and decrypts the message as a browser would."""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import stat
import threading
import time
from concurrent import futures

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from sqlalchemy import select, text

from app.core import device_keys, devices, push, users, webpush
from app.models import PushRequest
from tests.conftest import TEST_ORIGIN, make_user
from tests.peers.push_service import PushService, Refused, b64url, b64url_decode, check_vapid

WAIT = 5.0


@pytest.fixture
def push_service():
    with PushService() as service:
        yield service


@pytest.fixture
def settings_overrides(push_service) -> dict:
    # The local push service (plain http on 127.0.0.1) is allowed by name, for these tests
    # only: no default lets Web Push reach a loopback address.
    return {"webpush_test_service": push_service.host_port}


@pytest.fixture
def settings(app):
    return app.config["UM2FA"]


class Recorder:
    """Stands in for webpush's sender pool: same threads, but the test can wait for them."""

    def __init__(self, inner: futures.Executor) -> None:
        self.inner = inner
        self.submitted: list[futures.Future] = []

    def submit(self, fn, *args, **kwargs) -> futures.Future:
        future = self.inner.submit(fn, *args, **kwargs)
        self.submitted.append(future)
        return future

    def drain(self) -> int:
        done, pending = futures.wait(self.submitted, timeout=WAIT)
        assert not pending, "a web push send did not finish in time"
        return len(done)


@pytest.fixture
def senders(monkeypatch) -> Recorder:
    recorder = Recorder(webpush._senders)
    monkeypatch.setattr(webpush, "_senders", recorder)
    return recorder


def _sign_p1363(key: ec.EllipticCurvePrivateKey, message: str) -> str:
    r, s = decode_dss_signature(key.sign(message.encode(), ec.ECDSA(hashes.SHA256())))
    return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


def activate_push_device(ctx, username: str, subscription: dict | None):
    """Enrol and activate a companion-app device the way the app does, through core."""
    user = users.get(ctx, username)
    device = devices.begin_enrolment(ctx, TEST_ORIGIN, user, "mobile", "ios", kind="push")
    code = push.new_activation(ctx, device)
    key = ec.generate_private_key(ec.SECP256R1())
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    push.activate(ctx, TEST_ORIGIN, code, b64url(spki),
                  _sign_p1363(key, device_keys.activation_message(code)), subscription)
    ctx.db.commit()
    return device


# --- send(): encryption and VAPID ---------------------------------------------------------------

def test_send_is_decrypted_by_the_push_client(settings, push_service):
    subscription = push_service.subscribe(webpush.application_server_key(settings))
    stored = webpush.clean_subscription(settings, subscription)

    status = webpush.send(settings, stored, {"type": "push", "id": "abc123"}, ttl=60)

    assert status == 201
    message = push_service.wait_for(1, WAIT)[0]
    assert message.plaintext == b'{"type": "push", "id": "abc123"}'
    assert message.payload == {"type": "push", "id": "abc123"}
    assert message.ttl == 60 and message.urgency == "high"
    assert message.vapid_key == webpush.application_server_key(settings)
    assert message.claims["aud"] == push_service.origin
    assert message.claims["sub"] == settings.webpush_subject
    assert subscription["keys"]["p256dh"] not in message.body.decode("latin-1")


def test_push_service_refuses_another_vapid_key(settings, push_service):
    other = b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    stored = webpush.clean_subscription(settings, push_service.subscribe(other))

    assert webpush.send(settings, stored, {"type": "push", "id": "x"}, ttl=60) == 403
    assert push_service.messages == []


def test_push_service_checks_what_a_real_one_checks(settings, push_service, monkeypatch):
    """The stub is not a pushover: bad VAPID, no TTL, or a message for other keys fail."""
    subscription = push_service.subscribe()
    good = webpush.clean_subscription(settings, push_service.subscribe())
    captured: dict = {}
    original = requests.Session.post

    def capture(session, url, data=None, headers=None, timeout=None):
        captured.update(url=url, data=data, headers={k.lower(): v for k, v in headers.items()})
        return original(session, url, data=data, headers=headers, timeout=timeout)

    monkeypatch.setattr(requests.Session, "post", capture)
    assert webpush.send(settings, good, {"type": "push", "id": "y"}, ttl=30) == 201
    monkeypatch.undo()
    headers = captured["headers"]
    endpoint = subscription["endpoint"]

    def post(**changes) -> int:
        sent = {**headers, **changes}
        return requests.post(endpoint, data=captured["data"],
                             headers={k: v for k, v in sent.items() if v is not None},
                             timeout=WAIT).status_code

    token, key = headers["authorization"].split(" ", 1)[1].split(",")
    jwt_head, claims, signature = token[2:].split(".")
    forged = json.loads(b64url_decode(claims)) | {"sub": "mailto:attacker@example.com"}
    assert post(authorization=f"vapid t={jwt_head}.{b64url(json.dumps(forged).encode())}."
                f"{signature}, {key}") == 401
    assert post(authorization=None) == 401
    assert post(ttl=None) == 400
    assert post(urgency="now") == 400
    # Well signed and well formed, but encrypted for the other subscription's keys.
    assert post() == 400
    assert [r.reason for r in push_service.refusals][-1].startswith("cannot decrypt")


def _jwt(key: ec.EllipticCurvePrivateKey, claims: dict) -> str:
    head = b64url(json.dumps({"typ": "JWT", "alg": "ES256"}).encode())
    body = b64url(json.dumps(claims).encode())
    return f"{head}.{body}.{_sign_p1363(key, f'{head}.{body}')}"


def _k(key: ec.EllipticCurvePrivateKey) -> str:
    return b64url(key.public_key().public_bytes(serialization.Encoding.X962,
                                                serialization.PublicFormat.UncompressedPoint))


@pytest.mark.parametrize("change, reason", [
    ({}, None),
    ({"aud": "http://127.0.0.1:1"}, "aud"),
    ({"aud": None}, "aud"),
    ({"exp": -10}, "exp"),
    ({"exp": 24 * 3600 + 60}, "exp"),
    ({"exp": None}, "exp"),
    ({"sub": None}, "sub"),
    ({"sub": ""}, "sub"),
])
def test_push_service_vapid_claims(change, reason):
    key, origin = ec.generate_private_key(ec.SECP256R1()), "http://127.0.0.1:8443"
    claims = {"aud": origin, "exp": 3600, "sub": "mailto:it@example.edu", **change}
    if isinstance(claims["exp"], int):
        claims["exp"] += int(time.time())
    claims = {k: v for k, v in claims.items() if v is not None}
    header = f"vapid t={_jwt(key, claims)}, k={_k(key)}"
    if reason is None:
        assert check_vapid(header, origin) == (claims, _k(key))
        return
    with pytest.raises(Refused, match=reason) as refused:
        check_vapid(header, origin)
    assert refused.value.status == 401


def test_push_service_vapid_signature_must_be_by_k():
    key, other = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(
        ec.SECP256R1())
    claims = {"aud": "http://h:1", "exp": int(time.time()) + 60, "sub": "mailto:a@b.c"}
    with pytest.raises(Refused, match="signature"):
        check_vapid(f"vapid t={_jwt(key, claims)},k={_k(other)}", "http://h:1")
    with pytest.raises(Refused, match="vapid scheme"):
        check_vapid(f"WebPush {_jwt(key, claims)}", "http://h:1")


# --- wake_after_commit ---------------------------------------------------------------------

def test_wake_after_commit_waits_for_the_commit(ctx, settings, push_service, senders):
    subscription = push_service.subscribe()
    stored = webpush.clean_subscription(settings, subscription)
    ctx.db.execute(text("SELECT 1"))

    webpush.wake_after_commit(ctx, stored, "req-1")
    with ctx.db.begin_nested():  # a savepoint released is not the commit
        ctx.db.execute(text("SELECT 1"))
    assert senders.submitted == []

    ctx.db.commit()
    assert senders.drain() == 1
    ctx.db.execute(text("SELECT 1"))
    ctx.db.commit()  # a later transaction does not send it again
    assert senders.drain() == 1
    assert [m.payload for m in push_service.messages] == [{"type": "push", "id": "req-1"}]


def test_no_wake_after_rollback(ctx, settings, push_service, senders):
    stored = webpush.clean_subscription(settings, push_service.subscribe())
    ctx.db.execute(text("SELECT 1"))
    webpush.wake_after_commit(ctx, stored, "rolled-back")
    ctx.db.rollback()

    ctx.db.execute(text("SELECT 1"))
    webpush.wake_after_commit(ctx, stored, "kept")
    ctx.db.commit()

    assert senders.drain() == 1
    assert [m.payload["id"] for m in push_service.messages] == ["kept"]


def test_no_wake_when_the_session_is_closed_uncommitted(app, settings, push_service, senders):
    from app.extensions import core

    stored = webpush.clean_subscription(settings, push_service.subscribe())
    with app.app_context():
        context = core.context()
        context.db.execute(text("SELECT 1"))
        webpush.wake_after_commit(context, stored, "abandoned")
        context.db.close()
        context.db.execute(text("SELECT 1"))
        context.db.commit()
    assert senders.drain() == 0


# --- push.start reaches the phone, with nothing but the id ---------------------------------

def test_push_start_wakes_the_device(app, ctx, clock, settings, push_service, senders):
    make_user(app, "alice")
    subscription = push_service.subscribe(webpush.application_server_key(settings))
    device = activate_push_device(ctx, "alice", subscription)
    user = users.get(ctx, "alice")

    request = push.start(ctx, TEST_ORIGIN, user, None, service="Student portal")
    public_id, number = request.public_id, request.number
    assert senders.submitted == []  # not before the commit
    ctx.db.commit()

    message = push_service.wait_for(1, WAIT)[0]
    assert message.payload == {"type": "push", "id": public_id}
    assert message.ttl == settings.push_timeout
    # Nothing about the login rides the push service: only the id.
    assert message.plaintext == json.dumps({"type": "push", "id": public_id}).encode()
    rest = message.plaintext.decode().replace(public_id, "")
    for detail in ("alice", "Alice", "Student portal", TEST_ORIGIN.client_addr, device.name,
                   TEST_ORIGIN.door, user.email, number):
        assert not detail or detail not in rest
    assert set(message.payload) == {"type", "id"}


@pytest.mark.parametrize("timeout", [25, 170])
def test_push_ttl_follows_the_push_timeout(app, ctx, settings, push_service, senders, timeout):
    """A VPN push lives as long as its RADIUS client's push timeout: the wake-up's TTL is that,
    not the global one (a phone that comes online late must not get a dead push, nor miss a
    live one)."""
    make_user(app, "alice")
    activate_push_device(ctx, "alice", push_service.subscribe(
        webpush.application_server_key(settings)))
    push.start(ctx, TEST_ORIGIN, users.get(ctx, "alice"), None, service="VPN",
               timeout=timeout)
    ctx.db.commit()
    assert push_service.wait_for(1, WAIT)[0].ttl == timeout != settings.push_timeout


def test_push_start_rolled_back_sends_nothing(app, ctx, settings, push_service, senders):
    make_user(app, "alice")
    activate_push_device(ctx, "alice", push_service.subscribe())
    push.start(ctx, TEST_ORIGIN, users.get(ctx, "alice"), None, service="SSO")
    ctx.db.rollback()
    ctx.db.execute(text("SELECT 1"))
    ctx.db.commit()
    assert senders.drain() == 0 and push_service.messages == []


@pytest.mark.parametrize("status", [404, 410, 500])
def test_a_failing_push_service_does_not_break_the_login(app, ctx, settings, push_service,
                                                         senders, caplog, status):
    make_user(app, "alice")
    subscription = push_service.subscribe()
    device = activate_push_device(ctx, "alice", subscription)
    push_service.fail(subscription, status)

    with caplog.at_level(logging.DEBUG):
        request = push.start(ctx, TEST_ORIGIN, users.get(ctx, "alice"), None, service="Portal")
        public_id = request.public_id
        ctx.db.commit()
        assert senders.drain() == 1

    assert push_service.wait_for(1, WAIT, refusals=True)[0].status == status
    assert push_service.messages == []
    row = ctx.db.scalar(select(PushRequest).where(PushRequest.public_id == public_id))
    assert row is not None and row.status == "pending"
    refused = [r for r in caplog.records if r.name == "um2fa.webpush"]
    assert refused and f"HTTP {status}" in refused[0].getMessage()
    assert "127.0.0.1" in refused[0].getMessage()
    # 404 and 410 say the subscription is gone: it is not used again (the app polls, and
    # subscribes anew when it opens); other failures may pass, so it is kept
    ctx.db.expire_all()
    kept = ctx.db.get(type(device), device.id).push_subscription
    assert (kept is None) == (status in (404, 410))
    token = subscription["endpoint"].rsplit("/", 1)[1]
    for record in caplog.records:
        logged = record.getMessage() + str(record.args or "")
        for secret in (token, subscription["keys"]["p256dh"], subscription["keys"]["auth"]):
            assert secret not in logged, f"{record.name} logged a subscription secret"


def test_an_unreachable_push_service_is_logged_quietly(app, ctx, settings, push_service,
                                                       senders, caplog):
    subscription = push_service.subscribe()
    push_service.stop()  # nothing listens on that port any more
    stored = webpush.clean_subscription(settings, subscription)
    ctx.db.execute(text("SELECT 1"))
    with caplog.at_level(logging.WARNING, logger="um2fa.webpush"):
        webpush.wake_after_commit(ctx, stored, "r")
        ctx.db.commit()
        senders.drain()
    messages = [r.getMessage() for r in caplog.records if r.name == "um2fa.webpush"]
    assert messages == ["web push not delivered: ConnectionError"]


def test_wake_ups_past_the_queue_limit_are_dropped(ctx, settings, push_service, senders,
                                                   monkeypatch, caplog):
    monkeypatch.setattr(webpush, "MAX_QUEUED", 1)
    monkeypatch.setattr(webpush, "_queued", threading.BoundedSemaphore(1))
    stored = webpush.clean_subscription(settings, push_service.subscribe())

    def wake(request_id: str) -> None:
        ctx.db.execute(text("SELECT 1"))
        webpush.wake_after_commit(ctx, stored, request_id)
        ctx.db.commit()

    with caplog.at_level(logging.WARNING, logger="um2fa.webpush"):
        wake("first")
        assert senders.drain() == 1  # sent, it frees its place in the queue
        with webpush._queued:  # noqa: SLF001 - a wake-up still waiting for a sender
            wake("second")
        wake("third")
        assert senders.drain() == 2
    assert sorted(m.payload["id"] for m in push_service.wait_for(2, WAIT)) == ["first", "third"]
    assert [r.getMessage() for r in caplog.records if r.name == "um2fa.webpush"] == [
        "web push not sent: 1 wake-ups already waiting"]


# --- the VAPID key -----------------------------------------------------------------------------

# Made on first use only on the embedded default (SQLite): with a shared database no process
# makes keys (app/config/keyfiles.py, tests/ops/test_shared_keys.py).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_vapid_key_is_made_once_private_and_reused(settings):
    path = settings.instance_dir / webpush.KEY_FILE
    assert not path.exists()
    public = webpush.application_server_key(settings)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    pem = path.read_bytes()

    assert webpush.application_server_key(settings) == public
    assert path.read_bytes() == pem
    raw = b64url_decode(public)
    assert len(raw) == 65 and raw[0] == 4
    key = serialization.load_pem_private_key(pem, password=None)
    assert isinstance(key, ec.EllipticCurvePrivateKey) and key.curve.name == "secp256r1"
    assert key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint) == raw
    ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), raw)
    assert "=" not in public and base64.urlsafe_b64decode(public + "=") == raw


def test_vapid_key_made_by_racing_threads_is_one_key(settings):
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(
        webpush.application_server_key(settings))) for _ in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=WAIT)
    assert len(results) == 6 and len(set(results)) == 1
    assert [p.name for p in settings.instance_dir.iterdir() if "vapid" in p.name] == [
        webpush.KEY_FILE]


# Made on first use only on the embedded default (SQLite): with a shared database no process
# makes keys (app/config/keyfiles.py, tests/ops/test_shared_keys.py).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_vapid_key_from_the_configured_path(settings, tmp_path):
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "shared" / "vapid.pem"
    path.parent.mkdir()
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                       serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    configured = dataclasses.replace(settings, vapid_private_key=str(path))
    assert webpush.application_server_key(configured) == b64url(key.public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
    assert not (settings.instance_dir / webpush.KEY_FILE).exists()


# --- clean_subscription ------------------------------------------------------------------------

def _keys() -> dict:
    p256dh = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return {"p256dh": b64url(p256dh), "auth": b64url(os.urandom(16))}


def test_clean_subscription_keeps_a_good_one(settings):
    keys = _keys()
    padded = {"p256dh": keys["p256dh"] + "=", "auth": keys["auth"] + "=="}
    cleaned = webpush.clean_subscription(settings, {
        "endpoint": "https://fcm.googleapis.com/fcm/send/abc", "expirationTime": None,
        "keys": padded})
    assert json.loads(cleaned) == {"endpoint": "https://fcm.googleapis.com/fcm/send/abc",
                                   "keys": keys}


def test_plain_http_only_to_the_named_test_service(settings, push_service):
    """UM2FA_WEBPUSH_TEST_SERVICE allows one host:port (a loopback address) over http, and
    nothing else: not another port, not https to it, not other loopback addresses."""
    webpush.clean_subscription(settings, push_service.subscribe())
    port = int(push_service.host_port.rsplit(":", 1)[1])
    for endpoint in (f"http://127.0.0.1:{port + 1}/push/x", f"https://127.0.0.1:{port}/push/x",
                     f"http://[::1]:{port}/push/x", f"http://localhost:{port}/push/x",
                     "http://127.5.6.7/push/x", f"http://user@127.0.0.1:{port}/push/x"):
        with pytest.raises(webpush.SubscriptionError, match="https"):
            webpush.clean_subscription(settings, {"endpoint": endpoint, "keys": _keys()})
    strict = dataclasses.replace(settings, webpush_test_service="")
    with pytest.raises(webpush.SubscriptionError, match="https"):
        webpush.clean_subscription(strict, push_service.subscribe())


@pytest.mark.parametrize("endpoint", [
    "http://example.com/push/x", "http://10.0.0.1/push/x", "http://localhost/push/x",
    "http://127.0.0.1.example.com/x", "ftp://127.0.0.1/x", "https:///nohost", "/push/x",
    "javascript:alert(1)", "http://[::1/push", ""])
def test_bad_endpoints_are_refused(settings, endpoint):
    with pytest.raises(webpush.SubscriptionError, match="https"):
        webpush.clean_subscription(settings, {"endpoint": endpoint, "keys": _keys()})


def _point_off_curve() -> str:
    return b64url(b"\x04" + b"\x01" * 64)


@pytest.mark.parametrize("subscription, message", [
    ("not an object", "must be an object"),
    ({}, "endpoint and keys"),
    ({"endpoint": "https://fcm.googleapis.com/x"}, "endpoint and keys"),
    ({"endpoint": "https://fcm.googleapis.com/x", "keys": "k"}, "endpoint and keys"),
    ({"endpoint": 42, "keys": {}}, "endpoint and keys"),
    ({"endpoint": "https://fcm.googleapis.com/" + "x" * 1100, "keys": {}}, "endpoint and keys"),
    ({"endpoint": "https://fcm.googleapis.com/x", "keys": {}}, "wrong size"),
    ({"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "AAAA", "auth": "AAAA"}},
     "wrong size"),
    ({"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "%%%%", "auth": "!!"}},
     "wrong size|base64url"),
    ({"endpoint": "https://fcm.googleapis.com/x", "keys": {"p256dh": "é", "auth": "x"}},
     "base64url"),
    ("short-auth", "wrong size"),
    ("long-auth", "wrong size"),
    ("compressed", "wrong size"),
    ("off-curve", "not a P-256 point"),
])
def test_bad_subscriptions_are_refused(settings, subscription, message):
    keys = _keys()
    if subscription == "short-auth":
        subscription = {"endpoint": "https://fcm.googleapis.com/fcm/send/x",
                        "keys": {**keys, "auth": b64url(os.urandom(15))}}
    elif subscription == "long-auth":
        subscription = {"endpoint": "https://fcm.googleapis.com/fcm/send/x",
                        "keys": {**keys, "auth": b64url(os.urandom(17))}}
    elif subscription == "compressed":
        point = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.CompressedPoint)
        subscription = {"endpoint": "https://fcm.googleapis.com/fcm/send/x",
                        "keys": {**keys, "p256dh": b64url(point)}}
    elif subscription == "off-curve":
        subscription = {"endpoint": "https://fcm.googleapis.com/fcm/send/x",
                        "keys": {**keys, "p256dh": _point_off_curve()}}
    with pytest.raises(webpush.SubscriptionError, match=message):
        webpush.clean_subscription(settings, subscription)


# Made on first use only on the embedded default (SQLite): with a shared database no process
# makes keys (app/config/keyfiles.py, tests/ops/test_shared_keys.py).
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_vapid_key_made_meanwhile_by_another_process_is_used(settings, monkeypatch):
    """Another worker creates the file between our exists() check and our write."""
    first = webpush.application_server_key(settings)
    path = settings.instance_dir / webpush.KEY_FILE
    real_exists = type(path).exists
    monkeypatch.setattr(type(path), "exists",
                        lambda self: False if self == path else real_exists(self))
    assert webpush.application_server_key(settings) == first
    assert sorted(p.name for p in settings.instance_dir.iterdir() if "vapid" in p.name) == [
        webpush.KEY_FILE]



# --- where Web Push may connect (security issue, point 11) ---------------------------------
#
# A companion device chooses its endpoint: without limits the server would POST to any https
# URL it is given (127.0.0.1, 10.x, the cloud metadata service), and follow redirects.

PUBLIC_SERVICES = [
    "https://fcm.googleapis.com/fcm/send/abc:def",
    "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABl",
    "https://web.push.apple.com/QGuQyavXutnMH",
    "https://wns2-par02p.notify.windows.com/w/?token=BQYAAAB",
]


@pytest.mark.parametrize("endpoint", PUBLIC_SERVICES)
def test_the_public_push_services_are_accepted(settings, endpoint):
    stored = webpush.clean_subscription(settings, {"endpoint": endpoint, "keys": _keys()})
    assert json.loads(stored)["endpoint"] == endpoint


@pytest.mark.parametrize("endpoint", [
    "https://127.0.0.1/push/x", "https://10.0.0.1/push/x", "https://[::1]/push/x",
    "https://169.254.169.254/latest/meta-data/", "https://localhost/push/x",
    "https://metadata.google.internal/computeMetadata/v1/",
    "https://push.example.net/send/abc",
    "https://fcm.googleapis.com.evil.example/x", "https://evilfcm.googleapis.com/x",
    "https://push.services.mozilla.com.evil.example/x", "https://push.apple.com/x",
    "https://fcm.googleapis.com:8443/fcm/send/x", "https://fcm.googleapis.com:80/x",
    "https://user:pass@fcm.googleapis.com/fcm/send/x",
])
def test_an_endpoint_off_the_public_push_services_is_refused(settings, endpoint):
    with pytest.raises(webpush.SubscriptionError, match="https") as refused:
        webpush.clean_subscription(settings, {"endpoint": endpoint, "keys": _keys()})
    assert "fcm.googleapis.com" in str(refused.value)  # says which services are allowed


class Network:
    """The machine's network as the sender sees it: names resolve to what the test says, and
    every connection is recorded and refused (nothing leaves the machine)."""

    def __init__(self, monkeypatch, answers: dict[str, list]) -> None:
        import socket

        import urllib3.util.connection

        self.answers = {name: list(seq) for name, seq in answers.items()}
        self.lookups: list[str] = []
        self.connections: list[tuple] = []
        real = socket.getaddrinfo

        def getaddrinfo(host, port, *args, **kwargs):
            if host in self.answers:
                self.lookups.append(host)
                seq = self.answers[host]
                addresses = seq.pop(0) if len(seq) > 1 else seq[0]
                return [(socket.AF_INET6 if ":" in a else socket.AF_INET, socket.SOCK_STREAM,
                         6, "", (a, port or 443)) for a in addresses]
            return real(host, port, *args, **kwargs)

        def create_connection(address, *args, **kwargs):
            self.connections.append(address)
            raise ConnectionRefusedError("refused by the test")

        monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
        monkeypatch.setattr(urllib3.util.connection, "create_connection", create_connection)


def _stored(settings, endpoint: str) -> str:
    """A subscription as it may sit in the database (registered before a setting changed, or
    before the name moved)."""
    return json.dumps({"endpoint": endpoint, "keys": _keys()})


@pytest.mark.parametrize("addresses", [
    ["127.0.0.1"], ["10.1.2.3"], ["192.168.0.10"], ["172.16.5.4"], ["169.254.169.254"],
    ["::1"], ["fe80::1"], ["fd00::1"], ["::ffff:127.0.0.1"], ["0.0.0.0"],  # noqa: S104
    ["224.0.0.1"], ["100.64.0.1"], ["2002:7f00:1::1"],  # 6to4 around 127.0.0.1
    ["8.8.8.8", "10.0.0.1"],  # one bad address among good ones is enough
])
def test_a_push_service_name_resolving_to_an_internal_address_is_not_contacted(
        settings, monkeypatch, caplog, addresses):
    network = Network(monkeypatch, {"fcm.googleapis.com": [addresses]})
    stored = _stored(settings, "https://fcm.googleapis.com/fcm/send/secret-token")
    with caplog.at_level(logging.WARNING, logger="um2fa.webpush"), \
            pytest.raises(webpush.SubscriptionError, match="address"):
        webpush.send(settings, stored, {"type": "push", "id": "x"}, ttl=30)
    assert network.connections == []
    assert "secret-token" not in caplog.text


def test_the_sender_connects_to_the_address_it_checked(settings, monkeypatch):
    """DNS rebinding: the name answers a public address when checked, then 127.0.0.1. The
    connection goes to the checked address, on port 443, and the name is looked up once."""
    network = Network(monkeypatch, {"fcm.googleapis.com": [["8.8.8.8"], ["127.0.0.1"]]})
    stored = _stored(settings, "https://fcm.googleapis.com/fcm/send/abc")
    with pytest.raises(requests.ConnectionError):
        webpush.send(settings, stored, {"type": "push", "id": "x"}, ttl=30)
    assert network.lookups == ["fcm.googleapis.com"]
    assert network.connections and {c[:2] for c in network.connections} == {("8.8.8.8", 443)}


def test_a_stored_subscription_is_checked_again_when_sending(settings, monkeypatch):
    """An endpoint stored before the allow-list changed (or written to the database by
    hand) is not sent to."""
    network = Network(monkeypatch, {"fcm.googleapis.com": [["8.8.8.8"]],
                                    "push.example.net": [["8.8.8.8"]]})
    for endpoint, narrower in (
            ("https://push.example.net/send/abc", settings),
            ("https://fcm.googleapis.com:8443/fcm/send/abc", settings),
            ("http://fcm.googleapis.com/fcm/send/abc", settings),
            ("https://fcm.googleapis.com/fcm/send/abc",
             dataclasses.replace(settings, webpush_allowed_hosts=("*.push.apple.com",)))):
        with pytest.raises(webpush.SubscriptionError, match="https"):
            webpush.send(narrower, _stored(settings, endpoint), {"type": "push", "id": "x"},
                         ttl=30)
    assert network.connections == []


def test_a_redirect_from_the_push_service_is_not_followed(settings, push_service):
    subscription = push_service.subscribe()
    stored = webpush.clean_subscription(settings, subscription)
    with PushService() as elsewhere:
        target = elsewhere.subscribe()
        push_service.redirect(subscription, target["endpoint"])
        assert webpush.send(settings, stored, {"type": "push", "id": "x"}, ttl=30) == 307
        assert push_service.wait_for(1, WAIT, refusals=True)[0].status == 307
        assert elsewhere.messages == [] and elsewhere.refusals == []


def test_the_pinned_connection_still_checks_the_certificate_for_the_name(tmp_path):
    """Connecting to the checked address must not weaken TLS: the certificate is verified
    for the push service's name (sent as SNI), not for the address."""
    import http.server
    import ssl

    from tests.peers.ldap_server import _pem_key, make_ca, make_server_cert

    ca_key, ca_cert = make_ca("Test push CA")
    key, cert = make_server_cert(ca_key, ca_cert)  # for localhost and 127.0.0.1
    (tmp_path / "ca.pem").write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "server.key").write_bytes(_pem_key(key))
    names: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802
            names.append(self.headers["Host"])
            self.send_response(201)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, *args):
            pass

    server = http.server.HTTPServer(("127.0.0.1", 0), Handler)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(tmp_path / "server.pem", tmp_path / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1},
                              daemon=True)
    thread.start()
    port = server.server_address[1]
    try:
        def post(name: str) -> int:
            target = webpush._Target("https", name, port, name)
            with webpush._session(target, "127.0.0.1") as session:
                session.verify = str(tmp_path / "ca.pem")
                return session.post(f"https://{name}:{port}/push", data=b"x",
                                    timeout=WAIT).status_code

        assert post("localhost") == 201 and names == ["localhost"]
        with pytest.raises(requests.exceptions.SSLError):
            post("fcm.googleapis.com")  # the address's certificate is not that name's
        assert names == ["localhost"]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
