"""Passwords checked by an upstream RADIUS server (radius/upstream.py) against a real FreeRADIUS
(Debian's, tests/peers/freeradius.py), a hand-made upstream for forged replies, and the whole path:
our RADIUS door and the portal with UM2FA_DIRECTORY=radius."""

from __future__ import annotations

import hashlib
import hmac
import logging
import socket
import struct
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import pytest
from pyrad import packet as rp
from sqlalchemy import update

from app.config import ConfigError, load_settings
from app.core import radius_auth
from app.core.directory import DirectoryUnavailable
from app.extensions import core
from app.models import User
from radius.upstream import UpstreamRadiusDirectory, parse_server
from tests.conftest import add_totp_device, audit_rows, committed, make_user, sign_in, totp_code
from tests.peers.freeradius import FreeRadius
from tests.peers.live_radius import DICTIONARY, radclient
from tests.radius.conftest import SECRETS

UPSTREAM_SECRET = "upstream-secret-0123456789"
PASSWORDS = {"alice": "alice-upstream-pass", "bob": "bob-upstream-pass"}
# FreeRADIUS answers charlie with an Access-Challenge (its own second step), signed.
CHALLENGER = ('charlie Cleartext-Password := "charlie-pass", '
              "Response-Packet-Type := Access-Challenge\n"
              '\tReply-Message = "Enter your token", State = 0x0102, '
              "Message-Authenticator = 0x00\n")
LOCAL = SECRETS["local"]


@pytest.fixture(scope="module")
def upstream(tmp_path_factory) -> FreeRadius:
    server = FreeRadius(tmp_path_factory.mktemp("freeradius"), PASSWORDS, UPSTREAM_SECRET,
                        extra_users=CHALLENGER, auth_log=True)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def restart(upstream):
    """Stop the upstream in a test; it is running again afterwards, on the same port."""
    yield upstream.stop
    if not upstream.process or upstream.process.poll() is not None:
        upstream.start()


def dead_port() -> int:
    """A UDP port with nothing behind it: the kernel answers with ICMP port unreachable."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make(tmp_path, servers: list[str], **values) -> UpstreamRadiusDirectory:
    settings = load_settings({"instance_dir": tmp_path / "instance", "directory": "radius",
                              "upstream_radius_servers": ",".join(servers),
                              "upstream_radius_secret": UPSTREAM_SECRET,
                              "upstream_radius_timeout": 1, "upstream_radius_retries": 0,
                              **values}, environ={})
    return UpstreamRadiusDirectory(settings)


def logins(upstream: FreeRadius) -> int:
    return upstream.log().count("Login OK") + upstream.log().count("Login incorrect")


# --- the directory against FreeRADIUS -------------------------------------------------------

def test_right_wrong_and_unknown(tmp_path, upstream):
    directory = make(tmp_path, [upstream.address])
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert directory.check_password(" bob ", "a local hash is ignored", PASSWORDS["bob"])
    assert not directory.check_password("alice", None, PASSWORDS["bob"])
    assert not directory.check_password("alice", None, PASSWORDS["alice"] + "x")
    assert not directory.check_password("nobody", None, PASSWORDS["alice"])
    assert directory.lookup("alice") is None


def test_nothing_pap_cannot_carry_is_sent(tmp_path, upstream):
    directory = make(tmp_path, [upstream.address])
    before = logins(upstream)
    assert not directory.check_password("alice", None, "")
    assert not directory.check_password("", None, PASSWORDS["alice"])
    assert not directory.check_password("alice", None, "x" * 129)
    assert logins(upstream) == before


def test_an_upstream_challenge_is_not_relayed(tmp_path, upstream, caplog):
    directory = make(tmp_path, [upstream.address])
    with caplog.at_level(logging.WARNING, "um2fa.directory.radius"):
        assert not directory.check_password("charlie", None, "charlie-pass")
    assert "Access-Challenge" in caplog.text and "not relayed" in caplog.text
    assert "charlie-pass" not in caplog.text


def test_stopped_upstream_is_unavailable_then_recovers(tmp_path, upstream, restart, caplog):
    directory = make(tmp_path, [upstream.address], upstream_radius_retries=1)
    restart()
    with caplog.at_level(logging.ERROR, "um2fa.directory.radius"):
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match=f"127.0.0.1:{upstream.port}"):
            directory.check_password("alice", None, PASSWORDS["alice"])
    assert time.monotonic() - started < 1.0  # the closed port answers at once (ICMP)
    assert "unreachable" in caplog.text
    upstream.start()
    assert directory.check_password("alice", None, PASSWORDS["alice"])


def test_failover_to_the_second_server(tmp_path, upstream, caplog):
    directory = make(tmp_path, [f"127.0.0.1:{dead_port()}", upstream.address])
    with caplog.at_level(logging.ERROR, "um2fa.directory.radius"):
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        assert not directory.check_password("alice", None, "wrong-password")
    assert "unreachable" in caplog.text
    # no server answers at all
    with pytest.raises(DirectoryUnavailable):
        make(tmp_path, [f"127.0.0.1:{dead_port()}", f"localhost:{dead_port()}"]).check_password(
            "alice", None, PASSWORDS["alice"])


def test_failover_after_a_silent_server_times_out(tmp_path, upstream):
    """A server that receives but never answers: the request is sent 1 + retries times (the
    same packet), each waited for `timeout` seconds, then the next server is asked."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        silent.settimeout(0)
        directory = make(tmp_path, [f"127.0.0.1:{silent.getsockname()[1]}", upstream.address],
                         upstream_radius_retries=1)
        started = time.monotonic()
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        elapsed = time.monotonic() - started
        received = []
        while True:
            try:
                received.append(silent.recv(4096))
            except BlockingIOError:
                break
    assert 2.0 <= elapsed < 4.0
    assert len(received) == 2 and received[0] == received[1]  # a retransmission is identical


def test_a_wrong_secret_is_refused(tmp_path, upstream, caplog):
    """FreeRADIUS drops a request whose Message-Authenticator does not verify; nothing is
    believed, so the directory is unavailable rather than saying yes or no."""
    directory = make(tmp_path, [upstream.address],
                     upstream_radius_secret="not-the-upstream-secret-0123")
    with pytest.raises(DirectoryUnavailable):
        directory.check_password("alice", None, PASSWORDS["alice"])
    deadline = time.monotonic() + 5
    while "Message-Authenticator" not in upstream.log() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert "Message-Authenticator" in upstream.log()  # FreeRADIUS says why it dropped it


def test_concurrent_checks_from_many_threads(tmp_path, upstream):
    directory = make(tmp_path, [upstream.address], upstream_radius_timeout=3,
                     upstream_radius_retries=1)
    cases = [(name, password if i % 3 else password + "-wrong", bool(i % 3))
             for i in range(60) for name, password in PASSWORDS.items()]
    with ThreadPoolExecutor(max_workers=12) as pool:
        results = list(pool.map(lambda c: directory.check_password(c[0], None, c[1]), cases))
    assert results == [expected for _n, _p, expected in cases]


# --- replies that must not be believed (a hand-made upstream) ---------------------------------

def reply(request: bytes, code: int, *, secret: bytes = UPSTREAM_SECRET.encode(),
          ma_key: bytes | None = UPSTREAM_SECRET.encode(), ident: int | None = None,
          extra: bytes = b"") -> bytes:
    """A reply to `request`: Message-Authenticator (keyed with `ma_key`; none if None) first,
    then `extra` attributes, and the Response Authenticator computed with `secret`."""
    ident = request[1] if ident is None else ident
    request_auth = request[4:20]
    attrs = extra
    if ma_key is not None:
        zeroed = bytes([80, 18]) + b"\0" * 16 + extra
        header = struct.pack("!BBH", code, ident, 20 + len(zeroed))
        mac = hmac.new(ma_key, header + request_auth + zeroed, "md5").digest()
        attrs = bytes([80, 18]) + mac + extra
    header = struct.pack("!BBH", code, ident, 20 + len(attrs))
    response_auth = hashlib.md5(header + request_auth + attrs + secret).digest()  # noqa: S324
    return header + response_auth + attrs


class FakeUpstream:
    """A UDP server on 127.0.0.1 that answers each request with `answer(request)` (a list of
    datagrams) and keeps the requests it got. Bounded: it stops after `seconds`."""

    def __init__(self, answer: Callable[[bytes], list[bytes]], seconds: float = 20) -> None:
        self.answer, self.requests = answer, []
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1:{self.sock.getsockname()[1]}"
        self.deadline, self.stopped = time.monotonic() + seconds, threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self) -> None:
        while not self.stopped.is_set() and time.monotonic() < self.deadline:
            try:
                data, addr = self.sock.recvfrom(4096)
            except TimeoutError:
                continue
            self.requests.append(data)
            for datagram in self.answer(data):
                self.sock.sendto(datagram, addr)

    def close(self) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)
        self.sock.close()


@pytest.fixture
def fake():
    made: list[FakeUpstream] = []

    def build(answer: Callable[[bytes], list[bytes]]) -> FakeUpstream:
        made.append(FakeUpstream(answer))
        return made[-1]

    yield build
    for server in made:
        server.close()


WRONG = b"not-the-upstream-secret-0123"
FORGERIES: dict[str, Callable[[bytes], bytes]] = {
    "no Message-Authenticator": lambda req: reply(req, rp.AccessAccept, ma_key=None),
    "Message-Authenticator with another key": lambda req: reply(req, rp.AccessAccept,
                                                                ma_key=WRONG),
    "Response Authenticator with another secret": lambda req: reply(req, rp.AccessAccept,
                                                                    secret=WRONG),
    "another Identifier": lambda req: reply(req, rp.AccessAccept, ident=(req[1] + 1) % 256),
    "a Proxy-State we did not send": lambda req: reply(req, rp.AccessAccept,
                                                       extra=bytes([33, 6]) + b"evil"),
    "an Accounting-Response": lambda req: reply(req, rp.AccountingResponse),
    "a truncated packet": lambda req: reply(req, rp.AccessAccept)[:19],
}


@pytest.mark.parametrize("kind", FORGERIES)
def test_forged_replies_are_ignored(tmp_path, fake, caplog, kind):
    server = fake(lambda req: [FORGERIES[kind](req)])
    directory = make(tmp_path, [server.address])
    with caplog.at_level(logging.ERROR, "um2fa.directory.radius"), \
            pytest.raises(DirectoryUnavailable):
        directory.check_password("alice", None, PASSWORDS["alice"])
    assert "failed verification" in caplog.text


def test_a_valid_reply_after_forgeries_is_taken(tmp_path, fake):
    server = fake(lambda req: [forge(req) for forge in FORGERIES.values()]
                  + [reply(req, rp.AccessReject)])
    assert not make(tmp_path, [server.address]).check_password("alice", None, "pw-123456")
    accept = fake(lambda req: [reply(req, rp.AccessAccept)])
    assert make(tmp_path, [accept.address]).check_password("alice", None, "pw-123456")


def test_requests_are_signed_and_fresh(tmp_path, fake):
    """Each request: a random Request Authenticator, a Message-Authenticator first (valid), the
    password hidden with the secret, our NAS-Identifier."""
    server = fake(lambda req: [reply(req, rp.AccessReject)])
    directory = make(tmp_path, [server.address], upstream_radius_nas_identifier="um2fa-test")
    for _ in range(5):
        directory.check_password("alice", None, "a-password-123")
    assert len(server.requests) == 5
    assert len({raw[4:20] for raw in server.requests}) == 5
    for raw in server.requests:
        assert raw[0] == rp.AccessRequest and raw[20] == 80
        pkt = rp.AuthPacket(packet=raw, secret=UPSTREAM_SECRET.encode(), dict=DICTIONARY)
        assert pkt.verify_message_authenticator()
        assert pkt.PwDecrypt(pkt["User-Password"][0]) == "a-password-123"
        assert pkt["User-Name"] == ["alice"] and pkt["NAS-Identifier"] == ["um2fa-test"]


# --- settings -------------------------------------------------------------------------------

@pytest.mark.parametrize(("values", "message"), [
    ({"directory": "nps"}, "UM2FA_DIRECTORY must be 'local', 'ldap' or 'radius'"),
    ({"upstream_radius_servers": ""}, "UM2FA_UPSTREAM_RADIUS_SERVERS is required"),
    ({"upstream_radius_servers": "nps1:99999"}, "the port must be a number from 1 to 65535"),
    ({"upstream_radius_servers": "nps1:radius"}, "the port must be a number"),
    ({"upstream_radius_servers": "2001:db8::1"}, "write an IPv6 address in brackets"),
    ({"upstream_radius_servers": "[2001:db8::1"}, "is not [address]:port"),
    ({"upstream_radius_servers": ":1812"}, "does not name a host"),
    ({"upstream_radius_secret": ""}, "UM2FA_UPSTREAM_RADIUS_SECRET is required"),
    ({"upstream_radius_secret": "x" * 129}, "up to 128 printable characters"),
    ({"upstream_radius_timeout": 0}, "UM2FA_UPSTREAM_RADIUS_TIMEOUT must be between 1 and 30"),
    ({"upstream_radius_timeout": "soon"}, "must be a whole number"),
    ({"upstream_radius_retries": 6}, "UM2FA_UPSTREAM_RADIUS_RETRIES must be between 0 and 5"),
    ({"upstream_radius_nas_identifier": ""}, "UM2FA_UPSTREAM_RADIUS_NAS_IDENTIFIER must be"),
])
def test_bad_settings_are_clear_errors(tmp_path, values, message):
    base = {"instance_dir": tmp_path / "instance", "directory": "radius",
            "upstream_radius_servers": "nps1.um.edu.mo", "upstream_radius_secret": "s3cret"}
    with pytest.raises(ConfigError) as caught:
        load_settings({**base, **values}, environ={})
    assert message in str(caught.value)


def test_settings_from_the_environment(tmp_path):
    settings = load_settings({"instance_dir": tmp_path / "instance"}, environ={
        "UM2FA_DIRECTORY": "radius", "UM2FA_UPSTREAM_RADIUS_SERVERS": "NPS1, [2001:db8::2]:1645",
        "UM2FA_UPSTREAM_RADIUS_SECRET": "nps-shared-secret", "UM2FA_UPSTREAM_RADIUS_RETRIES": "2"})
    assert [parse_server(s) for s in settings.upstream_radius_servers] == [
        parse_server("nps1:1812"), parse_server("[2001:db8::2]:1645")]
    assert settings.upstream_radius_retries == 2 and settings.upstream_radius_timeout == 3
    assert "nps-shared-secret" not in repr(settings)
    assert str(parse_server("[2001:db8::2]:1645")) == "[2001:db8::2]:1645"


# --- the doors with UM2FA_DIRECTORY=radius ----------------------------------------------------

@pytest.fixture
def settings_overrides(upstream):
    return {"directory": "radius", "upstream_radius_servers": upstream.address,
            "upstream_radius_secret": UPSTREAM_SECRET, "upstream_radius_timeout": 1,
            "upstream_radius_retries": 0}


def upstream_only_user(app, username: str = "alice") -> str:
    """A local user (and their TOTP device) whose password is only in FreeRADIUS."""
    make_user(app, username, password="a-local-password-never-used")
    with committed(app) as c:
        c.db.execute(update(User).where(User.username == username).values(password_hash=None))
    return add_totp_device(app, username)[1]


def ask(port: int, username: str, typed: str):
    return radclient(port, LOCAL, [f'User-Name = "{username}"', f'User-Password = "{typed}"',
                                   "Message-Authenticator = 0x00"], timeout=4)


def test_the_vpn_door_checks_the_password_upstream(app, radius, upstream, restart):
    secret = upstream_only_user(app)
    code = totp_code(secret, time.time())
    wrong = ask(radius.port, "alice", f"not-the-password,{code}")
    assert wrong.code == "Access-Reject", wrong.output
    # append mode: a wrong password reads like a wrong passcode (issue 13, point 5)
    assert radius_auth.APPEND_FAILED % {"d": ","} in wrong.reply_message
    local = ask(radius.port, "alice", f"a-local-password-never-used,{code}")
    assert local.code == "Access-Reject", local.output
    right = ask(radius.port, "alice", f"{PASSWORDS['alice']},{code}")
    assert right.code == "Access-Accept", right.output
    assert "Logged in with Phone" in right.reply_message
    # bob is in FreeRADIUS but not ours
    assert ask(radius.port, "bob", f"{PASSWORDS['bob']},{code}").code == "Access-Reject"
    # the upstream is down: "temporarily unavailable", never "wrong password"
    restart()
    down = ask(radius.port, "alice", f"{PASSWORDS['alice']},{totp_code(secret, time.time())}")
    assert down.code == "Access-Reject", down.output
    assert down.reply_message == radius_auth.UNAVAILABLE
    assert radius.alive()
    results = [(r.username, r.result) for r in audit_rows(app, "sign_in") if r.door == "radius"]
    assert results == [("alice", "fail"), ("alice", "fail"), ("alice", "ok"), ("bob", "fail")]


def test_the_portal_checks_the_password_upstream(app, client, upstream, restart):
    upstream_only_user(app)
    assert type(core.services(app).directory) is UpstreamRadiusDirectory
    assert sign_in(client, "alice", "a-local-password-never-used").status_code == 401
    assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
    restart()
    other = app.test_client()
    down = sign_in(other, "alice", PASSWORDS["alice"])
    assert down.status_code == 503
    assert "temporarily unavailable" in down.get_data(as_text=True)
