"""The VPN path with LDAP passwords (issue 18, point 3): `um2fa radius` in append mode with
UM2FA_DIRECTORY=ldap against slapd on this machine, back to back with slapd's own simple-bind
rate measured in the same run by the same client library (ldap3).

    .venv/bin/python -m benchmarks.radius_ldap [--duration 10] [--rate R] [--threads 8]
                                               [--modes bind,search] [--database-url URL]
                                               [--ref-threads 8] [--synced-ago S]
                                               [--json FILE]

slapd (Debian's, tests/peers/ldap_server.py: its own cn=config in a temporary directory, free
ports on 127.0.0.1, logging nothing per operation) holds enough people (u000000, ...; one
shared {SSHA} password) that every RADIUS request is a distinct user. Each of them also has a
local row (as the first sign-in's provisioning leaves it) with one TOTP device.

1. slapd's own simple-bind rate: --ref-threads threads in this process, each with one open
   ldap3 connection, bind after bind as the next user (closed loop, --duration s). Measured
   before and after UM 2FA's phases; the higher of the two is the reference.
2. `um2fa radius` (append mode: "password,TOTPcode") with its LDAP directory in bind-as-user
   mode (`UM2FA_LDAP_USER_DN_TEMPLATE`) and in search-then-bind mode (the service account
   searches for the DN; in both modes it reads the attributes after the bind, unless the row
   was brought up to date from them within UM2FA_LDAP_ATTRIBUTE_MAX_AGE: --synced-ago S says
   so for every row, S seconds ago): each request a distinct user with the current code of
   their device, so every accept is the LDAP bind, the attribute lookup (provisioning; not
   with --synced-ago under the window), the TOTP check with its replay record and the audit
   rows.
   A closed loop (--window requests in flight: the door queues at most 2 password checks per
   worker thread) for requests/s, then a fixed rate (--rate; by default half the closed loop's)
   for p50/p99 at that load. The load generator, its reply checks and the server CPU from /proc
   are benchmarks/radius.py's; slapd's CPU is read the same way.

Everything listens on 127.0.0.1 and every phase has a deadline. Results go to standard output
(Markdown) and, with --json, to a file. --profile DIR runs the server under cProfile (every
thread: benchmarks/profiled.py) and leaves one .pstats file per mode there.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from benchmarks.common import clean_up, fresh_schema, percentile, seed_totp_devices
from benchmarks.procs import Proc, proc_cpu_seconds
from benchmarks.radius import (
    ROOT,
    SECRET,
    Result,
    TotpRequests,
    count_decisions,
    measure,
    start_um2fa,
    wait_until_idle,
)
from tests.peers.ldap_server import (
    BULK_PASSWORD,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
    SlapdServer,
    bulk_name,
    bulk_person,
)

MODES = ("bind", "search")
MODE_NAMES = {"bind": "bind as the user (DN template)", "search": "search, then bind"}


# --- the reference: slapd's simple-bind rate with ldap3 ---------------------------------------

@dataclass
class BindRate:
    threads: int
    seconds: float
    binds: int
    failed: int
    rps: float
    p50_ms: float
    p99_ms: float
    slapd_cpu_ms: float  # slapd CPU per bind
    client_cpu_ms: float  # this process's CPU per bind (ldap3)
    load_before: float
    load_after: float

    def summary(self) -> str:
        return (f"slapd simple binds (ldap3, {self.threads} threads): {self.rps:.0f}/s, "
                f"p50 {self.p50_ms:.2f} ms, p99 {self.p99_ms:.2f} ms, {self.failed} failed, "
                f"slapd CPU {self.slapd_cpu_ms:.3f} ms/bind, client CPU "
                f"{self.client_cpu_ms:.3f} ms/bind")


def bind_rate(slapd: SlapdServer, threads: int, seconds: float, users: int) -> BindRate:
    """Closed loop: each thread binds again and again on its own open connection, as the next
    user each time (as `LdapDirectory` opens its connections: no schema read, raw results)."""
    from ldap3 import NONE, SIMPLE, Connection, Server

    latencies: list[list[float]] = [[] for _ in range(threads)]
    failed = [0] * threads
    start = threading.Barrier(threads + 1)
    stop_at = [0.0]

    def work(index: int) -> None:
        conn = Connection(Server("127.0.0.1", port=slapd.port, get_info=NONE,
                                 connect_timeout=5), raise_exceptions=False,
                          receive_timeout=5, read_only=True, check_names=True)
        conn.open()
        mine, user = latencies[index], index
        start.wait(timeout=30)
        try:
            while (now := time.perf_counter()) < stop_at[0]:
                conn.user, conn.password = f"uid={bulk_name(user % users)},{PEOPLE}", BULK_PASSWORD
                conn.authentication = SIMPLE
                if not conn.bind(read_server_info=False):
                    failed[index] += 1
                mine.append(time.perf_counter() - now)
                user += threads
        finally:
            conn.unbind()

    workers = [threading.Thread(target=work, args=(i,), daemon=True) for i in range(threads)]
    for worker in workers:
        worker.start()
    load_before = os.getloadavg()[0]
    slapd_before = proc_cpu_seconds(slapd.process.pid) or 0.0
    client_before = _self_cpu()
    began = time.perf_counter()
    stop_at[0] = began + seconds
    start.wait(timeout=30)
    for worker in workers:
        worker.join(timeout=seconds + 30)
    elapsed = time.perf_counter() - began
    slapd_cpu = (proc_cpu_seconds(slapd.process.pid) or 0.0) - slapd_before
    client_cpu = _self_cpu() - client_before
    lat = sorted(x for mine in latencies for x in mine)
    count = max(len(lat), 1)
    result = BindRate(threads=threads, seconds=round(elapsed, 2), binds=len(lat),
                      failed=sum(failed), rps=round(len(lat) / elapsed, 1),
                      p50_ms=round(percentile(lat, 0.5) * 1000, 3),
                      p99_ms=round(percentile(lat, 0.99) * 1000, 3),
                      slapd_cpu_ms=round(slapd_cpu * 1000 / count, 4),
                      client_cpu_ms=round(client_cpu * 1000 / count, 4),
                      load_before=round(load_before, 2),
                      load_after=round(os.getloadavg()[0], 2))
    print("  " + result.summary(), flush=True)
    return result


def _self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# --- UM 2FA's side ------------------------------------------------------------------------------

def setup_database(workdir: Path, database_url: str, users: int,
                   synced_ago: float = -1.0) -> dict[str, str]:
    """The local rows of `users` directory people (as provisioning leaves them: no password
    hash, the directory's name, mail and role) with one TOTP device each, and the RADIUS
    client on 127.0.0.1 in append mode. `synced_ago` >= 0: the rows were brought up to date
    from the directory that many seconds ago (users.directory_synced_at), else never. Returns
    each user's TOTP secret."""
    os.environ["UM2FA_INSTANCE_DIR"] = str(workdir / "instance")
    from sqlalchemy import insert, select

    from app import migrate
    from app.bootstrap import build_services
    from app.config import load_settings, read_settings
    from app.core import radius_clients
    from app.core.context import Origin
    from app.models import User
    from app.shared_keys import make_missing

    given = {"instance_dir": workdir / "instance", "database_url": database_url}
    make_missing(read_settings(given))
    settings = load_settings(given)
    migrate.upgrade(settings.database_url)
    services = build_services(settings)
    db, keys = services.db, services.keys
    now = datetime.now(UTC)
    synced = {"directory_synced_at": now - timedelta(seconds=synced_ago)} \
        if synced_ago >= 0 else {}
    secrets_by_user: dict[str, str] = {}
    with db.session() as session:
        rows = []
        for i in range(users):
            person = bulk_person(i)
            rows.append({"username": person["uid"], "display_name": person["cn"],
                         "email": person["mail"], "role": person["employeeType"],
                         "given_name": person["givenName"], "surname": person["sn"],
                         "password_hash": None, "disabled": False, "failed_factor_count": 0,
                         "created_at": now, **synced})
        for start in range(0, users, 5000):
            session.execute(insert(User), rows[start:start + 5000])
        ids = dict(session.execute(select(User.username, User.id)).all())
        secrets_by_user.update(seed_totp_devices(session, keys, ids, now))
    with services.context() as ctx:
        radius_clients.add(ctx, Origin("benchmark", "local"), "vpn", "127.0.0.1",
                           SECRET.decode())  # append mode, "," between password and code
    db.dispose()
    return secrets_by_user


def ldap_env(slapd: SlapdServer, mode: str, args: argparse.Namespace) -> dict[str, str]:
    """The directory's settings; the service account reads the attributes in both modes."""
    env = {"UM2FA_DIRECTORY": "ldap", "UM2FA_LDAP_URL": slapd.url,
           "UM2FA_LDAP_BIND_DN": SERVICE_DN, "UM2FA_LDAP_BIND_PASSWORD": SERVICE_PASSWORD}
    if mode == "bind":
        env["UM2FA_LDAP_USER_DN_TEMPLATE"] = f"uid={{username}},{PEOPLE}"
    else:
        env["UM2FA_LDAP_BASE_DN"] = PEOPLE
    if args.pool_size:
        env["UM2FA_LDAP_POOL_SIZE"] = str(args.pool_size)
    if args.bind_pool_size:
        env["UM2FA_LDAP_BIND_POOL_SIZE"] = str(args.bind_pool_size)
    return env


@dataclass
class Phase:
    result: Result
    directory: str  # the LDAP mode
    slapd_cpu_ms: float  # slapd CPU per answered request


def phase(proc: Proc, slapd: SlapdServer, directory: str, kind: str, requests: TotpRequests,
          args: argparse.Namespace, rate: float = 0.0) -> Phase:
    before = proc_cpu_seconds(slapd.process.pid) or 0.0
    result = measure(proc, f"append, LDAP {directory}", kind, requests, seconds=args.duration,
                     window=args.window, rate=rate)
    used = (proc_cpu_seconds(slapd.process.pid) or 0.0) - before
    slapd_ms = round(used * 1000 / max(result.answered, 1), 4)
    print(f"  slapd CPU {slapd_ms:.3f} ms/request", flush=True)
    return Phase(result, directory, slapd_ms)


def run_mode(workdir: Path, database_url: str, slapd: SlapdServer, directory: str,
             names: list[str], secrets_by_user: dict[str, str],
             args: argparse.Namespace) -> tuple[list[Phase], dict]:
    command = None
    if args.profile:
        args.profile.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "benchmarks.profiled",
                   str(args.profile.resolve() / f"radius-ldap-{directory}.pstats")]
    proc = start_um2fa(workdir, database_url, args.threads, args.server_log_level,
                       args.processes, extra_env=ldap_env(slapd, directory, args),
                       command=command, log_name=f"um2fa-radius-{directory}.log",
                       code=args.server_code or ROOT)
    closed_users = int(args.max_rate * args.duration)
    phases: list[Phase] = []
    try:
        print(f"UM 2FA, append, LDAP {MODE_NAMES[directory]}, closed loop:", flush=True)
        phases.append(phase(proc, slapd, directory, "closed",
                            TotpRequests(names[:closed_users], secrets_by_user,
                                         BULK_PASSWORD + ","), args))
        wait_until_idle(database_url)
        rate = args.rate or max(10.0, round(phases[-1].result.rps / 2, -1))
        print(f"UM 2FA, append, LDAP {MODE_NAMES[directory]}, fixed {rate:.0f}/s:", flush=True)
        phases.append(phase(proc, slapd, directory, "open",
                            TotpRequests(names[closed_users:], secrets_by_user,
                                         BULK_PASSWORD + ","), args, rate))
        wait_until_idle(database_url)
        rss = round(proc.rss_mb(), 1)
    finally:
        proc.stop()
    log = proc.log.read_text(errors="replace")
    errors = [line for line in log.splitlines() if "ERROR" in line or "Traceback" in line]
    return phases, {"rss_mb_at_end": rss, "error_lines": len(errors),
                    "first_errors": errors[:3]}


# --- the run ------------------------------------------------------------------------------------

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=10.0,
                        help="seconds per phase (default 10)")
    parser.add_argument("--rate", type=float, default=0.0,
                        help="requests/s of the fixed-rate phase (default: half the closed "
                             "loop's rate just measured, rounded to 10/s)")
    parser.add_argument("--threads", type=int, default=8,
                        help="`um2fa radius --threads` (default 8)")
    parser.add_argument("--processes", type=int, default=1,
                        help="`um2fa radius --processes` (default 1)")
    parser.add_argument("--window", type=int, default=0,
                        help="requests in flight in the closed loop (default: 2 x --threads x "
                             "--processes, what the door queues)")
    parser.add_argument("--ref-threads", type=int, default=8,
                        help="threads of the slapd bind-rate reference (default 8)")
    parser.add_argument("--modes", default="bind,search",
                        help="LDAP modes to run: bind, search or both (default bind,search)")
    parser.add_argument("--max-rate", type=float, default=2000.0,
                        help="the most requests/s the closed loop is given users for "
                             "(default 2000; it ends early when they run out); the fixed-rate "
                             "phase gets half as many")
    parser.add_argument("--pool-size", type=int, default=0,
                        help="UM2FA_LDAP_POOL_SIZE (default: the setting's default)")
    parser.add_argument("--bind-pool-size", type=int, default=0,
                        help="UM2FA_LDAP_BIND_POOL_SIZE (default: the setting's default)")
    parser.add_argument("--database-url", default="",
                        help="PostgreSQL URL (a fresh schema is made and dropped); default: a "
                             "SQLite file, the embedded default")
    parser.add_argument("--server-log-level", default="info",
                        help="`um2fa radius --log-level` (default info: the audit lines, as "
                             "in production)")
    parser.add_argument("--server-code", type=Path,
                        help="the checkout whose code `um2fa radius` runs (default: this one; "
                             "another, e.g. main's, for a before/after comparison)")
    parser.add_argument("--profile", type=Path,
                        help="run the server under cProfile; a .pstats file per mode here")
    parser.add_argument("--synced-ago", type=float, default=-1.0,
                        help="seconds since each local row was last brought up to date from "
                             "the directory (a login within UM2FA_LDAP_ATTRIBUTE_MAX_AGE of it "
                             "reads no attributes); default: never, every login reads them")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if not modes or any(m not in MODES for m in modes):
        parser.error("--modes: bind, search or bind,search")
    if not 1 <= args.duration <= 60 or not 0 <= args.rate <= 5000:
        parser.error("--duration must be 1-60 s and --rate 0-5000/s (the run is bounded)")
    if not 100 <= args.max_rate <= 20000:
        parser.error("--max-rate must be 100-20000")
    if not 1 <= args.threads <= 64 or not 1 <= args.processes <= 8 \
            or not 1 <= args.ref_threads <= 64:
        parser.error("--threads 1-64, --processes 1-8, --ref-threads 1-64")
    args.window = args.window or 2 * args.threads * args.processes
    args.rate = min(args.rate, args.max_rate / 2) if args.rate else 0.0
    per_mode = int(args.max_rate * args.duration) + int(args.max_rate / 2 * args.duration)
    users = per_mode * len(modes)
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-ldap-bench-"))
    cleanup: list[Callable[[], None]] = []
    phases: list[Phase] = []
    references: list[BindRate] = []
    info: dict = {"machine": f"{platform.machine()}, {os.cpu_count()} CPUs, "
                             f"Python {platform.python_version()}",
                  "um2fa": f"--threads {args.threads} --processes {args.processes}",
                  "server_code": str(args.server_code or ROOT),
                  "window": args.window, "synced_ago": args.synced_ago,
                  "started": datetime.now(UTC).isoformat(),
                  "load_at_start": os.getloadavg(), "users": users}
    try:
        database_url = args.database_url
        if database_url:
            _schema, database_url, drop = fresh_schema(database_url)
            cleanup.append(drop)
        else:
            database_url = f"sqlite:///{workdir / 'bench.sqlite3'}"
        info["database"] = database_url.split("?")[0].split("@")[-1]
        print(f"slapd with {users:,} people; the same users in the database, a TOTP device "
              "each ...", flush=True)
        slapd = SlapdServer(workdir / "slapd", bulk_users=users, log_level="0")
        slapd.start()
        cleanup.append(slapd.stop)
        info["slapd"] = subprocess.run(["slapd", "-VV"], capture_output=True, text=True,
                                       timeout=10).stderr.split("\n")[0].strip()
        secrets_by_user = setup_database(workdir, database_url, users, args.synced_ago)
        names = [bulk_name(i) for i in range(users)]
        print("slapd's own simple-bind rate (before):", flush=True)
        references.append(bind_rate(slapd, args.ref_threads, args.duration, users))
        for index, directory in enumerate(modes):
            mine = names[index * per_mode:(index + 1) * per_mode]
            done, info[f"um2fa_{directory}"] = run_mode(workdir, database_url, slapd,
                                                        directory, mine, secrets_by_user, args)
            phases += done
        print("slapd's own simple-bind rate (after):", flush=True)
        references.append(bind_rate(slapd, args.ref_threads, args.duration, users))
        info["decisions_in_database"] = count_decisions(database_url)
        info["load_at_end"] = os.getloadavg()
    finally:
        clean_up(cleanup, workdir)
    report(phases, references, info, args)
    if args.json:
        args.json.write_text(json.dumps({
            "info": info, "references": [asdict(r) for r in references],
            "results": [{**asdict(p.result), "directory": p.directory,
                         "slapd_cpu_ms": p.slapd_cpu_ms} for p in phases]},
            indent=2, default=str))


def report(phases: list[Phase], references: list[BindRate], info: dict,
           args: argparse.Namespace) -> None:
    print()
    print(f"machine: {info['machine']}; load average at start {info['load_at_start']}, "
          f"at end {info.get('load_at_end')}")
    print(f"database: {info.get('database')}; {info.get('slapd')}; um2fa radius "
          f"{info['um2fa']} ({info['server_code']}); {info['users']:,} users")
    print()
    print("| run | req/s | p50 ms | p99 ms | accepted/sent | lost | server CPU ms/req | "
          "slapd CPU ms/req | load avg before/after |")
    print("|---|---|---|---|---|---|---|---|---|")
    for ref in references:
        print(f"| slapd simple binds, ldap3, {ref.threads} threads (closed loop) | "
              f"{ref.rps:.0f} | {ref.p50_ms:.2f} | {ref.p99_ms:.2f} | "
              f"{ref.binds - ref.failed}/{ref.binds} | | {ref.client_cpu_ms:.3f} (client) | "
              f"{ref.slapd_cpu_ms:.3f} | {ref.load_before}/{ref.load_after} |")
    for p in phases:
        r = p.result
        run = (f"closed loop, {r.window} in flight" if r.kind == "closed"
               else f"fixed {r.target_rate:.0f}/s")
        print(f"| UM 2FA append, LDAP {p.directory}, {run} | {r.rps:.0f} | {r.p50_ms:.1f} | "
              f"{r.p99_ms:.1f} | {r.accepted}/{r.sent} | {r.lost} | {r.server_cpu_ms:.2f} | "
              f"{p.slapd_cpu_ms:.3f} | {r.load_before}/{r.load_after} |")
    reference = max((r.rps for r in references), default=0.0)
    print()
    for p in phases:
        if p.result.kind == "closed" and reference:
            ratio = p.result.rps / reference
            print(f"UM 2FA append, LDAP {p.directory} / slapd simple binds: {ratio:.2f}x "
                  f"({'meets' if ratio >= 0.5 else 'under'} the 0.5x target)")
    print()
    for key in ("decisions_in_database", *(f"um2fa_{m}" for m in MODES)):
        if key in info:
            print(f"{key}: {info[key]}")


if __name__ == "__main__":
    main()
