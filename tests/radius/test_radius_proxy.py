"""Behind the university's FreeRADIUS (issue 18, point 8): VPN -> FreeRADIUS 3.2 proxying to
UM 2FA as a home server -> `um2fa radius`, with the configuration docs/radius.md shows
(deploy/freeradius/, tests/peers/freeradius_proxy.py). One FreeRADIUS, one `um2fa radius` and
one database for the module; every test has a user of its own.

The RADIUS client of UM 2FA is the proxy (`--proxy`); the two VPN concentrators behind it,
vpn-a on 127.0.0.2 and vpn-b on 127.0.0.3 (Linux routes 127.0.0.0/8 to lo), get the policies
chosen by the NAS-Identifier they send: vpn-a challenge mode, vpn-b append mode. A third policy,
second-factor mode for a NAS at 127.0.0.9 that checks passwords itself, is what a forged
NAS-IP-Address would claim; the proxy overwrites that attribute with the packet's source."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import pytest
from pyrad import packet as rp
from pyrad.client import Client, Timeout
from sqlalchemy import func, select

from app import create_app, migrate
from app.core import radius_auth, radius_clients
from app.extensions import core
from app.models import PushRequest
from tests.conftest import PASSWORD, add_totp_device, audit_rows, committed, make_user, totp_code
from tests.peers.freeradius_proxy import DEPLOY, FreeRadiusProxy
from tests.peers.live_radius import DICTIONARY, LiveRadius, make_env, reply_message
from tests.peers.push_device import PushDevice, enrol

PROXY_SECRET = "univ-proxy-secret-0123456789"
NAS = {"vpn-a": ("127.0.0.2", "vpn-a-secret-0123456789"),
       "vpn-b": ("127.0.0.3", "vpn-b-secret-0123456789")}
PUSH_TIMEOUT = 50  # what deploy/freeradius/proxy.conf is written for


@dataclass
class Deployment:
    app: object
    radius: LiveRadius
    proxy: FreeRadiusProxy


@pytest.fixture(scope="module")
def deployment(tmp_path_factory) -> Iterator[Deployment]:
    base = tmp_path_factory.mktemp("proxied")
    url = f"sqlite:///{base / 'um2fa.sqlite3'}"
    migrate.upgrade(url)
    app = create_app({"instance_dir": base / "instance", "database_url": url, "testing": True})
    runner = app.test_cli_runner()
    for args in (
            ["add", "univ-proxy", "--address", "127.0.0.1", "--secret", PROXY_SECRET, "--proxy",
             "--mode", "append", "--push-timeout", str(PUSH_TIMEOUT)],
            ["nas", "add", "univ-proxy", "vpn-a", "--nas-identifier", "vpn-a", "--mode",
             "challenge"],
            ["nas", "add", "univ-proxy", "vpn-b", "--nas-identifier", "vpn-b"],
            ["nas", "add", "univ-proxy", "radius-lan", "--nas-address", "127.0.0.9",
             "--mode", "second-factor"]):
        result = runner.invoke(args=["radius-clients", *args])
        assert result.exit_code == 0, result.output
    radius = LiveRadius(instance_dir=base / "instance",
                        env=make_env(base / "instance", url)).start()
    proxy = None
    try:
        proxy = FreeRadiusProxy(base / "freeradius", radius.port, PROXY_SECRET, NAS).start()
        yield Deployment(app, radius, proxy)
    finally:
        if proxy is not None:
            proxy.stop()
        radius.stop()
        core.database(app).dispose()


def nas_client(deployment: Deployment, nas: str, timeout: float = 10.0,
               retries: int = 1) -> Client:
    """The VPN concentrator `nas`, talking to the proxy from its own address."""
    address, secret = NAS[nas]
    client = Client(server="127.0.0.1", authport=deployment.proxy.port, secret=secret.encode(),
                    dict=DICTIONARY, retries=retries, timeout=timeout, enforce_ma=True)
    client.bind((address, 0))
    return client


def ask(deployment: Deployment, nas: str, username: str, password: str, *,
        state: bytes | None = None, identifier: str | None = None, nas_ip: str | None = None,
        timeout: float = 10.0, retries: int = 1) -> rp.Packet | None:
    """One Access-Request from `nas` through the proxy (its NAS-Identifier and its address as
    NAS-IP-Address unless told otherwise); the verified reply, or None."""
    client = nas_client(deployment, nas, timeout, retries)
    pkt = client.CreateAuthPacket(User_Name=username,
                                  NAS_IP_Address=nas_ip or NAS[nas][0],
                                  Calling_Station_Id="203.0.113.7")
    if identifier != "":
        pkt["NAS-Identifier"] = identifier or nas
    pkt["User-Password"] = pkt.PwCrypt(password)
    if state is not None:
        pkt["State"] = state
    try:
        return client.SendPacket(pkt)
    except Timeout:
        return None
    finally:
        client._CloseSocket()


def access_details(deployment: Deployment, username: str) -> list[tuple[str, str]]:
    return [(r.result, r.detail) for r in audit_rows(deployment.app, radius_auth.ACTION)
            if r.username == username]


def explain(deployment: Deployment) -> str:
    return (f"\n--- freeradius ---\n{deployment.proxy.log()[-4000:]}"
            f"\n--- um2fa radius ---\n{deployment.radius.log()[-3000:]}")


def test_the_docs_show_the_tested_configuration():
    docs = (DEPLOY.parents[1] / "docs" / "radius.md").read_text()
    for name in ("proxy.conf", "radiusd.conf", "clients.conf", "policy.d/um2fa"):
        assert f"```\n{(DEPLOY / name).read_text().rstrip()}\n```" in docs, name


def test_the_deployed_timeouts_are_what_freeradius_uses(deployment):
    """response_window above the push timeout and not lowered by FreeRADIUS (it caps it at
    60 s and at max_request_time), zombie_period and revive_interval within their caps."""
    checked = deployment.proxy.checked_configuration()
    assert "forcing to" not in checked, checked
    window = float(re.search(r"response_window = ([\d.]+)", checked).group(1))
    request_time = int(re.search(r"max_request_time = (\d+)", checked).group(1))
    assert PUSH_TIMEOUT < window <= min(radius_clients.PROXY_WAIT_CAP, request_time)
    assert radius_clients.proxy_wait(PUSH_TIMEOUT) is not radius_clients.ProxyWait.TOO_LONG
    assert f"{PUSH_TIMEOUT} s" in (DEPLOY / "proxy.conf").read_text()


def test_append_mode_through_the_proxy(deployment):
    app = deployment.app
    make_user(app, "anna")
    _device, secret = add_totp_device(app, "anna")
    reply = ask(deployment, "vpn-b", "anna", f"{PASSWORD},{totp_code(secret, time.time())}")
    assert reply is not None and reply.code == rp.AccessAccept, explain(deployment)
    assert reply_message(reply) == "Success. Logged in with Phone."
    wrong = ask(deployment, "vpn-b", "anna", PASSWORD)  # no factor, no push device: append's
    assert wrong is not None and wrong.code == rp.AccessReject
    assert reply_message(wrong).startswith("Incorrect password or passcode. Append a 6-digit")
    [(result, detail), _reject] = access_details(deployment, "anna")
    assert result == "accept"
    assert "radius client univ-proxy/nas vpn-b; NAS-IP-Address 127.0.0.3; " \
           "NAS-Identifier vpn-b" in detail


def test_challenge_mode_through_the_proxy(deployment):
    """vpn-a's policy: the Access-Challenge and its State pass through the proxy both ways."""
    app = deployment.app
    make_user(app, "bruno")
    _device, secret = add_totp_device(app, "bruno")
    challenge = ask(deployment, "vpn-a", "bruno", PASSWORD)
    assert challenge is not None and challenge.code == rp.AccessChallenge, explain(deployment)
    assert reply_message(challenge) == "Enter a 6-digit passcode from Phone."
    [state] = challenge["State"]
    answer = ask(deployment, "vpn-a", "bruno", totp_code(secret, time.time()), state=state)
    assert answer is not None and answer.code == rp.AccessAccept, explain(deployment)
    assert [r for r, _d in access_details(deployment, "bruno")] == ["challenge", "accept"]
    assert all("univ-proxy/nas vpn-a" in d for _r, d in access_details(deployment, "bruno"))


def test_a_push_approved_after_10_s_reaches_the_vpn(deployment):
    """The phone approves 10 s after the push: longer than the NAS's own timeout (it
    retransmits to the proxy, which must not start a second login) and than many a proxy's
    patience; the proxy, configured as docs/radius.md says, relays the Access-Accept."""
    app = deployment.app
    make_user(app, "clara")
    phone = PushDevice.with_client(app.test_client())
    assert phone.activate(enrol(app, "clara")).status == 201
    box: list = []
    started = time.monotonic()
    vpn = threading.Thread(target=lambda: box.append(ask(
        deployment, "vpn-b", "clara", f"{PASSWORD},push", timeout=4.0, retries=6)))
    vpn.start()
    try:
        request = phone.wait_for_request(timeout=10)
        assert request["service"] == "VPN (univ-proxy/nas vpn-b)"
        time.sleep(max(0.0, started + 10 - time.monotonic()))
        assert phone.approve(request["id"]).status == 200
    finally:
        vpn.join(timeout=30)
    [reply] = box
    assert reply is not None and reply.code == rp.AccessAccept, explain(deployment)
    assert time.monotonic() - started >= 10
    assert reply_message(reply).startswith("Success. Logged in with a push to ")
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(PushRequest)) == 1  # one push
    assert [r for r, _d in access_details(deployment, "clara")] == ["accept"]


def test_a_nas_cannot_claim_another_nas_policy_by_its_address(deployment):
    """vpn-b writes 127.0.0.9 in NAS-IP-Address, whose policy (second-factor mode) would let a
    passcode alone in; the proxy overwrites it with vpn-b's real address, so vpn-b gets the
    proxy's own settings (append mode: a passcode alone is a wrong password)."""
    app = deployment.app
    make_user(app, "duda")
    _device, secret = add_totp_device(app, "duda")
    with committed(app) as c:
        [proxy] = radius_clients.load(c)
    assert proxy.for_nas("", "127.0.0.9").mode == "second-factor"  # what the forgery seeks
    forged = ask(deployment, "vpn-b", "duda", totp_code(secret, time.time()), identifier="",
                 nas_ip="127.0.0.9")
    assert forged is not None and forged.code == rp.AccessReject, explain(deployment)
    last = audit_rows(app, radius_auth.ACTION)[-1]  # a wrong password: the username hashed
    assert last.result == "reject" and last.detail.startswith("password; ")
    assert "radius client univ-proxy; NAS-IP-Address 127.0.0.3;" in last.detail
