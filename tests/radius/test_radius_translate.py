"""The door's translation (packets <-> core) and its retransmission cache, without a server;
and reply attributes per role, from core to the packet."""

from __future__ import annotations

import ipaddress
import struct

import pytest
from pyrad import packet as rp

from app.config import ConfigError, load_settings
from app.core import radius_auth
from app.core.radius_auth import AccessRequest, Decision, Outcome
from app.core.radius_clients import ClientConfig
from radius import translate
from radius.cache import PENDING, RetransmitCache
from tests.conftest import PASSWORD, add_totp_device, committed, make_user, totp_code
from tests.peers.live_radius import DICTIONARY, decode_reply, request_packet

SECRET = "translate-secret-0123"
CLIENT = ClientConfig("vpn", ipaddress.ip_network("127.0.0.1/32"), SECRET.encode())
ROLES = '{"staff": {"Filter-Id": "staff-vpn", "Fortinet-Group-Name": ["vpn-staff", "wifi"]}}'


@pytest.fixture
def settings_overrides():
    return {"radius_role_attributes": ROLES}


def received(pkt: rp.AuthPacket) -> rp.AuthPacket:
    """The packet as the server decodes it."""
    raw = pkt.RequestPacket()
    translate.check_framing(raw)
    return rp.AuthPacket(secret=SECRET.encode(), dict=DICTIONARY, packet=raw)


def test_access_request_carries_what_core_needs():
    pkt = request_packet("Alice", "pässword,123456", SECRET)
    pkt["NAS-Identifier"] = "fw1\x07"
    pkt["Calling-Station-Id"] = "203.0.113.7"
    req = translate.access_request(received(pkt), CLIENT, "127.0.0.1")
    assert (req.username, req.password, req.nas_ip, req.nas_identifier, req.calling_station) \
        == ("Alice", "pässword,123456", "127.0.0.1", "fw1?", "203.0.113.7")
    assert "pässword" not in repr(req)


@pytest.mark.parametrize("mutate, fault", [
    (lambda d: d[:19], "shorter than a RADIUS header"),
    (lambda d: d[:2] + struct.pack("!H", 19) + d[4:], "bad Length"),
    (lambda d: d[:2] + struct.pack("!H", len(d) + 1) + d[4:], "bad Length"),
    (lambda d: d + bytes([18, 40, 65]), "overflows"),
    (lambda d: d + bytes([18, 1]), "overflows"),
    (lambda d: d + bytes([18]), "truncated attribute"),
    (lambda d: d + bytes([1, 7]) + b"alice", "more than once"),
    (lambda d: d + bytes([80, 6, 0, 0, 0, 0]), "not 16 octets"),
])
def test_framing_faults_are_named(mutate, fault):
    data = bytearray(request_packet("alice", "pw", SECRET, ma=False).RequestPacket())
    bad = bytes(mutate(bytes(data)))
    if len(bad) >= 4 and fault not in ("bad Length", "shorter than a RADIUS header"):
        bad = bad[:2] + struct.pack("!H", len(bad)) + bad[4:]
    with pytest.raises(translate.Malformed, match=fault):
        translate.check_framing(bad)


def test_padding_beyond_the_length_field_is_ignored():
    raw = request_packet("alice", "pw", SECRET).RequestPacket()
    translate.check_framing(raw + b"\x00" * 7)


def test_attribute_faults_after_decoding():
    no_name = rp.AuthPacket(code=rp.AccessRequest, secret=SECRET.encode(), dict=DICTIONARY)
    no_name.add_message_authenticator()
    with pytest.raises(translate.Malformed, match="no User-Name"):
        translate.access_request(received(no_name), CLIENT, "127.0.0.1")
    bad_utf8 = request_packet("x", "pw", SECRET)
    bad_utf8[1] = [b"\xff\xfe"]
    with pytest.raises(translate.Malformed, match="not UTF-8"):
        translate.access_request(received(bad_utf8), CLIENT, "127.0.0.1")
    odd_password = request_packet("alice", "pw", SECRET)
    odd_password[2] = [b"x" * 17]
    with pytest.raises(translate.Malformed, match="multiple of 16"):
        translate.access_request(received(odd_password), CLIENT, "127.0.0.1")
    chap = request_packet("alice", "pw", SECRET)
    del chap[2]
    chap[3] = [b"\x01" + b"c" * 16]
    assert translate.access_request(received(chap), CLIENT, "127.0.0.1").password is None


def test_replies_are_signed_and_carry_the_decision():
    pkt = request_packet("alice", "pw", SECRET)
    server_side = received(pkt)
    long_message = "x" * 300 + "é" * 10
    decision = Decision(Outcome.CHALLENGE, long_message, state=b"s" * 16)
    raw = translate.reply_packet(server_side, decision)
    assert raw[20:22] == bytes([80, 18])  # Message-Authenticator first (BlastRADIUS)
    reply = decode_reply(pkt, raw)
    assert reply.code == rp.AccessChallenge
    assert [len(m.encode()) for m in reply["Reply-Message"]] == [253, 67]
    assert "".join(reply["Reply-Message"]) == long_message
    assert reply["State"] == [b"s" * 16]
    accept = Decision(Outcome.ACCEPT, "ok", session_class=b"um2fa:1",
                      attributes=(("Filter-Id", "staff"), ("Session-Timeout", "3600"),
                                  ("Service-Type", "Framed-User")))
    reply = decode_reply(pkt, translate.reply_packet(server_side, accept))
    assert reply.code == rp.AccessAccept and reply["Class"] == [b"um2fa:1"]
    assert reply["Filter-Id"] == ["staff"] and reply["Session-Timeout"] == [3600]
    assert reply["Service-Type"] == ["Framed-User"]


def test_unknown_or_ill_typed_role_attributes_fail_at_start():
    translate.check_attributes(DICTIONARY, {"staff": (("Fortinet-Group-Name", "x"),)})
    with pytest.raises(ValueError, match="unknown attribute"):
        translate.check_attributes(DICTIONARY, {"staff": (("Frobnicate", "x"),)})
    with pytest.raises(ValueError, match="does not fit"):
        translate.check_attributes(DICTIONARY, {"staff": (("Session-Timeout", "soon"),)})


def test_role_attributes_reach_the_reply(app, clock):
    make_user(app, role="staff")
    make_user(app, "bob")
    _, alice = add_totp_device(app)
    _, bob = add_totp_device(app, "bob")
    with committed(app) as c:
        staff = radius_auth.authenticate(c, AccessRequest(
            CLIENT, "127.0.0.1", "alice", f"{PASSWORD},{totp_code(alice, clock.now)}"))
        student = radius_auth.authenticate(c, AccessRequest(
            CLIENT, "127.0.0.1", "bob", f"{PASSWORD},{totp_code(bob, clock.now)}"))
    assert staff.attributes == (("Filter-Id", "staff-vpn"), ("Fortinet-Group-Name", "vpn-staff"),
                                ("Fortinet-Group-Name", "wifi"))
    assert student.outcome is Outcome.ACCEPT and student.attributes == ()
    pkt = request_packet("alice", "pw", SECRET)
    reply = decode_reply(pkt, translate.reply_packet(received(pkt), staff))
    assert reply["Fortinet-Group-Name"] == ["vpn-staff", "wifi"]


@pytest.mark.parametrize("value", ["{not json", '["a"]', '{"staff": "x"}',
                                   '{"staff": {"Filter-Id": {"a": 1}}}',
                                   '{"staff": {"Filter-Id": true}}'])
def test_bad_role_attributes_are_a_configuration_error(app, value):
    with pytest.raises(ConfigError):
        load_settings({"radius_role_attributes": value, "instance_dir": app.instance_path})


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_cache_pending_then_reply_then_expiry():
    clock = Clock()
    cache = RetransmitCache(ttl=30, clock=clock)
    assert cache.lookup("k") is None
    cache.begin("k")
    assert cache.lookup("k") is PENDING
    cache.complete("k", b"reply")
    assert cache.lookup("k") == b"reply"
    clock.now += 31
    assert cache.lookup("k") is None
    cache.begin("j")
    cache.forget("j")
    assert cache.lookup("j") is None and len(cache) == 0


def test_cache_is_bounded():
    clock = Clock()
    cache = RetransmitCache(ttl=30, max_entries=100, clock=clock)
    for i in range(1000):
        cache.begin(i)
        cache.complete(i, b"r")
    assert len(cache) == 100
    assert cache.lookup(0) is None and cache.lookup(999) == b"r"
    clock.now += 31
    cache.begin("new")
    assert len(cache) == 1


def test_the_server_keeps_answers_as_long_as_the_longest_push_wait(app, runner):
    """Security issue point 15: a copy of a push login must find its answer in the cache for as
    long as the client's push could wait, however long that is."""
    import asyncio
    import threading

    from app.extensions import core
    from radius.server import RadiusServer

    for name, address, timeout in (("a", "127.0.0.1", "45"), ("b", "127.0.0.2", "120")):
        result = runner.invoke(args=["radius-clients", "add", name, "--address", address,
                                     "--secret", "s" * 20, "--push-timeout", timeout])
        assert result.exit_code == 0, result.output
    server = RadiusServer(core.services(app), cache_ttl=30.0)
    # on a thread of its own: Playwright's browser tests leave an event loop running in this one
    loader = threading.Thread(target=lambda: asyncio.run(server.reload_clients()))
    loader.start()
    loader.join(timeout=30)
    assert not loader.is_alive()
    assert server.cache.ttl >= 120
