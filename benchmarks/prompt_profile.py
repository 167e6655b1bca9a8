"""Where the prompt's passcode POST spends its CPU: the web door in one process, no HTTP.

    .venv/bin/python -m benchmarks.prompt_profile [--users 600] [--cprofile [--dump FILE]]
                                                  [--top 40] [--statements] [--no-logging]
                                                  [--sqlite] [--database-url URL]
                                                  [--redis-url URL]

The same request as benchmarks.web_nodes times (POST /prompt with the session cookie, the
CSRF token, next=done, the device and its current code), called as the WSGI application with
pre-built environs, so what is measured is the app: Flask, the session, CSRF, the limits, the
core and the database client, and the log lines (configured as wsgi.py does). A plain run
gives the CPU ms per request (process time); --cprofile then runs as many again under cProfile
(CPU time) and prints the top functions by own and by cumulative time; --statements prints
the SQL of one POST that goes through SQLAlchemy's execution (the compiled hot-path statements,
app/db.py: Prepared, do not). Bounded: --users requests per run. For a sampling profile, run it
under py-spy (`py-spy record -f raw -- .venv/bin/python -m benchmarks.prompt_profile`).
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import shutil
import tempfile
import time
from pathlib import Path
from urllib.parse import urlencode

from benchmarks.common import fresh_schema
from benchmarks.web_nodes import (
    COOKIE,
    DEFAULT_DATABASE_URL,
    DEFAULT_REDIS_URL,
    HIGH_LIMIT,
    RATE_LIMITS,
    SeedUser,
    past_the_password,
    seed_users,
    totp_now,
)


def environs(app, prepared: list[tuple[SeedUser, str, str]]) -> list[dict]:
    from werkzeug.test import EnvironBuilder

    built = []
    for user, cookie, csrf in prepared:
        body = urlencode({"csrf_token": csrf, "next": "done", "device": str(user.device_id),
                          "passcode": totp_now(user.secret)})
        builder = EnvironBuilder(path="/prompt", method="POST", data=body,
                                 content_type="application/x-www-form-urlencoded",
                                 headers={"Cookie": f"{COOKIE}={cookie}"},
                                 base_url="http://127.0.0.1:8000",
                                 environ_base={"REMOTE_ADDR": "127.0.0.1"})
        built.append(builder.get_environ())
    return built


def call(app, environ: dict) -> str:
    status = []

    def start_response(s, headers, exc_info=None):
        status.append(s)

    for _ in app(environ, start_response):
        pass
    return status[0]


def prepare(app, users: list[SeedUser]) -> list[tuple[SeedUser, str, str]]:
    """Each user past the password step (benchmarks.web_nodes.past_the_password)."""
    return [(user, p.cookie, p.csrf) for user in users
            for p in (past_the_password(app, user),)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=600)
    parser.add_argument("--top", type=int, default=40)
    parser.add_argument("--dump", metavar="FILE",
                        help="with --cprofile, also write the profile there (pstats format)")
    parser.add_argument("--cprofile", action="store_true",
                        help="then as many POSTs again under cProfile (CPU time), top functions")
    parser.add_argument("--no-logging", action="store_true",
                        help="leave logging unconfigured (no log lines written)")
    parser.add_argument("--statements", action="store_true",
                        help="print the SQL statements of one POST")
    parser.add_argument("--sqlite", action="store_true", help="the embedded default instead")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    args = parser.parse_args()
    if not 10 <= args.users <= 5000:
        parser.error("--users must be 10-5000")
    workdir = Path(tempfile.mkdtemp(prefix="um2fa-prompt-profile-"))
    os.environ["UM2FA_INSTANCE_DIR"] = str(workdir)
    drop = None
    try:
        if args.sqlite:
            url = f"sqlite:///{workdir / 'um2fa.db'}"
            os.environ.pop("UM2FA_REDIS_URL", None)
        else:
            _schema, url, drop = fresh_schema(args.database_url)
            os.environ["UM2FA_REDIS_URL"] = args.redis_url
        for name in RATE_LIMITS:
            os.environ[f"UM2FA_RATELIMIT_{name.upper()}"] = HIGH_LIMIT
        os.environ["UM2FA_DATABASE_URL"] = url
        from app import create_app, migrate
        from app.config import read_settings
        from app.shared_keys import make_missing

        make_missing(read_settings({"database_url": url}))
        migrate.upgrade(url)
        users = seed_users(url, "p", (2 if args.cprofile else 1) * args.users + 20)
        app = create_app()
        if not args.no_logging:  # as wsgi.py does: the audit and request lines are written
            from app.logging_setup import configure

            configure(app.config["UM2FA"].log_format)
        warm, plain, profiled = (users[:20], users[20:20 + args.users],
                                 users[20 + args.users:])
        statements: list[str] = []
        if args.statements:
            from sqlalchemy import event
            from sqlalchemy.engine import Engine

            event.listen(Engine, "before_cursor_execute",
                         lambda conn, cur, stmt, params, ctx, many: statements.append(stmt))
        phases = [(warm, "warm-up"), (plain, "plain")]
        if args.cprofile:
            phases.append((profiled, "profiled"))
        for batch_users, label in phases:
            batch = environs(app, prepare(app, batch_users))
            profiler = cProfile.Profile(time.process_time) if label == "profiled" else None
            cpu, wall = time.process_time(), time.perf_counter()
            if profiler:
                profiler.enable()
            statuses = [call(app, environ) for environ in batch[:-1]]
            del statements[:]
            statuses.append(call(app, batch[-1]))
            if profiler:
                profiler.disable()
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            if args.statements and label == "warm-up":
                print(f"the statements of one POST ({len(statements)}):")
                for stmt in statements:
                    print("  ", " ".join(stmt.split())[:200])
            bad = [s for s in statuses if not s.startswith("302")]
            print(f"{label}: {len(batch)} POSTs, {1000 * cpu / len(batch):.2f} ms CPU and "
                  f"{1000 * wall / len(batch):.2f} ms wall per request"
                  + (f"; {len(bad)} not 302: {bad[:3]}" if bad else ""), flush=True)
        if args.cprofile and args.dump:
            profiler.dump_stats(args.dump)
        for key in ("tottime", "cumulative") if args.cprofile else ():
            out = io.StringIO()
            pstats.Stats(profiler, stream=out).sort_stats(key).print_stats(args.top)
            print(out.getvalue())
    finally:
        if drop:
            drop()
        shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
