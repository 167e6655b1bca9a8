"""Web nodes benchmark: the portal prompt's passcode step ("Enter a Passcode") on one gunicorn
web node against two, on the machine's PostgreSQL and Redis (issue 7).

    .venv/bin/python -m benchmarks.web_nodes [--quick] [--duration 10] [--concurrency 16]
                                             [--workers 1] [--threads 4] [--json FILE]
                                             [--session-store database|redis]

Each timed request is what a browser sends when a user who has passed the password step types
the 6-digit code of their TOTP device: POST /prompt (CSRF token, next=done, the device, the
code) with the session cookie. A success is a 302 to /prompt/done; anything else is a failure,
and any failure makes the run exit non-zero.

Set-up, before anything is timed: a fresh PostgreSQL schema (dropped at the end), users with one
TOTP device each, bulk inserted with one shared argon2id hash of LOW cost (t=1, 1 MiB, p=1:
argon2-cffi verifies with the parameters stored in the hash, so sign-in takes the same code path
at a fraction of the CPU), and for every user a real sign-in over HTTP (POST /sign-in with the
CSRF token of a sign-in page, then GET /prompt?next=done), which leaves a session that has
passed the password step and the prompt's CSRF token; then 8 untimed passcodes per node.
Every user is timed once: a TOTP code is accepted once per 30-s step per device, and a
successful passcode ends that prompt.

Nodes: gunicorn with deploy/gunicorn.conf.py on 127.0.0.1, each in its own process group, with
the same --workers/--threads; both share one instance directory (keys), one database schema and
Redis (rate limits, set very high for the run). Configuration 1 sends all requests to node A;
configuration 2 spreads them round-robin over A and B request by request, as a load balancer with
keep-alive upstreams would. The load is a closed loop: --concurrency requests in flight, on
keep-alive connections, from one Python thread on the same cores.

Reported per configuration: requests/s, p50/p95/p99 latency, CPU time per request of the
gunicorn processes, of the PostgreSQL backends serving them (by application_name) and of the
load generator (from /proc and getrusage), the machine's CPU use and the load average, and
what the nodes' PostgreSQL backends were waiting on (sampled every 0.25 s). After each
configuration the database must hold one audit row and one used TOTP step per success, and a
sample of the signed-in sessions must reach /prompt/done. Results and how to read them:
docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import itertools
import json
import os
import platform
import re
import resource
import secrets
import selectors
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from benchmarks.common import clean_up, fresh_schema, percentile
from benchmarks.procs import Proc, proc_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATABASE_URL = "postgresql://postgres@127.0.0.1:5432/test"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
PASSWORD = "bench-password-1"  # noqa: S105 - the benchmark users' password
HIGH_LIMIT = "1000000 per minute"
RATE_LIMITS = ("signin_address", "signin_user", "passcode_address", "passcode_user",
               "recovery_address", "recovery_user", "activate_address")
# low-cost argon2id for the seeded users only (see the module docstring)
CHEAP_ARGON2 = {"time_cost": 1, "memory_cost": 1024, "parallelism": 1}
COOKIE = "um2fa_session"
CSRF_RE = re.compile(rb'name="csrf_token" type="hidden" value="([^"]+)"|'
                     rb'"X-CSRFToken": "([^"]+)"')
DEVICE_RE = re.compile(rb'name="device" value="(\d+)"')
SUCCESS_LOCATION = "/prompt/done"
REQUEST_TIMEOUT = 30.0
SIGNED_IN_OVER_HTTP = 4  # users per node who really sign in during set-up (the rest: see
# prepare_all)
WARMUP_PER_NODE = 8
# A keep-alive connection idle this long is not reused: gunicorn (deploy/gunicorn.conf.py,
# keepalive = 5) closes idle ones after 5 s, and a POST sent as it does so is lost. A proxy in
# front must likewise keep its upstream keepalive_timeout below the nodes' keepalive.
IDLE_TIMEOUT = 2.0
MAX_IN_FLIGHT = 256  # the fixed-rate phase's bound


def masked(url: str) -> str:
    """A URL without its password, for messages."""
    parts = urlsplit(url)
    if parts.password:
        netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
        return parts._replace(netloc=netloc).geturl()
    return url


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- HTTP/1.1 on keep-alive sockets (hand-made: the load generator must stay cheap) ---------

@dataclass
class Response:
    status: int
    headers: dict[str, str]
    cookies: dict[str, str]
    body: bytes


class HttpError(Exception):
    pass


def parse_response(buf: bytes | bytearray) -> tuple[Response, int] | None:
    """A complete response at the start of `buf` and its length, or None if more is needed."""
    end = buf.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buf[:end]).decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    cookies: dict[str, str] = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        name, value = name.strip().lower(), value.strip()
        if name == "set-cookie":
            key, _, rest = value.partition("=")
            cookies[key.strip()] = rest.split(";", 1)[0]
        headers[name] = value
    if "chunked" in headers.get("transfer-encoding", ""):
        raise HttpError("chunked responses are not expected from the app")
    total = end + 4 + int(headers.get("content-length", "0"))
    if len(buf) < total:
        return None
    return Response(status, headers, cookies, bytes(buf[end + 4:total])), total


def build_request(method: str, path: str, port: int, cookie: str = "",
                  form: dict[str, str] | None = None) -> bytes:
    body = urlencode(form).encode() if form is not None else b""
    head = [f"{method} {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: keep-alive",
            "User-Agent: um2fa-benchmark"]
    if cookie:
        head.append(f"Cookie: {COOKIE}={cookie}")
    if form is not None:
        head += ["Content-Type: application/x-www-form-urlencoded",
                 f"Content-Length: {len(body)}"]
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


class Connection:
    """A blocking keep-alive connection to one node (set-up and checks)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.sock: socket.socket | None = None
        self.buf = bytearray()
        self.used_at = 0.0

    def request(self, method: str, path: str, cookie: str = "",
                form: dict[str, str] | None = None) -> Response:
        data = build_request(method, path, self.port, cookie, form)
        if self.sock is not None and time.monotonic() - self.used_at > IDLE_TIMEOUT:
            self.close()  # the node may be closing it (see IDLE_TIMEOUT)
        for attempt in (1, 2):  # a keep-alive connection the node closed while idle: reconnect
            if self.sock is None:
                self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                self.buf.clear()
            try:
                self.sock.sendall(data)
                response = self._read()
                self.used_at = time.monotonic()
                return response
            except (ConnectionError, HttpError):
                self.close()
                if attempt == 2 or form is not None:
                    raise
        raise AssertionError("unreachable")

    def _read(self) -> Response:
        assert self.sock is not None
        while True:
            parsed = parse_response(self.buf)
            if parsed is not None:
                response, used = parsed
                del self.buf[:used]
                if response.headers.get("connection", "").lower() == "close":
                    self.close()
                return response
            chunk = self.sock.recv(65536)
            if not chunk:
                raise HttpError("connection closed by the node")
            self.buf += chunk

    def close(self) -> None:
        if self.sock is not None:
            self.sock.close()
            self.sock = None


# --- nodes -------------------------------------------------------------------------------

@dataclass
class Node(Proc):
    """A gunicorn node: the master and its workers, in a process group of its own."""

    application_name: str = ""  # of its PostgreSQL connections
    group: bool = True
    stop_timeout: float = 25.0
    kill_timeout: float = 10.0


def start_node(name: str, env: dict[str, str], database_url: str, workers: int, threads: int,
               workdir: Path, tag: str, app_spec: str = "wsgi:app") -> Node:
    port = free_port()
    application_name = f"{tag}_{name}"
    sep = "&" if "?" in database_url else "?"
    node_env = {**env, "UM2FA_BIND": f"127.0.0.1:{port}", "UM2FA_WORKERS": str(workers),
                "UM2FA_THREADS": str(threads),
                "UM2FA_DATABASE_URL": f"{database_url}{sep}application_name={application_name}"}
    log = workdir / f"web-{name}.log"
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", app_spec],
        env=node_env, cwd=ROOT, stdout=log.open("w"), stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL, start_new_session=True)
    node = Node(name, process, port, log, application_name=application_name)
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"web node {name} exited:\n{log.read_text(errors='replace')[-3000:]}")
        try:
            health = Connection(port).request("GET", "/healthz")
        except OSError:
            time.sleep(0.1)
            continue
        if health.status == 200 and len(node.pids()) > workers:  # every worker up
            return node
        if health.status != 200:
            node.stop()
            raise SystemExit(f"web node {name} is not healthy: {health.body[:300]!r}")
        time.sleep(0.1)
    node.stop()
    raise SystemExit(f"web node {name} did not start in 40 s")


# --- database: schema, users, checks -----------------------------------------------------

def check_services(database_url: str, redis_url: str) -> None:
    """Exit with a clear message when PostgreSQL or Redis cannot be reached."""
    import psycopg
    import redis

    plain = database_url.replace("postgresql+psycopg://", "postgresql://")
    try:
        with psycopg.connect(plain, connect_timeout=5) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        raise SystemExit(f"web_nodes benchmark: PostgreSQL at {masked(database_url)} is "
                         f"unreachable ({type(exc).__name__}: {' '.join(str(exc).split())[:200]}); "
                         "start it or pass --database-url") from None
    try:
        redis.Redis.from_url(redis_url, socket_connect_timeout=5, socket_timeout=5).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"web_nodes benchmark: Redis at {masked(redis_url)} is unreachable "
                         f"({type(exc).__name__}: {exc}); start it or pass --redis-url") from None


@dataclass
class SeedUser:
    username: str
    secret: str
    device_id: int
    user_id: int = 0


def seed_users(database_url: str, prefix: str, count: int) -> list[SeedUser]:
    """`count` users with one active TOTP device each, in bulk; one shared low-cost hash."""
    from argon2 import PasswordHasher
    from sqlalchemy import insert, select

    from app.bootstrap import build_services
    from app.config import load_settings
    from app.core.factors.totp import new_secret
    from app.models import Device, User

    services = build_services(load_settings({"database_url": database_url}))
    db, keys = services.db, services.keys
    shared_hash = PasswordHasher(**CHEAP_ARGON2).hash(PASSWORD)
    now = datetime.now(UTC)
    names = [f"{prefix}{i:06d}" for i in range(count)]
    try:
        with db.session() as session:
            session.execute(insert(User), [
                {"username": name, "display_name": "", "email": "", "role": "student",
                 "password_hash": shared_hash, "disabled": False, "failed_factor_count": 0,
                 "created_at": now} for name in names])
            ids = dict(session.execute(
                select(User.username, User.id).where(User.username.in_(names))).all())
            user_secrets = {name: new_secret() for name in names}
            session.execute(insert(Device), [
                {"user_id": ids[name], "name": "Phone", "kind": "totp", "device_type": "mobile",
                 "platform": "other", "secret_enc": keys.encrypt(user_secrets[name].encode()),
                 "active": True, "is_default": True, "created_at": now} for name in names])
            devices = dict(session.execute(
                select(Device.user_id, Device.id).where(Device.user_id.in_(ids.values()))).all())
    finally:
        db.dispose()
    return [SeedUser(name, user_secrets[name], devices[ids[name]], ids[name]) for name in names]


def count_outcomes(plain_url: str, schema: str, usernames: list[str]) -> dict[str, int]:
    """What the database recorded for these users: passcode audit rows and used TOTP steps."""
    import psycopg

    with psycopg.connect(plain_url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        ok, failed = conn.execute(
            "SELECT count(*) FILTER (WHERE result = 'ok'), count(*) FILTER (WHERE result <> 'ok')"
            " FROM audit_events WHERE action = 'factor' AND username = ANY(%s)",
            (usernames,)).fetchone()
        used = conn.execute(
            "SELECT count(*) FROM devices d JOIN users u ON u.id = d.user_id"
            " WHERE u.username = ANY(%s) AND d.last_step IS NOT NULL", (usernames,)).fetchone()[0]
    return {"factor ok audit rows": ok, "factor failed audit rows": failed,
            "devices with a used step": used}


class Backends:
    """CPU time of the PostgreSQL backends that serve the nodes (found by application_name in
    pg_stat_activity, read from /proc: PostgreSQL runs on this machine)."""

    def __init__(self, plain_url: str, application_names: list[str]) -> None:
        self.plain_url, self.names = plain_url, application_names

    def cpu(self) -> dict[int, float]:
        import psycopg

        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            pids = [row[0] for row in conn.execute(
                "SELECT pid FROM pg_stat_activity WHERE application_name = ANY(%s)",
                (self.names,))]
        return {pid: cpu for pid in pids if (cpu := proc_cpu_seconds(pid)) is not None}

    def sample_waits(self, stop: threading.Event, into: dict[str, int],
                     every: float = 0.25) -> None:
        """Until `stop`: what the nodes' backends are doing, every `every` s (state and wait
        event, as pg_stat_activity shows them): a row lock or other serialization on shared
        state shows up as "Lock" waits."""
        import psycopg

        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            while not stop.wait(every):
                for state, kind, event in conn.execute(
                        "SELECT state, wait_event_type, wait_event FROM pg_stat_activity"
                        " WHERE application_name = ANY(%s)", (self.names,)):
                    key = f"{state}" + (f" ({kind}: {event})" if kind else "")
                    into[key] = into.get(key, 0) + 1


def redis_cpu_seconds(redis_url: str) -> float:
    import redis

    info = redis.Redis.from_url(redis_url, socket_timeout=5).info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


# --- set-up: a real sign-in for every user -------------------------------------------------

@dataclass
class Prepared:
    username: str
    secret: str
    device_id: int
    cookie: str  # the session after the password step, with the prompt's CSRF token in it
    csrf: str
    done_cookie: str = ""  # the session after the passcode (filled in by the timed run)


def _csrf(body: bytes) -> str:
    match = CSRF_RE.search(body)
    if not match:
        raise HttpError("no CSRF token in the page")
    return (match.group(1) or match.group(2)).decode()


def sign_in(conn: Connection, user: SeedUser) -> Prepared:
    """GET the sign-in page, POST /sign-in, then GET /prompt?next=done, as a browser does
    before the passcode. Each user opens the sign-in page of their own: signing in ends the
    session the form came with (server-side sessions), so a form cannot be reused."""
    page = conn.request("GET", "/")
    form_session = (page.cookies.get(COOKIE, ""), _csrf(page.body))
    signed = conn.request("POST", "/sign-in", form_session[0], {
        "csrf_token": form_session[1], "username": user.username, "password": PASSWORD})
    if signed.status != 302:
        raise HttpError(f"sign-in of {user.username} answered {signed.status}")
    cookie = signed.cookies[COOKIE]
    prompt = conn.request("GET", "/prompt?next=done", cookie)
    device = DEVICE_RE.search(prompt.body)
    if prompt.status != 200 or not device or int(device.group(1)) != user.device_id:
        raise HttpError(f"the prompt of {user.username} answered {prompt.status} without "
                        "the user's device")
    return Prepared(user.username, user.secret, user.device_id,
                    prompt.cookies.get(COOKIE, cookie), _csrf(prompt.body))


def past_the_password(app, user: SeedUser) -> Prepared:
    """The session a sign-in leaves (the user's id, the door, the time), made by the app's own
    session interface in this process, then GET /prompt?next=done for its CSRF token. The
    nodes share the database and the keys, so they take it as their own."""
    client = app.test_client()
    with client.session_transaction() as session:
        session.update(uid=user.user_id, via="portal", auth_at=int(time.time()))
    prompt = client.get("/prompt?next=done", environ_base={"REMOTE_ADDR": "127.0.0.1"})
    device = DEVICE_RE.search(prompt.data)
    cookie = client.get_cookie(COOKIE)
    if prompt.status_code != 200 or not device or int(device.group(1)) != user.device_id \
            or cookie is None:
        raise SystemExit(f"set-up failed: the prompt of {user.username} answered "
                         f"{prompt.status_code} without the user's device")
    return Prepared(user.username, user.secret, user.device_id, cookie.value,
                    _csrf(prompt.data))


def prepare_all(nodes: list[Node], users: list[SeedUser], env: dict[str, str],
                url: str) -> list[Prepared]:
    """Every user past the password step. A few sign in over HTTP on each node, as a browser
    does; the rest get the same session from the app in this process: a sign-in costs an
    argon2id verification and, for these low-cost hashes, the rehash to the production
    parameters (~0.2 CPU-s), which would make the set-up last minutes."""
    over_http = SIGNED_IN_OVER_HTTP * len(nodes)
    try:
        done = [sign_in(Connection(nodes[i % len(nodes)].port), user)
                for i, user in enumerate(users[:over_http])]
    except (OSError, HttpError, KeyError) as exc:
        raise SystemExit(f"set-up failed: {exc!r}") from None
    saved = dict(os.environ)
    os.environ.update({**env, "UM2FA_DATABASE_URL": url})
    try:
        from app import create_app

        app = create_app()
        done += [past_the_password(app, user) for user in users[over_http:]]
        app.extensions["um2fa"].db.dispose()
    finally:
        os.environ.clear()
        os.environ.update(saved)
    return done


# --- the timed run: closed loop, request-level round-robin ---------------------------------

def totp_now(secret: str) -> str:
    import pyotp

    return pyotp.TOTP(secret).now()


@dataclass
class InFlight:
    node: int
    user: Prepared
    sent_at: float
    buf: bytearray = field(default_factory=bytearray)


def passcode_request(user: Prepared, port: int) -> bytes:
    return build_request("POST", "/prompt", port, user.cookie, {
        "csrf_token": user.csrf, "next": "done", "device": str(user.device_id),
        "passcode": totp_now(user.secret)})


def passcode_ok(response: Response, user: Prepared) -> bool:
    if response.status == 302 and response.headers.get("location") == SUCCESS_LOCATION:
        user.done_cookie = response.cookies.get(COOKIE, "")
        return True
    return False


def hello_request(user: Prepared, port: int) -> bytes:
    """The reference: the same bytes on the wire as a passcode POST, to a route that only
    answers."""
    return build_request("POST", "/hello", port, user.cookie, {
        "csrf_token": user.csrf, "next": "done", "device": str(user.device_id),
        "passcode": "123456"})


def hello_ok(response: Response, _user: Prepared) -> bool:
    return response.status == 200 and response.body == b"hello"


@dataclass
class Workload:
    name: str
    request: Callable[[Prepared, int], bytes]
    ok: Callable[[Response, Prepared], bool]


PASSCODE = Workload("passcode POST /prompt", passcode_request, passcode_ok)
HELLO = Workload("minimal Flask route (POST /hello)", hello_request, hello_ok)


class Load:
    """Keeps `concurrency` requests in flight (or, with a rate, sends at that rate); request i
    goes to node i % len(nodes), each on an idle keep-alive connection to that node (a new one
    if none is idle)."""

    def __init__(self, nodes: list[Node], users: Iterator[Prepared], concurrency: int,
                 workload: Workload = PASSCODE) -> None:
        self.nodes, self.users, self.concurrency = nodes, users, concurrency
        self.workload = workload
        self.selector = selectors.DefaultSelector()
        # per node: (socket, idle since), most recently used last
        self.idle: list[list[tuple[socket.socket, float]]] = [[] for _ in nodes]
        self.flying: dict[socket.socket, InFlight] = {}
        self.latencies: list[float] = []
        self.per_node = [0] * len(nodes)
        self.failures: dict[str, int] = {}
        self.connections = 0
        self.sent = 0
        self.exhausted = False
        self.done: list[Prepared] = []

    def _fail(self, kind: str) -> None:
        self.failures[kind] = self.failures.get(kind, 0) + 1

    def _send(self) -> bool:
        try:
            user = next(self.users)
        except StopIteration:
            self.exhausted = True
            return False
        index = self.sent % len(self.nodes)
        node = self.nodes[index]
        idle = self.idle[index]
        while idle and time.perf_counter() - idle[0][1] > IDLE_TIMEOUT:
            idle.pop(0)[0].close()  # the node may have closed it (see IDLE_TIMEOUT)
        if idle:
            sock = idle.pop()[0]
        else:
            sock = socket.create_connection(("127.0.0.1", node.port), timeout=10)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self.connections += 1
        data = self.workload.request(user, node.port)
        self.flying[sock] = InFlight(index, user, time.perf_counter())
        self.selector.register(sock, selectors.EVENT_READ)
        sock.sendall(data)
        self.sent += 1
        return True

    def _finish(self, sock: socket.socket, keep: bool) -> InFlight:
        self.selector.unregister(sock)
        flight = self.flying.pop(sock)
        if keep:
            self.idle[flight.node].append((sock, time.perf_counter()))
        else:
            sock.close()
        return flight

    def _receive(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock = key.fileobj
            flight = self.flying[sock]
            try:
                chunk = sock.recv(65536)
            except OSError:
                chunk = b""
            if not chunk:
                self._finish(sock, keep=False)
                self._fail("connection closed before the answer")
                continue
            flight.buf += chunk
            parsed = parse_response(flight.buf)
            if parsed is None:
                continue
            response, _used = parsed
            latency = time.perf_counter() - flight.sent_at
            keep = response.headers.get("connection", "").lower() != "close"
            self._finish(sock, keep)
            if self.workload.ok(response, flight.user):
                self.latencies.append(latency)
                self.per_node[flight.node] += 1
                self.done.append(flight.user)
            else:  # the status only: the page could echo what was typed
                self._fail(f"HTTP {response.status} {response.headers.get('location', '')}"
                           .strip())

    def _expire(self) -> None:
        now = time.perf_counter()
        for sock, flight in list(self.flying.items()):
            if now - flight.sent_at > REQUEST_TIMEOUT:
                self._finish(sock, keep=False)
                self._fail(f"no answer in {REQUEST_TIMEOUT:.0f} s")

    def run(self, seconds: float, rate: float | None = None) -> float:
        """A closed loop of `concurrency` in flight, or with `rate`, an open loop that sends
        one request every 1/rate s whatever is in flight (at most MAX_IN_FLIGHT)."""
        start = time.perf_counter()
        deadline, last_expire, next_send = start + seconds, start, start
        while time.perf_counter() < deadline and not self.exhausted:
            if rate is None:
                while len(self.flying) < self.concurrency and self._send():
                    pass
                self._receive(0.05)
            else:
                now = time.perf_counter()
                while next_send <= now and len(self.flying) < MAX_IN_FLIGHT:
                    if not self._send():
                        break
                    next_send += 1 / rate
                self._receive(max(0.0, min(0.05, next_send - time.perf_counter())))
            if time.perf_counter() - last_expire > 1.0:
                self._expire()
                last_expire = time.perf_counter()
        drain = time.perf_counter() + REQUEST_TIMEOUT
        while self.flying and time.perf_counter() < drain:
            self._receive(0.05)
        elapsed = time.perf_counter() - start
        self._expire()
        for sock in list(self.flying):
            self._finish(sock, keep=False)
            self._fail("unanswered at the end")
        return elapsed

    def close(self) -> None:
        for idle in self.idle:
            for sock, _since in idle:
                sock.close()
        self.selector.close()


# --- measuring ---------------------------------------------------------------------------

def machine_cpu() -> tuple[float, float]:
    """(busy, total) jiffies of all CPUs from /proc/stat."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + values[4]  # idle + iowait
    total = sum(values[:8])  # guest time is already in user
    return total - idle, total


def _delta(before: dict[int, float], after: dict[int, float]) -> float:
    """CPU seconds used between two readings; a process that appeared counts from zero."""
    return sum(cpu - before.get(pid, 0.0) for pid, cpu in after.items())


@dataclass
class Result:
    config: str
    nodes: int
    workers: int
    threads: int
    concurrency: int
    workload: str = PASSCODE.name
    rate: float | None = None  # requests/s sent whatever is in flight; None: a closed loop
    sent: int = 0
    ok: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    per_node: list[int] = field(default_factory=list)
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p95_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    node_cpu_ms: float = 0.0  # per successful request: gunicorn masters + workers
    node_cpu_util: list[float] = field(default_factory=list)  # cores used, per node
    pg_cpu_ms: float | None = None  # per request: the nodes' PostgreSQL backends
    redis_cpu_ms: float = 0.0  # per request: the whole redis-server (shared with others)
    loadgen_cpu_ms: float = 0.0
    machine_busy_cores: float = 0.0  # of os.cpu_count()
    load_before: float = 0.0
    load_after: float = 0.0
    connections: int = 0
    ran_out: bool = False  # every prepared user was used before the time was up
    pg_states: dict[str, int] = field(default_factory=dict)  # sampled backend states
    checks: dict = field(default_factory=dict)

    @property
    def loop(self) -> str:
        return f"fixed {self.rate:.0f}/s" if self.rate else f"{self.concurrency} in flight"

    def summary(self) -> str:
        pg = f"{self.pg_cpu_ms:.2f}" if self.pg_cpu_ms is not None else "n/a"
        out = " - ran out of users, pass a larger --users" if self.ran_out else ""
        return (f"{self.config}, {self.loop}: {self.rps:.0f} req/s ({self.ok} ok, "
                f"{self.failed} failed, "
                f"{self.seconds:.1f} s{out}), p50 {self.p50_ms:.1f} / p95 {self.p95_ms:.1f} / p99 "
                f"{self.p99_ms:.1f} ms, CPU ms/req: nodes {self.node_cpu_ms:.2f}, "
                f"PostgreSQL {pg}, load generator {self.loadgen_cpu_ms:.2f}; machine "
                f"{self.machine_busy_cores:.2f}/{os.cpu_count()} cores busy, load "
                f"{self.load_before:.2f} -> {self.load_after:.2f}")


def measure(config: str, nodes: list[Node], users: Iterator[Prepared], *, concurrency: int,
            seconds: float, workers: int, threads: int, backends: Backends,
            redis_url: str, workload: Workload = PASSCODE, rate: float | None = None) -> Result:
    load = Load(nodes, users, concurrency, workload)
    result = Result(config, len(nodes), workers, threads, concurrency, workload=workload.name,
                    rate=rate, load_before=round(os.getloadavg()[0], 2))
    nodes_before = [node.cpu() for node in nodes]
    pg_before = backends.cpu()
    redis_before = redis_cpu_seconds(redis_url)
    self_before = resource.getrusage(resource.RUSAGE_SELF)
    busy_before, total_before = machine_cpu()
    stop = threading.Event()
    sampler = threading.Thread(target=backends.sample_waits, args=(stop, result.pg_states),
                               daemon=True)
    sampler.start()
    try:
        elapsed = load.run(seconds, rate)
    finally:
        stop.set()
        load.close()
        sampler.join(timeout=10)
    busy_after, total_after = machine_cpu()
    self_after = resource.getrusage(resource.RUSAGE_SELF)
    redis_after = redis_cpu_seconds(redis_url)
    pg_after = backends.cpu()
    nodes_after = [node.cpu() for node in nodes]
    ok = max(len(load.latencies), 1)
    lat = sorted(load.latencies)
    node_cpu = [_delta(b, a) for b, a in zip(nodes_before, nodes_after, strict=True)]
    own = (self_after.ru_utime + self_after.ru_stime
           - self_before.ru_utime - self_before.ru_stime)
    result.sent, result.ok = load.sent, len(lat)
    result.failed, result.failures = sum(load.failures.values()), load.failures
    result.per_node, result.connections = load.per_node, load.connections
    result.ran_out = load.exhausted
    result.seconds, result.rps = round(elapsed, 2), round(len(lat) / elapsed, 1)
    result.p50_ms, result.p95_ms, result.p99_ms = (round(percentile(lat, q) * 1000, 1)
                                                   for q in (0.50, 0.95, 0.99))
    result.max_ms = round((lat[-1] if lat else 0.0) * 1000, 1)
    result.node_cpu_ms = round(sum(node_cpu) * 1000 / ok, 2)
    result.node_cpu_util = [round(cpu / elapsed, 2) for cpu in node_cpu]
    result.pg_cpu_ms = round(_delta(pg_before, pg_after) * 1000 / ok, 2) if pg_after else None
    result.redis_cpu_ms = round((redis_after - redis_before) * 1000 / ok, 3)
    result.loadgen_cpu_ms = round(own * 1000 / ok, 2)
    result.machine_busy_cores = round(
        (busy_after - busy_before) / max(total_after - total_before, 1) * (os.cpu_count() or 1),
        2)
    result.load_after = round(os.getloadavg()[0], 2)
    print("  " + result.summary(), flush=True)
    return result


def verify(result: Result, nodes: list[Node], users: list[Prepared], plain_url: str,
           schema: str, samples: int = 10) -> None:
    """Outside the timed part: the database saw every success, and signed-in sessions are."""
    succeeded = [u for u in users if u.done_cookie]
    counts = count_outcomes(plain_url, schema, [u.username for u in users[:result.sent]])
    result.checks = dict(counts)
    conn = Connection(nodes[0].port)
    fully = 0
    try:
        for user in succeeded[:samples]:
            page = conn.request("GET", SUCCESS_LOCATION, user.done_cookie)
            fully += page.status == 200 and b"You are all set!" in page.body
    finally:
        conn.close()
    result.checks["sampled sessions signed in fully"] = f"{fully}/{min(samples, len(succeeded))}"
    print(f"  checks: {result.checks}", flush=True)
    print(f"  PostgreSQL backends of the nodes, sampled every 0.25 s: {result.pg_states}",
          flush=True)
    if counts["factor ok audit rows"] != result.ok or counts["devices with a used step"] \
            != result.ok or fully != min(samples, len(succeeded)):
        result.failed += 1
        result.failures["database or session check"] = 1


# --- the run -----------------------------------------------------------------------------

def warm_up(nodes: list[Node], users: list[Prepared], workload: Workload = PASSCODE) -> None:
    """A few requests on every node before the clock starts (not counted)."""
    load = Load(nodes, iter(users), concurrency=4, workload=workload)
    try:
        load.run(REQUEST_TIMEOUT)
    finally:
        load.close()
    if load.failures or len(load.latencies) != len(users):
        raise SystemExit(f"warm-up failed: {load.failures}")


def run_variant(workers: int, args: argparse.Namespace, env: dict[str, str], url: str,
                plain_url: str, schema: str, workdir: Path, tag: str,
                cleanup: list[Callable[[], None]]) -> list[Result]:
    """Nodes A and B with `workers` workers each: configuration 1 (A), then 2 (A and B)."""
    label = f"{workers} worker{'s' if workers > 1 else ''} x {args.threads} threads"
    warm = WARMUP_PER_NODE * 2
    total = 2 * (args.users + warm) + (int(args.rate * args.duration) + warm if args.rate else 0)
    print(f"\n{label} per node: seeding {total} users ...", flush=True)
    seeded = seed_users(url, f"w{workers}u", total)
    nodes = [start_node(name, env, url, workers, args.threads, workdir, f"{tag}_w{workers}")
             for name in ("a", "b")]
    cleanup.extend(node.stop for node in nodes)
    started = time.monotonic()
    prepared = prepare_all(nodes, seeded, env, url)
    print(f"  {total} users past the password step ({SIGNED_IN_OVER_HTTP * 2} signed in over "
          f"HTTP) in {time.monotonic() - started:.1f} s "
          "(GET /prompt?next=done each)", flush=True)
    backends = Backends(plain_url, [node.application_name for node in nodes])
    results = []
    if args.reference:
        results.append(reference(label, workers, args, env, url, workdir, tag, prepared[0],
                                 backends))
    phases = [("1 node", nodes[:1], None), ("2 nodes", nodes, None)]
    if args.rate:
        phases.append(("1 node", nodes[:1], args.rate))
    for config, used, rate in phases:
        size = int(rate * args.duration) if rate else args.users
        batch, prepared = prepared[:size + warm], prepared[size + warm:]
        warm_up(used, batch[:warm])
        users = batch[warm:]
        print(f"{config}, {label}, {f'fixed {rate:.0f}/s' if rate else 'closed loop'}:",
              flush=True)
        result = measure(config, used, iter(users), concurrency=args.concurrency,
                         seconds=args.duration, workers=workers, threads=args.threads,
                         backends=backends, redis_url=args.redis_url, rate=rate)
        verify(result, used, users, plain_url, schema)
        results.append(result)
    for node in nodes:
        node.stop()
    return results


def reference(label: str, workers: int, args: argparse.Namespace, env: dict[str, str],
              url: str, workdir: Path, tag: str, sample: Prepared, backends: Backends) -> Result:
    """The minimal Flask route (benchmarks/hello_app.py) on a node of the same gunicorn
    configuration, in the same closed loop, just before the web nodes are timed."""
    node = start_node("hello", env, url, workers, args.threads, workdir, f"{tag}_w{workers}",
                      app_spec="benchmarks.hello_app:app")
    try:
        print(f"reference, {label}: {HELLO.name}", flush=True)
        warm_up([node], [sample] * WARMUP_PER_NODE, HELLO)
        return measure("reference", [node], itertools.repeat(sample),
                       concurrency=args.concurrency, seconds=args.duration, workers=workers,
                       threads=args.threads, backends=backends, redis_url=args.redis_url,
                       workload=HELLO)
    finally:
        node.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true",
                        help="a smoke run: 3 s per configuration, few users")
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per configuration (default 10)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="passcode POSTs in flight, in both configurations (default 16)")
    parser.add_argument("--workers", default="1",
                        help="gunicorn workers per node; comma-separated to run each (e.g. 1,2)")
    parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")
    parser.add_argument("--rate", type=float, default=100.0,
                        help="then a fixed-rate phase on one node at this many requests/s "
                             "(default 100; 0 skips it)")
    parser.add_argument("--no-reference", dest="reference", action="store_false",
                        help="skip the minimal Flask route timed first as the reference")
    parser.add_argument("--users", type=int, default=0,
                        help="users signed in per configuration (default: enough for 230 "
                             "req/s over --duration; a configuration ends early if they run "
                             "out)")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL,
                        help=f"PostgreSQL (a fresh schema is made and dropped; default "
                             f"{DEFAULT_DATABASE_URL})")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL,
                        help=f"Redis for the rate limits (default {DEFAULT_REDIS_URL})")
    parser.add_argument("--session-store", choices=("database", "redis"), default="database",
                        help="UM2FA_SESSION_STORE of the nodes (default database)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if args.quick:
        args.duration = min(args.duration, 3.0)
    try:
        worker_counts = [int(w) for w in args.workers.split(",")]
    except ValueError:
        parser.error("--workers must be integers, comma-separated")
    if not 0 <= args.rate <= 2000:
        parser.error("--rate must be 0-2000 requests/s")
    if not 1 <= args.duration <= 60 or not 1 <= args.concurrency <= 256:
        parser.error("--duration must be 1-60 s and --concurrency 1-256 (the run is bounded)")
    if not all(1 <= w <= 8 for w in worker_counts) or not 1 <= args.threads <= 32:
        parser.error("--workers must be 1-8 and --threads 1-32")
    args.users = args.users or int((150 if args.quick else 230) * args.duration)
    if not 10 <= args.users <= 50000:
        parser.error("--users must be 10-50000")

    started_at = time.monotonic()
    check_services(args.database_url, args.redis_url)
    info: dict = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                   f"Python {platform.python_version()}",
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
        "database": masked(args.database_url), "redis": masked(args.redis_url),
        "rate_limits": f"every UM2FA_RATELIMIT_* = {HIGH_LIMIT!r}",
        "seeded_argon2": {"type": "argon2id", **CHEAP_ARGON2},
        "concurrency": args.concurrency, "duration": args.duration,
        "users_per_config": args.users,
    }
    print(f"machine: {info['machine']}; load average {info['load_at_start']}", flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-web-bench-"))
    instance = workdir / "instance"
    instance.mkdir()
    tag = f"bench_{secrets.token_hex(4)}"
    results: list[Result] = []
    cleanup: list[Callable[[], None]] = []
    try:
        schema, url, drop = fresh_schema(args.database_url)
        cleanup.append(drop)
        plain_url = args.database_url.replace("postgresql+psycopg://", "postgresql://")
        os.environ["UM2FA_INSTANCE_DIR"] = str(instance)  # the keys both nodes share
        from app import migrate
        from app.config import read_settings
        from app.shared_keys import make_missing

        make_missing(read_settings({"database_url": url}))  # as `um2fa keys generate` does
        migrate.upgrade(url)
        env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
        env.update({"UM2FA_INSTANCE_DIR": str(instance), "UM2FA_REDIS_URL": args.redis_url,
                    "PYTHONUNBUFFERED": "1", "UM2FA_SESSION_STORE": args.session_store,
                    **{f"UM2FA_RATELIMIT_{name.upper()}": HIGH_LIMIT for name in RATE_LIMITS}})
        for workers in worker_counts:
            results += run_variant(workers, args, env, url, plain_url, schema, workdir, tag,
                                   cleanup)
    finally:
        clean_up(cleanup, workdir)
    info["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    info["total_seconds"] = round(time.monotonic() - started_at, 1)
    report(results, info)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": [asdict(r) for r in results]},
                                        indent=2))
    failed = [r for r in results if r.failed]
    if failed:
        raise SystemExit("FAILED: " + "; ".join(
            f"{r.config} ({r.workers}w): {r.failures}" for r in failed))


def report(results: list[Result], info: dict) -> None:
    print()
    print(f"{info['date']}; machine: {info['machine']}; load average {info['load_at_start']} "
          f"at the start, {info['load_at_end']} at the end; {info['total_seconds']} s in all")
    print(f"PostgreSQL {info['database']}, Redis {info['redis']}; {info['rate_limits']}; "
          f"{info['concurrency']} requests in flight, round-robin over the nodes")
    print()
    print("| request | per node | nodes | load | req/s | p50 ms | p95 ms | p99 ms | ok/sent | "
          "node CPU ms/req | PostgreSQL CPU ms/req | load gen CPU ms/req | node cores used | "
          "machine cores busy | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        pg = f"{r.pg_cpu_ms:.2f}" if r.pg_cpu_ms is not None else "n/a"
        what = "reference" if r.workload == HELLO.name else "passcode"
        print(f"| {what} | {r.workers} w x {r.threads} t | {r.nodes} | {r.loop} | {r.rps:.0f} | "
              f"{r.p50_ms:.1f} | "
              f"{r.p95_ms:.1f} | {r.p99_ms:.1f} | {r.ok}/{r.sent} | {r.node_cpu_ms:.2f} | {pg} | "
              f"{r.loadgen_cpu_ms:.2f} | {' + '.join(f'{u:.2f}' for u in r.node_cpu_util)} | "
              f"{r.machine_busy_cores:.2f} | {r.load_before}/{r.load_after} |")
    print()
    by_workers: dict[int, dict[int, Result]] = {}
    for r in results:
        if r.config == "reference":
            same = next((p for p in results if p.workers == r.workers and p.nodes == 1
                         and p.workload != r.workload and p.rate is None), None)
            if same and r.rps and same.node_cpu_ms:
                print(f"{r.workers} worker(s) x {r.threads} threads, one node, {r.loop}: "
                      f"passcode {same.rps:.0f} req/s / reference {r.rps:.0f} req/s = "
                      f"{same.rps / r.rps:.2f}x; node CPU {same.node_cpu_ms:.2f} / "
                      f"{r.node_cpu_ms:.2f} ms = {same.node_cpu_ms / r.node_cpu_ms:.1f}x")
        elif r.rate is None:
            by_workers.setdefault(r.workers, {})[r.nodes] = r
    for workers, pair in by_workers.items():
        if 1 in pair and 2 in pair and pair[1].rps:
            print(f"{workers} worker(s) x {pair[1].threads} threads per node: 2 nodes / 1 node "
                  f"= {pair[2].rps / pair[1].rps:.2f}x req/s; requests per node with 2: "
                  f"{pair[2].per_node}; redis-server CPU (whole server) "
                  f"{pair[1].redis_cpu_ms:.3f} / {pair[2].redis_cpu_ms:.3f} ms/req")


if __name__ == "__main__":
    main()
