"""Web Push (RFC 8030/8291/8292) wake-ups to the companion app.

A wake-up carries only the push request's id, encrypted for the subscription (aes128gcm); the
app then fetches the details with a signed call, so nothing about the login rides the push
service. The VAPID key pair lives in the instance directory (`vapid_private.pem`: made on first
use on SQLite, by `um2fa keys generate` with a shared database); every node must share it,
because subscriptions are bound to its public key.
"""

from __future__ import annotations

import base64
import contextlib
import json
import logging
import os
import socket
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from ipaddress import IPv6Address, ip_address
from pathlib import Path
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from sqlalchemy import update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from app.config import Settings
from app.config.keyfiles import MissingKeys
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


def where(settings: Settings) -> str:
    """How an error or `um2fa keys generate` names the VAPID key."""
    return f"VAPID key ({key_path(settings)})"


def private_key(settings: Settings) -> ec.EllipticCurvePrivateKey:
    """The VAPID private key. Made (readable by its owner only) on first use on SQLite (one
    machine); with a shared database a missing one is MissingKeys (app/config/keyfiles.py)."""
    path = key_path(settings)
    with _key_lock:
        if not path.exists():
            if not settings.makes_keys:
                raise MissingKeys([where(settings)])
            make_key_file(path)
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, ec.EllipticCurvePrivateKey):
        raise ValueError(f"{path} is not an EC private key")
    return key


def make_key_file(path: Path) -> None:
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
    _target(settings, endpoint)
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


@dataclass(frozen=True)
class _Target:
    """Where a push may go: the URL's scheme, host (lower case) and port."""

    scheme: str
    host: str
    port: int
    netloc: str
    test_service: bool = False


def _refused(settings: Settings) -> SubscriptionError:
    allowed = ", ".join(settings.webpush_allowed_hosts) or "none (Web Push is off)"
    return SubscriptionError("the push endpoint must be an https URL of a public push service, "
                             f"on port 443 (allowed: {allowed})")


def _target(settings: Settings, endpoint: str) -> _Target:
    """The one check of an endpoint, at registration and again before every send: https, port
    443, a host the allow-list (UM2FA_WEBPUSH_ALLOWED_HOSTS) names, no user or password. Plain
    http only to the exact host:port that UM2FA_WEBPUSH_TEST_SERVICE names (the tests)."""
    try:
        parts = urlsplit(endpoint)
        host, port = (parts.hostname or ""), parts.port
    except ValueError as exc:
        raise _refused(settings) from exc
    if not host or parts.username is not None or parts.password is not None:
        raise _refused(settings)
    if (settings.webpush_test_service and parts.scheme == "http"
            and parts.netloc == settings.webpush_test_service):
        return _Target("http", host, port or 80, parts.netloc, test_service=True)
    if parts.scheme != "https" or port not in (None, 443) \
            or not _allowed_host(host, settings.webpush_allowed_hosts):
        raise _refused(settings)
    return _Target("https", host, 443, host)


def _allowed_host(host: str, patterns: tuple[str, ...]) -> bool:
    """`name` matches itself only; `*.domain` any name under the domain, not the domain."""
    return any(host.endswith(p[1:]) and len(host) > len(p) - 1 if p.startswith("*.")
               else host == p for p in patterns)


def _public(address: str) -> bool:
    """A global unicast address: not loopback, private, link-local, shared (CGNAT), reserved,
    multicast or unspecified, also when written as an IPv4-mapped, 6to4 or Teredo address."""
    ip = ip_address(address.split("%", 1)[0])
    embedded = [ip.ipv4_mapped, ip.sixtofour, ip.teredo and ip.teredo[1]] \
        if isinstance(ip, IPv6Address) else []
    return all(a.is_global and not (a.is_loopback or a.is_private or a.is_link_local
                                    or a.is_reserved or a.is_multicast or a.is_unspecified)
               for a in [ip, *(e for e in embedded if e)])


def _address(target: _Target) -> str:
    """The address to connect to: the name is resolved once, every address it gives must be
    public, and the connection goes to the first of them (so a second answer from the DNS,
    rebinding the name to an internal address, is never used)."""
    if target.test_service:
        return target.host
    try:
        found = socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        raise SubscriptionError(f"the push service {target.host} has no address") from exc
    addresses = [str(info[4][0]) for info in found]
    refused = [a for a in addresses if not _public(a)]
    if not addresses or refused:
        raise SubscriptionError(f"the push service {target.host} resolves to an address that "
                                f"is not public ({', '.join(refused) or 'none'})")
    return addresses[0]


def _session(target: _Target, address: str):
    """A requests session that sends to `address` only (TLS still checks the certificate for
    the host name, and SNI names it), never follows a redirect, and ignores proxy settings
    from the environment (they would resolve the name again)."""
    import requests
    from requests.adapters import HTTPAdapter

    class Pinned(HTTPAdapter):
        def build_connection_pool_key_attributes(self, request, verify, cert=None):
            host_params, pool_kwargs = super().build_connection_pool_key_attributes(
                request, verify, cert)
            if ((host_params.get("host") or "").lower() != target.host
                    or (host_params.get("port") or target.port) != target.port
                    or host_params.get("scheme") != target.scheme):
                raise requests.ConnectionError("not the push service that was checked")
            host_params = {**host_params, "host": address, "port": target.port}
            if target.scheme == "https":
                pool_kwargs = {**pool_kwargs, "server_hostname": target.host,
                               "assert_hostname": target.host}
            return host_params, pool_kwargs

        def send(self, request, *args, **kwargs):
            request.headers["Host"] = target.netloc
            return super().send(request, *args, **kwargs)

    class NoRedirects(requests.Session):
        def send(self, request, **kwargs):
            kwargs["allow_redirects"] = False
            return super().send(request, **kwargs)

    session = NoRedirects()
    session.trust_env = False
    adapter = Pinned(max_retries=0)
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    return session


def send(settings: Settings, subscription_json: str, payload: dict, ttl: int) -> int:
    """Encrypt and deliver one message; returns the push service's HTTP status. The endpoint
    is checked again (the allow-list may have changed; the name may resolve elsewhere now):
    SubscriptionError when it may not be sent to, and nothing is sent."""
    from py_vapid import Vapid
    from pywebpush import WebPushException, webpush

    subscription = json.loads(subscription_json)
    target = _target(settings, subscription["endpoint"])
    address = _address(target)
    vapid = Vapid(private_key(settings))
    _sending.active = True
    try:
        with _session(target, address) as session:
            response = webpush(subscription, data=json.dumps(payload), vapid_private_key=vapid,
                               vapid_claims={"sub": settings.webpush_subject}, ttl=ttl,
                               timeout=SEND_TIMEOUT, headers={"Urgency": "high"},
                               requests_session=session)
    except WebPushException as exc:
        status = exc.response.status_code if exc.response is not None else 0
        log.warning("web push to %s refused: HTTP %s", target.host, status)
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
    except SubscriptionError as exc:  # the endpoint or its address is refused: said why
        log.warning("web push not sent: %s", exc)
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


def wake_after_commit(ctx: Context, subscription_json: str, request_id: str,
                      ttl: int | None = None) -> None:
    """Send the wake-up once the push request is committed (so the app, woken, finds it),
    from a small pool of sender threads (so the login does not wait on the push service).
    `ttl`: the push's own lifetime (a RADIUS client's push timeout), else the global one."""
    send_after_commit(ctx, subscription_json, {"type": "push", "id": request_id},
                      ttl or ctx.settings.push_timeout)


def send_after_commit(ctx: Context, subscription_json: str, payload: dict, ttl: int) -> None:
    """Any wake-up (a push request, a notice): sent after the commit by the sender pool."""
    settings = ctx.settings
    engine = ctx.db.get_bind()

    def submit() -> None:
        if not _queued.acquire(blocking=False):  # the push services are not keeping up
            log.warning("web push not sent: %d wake-ups already waiting", MAX_QUEUED)
            return
        try:
            _senders.submit(_send_quietly, settings, subscription_json, payload, ttl,
                            engine)
        except RuntimeError:  # the pool is shut down: the process is exiting
            _queued.release()

    after_commit(ctx.db, submit)
