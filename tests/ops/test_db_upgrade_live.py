"""`um2fa db upgrade` on a live PostgreSQL (issue 7, item 5; docs/deploy.md section 4): two nodes
may run it at the same moment, a migration stuck behind a long transaction gives up cleanly
instead of queueing the service behind it, and nodes keep serving while it runs.

Needs UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL (.ci/run sets both).
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
if not (PG_URL and os.environ.get("UM2FA_TEST_REDIS_URL")):
    pytest.skip("live upgrade tests need UM2FA_TEST_DATABASE_URL and UM2FA_TEST_REDIS_URL",
                allow_module_level=True)

import psycopg  # noqa: E402
from pyrad import packet as rp  # noqa: E402

from app import create_app, migrate  # noqa: E402
from app.core import radius_clients, users  # noqa: E402
from app.extensions import core  # noqa: E402
from app.models import User  # noqa: E402
from tests.conftest import (  # noqa: E402
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    committed,
    make_user,
)
from tests.helpers.multinode import (  # noqa: E402
    SETTINGS,
)
from tests.peers.live import UM2FA  # noqa: E402
from tests.peers.live_radius import make_env  # noqa: E402
from tests.peers.nodes import (  # noqa: E402
    Browser,
    drop_schema,
    fresh_schema,
    make_keys,
    start_radius,
    start_web,
)
from tests.peers.push_device import totp  # noqa: E402

# The nodes check passwords at argon2's real cost, as in production: part of the load here.

RADIUS_SECRET = "upgrade-secret-0123456789"
# The service's secret and encryption keys in the environment (docs/deploy.md, "3. Shared keys");
# the nodes' SAML and VAPID keys are made by `um2fa keys generate` before they start.
KEYS = {"secret_key": "upgrade-test-secret-key-0123456789",
        "encryption_key": "upgrade-test-encryption-key-0123456789"}
LOCK_TIMEOUT = 2  # seconds, for the test that waits on a held lock


@pytest.fixture
def schema(tmp_path) -> Iterator[tuple[str, dict[str, str]]]:
    """A fresh, empty PostgreSQL schema and the environment of a node using it."""
    name, url = fresh_schema(PG_URL)
    instance = tmp_path / "instance"
    instance.mkdir()
    try:
        yield url, make_env(instance, url, **SETTINGS, **KEYS)
    finally:
        drop_schema(PG_URL, name)


def um2fa(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([UM2FA, *args], env=env, capture_output=True, text=True, timeout=60,
                          stdin=subprocess.DEVNULL)


def table_exists(url: str, table: str) -> bool:
    with psycopg.connect(plain(url)) as conn:
        return conn.execute("SELECT to_regclass(%s) IS NOT NULL", (table,)).fetchone()[0]


def plain(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# --- two nodes upgrading at once ---------------------------------------------------------------

def test_two_upgrades_at_once_on_a_fresh_schema(tmp_path):
    """Both exit 0, the schema is at head with one alembic_version row: the second run waited
    for the first (the advisory lock) and then found nothing to do."""
    for round_ in range(3):
        name, url = fresh_schema(PG_URL)
        instance = tmp_path / f"instance-{round_}"
        instance.mkdir()
        env = make_env(instance, url, **KEYS)
        try:
            runs = [subprocess.Popen([UM2FA, "db", "upgrade"], env=env, stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
                    for _ in range(2)]
            results = [(run.wait(timeout=60), *run.communicate()) for run in runs]
            for code, out, err in results:
                assert code == 0, f"round {round_}: {err}"
                assert "database at revision" in out and "Traceback" not in err
            assert migrate.current(url) == migrate.heads()
            with psycopg.connect(plain(url)) as conn:
                versions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
            assert [v for (v,) in versions] == sorted(migrate.heads())
        finally:
            drop_schema(PG_URL, name)


def test_an_upgrade_waits_while_another_run_holds_the_migration_lock(tmp_path):
    """Deterministic: the test is the other run (it holds the advisory lock), so the upgrade
    must wait, say so, do nothing meanwhile, and finish once the lock is released."""
    name, url = fresh_schema(PG_URL)
    instance = tmp_path / "instance"
    instance.mkdir()
    env = make_env(instance, url, **KEYS)
    try:
        with psycopg.connect(plain(url), autocommit=True) as holder:
            holder.execute("SELECT pg_advisory_lock(%s, %s)", migrate.lock_keys(name))
            run = subprocess.Popen([UM2FA, "db", "upgrade"], env=env, stdout=subprocess.PIPE,
                                   stderr=subprocess.PIPE, text=True, stdin=subprocess.DEVNULL)
            deadline = time.monotonic() + 30
            while not migrate.current(url) and run.poll() is None and \
                    time.monotonic() < deadline and not _waiting_in(holder):
                time.sleep(0.1)
            time.sleep(1.0)
            assert run.poll() is None, "the upgrade did not wait for the lock"
            assert migrate.current(url) == set()  # nothing done while it waits
            holder.execute("SELECT pg_advisory_unlock(%s, %s)", migrate.lock_keys(name))
            code = run.wait(timeout=60)
            _out, err = run.communicate()
        assert code == 0, err
        assert "another `um2fa db upgrade` is running on this database: waiting" in err
        assert migrate.current(url) == migrate.heads()
    finally:
        drop_schema(PG_URL, name)


def _waiting_in(conn) -> bool:
    """Whether some session waits on an advisory lock (the upgrade, behind ours)."""
    return bool(conn.execute("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' "
                             "AND NOT granted").fetchone()[0])


# --- a migration behind a long transaction -------------------------------------------------------

def test_a_migration_blocked_by_a_long_transaction_gives_up_and_leaves_the_old_schema(schema):
    url, env = schema
    migrate.upgrade(url)
    # 0006 only creates a table; 0005 alters users and devices (ACCESS EXCLUSIVE), so go below it
    down = um2fa(env, "db", "downgrade", "0004", "--yes")
    assert down.returncode == 0 and "database at revision 0004" in down.stdout, down.stderr
    assert not table_exists(url, "push_requests")

    with psycopg.connect(plain(url)) as reader:
        # A long transaction that has read devices holds ACCESS SHARE on it until it ends. 0005
        # alters users first (that goes through), then waits for devices.
        reader.execute("SELECT count(*) FROM devices").fetchone()
        started = time.monotonic()
        blocked = um2fa(env, "db", "upgrade", "--lock-timeout", str(LOCK_TIMEOUT))
        took = time.monotonic() - started
        assert blocked.returncode != 0
        assert (f"a migration waited more than {LOCK_TIMEOUT} s for a table lock held by another "
                "transaction and was rolled back; the database is at revision 0004"
                in blocked.stderr)
        assert "Traceback" not in blocked.stderr
        assert took < 30  # the reader never lets go: without lock_timeout this would hang
        # 0005 was rolled back whole: its column on users is gone again, no new table
        assert migrate.current(url) == {"0004"}
        assert not table_exists(url, "push_requests")
        columns = reader.execute("SELECT column_name FROM information_schema.columns "
                                 "WHERE table_name = 'users' AND table_schema = current_schema()")
        assert "push_blocked_until" not in {c for (c,) in columns}
        reader.rollback()  # the long transaction ends

    again = um2fa(env, "db", "upgrade")
    assert again.returncode == 0, again.stderr
    assert migrate.current(url) == migrate.heads()


# --- nodes serving while the upgrade runs -----------------------------------------------------

class TotpPool:
    """Users with a TOTP device, each code used once: a user's next login uses the step after
    its last one, which the nodes accept while it is within a step of now (drift 1)."""

    def __init__(self, accounts: list[tuple[str, str]]) -> None:
        self.accounts = accounts
        self.last_step = {username: 0 for username, _ in accounts}

    def take(self) -> tuple[str, str] | None:
        now = time.time()
        current = int(now) // 30
        for username, secret in self.accounts:
            step = max(self.last_step[username] + 1, current)
            if step <= current + 1:
                self.last_step[username] = step
                return username, totp(secret, step * 30)
        return None


def make_accounts(app, prefix: str, count: int) -> list[tuple[str, str]]:
    """`count` users with a TOTP device; one argon2 hash made, shared by all (set-up speed)."""
    template = f"{prefix}-template"
    make_user(app, template)
    with committed(app) as c:
        model = users.get(c, template)
        for i in range(count):
            c.db.add(User(username=f"{prefix}{i}", password_hash=model.password_hash,
                          dob_hash=model.dob_hash, id_last4_hash=model.id_last4_hash,
                          created_at=model.created_at))
    return [(f"{prefix}{i}", add_totp_device(app, f"{prefix}{i}")[1]) for i in range(count)]


@dataclass
class Traffic:
    """Sign-in + TOTP logins on a web node and TOTP logins on a RADIUS node, from one thread,
    until stopped (at most `rounds` rounds)."""

    web: str
    radius: object
    web_pool: TotpPool
    radius_pool: TotpPool
    rounds: int = 400
    stop: threading.Event = field(default_factory=threading.Event)
    done: list[tuple[str, float]] = field(default_factory=list)  # (door, when it succeeded)
    failures: list[str] = field(default_factory=list)

    def run(self) -> None:
        deadline = time.monotonic() + 120
        for _ in range(self.rounds):
            if self.stop.is_set() or time.monotonic() > deadline:
                return
            self._one("web", self.web_pool, self._web_login)
            self._one("radius", self.radius_pool, self._radius_login)

    def _one(self, door: str, pool: TotpPool, login) -> None:
        account = pool.take()
        if account is None:  # every user has logged in for this step: wait for the next
            time.sleep(0.2)
            return
        try:
            problem = login(*account)
        except Exception as exc:  # noqa: BLE001 - a failed request is what we are looking for
            problem = f"{exc.__class__.__name__}: {exc}"
        if problem:
            self.failures.append(f"{door} {account[0]}: {problem}")
        else:
            self.done.append((door, time.monotonic()))

    def _web_login(self, username: str, code: str) -> str:
        browser = Browser(self.web)
        signed_in = browser.try_sign_in(username)
        if signed_in.status_code != 302:
            return f"sign-in answered {signed_in.status_code}"
        answer = browser.passcode(code)
        if answer.headers.get("Location") != "/prompt/done":
            return f"passcode answered {answer.status_code}"
        return ""

    def _radius_login(self, username: str, code: str) -> str:
        reply = self.radius.ask(username, f"{PASSWORD},{code}", secret=RADIUS_SECRET)
        if reply is None or reply.code != rp.AccessAccept:
            return "no Access-Accept" if reply is None else f"RADIUS code {reply.code}"
        return ""


def test_nodes_keep_serving_while_the_upgrade_runs(schema, tmp_path):
    url, env = schema
    migrate.upgrade(url)
    make_keys(env)
    app = create_app({"instance_dir": Path(env["UM2FA_INSTANCE_DIR"]), "database_url": url,
                      **SETTINGS, **KEYS})
    started: list = []
    try:
        with committed(app) as c:
            radius_clients.add(c, TEST_ORIGIN, "vpn", "127.0.0.1", RADIUS_SECRET, mode="append")
        web_pool = TotpPool(make_accounts(app, "web", 12))
        radius_pool = TotpPool(make_accounts(app, "vpn", 12))
        server, web_url = start_web(env, "a", tmp_path)
        started.append(server)
        radius = start_radius(env, Path(env["UM2FA_INSTANCE_DIR"]), "1")
        started.append(radius)

        traffic = Traffic(web_url, radius, web_pool, radius_pool)
        thread = threading.Thread(target=traffic.run, daemon=True)
        thread.start()
        time.sleep(1)  # traffic flowing before the first run
        window_start = time.monotonic()
        # Two no-op runs at head, then the last migration again. It only adds (0017: the
        # radius_clients.proxy column with a default, the radius_nas_policies table, a wider
        # radius_challenges.client_name), so these nodes work on the schema before it and
        # after it alike: the RADIUS node keeps the clients it has while a reload fails.
        # A newer migration must keep that true of itself (or move this test to one that does).
        for args in (("db", "upgrade"), ("db", "upgrade"), ("db", "downgrade", "-1", "--yes"),
                     ("db", "upgrade")):
            result = um2fa(env, *args)
            assert result.returncode == 0, f"um2fa {' '.join(args)}: {result.stderr}"
        window_end = time.monotonic()
        time.sleep(0.5)
        traffic.stop.set()
        thread.join(timeout=30)
        assert not thread.is_alive()

        assert traffic.failures == [], traffic.failures
        during = [door for door, at in traffic.done if window_start <= at <= window_end]
        assert during.count("web") >= 3 and during.count("radius") >= 3, traffic.done
        assert migrate.current(url) == migrate.heads()
        assert table_exists(url, "admins")
        with psycopg.connect(plain(url)) as conn:
            columns = conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                   "table_name = 'users' AND table_schema = current_schema()")
            assert "auto_push" in {c for (c,) in columns}
        assert radius.alive()
    finally:
        for process in reversed(started):
            process.stop()
        core.database(app).dispose()
