"""Fixtures in the Flask tutorial's style: `app`, `client`, `runner`, plus core helpers.

Every test gets a database of its own at the head of the Alembic migrations: a SQLite file, and,
where UM2FA_TEST_DATABASE_URL is set, a schema in that PostgreSQL database too. The migrations run
once per session and backend; each test gets a copy of their result, or a schema another test
used, emptied (tests/helpers/databases.py). tests/ops/test_migrations.py runs them step by step
on empty databases. With PostgreSQL nothing makes keys by itself (app/config/keyfiles.py): the
instance directory gets a copy of keys made once per run, as a node gets the first node's. The
IdP's RSA keys are made once per session and handed out again in each test (`PooledRsa`).
"""

from __future__ import annotations

import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pyotp
import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from app import create_app
from app.core import users
from app.core.context import Context, Origin
from app.extensions import core
from saml import keys as saml_keys
from tests.helpers.databases import Databases

PG_URL = os.environ.get("UM2FA_TEST_DATABASE_URL", "")
BACKENDS = ["sqlite"] + (["postgresql"] if PG_URL else [])
TEST_ORIGIN = Origin(door="test", client_addr="127.0.0.1")

PASSWORD = "correct-horse-9"


class Clock:
    """A settable clock for core (TOTP steps, expiry)."""

    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def monotonic(monkeypatch) -> Clock:
    """time.monotonic, settable: for what waits out a back-off (app/core/redis_outage.py)."""
    clock = Clock()
    monkeypatch.setattr(time, "monotonic", clock)
    return clock


@pytest.fixture(scope="session")
def databases(tmp_path_factory) -> Iterator[Databases]:
    made = Databases(tmp_path_factory.mktemp("migrated"), PG_URL)
    yield made
    made.close()


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path, databases) -> Iterator[str]:
    """A database of the test's own; at the migrations' head when the test uses `app`, else
    empty (the test migrates it itself)."""
    migrated = "app" in request.fixturenames
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path / 'test.sqlite3'}"
        if migrated:
            databases.migrate(url)
        yield url
        return
    schema = databases.take(migrated=migrated)
    yield databases.url(schema)
    databases.give_back(schema, migrated=migrated)


_RSA_KEYS: dict[tuple[int, int], list[rsa.RSAPrivateKey]] = {}


class PooledRsa:
    """`rsa` for saml/keys.py in one test: the n-th key the test generates is the session's
    n-th key of that size, made for real the first time a test needs that many. A test's keys
    differ from one another (a rotation, a second IdP) as new ones would; no test sees
    another's, each has its own instance directory."""

    def __init__(self) -> None:
        self.given: dict[tuple[int, int], int] = {}

    def generate_private_key(self, public_exponent: int, key_size: int) -> rsa.RSAPrivateKey:
        kind = (public_exponent, key_size)
        made = _RSA_KEYS.setdefault(kind, [])
        n = self.given.get(kind, 0)
        if n == len(made):
            made.append(rsa.generate_private_key(public_exponent=public_exponent,
                                                 key_size=key_size))
        self.given[kind] = n + 1
        return made[n]


@pytest.fixture(autouse=True)
def pooled_rsa_keys(monkeypatch) -> None:
    """An RSA-3072 key takes a tenth of a second or more to find, and every test that signs or
    publishes SAML metadata makes two (signing, encryption)."""
    monkeypatch.setattr(saml_keys, "rsa", PooledRsa())


@pytest.fixture(scope="session")
def shared_keys_made(tmp_path_factory) -> Path:
    """An instance directory with every shared key, made once per run by what `um2fa keys
    generate` runs (two RSA keys take a second: not once per test)."""
    from app.config import Settings
    from app.shared_keys import make_missing

    instance = tmp_path_factory.mktemp("shared-keys") / "instance"
    make_missing(Settings(instance_dir=instance, database_url="postgresql://"))
    return instance


def give_shared_keys(request, instance_dir: Path) -> None:
    """The run's shared keys copied into `instance_dir` (modes kept), as to a second node."""
    shutil.copytree(request.getfixturevalue("shared_keys_made"), instance_dir,
                    dirs_exist_ok=True)


@pytest.fixture(scope="module")
def slapd(tmp_path_factory):
    """A real OpenLDAP server with the test tree (tests/peers/ldap_server.py), per module."""
    from tests.peers.ldap_server import SlapdServer

    server = SlapdServer(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def settings_overrides() -> dict:
    """Tests override this fixture (or update the dict) to change settings."""
    return {}


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def app(request, tmp_path, database_url, settings_overrides, clock):
    overrides = {
        "instance_dir": tmp_path / "instance",
        "database_url": database_url,
        "ratelimit_signin_address": "1000 per minute",
        "ratelimit_signin_user": "1000 per minute",
        "ratelimit_signin_user_ceiling": "1000 per minute",
        "ratelimit_passcode_address": "1000 per minute",
        "ratelimit_passcode_user": "1000 per minute",
        "ratelimit_passcode_user_ceiling": "1000 per minute",
        "ratelimit_recovery_address": "1000 per minute",
        "ratelimit_recovery_user": "1000 per minute",
        "ratelimit_recovery_user_ceiling": "1000 per minute",
        "testing": True,
        **settings_overrides,
    }
    if not database_url.startswith("sqlite"):
        give_shared_keys(request, overrides["instance_dir"])
    application = create_app(overrides)  # (database_url is at the migrations' head)
    application.config["UM2FA_CLOCK"] = clock
    yield application
    core.database(application).dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


@pytest.fixture
def ctx(app) -> Iterator[Context]:
    """A core Context on its own session (committed by the helpers that need it)."""
    with app.app_context():
        context = core.context()
        yield context
        context.db.rollback()


@contextmanager
def committed(app) -> Iterator[Context]:
    with app.app_context():
        context = core.context()
        yield context
        context.db.commit()


def make_user(app, username: str = "alice", **fields) -> int:
    values = {"password": PASSWORD, "dob": "2001-02-03", "id_last4": "123A", "role": "student",
              "name": username.title(), "email": f"{username}@example.edu", **fields}
    with committed(app) as c:
        return users.add(c, TEST_ORIGIN, users.NewUser(username, **values)).id


def add_totp_device(app, username: str = "alice", name: str = "Phone") -> tuple[int, str]:
    from app.core import devices

    with committed(app) as c:
        device, secret = devices.add_totp(c, TEST_ORIGIN, users.get(c, username), name,
                                          device_type="mobile")
        return device.id, secret


def issue_recovery(app, username: str = "alice") -> str:
    from app.core import recovery

    with committed(app) as c:
        return recovery.issue(c, TEST_ORIGIN, users.get(c, username))[0]


def totp_code(secret: str, at: float, offset_steps: int = 0) -> str:
    return pyotp.TOTP(secret).at(at + 30 * offset_steps)


CSRF_RE = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"|'
                     r'"X-CSRFToken": "([^"]+)"')


def csrf_token(client, url: str = "/") -> str:
    page = client.get(url).get_data(as_text=True)
    match = CSRF_RE.search(page)
    assert match, f"no CSRF token on {url}"
    return match.group(1) or match.group(2)


def post(client, url: str, data: dict | None = None, *, token_from: str = "/", **kwargs):
    """POST a form with a CSRF token taken from a page, as a browser would."""
    return client.post(url, data={"csrf_token": csrf_token(client, token_from), **(data or {})},
                       **kwargs)


def sign_in(client, username: str = "alice", password: str = PASSWORD):
    return post(client, "/sign-in", {"username": username, "password": password})


def audit_rows(app, action: str | None = None):
    from sqlalchemy import select

    from app.models import AuditEvent

    with committed(app) as c:
        query = select(AuditEvent).order_by(AuditEvent.id)
        if action:
            query = query.where(AuditEvent.action == action)
        return list(c.db.scalars(query))
