"""Push wait benchmark (issue 17, point 6): how soon a login page moves on after "Approve", and
what 1,000 pages waiting for their pushes at once cost the web node.

    .venv/bin/python -m benchmarks.push_wait [--trials 30] [--streams 1000] [--duration 10]
                                             [--concurrency 4] [--workers 2] [--threads 4]
                                             [--skip-latency] [--skip-waiting] [--json FILE]

(a) Approve -> the page complete. Debian's Chromium (Playwright) signs in to the portal on a
    gunicorn node (deploy/gunicorn.conf.py), opens the prompt and presses "Send me a Push"; a
    Python phone (tests/peers/push_device.py, the companion app's side of the device API)
    finds the request, waits a random 0-1 s (a person reading the number; it also spreads the
    approval over the page's poll phase) and approves. Timed from the approve POST sent to (1)
    the end of the page's status GET that answers "done" (204 + HX-Redirect; the browser's own
    timing) and (2) /prompt/done loaded (its loadEventEnd). --trials per configuration:
    "polling" (UM2FA_PUSH_EVENTS_URL=off: the page asks every second), "stream, database"
    (`um2fa push-events`, which asks the database every 0.25 s; no Redis anywhere) and
    "stream, Redis" (the push fan-out tells it at once). The page reaches the event server
    directly on its own port (UM2FA_PUSH_EVENTS_URL): nginx would add one local hop.

(b) 1,000 waiting pages. A closed loop of --concurrency GET /prompt?next=done (the prompt page:
    a signed-in session, the database, a template) against the node for --duration s, four
    times: with no page waiting; with --streams event streams open on `um2fa push-events` (each
    with the watch token of a real pending push, held by one asyncio client); the same plus
    the status GETs those pages still make while their stream is open (one per page per 30 s:
    static/js/push-wait.js); and, once every one of those pushes has been approved (through
    core, one commit each, announced on Redis as the device API does: the time until each
    stream says "answered" is taken), with no page waiting again (the machine's drift).
    Reported: the ordinary requests' rate and p50/p95/p99, gunicorn's
    CPU per request, the event server's RSS and CPU with the streams held, what 1,000 pages
    polling every second would have cost instead.

PostgreSQL (a fresh schema, dropped at the end) and Redis on this machine; everything on
127.0.0.1; every loop is bounded. Results and how to read them: docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import platform
import random
import re
import secrets
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import clean_up, fresh_schema, percentile
from benchmarks.procs import Proc
from benchmarks.web_nodes import (
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    HIGH_LIMIT,
    RATE_LIMITS,
    Node,
    check_services,
    free_port,
    masked,
    start_node,
)

ROOT = Path(__file__).resolve().parent.parent
UM2FA = str(Path(sys.executable).with_name("um2fa"))
PASSWORD = "bench-push-password-1"  # noqa: S105 - the benchmark users' password
SAFETY_POLL_SECONDS = 30  # static/js/push-wait.js: SAFETY_POLL_MS
CONNECTS_AT_ONCE = 100  # streams being opened at the same time
HX = {"HX-Request": "true"}
# every rate limit out of the way ("Send me a Push" counts as a passcode attempt)
LIMITS = (*RATE_LIMITS, "signin_user_ceiling", "passcode_user_ceiling", "recovery_user_ceiling")


def ms(seconds: float) -> float:
    return round(seconds * 1000, 1)


def summary(values: list[float]) -> dict[str, float]:
    data = sorted(values)
    return {"n": len(data), "p50_ms": ms(percentile(data, 0.5)),
            "p95_ms": ms(percentile(data, 0.95)), "p99_ms": ms(percentile(data, 0.99)),
            "max_ms": ms(data[-1]) if data else 0.0}


# --- processes ---------------------------------------------------------------------------------

def wait_until_up(proc: Proc, url: str, seconds: float = 40.0) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.process.poll() is not None:
            raise SystemExit(f"{proc.name} exited:\n"
                             f"{proc.log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2):  # noqa: S310 - 127.0.0.1
                return
        except OSError:
            time.sleep(0.1)
    proc.stop()
    raise SystemExit(f"{proc.name} did not start in {seconds:.0f} s")


def start_events(env: dict[str, str], workdir: Path, name: str, port: int) -> Proc:
    log = workdir / f"events-{name}.log"
    process = subprocess.Popen([UM2FA, "push-events", "--port", str(port)], env=env,
                               cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
                               stdin=subprocess.DEVNULL, start_new_session=True)
    proc = Proc(f"push-events ({name})", process, port, log, group=True)
    wait_until_up(proc, f"http://127.0.0.1:{port}/healthz")
    return proc


def events_health(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5) as r:  # noqa: S310
        return r.read().decode()


@dataclass
class Config:
    name: str
    redis: bool
    stream: bool


CONFIGS = [Config("polling", redis=True, stream=False),
           Config("stream, database", redis=False, stream=True),
           Config("stream, Redis", redis=True, stream=True)]


@dataclass
class Servers:
    node: Node
    events: Proc | None
    events_port: int
    env: dict[str, str]

    def stop(self) -> None:
        if self.events is not None:
            self.events.stop()
        self.node.stop()


def start_servers(config: Config, base_env: dict[str, str], args: argparse.Namespace,
                  database_url: str, workdir: Path, tag: str) -> Servers:
    events_port = free_port()
    env = dict(base_env)
    if config.redis:
        env["UM2FA_REDIS_URL"] = args.redis_url
    env["UM2FA_PUSH_EVENTS_URL"] = (f"http://127.0.0.1:{events_port}/push/events"
                                    if config.stream else "off")
    slug = config.name.replace(", ", "-").replace(" ", "-")
    node = start_node(slug, env, database_url, args.workers, args.threads, workdir, tag)
    events = None
    if config.stream:
        try:
            events = start_events({**env, "UM2FA_DATABASE_URL": database_url}, workdir, slug,
                                  events_port)
        except BaseException:
            node.stop()
            raise
    return Servers(node, events, events_port, env)


# --- the bench's own core: users, phones, pushes -----------------------------------------------

@contextmanager
def core_context(settings: dict) -> Iterator:
    """A core Context on the servers' database and instance keys (as the tests' server_core)."""
    from app import create_app
    from app.extensions import core

    app = create_app(settings)
    try:
        with app.app_context():
            ctx = core.context()
            yield ctx
            ctx.db.commit()
    finally:
        core.database(app).dispose()


def add_user(env: dict[str, str], username: str) -> None:
    subprocess.run([UM2FA, "users", "add", username, "--password", PASSWORD, "--dob",
                    "2001-02-03", "--id-last4", "123A", "--name", username.title()],
                   env=env, cwd=ROOT, check=True, capture_output=True, timeout=120,
                   stdin=subprocess.DEVNULL)


def activation_code(settings: dict, username: str) -> str:
    from app.core import devices, push, users
    from app.core.context import Origin

    with core_context(settings) as ctx:
        device = devices.begin_enrolment(ctx, Origin("portal", "127.0.0.1"),
                                         users.get(ctx, username), "mobile", "android",
                                         kind="push")
        return push.new_activation(ctx, device)


# --- (a) approve -> page complete --------------------------------------------------------------

@dataclass
class Trial:
    config: str
    to_status_done: float  # s, approve POST sent -> the status GET's answer "done" received
    to_page_complete: float  # s, approve POST sent -> /prompt/done loaded
    status_asks: int  # the page's status GETs (XHR) sent after the approval was
    approve: float  # s, the approve POST (the device API's answer, committed and announced)
    ask_started: float  # s, approve POST sent -> the status GET that answered "done" sent
    ask: float  # s, that status GET (finishing the login on the node)
    navigation: float  # s, its answer -> /prompt/done loaded (HX-Redirect, the page, its load)


def run_trials(config: Config, servers: Servers, browser, phone, trials: int,
               rng: random.Random) -> list[Trial]:
    from playwright.sync_api import expect

    base = f"http://127.0.0.1:{servers.node.port}"
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    page = context.new_page()
    asks: list = []
    page.on("request", lambda r: r.resource_type == "xhr" and "/prompt/push?" in r.url
            and asks.append(r))
    results: list[Trial] = []
    try:
        page.goto(base + "/")
        page.get_by_label("UMPASS ID").fill("alice")
        page.get_by_label("UMPASS password").fill(PASSWORD)
        page.get_by_role("button", name="Sign in").click()
        expect(page.get_by_role("heading", name="Welcome, Alice")).to_be_visible(timeout=30000)
        for n in range(trials):
            asks.clear()
            page.goto(base + "/prompt?next=done")
            page.get_by_role("button", name="Send me a Push").click()
            number = page.locator("#push-status .passcode-big")
            expect(number).to_have_text(re.compile(r"^\d{3}$"), timeout=10000)
            if config.stream:
                deadline = time.monotonic() + 10
                while "streams=1 " not in events_health(servers.events_port):
                    if time.monotonic() > deadline:
                        raise SystemExit(f"{config.name}: the page's stream never opened")
                    page.wait_for_timeout(20)
            request = phone.wait_for_request(timeout=10, interval=0.1)
            page.wait_for_timeout(rng.uniform(0, 1000))
            sent = time.time()
            reply = phone.approve(request["id"], number.inner_text())
            acked = time.time()
            if reply.status != 200:
                raise SystemExit(f"{config.name}: the approval failed: {reply.status}")
            page.wait_for_url("**/prompt/done", wait_until="load", timeout=15000)
            loaded = page.evaluate("performance.timeOrigin + "
                                   "performance.getEntriesByType('navigation')[0].loadEventEnd")
            if n == 0:  # static files are served "no-cache": each page asks for them again
                fetched = page.evaluate("performance.getEntriesByType('resource')"
                                        ".filter(e => e.transferSize > 0).length")
                print(f"  the done page asked the node for {fetched} static files again",
                      flush=True)
            done_at = asked_at = None
            for ask in asks:
                response = ask.response()
                if response is not None and response.status == 204:
                    timing = ask.timing
                    asked_at = timing["startTime"] / 1000
                    done_at = (timing["startTime"] + timing["responseEnd"]) / 1000
            if done_at is None or asked_at is None:
                raise SystemExit(f"{config.name}: no status GET answered done")
            after = sum(1 for ask in asks if ask.timing["startTime"] / 1000 >= sent)
            results.append(Trial(config.name, done_at - sent, loaded / 1000 - sent, after,
                                 acked - sent, asked_at - sent, done_at - asked_at,
                                 loaded / 1000 - done_at))
            print(f"  {config.name} #{n + 1}: status done {ms(done_at - sent):.0f} ms, "
                  f"page complete {ms(loaded / 1000 - sent):.0f} ms", flush=True)
    finally:
        context.close()
    return results


def latency(args: argparse.Namespace, base_env: dict[str, str], settings: dict, url: str,
            workdir: Path, tag: str) -> dict:
    from playwright.sync_api import sync_playwright

    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS
    from tests.peers.push_device import PushDevice

    rng = random.Random(7)  # noqa: S311 - a benchmark's spread, not a secret
    out: dict = {}
    phone = None
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS,
                                     headless=True)
        try:
            for config in CONFIGS:
                servers = start_servers(config, base_env, args, url, workdir, tag)
                try:
                    base = f"http://127.0.0.1:{servers.node.port}"
                    if phone is None:
                        phone = PushDevice.with_url(base)
                        reply = phone.activate(activation_code(settings, "alice"))
                        if reply.status != 201:
                            raise SystemExit(f"the phone's activation failed: {reply.status}")
                    phone.transport.base_url = base  # the same phone, this node
                    load = [round(v, 2) for v in os.getloadavg()]
                    trials = run_trials(config, servers, browser, phone, args.trials, rng)
                finally:
                    servers.stop()
                out[config.name] = {
                    "load_at_start": load,
                    "to_status_done": summary([t.to_status_done for t in trials]),
                    "to_page_complete": summary([t.to_page_complete for t in trials]),
                    "parts_p50_ms": {part: summary([getattr(t, part) for t in trials])["p50_ms"]
                                     for part in ("approve", "ask_started", "ask",
                                                  "navigation")},
                    "status_asks_after_approve": sorted(t.status_asks for t in trials)}
        finally:
            browser.close()
    return out


# --- (b) 1,000 waiting pages -------------------------------------------------------------------

class Streams:
    """`count` waiting pages' event streams, held by one asyncio client on a thread."""

    def __init__(self, port: int, tokens: dict[str, str]) -> None:
        self.port = port
        self.tokens = tokens  # push id -> token
        self.opened = 0
        self.failed: list[str] = []
        self.heard: dict[str, float] = {}  # push id -> when "answered" arrived (time.time())
        self.ready = threading.Event()
        self.loop: asyncio.AbstractEventLoop | None = None
        self._thread = threading.Thread(target=asyncio.run, args=(self._main(),), daemon=True)

    def start(self, timeout: float = 60.0) -> None:
        self._thread.start()
        if not self.ready.wait(timeout):
            raise SystemExit(f"only {self.opened} of {len(self.tokens)} streams opened")
        if self.failed:
            raise SystemExit(f"{len(self.failed)} streams failed: {self.failed[:3]}")

    def join(self, timeout: float) -> None:
        self._thread.join(timeout)

    async def _main(self) -> None:
        import aiohttp

        self.loop = asyncio.get_running_loop()
        gate = asyncio.Semaphore(CONNECTS_AT_ONCE)
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        timeout = aiohttp.ClientTimeout(total=None, sock_read=None)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:
            await asyncio.gather(*(self._one(session, gate, push_id, token)
                                   for push_id, token in self.tokens.items()))

    async def _one(self, session, gate: asyncio.Semaphore, push_id: str, token: str) -> None:
        url = f"http://127.0.0.1:{self.port}/push/events"
        try:
            async with gate:
                response = await session.get(url, params={"token": token})
                if response.status != 200:
                    self.failed.append(f"{response.status}")
                    return
                await response.content.readuntil(b"\n\n")
            self.opened += 1
            if self.opened == len(self.tokens):
                self.ready.set()
            async with response:
                async for line in response.content:
                    if line.startswith(b"event: answered"):
                        self.heard[push_id] = time.time()
                        return
        except Exception as exc:  # noqa: BLE001 - counted, and the run fails
            self.failed.append(type(exc).__name__)
            if self.opened + len(self.failed) >= len(self.tokens):
                self.ready.set()


@dataclass
class LoadResult:
    phase: str
    seconds: float
    requests: int
    failures: int
    rate: float
    latency: dict[str, float]
    safety_polls: int
    safety_latency: dict[str, float]
    node_cpu_ms_per_request: float
    events_cpu_ms_per_s: float
    load_average: list[float] = field(default_factory=list)


class Client:
    """One keep-alive HTTP/1.1 connection with the session's cookie."""

    def __init__(self, port: int, cookie: str) -> None:
        self.port, self.cookie = port, cookie
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)

    def get(self, path: str, headers: dict[str, str] | None = None) -> tuple[int, bytes]:
        try:
            self.conn.request("GET", path, headers={"Cookie": self.cookie, **(headers or {})})
            response = self.conn.getresponse()
            return response.status, response.read()
        except (OSError, http.client.HTTPException):
            self.conn.close()
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
            return 0, b""


def http_sign_in(port: int, username: str) -> str:
    """A signed-in session over HTTP: its cookie header."""
    import requests

    session = requests.Session()
    base = f"http://127.0.0.1:{port}"
    page = session.get(base + "/", timeout=30).text
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    reply = session.post(base + "/sign-in", data={"csrf_token": token, "username": username,
                                           "password": PASSWORD}, timeout=60,
                         allow_redirects=False)
    if reply.status_code not in (302, 303):
        raise SystemExit(f"sign-in of {username} failed: {reply.status_code}")
    return "; ".join(f"{c.name}={c.value}" for c in session.cookies)


def send_push_over_http(port: int, cookie: str) -> None:
    """ "Send me a Push" for this session (its status GETs then find a pending push)."""
    client = Client(port, cookie)
    status, page = client.get("/prompt?next=done")
    token = re.search(rb'"X-CSRFToken": "([^"]+)"', page).group(1).decode()
    body = f"csrf_token={token}&next=done"
    client.conn.request("POST", "/prompt/push", body=body, headers={
        "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded"})
    response = client.conn.getresponse()
    response.read()
    if response.status != 303:
        raise SystemExit(f"Send me a Push failed: {response.status}")


def load_phase(name: str, servers: Servers, cookie: str, poll_cookie: str, *,
               concurrency: int, seconds: float, safety_rate: float) -> LoadResult:
    """A closed loop of `concurrency` prompt-page GETs for `seconds`, with `safety_rate` status
    GETs a second beside it (the waiting pages' safety polls)."""
    port = servers.node.port
    latencies: list[float] = []
    safety: list[float] = []
    failures = [0]
    lock = threading.Lock()
    end = time.monotonic() + seconds

    def worker() -> None:
        client = Client(port, cookie)
        while time.monotonic() < end:
            started = time.monotonic()
            status, _ = client.get("/prompt?next=done")
            took = time.monotonic() - started
            with lock:
                if status == 200:
                    latencies.append(took)
                else:
                    failures[0] += 1

    def poller() -> None:
        client = Client(port, poll_cookie)
        next_at = time.monotonic()
        while safety_rate > 0 and time.monotonic() < end:
            next_at += 1 / safety_rate
            started = time.monotonic()
            status, _ = client.get("/prompt/push?next=done", HX)
            with lock:
                if status == 200:
                    safety.append(time.monotonic() - started)
                else:
                    failures[0] += 1
            time.sleep(max(0.0, next_at - time.monotonic()))

    node_cpu = servers.node.cpu_seconds()
    events_cpu = servers.events.cpu_seconds() if servers.events else 0.0
    began = time.monotonic()
    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    threads.append(threading.Thread(target=poller))
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 60)
    took = time.monotonic() - began
    node_cpu = servers.node.cpu_seconds() - node_cpu
    events_cpu = (servers.events.cpu_seconds() - events_cpu) if servers.events else 0.0
    served = len(latencies) + len(safety)
    return LoadResult(name, round(took, 2), len(latencies), failures[0],
                      round(len(latencies) / took, 1), summary(latencies), len(safety),
                      summary(safety), round(node_cpu * 1000 / max(served, 1), 2),
                      round(events_cpu * 1000 / took, 1),
                      [round(v, 2) for v in os.getloadavg()])


def waiting(args: argparse.Namespace, base_env: dict[str, str], settings: dict, url: str,
            workdir: Path, tag: str) -> dict:
    from app.core import devices, push, users
    from app.core.context import Origin
    from app.push_wait.events import allow_many_files
    from tests.peers.push_device import PushDevice, answer_string

    allow_many_files(args.streams + 256)
    config = CONFIGS[2]  # the stream with Redis: production
    servers = start_servers(config, base_env, args, url, workdir, tag)
    out: dict = {"config": config.name, "workers": args.workers, "threads": args.threads}
    try:
        base = f"http://127.0.0.1:{servers.node.port}"
        pages_phone = PushDevice.with_url(base)
        if pages_phone.activate(activation_code(settings, "pages")).status != 201:
            raise SystemExit("the phone of the waiting pages could not be activated")
        if PushDevice.with_url(base).activate(activation_code(settings, "alice")).status != 201:
            raise SystemExit("alice's phone could not be activated")
        cookie = http_sign_in(servers.node.port, "bob")
        poll_cookie = http_sign_in(servers.node.port, "alice")
        send_push_over_http(servers.node.port, poll_cookie)
        for client in (Client(servers.node.port, cookie), Client(servers.node.port, poll_cookie)):
            for _ in range(20):  # warm up: templates, connections
                client.get("/prompt?next=done")

        safety_rate = args.streams / SAFETY_POLL_SECONDS
        print(f"(b) ordinary requests with no page waiting ({args.duration:.0f} s)", flush=True)
        quiet = load_phase("0 pages waiting", servers, cookie, poll_cookie,
                           concurrency=args.concurrency, seconds=args.duration, safety_rate=0)
        rss_before = servers.events.rss_mb()

        origin = Origin("portal", "127.0.0.1")
        pushes = {}
        with core_context({**settings, "redis_url": args.redis_url}) as ctx:
            pages = users.get(ctx, "pages")
            for _ in range(args.streams):
                request = push.start(ctx, origin, pages, None, service="bench", timeout=300)
                pushes[request.public_id] = (push.watch_token(ctx.keys, request), request.number)
        streams = Streams(servers.events_port, {pid: t for pid, (t, _) in pushes.items()})
        opened_at = time.monotonic()
        streams.start()
        opened_in = time.monotonic() - opened_at
        health = events_health(servers.events_port)
        rss_with = servers.events.rss_mb()
        print(f"(b) {args.streams} streams open in {opened_in:.1f} s ({health.strip()}); "
              f"ordinary requests again ({args.duration:.0f} s)", flush=True)
        streams_only = load_phase(f"{args.streams} streams open", servers, cookie, poll_cookie,
                                  concurrency=args.concurrency, seconds=args.duration,
                                  safety_rate=0)
        held = load_phase(f"{args.streams} pages waiting", servers, cookie, poll_cookie,
                          concurrency=args.concurrency, seconds=args.duration,
                          safety_rate=safety_rate)
        idle_cpu = servers.events.cpu_seconds()
        time.sleep(5)
        idle_cpu = (servers.events.cpu_seconds() - idle_cpu) * 1000 / 5

        # every waiting push approved, one commit each (announced on Redis after it)
        print(f"(b) approving the {args.streams} pushes", flush=True)
        committed: dict[str, float] = {}
        with core_context({**settings, "redis_url": args.redis_url}) as ctx:
            device = ctx.db.get(devices.Device, int(pages_phone.device_id))
            for public_id, (_token, number) in pushes.items():
                signature = pages_phone.sign(answer_string(public_id, "approve", number))
                push.answer(ctx, origin, device, public_id, "approve", number, signature)
                ctx.db.commit()
                committed[public_id] = time.time()
        deadline = time.monotonic() + 30
        while len(streams.heard) < len(pushes) and time.monotonic() < deadline:
            time.sleep(0.05)
        heard = [streams.heard[p] - committed[p] for p in pushes if p in streams.heard]
        streams.join(10)
        print(f"(b) ordinary requests once more, no page waiting ({args.duration:.0f} s)",
              flush=True)
        after = load_phase("0 pages waiting, again", servers, cookie, poll_cookie,
                           concurrency=args.concurrency, seconds=args.duration, safety_rate=0)
        out.update({
            "streams": args.streams, "opened_in_s": round(opened_in, 2),
            "events_rss_mb": {"before": round(rss_before, 1), "with_streams": round(rss_with, 1),
                              "per_stream_kb": round((rss_with - rss_before) * 1024
                                                     / args.streams, 1)},
            "events_cpu_ms_per_s_idle_with_streams": round(idle_cpu, 1),
            "phases": [asdict(quiet), asdict(streams_only), asdict(held), asdict(after)],
            "answers": {"approved": len(pushes), "heard": len(heard),
                        "commit_to_event": summary(heard),
                        "span_s": round(max(streams.heard.values(), default=0)
                                        - min(committed.values()), 2)},
        })
        status_cpu = held.node_cpu_ms_per_request
        out["polling_every_second_would_need_cores"] = round(args.streams * status_cpu / 1000, 2)
        failures = sum(phase.failures for phase in (quiet, streams_only, held, after))
        if len(heard) != len(pushes) or streams.failed or failures:
            out["failed"] = (f"heard {len(heard)} of {len(pushes)}; stream failures "
                             f"{len(streams.failed)}; request failures {failures}")
    finally:
        servers.stop()
    return out


# --- the run ---------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=30,
                        help="approvals per configuration in (a) (default 30)")
    parser.add_argument("--streams", type=int, default=1000,
                        help="waiting pages in (b) (default 1000)")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds of ordinary requests per phase of (b) (default 10)")
    parser.add_argument("--concurrency", type=int, default=4,
                        help="ordinary requests in flight in (b) (default 4)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--skip-latency", action="store_true", help="run (b) only")
    parser.add_argument("--skip-waiting", action="store_true", help="run (a) only")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.trials <= 200 or not 1 <= args.streams <= 20000:
        parser.error("--trials must be 1-200 and --streams 1-20000 (the run is bounded)")
    if not 1 <= args.duration <= 60 or not 1 <= args.concurrency <= 64:
        parser.error("--duration must be 1-60 s and --concurrency 1-64")
    if not 1 <= args.workers <= 8 or not 1 <= args.threads <= 32:
        parser.error("--workers must be 1-8 and --threads 1-32")

    started_at = time.monotonic()
    check_services(args.database_url, args.redis_url)
    info: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
        "database": masked(args.database_url), "redis": masked(args.redis_url),
        "gunicorn": f"{args.workers} workers x {args.threads} threads (gthread)",
    }
    print(f"machine: {info['machine']}; load average {info['load_at_start']}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-push-bench-"))
    instance = workdir / "instance"
    instance.mkdir()
    tag = f"bench_{secrets.token_hex(4)}"
    results: dict = {}
    cleanup: list[Callable[[], None]] = []
    try:
        _schema, url, drop = fresh_schema(args.database_url)
        cleanup.append(drop)
        from app import migrate

        migrate.upgrade(url)
        base_env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
        base_env.update({
            "UM2FA_INSTANCE_DIR": str(instance), "UM2FA_DATABASE_URL": url,
            "UM2FA_RATELIMIT_KEY_PREFIX": tag, "UM2FA_PUSH_MAX_PENDING": str(args.streams + 10),
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
            **{f"UM2FA_RATELIMIT_{name.upper()}": HIGH_LIMIT for name in LIMITS}})
        settings = {"instance_dir": instance, "database_url": url,
                    "push_max_pending": args.streams + 10, "ratelimit_key_prefix": tag}
        for username in ("alice", "bob", "pages"):
            add_user(base_env, username)
        if not args.skip_latency:
            print(f"(a) approve -> page complete, {args.trials} trials per configuration",
                  flush=True)
            results["latency"] = latency(args, base_env, settings, url, workdir, tag)
        if not args.skip_waiting:
            results["waiting"] = waiting(args, base_env, settings, url, workdir, tag)
    finally:
        clean_up(cleanup, workdir)
    info["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    info["total_seconds"] = round(time.monotonic() - started_at, 1)
    report(results, info)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": results}, indent=2))
    if results.get("waiting", {}).get("failed"):
        raise SystemExit("FAILED: " + results["waiting"]["failed"])


def report(results: dict, info: dict) -> None:
    print()
    print(f"{info['date']}; machine: {info['machine']}; load average {info['load_at_start']} "
          f"at the start, {info['load_at_end']} at the end; {info['total_seconds']} s in all")
    for name, figures in results.get("latency", {}).items():
        done, page = figures["to_status_done"], figures["to_page_complete"]
        print(f"(a) {name:18} approve -> status done p50 {done['p50_ms']:6.0f} ms, "
              f"p95 {done['p95_ms']:6.0f} ms | -> page complete p50 {page['p50_ms']:6.0f} ms, "
              f"p95 {page['p95_ms']:6.0f} ms, max {page['max_ms']:6.0f} ms "
              f"(n={page['n']}, load {figures['load_at_start']})")
        parts = figures["parts_p50_ms"]
        print(f"    p50 parts: approve POST {parts['approve']} ms; the status GET sent after "
              f"{parts['ask_started']} ms, taking {parts['ask']} ms; then the done page "
              f"{parts['navigation']} ms")
    waiting = results.get("waiting")
    if waiting:
        for phase in waiting["phases"]:
            lat = phase["latency"]
            print(f"(b) {phase['phase']:22} {phase['rate']:7.1f} req/s, p50 {lat['p50_ms']} ms, "
                  f"p95 {lat['p95_ms']} ms, p99 {lat['p99_ms']} ms; safety polls "
                  f"{phase['safety_polls']}; node CPU {phase['node_cpu_ms_per_request']} ms/req;"
                  f" event server CPU {phase['events_cpu_ms_per_s']} ms/s; "
                  f"load {phase['load_average']}")
        rss = waiting["events_rss_mb"]
        answers = waiting["answers"]
        print(f"(b) event server RSS {rss['before']} MB -> {rss['with_streams']} MB with "
              f"{waiting['streams']} streams ({rss['per_stream_kb']} KB each); idle CPU with "
              f"them {waiting['events_cpu_ms_per_s_idle_with_streams']} ms/s; opened in "
              f"{waiting['opened_in_s']} s")
        print(f"(b) {answers['approved']} approvals: {answers['heard']} heard; commit -> event "
              f"p50 {answers['commit_to_event']['p50_ms']} ms, p95 "
              f"{answers['commit_to_event']['p95_ms']} ms, max "
              f"{answers['commit_to_event']['max_ms']} ms; all within {answers['span_s']} s")
        print(f"(b) {waiting['streams']} pages polling every second instead: "
              f"~{waiting['polling_every_second_would_need_cores']} cores of gunicorn CPU")


if __name__ == "__main__":
    main()
