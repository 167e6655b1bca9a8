"""RADIUS benchmark: UM 2FA's server against FreeRADIUS (C, users file, PAP) and a bare pyrad
asyncio server (password from a dict), on 127.0.0.1, in one bounded run.

    .venv/bin/python -m benchmarks.radius [--duration 10] [--rate 1000] [--database-url URL]
                                          [--push-waits 1000] [--push-approve 100]
                                          [--redis-url redis://127.0.0.1:6379/0]

For each server: a closed-loop run (a fixed number of requests in flight, as fast as they are
answered) for requests/s and latency, and an open-loop run at a fixed rate (default 1,000/s) for
latency at that load. UM 2FA runs in second-factor-only mode (every request a real TOTP check
for a distinct user, its replay record and its audit rows) and in append mode (argon2 password
verification, then the TOTP check). Every reply's Response Authenticator is verified and the
decisions are counted in the database afterwards.

Push phase (UM 2FA, right after its fixed-rate phase, which is its baseline): --push-waits users
with a companion-app device (no Web Push subscription: nothing leaves the machine) each send one
"push" Access-Request and keep waiting, never retransmitting; once the database shows them all
pending, the same fixed-rate passcode phase runs again while they wait. Then --push-approve of
the pushes are approved in the database (as the phone's answer would) and the time to their
Access-Accept is measured; the rest are denied, so every wait ends with an answer.

FreeRADIUS (Debian's freeradius package) is installed with apt-get if missing and started in the
foreground from its own configuration in a temporary directory on a free port; the system
service is never started or used. Everything listens on 127.0.0.1 and every phase has a
deadline. Results go to standard output (Markdown) and, with --json, to a file.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import os
import platform
import re
import secrets
import selectors
import socket
import struct
import subprocess
import sys
import tempfile
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from benchmarks.common import clean_up, fresh_schema, percentile, seed_totp_devices
from benchmarks.procs import Proc
from tests.peers.freeradius import FreeRadius, ensure_freeradius

ROOT = Path(__file__).resolve().parent.parent
UM2FA = str(Path(sys.executable).with_name("um2fa"))
SECRET = b"bench-secret-0123456789"
REPLY_TIMEOUT = 5.0
PUSH_SOURCE = "127.0.0.3"  # the RADIUS client (second-factor mode) whose users push
ACCESS_REQUEST, ACCESS_ACCEPT, ACCESS_REJECT = 1, 2, 3


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --- packets (hand-encoded: the load generator must not be the bottleneck) -----------------

def _hide_password(password: bytes, authenticator: bytes, secret: bytes) -> bytes:
    """RFC 2865 section 5.2."""
    padded = password + b"\0" * (-len(password) % 16 or (16 if not password else 0))
    out, last = b"", authenticator
    for i in range(0, len(padded), 16):
        key = hashlib.md5(secret + last).digest()  # noqa: S324 - the protocol's algorithm
        block = bytes(a ^ b for a, b in zip(padded[i:i + 16], key, strict=True))
        out += block
        last = block
    return out


def access_request(ident: int, username: str, password: str,
                   secret: bytes = SECRET) -> tuple[bytes, bytes]:
    """An Access-Request with User-Name, User-Password, NAS-IP-Address and a
    Message-Authenticator (first, as the BlastRADIUS guidance asks). Returns (packet, auth)."""
    authenticator = secrets.token_bytes(16)
    name = username.encode()
    hidden = _hide_password(password.encode(), authenticator, secret)
    attrs = (bytes([80, 18]) + b"\0" * 16 + bytes([1, 2 + len(name)]) + name
             + bytes([2, 2 + len(hidden)]) + hidden + bytes([4, 6, 127, 0, 0, 1]))
    header = struct.pack("!BBH", ACCESS_REQUEST, ident, 20 + len(attrs))
    mac = hmac.new(secret, header + authenticator + attrs, "md5").digest()
    return header + authenticator + attrs[:2] + mac + attrs[18:], authenticator


def reply_ok(reply: bytes, authenticator: bytes, secret: bytes = SECRET) -> bool:
    """The Response Authenticator matches (RFC 2865 section 3)."""
    if len(reply) < 20:
        return False
    length = struct.unpack("!H", reply[2:4])[0]
    reply = reply[:length]
    expected = hashlib.md5(reply[:4] + authenticator + reply[20:] + secret).digest()  # noqa: S324
    return hmac.compare_digest(expected, reply[4:20])


# --- the load generator ---------------------------------------------------------------------

@dataclass
class Result:
    server: str
    mode: str
    kind: str  # "closed" (throughput) or "open" (fixed rate)
    sent: int = 0
    answered: int = 0
    accepted: int = 0
    lost: int = 0
    bad_replies: int = 0
    seconds: float = 0.0
    rps: float = 0.0
    p50_ms: float = 0.0
    p99_ms: float = 0.0
    max_ms: float = 0.0
    target_rate: float = 0.0
    window: int = 0
    load_before: float = 0.0
    load_after: float = 0.0
    server_rss_mb: float = 0.0
    server_cpu_ms: float = 0.0  # server CPU time per answered request (all threads)

    def summary(self) -> str:
        rate = f" at {self.target_rate:.0f}/s" if self.kind == "open" else ""
        return (f"{self.server} {self.mode} {self.kind}{rate}: {self.rps:.0f} req/s, "
                f"p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms, "
                f"{self.accepted}/{self.sent} accepted, {self.lost} lost, "
                f"server CPU {self.server_cpu_ms:.2f} ms/request")


class Load:
    """Sends Access-Requests from several UDP sockets (256 Identifiers each) and matches replies
    by (socket, Identifier); a request not answered in REPLY_TIMEOUT is lost."""

    def __init__(self, port: int, requests: Iterator[tuple[str, str]], sockets: int = 32,
                 secret: bytes = SECRET, source: str = "127.0.0.1") -> None:
        self.port, self.requests, self.secret = port, requests, secret
        self.selector = selectors.DefaultSelector()
        self.socks = []
        for index in range(sockets):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((source, 0))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 21)
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, index)
            self.socks.append(sock)
        self.free = deque((s, i) for i in range(256) for s in range(sockets))
        self.outstanding: dict[tuple[int, int], tuple[float, bytes]] = {}
        self.latencies: list[float] = []
        self.sent = self.accepted = self.lost = self.bad = 0
        self.exhausted = False

    def close(self) -> None:
        for sock in self.socks:
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()

    def _send_one(self) -> bool:
        if not self.free:
            return False
        try:
            username, password = next(self.requests)
        except StopIteration:
            self.exhausted = True
            return False
        slot = self.free.popleft()
        raw, authenticator = access_request(slot[1], username, password, self.secret)
        self.outstanding[slot] = (time.perf_counter(), authenticator)
        self.socks[slot[0]].sendto(raw, ("127.0.0.1", self.port))
        self.sent += 1
        return True

    def _receive(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            sock, index = key.fileobj, key.data
            while True:
                try:
                    reply = sock.recv(4096)
                except BlockingIOError:
                    break
                slot = (index, reply[1]) if len(reply) > 1 else None
                entry = self.outstanding.get(slot) if slot else None
                if entry is None:
                    continue  # late reply to a request already counted lost
                sent_at, authenticator = entry
                if not reply_ok(reply, authenticator, self.secret):
                    self.bad += 1
                    continue
                del self.outstanding[slot]
                latency = time.perf_counter() - sent_at
                if latency > REPLY_TIMEOUT:  # the NAS would have given up: lost, not answered
                    self.lost += 1
                    continue
                self.free.append(slot)
                self.latencies.append(latency)
                if reply[0] == ACCESS_ACCEPT:
                    self.accepted += 1

    def _expire(self) -> None:
        now = time.perf_counter()
        for slot, (sent_at, _auth) in list(self.outstanding.items()):
            if now - sent_at > REPLY_TIMEOUT:
                del self.outstanding[slot]
                self.lost += 1
                # the Identifier is not reused: a late reply could be taken for a new request

    def _drain(self) -> None:
        deadline = time.perf_counter() + REPLY_TIMEOUT
        while self.outstanding and time.perf_counter() < deadline:
            self._receive(0.05)
        self.lost += len(self.outstanding)
        self.outstanding.clear()

    def closed(self, window: int, seconds: float) -> float:
        """Keep `window` requests in flight for `seconds`; returns the elapsed time."""
        start = time.perf_counter()
        deadline, last_expire = start + seconds, start
        while time.perf_counter() < deadline and not self.exhausted:
            while len(self.outstanding) < window and self._send_one():
                pass
            self._receive(0.01)
            if time.perf_counter() - last_expire > 0.5:
                self._expire()
                last_expire = time.perf_counter()
        elapsed = time.perf_counter() - start
        self._drain()
        return elapsed

    def open(self, rate: float, seconds: float) -> float:
        """Send at `rate` per second for `seconds`, whatever the answers."""
        start = time.perf_counter()
        total, last_expire = int(rate * seconds), start
        for i in range(total):
            due = start + i / rate
            while (now := time.perf_counter()) < due:
                self._receive(min(due - now, 0.01))
            if not self._send_one():
                break
            if now - last_expire > 0.5:
                self._expire()
                last_expire = now
        elapsed = time.perf_counter() - start
        self._drain()
        return elapsed


def measure(proc: Proc, mode: str, kind: str, requests: Iterator[tuple[str, str]], *,
            seconds: float, source: str = "127.0.0.1", window: int = 64,
            rate: float = 0.0) -> Result:
    load = Load(proc.port, requests, source=source)
    before, cpu_before = os.getloadavg()[0], proc.cpu_seconds()
    try:
        elapsed = load.closed(window, seconds) if kind == "closed" else load.open(rate, seconds)
    finally:
        load.close()
    lat = sorted(load.latencies)
    result = Result(server=proc.name, mode=mode, kind=kind, sent=load.sent, answered=len(lat),
                    accepted=load.accepted, lost=load.lost, bad_replies=load.bad,
                    seconds=round(elapsed, 2), rps=round(len(lat) / elapsed, 1),
                    p50_ms=round(percentile(lat, 0.50) * 1000, 2),
                    p99_ms=round(percentile(lat, 0.99) * 1000, 2),
                    max_ms=round((lat[-1] if lat else 0) * 1000, 2), target_rate=rate,
                    window=window if kind == "closed" else 0,
                    load_before=round(before, 2), load_after=round(os.getloadavg()[0], 2),
                    server_rss_mb=round(proc.rss_mb(), 1),
                    server_cpu_ms=round((proc.cpu_seconds() - cpu_before) * 1000
                                        / max(len(lat), 1), 3))
    print("  " + result.summary(), flush=True)
    return result


class PushHold:
    """Push logins held open at once, like NASes configured to wait longer than the push
    timeout: one Access-Request each from its own (socket, Identifier), never retransmitted,
    and the answer whenever it comes."""

    def __init__(self, port: int, names: list[str], source: str = PUSH_SOURCE) -> None:
        self.port, self.names = port, names
        self.selector = selectors.DefaultSelector()
        self.socks = []
        for index in range(-(-len(names) // 256)):
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            sock.bind((source, 0))
            sock.setblocking(False)
            self.selector.register(sock, selectors.EVENT_READ, index)
            self.socks.append(sock)
        self.waiting: dict[tuple[int, int], tuple[str, float, bytes]] = {}
        self.answers: dict[str, tuple[int, float]] = {}  # name -> (code, when received)
        self.bad = 0

    def close(self) -> None:
        for sock in self.socks:
            self.selector.unregister(sock)
            sock.close()
        self.selector.close()

    def send_all(self, rate: float) -> float:
        """One "push" Access-Request per name at `rate`/s; returns when the last was sent."""
        start = time.perf_counter()
        for i, name in enumerate(self.names):
            while (now := time.perf_counter()) < start + i / rate:
                self.receive(min(start + i / rate - now, 0.01))
            slot = (i // 256, i % 256)
            raw, authenticator = access_request(slot[1], name, "push")
            self.waiting[slot] = (name, time.perf_counter(), authenticator)
            self.socks[slot[0]].sendto(raw, ("127.0.0.1", self.port))
        return time.perf_counter()

    def receive(self, timeout: float) -> None:
        for key, _ in self.selector.select(timeout):
            while True:
                try:
                    reply = key.fileobj.recv(4096)
                except BlockingIOError:
                    break
                entry = self.waiting.get((key.data, reply[1])) if len(reply) > 1 else None
                if entry is None or not reply_ok(reply, entry[2]):
                    self.bad += 1
                    continue
                del self.waiting[(key.data, reply[1])]
                self.answers[entry[0]] = (reply[0], time.perf_counter())

    def hold(self, seconds: float) -> None:
        deadline = time.perf_counter() + seconds
        while (left := deadline - time.perf_counter()) > 0:
            self.receive(min(left, 0.05))

    def wait_for(self, names: list[str], deadline: float) -> None:
        """Until every one of `names` is answered, or the monotonic `deadline`."""
        while time.monotonic() < deadline and any(n not in self.answers for n in names):
            self.receive(0.01)


def push_counts(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.db import Database
    from app.models import PushRequest

    db = Database(database_url)
    try:
        with db.session() as session:
            return dict(session.execute(select(PushRequest.status, func.count())
                                        .group_by(PushRequest.status)).all())
    finally:
        db.dispose()


def answer_pushes(database_url: str, names: list[str], status: str,
                  redis_url: str = "") -> tuple[int, float]:
    """Answer the pending pushes of `names` in the database, as `app.core.push.answer` would
    (the status, answered_at), in one transaction, then (with Redis) announce each one after
    the commit as it does; returns (rows, perf_counter at commit)."""
    from sqlalchemy import select, update

    from app.core.push_events import make_push_events
    from app.db import Database
    from app.models import PushRequest, User

    events = make_push_events(redis_url)

    db = Database(database_url)
    try:
        with db.session() as session:
            session.execute(select(1)).all()  # connected before the clock starts
        with db.session() as session:
            moved = session.execute(
                update(PushRequest)
                .where(PushRequest.status == "pending",
                       PushRequest.user_id.in_(select(User.id).where(User.username.in_(names))))
                .values(status=status, answered_at=datetime.now(UTC))
                .returning(PushRequest.public_id)
                .execution_options(synchronize_session=False)).scalars().all()
        committed_at = time.perf_counter()
        for public_id in moved:
            events.answered(public_id)
        return len(moved), committed_at
    finally:
        db.dispose()


def _wait_for_pending(database_url: str, count: int, deadline: float) -> int:
    while True:
        pending = push_counts(database_url).get("pending", 0)
        if pending >= count or time.monotonic() >= deadline:
            return pending
        time.sleep(0.2)


APPROVED_ALONE = 10  # of the approved sample, approved one after the other


def _approve(hold: PushHold, database_url: str, names: list[str],
             redis_url: str = "") -> list[float]:
    """Approve these pushes in the database at once; the seconds from the commit to each
    login's Access-Accept (or its reply of any kind; within 10 s)."""
    moved, committed_at = answer_pushes(database_url, names, "approved", redis_url)
    if moved != len(names):
        print(f"  approved {moved} of {len(names)} pushes: the rest were not pending",
              flush=True)
    hold.wait_for(names, time.monotonic() + 10)
    return sorted(hold.answers[n][1] - committed_at for n in names if n in hold.answers)


def _spread(seconds: list[float]) -> dict[str, float]:
    values = sorted(seconds)
    return {"p50": round(percentile(values, 0.5) * 1000, 1),
            "p99": round(percentile(values, 0.99) * 1000, 1),
            "max": round((values[-1] if values else 0) * 1000, 1)}


def push_phase(proc: Proc, database_url: str, push_names: list[str],
               requests: Iterator[tuple[str, str]], args: argparse.Namespace) -> tuple[Result,
                                                                                         dict]:
    """Hold len(push_names) push logins waiting, run the fixed-rate passcode phase meanwhile,
    then approve a sample of the pushes in the database (their logins must be accepted within
    about the waiter's polling interval) and deny the rest (rejected): every wait ends."""
    count = len(push_names)
    sample = push_names[:min(args.push_approve, count)]
    rest = push_names[len(sample):]
    info: dict = {"waits": count, "push_timeout_s": args.push_timeout,
                  "rss_mb_before": round(proc.rss_mb(), 1), "load_before": os.getloadavg()[0]}
    hold = PushHold(proc.port, push_names)
    try:
        start = time.perf_counter()
        sent_at = hold.send_all(args.rate)
        info["pending_in_database"] = _wait_for_pending(database_url, count,
                                                        time.monotonic() + 60)
        hold.receive(0)
        info["seconds_to_seed"] = round(time.perf_counter() - start, 2)
        info["answered_early"] = len(hold.answers)  # before any push was answered: failures
        info["rss_mb_held"] = round(proc.rss_mb(), 1)
        cpu, t0 = proc.cpu_seconds(), time.perf_counter()
        hold.hold(3.0)  # nothing but the waiter's polling
        info["idle_cpu_ms_per_s"] = round((proc.cpu_seconds() - cpu) * 1000
                                          / (time.perf_counter() - t0), 1)
        result = measure(proc, f"second-factor, {count:,} push waits held", "open", requests,
                         seconds=args.duration, rate=args.rate)
        hold.receive(0)
        info["answered_early"] = len(hold.answers)
        info["still_waiting"] = len(hold.waiting)
        info["rss_mb_held_after_phase"] = round(proc.rss_mb(), 1)
        # a few approvals one at a time (phones answer at different moments), then the rest
        # of the sample at once (a burst: their logins are finished together)
        singles, burst = sample[:APPROVED_ALONE], sample[APPROVED_ALONE:]
        info["held_seconds"] = round(time.perf_counter() - sent_at, 1)  # all of them, at once
        alone = []
        for i, name in enumerate(singles):
            hold.hold(i * 0.07 % 0.25)  # spread over the waiter's polling cycle
            alone += _approve(hold, database_url, [name], args.redis_url)
        together = _approve(hold, database_url, burst, args.redis_url) if burst else []
        info["approved"] = len(sample)
        info["approved_accepted"] = sum(1 for n in sample
                                        if hold.answers.get(n, (0,))[0] == ACCESS_ACCEPT)
        info["approve_to_accept_ms"] = {f"{len(singles)} one at a time": _spread(alone),
                                        f"{len(burst)} at once": _spread(together)}
        denied, _ = answer_pushes(database_url, rest, "denied", args.redis_url)
        hold.wait_for(rest, time.monotonic() + 60)
        info["denied"] = denied
        info["denied_rejected"] = sum(1 for n in rest
                                      if hold.answers.get(n, (0,))[0] == ACCESS_REJECT)
        info["unanswered"] = len(hold.waiting)
        info["bad_replies"] = hold.bad
        info["retransmissions"] = 0  # the load generator never retransmits a push login
    finally:
        hold.close()
    wait_until_idle(database_url)
    info["rss_mb_after"] = round(proc.rss_mb(), 1)
    info["load_after"] = os.getloadavg()[0]
    info["database_after"] = push_counts(database_url)
    print(f"  push waits: {info}", flush=True)
    return result, info


# --- the servers ----------------------------------------------------------------------------

def _wait_for(predicate: Callable[[], int | None], proc: subprocess.Popen, log: Path,
              what: str, timeout: float = 60) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"{what} exited:\n{log.read_text(errors='replace')[-3000:]}")
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    proc.terminate()
    raise SystemExit(f"{what} did not start in {timeout:.0f} s")


def _status_answered(port: int) -> bool:
    """A Status-Server with Message-Authenticator gets an answer (the server is up)."""
    header = struct.pack("!BBH", 12, 1, 38)
    authenticator = secrets.token_bytes(16)
    attrs = bytes([80, 18]) + b"\0" * 16
    mac = hmac.new(SECRET, header + authenticator + attrs, "md5").digest()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(0.5)
        sock.sendto(header + authenticator + bytes([80, 18]) + mac, ("127.0.0.1", port))
        try:
            return bool(sock.recv(4096))
        except TimeoutError:
            return False


# UM 2FA ---------------------------------------------------------------------------------------

def setup_um2fa(workdir: Path, database_url: str, users: int, push_users: int = 0,
                push_timeout: int = 120) -> dict:
    """Users with one TOTP device each (bulk inserted; one shared argon2 hash: the cost is per
    verification, not per user), `push_users` more with a companion-app device each, and three
    RADIUS clients selected by source address."""
    os.environ["UM2FA_INSTANCE_DIR"] = str(workdir / "instance")
    from sqlalchemy import insert, select

    from app import migrate
    from app.bootstrap import build_services
    from app.config import load_settings, read_settings
    from app.core import radius_clients
    from app.core.context import Origin
    from app.core.password_hashes import ARGON2 as _hasher
    from app.core.password_hashes import hash_password
    from app.models import User
    from app.shared_keys import make_missing

    given = {"instance_dir": workdir / "instance", "database_url": database_url}
    make_missing(read_settings(given))  # the service's keys, as `um2fa keys generate` makes them
    settings = load_settings(given)
    migrate.upgrade(settings.database_url)
    services = build_services(settings)  # the local directory: no UM2FA_DIRECTORY here
    db, keys = services.db, services.keys
    password = "bench-password-1"  # noqa: S105 - the benchmark users' password
    shared_hash = hash_password(password)
    secrets_by_user: dict[str, str] = {}
    now = datetime.now(UTC)
    with db.session() as session:
        rows = [{"username": f"u{i:06d}", "display_name": "", "email": "", "role": "student",
                 "password_hash": shared_hash, "disabled": False, "failed_factor_count": 0,
                 "created_at": now} for i in range(users)]
        for start in range(0, users, 5000):
            session.execute(insert(User), rows[start:start + 5000])
        ids = dict(session.execute(select(User.username, User.id)).all())
        secrets_by_user.update(seed_totp_devices(session, keys, ids, now))
    push_names = seed_push_users(db, keys, push_users, shared_hash, now)
    origin = Origin("benchmark", "local")
    with services.context() as ctx:
        radius_clients.add(ctx, origin, "sfa", "127.0.0.1", SECRET.decode(),
                           mode="second-factor")
        radius_clients.add(ctx, origin, "append", "127.0.0.2", SECRET.decode())
        if push_users:
            radius_clients.add(ctx, origin, "push", PUSH_SOURCE, SECRET.decode(),
                               mode="second-factor", push_timeout=push_timeout)
    db.dispose()
    return {"password": password, "secrets": secrets_by_user, "push_names": push_names,
            "argon2": {"type": "argon2id", "time_cost": _hasher.time_cost,
                       "memory_cost_kib": _hasher.memory_cost,
                       "parallelism": _hasher.parallelism}}


def seed_push_users(db, keys, count: int, password_hash: str, now: datetime) -> list[str]:
    """`count` users (p000000, ...) with one active companion-app device each: a real P-256
    public key (SubjectPublicKeyInfo DER, as activation stores it; one key shared by all) and
    no Web Push subscription, so a push is recorded in the database and nothing is sent out."""
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
    from sqlalchemy import insert, select

    from app.core.factors.totp import new_secret
    from app.models import Device, User

    if not count:
        return []
    public_key = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    names = [f"p{i:06d}" for i in range(count)]
    with db.session() as session:
        session.execute(insert(User), [
            {"username": name, "display_name": "", "email": "", "role": "student",
             "password_hash": password_hash, "disabled": False, "failed_factor_count": 0,
             "created_at": now} for name in names])
        ids = session.execute(select(User.id).where(User.username.in_(names))).scalars().all()
        session.execute(insert(Device), [
            {"user_id": user_id, "name": "Companion app", "kind": "push",
             "device_type": "mobile", "platform": "other",
             "secret_enc": keys.encrypt(new_secret().encode()), "active": True,
             "is_default": True, "public_key": public_key, "created_at": now}
            for user_id in ids])
    return names


def start_um2fa(workdir: Path, database_url: str, threads: int, log_level: str,
                processes: int = 1, redis_url: str = "", extra_env: dict[str, str] | None = None,
                command: list[str] | None = None, log_name: str = "um2fa-radius.log",
                code: Path = ROOT) -> Proc:
    """`um2fa radius` (or `command`, which takes its arguments, e.g. a profiler around it) with
    the run's instance and database, and `extra_env` (more UM2FA_ settings), running the code
    of the checkout `code` (this one by default; another for a before/after comparison)."""
    log = workdir / log_name
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    env.update({"UM2FA_INSTANCE_DIR": str(workdir / "instance"),
                "UM2FA_DATABASE_URL": database_url, **(extra_env or {}),
                # the `um2fa` script of a shared .venv runs this checkout's code
                "PYTHONPATH": os.pathsep.join(filter(None, [str(code),
                                                            env.get("PYTHONPATH")]))})
    if redis_url:
        env["UM2FA_REDIS_URL"] = redis_url  # push fan-out
    proc = subprocess.Popen([*(command or [UM2FA]), "radius", "--host", "127.0.0.1", "--port", "0",
                             "--threads", str(threads), "--processes", str(processes),
                             "--log-level", log_level],
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=ROOT)

    def port() -> int | None:
        match = re.search(r"listening on 127\.0\.0\.1:(\d+)", log.read_text(errors="replace"))
        return int(match.group(1)) if match else None

    return Proc("UM 2FA", proc, _wait_for(port, proc, log, "um2fa radius"), log)


def count_decisions(database_url: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from app.db import Database
    from app.models import AuditEvent, Device

    db = Database(database_url)
    try:
        with db.session() as session:
            by_result = dict(session.execute(
                select(AuditEvent.result, func.count()).where(
                    AuditEvent.action == "radius.access").group_by(AuditEvent.result)).all())
            factor_rows = session.scalar(select(func.count()).select_from(AuditEvent).where(
                AuditEvent.action == "factor"))
            used = session.scalar(select(func.count()).select_from(Device).where(
                Device.last_step.is_not(None)))
    finally:
        db.dispose()
    return {"radius.access": sum(by_result.values()), **{f"radius.access {k}": v for k, v in
                                                          by_result.items()},
            "factor audit rows": factor_rows, "devices with a replay record": used}


def wait_until_idle(database_url: str, timeout: float = 120.0) -> None:
    """Until the number of decisions in the database stops growing (bounded)."""
    deadline, last = time.monotonic() + timeout, -1
    while time.monotonic() < deadline:
        count = count_decisions(database_url)["radius.access"]
        if count == last:
            return
        last = count
        time.sleep(1.0)


class TotpRequests:
    """Each request a distinct user with the current code of their device (computed when sent,
    so a run may cross a 30 s step: the server accepts one step of drift)."""

    def __init__(self, names: list[str], secrets_by_user: dict[str, str],
                 prefix: str = "") -> None:
        import pyotp

        self.names = iter(names)
        self.secrets = secrets_by_user
        self.prefix = prefix
        self.totp = pyotp.TOTP

    def __iter__(self) -> TotpRequests:
        return self

    def __next__(self) -> tuple[str, str]:
        name = next(self.names)
        code = self.totp(self.secrets[name]).now()
        return name, f"{self.prefix}{code}"


# the bare pyrad server (benchmarks/bare_pyrad.py) --------------------------------------------

def start_bare(workdir: Path, users: int) -> Proc:
    log, port = workdir / "bare-pyrad.log", free_udp_port()
    proc = subprocess.Popen([sys.executable, "-m", "benchmarks.bare_pyrad", str(port),
                             SECRET.decode(), str(users)], stdout=log.open("w"),
                            stderr=subprocess.STDOUT,
                            stdin=subprocess.DEVNULL, cwd=ROOT,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    # pyrad's server does not answer Status-Server: wait for its own "ready"
    _wait_for(lambda: port if "ready" in log.read_text() else None, proc, log, "bare pyrad")
    return Proc("bare pyrad", proc, port, log)


# FreeRADIUS ----------------------------------------------------------------------------------

def start_freeradius(binary: str, workdir: Path, users: int) -> Proc:
    """FreeRADIUS as tests/peers/freeradius.py sets it up for the upstream-RADIUS tests (users file,
    PAP, Message-Authenticator required and sent), on a free port."""
    server = FreeRadius(workdir, {f"u{i:06d}": f"pw-{i:06d}" for i in range(users)},
                        SECRET.decode(), binary=binary)
    try:
        server.start()
    except RuntimeError as exc:
        raise SystemExit(str(exc)) from None
    return Proc("FreeRADIUS", server.process, server.port, server.log_path,
                {"version": server.version()})


def plain_requests(users: int) -> Iterator[tuple[str, str]]:
    i = 0
    while True:
        yield f"u{i % users:06d}", f"pw-{i % users:06d}"
        i += 1


# --- the run --------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per phase (default 10)")
    parser.add_argument("--rate", type=float, default=1000.0,
                        help="requests/s of the fixed-rate phase (default 1000)")
    parser.add_argument("--window", type=int, default=64,
                        help="requests in flight in the closed-loop phases (default 64)")
    parser.add_argument("--threads", type=int, default=8,
                        help="`um2fa radius --threads` (default 8)")
    parser.add_argument("--processes", type=int, default=1,
                        help="`um2fa radius --processes` (default 1)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL URL (a fresh schema is made and dropped); default: a "
                             "SQLite file, the embedded default")
    parser.add_argument("--server-log-level", default="info",
                        help="`um2fa radius --log-level` (default info: an audit line per "
                             "decision, as in production)")
    parser.add_argument("--skip-freeradius", action="store_true")
    parser.add_argument("--push-waits", type=int, default=1000,
                        help="push logins held waiting during a second fixed-rate passcode "
                             "phase (default 1000; 0 skips the push phase)")
    parser.add_argument("--push-approve", type=int, default=100,
                        help="of those, approved in the database at the end (the rest are "
                             "denied); default 100")
    parser.add_argument("--push-timeout", type=int, default=120,
                        help="the push client's push timeout in s (default 120; it must cover "
                             "the push phase)")
    parser.add_argument("--redis-url", default="",
                        help="Redis for push fan-out: the server subscribes, and each approval "
                             "is announced after its commit as a web node does (default: none, "
                             "the server polls the database every 0.25 s)")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    if not 1 <= args.duration <= 60 or not 1 <= args.rate <= 20000:
        parser.error("--duration must be 1-60 s and --rate 1-20000/s (the run is bounded)")
    if not 1 <= args.processes <= 16:
        parser.error("--processes must be 1-16")
    if not 0 <= args.push_waits <= 10000 or not 0 <= args.push_approve <= args.push_waits:
        parser.error("--push-waits must be 0-10000 and --push-approve 0-push-waits")
    if not 2 * args.duration + 40 <= args.push_timeout <= 300:
        parser.error("--push-timeout must be 300 s at most and cover the push phase "
                     "(2 x --duration + 40 s)")

    # enough distinct users that every TOTP request is a fresh user: closed-loop phases of
    # up to 4,000/s plus the fixed-rate phase (twice with the push phase)
    fixed = int(args.rate * args.duration)
    sfa_users = int(min(4000, args.rate * 3) * args.duration) + fixed * (2 if args.push_waits
                                                                         else 1)
    append_users = int(300 * args.duration)
    users = sfa_users + append_users
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-bench-"))
    cleanup: list[Callable[[], None]] = []
    results: list[Result] = []
    info: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                             f"Python {platform.python_version()}",
                  "um2fa": f"--threads {args.threads} --processes {args.processes}",
                  "load_at_start": os.getloadavg()}
    try:
        database_url = args.database_url
        if database_url:
            _schema, database_url, drop = fresh_schema(database_url)
            cleanup.append(drop)
        else:
            database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        info["database"] = database_url.split("?")[0].split("@")[-1]
        print(f"setting up {users} users with a TOTP device each ...", flush=True)
        if args.push_waits:
            print(f"... and {args.push_waits} users with a companion-app device each",
                  flush=True)
        setup = setup_um2fa(workdir, database_url, users, args.push_waits, args.push_timeout)
        info["argon2"] = setup["argon2"]
        names = sorted(setup["secrets"])
        sfa_names, append_names = names[:sfa_users], names[sfa_users:]
        split = int(min(4000, args.rate * 3) * args.duration)

        plan: list[tuple[Proc, str, str, str, Iterator[tuple[str, str]]]] = []
        if not args.skip_freeradius:
            binary = ensure_freeradius()
            if binary is None:
                info["freeradius"] = "could not be installed: skipped"
            else:
                fr = start_freeradius(binary, workdir, 1000)
                cleanup.append(fr.stop)
                info["freeradius"] = fr.extra["version"]
                plan += [(fr, "users file, PAP", kind, "127.0.0.1", plain_requests(1000))
                         for kind in ("closed", "open")]
        bare = start_bare(workdir, 1000)
        cleanup.append(bare.stop)
        plan += [(bare, "dict password", kind, "127.0.0.1", plain_requests(1000))
                 for kind in ("closed", "open")]
        ours = start_um2fa(workdir, database_url, args.threads, args.server_log_level,
                           args.processes, args.redis_url)
        cleanup.append(ours.stop)
        info["um2fa_rss_mb_at_start"] = round(ours.rss_mb(), 1)
        secrets_by_user = setup["secrets"]
        # the RADIUS client, and so the mode, is chosen by the source address
        plan += [
            (ours, "second-factor", "closed", "127.0.0.1",
             TotpRequests(sfa_names[:split], secrets_by_user)),
            (ours, "second-factor", "open", "127.0.0.1",
             TotpRequests(sfa_names[split:split + fixed], secrets_by_user)),
            # argon2-bound: only the closed loop (a fixed 1,000/s is far out of its reach)
            (ours, "append", "closed", "127.0.0.2",
             TotpRequests(append_names, secrets_by_user, setup["password"] + ",")),
        ]
        for proc, mode, kind, source, requests in plan:
            print(f"{proc.name}, {mode}, {kind}:", flush=True)
            # argon2 takes a third of a second of CPU: more in flight than there are workers
            # only queues, and past 5 s the load generator counts queued requests lost
            window = min(args.window, args.threads) if mode == "append" else args.window
            results.append(measure(proc, mode, kind, requests, seconds=args.duration,
                                   source=source, window=window, rate=args.rate))
            if proc is ours:
                # requests the load generator gave up on may still be queued in the server:
                # let it finish them so that they do not slow the next phase down
                wait_until_idle(database_url)
            if proc is ours and (mode, kind) == ("second-factor", "open") and args.push_waits:
                # right after its baseline, the same fixed-rate phase with the pushes waiting
                print(f"{proc.name}, second-factor, open, {args.push_waits} push waits held:",
                      flush=True)
                baseline = results[-1]
                result, info["push"] = push_phase(
                    ours, database_url, setup["push_names"],
                    TotpRequests(sfa_names[split + fixed:], secrets_by_user), args)
                results.append(result)
                info["push"]["baseline"] = {"p50_ms": baseline.p50_ms,
                                            "p99_ms": baseline.p99_ms,
                                            "server_cpu_ms": baseline.server_cpu_ms}
        info["um2fa_rss_mb_at_end"] = round(ours.rss_mb(), 1)
        ours.stop()
        info["decisions_in_database"] = count_decisions(database_url)
        info["um2fa_counters"] = re.findall(r"RADIUS counters: (.*)",
                                            ours.log.read_text(errors="replace"))[
                                                -args.processes:]
    finally:
        clean_up(cleanup, workdir)
    report(results, info, args)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "results": [asdict(r) for r in results]},
                                        indent=2, default=str))


def report(results: list[Result], info: dict, args: argparse.Namespace) -> None:
    print()
    print(f"machine: {info['machine']}; load average at start {info['load_at_start']}")
    print(f"database: {info.get('database')}; FreeRADIUS: {info.get('freeradius', 'skipped')}; "
          f"argon2: {info.get('argon2')}")
    print()
    print("| server | mode | run | req/s | p50 ms | p99 ms | accepted/sent | lost | "
          "server CPU ms/req | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for r in results:
        run = (f"max (closed loop, {r.window} in flight)" if r.kind == "closed"
               else f"fixed {r.target_rate:.0f}/s")
        print(f"| {r.server} | {r.mode} | {run} | {r.rps:.0f} | {r.p50_ms:.1f} | "
              f"{r.p99_ms:.1f} | {r.accepted}/{r.sent} | {r.lost} | {r.server_cpu_ms:.2f} | "
              f"{r.load_before}/{r.load_after} |")
    closed = {(r.server, r.mode): r for r in results if r.kind == "closed"}
    ours = closed.get(("UM 2FA", "second-factor"))
    if ours:
        print()
        for (server, _mode), r in closed.items():
            if server != "UM 2FA" and r.rps:
                print(f"UM 2FA second-factor / {server}: {ours.rps / r.rps:.2f}x")
        append = closed.get(("UM 2FA", "append"))
        if append:
            for (server, _mode), r in closed.items():
                if server != "UM 2FA" and r.rps:
                    print(f"UM 2FA append / {server}: {append.rps / r.rps:.3f}x")
    print()
    for key in ("decisions_in_database", "um2fa_counters", "um2fa_rss_mb_at_start",
                "um2fa_rss_mb_at_end"):
        print(f"{key}: {info.get(key)}")
    held = next((r for r in results if "push waits held" in r.mode), None)
    if held and info.get("push"):
        report_push(held, info["push"])


def report_push(held: Result, push: dict) -> None:
    base, count = push["baseline"], push["waits"]
    print()
    print(f"| fixed {held.target_rate:.0f}/s passcode phase | p50 ms | p99 ms | "
          "server CPU ms/req | lost |")
    print("|---|---|---|---|---|")
    print(f"| baseline (no push waits) | {base['p50_ms']:.1f} | {base['p99_ms']:.1f} | "
          f"{base['server_cpu_ms']:.2f} | |")
    print(f"| {count:,} push waits held | {held.p50_ms:.1f} | {held.p99_ms:.1f} | "
          f"{held.server_cpu_ms:.2f} | {held.lost} |")
    ratio = held.p99_ms / base["p99_ms"] if base["p99_ms"] else float("inf")
    print()
    print(f"p99 with the waits held / baseline: {ratio:.2f}x "
          f"({'within' if ratio <= 2 else 'NOT within'} 2x)")
    print(f"pending in the database: {push['pending_in_database']}/{count}; answered before "
          f"any push was: {push['answered_early']}; held {push['held_seconds']} s at once")
    print(f"server RSS: {push['rss_mb_before']} MB before, {push['rss_mb_held']} MB held, "
          f"{push['rss_mb_held_after_phase']} MB after the phase, {push['rss_mb_after']} MB "
          "after every wait ended")
    print(f"server CPU with only the waits (the poller): {push['idle_cpu_ms_per_s']} ms/s")
    print(f"approved {push['approved']}: {push['approved_accepted']} accepted, approve -> "
          f"Access-Accept {push['approve_to_accept_ms']}; denied {push['denied']}: "
          f"{push['denied_rejected']} rejected; unanswered {push['unanswered']}; "
          f"bad replies {push['bad_replies']}")
    print(f"push requests in the database after: {push['database_after']}")


if __name__ == "__main__":
    main()
