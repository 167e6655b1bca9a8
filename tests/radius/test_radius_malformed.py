"""Malformed packets over UDP never crash the server nor stop it answering: after every one, a
fresh valid Access-Request must still get its (verified) answer. Property-based, with a bounded
number of examples and a fixed seed, against the live `um2fa radius`."""

from __future__ import annotations

import struct
import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pyrad import packet as rp

from tests.conftest import PASSWORD, add_totp_device, audit_rows, make_user, totp_code
from tests.peers.live_radius import (
    DICTIONARY,
    RawSocket,
    decode_reply,
    reply_message,
    request_packet,
)
from tests.radius.conftest import SECRETS, SOURCE

EXAMPLES = 120
BOUNDED = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                   suppress_health_check=[HealthCheck.too_slow])
LOCAL = SECRETS["local"]


@pytest.fixture
def settings_overrides():
    """Garbage that happens to be a valid append-mode request is a wrong password: here the
    guessing limits (tests/radius/test_radius_guessing.py) must not stop the final real login."""
    return {"radius_guess_user_limit": 1000, "radius_guess_source_limit": 100_000}


class Prober:
    """Sends a fresh Access-Request (the second-factor client, an unknown user: a full trip
    through the pool and the database, no argon2) and requires its verified Access-Reject."""

    def __init__(self, radius) -> None:
        self.radius = radius
        self.sock = RawSocket(radius.port, SOURCE["second"])
        self.answered = 0

    def check(self) -> None:
        pkt = request_packet("probe-user", "123456", SECRETS["second"])
        self.sock.send(pkt.RequestPacket())
        raw = self.sock.receive(10.0)
        assert raw is not None, f"no answer after a malformed packet:\n{self.radius.log()}"
        assert decode_reply(pkt, raw).code == rp.AccessReject
        self.answered += 1


def finish(app, radius, prober: Prober, garbage: RawSocket) -> None:
    garbage.close()
    prober.sock.close()
    assert prober.answered >= EXAMPLES // 2
    assert radius.alive()
    log = radius.log()
    assert "Traceback" not in log and "unexpected error" not in log, log
    # and a real login still works end to end
    make_user(app)
    _, secret = add_totp_device(app)
    reply = radius.ask("alice", f"{PASSWORD},{totp_code(secret, time.time())}", secret=LOCAL)
    assert reply is not None and reply.code == rp.AccessAccept, reply_message(reply)
    # (garbage that happened to be a valid append-mode request may still be in the password
    # pool, behind this login: find this login's record by its Calling-Station-Id)
    mine = [r for r in audit_rows(app, "radius.access") if "203.0.113.7" in r.detail]
    assert [r.result for r in mine] == ["accept"]


def test_random_bytes(app, radius):
    prober, garbage = Prober(radius), RawSocket(radius.port)

    @BOUNDED
    @given(data=st.binary(max_size=4200))
    def property_(data: bytes) -> None:
        garbage.send(data)
        prober.check()

    property_()
    finish(app, radius, prober, garbage)


def _valid() -> bytes:
    return request_packet("alice", f"{PASSWORD},123456", LOCAL).RequestPacket()


corruption = st.one_of(
    st.integers(0, 200).map(lambda n: ("truncate", n)),
    st.integers(0, 0xFFFF).map(lambda n: ("length", n)),
    st.lists(st.tuples(st.integers(0, 200), st.integers(1, 255)), min_size=1,
             max_size=8).map(lambda flips: ("flip", flips)),
    st.tuples(st.integers(0, 255), st.integers(0, 255), st.binary(max_size=300))
    .map(lambda t: ("attribute", t)),
    st.integers(0, 255).map(lambda code: ("code", code)),
)


def corrupt(data: bytes, how: tuple) -> bytes:
    kind, arg = how
    if kind == "truncate":
        return data[:arg]
    if kind == "length":
        return data[:2] + struct.pack("!H", arg) + data[4:]
    if kind == "flip":
        out = bytearray(data)
        for at, mask in arg:
            out[at % len(out)] ^= mask
        return bytes(out)
    if kind == "attribute":  # an attribute whose length field may lie (overflow/underflow)
        code, length, value = arg
        out = data + bytes([code, length]) + value
        return out[:2] + struct.pack("!H", min(len(out), 0xFFFF)) + out[4:]
    return bytes([arg]) + data[1:]


def test_structured_corruptions_of_a_valid_packet(app, radius):
    prober, garbage = Prober(radius), RawSocket(radius.port)

    @BOUNDED
    @given(how=corruption)
    def property_(how: tuple) -> None:
        garbage.send(corrupt(_valid(), how))
        prober.check()

    property_()
    finish(app, radius, prober, garbage)


NAME = st.text(st.characters(categories=["L", "N", "P", "S"]), min_size=1,
               max_size=60).map(str.encode).filter(lambda b: len(b) <= 253)
# any attribute but User-Name, User-Password and Message-Authenticator (set separately)
attribute = st.tuples(st.integers(3, 255).filter(lambda c: c != 80), st.binary(max_size=253))
vendor_specific = st.tuples(st.just(26), st.one_of(
    st.binary(max_size=253),
    st.tuples(st.sampled_from([9, 12356, 25461, 311]), st.integers(0, 255),
              st.integers(0, 255), st.binary(max_size=200))
    .map(lambda t: struct.pack("!LBB", t[0], t[1], t[2]) + t[3])))


def test_authenticated_packets_with_strange_attributes(app, radius):
    """Packets that pass the Message-Authenticator (the right secret) but carry random
    attributes: bad UTF-8 names, odd password lengths, vendor garbage, unknown codes, States.
    Whatever the server answers must be a valid, signed reply."""
    prober, garbage = Prober(radius), RawSocket(radius.port)

    @BOUNDED
    @given(attrs=st.lists(st.one_of(attribute, vendor_specific), max_size=12),
           username=st.one_of(NAME, NAME, NAME, st.none(), st.binary(min_size=1, max_size=253)),
           password=st.one_of(st.none(), st.text(max_size=128).filter(
               lambda p: len(p.encode()) <= 128)))
    def property_(attrs, username, password) -> None:
        pkt = rp.AuthPacket(code=rp.AccessRequest, secret=LOCAL.encode(), dict=DICTIONARY)
        if username is not None:
            pkt[1] = [username]
        if password is not None:
            pkt[2] = [pkt.PwCrypt(password)]
        for code, value in attrs:
            pkt.setdefault(code, []).append(value)
        pkt.add_message_authenticator()
        raw = pkt.RequestPacket()
        garbage.send(raw)
        # a late answer to an earlier example has another Identifier: skip it
        window = 0.3 if username and password is not None else 0.02
        for reply in garbage.receive_all(window, until=lambda data: data[1] == pkt.id):
            if reply[1] == pkt.id:
                assert pkt.VerifyReply(pkt.CreateReply(packet=reply), reply, enforce_ma=True)
        prober.check()

    property_()
    finish(app, radius, prober, garbage)
