"""Fixtures in the Flask tutorial's style: `app`, `client`, `runner`, plus core helpers.

Every test gets a fresh database built by the Alembic migrations: a SQLite file, and, where
UM2FA_TEST_DATABASE_URL is set, a fresh schema in that PostgreSQL database too. With PostgreSQL
nothing makes keys by itself (app/config/keyfiles.py): the instance directory gets a copy of keys
made once per run, as a node gets the first node's.
"""

from __future__ import annotations

import os
import re
import shutil
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote

import pyotp
import pytest

from app import create_app, migrate
from app.core import users
from app.core.context import Context, Origin
from app.extensions import core

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


@pytest.fixture(params=BACKENDS)
def database_url(request, tmp_path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'test.sqlite3'}"
        return
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    plain = PG_URL.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in PG_URL else "?"
    yield f"{PG_URL}{sep}options={quote(f'-csearch_path={schema}')}"
    with psycopg.connect(plain, autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


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
    migrate.upgrade(database_url)
    application = create_app(overrides)
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
