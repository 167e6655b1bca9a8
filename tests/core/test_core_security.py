"""Secrets at rest and in records: encrypted device secrets, nothing secret in audit or logs."""

from __future__ import annotations

import base64
import logging

import argon2
import pytest
from argon2.profiles import RFC_9106_LOW_MEMORY
from sqlalchemy import select

from app.core import devices, directory, passcodes, password_hashes, signin, users
from app.core.keys import Keys
from app.extensions import core
from app.models import Device, User
from tests.conftest import (
    PASSWORD,
    TEST_ORIGIN,
    add_totp_device,
    audit_rows,
    committed,
    issue_recovery,
    make_user,
    totp_code,
)


def _dump(app) -> str:
    """Every row of every table as text, bytes as hex and as text: what a DB dump would show."""
    from sqlalchemy import inspect, text

    engine = core.database(app).engine
    parts = []
    with engine.connect() as conn:
        for table in inspect(conn).get_table_names():
            for row in conn.execute(text(f'SELECT * FROM "{table}"')):  # noqa: S608
                for value in row:
                    if isinstance(value, bytes | memoryview):
                        value = bytes(value)
                        parts += [value.hex(), value.decode("latin-1")]
                    else:
                        parts.append(str(value))
    return "\n".join(parts)


def test_device_secret_is_not_in_a_database_dump(app):
    make_user(app)
    _, secret = add_totp_device(app)
    dump = _dump(app)
    raw = base64.b32decode(secret)
    assert secret not in dump and secret.lower() not in dump
    assert raw.hex() not in dump.lower() and raw.decode("latin-1") not in dump
    assert PASSWORD not in dump
    assert "users" in dump or "alice" in dump  # the dump did read the rows


def test_device_secret_row_is_ciphertext(app):
    make_user(app)
    device_id, secret = add_totp_device(app)
    with committed(app) as c:
        stored = c.db.get(Device, device_id).secret_enc
        assert secret.encode() not in stored
        assert c.keys.decrypt(stored).decode() == secret
    with pytest.raises(ValueError, match="instance key"):
        Keys("another-instance-key").decrypt(stored)


def test_dob_and_id_are_keyed_hashes(app):
    make_user(app, dob="1999-12-31", id_last4="ab1c")
    with committed(app) as c:
        user = c.db.scalar(select(User))
        assert b"1999" not in user.dob_hash and len(user.dob_hash) == 32
        assert c.keys.matches(users.ID_PURPOSE, "AB1C", user.id_last4_hash)
        assert c.keys.matches(users.DOB_PURPOSE, "1999-12-31", user.dob_hash)
        assert not c.keys.matches(users.DOB_PURPOSE, "1999-12-30", user.dob_hash)
        assert not c.keys.matches(users.DOB_PURPOSE, "1999-12-31", None)
        assert user.password_hash.startswith("$argon2id$")


def test_passwords_are_hashed_at_argon2s_cost_and_unknown_users_cost_the_same(app):
    """New hashes: argon2id at RFC 9106's (argon2-cffi's default) cost; the dummy hash an
    unknown user is verified against (written out in app/core/password_hashes.py) has the same
    parameters, so both cost one verification alike."""
    make_user(app)
    with committed(app) as c:
        stored = c.db.scalar(select(User)).password_hash
    assert argon2.extract_parameters(stored) == RFC_9106_LOW_MEMORY
    assert argon2.extract_parameters(password_hashes.DUMMY_HASH) == RFC_9106_LOW_MEMORY
    assert directory.LocalDirectory().check_password("alice", stored, PASSWORD)
    assert not directory.LocalDirectory().check_password("nobody", None, PASSWORD)


def test_no_secret_reaches_the_audit_or_the_log(app, clock, caplog):
    caplog.set_level(logging.DEBUG)
    make_user(app)
    device_id, secret = add_totp_device(app)
    code = issue_recovery(app)
    totp = totp_code(secret, clock.now)
    with committed(app) as c:
        user = users.get(c, "alice")
        signin.sign_in(c, TEST_ORIGIN, "alice", PASSWORD)
        signin.sign_in(c, TEST_ORIGIN, "alice", "wrong-" + PASSWORD)
        passcodes.verify_passcode(c, TEST_ORIGIN, user, totp, device_id=device_id)
        passcodes.verify_passcode(c, TEST_ORIGIN, user, code)
        passcodes.verify_passcode(c, TEST_ORIGIN, user, "000000")
        devices.rename(c, TEST_ORIGIN, user, device_id, "My phone")
    records = " ".join(f"{r.action} {r.result} {r.detail} {r.device} {r.username}"
                       for r in audit_rows(app))
    for secret_text in (PASSWORD, secret, code, totp):
        assert secret_text not in records
        assert secret_text not in caplog.text
    assert "sign_in ok" in records and "sign_in fail" in records


def test_every_step_is_audited_with_time_door_and_address(app, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    with committed(app) as c:
        passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"),
                               totp_code(secret, clock.now), device_id=device_id)
    row = audit_rows(app, "factor")[-1]
    assert row.at is not None and row.door == "test" and row.client_addr == "127.0.0.1"
    assert row.device == "Phone" and row.result == "ok"


def test_keyed_hashes_stay_what_the_database_holds():
    """Keyed hashes are stored (sessions, dates of birth, tokens): a change of how they are
    computed must not change a single one (this vector was made by hmac.digest, before
    app/core/keys.py continued a keyed copy instead)."""
    from app.core.keys import Keys

    keys = Keys("an-instance-key-for-the-test-vector-0123456789")
    assert keys.keyed_hash("browser session", "abc").hex() == (
        "defa8da201bc5037240cde5a4852cce506314a5c906166516f3c32860d53c5a8")
    assert keys.keyed_hash("browser session", "abd") != keys.keyed_hash("browser session", "abc")
