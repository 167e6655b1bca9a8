"""The RADIUS door end to end: `um2fa radius` in a subprocess, real clients (pyrad, radclient,
radtest) over UDP on 127.0.0.1, the test database shared with the web app."""

from __future__ import annotations

import time

import pytest
from pyrad import packet as rp

from app.core import radius_auth
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.peers.live_radius import (
    RawSocket,
    decode_reply,
    radclient,
    radtest,
    reply_message,
    request_packet,
)
from tests.radius.conftest import SECRETS, SOURCE, UNKNOWN_SOURCE

LOCAL = SECRETS["local"]
# append mode: one text for a wrong password and a wrong or missing factor (issue 13, point 5)
APPEND_FAILED = radius_auth.APPEND_FAILED % {"d": ","}


def decisions(app) -> list:
    return audit_rows(app, radius_auth.ACTION)


def test_pyrad_accept_with_password_and_passcode(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    reply = radius.ask("alice", f"{PASSWORD},{totp_code(secret, time.time())}", secret=LOCAL)
    assert reply is not None and reply.code == rp.AccessAccept
    assert reply_message(reply) == "Success. Logged in with Phone."
    assert reply["Class"][0].startswith(b"um2fa:")
    assert 80 in reply  # Message-Authenticator, verified by the client (enforce_ma)
    [row] = decisions(app)
    assert (row.door, row.result, row.username, row.device) == ("radius", "accept", "alice",
                                                               "Phone")
    assert row.client_addr == "127.0.0.1"
    assert "radius client local" in row.detail and "NAS-IP-Address 127.0.0.1" in row.detail
    assert "Calling-Station-Id 203.0.113.7" in row.detail
    assert [r.result for r in audit_rows(app, "factor") if r.door == "radius"] == ["ok"]


def test_radtest_accepts_then_rejects_the_replayed_passcode(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    typed = f"{PASSWORD},{totp_code(secret, time.time())}"
    first = radtest(radius.port, LOCAL, "alice", typed)
    assert first.code == "Access-Accept", first.output
    assert first.returncode == 0
    again = radtest(radius.port, LOCAL, "alice", typed)
    assert again.code == "Access-Reject", again.output
    assert again.reply_message == APPEND_FAILED
    assert [r.result for r in decisions(app)] == ["accept", "reject"]
    assert "totp replay" in decisions(app)[1].detail


def test_radclient_wrong_password_wrong_passcode_unknown_user(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    good = totp_code(secret, time.time())
    wrong = f"{(int(good) + 1) % 1_000_000:06d}"
    # append mode: the three read the same (the audit record says which)
    cases = [("alice", f"not-the-password,{good}", APPEND_FAILED),
             ("alice", f"{PASSWORD},{wrong}", APPEND_FAILED),
             ("nobody", f"{PASSWORD},{good}", APPEND_FAILED)]
    for username, typed, message in cases:
        result = radclient(radius.port, LOCAL, [f'User-Name = "{username}"',
                                                f'User-Password = "{typed}"',
                                                "Message-Authenticator = 0x00"])
        assert result.code == "Access-Reject", result.output
        assert message == result.reply_message
    assert [r.result for r in decisions(app)] == ["reject"] * 3
    assert [r.detail.split(";")[0] for r in decisions(app)] == ["password", "totp wrong",
                                                                 "password"]
    # the good code was never spent: it still works
    assert radius.ask("alice", f"{PASSWORD},{good}", secret=LOCAL).code == rp.AccessAccept


def test_the_vpn_refuses_a_recovery_passcode_in_every_mode(app, client, radius):
    """A recovery passcode only adds a new device in the 2FA portal: the VPN refuses it in
    append, challenge and second-factor-only mode, without spending it or counting it toward
    the lockout; it still opens "Add a new device" afterwards."""
    make_user(app)
    add_totp_device(app, name="Victim's phone")
    code = issue_recovery(app)
    refused = [radius.ask("alice", f"{PASSWORD},{code}", secret=LOCAL),
               radius.ask("alice", f"{PASSWORD},123456789", secret=LOCAL),
               radius.ask("alice", code, secret=SECRETS["second"], source=SOURCE["second"])]
    src, key = SOURCE["challenge"], SECRETS["challenge"]
    challenge = radius.ask("alice", PASSWORD, secret=key, source=src)
    assert challenge.code == rp.AccessChallenge
    refused.append(radius.ask("alice", code, secret=key, source=src,
                              state=challenge["State"][0]))
    for index, reply in enumerate(refused):
        assert reply.code == rp.AccessReject
        # append mode keeps its one failure text; the other modes say why
        assert reply_message(reply) == (APPEND_FAILED if index < 2
                                        else radius_auth.RECOVERY_REFUSED)
    assert "only adds a new device in the 2FA portal" in radius_auth.RECOVERY_REFUSED
    assert [r.result for r in audit_rows(app, "factor") if r.door == "radius"] == []
    with committed(app) as c:
        from app.core import users

        assert users.get(c, "alice").failed_factor_count == 0
    # not spent: it still opens "Add a new device" in the portal
    from tests.helpers.portal import step_up

    sign_in(client)
    assert step_up(client, code).headers["Location"] == "/devices/add/type"


@pytest.fixture
def settings_overrides():
    return {"lockout_threshold": 3}


def test_lockout_is_shared_with_the_web_door(app, client, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    assert sign_in(client).status_code == 302
    for _ in range(2):  # two failures on the web prompt
        response = post(client, "/prompt", {"next": "done", "passcode": "000000",
                                            "device": ""}, token_from="/prompt?next=done")
        assert response.status_code == 401
    reply = radius.ask("alice", f"{PASSWORD},000000", secret=LOCAL)  # the third, by VPN
    assert reply.code == rp.AccessReject
    with committed(app) as c:
        from app.core import users

        user = users.get(c, "alice")
        assert user.failed_factor_count == 3 and user.locked_at is not None
    # locked: even the right password and passcode are refused, by both doors
    locked = radius.ask("alice", f"{PASSWORD},{totp_code(secret, time.time())}", secret=LOCAL)
    assert locked.code == rp.AccessReject
    assert reply_message(locked) == APPEND_FAILED
    assert [r.result for r in audit_rows(app, "lockout")] == ["locked"]
    assert [r.door for r in audit_rows(app, "factor")] == ["portal", "portal", "radius"]


def test_the_vpn_reply_message_warns_two_attempts_before_the_lock(app, radius):
    """In challenge mode (the password is known right by then). Append mode keeps one failure
    text for everything, which must not tell a guesser the password part was right."""
    make_user(app)
    add_totp_device(app)
    src, key = SOURCE["challenge"], SECRETS["challenge"]
    messages = []
    for code in ("000000", "000001"):  # threshold 3 here
        state = radius.ask("alice", PASSWORD, secret=key, source=src)["State"][0]
        answer = radius.ask("alice", code, secret=key, source=src, state=state)
        assert answer.code == rp.AccessReject
        messages.append(reply_message(answer))
    assert messages[0] == ("Incorrect passcode. Please try again. 2 attempts left "
                           "before your account is temporarily locked.")
    assert "1 attempt left" in messages[1]
    append = radius.ask("alice", f"{PASSWORD},000002", secret=LOCAL)
    assert "attempt" not in reply_message(append)


def test_challenge_mode_round_trip(app, radius):
    make_user(app)
    make_user(app, "bob")
    _device, secret = add_totp_device(app, name="Token 42")
    src, key = SOURCE["challenge"], SECRETS["challenge"]
    challenge = radius.ask("alice", PASSWORD, secret=key, source=src)
    assert challenge.code == rp.AccessChallenge
    assert "Token 42" in reply_message(challenge)
    state = challenge["State"][0]
    assert len(state) == 16
    # bound to the user: bob cannot answer alice's challenge (and this uses it up)
    other = radius.ask("alice", PASSWORD, secret=key, source=src)["State"][0]
    assert radius.ask("bob", totp_code(secret, time.time()), secret=key, source=src,
                      state=other).code == rp.AccessReject
    # bound to the client: another NAS cannot answer it
    third = radius.ask("alice", PASSWORD, secret=key, source=src)["State"][0]
    assert radius.ask("alice", totp_code(secret, time.time()), secret=LOCAL,
                      state=third).code == rp.AccessReject

    accept = radius.ask("alice", totp_code(secret, time.time()), secret=key, source=src,
                        state=state)
    assert accept.code == rp.AccessAccept
    # single use
    again = radius.ask("alice", totp_code(secret, time.time(), 1), secret=key, source=src,
                       state=state)
    assert again.code == rp.AccessReject
    assert reply_message(again) == radius_auth.CHALLENGE_GONE
    assert [r.result for r in decisions(app)] == [
        "challenge", "challenge", "reject", "challenge", "reject", "accept", "reject"]


def test_second_factor_only_mode(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    src, key = SOURCE["second"], SECRETS["second"]
    accept = radius.ask("alice", totp_code(secret, time.time()), secret=key, source=src)
    assert accept.code == rp.AccessAccept
    push = radius.ask("alice", "push", secret=key, source=src)
    assert push.code == rp.AccessReject
    assert reply_message(push) == radius_auth.PUSH_UNAVAILABLE_ALONE
    password = radius.ask("alice", PASSWORD, secret=key, source=src)
    assert password.code == rp.AccessReject


def test_push_and_plain_password_are_rejected_with_the_append_mode_hint(app, radius):
    """Without a push device, ",push" and a bare password read like a wrong password: the hint
    says to append a passcode, and does not tell that the password was right."""
    make_user(app)
    add_totp_device(app)
    push = radius.ask("alice", f"{PASSWORD},push", secret=LOCAL)
    assert push.code == rp.AccessReject
    assert reply_message(push) == APPEND_FAILED
    plain = radius.ask("alice", PASSWORD, secret=LOCAL)
    assert plain.code == rp.AccessReject
    assert reply_message(plain) == APPEND_FAILED
    assert "password,123456" in APPEND_FAILED


def test_no_message_authenticator_gets_no_answer(app, radius):
    make_user(app)
    result = radclient(radius.port, LOCAL, ['User-Name = "alice"',
                                            f'User-Password = "{PASSWORD},123456"'])
    assert result.code is None and result.returncode != 0
    assert "No reply" in result.output
    sock = RawSocket(radius.port)
    sock.send(request_packet("alice", f"{PASSWORD},123456", LOCAL, ma=False).RequestPacket())
    assert sock.receive(1.5) is None
    sock.close()
    assert decisions(app) == []
    assert "no Message-Authenticator" in radius.log()


def test_a_client_allowed_to_omit_it_is_answered_and_warned_about(app, radius):
    make_user(app)
    assert "legacy may send Access-Requests without Message-Authenticator" in radius.log()
    sock = RawSocket(radius.port, SOURCE["legacy"])
    pkt = request_packet("alice", f"{PASSWORD},123456", SECRETS["legacy"], ma=False)
    sock.send(pkt.RequestPacket())
    reply = sock.receive(5)
    assert reply is not None
    decoded = decode_reply(pkt, reply)  # the reply carries a Message-Authenticator anyway
    assert decoded.code == rp.AccessReject and 80 in decoded
    sock.close()


def test_wrong_message_authenticator_gets_no_answer(app, radius):
    make_user(app)
    pkt = request_packet("alice", f"{PASSWORD},123456", LOCAL)
    raw = bytearray(pkt.RequestPacket())
    at = raw.index(bytes([80, 18])) + 2
    raw[at] ^= 0x01
    sock = RawSocket(radius.port)
    sock.send(bytes(raw))
    assert sock.receive(1.5) is None
    sock.close()
    # radclient with the wrong secret: its Message-Authenticator does not verify either
    result = radclient(radius.port, "not-the-secret-0123456", [
        'User-Name = "alice"', f'User-Password = "{PASSWORD},123456"',
        "Message-Authenticator = 0x00"])
    assert result.code is None and "No reply" in result.output
    assert decisions(app) == []
    assert "wrong Message-Authenticator" in radius.log()


def test_unknown_client_gets_no_answer(app, radius):
    make_user(app)
    for secret in (LOCAL, SECRETS["lan"]):
        assert radius.ask("alice", f"{PASSWORD},123456", secret=secret,
                          source=UNKNOWN_SOURCE, timeout=1) is None
    assert decisions(app) == []
    assert f"unknown client {UNKNOWN_SOURCE}" in radius.log()


def test_the_most_specific_network_wins(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    lan, src = SECRETS["lan"], SOURCE["lan"]
    # 127.0.0.5 is only in lan's 127.0.0.0/24 (delimiter "+")
    reply = radius.ask("alice", f"{PASSWORD}+{totp_code(secret, time.time())}", secret=lan,
                       source=src)
    assert reply.code == rp.AccessAccept
    assert radius.ask("alice", f"{PASSWORD},123456", secret=LOCAL, source=src,
                      timeout=1) is None
    # 127.0.0.1 is in lan's /24 too, but local's /32 is more specific
    assert radius.ask("alice", f"{PASSWORD},123456", secret=lan, timeout=1) is None
    assert radius.ask("alice", f"{PASSWORD},123456", secret=LOCAL).code == rp.AccessReject


def test_a_retransmission_is_answered_once_from_the_cache(app, radius):
    make_user(app)
    _device, secret = add_totp_device(app)
    pkt = request_packet("alice", f"{PASSWORD},{totp_code(secret, time.time())}", LOCAL)
    raw = pkt.RequestPacket()
    sock = RawSocket(radius.port)
    sock.send(raw)
    sock.send(raw)  # arrives while the first copy is being decided: no answer of its own
    replies = sock.receive_all(3.0)
    assert len(replies) == 1
    assert decode_reply(pkt, replies[0]).code == rp.AccessAccept
    sock.send(raw)  # after the answer: the same answer, from the cache
    again = sock.receive_all(1.5)
    assert again == replies
    sock.close()
    assert [r.result for r in decisions(app)] == ["accept"]
    assert len(audit_rows(app, "factor")) == 1


def test_status_server_is_answered(radius):
    result = radclient(radius.port, LOCAL, ["Message-Authenticator = 0x00"], command="status")
    assert result.code == "Access-Accept", result.output
    assert "UM 2FA RADIUS is up" in result.reply_message


def test_the_same_request_from_three_source_ports_is_decided_once(app, radius):
    """Security issue point 15: a copy of one Access-Request (same Identifier and Request
    Authenticator) sent from other source ports of the same client is the same request: one
    decision, one audit record, the same answer to every copy."""
    make_user(app)
    _device, secret = add_totp_device(app)
    pkt = request_packet("alice", f"{PASSWORD},{totp_code(secret, time.time())}", LOCAL)
    raw = pkt.RequestPacket()
    socks = [RawSocket(radius.port) for _ in range(3)]
    assert len({s.sock.getsockname()[1] for s in socks}) == 3
    for sock in socks:
        sock.send(raw)
    first = socks[0].receive_all(3.0)
    assert len(first) == 1 and decode_reply(pkt, first[0]).code == rp.AccessAccept
    for sock in socks[1:]:  # once decided, each copy gets the same answer from the cache
        sock.send(raw)
        assert first[0] in sock.receive_all(1.5)
    for sock in socks:
        sock.close()
    assert [r.result for r in decisions(app)] == ["accept"]
    assert len(audit_rows(app, "factor")) == 1


def test_an_unknown_username_is_not_recorded_as_typed(app, radius):
    """Security issue point 16: a password typed into the User-Name reaches neither the audit
    table nor the server's log; a keyed hash stands in for it. A known user keeps theirs."""
    make_user(app)
    typed = "MySecretPassw0rd!"
    for _ in range(2):
        reply = radius.ask(typed, f"{PASSWORD},123456", secret=LOCAL)
        assert reply is not None and reply.code == rp.AccessReject
    assert radius.ask("alice", f"{PASSWORD},123456", secret=LOCAL).code == rp.AccessReject
    rows = audit_rows(app)
    assert not [r for r in rows if typed.lower() in f"{r.username} {r.detail}".lower()]
    assert typed.lower() not in radius.log().lower()
    first, second, known = [r.username for r in decisions(app)]
    assert first == second and first.startswith("unknown:") and len(first) == 16
    assert known == "alice"
