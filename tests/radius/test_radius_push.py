"""Push at the VPN door: the decision in core, and a real RADIUS client waiting on the live
server while a phone (tests/peers/push_device.py) answers through the web app's device API."""

from __future__ import annotations

import dataclasses
import threading
import time

import pytest
from pyrad import packet as rp
from pyrad.client import Timeout
from sqlalchemy import func, select

from app.core import radius_auth
from app.core.radius_auth import AccessRequest, Outcome
from app.extensions import core
from app.models import PushRequest
from tests.conftest import PASSWORD, add_totp_device, audit_rows, committed, make_user
from tests.helpers.radius import client as client_config
from tests.helpers.radius import decide
from tests.peers.live_radius import reply_message
from tests.peers.push_device import PushDevice, enrol
from tests.radius.conftest import SECRETS, SOURCE


def phone_for(app, web) -> PushDevice:
    phone = PushDevice.with_client(web)
    assert phone.activate(enrol(app)).status == 201
    return phone


@pytest.fixture
def services(app, clock):
    return dataclasses.replace(core.services(app), clock=clock)


def request_for(typed: str, mode: str = "append", **fields) -> AccessRequest:
    return AccessRequest(client=client_config(mode, **fields), source="127.0.0.1", username="alice",
                         password=typed, nas_ip="10.1.2.3", calling_station="203.0.113.9")


def pushes(app) -> list[PushRequest]:
    with committed(app) as c:
        return list(c.db.scalars(select(PushRequest).order_by(PushRequest.id)))


# --- core -----------------------------------------------------------------------------------

def test_no_push_device_gets_a_hint(app):
    make_user(app)
    add_totp_device(app)
    for word in ("push", "push2", "PUSH"):
        decision = decide(app, f"{PASSWORD},{word}")
        assert decision.outcome is Outcome.REJECT
        # append mode: the same text as a wrong password (issue 13, point 5)
        assert decision.message == radius_auth.APPEND_FAILED % {"d": ","}
    second = decide(app, "push", cfg=client_config("second-factor"))
    assert second.message == radius_auth.PUSH_UNAVAILABLE_ALONE
    assert all(r.detail.startswith("no push device") for r in
               audit_rows(app, radius_auth.ACTION))


def test_password_push_is_approved_once(app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    decision = decide(app, f"{PASSWORD},push")
    assert decision.outcome is Outcome.PENDING and decision.push_id
    assert decision.push_timeout == 60
    [sent] = pushes(app)
    # no screen on a VPN client for a Verified Push number: a plain approve
    assert (sent.door, sent.number, sent.service) == ("radius", "", "VPN (vpn)")
    listed = phone.pending()
    assert [r["id"] for r in listed] == [decision.push_id]
    assert listed[0]["verified"] is False
    assert radius_auth.push_answers(services, decision.push_row) == {}  # still pending
    assert phone.approve(decision.push_id).status == 200
    final = radius_auth.finish_push(services, request_for(f"{PASSWORD},push"), decision.push_id)
    assert final.outcome is Outcome.ACCEPT
    assert final.message.startswith("Success. Logged in with a push to ")
    again = radius_auth.finish_push(services, request_for(f"{PASSWORD},push"), decision.push_id)
    assert again.outcome is Outcome.REJECT
    assert [r.result for r in audit_rows(app, radius_auth.ACTION)] == ["accept", "reject"]


def test_the_waiters_lookup_returns_only_pushes_that_moved(app, client, services):
    """The door's poller asks for the pushes answered since the oldest one it waits for; the
    pending ones are skipped in the database, so its cost does not grow with the waits."""
    make_user(app)
    phone = phone_for(app, client)
    first, second, third = (decide(app, f"{PASSWORD},push") for _ in range(3))
    assert first.push_row < second.push_row < third.push_row
    assert radius_auth.push_answers(services, first.push_row) == {}
    assert phone.approve(first.push_id).status == 200
    assert phone.deny(third.push_id).status == 200
    assert radius_auth.push_answers(services, first.push_row) == {
        first.push_id: "approved", third.push_id: "denied"}
    assert radius_auth.push_answers(services, second.push_row) == {third.push_id: "denied"}
    assert radius_auth.finish_push(services, request_for("x"), first.push_id).outcome \
        is Outcome.ACCEPT
    assert radius_auth.push_answers(services, first.push_row)[first.push_id] == "used"


def test_plain_password_pushes_to_the_default_device(app, client):
    make_user(app)
    phone_for(app, client)
    assert decide(app, PASSWORD).outcome is Outcome.PENDING
    assert decide(app, "push", cfg=client_config("second-factor")).outcome is Outcome.PENDING
    assert decide(app, f"{PASSWORD},push2").outcome is Outcome.REJECT  # only one push device


def test_denied_and_unanswered_pushes_are_rejected(app, client, services, clock):
    make_user(app)
    phone = phone_for(app, client)
    denied = decide(app, f"{PASSWORD},push")
    assert phone.deny(denied.push_id).status == 200
    answer = radius_auth.finish_push(services, request_for("x"), denied.push_id)
    assert (answer.outcome, answer.message) == (Outcome.REJECT, "The push was denied.")
    # the door's wait ran out before the phone answered: the push is expired for good
    silent = decide(app, f"{PASSWORD},push")
    late = radius_auth.finish_push(services, request_for("x"), silent.push_id)
    assert late.outcome is Outcome.REJECT and "expired" in late.message
    assert phone.approve(silent.push_id).status == 409
    assert [p.status for p in pushes(app)] == ["denied", "expired"]


def test_fraud_blocks_further_vpn_pushes(app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    first = decide(app, f"{PASSWORD},push")
    assert phone.answer(first.push_id, "fraud").status == 200
    final = radius_auth.finish_push(services, request_for("x"), first.push_id)
    assert final.outcome is Outcome.REJECT
    blocked = decide(app, f"{PASSWORD},push")
    assert blocked.outcome is Outcome.REJECT and "paused" in blocked.message


def test_challenge_mode_offers_and_sends_a_push(app, client, services):
    """Challenge mode sends a Verified Push: the whole round trip is in
    tests/radius/test_radius_push_fatigue.py (issue 13, point 4)."""
    make_user(app)
    phone = phone_for(app, client)
    cfg = client_config("challenge")
    challenge = decide(app, PASSWORD, cfg=cfg)
    assert challenge.outcome is Outcome.CHALLENGE
    assert "1 to push to" in challenge.message
    answered = decide(app, "1", cfg=cfg, state=challenge.state)
    assert answered.outcome is Outcome.CHALLENGE  # its Reply-Message shows the number
    [sent] = pushes(app)
    assert sent.number and f"enter {sent.number} " in answered.message
    assert phone.approve(sent.public_id, sent.number).status == 200
    final = decide(app, "", cfg=cfg, state=answered.state)
    assert final.outcome is Outcome.PENDING and final.push_id == sent.public_id
    done = radius_auth.finish_push(services, request_for("", "challenge"), final.push_id)
    assert done.outcome is Outcome.ACCEPT


# --- the live server ------------------------------------------------------------------------

def ask_in_background(radius, password: str, *, source: str, secret: str,
                      timeout: float, retries: int = 1) -> tuple[threading.Thread, list]:
    """pyrad's client in a thread: it sends, waits `timeout`, and retransmits the same packet
    (same Identifier and Authenticator) up to `retries` times in all, as a NAS does."""
    box: list = []

    def run() -> None:
        nas = radius.client(secret, source, timeout)
        nas.retries = retries
        pkt = nas.CreateAuthPacket(User_Name="alice", NAS_IP_Address="127.0.0.1",
                                   Calling_Station_Id="203.0.113.7")
        pkt["User-Password"] = pkt.PwCrypt(password)
        try:
            box.append(nas.SendPacket(pkt))
        except Timeout:
            box.append(None)
        finally:
            nas._CloseSocket()

    thread = threading.Thread(target=run)
    thread.start()
    return thread, box


def test_vpn_login_waits_for_the_phone(app, client, radius):
    make_user(app)
    phone = phone_for(app, client)
    # pyrad's client retransmits the same packet after `timeout` (retries=1): the server must
    # ignore the copy while it waits, so one login sends one push
    thread, box = ask_in_background(radius, f"{PASSWORD},push", source=SOURCE["local"],
                                    secret=SECRETS["local"], timeout=1.0, retries=8)
    request = phone.wait_for_request(timeout=5)
    time.sleep(2.5)  # let retransmissions arrive while the push is pending
    assert phone.approve(request["id"]).status == 200
    thread.join(timeout=10)
    [reply] = box
    assert reply is not None and reply.code == rp.AccessAccept
    assert reply_message(reply).startswith("Success. Logged in with a push to ")
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(PushRequest)) == 1
    assert [r.result for r in audit_rows(app, radius_auth.ACTION)] == ["accept"]


def test_second_factor_mode_push_denied(app, client, radius):
    make_user(app)
    phone = phone_for(app, client)
    thread, box = ask_in_background(radius, "push", source=SOURCE["second"],
                                    secret=SECRETS["second"], timeout=8)
    request = phone.wait_for_request(timeout=5)
    assert phone.deny(request["id"]).status == 200
    thread.join(timeout=10)
    [reply] = box
    assert reply is not None and reply.code == rp.AccessReject
    assert reply_message(reply) == "The push was denied."


def test_a_passcode_login_is_answered_while_a_push_waits(app, client, radius):
    make_user(app)
    phone = phone_for(app, client)
    thread, box = ask_in_background(radius, "push", source=SOURCE["second"],
                                    secret=SECRETS["second"], timeout=8)
    phone.wait_for_request(timeout=5)
    started = time.monotonic()
    passcode = radius.ask("alice", phone.passcode(), secret=SECRETS["second"],
                          source=SOURCE["second"])
    assert passcode is not None and passcode.code == rp.AccessAccept
    assert time.monotonic() - started < 2
    assert thread.is_alive()  # still waiting: no thread of the server is held by it
    request = phone.wait_for_request(timeout=5)
    assert phone.approve(request["id"]).status == 200
    thread.join(timeout=10)
    assert box[0] is not None and box[0].code == rp.AccessAccept


def test_metrics_endpoint_counts_push_waits(app, client, runner, tmp_path, database_url):
    """`um2fa radius --metrics-port` serves the door's counters, the push waits among them."""
    import urllib.request

    from tests.peers.live import free_port
    from tests.peers.live_radius import LiveRadius, make_env

    assert runner.invoke(args=["radius-clients", "add", "second", "--address", "127.0.0.3",
                               "--secret", SECRETS["second"], "--mode",
                               "second-factor"]).exit_code == 0
    make_user(app)
    phone = phone_for(app, client)
    port = free_port()
    radius = LiveRadius(instance_dir=tmp_path / "instance",
                        env=make_env(tmp_path / "instance", database_url)).start(
        "--metrics-port", str(port))
    try:
        thread, box = ask_in_background(radius, "push", source=SOURCE["second"],
                                        secret=SECRETS["second"], timeout=8)
        request = phone.wait_for_request(timeout=5)
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as got:
            text = got.read().decode()
        assert "um2fa_radius_push_waits 1.0" in text
        assert phone.approve(request["id"]).status == 200
        thread.join(timeout=10)
        assert box[0] is not None and box[0].code == rp.AccessAccept
    finally:
        radius.stop()


def test_the_same_push_login_from_three_source_ports_sends_one_push(app, client, radius):
    """Security issue point 15: the same Access-Request (bytes identical) from three source
    ports of one client is one login: one push, one decision, the same answer to each port."""
    from tests.peers.live_radius import RawSocket, decode_reply, request_packet

    make_user(app)
    phone = phone_for(app, client)
    pkt = request_packet("alice", f"{PASSWORD},push", SECRETS["local"])
    raw = pkt.RequestPacket()
    socks = [RawSocket(radius.port) for _ in range(3)]
    for sock in socks:
        sock.send(raw)
    request = phone.wait_for_request(timeout=5)
    time.sleep(1.5)  # let every copy reach the server while the push is pending
    assert phone.approve(request["id"]).status == 200
    first = socks[0].receive_all(3.0)
    assert len(first) == 1 and decode_reply(pkt, first[0]).code == rp.AccessAccept
    for sock in socks[1:]:
        sock.send(raw)  # the NAS retransmits from the other ports: the same answer
        assert first[0] in sock.receive_all(1.5)
    for sock in socks:
        sock.close()
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(PushRequest)) == 1
    assert [r.result for r in audit_rows(app, radius_auth.ACTION)] == ["accept"]
