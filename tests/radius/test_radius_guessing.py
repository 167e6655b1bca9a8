"""Password guessing at the VPN door (issue 13, point 5): failed passwords are counted per
typed username and per NAS + Calling-Station-Id, in a store every node shares (the database,
or Redis when configured); past the limit a key waits, progressively longer, and its requests
are rejected at once without checking the password. In append mode a wrong password and a
wrong or missing factor read the same."""

from __future__ import annotations

import dataclasses
import re
import threading
import time

import pytest
import redis
from pyrad import packet as rp

from app.bootstrap import build_services
from app.core import radius_auth
from app.core.attempts import DatabaseAttempts, RedisAttempts
from app.core.radius_auth import Outcome
from app.extensions import core
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    make_user,
    totp_code,
)
from tests.helpers.radius import client, decide
from tests.peers.live_radius import reply_message
from tests.peers.redis_server import RedisServer
from tests.radius.conftest import SECRETS, SOURCE

USER_LIMIT = 3
SOURCE_LIMIT = 6


@pytest.fixture
def settings_overrides():
    return {"radius_guess_user_limit": USER_LIMIT, "radius_guess_source_limit": SOURCE_LIMIT,
            "radius_guess_window_seconds": 900, "radius_guess_backoff_seconds": 2,
            "radius_guess_max_delay_seconds": 1}


def waited(decision) -> int:
    """The wait a refusal's Reply-Message asks for, in seconds."""
    match = re.search(r"[Ww]ait (\d+) (second|minute)", decision.message)
    assert match, decision.message
    return int(match.group(1)) * (60 if match.group(2) == "minute" else 1)


def password_checks(app, username: str | None = None) -> int:
    return len([r for r in audit_rows(app, "sign_in")
                if username is None or r.username == username])


def test_41_wrong_passwords_for_one_user_are_not_all_checked(app):
    make_user(app)
    add_totp_device(app)
    answers = [decide(app, f"guess-{n}", calling_station=f"198.51.100.{n}") for n in range(41)]
    assert all(d.outcome is Outcome.REJECT for d in answers)
    # the first ones are checked (and fail as ever), the later ones are refused unchecked
    assert [d.message for d in answers[:USER_LIMIT]] == [radius_auth.APPEND_FAILED % {
        "d": ","}] * USER_LIMIT
    assert all(waited(d) >= 1 for d in answers[USER_LIMIT:])
    assert password_checks(app) == USER_LIMIT
    # even the right password is not checked while the user waits
    right = decide(app, PASSWORD, calling_station="198.51.100.200")
    assert right.outcome is Outcome.REJECT and waited(right) >= 1
    assert password_checks(app) == USER_LIMIT
    last = audit_rows(app, radius_auth.ACTION)[-1]
    assert "too many failed passwords (user)" in last.detail and last.username == "alice"


def test_each_failure_past_the_limit_doubles_the_wait(app, clock):
    make_user(app)
    for n in range(USER_LIMIT):
        decide(app, f"guess-{n}")
    waits = []
    for n in range(4):
        refused = decide(app, f"again-{n}")
        waits.append(waited(refused))
        assert refused.delay > 0  # the door holds the Access-Reject a little (bounded)
        clock.advance(waits[-1])
        failed = decide(app, f"after-{n}")  # the wait is over: checked, and wrong again
        assert failed.message == radius_auth.APPEND_FAILED % {"d": ","}
    assert waits == [2, 4, 8, 16]
    assert password_checks(app) == USER_LIMIT + 4
    clock.advance(16 * 2 + 900)  # the window passes without failures: forgotten
    _, secret = add_totp_device(app)
    assert decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}").outcome is Outcome.ACCEPT


def test_a_right_password_forgets_the_users_count(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    for round_ in range(3):  # each time one failure short of the limit, then the password
        station = f"198.51.100.{round_}"  # the source's count is not forgotten: another one
        for n in range(USER_LIMIT - 1):
            assert decide(app, f"guess-{round_}-{n}", calling_station=station).message == \
                radius_auth.APPEND_FAILED % {"d": ","}
        right = decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}",
                       calling_station=station)
        assert right.outcome is Outcome.ACCEPT, right.message
        clock.advance(30)  # the next TOTP step
    assert password_checks(app) == 3 * USER_LIMIT


def test_another_user_on_the_same_nas_still_gets_in(app, clock):
    make_user(app)
    make_user(app, "bob")
    _, secret = add_totp_device(app, "bob")
    for n in range(USER_LIMIT + 3):
        decide(app, f"guess-{n}")
    assert waited(decide(app, PASSWORD)) >= 1  # alice waits
    # bob, on the same NAS and even from the same Calling-Station-Id
    bob = decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}", username="bob")
    assert bob.outcome is Outcome.ACCEPT


def test_one_calling_station_guessing_many_usernames_is_limited(app, clock):
    make_user(app, "carol")
    _, secret = add_totp_device(app, "carol")
    station = "192.0.2.66"
    for n in range(SOURCE_LIMIT):
        wrong = decide(app, "Winter2026!", username=f"user{n}", calling_station=station)
        assert wrong.message == radius_auth.APPEND_FAILED % {"d": ","}
    refused = decide(app, "Winter2026!", username="someone-new", calling_station=station)
    assert refused.outcome is Outcome.REJECT and waited(refused) >= 1
    assert password_checks(app) == SOURCE_LIMIT
    # the same NAS, another Calling-Station-Id: not affected
    carol = decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}", username="carol",
                   calling_station="192.0.2.67")
    assert carol.outcome is Outcome.ACCEPT


def test_append_mode_says_the_same_for_a_wrong_password_and_a_wrong_or_missing_factor(
        app, clock):
    make_user(app)
    make_user(app, "dave")  # no device at all
    _, secret = add_totp_device(app)
    code = totp_code(secret, clock.now)
    wrong_code = f"{(int(code) + 1) % 10**6:06d}"
    answers = {
        "wrong password": decide(app, f"not-it,{code}"),
        "unknown user": decide(app, f"{PASSWORD},{code}", username="nobody"),
        "wrong passcode": decide(app, f"{PASSWORD},{wrong_code}"),
        "missing factor": decide(app, PASSWORD),
        "push without a push device": decide(app, f"{PASSWORD},push"),
        "no device, missing factor": decide(app, PASSWORD, username="dave"),
    }
    assert {d.outcome for d in answers.values()} == {Outcome.REJECT}
    assert {d.message for d in answers.values()} == {radius_auth.APPEND_FAILED % {"d": ","}}
    # the audit still says what happened
    details = [r.detail for r in audit_rows(app, radius_auth.ACTION)]
    assert details[0].startswith("password") and details[2].startswith("totp wrong")


def test_challenge_mode_still_asks_after_the_password(app):
    """The limit counts passwords only; a right password in challenge mode is challenged."""
    make_user(app)
    add_totp_device(app)
    cfg = client("challenge")
    assert decide(app, "wrong", cfg=cfg).outcome is Outcome.REJECT
    assert decide(app, PASSWORD, cfg=cfg).outcome is Outcome.CHALLENGE


# --- the live server ------------------------------------------------------------------------

def test_the_server_refuses_a_guesser_at_once_and_holds_the_reject_without_blocking(
        app, radius):
    make_user(app)
    make_user(app, "bob")
    _, secret = add_totp_device(app, "bob")
    for n in range(USER_LIMIT):
        reply = radius.ask("alice", f"guess-{n}", secret=SECRETS["local"])
        assert reply is not None and reply.code == rp.AccessReject
    # alice waits now: even the right password is refused unchecked, and the reject is held
    box: list = []

    def refused_login() -> None:
        started = time.monotonic()
        box.append(radius.ask("alice", PASSWORD, secret=SECRETS["local"], timeout=5))
        box.append(time.monotonic() - started)

    thread = threading.Thread(target=refused_login)
    thread.start()
    time.sleep(0.2)
    # while that reject is held, the event loop answers others at once
    started = time.monotonic()
    bob = radius.ask("bob", totp_code(secret, time.time()), secret=SECRETS["second"],
                     source=SOURCE["second"])
    assert bob is not None and bob.code == rp.AccessAccept
    assert time.monotonic() - started < 0.5
    thread.join(timeout=10)
    refused, held = box
    assert refused is not None and refused.code == rp.AccessReject
    assert "Wait" in reply_message(refused)
    assert 0.4 <= held < 3  # held for the bounded delay, not longer
    assert any("too many failed passwords" in r.detail
               for r in audit_rows(app, radius_auth.ACTION) if r.username == "alice")


# --- shared by the nodes --------------------------------------------------------------------

def test_two_nodes_without_redis_count_together_in_the_database(app, clock):
    """Two RADIUS nodes built from the same settings (no Redis): each has its own engine, and
    the counts add up in the database."""
    make_user(app)
    nodes = [dataclasses.replace(build_services(app.config["UM2FA"]), clock=clock)
             for _ in range(2)]
    try:
        assert all(isinstance(node.attempts, DatabaseAttempts) for node in nodes)
        req = radius_auth.AccessRequest(client=client(), source="127.0.0.1", username="alice",
                                        password="guess", calling_station="203.0.113.9")
        answers = [radius_auth.decide(nodes[n % 2], req) for n in range(USER_LIMIT + 1)]
        assert [waited(a) for a in answers[USER_LIMIT:]] == [2]
        assert password_checks(app) == USER_LIMIT
    finally:
        for node in nodes:
            node.db.dispose()


def test_two_nodes_count_together_through_redis_and_the_database_takes_over_without_it(
        app, clock, caplog):
    """Two RADIUS nodes (two CoreServices, each with its own Redis client) share the counts;
    while Redis is down the database counts, and nobody gets an error."""
    make_user(app)
    server = RedisServer()
    server.start()
    try:
        nodes = [dataclasses.replace(core.services(app), clock=clock,
                                     attempts=RedisAttempts(server.url, "guessing-test"))
                 for _ in range(2)]
        req = radius_auth.AccessRequest(client=client(), source="127.0.0.1", username="alice",
                                        password="guess", calling_station="203.0.113.9")
        answers = [radius_auth.decide(nodes[n % 2], req) for n in range(USER_LIMIT + 1)]
        assert [waited(a) for a in answers[USER_LIMIT:]] == [2]
        assert password_checks(app) == USER_LIMIT
        stored = redis.Redis.from_url(server.url).keys("guessing-test:um2fa:attempts:*")
        assert len(stored) == 2 and not any(b"alice" in key for key in stored)
        server.stop()
        down = radius_auth.decide(nodes[0], req)  # Redis gone: counted in the database
        assert down.outcome is Outcome.REJECT
        assert "Redis unavailable" in caplog.text
    finally:
        server.stop()
