"""A RADIUS client marked as a proxy (FreeRADIUS in front of several NAS) and the policies of
the NAS behind it: which policy a proxied request gets, what it changes in the decision, the
rules for adding them, and the command line's warnings. The whole path through a real
FreeRADIUS is tests/radius/test_radius_proxy.py."""

from __future__ import annotations

import ipaddress

import pytest
from sqlalchemy import text

from app.core import radius_clients, radius_nas_policies
from app.core.radius_auth import AccessRequest, Outcome, authenticate
from app.core.radius_clients import ClientConfig, ProxyWait, RadiusClientError
from app.core.radius_nas_policies import NewPolicy
from app.models import RadiusNasPolicy
from tests.conftest import PASSWORD, TEST_ORIGIN, add_totp_device, audit_rows, committed, make_user

PROXY = ClientConfig(name="univ-proxy", network=ipaddress.ip_network("10.9.0.1/32"),
                     secret=b"s" * 16, mode="append", push_timeout=50, proxy=True)


def policy(name: str, identifier: str | None = None, network: str | None = None,
           **settings) -> RadiusNasPolicy:
    return RadiusNasPolicy(name=name, nas_identifier=identifier, nas_network=network,
                           **{"mode": None, "fail_mode": None, "push_timeout": None,
                              "language": None, **settings})


def proxy_with(*rows: RadiusNasPolicy) -> ClientConfig:
    return radius_clients.with_policies(PROXY, rows)


# --- the choice (no database) ---------------------------------------------------------------

def test_the_nas_identifier_wins_then_the_most_specific_network_then_the_proxy():
    cfg = proxy_with(policy("campus", network="10.1.0.0/16", mode="second-factor"),
                     policy("lab", network="10.1.2.0/24", fail_mode="safe"),
                     policy("vpn-a", identifier="vpn-a", mode="challenge", push_timeout=40,
                            language="pt"))
    chosen = cfg.for_nas("vpn-a", "10.1.2.3")  # in both networks, but named
    assert (chosen.nas_policy, chosen.mode, chosen.push_timeout, chosen.language) == \
        ("vpn-a", "challenge", 40, "pt")
    assert chosen.fail_mode == "secure" and chosen.secret == PROXY.secret  # the proxy's
    assert chosen.label == "univ-proxy/nas vpn-a"
    assert cfg.for_nas("other", "10.1.2.3").nas_policy == "lab"  # /24 before /16
    assert cfg.for_nas("", "10.1.9.9").nas_policy == "campus"
    assert cfg.for_nas("", "10.1.9.9").mode == "second-factor"
    fallback = cfg.for_nas("vpn-z", "192.0.2.1")
    assert fallback.label == "univ-proxy" and fallback.mode == "append"
    assert cfg.for_nas("", "").label == "univ-proxy"
    assert cfg.longest_push_timeout == 50  # the proxy's 50 against the policies' 40, 50, 50


def test_a_policy_with_an_identifier_and_a_network_needs_both():
    cfg = proxy_with(policy("vpn-a", identifier="vpn", network="10.1.0.5/32", mode="challenge"),
                     policy("vpn-b", identifier="vpn", network="10.1.0.6/32",
                            mode="second-factor"),
                     policy("any-vpn", identifier="vpn", push_timeout=30))
    assert cfg.for_nas("vpn", "10.1.0.5").nas_policy == "vpn-a"
    assert cfg.for_nas("vpn", "10.1.0.6").nas_policy == "vpn-b"
    # the same identifier from elsewhere: the identifier's policy without a network
    assert cfg.for_nas("vpn", "10.1.0.7").nas_policy == "any-vpn"
    assert cfg.for_nas("VPN", "10.1.0.5").label == "univ-proxy"  # matched exactly
    assert cfg.for_nas("vpn", "::1").nas_policy == "any-vpn"


def test_ipv6_and_ipv4_mapped_nas_addresses():
    cfg = proxy_with(policy("v6", network="2001:db8::/64", mode="challenge"),
                     policy("v4", network="10.1.0.0/16", mode="second-factor"))
    assert cfg.for_nas("", "2001:db8::5").nas_policy == "v6"
    assert cfg.for_nas("", "::ffff:10.1.0.9").nas_policy == "v4"
    assert cfg.for_nas("", "not an address").label == "univ-proxy"


def test_a_client_that_is_not_a_proxy_is_itself():
    plain = ClientConfig(name="fw1", network=ipaddress.ip_network("10.0.0.5/32"),
                         secret=b"s" * 16)
    assert plain.for_nas("vpn-a", "10.1.2.3") is plain and plain.label == "fw1"


def test_what_a_stock_freeradius_proxy_waits():
    assert radius_clients.proxy_wait(15) is ProxyWait.FITS
    assert radius_clients.proxy_wait(radius_clients.STOCK_PROXY_WAIT) is \
        ProxyWait.NEEDS_CONFIGURED_PROXY
    assert radius_clients.proxy_wait(55) is ProxyWait.NEEDS_CONFIGURED_PROXY
    assert radius_clients.proxy_wait(56) is ProxyWait.TOO_LONG  # response_window's cap is 60
    assert radius_clients.proxy_wait(radius_clients.DEFAULT_PUSH_TIMEOUT) is ProxyWait.TOO_LONG


# --- the decision ---------------------------------------------------------------------------

def ask(app, cfg: ClientConfig, typed: str, *, nas_identifier: str = "", nas_ip: str = "",
        state: bytes | None = None):
    req = AccessRequest(client=cfg.for_nas(nas_identifier, nas_ip), source="10.9.0.1",
                        username="alice", password=typed, state=state, nas_ip=nas_ip,
                        nas_identifier=nas_identifier, calling_station="203.0.113.9")
    with committed(app) as c:
        return authenticate(c, req)


def test_the_nas_policy_decides_and_names_the_audit(app):
    make_user(app)
    add_totp_device(app)
    cfg = proxy_with(policy("vpn-a", identifier="vpn-a", mode="challenge"),
                     policy("vpn-b", identifier="vpn-b", mode="append"))
    challenged = ask(app, cfg, PASSWORD, nas_identifier="vpn-a")
    assert challenged.outcome is Outcome.CHALLENGE and challenged.state
    appended = ask(app, cfg, PASSWORD, nas_identifier="vpn-b")
    assert appended.outcome is Outcome.REJECT and "Append a 6-digit passcode" in \
        appended.message
    # the State is bound to the NAS it was sent through, not only to the proxy
    other = ask(app, cfg, "123456", nas_identifier="vpn-b", state=challenged.state)
    assert other.outcome is Outcome.REJECT and "expired or was already answered" in \
        other.message
    details = [r.detail for r in audit_rows(app, "radius.access")]
    assert "radius client univ-proxy/nas vpn-a; NAS-Identifier vpn-a" in details[0]
    assert "radius client univ-proxy/nas vpn-b; NAS-Identifier vpn-b" in details[1]


# --- adding and removing them ---------------------------------------------------------------

def add_proxy(ctx, name: str = "univ-proxy", proxy: bool = True):
    return radius_clients.add(ctx, TEST_ORIGIN, name, "10.9.0.1" if proxy else "10.9.0.2",
                              "proxy-secret-0123456789", push_timeout=50, proxy=proxy)


def test_policies_are_added_checked_loaded_and_removed(app):
    with committed(app) as c:
        add_proxy(c)
        add_proxy(c, "fw1", proxy=False)
        radius_nas_policies.add(c, TEST_ORIGIN, "univ-proxy", NewPolicy(
            "vpn-a", nas_identifier="vpn-a", mode="challenge"))
        radius_nas_policies.add(c, TEST_ORIGIN, "univ-proxy", NewPolicy(
            "lab", nas_address="10.1.2.7/24", push_timeout=30, language="pt"))
    refusals = [
        ("fw1", NewPolicy("x", nas_identifier="x"), "is not a RADIUS proxy"),
        ("nobody", NewPolicy("x", nas_identifier="x"), "no RADIUS client named nobody"),
        ("univ-proxy", NewPolicy("x"), "needs a NAS-Identifier, a NAS-IP-Address"),
        ("univ-proxy", NewPolicy("vpn-a", nas_identifier="z"), "already has a NAS policy"),
        ("univ-proxy", NewPolicy("y", nas_identifier="vpn-a"), "vpn-a already matches"),
        ("univ-proxy", NewPolicy("y", nas_address="10.1.2.0/24"), "lab already matches"),
        ("univ-proxy", NewPolicy("y", nas_identifier=" a"), "printable characters"),
        ("univ-proxy", NewPolicy("y", nas_identifier="a" * 65), "printable characters"),
        ("univ-proxy", NewPolicy("y", nas_address="10.1.300.0/24"), "CIDR"),
        ("univ-proxy", NewPolicy("bad name", nas_identifier="b"), "must be 1-64"),
        ("univ-proxy", NewPolicy("y", nas_identifier="b", mode="pap"), "mode must be one"),
        ("univ-proxy", NewPolicy("y", nas_identifier="b", fail_mode="open"), "fail mode"),
        ("univ-proxy", NewPolicy("y", nas_identifier="b", push_timeout=1), "push timeout"),
        ("univ-proxy", NewPolicy("y", nas_identifier="b", language="xx"), "language"),
    ]
    for client, new, message in refusals:
        with committed(app) as c, pytest.raises(RadiusClientError, match=message):
            radius_nas_policies.add(c, TEST_ORIGIN, client, new)
    with committed(app) as c:
        [proxy] = [x for x in radius_clients.load(c) if x.name == "univ-proxy"]
        with pytest.raises(RadiusClientError, match="has NAS policies"):
            radius_clients.set_proxy(c, TEST_ORIGIN, "univ-proxy", False)
    assert [p.name for p in proxy.policies] == ["vpn-a", "lab"]  # the identifier first
    lab = proxy.for_nas("", "10.1.2.99")
    assert (lab.label, lab.push_timeout, lab.language, lab.mode) == \
        ("univ-proxy/nas lab", 30, "pt", "append")
    with committed(app) as c:
        radius_nas_policies.remove(c, TEST_ORIGIN, "univ-proxy", "lab")
        with pytest.raises(RadiusClientError, match="no NAS policy named lab"):
            radius_nas_policies.remove(c, TEST_ORIGIN, "univ-proxy", "lab")
        radius_clients.remove(c, TEST_ORIGIN, "univ-proxy")  # its policies go with it
    with committed(app) as c:
        assert c.db.execute(text("SELECT count(*) FROM radius_nas_policies")).scalar() == 0
    actions = [r.action for r in audit_rows(app) if r.action.startswith("radius_client")]
    assert actions == ["radius_client.add", "radius_client.add", "radius_client.nas_add",
                       "radius_client.nas_add", "radius_client.nas_remove",
                       "radius_client.remove"]


# --- the command line -----------------------------------------------------------------------

def test_cli_proxy_policies_and_their_warnings(app, runner):
    added = runner.invoke(args=["radius-clients", "add", "univ-proxy", "--address", "10.9.0.1",
                                "--proxy", "--mode", "append"])
    assert added.exit_code == 0, added.output
    assert "added RADIUS proxy univ-proxy" in added.stdout
    # the default push timeout (60 s) is more than any FreeRADIUS proxy waits
    assert "waits at most 60 s" in added.stderr and "at most 55 s" in added.stderr
    plain = runner.invoke(args=["radius-clients", "add", "fw1", "--address", "10.0.0.5"])
    assert plain.exit_code == 0 and plain.stderr == ""
    stock = runner.invoke(args=["radius-clients", "add", "proxy2", "--address", "10.9.0.2",
                                "--proxy", "--push-timeout", "45"])
    assert stock.exit_code == 0
    assert "stock FreeRADIUS proxy waits" in stock.stderr
    assert "response_window 20 s" in stock.stderr and "max_request_time 30 s" in stock.stderr
    short = runner.invoke(args=["radius-clients", "add", "proxy3", "--address", "10.9.0.3",
                                "--proxy", "--push-timeout", "15"])
    assert short.exit_code == 0 and short.stderr == ""

    nas = runner.invoke(args=["radius-clients", "nas", "add", "proxy3", "vpn-a",
                              "--nas-identifier", "vpn-a", "--mode", "second-factor",
                              "--push-timeout", "50"])
    assert nas.exit_code == 0, nas.output
    assert "added NAS policy proxy3/nas vpn-a: NAS-Identifier vpn-a\tsecond-factor" in nas.stdout
    assert "any NAS behind proxy3" in nas.stderr  # claimable by NAS-Identifier
    assert "NAS policy proxy3/nas vpn-a holds a push login up to 50 s" in nas.stderr
    bound = runner.invoke(args=["radius-clients", "nas", "add", "proxy3", "vpn-b",
                                "--nas-identifier", "vpn-b", "--nas-address", "10.1.0.6",
                                "--mode", "second-factor"])
    assert bound.exit_code == 0 and bound.stderr == ""  # bound to its address; 15 s
    refused = runner.invoke(args=["radius-clients", "nas", "add", "fw1", "vpn-c",
                                  "--nas-identifier", "vpn-c"])
    assert refused.exit_code != 0 and "fw1 is not a RADIUS proxy" in refused.output

    listed = runner.invoke(args=["radius-clients", "list"]).stdout
    assert "proxy3\t10.9.0.3/32\tappend" in listed and "\tproxy\n" in listed
    assert "  nas vpn-b\tNAS-Identifier vpn-b and NAS-IP-Address in 10.1.0.6/32\t" \
           "second-factor\tfail mode secure\tpush timeout 15s\tlanguage default" in listed
    only = runner.invoke(args=["radius-clients", "nas", "list", "proxy3"]).stdout
    assert only.splitlines()[0].startswith("proxy3\tvpn-a\tNAS-Identifier vpn-a\t")
    assert len(only.splitlines()) == 2
    assert runner.invoke(args=["radius-clients", "nas", "list", "nobody"]).exit_code != 0
    off = runner.invoke(args=["radius-clients", "set-proxy", "proxy3", "off"])
    assert off.exit_code != 0 and "has NAS policies" in off.output
    for name in ("vpn-a", "vpn-b"):
        removed = runner.invoke(args=["radius-clients", "nas", "remove", "proxy3", name])
        assert removed.exit_code == 0 and f"removed NAS policy proxy3/nas {name}" in \
            removed.stdout
    assert runner.invoke(args=["radius-clients", "set-proxy", "proxy3", "off"]).exit_code == 0
    on = runner.invoke(args=["radius-clients", "set-proxy", "fw1", "on"])
    assert on.exit_code == 0 and "waits at most 60 s" in on.stderr
    with committed(app) as c:
        assert {x.name: x.proxy for x in radius_clients.load(c)} == {
            "fw1": True, "proxy2": True, "proxy3": False, "univ-proxy": True}
