"""The operators' view (issue 7, item 5): /healthz, /metrics, JSON logs with a request id,
gunicorn with deploy/gunicorn.conf.py, and the RADIUS server's own metrics endpoint."""

from __future__ import annotations

import asyncio
import io
import json
import logging
import os
import socket
import sys
import urllib.request
from contextlib import contextmanager

import pytest
from prometheus_client.parser import text_string_to_metric_families

from app import create_app, migrate
from app.extensions import core
from app.logging_setup import REQUEST_ID_HEADER, configure
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    give_shared_keys,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.peers.live import ROOT, Subprocess, free_port
from tests.peers.push_device import PushDevice, enrol

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
OFF_CAMPUS = {"REMOTE_ADDR": "203.0.113.7"}


def run_apart(coro):
    """asyncio.run in a thread of its own: the browser tests' Playwright keeps an event loop
    running in the main thread for the whole session."""
    import concurrent.futures

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        return pool.submit(asyncio.run, coro).result(timeout=60)


def closed_port() -> int:
    return free_port()  # bound and released: nothing listens there


@pytest.fixture
def other_app(request, tmp_path):
    """A second app factory for apps pointed at dependencies that are down (a node of a shared
    database gets the service's keys, as any node must)."""
    made = []

    def make(**overrides):
        if not overrides.get("database_url", "sqlite").startswith("sqlite"):
            give_shared_keys(request, tmp_path / "other")
        application = create_app({"instance_dir": tmp_path / "other", "testing": True,
                                  **overrides})
        made.append(application)
        return application

    yield make
    for application in made:
        core.database(application).dispose()


def metrics(client, **kwargs) -> dict[tuple[str, tuple], float]:
    response = client.get("/metrics", **kwargs)
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/plain; version=0.0.4")
    samples = {}
    for family in text_string_to_metric_families(response.get_data(as_text=True)):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def value(samples, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@contextmanager
def captured_logs(log_format: str = "json", level: int = logging.DEBUG):
    stream = io.StringIO()
    root = logging.getLogger()
    old_level = root.level
    handler = configure(log_format, level=level, stream=stream)
    try:
        yield stream
    finally:
        root.removeHandler(handler)
        root.setLevel(old_level)


# --- /healthz ---------------------------------------------------------------------------------

def test_healthz_ok_from_anywhere(client):
    for environ in ({}, OFF_CAMPUS):
        response = client.get("/healthz", environ_base=environ)
        assert response.status_code == 200
        assert response.json == {"status": "ok", "database": "ok", "redis": "not configured"}
        assert response.headers[REQUEST_ID_HEADER]


@pytest.mark.parametrize("url", ["postgresql://postgres@127.0.0.1:{port}/none",
                                 "sqlite:////nonexistent-um2fa-dir/{port}/db.sqlite3"])
def test_healthz_503_when_the_database_is_unreachable(other_app, url):
    app = other_app(database_url=url.format(port=closed_port()))
    response = app.test_client().get("/healthz")
    assert response.status_code == 503
    assert response.json == {"status": "unavailable", "database": "unavailable",
                             "redis": "not configured"}
    assert "Traceback" not in response.get_data(as_text=True)


def test_healthz_degraded_when_redis_is_configured_but_down(other_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    migrate.upgrade(url)
    app = other_app(database_url=url, redis_url=f"redis://127.0.0.1:{closed_port()}/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 200  # the node still serves: no reason to take it out
    assert response.json == {"status": "degraded", "database": "ok", "redis": "unavailable"}


@pytest.mark.skipif(not REDIS_URL, reason="UM2FA_TEST_REDIS_URL not set")
def test_healthz_with_redis_up(other_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'h.sqlite3'}"
    migrate.upgrade(url)
    response = other_app(database_url=url, redis_url=REDIS_URL).test_client().get("/healthz")
    assert response.status_code == 200 and response.json["redis"] == "ok"


# --- /metrics ---------------------------------------------------------------------------------

def test_metrics_parse_and_count_a_portal_login_and_an_answered_push(app, client, clock):
    before = metrics(client)
    assert value(before, "um2fa_push_pending") == 0
    assert value(before, "um2fa_push_answer_seconds_count") == 0

    make_user(app)
    _device, secret = add_totp_device(app)
    assert sign_in(client).status_code == 302
    done = post(client, "/prompt", {"next": "done", "passcode": totp_code(secret, clock.now)},
                token_from="/prompt?next=done")
    assert done.status_code in (302, 303)
    after = metrics(client)
    assert value(after, "um2fa_logins_total", door="portal", action="sign_in", result="ok") == 1
    assert value(after, "um2fa_logins_total", door="portal", action="factor", result="ok") == 1

    # a push, answered by the Python phone 3 s after it was sent
    phone = PushDevice.with_client(app.test_client(), clock=clock)
    assert phone.activate(enrol(app, "alice")).status == 201
    browser = app.test_client()
    sign_in(browser)
    sent = post(browser, "/prompt/push", {"next": "done"}, token_from="/prompt?next=done")
    assert sent.status_code == 303
    assert value(metrics(client), "um2fa_push_pending") == 1
    page = browser.get("/prompt/push?next=done").get_data(as_text=True)
    number = page.split('class="passcode-big">', 1)[1][:3]
    clock.advance(3)
    request = phone.wait_for_request(timeout=2)
    assert phone.approve(request["id"], number).data["status"] == "approved"
    browser.get("/prompt/push?next=done", headers={"HX-Request": "true"})  # uses the push

    pushed = metrics(client)
    assert value(pushed, "um2fa_push_pending") == 0
    assert value(pushed, "um2fa_push_answer_seconds_count") == 1
    assert value(pushed, "um2fa_push_answer_seconds_bucket", le="2.0") == 0
    assert value(pushed, "um2fa_push_answer_seconds_bucket", le="5.0") == 1
    assert value(pushed, "um2fa_push_answer_seconds_bucket", le="+Inf") == 1
    assert 3 <= value(pushed, "um2fa_push_answer_seconds_sum") < 4
    assert value(pushed, "um2fa_push_requests_total", status="used") == 1
    assert value(pushed, "um2fa_logins_total", door="portal", action="factor",
                 result="ok") == 2

    # later scrapes fold settled rows into the cache and report the same totals
    clock.advance(3600)
    assert metrics(client) == {**pushed, ("um2fa_push_pending", ()): 0.0}
    # a failed passcode adds to the fail series
    sign_in(browser)
    post(browser, "/prompt", {"next": "done", "passcode": "000000"},
         token_from="/prompt?next=done")
    final = metrics(client)
    assert value(final, "um2fa_logins_total", door="portal", action="factor",
                 result="fail") == 1
    assert value(final, "um2fa_logins_total", door="portal", action="sign_in",
                 result="ok") == 3


def test_metrics_refused_off_the_allowed_networks_without_the_token(other_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'm.sqlite3'}"
    migrate.upgrade(url)
    app = other_app(database_url=url, metrics_token="s3cret-scrape-token",
                    metrics_networks="10.20.0.0/16", trusted_proxies="127.0.0.1/32")
    client = app.test_client()
    assert client.get("/metrics").status_code == 403  # loopback is not listed here
    assert client.get("/metrics", environ_base=OFF_CAMPUS).status_code == 403
    wrong = {"Authorization": "Bearer s3cret-scrape-tokeN"}
    assert client.get("/metrics", headers=wrong, environ_base=OFF_CAMPUS).status_code == 403
    right = {"Authorization": "Bearer s3cret-scrape-token"}
    assert metrics(client, headers=right, environ_base=OFF_CAMPUS)
    assert metrics(client, environ_base={"REMOTE_ADDR": "10.20.3.4"})
    # through the trusted proxy, the client it names is what counts
    via_proxy = {"X-Forwarded-For": "203.0.113.9"}
    assert client.get("/metrics", headers=via_proxy).status_code == 403
    assert metrics(client, headers={"X-Forwarded-For": "10.20.0.5"})


def test_metrics_503_without_a_trace_when_the_database_is_down(other_app):
    app = other_app(database_url=f"postgresql://postgres@127.0.0.1:{closed_port()}/none")
    response = app.test_client().get("/metrics")
    assert response.status_code == 503 and "Traceback" not in response.get_data(as_text=True)


# --- the request id and JSON logs -------------------------------------------------------------

def test_request_id_from_a_trusted_proxy_only(other_app, tmp_path):
    url = f"sqlite:///{tmp_path / 'r.sqlite3'}"
    migrate.upgrade(url)
    client = other_app(database_url=url, trusted_proxies="127.0.0.1/32").test_client()
    given = "req-0123456789abcdef"
    trusted = client.get("/healthz", headers={REQUEST_ID_HEADER: given})
    assert trusted.headers[REQUEST_ID_HEADER] == given
    for header in ("short", "bad id with spaces", "x" * 200, "<script>alert(1)</script>"):
        odd = client.get("/healthz", headers={REQUEST_ID_HEADER: header})
        assert odd.headers[REQUEST_ID_HEADER] != header
    untrusted = client.get("/healthz", headers={REQUEST_ID_HEADER: given},
                           environ_base=OFF_CAMPUS)
    generated = untrusted.headers[REQUEST_ID_HEADER]
    assert generated != given and len(generated) == 32
    assert client.get("/healthz").headers[REQUEST_ID_HEADER] != generated


def test_json_log_lines_carry_the_request_id_and_audit_fields(app, client):
    make_user(app)
    with captured_logs("json") as stream:
        response = sign_in(client)
    request_id = response.headers[REQUEST_ID_HEADER]
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    audit = [line for line in lines if line["logger"] == "um2fa.audit"]
    assert len(audit) == 1
    assert audit[0]["request_id"] == request_id
    assert audit[0]["audit"] == "sign_in" and audit[0]["result"] == "ok"
    assert audit[0]["user"] == "alice" and audit[0]["door"] == "portal"
    assert audit[0]["level"] == "INFO" and audit[0]["time"].endswith("+00:00")
    assert audit[0]["message"] == "sign_in ok"


def test_text_log_lines_carry_the_request_id(app, client):
    make_user(app)
    with captured_logs("text") as stream:
        response = sign_in(client)
    line = next(line for line in stream.getvalue().splitlines() if "um2fa.audit" in line)
    assert f"[{response.headers[REQUEST_ID_HEADER]}]" in line


def test_passwords_and_passcodes_never_reach_the_log(app, client, clock):
    make_user(app)
    _device, secret = add_totp_device(app)
    wrong_password = "Wrong-Horse-77"
    code = totp_code(secret, clock.now)
    with captured_logs("json") as stream:
        sign_in(client, password=wrong_password)
        sign_in(client)
        post(client, "/prompt", {"next": "done", "passcode": "123450"},
             token_from="/prompt?next=done")
        post(client, "/prompt", {"next": "done", "passcode": code},
             token_from="/prompt?next=done")
    logged = stream.getvalue()
    assert "sign_in" in logged and "factor" in logged  # the steps were logged...
    for secret_text in (PASSWORD, wrong_password, code, "123450", secret):
        assert secret_text not in logged  # ...their secrets were not


# --- gunicorn ---------------------------------------------------------------------------------

def test_gunicorn_serves_healthz_with_the_deploy_config(tmp_path):
    url = f"sqlite:///{tmp_path / 'g.sqlite3'}"
    migrate.upgrade(url)
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    env.update({"UM2FA_INSTANCE_DIR": str(tmp_path / "instance"), "UM2FA_DATABASE_URL": url,
                "UM2FA_BIND": f"127.0.0.1:{port}", "UM2FA_WORKERS": "2",
                "UM2FA_LOG_FORMAT": "json", "PYTHONUNBUFFERED": "1"})
    server = Subprocess()
    log_path = tmp_path / "gunicorn.log"
    server.spawn([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                 env=env, log_path=log_path, ready_url=f"http://127.0.0.1:{port}/healthz",
                 cwd=ROOT)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as reply:  # noqa: S310
            assert reply.status == 200
            assert json.loads(reply.read()) == {"status": "ok", "database": "ok",
                                                "redis": "not configured"}
            request_id = reply.headers[REQUEST_ID_HEADER]
    finally:
        server.stop()
    lines = [json.loads(line) for line in log_path.read_text().splitlines()
             if line.startswith("{")]
    access = [line for line in lines if line["logger"] == "gunicorn.access"
              and line.get("request_id") == request_id]
    assert len(access) == 1 and access[0]["path"] == "/healthz" and access[0]["status"] == 200


# --- the RADIUS server's own metrics ----------------------------------------------------------

def http_get(port: int, path: str, headers: dict | None = None) -> tuple[int, str]:
    request = urllib.request.Request(f"http://127.0.0.1:{port}{path}", headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:  # noqa: S310
            return reply.status, reply.read().decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def test_radius_metrics_endpoint(app):
    from radius.metrics import start_metrics_server
    from radius.server import RadiusServer

    async def scenario() -> dict:
        server = RadiusServer(core.services(app), host="127.0.0.1", port=0)
        host, port = await server.start()
        endpoint = await start_metrics_server(server, "127.0.0.1", 0, token="radius-token",
                                              networks=())
        metrics_port = endpoint.sockets[0].getsockname()[1]
        loop = asyncio.get_running_loop()
        try:
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                sock.sendto(b"\x01\x01\x00\x14" + b"\x00" * 16, (host, port))  # no client
            for _ in range(100):
                if server.stats["received"]:
                    break
                await asyncio.sleep(0.01)

            def scrape() -> dict:
                results = {"health": http_get(metrics_port, "/healthz"),
                           "refused": http_get(metrics_port, "/metrics"),
                           "other": http_get(metrics_port, "/admin"),
                           "metrics": http_get(metrics_port, "/metrics",
                                               {"Authorization": "Bearer radius-token"})}
                with socket.create_connection(("127.0.0.1", metrics_port), timeout=5) as raw:
                    raw.sendall(b"GET /metrics HTTP/1.1\r\nX-Junk: " + b"a" * 20000)
                    results["huge"] = raw.recv(100)
                return results

            return await loop.run_in_executor(None, scrape)
        finally:
            endpoint.close()
            await endpoint.wait_closed()
            await server.stop()

    results = run_apart(scenario())
    status, body = results["health"]
    assert status == 200 and json.loads(body)["status"] == "ok"
    assert results["refused"][0] == 403 and results["other"][0] == 404
    assert results["huge"].startswith(b"HTTP/1.1 400")
    status, body = results["metrics"]
    assert status == 200
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(body) for s in family.samples}
    assert samples[("um2fa_radius_requests_received_total", ())] == 1
    assert samples[("um2fa_radius_dropped_total", (("reason", "unknown client"),))] == 1
    assert samples[("um2fa_radius_answers_total", (("outcome", "accept"),))] == 0
    assert samples[("um2fa_radius_in_flight", ())] == 0
    assert ("um2fa_radius_retransmit_cache_entries", ()) in samples


def test_radius_metrics_takes_the_next_free_port_for_another_process(app):
    from radius.metrics import start_metrics_server
    from radius.server import RadiusServer

    held = socket.socket()
    for _ in range(20):  # a port whose next one is free too
        port = free_port()
        try:
            held.bind(("127.0.0.1", port))
        except OSError:
            continue
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port + 1))
                break
            except OSError:
                held.close()
                held = socket.socket()
    held.listen()

    async def scenario() -> int:
        server = RadiusServer(core.services(app), host="127.0.0.1", port=0)
        endpoint = await start_metrics_server(server, "127.0.0.1", port, ports=2)
        try:
            return endpoint.sockets[0].getsockname()[1]
        finally:
            endpoint.close()
            await endpoint.wait_closed()

    try:
        assert run_apart(scenario()) == port + 1
        with pytest.raises(OSError):
            run_apart(start_metrics_server(None, "127.0.0.1", port, ports=1))
    finally:
        held.close()
