"""Web Push (RFC 8030/8291/8292) wake-ups to the companion app.

A wake-up carries only the push request's id, encrypted for the subscription (aes128gcm); the
app then fetches the details with a signed call, so nothing about the login rides the push
service. The VAPID key pair lives in the instance directory (`vapid_private.pem`, made on first
use); every node must share it, because subscriptions are bound to its public key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from ipaddress import ip_address
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.core.after_commit import after_commit
from app.core.context import Context

log = logging.getLogger("um2fa.webpush")

KEY_FILE = "vapid_private.pem"
SEND_TIMEOUT = 10.0
GONE = (404, 410)  # RFC 8030 §7.3: the subscription expired or was removed
# Wake-ups waiting for a sender; past that they are dropped (the app also polls), so a slow
# push service cannot grow the queue without bound.
MAX_QUEUED = 1000
_senders = ThreadPoolExecutor(max_workers=4, thread_name_prefix="webpush")
_queued = threading.BoundedSemaphore(MAX_QUEUED)
_key_lock = threading.Lock()
_sending = threading.local()


class _HideEndpoint(logging.Filter):
    """urllib3 logs each request line at DEBUG; a push endpoint's path is the subscription's
    secret (whoever holds it can push to the phone), so not while we are sending."""

    def filter(self, record: logging.LogRecord) -> bool:
        return not getattr(_sending, "active", False)


logging.getLogger("urllib3.connectionpool").addFilter(_HideEndpoint())


class SubscriptionError(ValueError):
    """A Web Push subscription we will not send to; the message is safe to show."""


def _b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def key_path(settings: Settings) -> Path:
    return Path(settings.vapid_private_key or settings.instance_dir / KEY_FILE)


def private_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key, made (readable by its owner only) on first use."""
    path = key_path(settings)
    with _key_lock:
        if not path.exists():
            _make_key_file(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def _make_key_file(path: Path) -> None:
    """Written whole to a private temporary file, then linked into place: another process
    (a second worker on this node) racing us either wins the link or reads a complete key."""
    # A new directory is ours only; an existing one is left as it is (the instance directory
    # is tightened at start by load_settings; UM2FA_VAPID_PRIVATE_KEY's is the operator's).
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    pem = ec.generate_private_key(ec.SECP256R1()).private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption())
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.unlink(missing_ok=True)  # left by a crashed process that had our pid
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
        with contextlib.suppress(FileExistsError):  # made meanwhile by another process
            os.link(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)


def application_server_key(settings: Settings) -> str:
    """The VAPID public key as the app passes it to pushManager.subscribe (base64url)."""
    public = private_key(settings).public_key().public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
    return _b64url(public)


def clean_subscription(settings: Settings, subscription: dict) -> str:
    """A PushSubscription.toJSON() from the app, checked; stored as JSON text."""
    if not isinstance(subscription, dict):
        raise SubscriptionError("the push subscription must be an object")
    endpoint = subscription.get("endpoint")
    keys = subscription.get("keys")
    if not isinstance(endpoint, str) or not isinstance(keys, dict) or len(endpoint) > 1024:
        raise SubscriptionError("the push subscription needs an endpoint and keys")
    _check_endpoint(settings, endpoint)
    try:
        p256dh = _b64url_decode(str(keys.get("p256dh", "")))
        auth = _b64url_decode(str(keys.get("auth", "")))
    except ValueError as exc:
        raise SubscriptionError("the push subscription's keys are not base64url") from exc
    if len(p256dh) != 65 or p256dh[0] != 4 or len(auth) != 16:
        raise SubscriptionError("the push subscription's keys have the wrong size")
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), p256dh)
    except ValueError as exc:
        raise SubscriptionError("the push subscription's p256dh is not a P-256 point") from exc
    return json.dumps({"endpoint": endpoint,
                       "keys": {"p256dh": _b64url(p256dh), "auth": _b64url(auth)}})


def _check_endpoint(settings: Settings, endpoint: str) -> None:
    """https only (the browser vendors' push services); plain http only to a loopback
    address and only when UM2FA_WEBPUSH_ALLOW_HTTP is set (the tests' local push service)."""
    try:
        parts = urlsplit(endpoint)
    except ValueError as exc:
        raise SubscriptionError("the push endpoint must be an https URL") from exc
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and settings.webpush_allow_http and parts.hostname:
        try:
            if ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            pass
    raise SubscriptionError("the push endpoint must be an https URL")


def send(settings: Settings, subscription_json: str, payload: dict, ttl: int) -> int:
    """Encrypt and deliver one message; returns the push service's HTTP status."""
    from py_vapid import Vapid
    from pywebpush import WebPushException, webpush

    subscription = json.loads(subscription_json)
    vapid = Vapid(private_key(settings))
    _sending.active = True
    try:
        response = webpush(subscription, data=json.dumps(payload), vapid_private_key=vapid,
                           vapid_claims={"sub": settings.webpush_subject}, ttl=ttl,
                           timeout=SEND_TIMEOUT, headers={"Urgency": "high"})
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else 0
        log.warning("web push to %s refused: HTTP %s", urlsplit(subscription["endpoint"]).hostname,
                    status)
        return status
    finally:
        _sending.active = False
    return response.status_code  # type: ignore[union-attr]


def _send_quietly(settings: Settings, subscription_json: str, payload: dict, ttl: int,
                  engine: Engine) -> None:
    try:
        status = send(settings, subscription_json, payload, ttl)
        if status in GONE:
            forget_subscription(engine, subscription_json)
    except Exception as exc:  # noqa: BLE001 - a push service that fails must not break a login
        log.warning("web push not delivered: %s", type(exc).__name__)
    finally:
        _queued.release()


def forget_subscription(engine: Engine, subscription_json: str) -> None:
    """The push service says the subscription is gone (the app was removed, or the browser
    dropped it): stop sending to it. The app still finds its requests by polling, and gives
    a new subscription the next time it opens."""
    from app.models import Device

    with Session(engine) as session:
        cleared = session.execute(
            update(Device).where(Device.push_subscription == subscription_json)
            .values(push_subscription=None).execution_options(synchronize_session=False)
        ).rowcount
        session.commit()
    log.info("web push subscription gone: cleared from %d device(s)", cleared)


def wake_after_commit(ctx: Context, subscription_json: str, request_id: str) -> None:
    """Send the wake-up once the push request is committed (so the app, woken, finds it),
    from a small pool of sender threads (so the login does not wait on the push service)."""
    settings = ctx.settings
    payload = {"type": "push", "id": request_id}
    engine = ctx.db.get_bind()

    def submit() -> None:
        if not _queued.acquire(blocking=False):  # the push services are not keeping up
            log.warning("web push not sent: %d wake-ups already waiting", MAX_QUEUED)
            return
        try:
            _senders.submit(_send_quietly, settings, subscription_json, payload,
                            settings.push_timeout, engine)
        except RuntimeError:  # the pool is shut down: the process is exiting
            _queued.release()

    after_commit(ctx.db, submit)
