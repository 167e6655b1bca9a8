"""`um2fa audit purge` on a large audit table (docs/benchmarks.md, "Audit purge"): the real
command, as an operator runs it, while a writer keeps adding audit records.

    .venv/bin/python -m benchmarks.audit_purge [--json FILE] [--rows 10000000]
        [--ages 365d,90d] [--sqlite-rows 1000000] [--days 400] [--batch-size N]
        [--database-url postgresql://...]

PostgreSQL (a fresh schema at the migrations' head, dropped at the end; the URL from
--database-url, else UM2FA_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test):
--rows audit records spread evenly over the last --days days, oldest first (ids grow with
time, as the doors write them), of realistic sizes (a username of 7 characters, door, action,
result, an IPv4 client address, a device name on half of them, a detail of about 60
characters), filled with INSERT ... SELECT generate_series in chunks of a million with the
secondary indexes dropped and made again afterwards, then VACUUM ANALYZE (what autovacuum
leaves on a live table). Then, for each age in --ages in turn, `um2fa audit purge
--older-than AGE` in a subprocess, while a thread of this script INSERTs one audit record every
10 ms on its own connection (as a live service would) and times each. SQLite: the same on a
fresh file with --sqlite-rows records (0 skips it).

Reported per purge: records deleted, wall time (interpreter start included), records/s, the
CPU time of the command (the kernel's accounting of waited-for children), of its PostgreSQL
backend (found by application_name, read from /proc every 0.2 s while it lives: the last
fraction of a second may be missed) and of every PostgreSQL process on the machine (the
backend, the writer's, WAL writer, checkpointer, autovacuum), the concurrent writer's inserts
(count, p50/p99/max latency, errors), the table's size with its indexes before and after
(pg_total_relation_size; and after a plain VACUUM, which makes the space reusable but gives
little back to the file system), the average size of a record (pg_column_size), and the load
average. Every phase is bounded by a timeout; the script exits non-zero when a check fails
(the records left are not exactly those at or after the cutoff, plus the writer's and the
purge's own)."""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from benchmarks.common import cpu_model, fresh_schema, percentile
from benchmarks.procs import proc_cpu_seconds
from benchmarks.users_import import environment

UM2FA = str(Path(sys.executable).with_name("um2fa"))
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
APPLICATION_NAME = "bench_audit_purge"
CHUNK = 1_000_000  # rows per INSERT ... SELECT
WRITER_EVERY = 0.010  # s between two of the concurrent writer's inserts
PURGE_TIMEOUT = 1800.0  # s, per purge
_AGE = re.compile(r"(\d{1,5})d")
SECONDARY_INDEXES = {"ix_audit_events_at": "at", "ix_audit_events_username": "username",
                     "ix_audit_events_actor": "actor"}
# One generated record: g is the row number (1..total), oldest first. The detail is about 60
# characters, like a RADIUS decision's (client, NAS, station) or a device's name and kind.
PG_FILL = """
INSERT INTO audit_events (at, username, door, action, result, client_addr, device, detail,
                          actor)
SELECT now() - make_interval(days => %(days)s)
           + make_interval(secs => g * (%(days)s * 86400.0 / %(total)s)),
       's' || lpad((g %% 40000)::text, 6, '0'),
       (ARRAY['portal', 'sso', 'radius', 'radius'])[1 + g %% 4],
       (ARRAY['sign_in', 'factor', 'radius.access', 'factor', 'saml.response'])[1 + g %% 5],
       CASE WHEN g %% 20 = 0 THEN 'fail' ELSE 'ok' END,
       '10.' || (g %% 256) || '.' || ((g / 256) %% 256) || '.' || ((g / 65536) %% 256),
       CASE WHEN g %% 2 = 0 THEN 'iPhone ' || (g %% 97) ELSE '' END,
       'client vpn-campus-' || lpad((g %% 8)::text, 2, '0') || '; nas 10.20.'
           || (g %% 200) || '.' || (g %% 250) || '; station 10.' || (g %% 256) || '.'
           || ((g / 256) %% 256) || '.' || (g %% 199),
       CASE WHEN g %% 1000 = 0 THEN 'helpdesk1' ELSE '' END
FROM generate_series(%(start)s, %(stop)s) AS g
"""
SQLITE_FILL = """
WITH RECURSIVE s(g) AS (SELECT ? UNION ALL SELECT g + 1 FROM s WHERE g < ?)
INSERT INTO audit_events (at, username, door, action, result, client_addr, device, detail,
                          actor)
SELECT strftime('%Y-%m-%d %H:%M:%S', ?, '+' || (g * ? / ?) || ' seconds') || '.000000',
       's' || substr('000000' || (g % 40000), -6),
       CASE g % 4 WHEN 0 THEN 'portal' WHEN 1 THEN 'sso' ELSE 'radius' END,
       CASE g % 5 WHEN 0 THEN 'sign_in' WHEN 1 THEN 'factor' WHEN 2 THEN 'radius.access'
                  WHEN 3 THEN 'factor' ELSE 'saml.response' END,
       CASE WHEN g % 20 = 0 THEN 'fail' ELSE 'ok' END,
       '10.' || (g % 256) || '.' || ((g / 256) % 256) || '.' || ((g / 65536) % 256),
       CASE WHEN g % 2 = 0 THEN 'iPhone ' || (g % 97) ELSE '' END,
       'client vpn-campus-' || substr('00' || (g % 8), -2) || '; nas 10.20.' || (g % 200)
           || '.' || (g % 250) || '; station 10.' || (g % 256) || '.' || ((g / 256) % 256)
           || '.' || (g % 199),
       CASE WHEN g % 1000 = 0 THEN 'helpdesk1' ELSE '' END
FROM s
"""
WRITER_INSERT = ("INSERT INTO audit_events (at, username, door, action, result, client_addr,"
                 " device, detail, actor) VALUES ({now}, 'live-user', 'radius', 'factor', 'ok',"
                 " '10.9.9.9', '', 'written during the purge', '')")


@dataclass
class Purge:
    database: str
    age: str
    rows_before: int
    deleted: int
    seconds: float
    cli_cpu_seconds: float
    load_before: list[float]
    load_after: list[float]
    ok: bool
    note: str = ""
    backend_cpu_seconds: float | None = None
    postgres_cpu_seconds: float | None = None
    writer: dict[str, Any] = field(default_factory=dict)
    sizes: dict[str, Any] = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.deleted / self.seconds if self.seconds else 0.0


# --- the command, and what runs beside it -----------------------------------------------------

def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class Writer(threading.Thread):
    """One audit INSERT every WRITER_EVERY s on its own connection (autocommit), each timed,
    until stopped: does a live service keep writing while the purge runs?"""

    def __init__(self, connect: Callable[[], Any], now_sql: str) -> None:
        super().__init__(daemon=True)
        self.connect, self.sql = connect, WRITER_INSERT.format(now=now_sql)
        self.stop = threading.Event()
        self.latencies: list[float] = []
        self.errors: list[str] = []

    def run(self) -> None:
        conn = self.connect()
        try:
            next_at = time.monotonic()
            while not self.stop.is_set():
                started = time.monotonic()
                try:
                    conn.execute(self.sql)
                    if isinstance(conn, sqlite3.Connection):
                        conn.commit()
                except Exception as exc:  # noqa: BLE001 - counted and reported
                    self.errors.append(f"{type(exc).__name__}: {exc}"[:200])
                self.latencies.append(time.monotonic() - started)
                next_at += WRITER_EVERY
                self.stop.wait(max(0.0, next_at - time.monotonic()))
        finally:
            conn.close()

    def summary(self) -> dict[str, Any]:
        ms = sorted(v * 1000 for v in self.latencies)
        return {"inserts": len(ms), "errors": len(self.errors),
                "first_error": self.errors[0] if self.errors else "",
                "p50_ms": round(percentile(ms, 0.5), 2), "p99_ms": round(percentile(ms, 0.99), 2),
                "max_ms": round(ms[-1], 2) if ms else 0.0,
                "over_100_ms": sum(1 for v in ms if v > 100)}


class BackendCpu(threading.Thread):
    """CPU of the command's PostgreSQL backend (by application_name) and of every PostgreSQL
    process, sampled every 0.2 s from /proc (PostgreSQL runs on this machine): processes that
    start and end meanwhile (the command's backend, the writer's) are counted up to their last
    sample."""

    def __init__(self, plain_url: str) -> None:
        super().__init__(daemon=True)
        self.plain_url = plain_url
        self.stop = threading.Event()
        self.backend: dict[int, float] = {}
        self.first = postgres_processes()
        self.last = dict(self.first)

    def run(self) -> None:
        import psycopg

        with psycopg.connect(self.plain_url, autocommit=True) as conn:
            while not self.stop.wait(0.2):
                pids = [row[0] for row in conn.execute(
                    "SELECT pid FROM pg_stat_activity WHERE application_name = %s",
                    (APPLICATION_NAME,))]
                for pid in pids:
                    cpu = proc_cpu_seconds(pid)
                    if cpu is not None:
                        self.backend[pid] = cpu
                self.last.update(postgres_processes())
        self.last.update(postgres_processes())

    def all_postgres(self) -> float:
        return sum(cpu - self.first.get(pid, 0.0) for pid, cpu in self.last.items())


def postgres_processes() -> dict[int, float]:
    """CPU seconds so far of each process named postgres on this machine."""
    found = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if (entry / "comm").read_text().strip() != "postgres":
                    continue
            except OSError:
                continue
            cpu = proc_cpu_seconds(int(entry.name))
            if cpu is not None:
                found[int(entry.name)] = cpu
    return found


def run_purge(database: str, command: list[str], env: dict[str, str], rows_before: int,
              writer: Writer, backend: BackendCpu | None) -> tuple[Purge, str]:
    """Run `command` (um2fa audit purge …) while `writer` writes; what it did."""
    age = command[command.index("--older-than") + 1]
    load, cpu = [round(v, 2) for v in os.getloadavg()], children_cpu()
    writer.start()
    if backend is not None:
        backend.start()
    time.sleep(0.5)  # the writer's baseline before the command starts
    started = time.monotonic()
    try:
        result = subprocess.run(command, env=env,
                                capture_output=True, text=True, timeout=PURGE_TIMEOUT,
                                check=False)
    finally:
        wall = time.monotonic() - started
        time.sleep(0.5)
        writer.stop.set()
        writer.join(30)
        if backend is not None:
            backend.stop.set()
            backend.join(30)
    out = (result.stdout + result.stderr).strip()
    match = re.search(r"deleted (\d+) audit record", out)
    purge = Purge(database, age, rows_before, int(match.group(1)) if match else 0,
                  round(wall, 2), round(children_cpu() - cpu, 2), load,
                  [round(v, 2) for v in os.getloadavg()],
                  ok=result.returncode == 0 and match is not None,
                  note=out.splitlines()[-1] if out else "", writer=writer.summary())
    if backend is not None:
        purge.backend_cpu_seconds = round(sum(backend.backend.values()), 2)
        purge.postgres_cpu_seconds = round(backend.all_postgres(), 2)
    return purge, out


def cutoff_days(age: str) -> int:
    match = _AGE.fullmatch(age)
    if not match:
        raise SystemExit(f"--ages: days only, e.g. 365d (not {age!r})")
    return int(match.group(1))


# --- PostgreSQL ---------------------------------------------------------------------------------

def pg_sizes(conn: Any) -> dict[str, Any]:
    row = conn.execute(
        "SELECT pg_total_relation_size('audit_events'), pg_relation_size('audit_events'),"
        " pg_indexes_size('audit_events'), (SELECT count(*) FROM audit_events)").fetchone()
    total, heap, indexes, rows = row
    return {"rows": rows, "total_mb": mb(total), "table_mb": mb(heap), "indexes_mb": mb(indexes),
            "total_bytes_per_row": round(total / rows, 1) if rows else None}


def mb(n: int) -> float:
    return round(n / 2**20, 1)


def pg_fill(conn: Any, rows: int, days: int) -> dict[str, Any]:
    started = time.monotonic()
    conn.execute("SET synchronous_commit = off")
    conn.execute("SET maintenance_work_mem = '256MB'")
    for name in SECONDARY_INDEXES:
        conn.execute(f'DROP INDEX "{name}"')
    for start in range(1, rows + 1, CHUNK):
        stop = min(rows, start + CHUNK - 1)
        conn.execute(PG_FILL, {"days": days, "total": rows, "start": start, "stop": stop})
        print(f"  filled {stop:,} rows ({time.monotonic() - started:.0f} s)", flush=True)
    for name, column in SECONDARY_INDEXES.items():
        conn.execute(f'CREATE INDEX "{name}" ON audit_events ({column})')
    conn.execute("VACUUM ANALYZE audit_events")
    avg_row = conn.execute(
        "SELECT avg(pg_column_size(a.*)), avg(length(detail)) FROM audit_events a"
        " TABLESAMPLE SYSTEM (1)").fetchone()
    return {"fill_seconds": round(time.monotonic() - started, 1),
            "avg_record_bytes": round(float(avg_row[0]), 1),
            "avg_detail_chars": round(float(avg_row[1]), 1)}


def purge_command(age: str, batch_size: int) -> list[str]:
    return [UM2FA, "audit", "purge", "--older-than", age,
            *(["--batch-size", str(batch_size)] if batch_size else [])]


def postgresql(url: str, rows: int, days: int, ages: list[str], batch_size: int,
               instance: Path, results: list[Purge], info: dict[str, Any]) -> None:
    import psycopg

    schema, schema_url, drop = fresh_schema(url)
    plain = url.replace("postgresql+psycopg://", "postgresql://")
    try:
        from app import migrate

        migrate.upgrade(schema_url)
        with psycopg.connect(plain, autocommit=True) as conn:
            conn.execute(f'SET search_path TO "{schema}"')
            info["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
            print(f"PostgreSQL {info['postgresql']}: filling {rows:,} audit records over "
                  f"{days} days", flush=True)
            info["pg_fill"] = pg_fill(conn, rows, days)
            info["pg_sizes_filled"] = pg_sizes(conn)
            print(f"  {info['pg_fill']}; {info['pg_sizes_filled']}", flush=True)
        env = environment(instance, f"{schema_url}&application_name={APPLICATION_NAME}")

        def connect() -> Any:
            conn = psycopg.connect(plain, autocommit=True)
            conn.execute(f'SET search_path TO "{schema}"')
            return conn

        for age in ages:
            with connect() as conn:
                before = pg_sizes(conn)
                expected_left = tuple(conn.execute(
                    "SELECT count(*) FILTER (WHERE at >= now() - make_interval(days => %s)"
                    " + interval '60 seconds'), count(*) FILTER (WHERE at >= now()"
                    " - make_interval(days => %s)) FROM audit_events",
                    (cutoff_days(age), cutoff_days(age))).fetchone())
            writer = Writer(connect, "now()")
            purge, out = run_purge("postgresql", purge_command(age, batch_size), env,
                                   before["rows"], writer, BackendCpu(plain))
            with connect() as conn:
                after = pg_sizes(conn)
                purge.sizes = {"before": before, "after": after}
                started = time.monotonic()
                conn.execute("VACUUM audit_events")
                purge.sizes["after_vacuum"] = {**pg_sizes(conn),
                                               "vacuum_seconds": round(time.monotonic()
                                                                       - started, 1)}
            check(purge, before["rows"], after["rows"], expected_left, out)
            results.append(purge)
            show(purge)
    finally:
        drop()


# --- SQLite -----------------------------------------------------------------------------------

def sqlite(rows: int, days: int, ages: list[str], batch_size: int, workdir: Path,
           instance: Path, results: list[Purge], info: dict[str, Any]) -> None:
    from app import migrate

    path = workdir / "audit.sqlite3"
    migrate.upgrade(f"sqlite:///{path}")
    started = time.monotonic()
    start_at = datetime.now(UTC).timestamp() - days * 86400
    with sqlite3.connect(path) as conn:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute(SQLITE_FILL, (1, rows, datetime.fromtimestamp(start_at, UTC).strftime(
            "%Y-%m-%d %H:%M:%S"), days * 86400, rows))
    info["sqlite"] = sqlite3.sqlite_version
    info["sqlite_fill_seconds"] = round(time.monotonic() - started, 1)
    print(f"SQLite {sqlite3.sqlite_version}: {rows:,} audit records in "
          f"{info['sqlite_fill_seconds']} s", flush=True)
    env = environment(instance, f"sqlite:///{path}")

    def connect() -> sqlite3.Connection:
        conn = sqlite3.connect(path, timeout=30, check_same_thread=False)
        conn.execute("PRAGMA busy_timeout=30000")
        return conn

    now_sql = "strftime('%Y-%m-%d %H:%M:%f', 'now') || '000'"
    for age in ages:
        with sqlite3.connect(path) as conn:
            count = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
            cut = time.time() - cutoff_days(age) * 86400
            expected_left = tuple(conn.execute(
                "SELECT count(*) FROM audit_events WHERE at >= ?",
                (datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%d %H:%M:%S.%f"),)
            ).fetchone()[0] for when in (cut + 60, cut))
        size_before = path.stat().st_size
        purge, out = run_purge("sqlite", purge_command(age, batch_size), env, count,
                               Writer(connect, now_sql), None)
        with sqlite3.connect(path) as conn:
            left = conn.execute("SELECT count(*) FROM audit_events").fetchone()[0]
        purge.sizes = {"before": {"rows": count, "file_mb": mb(size_before)},
                       "after": {"rows": left, "file_mb": mb(path.stat().st_size)}}
        check(purge, count, left, expected_left, out)
        results.append(purge)
        show(purge)


def check(purge: Purge, before: int, after: int, expected_left: tuple[int, int],
          out: str) -> None:
    """The records left: those at or after the cutoff (counted just before the command: at
    least those a minute younger than the cutoff then, at most all from the cutoff then on),
    the writer's, and the purge's own."""
    inserted = purge.writer["inserts"] - purge.writer["errors"]
    notes = []
    if before + inserted - purge.deleted + 1 != after:  # + the purge's own record
        notes.append(f"{before} + {inserted} - {purge.deleted} + 1 != {after} left")
    if not expected_left[0] <= after - inserted - 1 <= expected_left[1]:
        notes.append(f"{after - inserted - 1} old records left, {expected_left} expected")
    if purge.writer["errors"]:
        notes.append(f"writer: {purge.writer['first_error']}")
    if notes or not purge.ok:
        purge.ok = False
        purge.note = "; ".join(notes + [out[-300:]])


def show(purge: Purge) -> None:
    w = purge.writer
    cpu = f"command CPU {purge.cli_cpu_seconds} s"
    if purge.backend_cpu_seconds is not None:
        cpu += (f", its PostgreSQL backend {purge.backend_cpu_seconds} s, all PostgreSQL "
                f"{purge.postgres_cpu_seconds} s")
    print(f"{purge.database:10} --older-than {purge.age}: {purge.deleted:,} of "
          f"{purge.rows_before:,} deleted in {purge.seconds} s ({purge.rate:,.0f}/s); {cpu}; "
          f"writer {w['inserts']} inserts, p50 {w['p50_ms']} ms, p99 {w['p99_ms']} ms, max "
          f"{w['max_ms']} ms, {w['errors']} errors; load {purge.load_before} -> "
          f"{purge.load_after}; {purge.sizes}{'' if purge.ok else ' FAILED: ' + purge.note}",
          flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--sqlite-rows", type=int, default=1_000_000)
    parser.add_argument("--days", type=int, default=400)
    parser.add_argument("--ages", default="365d,90d")
    parser.add_argument("--database-url", default=os.environ.get("UM2FA_TEST_DATABASE_URL")
                        or DEFAULT_PG)
    parser.add_argument("--batch-size", type=int, default=0,
                        help="the command's --batch-size (default: its own)")
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    ages = args.ages.split(",")
    for age in ages:
        cutoff_days(age)
    if not 1_000 <= args.rows <= 50_000_000 or not 0 <= args.sqlite_rows <= 10_000_000:
        parser.error("--rows: 1,000-50,000,000; --sqlite-rows: 0-10,000,000")
    if not 2 <= args.days <= 3650:
        parser.error("--days: 2-3650")
    info: dict[str, Any] = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} CPUs, Python "
                   f"{platform.python_version()}",
        "load_at_start": [round(v, 2) for v in os.getloadavg()],
        "rows": args.rows, "sqlite_rows": args.sqlite_rows, "days": args.days,
        "batch_size": args.batch_size or "the command's default"}
    print(f"{info['date']}; {info['machine']}; load average {info['load_at_start']}",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-purge-bench-"))
    instance = workdir / "instance"
    results: list[Purge] = []
    started = time.monotonic()
    try:
        if not args.skip_postgresql:
            postgresql(args.database_url, args.rows, args.days, ages, args.batch_size, instance,
                       results, info)
        if args.sqlite_rows:
            sqlite(args.sqlite_rows, args.days, ages, args.batch_size, workdir, instance, results,
                   info)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    info["total_seconds"] = round(time.monotonic() - started, 1)
    print(f"\nload average {info['load_at_start']} at the start, {info['load_at_end']} at the "
          f"end; {info['total_seconds']} s in all", flush=True)
    if args.json:
        args.json.write_text(json.dumps({"info": info, "purges": [
            {**asdict(p), "rows_per_second": round(p.rate, 1)} for p in results]}, indent=2))
    if not results or not all(p.ok for p in results):
        raise SystemExit("FAILED: " + "; ".join(f"{p.database} {p.age}: {p.note}"
                                                for p in results if not p.ok))


if __name__ == "__main__":
    main()
