"""Several nodes on one PostgreSQL and one Redis (issue 7, item 1): two web nodes under gunicorn
(deploy/gunicorn.conf.py) and two `um2fa radius` nodes, each a process of its own on 127.0.0.1,
on two "machines": the first's keys made by `um2fa keys generate`, the second's a copy of them
(docs/deploy.md, "3. Shared keys"). Nothing another node needs may live in one process:
a push started on one node is answered on another, a used TOTP code, the lockout counter and a
RADIUS challenge's State are seen by every node.

Needs UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL (.ci/run sets both).
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
if not (PG_URL and REDIS_URL):
    pytest.skip("multi-node tests need UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL",
                allow_module_level=True)

import requests  # noqa: E402
from pyrad import packet as rp  # noqa: E402
from pyrad.client import Timeout  # noqa: E402

from app import create_app  # noqa: E402
from app.core import users  # noqa: E402
from app.extensions import core  # noqa: E402
from tests.conftest import PASSWORD, committed, make_user  # noqa: E402
from tests.helpers.multinode import (  # noqa: E402
    FANOUT_POLL_SECONDS,
    LOCKOUT_THRESHOLD,
    SETTINGS,
    Cluster,
    current_code,
    user_with_totp,
    wrong_code,
)
from tests.peers.live_radius import LiveRadius, make_env, reply_message  # noqa: E402
from tests.peers.nodes import (  # noqa: E402
    HX,
    NUMBER_RE,
    Browser,
    copy_keys,
    drop_schema,
    fresh_schema,
    make_keys,
    node_env,
    radius_metric,
    run_cli,
    start_radius,
    start_web,
)
from tests.peers.push_device import PushDevice, enrol  # noqa: E402

SECRETS = {"append": "append-secret-0123456789", "challenge": "challenge-secret-0123456789"}
SOURCE = {"append": "127.0.0.1", "challenge": "127.0.0.2"}


@pytest.fixture(scope="module")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    base = tmp_path_factory.mktemp("multinode")
    instance = base / "first" / "instance"
    instance.mkdir(parents=True)
    schema, url = fresh_schema(PG_URL)
    env = make_env(instance, url, **SETTINGS)
    second = node_env(env, base / "second" / "instance")  # the other machine
    started: list = []
    app = None
    try:
        make_keys(env)  # on the first machine; the second gets a copy before its nodes start
        copy_keys(instance, Path(second["UM2FA_INSTANCE_DIR"]))
        run_cli(env, "db", "upgrade")
        for mode in ("append", "challenge"):
            run_cli(env, "radius-clients", "add", mode, "--address", SOURCE[mode],
                    "--secret", SECRETS[mode], "--mode", mode)
        app = create_app({"instance_dir": instance, "database_url": url, **SETTINGS,
                          "lockout_threshold": LOCKOUT_THRESHOLD})
        web = []
        for name, machine in (("a", env), ("b", second)):
            server, web_url = start_web(machine, name, base)
            started.append(server)
            web.append(web_url)
        radius = []
        for name, machine in (("1", env), ("2", second)):
            node = start_radius(machine, Path(machine["UM2FA_INSTANCE_DIR"]), name)
            started.append(node)
            radius.append(node)
        for web_url in web:  # each web node reaches the shared database and Redis
            health = requests.get(web_url + "/healthz", timeout=10)
            assert health.json() == {"status": "ok", "database": "ok", "redis": "ok"}, health.text
        yield Cluster(app=app, web=web, radius=radius)
    finally:
        for process in reversed(started):
            process.stop()
        if app is not None:
            core.database(app).dispose()
        drop_schema(PG_URL, schema)


def user_with_phone(cluster: Cluster, username: str, node: str) -> PushDevice:
    make_user(cluster.app, username)
    phone = PushDevice.with_url(node)
    reply = phone.activate(enrol(cluster.app, username))
    assert reply.status == 201, reply.text
    return phone


def ask_in_background(node: LiveRadius, username: str, password: str, *, mode: str,
                      timeout: float) -> tuple[threading.Thread, list]:
    box: list = []

    def run() -> None:
        nas = node.client(SECRETS[mode], SOURCE[mode], timeout)
        nas.retries = 1
        pkt = nas.CreateAuthPacket(User_Name=username, NAS_IP_Address="127.0.0.1",
                                   Calling_Station_Id="203.0.113.7")
        pkt["User-Password"] = pkt.PwCrypt(password)
        try:
            box.append(nas.SendPacket(pkt))
        except Timeout:
            box.append(None)
        finally:
            nas._CloseSocket()

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    return thread, box


def is_locked(cluster: Cluster, username: str) -> bool:
    with committed(cluster.app) as c:
        return users.get(c, username).locked_at is not None


# --- the tests ---------------------------------------------------------------------------------

def test_push_started_on_a_and_approved_on_b_completes_on_a(cluster):
    node_a, node_b = cluster.web
    phone = user_with_phone(cluster, "alice", node_b)
    browser = Browser(node_a)
    browser.sign_in("alice")
    sent = browser.post("/prompt/push", {"next": "done"}, token_from="/prompt?next=done")
    assert sent.status_code == 303, sent.text[:500]
    page = browser.get(sent.headers["Location"]).text
    number = NUMBER_RE.search(page)
    assert number, page[:500]

    request = phone.wait_for_request(timeout=10)  # through node B
    assert request["door"] == "portal"
    assert phone.approve(request["id"], number.group(1)).data["status"] == "approved"

    deadline = time.monotonic() + 10
    while True:
        polled = browser.get("/prompt/push?next=done", headers=HX)  # through node A
        if polled.headers.get("HX-Redirect"):
            break
        assert time.monotonic() < deadline, "node A never saw the approval made on node B"
        time.sleep(0.2)
    assert polled.status_code == 204 and polled.headers["HX-Redirect"] == "/prompt/done"
    assert browser.signed_in_fully()


def test_radius_push_wait_ends_when_the_answer_reaches_a_web_node(cluster):
    """Through Redis fan-out: the RADIUS node polls the database only once a minute here."""
    node_a, _ = cluster.web
    phone = user_with_phone(cluster, "bob", node_a)
    for radius in cluster.radius:
        assert radius_metric(radius, "um2fa_radius_push_fanout_subscribed") == 1
        lookups = radius_metric(radius, "um2fa_radius_push_lookups")
        thread, box = ask_in_background(radius, "bob", f"{PASSWORD},push", mode="append",
                                        timeout=20)
        request = phone.wait_for_request(timeout=10)
        assert request["door"] == "radius"
        started = time.monotonic()
        assert phone.approve(request["id"]).status == 200
        thread.join(timeout=25)
        assert not thread.is_alive()
        [reply] = box
        assert reply is not None and reply.code == rp.AccessAccept, radius.log()
        assert reply_message(reply).startswith("Success. Logged in with a push to ")
        assert time.monotonic() - started < FANOUT_POLL_SECONDS / 10, radius.log()
        # one look when the wait began, one when the answer was announced: no polling
        assert radius_metric(radius, "um2fa_radius_push_lookups") - lookups <= 2


def test_a_totp_code_used_on_one_node_is_refused_on_the_others(cluster):
    node_a, node_b = cluster.web
    secret = user_with_totp(cluster, "carol")
    code = current_code(secret)

    first = Browser(node_a)
    first.sign_in("carol")
    used = first.passcode(code)
    assert used.headers.get("Location") == "/prompt/done", used.text[:500]
    assert first.signed_in_fully()

    second = Browser(node_b)
    second.sign_in("carol")
    again = second.passcode(code)
    assert again.headers.get("Location") != "/prompt/done"
    assert not second.signed_in_fully()

    for radius in cluster.radius:
        reply = radius.ask("carol", f"{PASSWORD},{code}", secret=SECRETS["append"],
                           source=SOURCE["append"])
        assert reply is not None and reply.code == rp.AccessReject, radius.log()


def test_the_lockout_counter_is_shared(cluster):
    node_a, node_b = cluster.web
    secret = user_with_totp(cluster, "dave")
    bad = wrong_code(secret)
    for node in (node_a, node_b):  # one failure on each web node
        browser = Browser(node)
        browser.sign_in("dave")
        assert browser.passcode(bad).headers.get("Location") != "/prompt/done"
    assert not is_locked(cluster, "dave")
    for radius in cluster.radius:  # and one on each RADIUS node: four in all
        reply = radius.ask("dave", f"{PASSWORD},{bad}", secret=SECRETS["append"],
                           source=SOURCE["append"])
        assert reply is not None and reply.code == rp.AccessReject, radius.log()
    assert is_locked(cluster, "dave")
    # locked everywhere now: no sign-in on either web node, the right code refused by RADIUS
    for node in (node_a, node_b):
        refused = Browser(node).try_sign_in("dave")
        assert refused.status_code == 401 and "cannot sign in" in refused.text
    code = current_code(secret)
    reply = cluster.radius[0].ask("dave", f"{PASSWORD},{code}", secret=SECRETS["append"],
                                  source=SOURCE["append"])
    assert reply is not None and reply.code == rp.AccessReject


def test_a_challenge_state_from_one_radius_node_is_accepted_by_the_other(cluster):
    secret = user_with_totp(cluster, "erin")
    first, second = cluster.radius
    challenge = first.ask("erin", PASSWORD, secret=SECRETS["challenge"],
                          source=SOURCE["challenge"])
    assert challenge is not None and challenge.code == rp.AccessChallenge, first.log()
    [state] = challenge["State"]
    reply = second.ask("erin", current_code(secret), secret=SECRETS["challenge"],
                       source=SOURCE["challenge"], state=state)
    assert reply is not None and reply.code == rp.AccessAccept, second.log()
    # answered once: the same State is refused on either node now
    replay = first.ask("erin", current_code(secret), secret=SECRETS["challenge"],
                       source=SOURCE["challenge"], state=state)
    assert replay is not None and replay.code == rp.AccessReject
