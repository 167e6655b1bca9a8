"""app.core.radius_auth and app.core.radius_clients, called in-process (no pyrad)."""

from __future__ import annotations

import dataclasses
import ipaddress
import logging

import pytest
from sqlalchemy import select

from app.core import radius_auth, radius_clients
from app.core.directory import LocalDirectory
from app.core.keys import Keys
from app.core.radius_auth import AccessRequest, Outcome
from app.core.radius_clients import ClientConfig, ClientTable, RadiusClientError
from app.core.services import CoreServices
from app.db import Database
from app.extensions import core
from app.models import RadiusChallenge
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
    totp_code,
)
from tests.helpers.radius import DirectoryOutsideTheDatabase, client, decide

# append mode: one text for a wrong password and a wrong or missing factor (issue 13, point 5)
APPEND_FAILED = radius_auth.APPEND_FAILED % {"d": ","}


def results(app) -> list[str]:
    return [r.result for r in audit_rows(app, radius_auth.ACTION)]


# --- append mode ----------------------------------------------------------------------------

def test_append_accepts_password_and_passcode(app, clock):
    make_user(app, role="staff")
    _, secret = add_totp_device(app, name="Phone")
    decision = decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}")
    assert decision.outcome is Outcome.ACCEPT
    assert decision.message == "Success. Logged in with Phone."
    assert decision.session_class.startswith(b"um2fa:")
    [row] = audit_rows(app, radius_auth.ACTION)
    assert (row.door, row.result, row.device, row.client_addr) == ("radius", "accept", "Phone",
                                                                   "127.0.0.1")
    assert row.detail == ("totp; radius client vpn; NAS-IP-Address 10.1.2.3; "
                          "Calling-Station-Id 203.0.113.9")
    assert [r.result for r in audit_rows(app, "sign_in")] == ["ok"]


def test_append_rejects_and_counts_like_the_web(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    code = totp_code(secret, clock.now)
    assert decide(app, f"wrong-password,{code}").message == APPEND_FAILED
    assert decide(app, f"{PASSWORD},{code}", username="nobody").message == APPEND_FAILED
    wrong = decide(app, f"{PASSWORD},{(int(code) + 1) % 10**6:06d}")
    assert wrong.outcome is Outcome.REJECT and wrong.message == APPEND_FAILED
    assert decide(app, f"{PASSWORD},{code}").outcome is Outcome.ACCEPT
    replay = decide(app, f"{PASSWORD},{code}")
    assert replay.outcome is Outcome.REJECT and replay.message == APPEND_FAILED
    assert results(app) == ["reject", "reject", "reject", "accept", "reject"]
    details = [r.detail.split(";")[0] for r in audit_rows(app, radius_auth.ACTION)]
    assert details == ["password", "password", "totp wrong", "totp", "totp replay"]
    fails = [r.detail for r in audit_rows(app, "sign_in") if r.result == "fail"]
    assert [d.split(";")[0] for d in fails] == ["wrong password", "unknown user"]


def test_a_recovery_passcode_is_refused_and_not_spent(app):
    make_user(app)
    code = issue_recovery(app)
    for mode in ("append", "second-factor"):
        typed = code if mode == "second-factor" else f"{PASSWORD},{code}"
        refused = decide(app, typed, cfg=client(mode))
        assert refused.outcome is Outcome.REJECT
        # append mode keeps its one failure text; second-factor mode says why
        assert refused.message == (APPEND_FAILED if mode == "append"
                                   else radius_auth.RECOVERY_REFUSED)
    assert audit_rows(app, "factor") == []


def test_passwords_containing_the_delimiter_still_work(app, clock):
    make_user(app, password="se,cret-pass")
    make_user(app, "bob", password="secret,999999")
    _, alice_secret = add_totp_device(app)
    _, bob_secret = add_totp_device(app, "bob")
    ok = decide(app, f"se,cret-pass,{totp_code(alice_secret, clock.now)}")
    assert ok.outcome is Outcome.ACCEPT
    # bob's whole password looks like "password,passcode": the split reading fails, the whole
    # string is his password, and he is told to append a passcode; one sign-in record only
    plain = decide(app, "secret,999999", username="bob")
    assert plain.outcome is Outcome.REJECT
    assert plain.message == APPEND_FAILED
    assert audit_rows(app, radius_auth.ACTION)[-1].detail.startswith("no second factor given")
    assert [r.result for r in audit_rows(app, "sign_in") if r.username == "bob"] == ["ok"]
    bob = decide(app, f"secret,999999,{totp_code(bob_secret, clock.now)}", username="bob")
    assert bob.outcome is Outcome.ACCEPT


def test_a_configured_delimiter(app, clock):
    make_user(app, password="with,comma")
    _, secret = add_totp_device(app)
    cfg = client(delimiter="+")
    assert decide(app, f"with,comma+{totp_code(secret, clock.now)}",
                  cfg=cfg).outcome is Outcome.ACCEPT
    hint = decide(app, "with,comma", cfg=cfg)
    assert hint.message == radius_auth.APPEND_FAILED % {"d": "+"}
    assert "e.g. password+123456" in hint.message


def test_plain_password_without_a_device_points_to_the_portal(app):
    make_user(app)
    decision = decide(app, PASSWORD)
    assert decision.outcome is Outcome.REJECT
    # the append-mode text for every failure points to the portal and the recovery passcode
    assert decision.message == APPEND_FAILED
    assert "no 2FA device yet" in decision.message and "2FA portal" in decision.message
    assert "123456789" not in decision.message  # the VPN takes no recovery passcode
    assert audit_rows(app, radius_auth.ACTION)[-1].detail.startswith(
        "no second factor given (no device)")


def test_only_pap_is_supported(app):
    make_user(app)
    decision = decide(app, None)
    assert decision.outcome is Outcome.REJECT and decision.message == radius_auth.PAP_ONLY


# --- challenge mode -------------------------------------------------------------------------

def test_challenge_state_is_random_single_use_and_hashed(app, clock):
    make_user(app)
    _, secret = add_totp_device(app, name="Phone")
    cfg = client("challenge")
    first = decide(app, PASSWORD, cfg=cfg)
    second = decide(app, PASSWORD, cfg=cfg)
    assert first.outcome is Outcome.CHALLENGE
    assert first.message == "Enter a 6-digit passcode from Phone."
    assert len(first.state) == 16 and first.state != second.state
    with committed(app) as c:
        stored = list(c.db.scalars(select(RadiusChallenge.state_hash)))
    assert first.state not in stored and len(stored) == 2
    ok = decide(app, totp_code(secret, clock.now), state=first.state, cfg=cfg)
    assert ok.outcome is Outcome.ACCEPT
    reused = decide(app, totp_code(secret, clock.now, 1), state=first.state, cfg=cfg)
    assert reused.message == radius_auth.CHALLENGE_GONE


def test_challenge_state_expires_after_five_minutes(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    cfg = client("challenge")
    state = decide(app, PASSWORD, cfg=cfg).state
    clock.advance(radius_auth.CHALLENGE_TTL_SECONDS + 1)
    late = decide(app, totp_code(secret, clock.now), state=state, cfg=cfg)
    assert late.outcome is Outcome.REJECT and late.message == radius_auth.CHALLENGE_GONE


def test_challenge_state_is_bound_to_user_and_client(app, clock):
    make_user(app)
    make_user(app, "bob")
    _, secret = add_totp_device(app)
    cfg = client("challenge")
    code = totp_code(secret, clock.now)
    state = decide(app, PASSWORD, cfg=cfg).state
    assert decide(app, code, username="bob", state=state, cfg=cfg).outcome is Outcome.REJECT
    state = decide(app, PASSWORD, cfg=cfg).state
    other = client("challenge", name="other-vpn")
    assert decide(app, code, state=state, cfg=other).outcome is Outcome.REJECT
    assert decide(app, code, state=b"\x00" * 16, cfg=cfg).outcome is Outcome.REJECT
    # the code was never spent on those
    state = decide(app, PASSWORD, cfg=cfg).state
    assert decide(app, code, state=state, cfg=cfg).outcome is Outcome.ACCEPT


def test_challenge_mode_also_takes_an_appended_passcode(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    decision = decide(app, f"{PASSWORD},{totp_code(secret, clock.now)}",
                      cfg=client("challenge"))
    assert decision.outcome is Outcome.ACCEPT


def test_purge_removes_only_long_expired_states(app, clock):
    make_user(app)
    cfg = client("challenge")
    decide(app, PASSWORD, cfg=cfg)
    clock.advance(radius_auth.CHALLENGE_TTL_SECONDS + 61)
    decide(app, PASSWORD, cfg=cfg)
    with committed(app) as c:
        assert radius_auth.purge_challenges(c) == 1
        assert len(list(c.db.scalars(select(RadiusChallenge)))) == 1


# --- second-factor-only mode ----------------------------------------------------------------

def test_second_factor_only(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    cfg = client("second-factor")
    assert decide(app, totp_code(secret, clock.now), cfg=cfg).outcome is Outcome.ACCEPT
    assert decide(app, totp_code(secret, clock.now), username="nobody",
                  cfg=cfg).outcome is Outcome.REJECT
    push = decide(app, "push", cfg=cfg)
    assert push.message == radius_auth.PUSH_UNAVAILABLE_ALONE
    assert [r.action for r in audit_rows(app, "sign_in")] == []


# --- fail modes -----------------------------------------------------------------------------


@pytest.fixture
def unreachable(app):
    """Core services whose database does not answer (nothing listens on 127.0.0.1:1)."""
    db = Database("postgresql://um2fa@127.0.0.1:1/none?connect_timeout=2")
    services = CoreServices(db=db, settings=app.config["UM2FA"],
                            keys=Keys(app.config["UM2FA"].encryption_key),
                            directory=LocalDirectory())
    yield services
    db.dispose()


def _request(fail_mode: str, typed: str, mode: str = "append") -> AccessRequest:
    return AccessRequest(client=client(mode, fail_mode=fail_mode), source="127.0.0.1",
                         username="alice", password=typed)


def test_fail_secure_rejects_when_the_database_is_unreachable(unreachable, caplog):
    decision = radius_auth.decide(unreachable, _request("secure", f"{PASSWORD},123456"))
    assert decision.outcome is Outcome.REJECT and decision.message == radius_auth.UNAVAILABLE
    assert "database unavailable" in caplog.text
    assert PASSWORD not in caplog.text


def test_fail_safe_accepts_a_correct_password_alone_loudly(unreachable, caplog):
    # the local directory keeps its hashes in the unreachable database: it cannot say yes
    local = radius_auth.decide(unreachable, _request("safe", f"{PASSWORD},123456"))
    assert local.outcome is Outcome.REJECT
    unreachable.directory = DirectoryOutsideTheDatabase()
    with caplog.at_level(logging.INFO):
        wrong = radius_auth.decide(unreachable, _request("safe", "not-it,123456"))
        ok = radius_auth.decide(unreachable, _request("safe", f"{PASSWORD},123456"))
        alone = radius_auth.decide(unreachable, _request("safe", PASSWORD))
        second = radius_auth.decide(unreachable, _request("safe", "123456", "second-factor"))
    assert wrong.outcome is Outcome.REJECT
    assert ok.outcome is Outcome.ACCEPT and ok.message == radius_auth.DEGRADED
    assert alone.outcome is Outcome.ACCEPT
    assert second.outcome is Outcome.REJECT
    loud = [r for r in caplog.records if "FAIL-SAFE" in r.getMessage()]
    assert len(loud) == 2 and all(r.levelno == logging.ERROR for r in loud)
    assert PASSWORD not in caplog.text


def test_decide_commits_its_work(app, clock):
    make_user(app)
    _, secret = add_totp_device(app)
    services = dataclasses.replace(core.services(app), clock=clock)
    req = AccessRequest(client=client(), source="127.0.0.1", username="alice",
                        password=f"{PASSWORD},{totp_code(secret, clock.now)}")
    assert radius_auth.decide(services, req).outcome is Outcome.ACCEPT
    assert results(app) == ["accept"]


# --- clients --------------------------------------------------------------------------------

def test_clients_are_validated(app):
    with committed(app) as c:
        radius_clients.add(c, TEST_ORIGIN, "fw1", "10.0.0.5", "s" * 16)
    bad = [dict(name="fw 2"), dict(address="10.0.0.0/33"), dict(secret="short"),
           dict(secret="has spaces in it here"), dict(mode="pap"), dict(delimiter="a"),
           dict(delimiter=""), dict(delimiter=" "), dict(fail_mode="open"),
           dict(push_timeout=1), dict(name="fw1"), dict(address="10.0.0.5/32")]
    for case in bad:
        args = {"name": "fw2", "address": "10.0.0.6", "secret": "t" * 16, **case}
        with committed(app) as c, pytest.raises(RadiusClientError):
            radius_clients.add(c, TEST_ORIGIN, args.pop("name"), args.pop("address"),
                               args.pop("secret"), **args)


def test_clients_load_with_their_secret_decrypted(app):
    with committed(app) as c:
        row = radius_clients.add(c, TEST_ORIGIN, "fw1", "10.0.0.0/24", "x" * 20,
                                 mode="challenge", delimiter="+", fail_mode="safe",
                                 require_message_authenticator=False, push_timeout=25)
        assert b"x" * 20 not in row.secret_enc
    with committed(app) as c:
        [cfg] = radius_clients.load(c)
    assert cfg == ClientConfig("fw1", ipaddress.ip_network("10.0.0.0/24"), b"x" * 20,
                               "challenge", "+", False, "safe", 25)
    assert "xxxx" not in repr(cfg)
    with committed(app) as c:
        radius_clients.remove(c, TEST_ORIGIN, "fw1")
    with committed(app) as c:
        assert radius_clients.load(c) == []
        with pytest.raises(RadiusClientError):
            radius_clients.remove(c, TEST_ORIGIN, "fw1")
    assert [r.action for r in audit_rows(app) if r.action.startswith("radius_client")] == [
        "radius_client.add", "radius_client.remove"]


def test_the_most_specific_network_wins():
    def cfg(name, net):
        return ClientConfig(name, ipaddress.ip_network(net), b"k" * 16)

    table = ClientTable([cfg("all", "10.0.0.0/8"), cfg("site", "10.1.0.0/16"),
                         cfg("fw", "10.1.2.3/32"), cfg("v6", "2001:db8::/32")])
    assert table.match("10.1.2.3").name == "fw"
    assert table.match("10.1.2.4").name == "site"
    assert table.match("10.9.9.9").name == "all"
    assert table.match("::ffff:10.1.2.3").name == "fw"
    assert table.match("2001:db8::1").name == "v6"
    assert table.match("192.0.2.1") is None
    assert table.match("not an address") is None
    assert radius_clients.parse_address("::ffff:10.0.0.0/104") == ipaddress.ip_network(
        "10.0.0.0/8")


# --- CLI ------------------------------------------------------------------------------------

def test_cli_add_list_remove(app, runner):
    added = runner.invoke(args=["radius-clients", "add", "fw1", "--address", "10.0.0.5",
                                "--mode", "challenge"])
    assert added.exit_code == 0, added.output
    secret = added.output.split("shared secret: ")[1].strip()
    assert len(secret) >= 16
    listed = runner.invoke(args=["radius-clients", "list"])
    assert "fw1\t10.0.0.5/32\tchallenge" in listed.output and secret not in listed.output
    relaxed = runner.invoke(args=["radius-clients", "add", "old", "--address", "10.0.0.6",
                                  "--secret", "-", "--allow-missing-message-authenticator"],
                            input="old-nas-secret-123\n")
    assert relaxed.exit_code == 0 and "BlastRADIUS" in relaxed.output
    assert "shared secret" not in relaxed.output
    with committed(app) as c:
        assert {x.name: x.secret for x in radius_clients.load(c)}["old"] == \
            b"old-nas-secret-123"
    dup = runner.invoke(args=["radius-clients", "add", "fw2", "--address", "10.0.0.5/32"])
    assert dup.exit_code != 0 and "already has the address" in dup.output
    assert runner.invoke(args=["radius-clients", "remove", "fw1"]).exit_code == 0
    missing = runner.invoke(args=["radius-clients", "remove", "fw1"])
    assert missing.exit_code != 0 and "no RADIUS client named fw1" in missing.output
