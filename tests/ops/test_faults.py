"""Faults (issue 7, item 6), on real processes: PostgreSQL stops under the RADIUS door's load and
starts again; the web doors meet a stopped PostgreSQL, also between a request's work and its
commit; a web node dies in the middle of a push.

PostgreSQL is a private cluster each test owns (tests/peers/pg_cluster.py), never the machine's
shared one. Redis, where configured (UM2FA_TEST_REDIS_URL), carries the web nodes' rate limits
and push fan-out in the node-failure test; without it the nodes fall back to memory and polling.

What "nothing acknowledged is lost" means here: every Access-Accept the NAS received has its
audit record and its used TOTP step in the database after PostgreSQL crashed (an immediate stop,
no shutdown checkpoint) and came back, so the code is refused if it is sent again; a web request
whose commit was cut off acknowledges nothing (503, the session cookie unchanged); a push that
node A acknowledged as approved still completes the login after A is killed.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.peers import pg_cluster

if not pg_cluster.PG_ROOT.exists():  # CI installs PostgreSQL; a bare machine may not
    pytest.skip("the fault tests run their own PostgreSQL (/usr/lib/postgresql is missing)",
                allow_module_level=True)

import requests  # noqa: E402
from pyrad import packet as rp  # noqa: E402
from pyrad.client import Timeout  # noqa: E402
from sqlalchemy import select  # noqa: E402

from app import create_app  # noqa: E402
from app.core import devices, passcodes, users  # noqa: E402
from app.core import radius_auth as ra  # noqa: E402
from app.extensions import core  # noqa: E402
from app.models import AuditEvent, Device  # noqa: E402
from tests.conftest import (  # noqa: E402
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    committed,
    make_user,
)
from tests.helpers.sso import register  # noqa: E402
from tests.peers.ldap_server import PASSWORDS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SlapdServer  # noqa: E402
from tests.peers.live import Subprocess, free_port  # noqa: E402
from tests.peers.live_radius import LiveRadius, make_env, reply_message  # noqa: E402
from tests.peers.nodes import (  # noqa: E402
    DEVICE_RE,
    HX,
    NUMBER_RE,
    Browser,
    copy_keys,
    kill_node,
    make_keys,
    node_env,
    run_cli,
    start_web,
)
from tests.peers.pg_cluster import PgCluster  # noqa: E402
from tests.peers.push_device import PushDevice, enrol, totp  # noqa: E402
from tests.peers.saml_sp import SAML_RESPONSE_RE, TestSP  # noqa: E402

# The nodes check passwords at argon2's real cost, as in production: part of the load here.

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
HIGH_LIMIT = "1000 per minute"
WEB_SETTINGS = {f"ratelimit_{name}": HIGH_LIMIT for name in (
    "signin_address", "signin_user", "passcode_address", "passcode_user", "recovery_address",
    "recovery_user", "activate_address")}
UNAVAILABLE_PAGE = "The 2FA service is temporarily unavailable. Please try again in a few minutes."
LEAKS = ("Traceback", "OperationalError", "psycopg", "sqlalchemy", "Connection refused")
RECOVERY_SECONDS = 5.0  # logins work again this soon after PostgreSQL is back


@pytest.fixture
def pg() -> Iterator[PgCluster]:
    cluster = PgCluster.create()
    yield cluster
    cluster.cleanup()


def setup_app(instance: Path, url: str, **settings):
    """An app in the test's process on the nodes' database, for set-up and checks only."""
    return create_app({"instance_dir": instance, "database_url": url, **settings})


def wait_until(check, timeout: float, interval: float = 0.1) -> float:
    """Seconds until check() is true; fails after `timeout`."""
    started = time.monotonic()
    while not check():
        assert time.monotonic() - started < timeout, f"not within {timeout} s"
        time.sleep(interval)
    return time.monotonic() - started


# --- a. RADIUS under load while PostgreSQL crashes and comes back -----------------------------

LOAD_SECRET = "load-secret-0123456789"  # second-factor mode, fail secure: the load
SECURE_SECRET = "secure-secret-0123456789"  # append mode, fail secure
SAFE_SECRET = "safe-secret-0123456789"  # append mode, fail safe
SOURCE = {"load": "127.0.0.1", "secure": "127.0.0.2", "safe": "127.0.0.3"}
USERS = 8  # one load thread each
DEVICES = 40  # TOTP devices per user: each accepted login uses one up
INTERVAL = 1 / 3  # seconds between one thread's requests: 24 requests/s in all
LOAD_SECONDS = 14.0
STOP_AT = 4.0  # seconds into the load
OUTAGE = 5.0  # seconds PostgreSQL stays down


@dataclass
class Answer:
    sent: float  # time.monotonic()
    received: float
    username: str
    device: int  # index into the user's devices
    code: str
    outcome: int | None  # None: no answer after a retransmission (counted as a drop)
    message: str


def drive(node: LiveRadius, username: str, secrets: list[str], end: float,
          answers: list[Answer]) -> None:
    """One NAS user logging in with passcodes at a steady pace: each login uses the next
    device's current code; a login the door could not decide (temporarily unavailable) is
    retried with the same device, as a person would."""
    nas = node.client(LOAD_SECRET, SOURCE["load"], timeout=2.0)
    nas.retries = 2  # one retransmission, as a NAS does
    index, tick = 0, time.monotonic()
    try:
        while time.monotonic() < end and index < len(secrets):
            code = totp(secrets[index], time.time())
            pkt = nas.CreateAuthPacket(User_Name=username, NAS_IP_Address="127.0.0.1")
            pkt["User-Password"] = pkt.PwCrypt(code)
            sent = time.monotonic()
            try:
                reply = nas.SendPacket(pkt)
            except Timeout:
                reply = None
            message = reply_message(reply) if reply is not None else ""
            answers.append(Answer(sent, time.monotonic(), username, index, code,
                                  reply.code if reply is not None else None, message))
            if message != ra.UNAVAILABLE:
                index += 1
            tick += INTERVAL
            time.sleep(max(0.0, tick - time.monotonic()))
    finally:
        nas._CloseSocket()


def load_users(app) -> dict[str, list[str]]:
    """USERS users with DEVICES TOTP devices each: {username: [secret per device]}."""
    made: dict[str, list[str]] = {}
    for n in range(USERS):
        username = f"load{n}"
        make_user(app, username)
        with committed(app) as c:
            user = users.get(c, username)
            made[username] = [devices.add_totp(c, TEST_ORIGIN, user, f"{username}-{i}",
                                               device_type="mobile")[1]
                              for i in range(DEVICES)]
    return made


def test_radius_under_load_follows_its_fail_mode_while_postgresql_is_down_and_recovers(
        pg, tmp_path):
    slapd = SlapdServer(tmp_path / "slapd")  # passwords outside the database, for fail-safe
    slapd.start()
    instance = tmp_path / "instance"
    instance.mkdir()
    env = make_env(instance, pg.url, directory="ldap", ldap_url=slapd.url,
                   ldap_base_dn=PEOPLE, ldap_bind_dn=SERVICE_DN,
                   ldap_bind_password=SERVICE_PASSWORD, lockout_threshold="1000")
    app = node = None
    try:
        make_keys(env)
        run_cli(env, "db", "upgrade")
        for name, mode, fail_mode, secret in (("load", "second-factor", "secure", LOAD_SECRET),
                                              ("secure", "append", "secure", SECURE_SECRET),
                                              ("safe", "append", "safe", SAFE_SECRET)):
            run_cli(env, "radius-clients", "add", name, "--address", SOURCE[name], "--secret",
                    secret, "--mode", mode, "--fail-mode", fail_mode)
        app = setup_app(instance, pg.url)
        secrets = load_users(app)
        metrics_port = free_port()
        node = LiveRadius(instance_dir=instance, env=env).start(
            "--metrics-port", str(metrics_port))

        def ask(client: str, username: str, password: str) -> rp.Packet:
            secret = {"secure": SECURE_SECRET, "safe": SAFE_SECRET}[client]
            reply = node.ask(username, password, secret=secret, source=SOURCE[client])
            assert reply is not None, node.log()
            return reply

        answers: list[Answer] = []
        started = time.monotonic()
        end = started + LOAD_SECONDS
        threads = [threading.Thread(target=drive, args=(node, name, keys, end, answers),
                                    daemon=True) for name, keys in secrets.items()]
        for thread in threads:
            thread.start()

        time.sleep(max(0.0, started + STOP_AT - time.monotonic()))
        stopping = time.monotonic()
        pg.stop("immediate")  # a crash: no shutdown checkpoint, recovery from the WAL at start
        stopped = time.monotonic()
        # the fail modes, while the load goes on: secure rejects; safe accepts a correct
        # password alone (LDAP can still check it), and only a correct one
        secure = ask("secure", "alice", f"{PASSWORDS['alice']},123456")
        assert (secure.code, reply_message(secure)) == (rp.AccessReject, ra.UNAVAILABLE)
        degraded = ask("safe", "alice", f"{PASSWORDS['alice']},123456")
        assert (degraded.code, reply_message(degraded)) == (rp.AccessAccept, ra.DEGRADED)
        wrong = ask("safe", "alice", "not-her-password,123456")
        assert (wrong.code, reply_message(wrong)) == (rp.AccessReject, ra.UNAVAILABLE)

        time.sleep(max(0.0, stopped + OUTAGE - time.monotonic()))
        restarting = time.monotonic()
        pg.start()
        restarted = time.monotonic()
        for thread in threads:
            thread.join(timeout=LOAD_SECONDS + 10)
        assert not any(t.is_alive() for t in threads)
        assert node.alive(), node.log()
        log = node.log()

        # every request was answered (a NAS retransmission allowed), none crashed the door
        assert len(answers) >= 200, len(answers)
        dropped = [a for a in answers if a.outcome is None]
        assert not dropped, f"{len(dropped)} of {len(answers)} requests got no answer"
        allowed = {ra.UNAVAILABLE, passcodes.MESSAGES[passcodes.Verdict.REPLAY]}
        odd = [a for a in answers if a.message not in allowed
               and not a.message.startswith("Success. Logged in with ")]
        assert not odd, odd[:5]
        before = [a for a in answers if a.received < stopping]
        assert before and all(a.outcome == rp.AccessAccept for a in before)
        # while it was down: the fail mode (secure: Reject, "temporarily unavailable")
        down = [a for a in answers if a.sent > stopped + 0.5 and a.received < restarting]
        assert len(down) >= 3 * USERS, len(down)
        assert all((a.outcome, a.message) == (rp.AccessReject, ra.UNAVAILABLE) for a in down)
        # back without a restart of the door: accepted again within seconds, and from then on
        accepted_after = [a for a in answers if a.sent > restarting
                          and a.outcome == rp.AccessAccept]
        assert accepted_after, log
        recovery = min(a.received for a in accepted_after) - restarted
        assert recovery < RECOVERY_SECONDS, recovery
        print(f"{len(answers)} requests in {LOAD_SECONDS:.0f} s, {len(down)} during the "
              f"outage; logins accepted again {recovery:.2f} s after PostgreSQL started")
        back = min(a.received for a in accepted_after)
        late = [a for a in answers if a.sent > back]  # once back, it stays back
        assert late and all(a.outcome == rp.AccessAccept for a in late)
        assert "database unavailable for" in log and "Traceback" not in log, log[-3000:]
        assert PASSWORDS["alice"] not in log
        assert "FAIL-SAFE: database unreachable, password only" in log

        # nothing acknowledged is lost: each Access-Accept has its audit record and its used
        # TOTP step, so the same code is refused now
        acknowledged = {(a.username, f"{a.username}-{a.device}"): a for a in answers
                        if a.outcome == rp.AccessAccept}
        assert len(acknowledged) == sum(a.outcome == rp.AccessAccept for a in answers)
        with committed(app) as c:
            audited = c.db.execute(select(AuditEvent.username, AuditEvent.device).where(
                AuditEvent.action == ra.ACTION, AuditEvent.result == "accept",
                AuditEvent.door == "radius")).all()
            steps = dict(c.db.execute(select(Device.name, Device.last_step)).all())
        missing = set(acknowledged) - {tuple(row) for row in audited}
        assert not missing, f"{len(missing)} acknowledged logins have no audit record"
        for (username, device), answer in acknowledged.items():
            secret = secrets[username][answer.device]
            assert steps[device] is not None and totp(secret, steps[device] * 30) == answer.code
        replay_nas = node.client(LOAD_SECRET, SOURCE["load"], timeout=2.0)
        replay_nas.retries = 2
        try:
            for answer in acknowledged.values():
                pkt = replay_nas.CreateAuthPacket(User_Name=answer.username,
                                                  NAS_IP_Address="127.0.0.1")
                pkt["User-Password"] = pkt.PwCrypt(answer.code)
                reply = replay_nas.SendPacket(pkt)
                assert (reply.code, reply_message(reply)) == (
                    rp.AccessReject, passcodes.MESSAGES[passcodes.Verdict.REPLAY])
        finally:
            replay_nas._CloseSocket()

        # fail-safe was for the outage only: now the second factor is asked for again
        normal = ask("safe", "alice", PASSWORDS["alice"])
        assert normal.code == rp.AccessReject and reply_message(normal) != ra.DEGRADED

        scraped = requests.get(f"http://127.0.0.1:{metrics_port}/metrics", timeout=5).text
        assert 'um2fa_radius_answers_total{outcome="reject"}' in scraped
        rejects = next(float(line.split()[-1]) for line in scraped.splitlines()
                       if line.startswith('um2fa_radius_answers_total{outcome="reject"}'))
        assert rejects >= len(down) + len(acknowledged)  # the outage and the replays
    finally:
        if node is not None:
            node.stop()
        if app is not None:
            core.database(app).dispose()
        slapd.stop()


# --- b. the web doors while PostgreSQL is down --------------------------------------------------

def assert_unavailable_page(response: requests.Response) -> None:
    assert response.status_code == 503, (response.status_code, response.text[:500])
    assert response.headers["Content-Type"].startswith("text/html")
    assert "Temporarily unavailable" in response.text and UNAVAILABLE_PAGE in response.text
    assert not any(leak in response.text for leak in LEAKS), response.text


def sso_to_prompt(browser: Browser, sp: TestSP, username: str) -> str:
    """Start a SAML login at the SP and sign in with the password: the AuthnRequest id."""
    url, request_id = sp.login()
    assert browser.session.get(url, allow_redirects=False, timeout=10).headers[
        "Location"] == "/sso/continue"
    assert browser.get("/sso/continue").headers["Location"] == "/sso/sign-in"
    signed = browser.post("/sso/sign-in", {"username": username, "password": PASSWORD},
                          token_from="/sso/sign-in")
    assert signed.headers.get("Location") == "/sso/continue", signed.text[:500]
    assert browser.get("/sso/continue").headers["Location"] == "/sso/prompt"
    return request_id


@dataclass
class WebNode:
    app: object  # in the test's process, on the node's database: set-up and checks
    server: Subprocess
    url: str
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def web_node(pg, tmp_path) -> Iterator[WebNode]:
    """One gunicorn web node on the private PostgreSQL (no Redis: it is not what fails here)."""
    instance = tmp_path / "instance"
    instance.mkdir()
    env = make_env(instance, pg.url, **WEB_SETTINGS)
    make_keys(env)
    run_cli(env, "db", "upgrade")
    app = setup_app(instance, pg.url)
    try:
        server, url = start_web(env, "web", tmp_path)
        try:
            yield WebNode(app, server, url, tmp_path / "web-web.log")
        finally:
            server.stop()
    finally:
        core.database(app).dispose()


def test_web_doors_say_temporarily_unavailable_while_postgresql_is_down_and_recover(
        pg, web_node):
    app, server, web = web_node.app, web_node.server, web_node.url
    pid = server.process.pid
    for name in ("alice", "bob", "carol", "dave"):
        make_user(app, name)
    alice_secret = add_totp_device(app, "alice")[1]
    carol_device, carol_secret = add_totp_device(app, "carol")
    phone = PushDevice.with_url(web)
    assert phone.activate(enrol(app, "dave")).status == 201
    sp = TestSP(idp_metadata=requests.get(web + "/saml/metadata", timeout=10).text)
    register(app, sp)

    # before: alice is signed in fully, bob has the sign-in page open, carol is at the SSO
    # prompt, dave's phone polls
    alice = Browser(web)
    alice.sign_in("alice")
    assert alice.passcode(totp(alice_secret, time.time())).headers.get(
        "Location") == "/prompt/done"
    assert alice.signed_in_fully()
    bob = Browser(web)
    bob_token = bob.token("/")
    carol = Browser(web)
    request_id = sso_to_prompt(carol, sp, "carol")
    prompt_page = carol.get("/sso/prompt")
    assert prompt_page.status_code == 200 and "Enter a Passcode" in prompt_page.text
    carol_token = carol.token("/sso/prompt")
    assert phone.pending() == []

    pg.stop("fast")
    assert_unavailable_page(bob.try_sign_in("bob", token=bob_token))
    assert_unavailable_page(alice.get("/"))  # the portal
    assert_unavailable_page(alice.get("/settings"))
    assert_unavailable_page(carol.get("/sso/prompt"))  # the SSO prompt
    assert_unavailable_page(carol.post("/sso/prompt", {
        "passcode": totp(carol_secret, time.time()), "device": str(carol_device)},
        token=carol_token))
    url, _ = sp.login()  # a new SAML login reaches the IdP
    assert_unavailable_page(carol.session.get(url, allow_redirects=False, timeout=10))
    api = phone.call("GET", "/api/device/v1/requests")  # the device API: JSON
    assert api.status == 503 and api.content_type == "application/json", api.text
    assert api.data == {"error": UNAVAILABLE_PAGE}
    health = requests.get(web + "/healthz", timeout=10)
    assert health.status_code == 503
    assert health.json() == {"status": "unavailable", "database": "unavailable",
                             "redis": "not configured"}

    pg.start()
    # back, without restarting the node
    seconds = wait_until(lambda: requests.get(web + "/healthz", timeout=10)
                         .status_code == 200, RECOVERY_SECONDS)
    assert server.process.poll() is None and server.process.pid == pid
    assert requests.get(web + "/healthz", timeout=10).json()["database"] == "ok"
    # alice's session from before the outage still holds
    home = alice.get("/")
    assert home.status_code == 200 and "Welcome, Alice" in home.text
    assert alice.get("/settings").status_code == 200
    assert alice.signed_in_fully()
    bob.sign_in("bob")
    assert phone.pending() == []
    # carol's SAML login, interrupted at the prompt, finishes
    done = carol.post("/sso/prompt", {"passcode": totp(carol_secret, time.time()),
                                      "device": str(carol_device)}, token_from="/sso/prompt")
    assert done.headers.get("Location") == "/sso/continue", done.text[:500]
    posted = carol.get("/sso/continue").text
    match = SAML_RESPONSE_RE.search(posted)
    assert match, posted[:1000]
    auth = sp.acs_post(match.group(1), request_id)
    assert auth.get_errors() == [] and auth.is_authenticated(), auth.get_last_error_reason()
    assert auth.get_friendlyname_attributes()["uid"] == ["carol"]
    log = web_node.log()
    assert "database unavailable" in log and "Traceback" not in log, log[-3000:]
    print(f"web node healthy again {seconds:.2f} s after PostgreSQL started")


def test_a_commit_cut_off_by_the_outage_is_a_503_and_acknowledges_nothing(pg, web_node):
    """PostgreSQL goes away between a request's work and its commit (held here: COMMIT waits
    for a synchronous standby that does not exist, then PostgreSQL stops). The answer is the
    503 page, not a 500 with a traceback, and the session cookie does not say the second factor
    was passed."""
    app, web = web_node.app, web_node.url
    make_user(app, "alice")
    secret = add_totp_device(app, "alice")[1]
    alice = Browser(web)
    alice.sign_in("alice")
    page = alice.get("/prompt?next=done").text
    device = DEVICE_RE.search(page).group(1)
    token = alice.token("/prompt?next=done")
    code = totp(secret, time.time())

    pg.configure(synchronous_standby_names="nobody")  # every COMMIT now waits
    box: list[requests.Response] = []
    sender = threading.Thread(target=lambda: box.append(alice.post(
        "/prompt", {"next": "done", "device": device, "passcode": code}, token=token)),
        daemon=True)
    sender.start()
    wait_until(lambda: pg.execute("SELECT count(*) FROM pg_stat_activity "
                                  "WHERE wait_event = 'SyncRep'") == [(1,)], 10)
    pg.stop("fast")
    sender.join(timeout=15)
    [cut] = box
    assert_unavailable_page(cut)
    assert cut.headers["Content-Security-Policy"] and cut.headers["X-Request-ID"]

    pg.start()
    pg.reset("synchronous_standby_names")
    wait_until(lambda: requests.get(web + "/healthz", timeout=10).status_code == 200,
               RECOVERY_SECONDS)
    # the cookie alice got back is the one she had, and it says nothing of a second factor.
    # PostgreSQL had committed locally before the standby wait, the session's new id with it
    # (server-side sessions: the old id ended): that cookie is signed in to nothing now, so she
    # signs in again
    assert not alice.signed_in_fully()
    alice.sign_in("alice")
    assert DEVICE_RE.search(alice.get("/prompt?next=done").text)
    # the code stays used, so the unacknowledged login cannot be repeated with it either; the
    # next code signs her in
    again = alice.post("/prompt", {"next": "done", "device": device, "passcode": code},
                       token_from="/prompt?next=done")
    assert again.headers.get("Location") != "/prompt/done"
    assert passcodes.MESSAGES[passcodes.Verdict.REPLAY] in again.text
    assert alice.passcode(totp(secret, time.time() + 30)).headers.get(
        "Location") == "/prompt/done"
    assert alice.signed_in_fully()
    assert "Traceback" not in web_node.log()


# --- c. a web node dies in the middle of a push ---------------------------------------------------

def push_from(browser: Browser) -> str:
    """'Send me a Push' on the prompt: the number to type in the app."""
    sent = browser.post("/prompt/push", {"next": "done"}, token_from="/prompt?next=done")
    assert sent.status_code == 303, sent.text[:500]
    page = browser.get(sent.headers["Location"]).text
    number = NUMBER_RE.search(page)
    assert number, page[:500]
    return number.group(1)


def completes(browser: Browser, timeout: float = 10) -> None:
    """The prompt's push poll (htmx) says the login is done, and it is."""
    deadline = time.monotonic() + timeout
    while True:
        polled = browser.get("/prompt/push?next=done", headers=HX)
        if polled.headers.get("HX-Redirect"):
            break
        assert time.monotonic() < deadline, f"no completion: {polled.status_code} {polled.text}"
        time.sleep(0.2)
    assert polled.status_code == 204 and polled.headers["HX-Redirect"] == "/prompt/done"
    assert browser.signed_in_fully()


def test_a_web_node_killed_mid_push_the_login_completes_on_the_other(pg, tmp_path):
    instance = tmp_path / "instance"
    instance.mkdir()
    settings = {**WEB_SETTINGS, **({"redis_url": REDIS_URL} if REDIS_URL else {})}
    env = make_env(instance, pg.url, **settings)
    other = node_env(env, tmp_path / "b" / "instance")  # node B's machine
    app = None
    started = []
    try:
        make_keys(env)  # node A's; B gets a copy (docs/deploy.md, "3. Shared keys")
        copy_keys(instance, tmp_path / "b" / "instance")
        run_cli(env, "db", "upgrade")
        app = setup_app(instance, pg.url)
        server_a, node_a = start_web(env, "a", tmp_path)
        started.append(server_a)
        server_b, node_b = start_web(other, "b", tmp_path)
        started.append(server_b)
        phones = {}
        for name, phone_node in (("pat", node_a), ("quinn", node_b)):
            make_user(app, name)
            phones[name] = PushDevice.with_url(phone_node)
            assert phones[name].activate(enrol(app, name)).status == 201

        # both sign in on A and ask for a push there
        pat, quinn = Browser(node_a), Browser(node_a)
        pat.sign_in("pat")
        pat_number = push_from(pat)
        quinn.sign_in("quinn")
        quinn_number = push_from(quinn)
        # pat approves while A is up, and A acknowledges it
        request = phones["pat"].wait_for_request(timeout=10)
        assert phones["pat"].approve(request["id"], pat_number).data["status"] == "approved"

        kill_node(server_a)  # a crashed machine: no clean shutdown
        with pytest.raises(requests.ConnectionError):
            requests.get(node_a + "/healthz", timeout=2)

        # quinn's phone sees the push and approves it through B
        request = phones["quinn"].wait_for_request(timeout=10)
        assert request["door"] == "portal"
        assert phones["quinn"].approve(request["id"], quinn_number).data["status"] == "approved"
        # the load balancer sends both browsers (their cookies) to B: both logins complete
        completes(quinn.on(node_b))
        completes(pat.on(node_b))
        health = requests.get(node_b + "/healthz", timeout=10).json()
        assert health["database"] == "ok" and health["redis"] == (
            "ok" if REDIS_URL else "not configured")
    finally:
        for server in reversed(started):
            server.stop()
        if app is not None:
            core.database(app).dispose()


def test_pg_cluster_is_private_and_survives_a_crash(pg):
    """The helper itself: its own port (never 5432), data kept across an immediate stop."""
    import psycopg

    assert pg.port != 5432 and str(pg.base) in str(pg.data)
    with psycopg.connect(pg.url, autocommit=True) as conn:
        conn.execute("CREATE TABLE kept (n int)")
        conn.execute("INSERT INTO kept VALUES (42)")
    pg.stop("immediate")
    assert not pg.running()
    with pytest.raises(psycopg.OperationalError):
        psycopg.connect(pg.url, connect_timeout=2)
    pg.start()
    with psycopg.connect(pg.url) as conn:
        assert conn.execute("SELECT n FROM kept").fetchone() == (42,)
