"""`um2fa users import` and `um2fa users export` at university scale (docs/benchmarks.md, "Users
import and export"): the real command, as an operator runs it, on a fresh database each time.

    .venv/bin/python -m benchmarks.users_import [--json FILE]
        [--rows 10000,100000] [--plain-rows 10000] [--database-url postgresql://...]
        [--skip-postgresql]

For SQLite (a fresh file) and PostgreSQL (a fresh schema, dropped afterwards; the URL from
--database-url, else UM2FA_TEST_DATABASE_URL, else postgresql://postgres@127.0.0.1:5432/test):
each row count in --rows with argon2id hashes as we store them, with bcrypt hashes (as a
directory exports them), and without passwords (UM2FA_DIRECTORY=ldap); then an export of the
last database (the largest); then --plain-rows rows with plain passwords (argon2id hashed over
every core, SQLite only: the database work is the same as above). Every row's hash is the same
string (an import does not verify it; making 100,000 distinct argon2id hashes would take hours).

Reported per run: wall time of the command (interpreter start included), rows/s, the CPU time
of the command and its worker processes (from the kernel's accounting of waited-for children),
and the load average around it. The machine may be shared: the load average is printed at the
start and the end of every run, and a load above 2 (on 2 cores) is flagged."""

from __future__ import annotations

import argparse
import csv
import json
import os
import platform
import resource
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import bcrypt

from benchmarks.common import cpu_model, fresh_schema

ROOT = Path(__file__).resolve().parents[1]
UM2FA = str(Path(sys.executable).with_name("um2fa"))
DEFAULT_PG = "postgresql://postgres@127.0.0.1:5432/test"
BUSY_LOAD = 2.0  # on this 2-core machine: above it, other work shares the cores
ARGON2_AS_STORED = ("$argon2id$v=19$m=65536,t=3,p=4$3DzxbtPyYdIJkCVMk8kBgA$P4b8h2QhpwdnTGD0mwoqy"
                    "PJeir+ABrctq2Qm6hZi4dg")
LDAP = {"UM2FA_DIRECTORY": "ldap", "UM2FA_LDAP_URL": "ldap://127.0.0.1:9",
        "UM2FA_LDAP_USER_DN_TEMPLATE": "uid={username},ou=people,dc=um,dc=edu,dc=mo"}


@dataclass
class Run:
    database: str
    kind: str  # argon2id | bcrypt | none | plain | export
    rows: int
    seconds: float
    cpu_seconds: float
    load_before: float
    load_after: float
    ok: bool
    note: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def write_csv(path: Path, rows: int, kind: str) -> None:
    header = ["username", "dob", "id_last4", "role", "name", "email", "given_name", "surname"]
    secret = {"argon2id": ARGON2_AS_STORED,
              "bcrypt": bcrypt.hashpw(b"pass-1234", bcrypt.gensalt(10)).decode()}.get(kind)
    if kind in ("argon2id", "bcrypt"):
        header.append("password_hash")
    elif kind == "plain":
        header.append("password")
    with path.open("w", newline="", encoding="utf-8") as out:
        writer = csv.writer(out)
        writer.writerow(header)
        for n in range(rows):
            row = [f"s{n:06}", f"{1990 + n % 20}-{1 + n % 12:02}-{1 + n % 28:02}",
                   f"{n % 10000:04}", "staff" if n % 10 == 0 else "student",
                   f"Chan, Tai Man {n}", f"s{n:06}@um.edu.mo", "Tai Man", f"Chan {n}"]
            if secret:
                row.append(secret)
            elif kind == "plain":
                row.append(f"pass-{secrets.token_hex(6)}")
            writer.writerow(row)


def environment(instance: Path, url: str, extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    # PYTHONPATH: the `um2fa` script of a shared .venv runs this checkout's code
    env.update({"UM2FA_INSTANCE_DIR": str(instance), "UM2FA_DATABASE_URL": url,
                "UM2FA_SECRET_KEY": secrets.token_urlsafe(32),
                "UM2FA_ENCRYPTION_KEY": secrets.token_urlsafe(32),
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                            env.get("PYTHONPATH")]))})
    env.update(extra or {})
    return env


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed(args: list[str], env: dict[str, str], limit: float) -> tuple[float, float, float,
                                                                       float, str]:
    """(wall s, CPU s of the command and its children, load before, load after, stderr tail)."""
    load, cpu, started = os.getloadavg()[0], children_cpu(), time.monotonic()
    result = subprocess.run([UM2FA, *args], env=env, capture_output=True, text=True,
                            timeout=limit, check=False)
    wall = time.monotonic() - started
    if result.returncode != 0:
        raise RuntimeError(f"um2fa {' '.join(args[:2])} failed: {result.stderr[-500:]}")
    return wall, children_cpu() - cpu, load, os.getloadavg()[0], (result.stdout
                                                                    + result.stderr)[-300:]


class Database:
    """A fresh database per run: a SQLite file, or a PostgreSQL schema dropped afterwards."""

    def __init__(self, kind: str, workdir: Path, pg_url: str) -> None:
        self.kind, self.workdir, self.pg_url = kind, workdir, pg_url
        self._drop: Callable[[], None] | None = None

    def __enter__(self) -> str:
        if self.kind == "sqlite":
            path = self.workdir / f"db-{secrets.token_hex(4)}.sqlite3"
            self._drop = path.unlink
            url = f"sqlite:///{path}"
        else:
            _schema, url, self._drop = fresh_schema(self.pg_url)
        from app import migrate

        migrate.upgrade(url)
        return url

    def __exit__(self, *exc: object) -> None:
        if self._drop is not None:
            self._drop()


def one_import(database: str, url: str, kind: str, rows: int, csv_path: Path,
               instance: Path, limit: float) -> Run:
    env = environment(instance, url, LDAP if kind == "none" else None)
    wall, cpu, before, after, tail = timed(["users", "import", str(csv_path)], env, limit)
    ok = f"imported {rows} user(s)" in tail
    return Run(database, kind, rows, round(wall, 2), round(cpu, 2), round(before, 2),
               round(after, 2), ok, tail.strip().splitlines()[-1] if tail.strip() else "")


def export(database: str, url: str, rows: int, instance: Path, workdir: Path,
           limit: float) -> Run:
    out = workdir / "export.csv"
    wall, cpu, before, after, _tail = timed(["users", "export", str(out)],
                                            environment(instance, url), limit)
    with out.open(encoding="utf-8-sig") as stream:
        lines = sum(1 for _ in csv.reader(stream)) - 1
    run = Run(database, "export", rows, round(wall, 2), round(cpu, 2), round(before, 2),
              round(after, 2), lines == rows, f"{lines} rows, {out.stat().st_size // 1024} KiB")
    out.unlink()
    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", default="10000,100000")
    parser.add_argument("--plain-rows", type=int, default=10000)
    parser.add_argument("--database-url", default=os.environ.get("UM2FA_TEST_DATABASE_URL")
                        or DEFAULT_PG)
    parser.add_argument("--skip-postgresql", action="store_true")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    counts = [int(n) for n in args.rows.split(",")]
    if not all(1 <= n <= 1_000_000 for n in counts) or not 0 <= args.plain_rows <= 100_000:
        parser.error("--rows: 1-1,000,000 each; --plain-rows: 0-100,000")
    cores = len(os.sched_getaffinity(0))
    info = {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "machine": f"{cpu_model()}, {platform.machine()}, {os.cpu_count()} CPUs ({cores} "
                       f"usable), Python {platform.python_version()}",
            "load_at_start": [round(v, 2) for v in os.getloadavg()]}
    print(f"{info['date']}; {info['machine']}; load average {info['load_at_start']}",
          flush=True)
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-import-bench-"))
    instance = workdir / "instance"
    runs: list[Run] = []
    started = time.monotonic()
    try:
        files = {}
        for kind in ("argon2id", "bcrypt", "none"):
            for n in counts:
                files[kind, n] = workdir / f"{kind}-{n}.csv"
                write_csv(files[kind, n], n, kind)
        databases = ["sqlite"] + ([] if args.skip_postgresql else ["postgresql"])
        for database in databases:
            for n in counts:
                for kind in ("argon2id", "bcrypt", "none"):
                    with Database(database, workdir, args.database_url) as url:
                        runs.append(one_import(database, url, kind, n, files[kind, n],
                                               instance, limit=max(600, n / 50)))
                        show(runs[-1])
                        if kind == "none" and n == max(counts):
                            runs.append(export(database, url, n, instance, workdir,
                                               limit=max(600, n / 50)))
                            show(runs[-1])
        if args.plain_rows:
            path = workdir / "plain.csv"
            write_csv(path, args.plain_rows, "plain")
            with Database("sqlite", workdir, args.database_url) as url:
                run = one_import("sqlite", url, "plain", args.plain_rows, path, instance,
                                 limit=max(3600, args.plain_rows))
            run.extra = {"workers": cores,
                         "hashes_per_cpu_second": round(args.plain_rows / run.cpu_seconds, 2),
                         "hashes_per_second": round(args.plain_rows / run.seconds, 2)}
            runs.append(run)
            show(run)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    info["load_at_end"] = [round(v, 2) for v in os.getloadavg()]
    info["total_seconds"] = round(time.monotonic() - started, 1)
    busy = max(max(r.load_before, r.load_after) for r in runs) if runs else 0
    print(f"\nload average {info['load_at_start']} at the start, {info['load_at_end']} at the "
          f"end; {info['total_seconds']} s in all"
          + (f"; BUSY MACHINE: load up to {busy} (above {BUSY_LOAD}): other work shared the "
             "cores, figures are slower than on a quiet machine" if busy > BUSY_LOAD else ""))
    if args.json:
        args.json.write_text(json.dumps({"info": info, "runs": [
            {**asdict(r), "rows_per_second": round(r.rate, 1)} for r in runs]}, indent=2))
    if not all(r.ok for r in runs):
        raise SystemExit("FAILED: " + "; ".join(f"{r.database} {r.kind} {r.rows}: {r.note}"
                                                for r in runs if not r.ok))


def show(run: Run) -> None:
    extra = "".join(f", {k} {v}" for k, v in run.extra.items())
    print(f"{run.database:10} {run.kind:8} {run.rows:>7} rows: {run.seconds:8.2f} s "
          f"({run.rate:8.0f} rows/s), CPU {run.cpu_seconds:8.2f} s, load {run.load_before} -> "
          f"{run.load_after}{extra}{'' if run.ok else ' FAILED'}  [{run.note}]", flush=True)


if __name__ == "__main__":
    main()
