"""The VPN door with LDAP passwords (issue 18, point 3), a live `um2fa radius` against a real
slapd (tests/peers/ldap_server.py): the password is asked on a worker thread before any
transaction, then the request is decided in a batch like a passcode (SQLite) or in its own
transaction (radius/server.py: _check_apart); a username that is waiting (guessing) is not
asked about; a directory outage answers "temporarily unavailable", and the next login after it
works."""

from __future__ import annotations

import re
import time

import pytest
from pyrad import packet as rp
from sqlalchemy import update

from app.core import radius_auth
from app.models import User
from tests.conftest import add_totp_device, audit_rows, committed, make_user, totp_code
from tests.peers.ldap_server import PASSWORDS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD
from tests.peers.live_radius import reply_message
from tests.radius.conftest import SECRETS, SOURCE

ALICE_DN = f"uid=alice,{PEOPLE}"


@pytest.fixture
def settings_overrides(slapd):
    return {"directory": "ldap", "ldap_url": slapd.url,
            "ldap_user_dn_template": f"uid={{username}},{PEOPLE}",
            "ldap_bind_dn": SERVICE_DN, "ldap_bind_password": SERVICE_PASSWORD,
            "ldap_timeout": 2, "radius_guess_user_limit": 3,
            "radius_guess_backoff_seconds": 60, "radius_guess_max_delay_seconds": 1}


def directory_user(app, username: str = "alice") -> str:
    """A local row (as provisioning leaves it: no password hash) with a TOTP device."""
    make_user(app, username, password="a-local-password-never-used")
    with committed(app) as c:
        c.db.execute(update(User).where(User.username == username).values(password_hash=None))
    return add_totp_device(app, username)[1]


def counters(radius) -> dict[str, int]:
    """The server's counters, logged when it stops."""
    radius.stop()
    found = re.findall(r"RADIUS counters: (.*)", radius.log())
    assert found, radius.log()
    return {k: int(v) for k, v in (pair.split("=") for pair in found[-1].split(", "))}


def test_append_mode_asks_ldap_first(app, radius, slapd, database_url):
    secret = directory_user(app)

    def ask(typed: str, username: str = "alice") -> rp.Packet:
        reply = radius.ask(username, typed, secret=SECRETS["local"])
        assert reply is not None, radius.log()
        return reply

    code = totp_code(secret, time.time())
    wrong = ask(f"not-her-password,{code}")
    assert wrong.code == rp.AccessReject
    assert reply_message(wrong) == radius_auth.APPEND_FAILED % {"d": ","}
    assert ask(f"a-local-password-never-used,{code}").code == rp.AccessReject
    before = slapd.binds_of(ALICE_DN)
    right = ask(f"{PASSWORDS['alice']},{code}")
    assert right.code == rp.AccessAccept, reply_message(right)
    assert "Logged in with" in reply_message(right)
    assert slapd.binds_of(ALICE_DN) == before + 1  # one bind: "password,code" split first
    assert ask(f"{PASSWORDS['alice']},{code}").code == rp.AccessReject  # the code's replay
    # bob is in the directory, not yet ours: his row is made (provisioning), he has no device
    assert ask(f"{PASSWORDS['bob']},{code}", "bob").code == rp.AccessReject
    results = [(r.username, r.result) for r in audit_rows(app, "sign_in") if r.door == "radius"]
    assert results == [("alice", "fail"), ("alice", "fail"), ("alice", "ok"), ("alice", "ok"),
                       ("bob", "ok")]
    # alice's row takes her directory attributes at her first right password; bob's is made
    assert [(r.username, r.result) for r in audit_rows(app, "user.provision")] == [
        ("alice", "updated"), ("bob", "created")]
    assert [r.result for r in audit_rows(app, "radius.access")] == [
        "reject", "reject", "accept", "reject", "reject"]
    stats = counters(radius)
    assert stats["accept"] == 1 and stats["reject"] == 4
    # after its password was asked apart, each was decided in a batch on SQLite, in its own
    # transaction on its worker thread on PostgreSQL
    assert stats.get("batched", 0) == (5 if database_url.startswith("sqlite") else 0)


def test_challenge_mode_with_ldap(app, radius):
    secret = directory_user(app)
    first = radius.ask("alice", PASSWORDS["alice"], secret=SECRETS["challenge"],
                       source=SOURCE["challenge"])
    assert first is not None and first.code == rp.AccessChallenge, radius.log()
    answer = radius.ask("alice", totp_code(secret, time.time()), secret=SECRETS["challenge"],
                        source=SOURCE["challenge"], state=first["State"][0])
    assert answer is not None and answer.code == rp.AccessAccept


def test_a_waiting_username_is_not_asked_about(app, radius, slapd):
    secret = directory_user(app)
    for _ in range(3):
        reply = radius.ask("alice", "wrong-password,123456", secret=SECRETS["local"])
        assert reply is not None and reply.code == rp.AccessReject
    before = slapd.binds_of(ALICE_DN)
    code = totp_code(secret, time.time())
    refused = radius.ask("alice", f"{PASSWORDS['alice']},{code}", secret=SECRETS["local"])
    assert refused is not None and refused.code == rp.AccessReject
    assert "Too many failed attempts" in reply_message(refused)
    assert slapd.binds_of(ALICE_DN) == before  # the directory was not asked


def test_an_ldap_outage_is_temporarily_unavailable_then_recovers(app, radius, slapd):
    secret = directory_user(app)
    slapd.stop()
    try:
        down = radius.ask("alice", f"{PASSWORDS['alice']},{totp_code(secret, time.time())}",
                          secret=SECRETS["local"], timeout=5)
        assert down is not None and down.code == rp.AccessReject, radius.log()
        assert reply_message(down) == radius_auth.UNAVAILABLE
    finally:
        slapd.start()
    back = radius.ask("alice", f"{PASSWORDS['alice']},{totp_code(secret, time.time())}",
                      secret=SECRETS["local"])
    assert back is not None and back.code == rp.AccessAccept, reply_message(back)
    # nothing of the outage counts as a failed password
    assert [r.result for r in audit_rows(app, "sign_in") if r.door == "radius"] == ["ok"]
