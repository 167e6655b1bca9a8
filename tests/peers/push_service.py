"""A local Web Push service on 127.0.0.1, for the tests and the demo.

It plays both ends a real one has: the push service an application server POSTs to (RFC 8030),
checking the VAPID Authorization header (RFC 8292), and the browser's push client, which
decrypts the aes128gcm message (RFC 8291) with the subscription's private key and auth secret.
What it accepted is recorded as `Message`s; what it refused, as `Refusal`s (status and why).

    with PushService() as service:
        subscription = service.subscribe()          # PushSubscription.toJSON()
        ...                                         # the server sends to it
        message = service.wait_for(1)[0]            # bounded wait
        assert message.payload == {...}
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import http_ece
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import encode_dss_signature

MAX_BODY = 4096  # RFC 8030 7.2: what a push service must accept at least; we accept no more
MAX_VAPID_LIFETIME = 24 * 60 * 60  # RFC 8292 2: exp no more than 24 hours ahead
URGENCIES = ("very-low", "low", "normal", "high")
PUSH_PATH = re.compile(r"^/push/([A-Za-z0-9_-]{16,64})$")


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Refused(Exception):
    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


@dataclass
class Subscription:
    token: str
    endpoint: str
    private_key: ec.EllipticCurvePrivateKey
    auth: bytes
    # The applicationServerKey given to pushManager.subscribe: only that VAPID key may send.
    application_server_key: str | None = None

    def to_json(self) -> dict:
        p256dh = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint)
        return {"endpoint": self.endpoint, "keys": {"p256dh": b64url(p256dh),
                                                    "auth": b64url(self.auth)}}


@dataclass
class Message:
    """A push the service accepted, decrypted as the browser would."""

    token: str
    plaintext: bytes
    body: bytes
    ttl: int
    urgency: str
    claims: dict
    vapid_key: str
    headers: dict[str, str]
    location: str

    @property
    def payload(self) -> Any:
        return json.loads(self.plaintext)


@dataclass
class Refusal:
    token: str
    status: int
    reason: str


@dataclass
class PushService:
    """Start with `start()` (or `with`); the port is chosen by the system."""

    host: str = "127.0.0.1"
    messages: list[Message] = field(default_factory=list)
    refusals: list[Refusal] = field(default_factory=list)
    subscriptions: dict[str, Subscription] = field(default_factory=dict)
    failures: dict[str, int] = field(default_factory=dict)
    redirects: dict[str, str] = field(default_factory=dict)
    _changed: threading.Condition = field(default_factory=threading.Condition)
    _server: ThreadingHTTPServer | None = None
    _thread: threading.Thread | None = None

    # --- lifecycle ---------------------------------------------------------------------------

    def start(self) -> PushService:
        service = self

        class Handler(_Handler):
            push_service = service

        self._server = ThreadingHTTPServer((self.host, 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever,
                                        kwargs={"poll_interval": 0.1}, daemon=True,
                                        name="push-service")
        self._thread.start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> PushService:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def origin(self) -> str:
        assert self._server is not None, "the push service is not started"
        return f"http://{self.host}:{self._server.server_address[1]}"

    # --- what a browser does -----------------------------------------------------------------

    def subscribe(self, application_server_key: str | None = None) -> dict:
        """A new subscription (P-256 key pair + 16-byte auth secret), as toJSON() gives it."""
        token = secrets.token_urlsafe(24)
        sub = Subscription(token, f"{self.origin}/push/{token}",
                           ec.generate_private_key(ec.SECP256R1()), secrets.token_bytes(16),
                           application_server_key)
        with self._changed:
            self.subscriptions[token] = sub
        return sub.to_json()

    def unsubscribe(self, subscription: dict) -> None:
        """The browser dropped it: the endpoint now answers 410 Gone."""
        self.fail(subscription, 410)

    def fail(self, subscription: dict, status: int) -> None:
        """Answer `status` (404, 410, 500...) to every push to this subscription."""
        with self._changed:
            self.failures[_token_of(subscription)] = status

    def redirect(self, subscription: dict, location: str) -> None:
        """Answer every push to this subscription with 307 Temporary Redirect to `location`
        (a hostile push service, or one taken over, pointing the sender elsewhere)."""
        with self._changed:
            self.redirects[_token_of(subscription)] = location

    @property
    def host_port(self) -> str:
        """host:port, as UM2FA_WEBPUSH_TEST_SERVICE names this service."""
        return self.origin.split("://", 1)[1]

    # --- what the tests look at --------------------------------------------------------------

    def wait_for(self, count: int, timeout: float = 5.0, *, refusals: bool = False) -> list:
        """At least `count` messages (or refusals), waiting at most `timeout` seconds."""
        found = self.refusals if refusals else self.messages
        deadline = time.monotonic() + timeout
        with self._changed:
            while len(found) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"push service: {len(found)} of {count} "
                                         f"{'refusals' if refusals else 'messages'} after "
                                         f"{timeout} s; refusals so far: {self.refusals}")
                self._changed.wait(left)
            return list(found)

    def messages_for(self, subscription: dict) -> list[Message]:
        token = _token_of(subscription)
        with self._changed:
            return [m for m in self.messages if m.token == token]

    # --- the push service's side -------------------------------------------------------------

    def _record(self, item: Message | Refusal) -> None:
        with self._changed:
            (self.messages if isinstance(item, Message) else self.refusals).append(item)
            self._changed.notify_all()

    def receive(self, path: str, headers: dict[str, str], body: bytes) -> Message:
        """Check and decrypt one push; raises Refused with the status to answer."""
        match = PUSH_PATH.match(path)
        with self._changed:
            sub = self.subscriptions.get(match.group(1)) if match else None
            failure = self.failures.get(match.group(1)) if match else None
        if sub is None:
            raise Refused(404, "no such subscription")
        if failure is not None:
            raise Refused(failure, "told to fail")
        ttl = _ttl(headers)
        urgency = headers.get("urgency", "normal").strip().lower()
        if urgency not in URGENCIES:
            raise Refused(400, f"bad Urgency {urgency!r}")
        claims, vapid_key = check_vapid(headers.get("authorization", ""), self.origin)
        if sub.application_server_key and vapid_key != sub.application_server_key:
            raise Refused(403, "VAPID key is not the subscription's applicationServerKey")
        plaintext = decrypt(sub, headers, body)
        return Message(sub.token, plaintext, body, ttl, urgency, claims, vapid_key, headers,
                       f"/message/{secrets.token_urlsafe(12)}")


class _Handler(BaseHTTPRequestHandler):
    push_service: PushService
    protocol_version = "HTTP/1.1"

    def do_POST(self) -> None:  # noqa: N802 - the http.server naming
        service = self.push_service
        match = PUSH_PATH.match(self.path)
        token = match.group(1) if match else ""
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 <= length <= MAX_BODY:
            self._answer(413 if length > MAX_BODY else 400, token, "bad Content-Length")
            return
        body = self.rfile.read(length)
        headers = {k.lower(): v for k, v in self.headers.items()}
        with service._changed:
            location = service.redirects.get(token)
        if location is not None:
            service._record(Refusal(token, 307, "told to redirect"))
            self.send_response(307)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        try:
            message = service.receive(self.path, headers, body)
        except Refused as refused:
            self._answer(refused.status, token, refused.reason)
            return
        service._record(message)
        self.send_response(201)
        self.send_header("Location", service.origin + message.location)
        self.send_header("TTL", str(message.ttl))
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _answer(self, status: int, token: str, reason: str) -> None:
        self.push_service._record(Refusal(token, status, reason))
        data = reason.encode()
        self.send_response(status)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self) -> None:  # noqa: N802
        self._answer(405, "", "POST only")

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        """Quiet: the tests read what was recorded."""


def _token_of(subscription: dict) -> str:
    match = PUSH_PATH.match("/" + subscription["endpoint"].split("/", 3)[3])
    assert match, "not one of this push service's endpoints"
    return match.group(1)


def _ttl(headers: dict[str, str]) -> int:
    """RFC 8030 5.2: TTL is required, a non-negative number of seconds."""
    raw = headers.get("ttl")
    if raw is None or not raw.strip().isdigit():
        raise Refused(400, "TTL header missing or not a number")
    return int(raw)


def check_vapid(authorization: str, origin: str) -> tuple[dict, str]:
    """RFC 8292: `vapid t=<JWT>, k=<public key>`; returns (claims, k). Raises Refused(401)."""
    scheme, _, rest = authorization.strip().partition(" ")
    if scheme.lower() != "vapid":
        raise Refused(401, "Authorization is not the vapid scheme")
    params = {}
    for part in rest.split(","):
        name, sep, value = part.strip().partition("=")
        if sep:
            params[name.strip().lower()] = value.strip()
    token, k = params.get("t", ""), params.get("k", "")
    try:
        public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), b64url_decode(k))
        header_b64, claims_b64, signature_b64 = token.split(".")
        header = json.loads(b64url_decode(header_b64))
        claims = json.loads(b64url_decode(claims_b64))
        signature = b64url_decode(signature_b64)
    except (ValueError, binascii.Error) as exc:
        raise Refused(401, f"unreadable VAPID header: {type(exc).__name__}") from exc
    if header.get("alg") != "ES256" or len(signature) != 64:
        raise Refused(401, "VAPID JWT is not ES256")
    try:
        public.verify(encode_dss_signature(int.from_bytes(signature[:32], "big"),
                                           int.from_bytes(signature[32:], "big")),
                      f"{header_b64}.{claims_b64}".encode(), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature as exc:
        raise Refused(401, "VAPID JWT signature does not verify with k") from exc
    if not isinstance(claims, dict) or claims.get("aud") != origin:
        raise Refused(401, f"VAPID aud is not {origin}")
    exp, now = claims.get("exp"), time.time()
    if not isinstance(exp, int) or not now < exp <= now + MAX_VAPID_LIFETIME:
        raise Refused(401, "VAPID exp missing, past, or more than 24 h ahead")
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise Refused(401, "VAPID sub missing")
    return claims, k


def decrypt(sub: Subscription, headers: dict[str, str], body: bytes) -> bytes:
    """RFC 8291: one aes128gcm record, keyid = the sender's ephemeral P-256 public key."""
    if headers.get("content-encoding", "").strip().lower() != "aes128gcm":
        raise Refused(415, "Content-Encoding must be aes128gcm")
    if len(body) < 21 + 65 + 17 or body[20] != 65:
        raise Refused(400, "aes128gcm header without a 65-byte keyid")
    record_size = int.from_bytes(body[16:20], "big")
    if len(body) - 21 - 65 > record_size:
        raise Refused(400, "more than one record")
    try:
        return http_ece.decrypt(body, private_key=sub.private_key, auth_secret=sub.auth,
                                version="aes128gcm")
    except Exception as exc:  # noqa: BLE001 - any failure is a message we cannot read
        raise Refused(400, f"cannot decrypt: {type(exc).__name__}") from exc
