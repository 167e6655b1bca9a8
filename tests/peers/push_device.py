"""A Python "phone": the companion app's side of the device API, with a real P-256 key.

Written from docs/device-api.md, not from the server's code, so that it checks the document as
much as the server: the key signs as WebCrypto does (IEEE P1363 r || s, base64url), the public
key travels as SubjectPublicKeyInfo DER (base64url), and the TOTP passcode is computed here
from the secret the activation returned (RFC 6238).

It talks to a Flask test client (`PushDevice.with_client`) or to a live server
(`PushDevice.with_url`), so tests and the demo can share it:

    phone = PushDevice.with_url("http://127.0.0.1:5000")
    phone.activate(activation_link)          # the link in the QR code, or the bare code
    request = phone.wait_for_request()       # polls GET /requests (bounded)
    phone.approve(request["id"], "042")      # the number shown on the login page
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import struct
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import urlsplit

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

API = "/api/device/v1"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64url_decode(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def code_from_link(code_or_link: str) -> str:
    """The activation code from the QR code's link (…/app/#activate=<code>), or the code."""
    fragment = urlsplit(code_or_link).fragment if "#" in code_or_link else ""
    for part in fragment.split("&"):
        name, _, value = part.partition("=")
        if name == "activate":
            return value
    return code_or_link


def call_string(method: str, path: str, timestamp: str, body: bytes) -> str:
    return "\n".join(("UM2FA-CALL-1", method.upper(), path, timestamp,
                      hashlib.sha256(body).hexdigest()))


def answer_string(request_id: str, decision: str, number: str) -> str:
    return "\n".join(("UM2FA-ANSWER-1", request_id, decision, number))


def activation_string(code: str) -> str:
    return "UM2FA-ACTIVATE-1\n" + code


def totp(secret_b32: str, at: float, *, digits: int = 6, period: int = 30) -> str:
    """RFC 6238 with HMAC-SHA1, as the companion app computes it."""
    key = base64.b32decode(secret_b32.upper() + "=" * (-len(secret_b32) % 8))
    mac = hmac.new(key, struct.pack(">Q", int(at) // period), hashlib.sha1).digest()
    offset = mac[-1] & 0x0F
    value = struct.unpack(">I", mac[offset:offset + 4])[0] & 0x7FFFFFFF
    return str(value % 10 ** digits).zfill(digits)


# --- transports -----------------------------------------------------------------------------

@dataclass
class Reply:
    status: int
    data: dict[str, Any]
    content_type: str = ""
    text: str = ""

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def error(self) -> str:
        return str(self.data.get("error", ""))


def _reply(status: int, content_type: str, raw: bytes) -> Reply:
    text = raw.decode("utf-8", "replace")
    try:
        data = json.loads(text) if content_type.startswith("application/json") else {}
    except json.JSONDecodeError:
        data = {}
    return Reply(status, data if isinstance(data, dict) else {}, content_type, text)


class Transport(Protocol):
    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply: ...


class FlaskTransport:
    """Through a Flask test client (the `client` fixture)."""

    def __init__(self, client: Any) -> None:
        self.client = client

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        response = self.client.open(path, method=method, data=body, headers=headers)
        return _reply(response.status_code, response.content_type or "", response.get_data())


class HttpTransport:
    """Over HTTP(S) to a live server (urllib: nothing to install)."""

    def __init__(self, base_url: str, timeout: float = 10.0) -> None:
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout

    def send(self, method: str, path: str, body: bytes, headers: dict[str, str]) -> Reply:
        req = urllib.request.Request(self.base_url + path, data=body or None,  # noqa: S310
                                     headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as response:  # noqa: S310
                return _reply(response.status, response.headers.get_content_type(),
                              response.read())
        except urllib.error.HTTPError as exc:
            with exc:
                return _reply(exc.code, exc.headers.get_content_type(), exc.read())


# --- the phone ------------------------------------------------------------------------------

@dataclass
class SignedCall:
    """One call as it went out, so a test can send exactly the same bytes again."""

    method: str
    path: str
    body: bytes
    headers: dict[str, str]


@dataclass
class PushDevice:
    transport: Transport
    clock: Callable[[], float] = time.time
    key: ec.EllipticCurvePrivateKey = field(
        default_factory=lambda: ec.generate_private_key(ec.SECP256R1()))
    device_id: str = ""
    username: str = ""
    device_name: str = ""
    totp_secret: str = ""
    totp_digits: int = 6
    totp_period: int = 30
    last_call: SignedCall | None = None

    @classmethod
    def with_client(cls, client: Any, **kwargs: Any) -> PushDevice:
        return cls(FlaskTransport(client), **kwargs)

    @classmethod
    def with_url(cls, base_url: str, **kwargs: Any) -> PushDevice:
        return cls(HttpTransport(base_url), **kwargs)

    # keys and signatures, as WebCrypto makes them

    @property
    def public_key(self) -> str:
        """SubjectPublicKeyInfo DER, base64url (crypto.subtle.exportKey("spki", ...))."""
        return b64url(self.key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo))

    def sign(self, message: str) -> str:
        """ECDSA P-256 with SHA-256, IEEE P1363 (r || s, 32 bytes each), base64url."""
        r, s = decode_dss_signature(self.key.sign(message.encode(), ec.ECDSA(hashes.SHA256())))
        return b64url(r.to_bytes(32, "big") + s.to_bytes(32, "big"))

    # unsigned calls

    def _send_json(self, method: str, path: str, payload: Any) -> Reply:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = {"Content-Type": "application/json"} if body else {}
        return self.transport.send(method, path, body, headers)

    def config(self) -> Reply:
        return self._send_json("GET", f"{API}/config", None)

    def activate(self, code_or_link: str, *, subscription: dict | None = None,
                 proof: str | None = None, public_key: str | None = None) -> Reply:
        """Activate with the code from the QR code's link; on success the phone keeps its
        device id and TOTP secret. `proof` and `public_key` override what is sent (tests)."""
        code = code_from_link(code_or_link)
        payload: dict[str, Any] = {
            "code": code,
            "public_key": self.public_key if public_key is None else public_key,
            "proof": self.sign(activation_string(code)) if proof is None else proof}
        if subscription is not None:
            payload["subscription"] = subscription
        reply = self._send_json("POST", f"{API}/activate", payload)
        if reply.status == 201:
            self.device_id = reply.data["device_id"]
            self.username = reply.data["username"]
            self.device_name = reply.data["device_name"]
            self.totp_secret = reply.data["totp"]["secret"]
            self.totp_digits = reply.data["totp"]["digits"]
            self.totp_period = reply.data["totp"]["period"]
        return reply

    # signed calls

    def signed_headers(self, method: str, path: str, body: bytes, *,
                       timestamp: int | None = None) -> dict[str, str]:
        stamp = str(int(self.clock()) if timestamp is None else timestamp)
        headers = {"X-UM2FA-Device": self.device_id, "X-UM2FA-Timestamp": stamp,
                   "X-UM2FA-Signature": self.sign(call_string(method, path, stamp, body))}
        if body:
            headers["Content-Type"] = "application/json"
        return headers

    def call(self, method: str, path: str, payload: Any = None, *,
             timestamp: int | None = None) -> Reply:
        body = b"" if payload is None else json.dumps(payload).encode()
        headers = self.signed_headers(method, path, body, timestamp=timestamp)
        self.last_call = SignedCall(method, path, body, headers)
        return self.transport.send(method, path, body, headers)

    def replay(self, call: SignedCall | None = None) -> Reply:
        """Send a call again, byte for byte (the server must refuse it)."""
        call = call or self.last_call
        assert call is not None, "no call to replay"
        return self.transport.send(call.method, call.path, call.body, call.headers)

    def pending(self) -> list[dict[str, Any]]:
        reply = self.call("GET", f"{API}/requests")
        if reply.status != 200:
            raise AssertionError(f"GET /requests: {reply.status} {reply.error}")
        return reply.data["requests"]

    def details(self, request_id: str) -> Reply:
        return self.call("GET", f"{API}/requests/{request_id}")

    def answer(self, request_id: str, decision: str, number: str = "", *,
               signature: str | None = None) -> Reply:
        """Answer a push; the answer itself is signed over id, decision and typed number."""
        sig = signature or self.sign(answer_string(request_id, decision, number))
        return self.call("POST", f"{API}/requests/{request_id}/answer",
                         {"decision": decision, "number": number, "signature": sig})

    def approve(self, request_id: str, number: str = "") -> Reply:
        return self.answer(request_id, "approve", number)

    def deny(self, request_id: str) -> Reply:
        return self.answer(request_id, "deny")

    def report_fraud(self, request_id: str) -> Reply:
        return self.answer(request_id, "fraud")

    def set_subscription(self, subscription: dict | None) -> Reply:
        return self.call("PUT", f"{API}/subscription", {"subscription": subscription})

    # what the app does with the results

    def passcode(self, at: float | None = None) -> str:
        """The 6-digit passcode the app shows (no network needed)."""
        assert self.totp_secret, "not activated"
        return totp(self.totp_secret, self.clock() if at is None else at,
                    digits=self.totp_digits, period=self.totp_period)

    def wait_for_request(self, timeout: float = 10.0, interval: float = 0.2) -> dict[str, Any]:
        """The first pending request, polling as the app does when Web Push is unavailable."""
        deadline = time.monotonic() + timeout
        while True:
            found = self.pending()
            if found:
                return found[0]
            if time.monotonic() >= deadline:
                raise TimeoutError(f"no push request within {timeout} s")
            time.sleep(interval)

    def answer_pushes(self, decide: Callable[[dict[str, Any]], tuple[str, str] | None],
                      stop: threading.Event, *, interval: float = 0.5,
                      max_seconds: float = 3600.0) -> None:
        """Answer each pending request with decide(request) -> (decision, number), or skip it
        when decide returns None; until `stop` is set or `max_seconds` pass (for a demo
        thread)."""
        seen: set[str] = set()
        deadline = time.monotonic() + max_seconds
        while not stop.is_set() and time.monotonic() < deadline:
            for request in self.pending():
                if request["id"] in seen:
                    continue
                seen.add(request["id"])
                choice = decide(request)
                if choice is not None:
                    self.answer(request["id"], *choice)
            stop.wait(interval)


# --- server-side set-up (tests and the demo, in the server's process or beside it) ----------

def enrol(app: Any, username: str = "alice", *, device_type: str = "mobile",
          platform: str = "ios") -> str:
    """What "Add a new device" -> companion app does: a pending push device and its
    activation link (as in the QR code). Committed."""
    from app.core import devices, push, users
    from app.core.context import Origin
    from app.extensions import core

    with app.app_context():
        ctx = core.context()
        device = devices.begin_enrolment(ctx, Origin(door="test", client_addr="127.0.0.1"),
                                         users.get(ctx, username), device_type, platform,
                                         kind="push")
        code = push.new_activation(ctx, device)
        ctx.db.commit()
    return push.activation_link(app.config["UM2FA"].base_url or "https://2fa.example.edu",
                                code)


def send_push(app: Any, username: str = "alice", *, service: str = "myUM",
              door: str = "test", client_addr: str = "192.0.2.7") -> tuple[str, str]:
    """What "Send me a Push" does: (request id, the Verified Push number). Committed, also
    when push.start refuses (PushError), as a door commits the refusal's audit record."""
    from app.core import push, users
    from app.core.context import Origin
    from app.extensions import core

    with app.app_context():
        ctx = core.context()
        try:
            request = push.start(ctx, Origin(door=door, client_addr=client_addr),
                                 users.get(ctx, username), None, service=service)
            return request.public_id, request.number
        finally:
            ctx.db.commit()
