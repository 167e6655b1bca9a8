"""Push fatigue at the VPN door (issue 13, point 4): pushes that end without an approval are
counted, and after a few in a row no more are sent for a while (an Access-Reject at once that
says to wait); an approval resets the count; denials count toward the lockout; challenge mode
sends a Verified Push whose number is in the Access-Challenge's Reply-Message."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest
from pyrad import packet as rp
from pyrad.client import Timeout
from sqlalchemy import func, select

from app.core import radius_auth, users
from app.core.radius_auth import AccessRequest, Outcome
from app.extensions import core
from app.models import PushRequest
from tests.conftest import PASSWORD, committed, make_user
from tests.helpers.radius import client as client_config
from tests.helpers.radius import decide
from tests.peers.live_radius import reply_message
from tests.peers.push_device import PushDevice, enrol
from tests.radius.conftest import SECRETS, SOURCE

LIMIT = 3
WINDOW = 600


@pytest.fixture
def settings_overrides():
    return {"radius_push_fatigue_limit": LIMIT, "radius_push_fatigue_window_seconds": WINDOW,
            "lockout_threshold": 5}


@pytest.fixture
def services(app, clock):
    return dataclasses.replace(core.services(app), clock=clock)


def phone_for(app, web, clock=time.time) -> PushDevice:
    phone = PushDevice.with_client(web, clock=clock)
    assert phone.activate(enrol(app)).status == 201
    return phone


def request_for(typed: str, mode: str = "append", state: bytes | None = None) -> AccessRequest:
    return AccessRequest(client=client_config(mode), source="127.0.0.1", username="alice",
                         password=typed, state=state, nas_ip="10.1.2.3",
                         calling_station="203.0.113.9")


def push_count(app) -> int:
    with committed(app) as c:
        return c.db.scalar(select(func.count()).select_from(PushRequest)) or 0


def login(app, services, phone, typed: str, answer: str) -> radius_auth.Decision:
    """One VPN login whose push (if one is sent) the phone answers: deny, approve or ignore."""
    decision = decide(app, typed)
    if decision.outcome is not Outcome.PENDING:
        return decision
    if answer == "deny":
        assert phone.deny(decision.push_id).status == 200
    elif answer == "approve":
        assert phone.approve(decision.push_id).status == 200
    return radius_auth.finish_push(services, request_for(typed), decision.push_id)


def test_after_three_denied_pushes_the_fourth_login_is_refused_at_once_without_a_push(
        app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    answers = [login(app, services, phone, PASSWORD, "deny") for _ in range(12)]
    assert [a.message for a in answers[:LIMIT]] == ["The push was denied."] * LIMIT
    assert push_count(app) == LIMIT
    for refused in answers[LIMIT:]:
        assert refused.outcome is Outcome.REJECT
        assert re.search(r"[Ww]ait \d+ minutes?", refused.message), refused.message
    # asking for a push explicitly does not get round it; a passcode still works
    assert login(app, services, phone, f"{PASSWORD},push", "deny").message == answers[-1].message
    assert push_count(app) == LIMIT


def test_unanswered_pushes_count_too_and_the_wait_ends(app, client, services, clock):
    make_user(app)
    phone = phone_for(app, client, clock)
    for _ in range(LIMIT):
        assert "expired" in login(app, services, phone, PASSWORD, "ignore").message
    assert "Wait" in login(app, services, phone, PASSWORD, "ignore").message
    clock.advance(WINDOW)
    assert login(app, services, phone, PASSWORD, "approve").outcome is Outcome.ACCEPT


def test_an_approval_resets_the_count(app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    for _round in range(3):
        for _ in range(LIMIT - 1):
            assert login(app, services, phone, PASSWORD, "deny").message == \
                "The push was denied."
        assert login(app, services, phone, PASSWORD, "approve").outcome is Outcome.ACCEPT
    assert push_count(app) == 3 * LIMIT


def test_consecutive_denials_lock_the_user_at_the_threshold(app, client, services, clock):
    make_user(app)
    phone = phone_for(app, client, clock)
    for n in range(5):
        if n and n % LIMIT == 0:
            clock.advance(WINDOW)  # past the push limit's wait: the lockout is what stops it
        answer = login(app, services, phone, PASSWORD, "deny")
        assert answer.outcome is Outcome.REJECT
    with committed(app) as c:
        assert users.get(c, "alice").locked_at is not None
    assert login(app, services, phone, PASSWORD, "approve").outcome is Outcome.REJECT
    assert push_count(app) == 5


def test_challenge_mode_sends_a_verified_push_with_the_number_in_the_reply_message(
        app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    cfg = client_config("challenge")
    first = decide(app, PASSWORD, cfg=cfg)
    assert first.outcome is Outcome.CHALLENGE and "1 to push to" in first.message
    second = decide(app, "1", cfg=cfg, state=first.state)
    # no wait yet: a second Access-Challenge shows the number to type in the app
    assert second.outcome is Outcome.CHALLENGE and second.state not in (None, first.state)
    number = re.search(r"\b(\d{3})\b", second.message).group(1)
    [listed] = phone.pending()
    assert listed["verified"] is True
    assert phone.approve(listed["id"], number).status == 200
    # the NAS's next Access-Request with the new State completes the login
    third = decide(app, "", cfg=cfg, state=second.state)
    assert third.outcome is Outcome.PENDING and third.push_id == listed["id"]
    final = radius_auth.finish_push(services, request_for("", "challenge", second.state),
                                    third.push_id)
    assert final.outcome is Outcome.ACCEPT
    # the State is single use
    assert decide(app, "", cfg=cfg, state=second.state).message == radius_auth.CHALLENGE_GONE


def test_a_wrong_number_in_challenge_mode_is_rejected(app, client, services):
    make_user(app)
    phone = phone_for(app, client)
    cfg = client_config("challenge")
    first = decide(app, PASSWORD, cfg=cfg)
    second = decide(app, "1", cfg=cfg, state=first.state)
    number = re.search(r"\b(\d{3})\b", second.message).group(1)
    [listed] = phone.pending()
    assert phone.approve(listed["id"], f"{(int(number) + 1) % 1000:03d}").status == 200
    third = decide(app, "", cfg=cfg, state=second.state)
    final = radius_auth.finish_push(services, request_for("", "challenge", second.state),
                                    third.push_id)
    assert final.outcome is Outcome.REJECT and "did not match" in final.message


# --- the live server ------------------------------------------------------------------------

def test_the_server_answers_a_fourth_bare_password_at_once_without_a_push(app, client, radius):
    make_user(app)
    phone = phone_for(app, client)

    def deny_all() -> None:
        deadline = time.monotonic() + 20
        denied = 0
        while denied < LIMIT and time.monotonic() < deadline:
            for request in phone.pending():
                assert phone.deny(request["id"]).status == 200
                denied += 1
            time.sleep(0.05)

    denier = threading.Thread(target=deny_all)
    denier.start()
    for _ in range(LIMIT):
        reply = radius.ask("alice", PASSWORD, secret=SECRETS["local"], source=SOURCE["local"],
                           timeout=10)
        assert reply is not None and reply_message(reply) == "The push was denied."
    denier.join(timeout=20)
    started = time.monotonic()
    try:
        refused = radius.ask("alice", PASSWORD, secret=SECRETS["local"], timeout=5)
    except Timeout:  # pragma: no cover - ask returns None on a timeout
        refused = None
    assert refused is not None and refused.code == rp.AccessReject
    assert time.monotonic() - started < 1.5
    assert "Wait" in reply_message(refused)
    assert push_count(app) == LIMIT


def test_a_vpn_in_challenge_mode_shows_the_number_and_the_next_request_completes_it(
        app, client, radius):
    make_user(app)
    phone = phone_for(app, client)
    src, key = SOURCE["challenge"], SECRETS["challenge"]
    first = radius.ask("alice", PASSWORD, secret=key, source=src)
    assert first.code == rp.AccessChallenge and "1 to push to" in reply_message(first)
    second = radius.ask("alice", "1", secret=key, source=src, state=first["State"][0])
    assert second.code == rp.AccessChallenge
    number = re.search(r"enter (\d{3}) ", reply_message(second)).group(1)
    [listed] = phone.pending()
    assert listed["verified"] is True
    assert phone.approve(listed["id"], number).status == 200
    done = radius.ask("alice", "", secret=key, source=src, state=second["State"][0])
    assert done is not None and done.code == rp.AccessAccept
    assert reply_message(done).startswith("Success. Logged in with a push to ")
