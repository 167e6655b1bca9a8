"""TOTP: drift, replay (in one process and across processes), wrong devices."""

from __future__ import annotations

import subprocess
import sys
import textwrap

from app.core import passcodes, users
from app.core.factors import Verdict
from tests.conftest import TEST_ORIGIN, add_totp_device, committed, make_user, totp_code


def _verify(app, code, device_id=None, username="alice"):
    with committed(app) as c:
        return passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, username), code,
                                      device_id=device_id)


def test_current_code_accepted_once(app, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    code = totp_code(secret, clock.now)
    assert _verify(app, code, device_id).ok
    replay = _verify(app, code, device_id)
    assert replay.verdict is Verdict.REPLAY and not replay.ok
    assert "already been used" in replay.message


def test_one_step_of_drift_either_way_is_accepted(app, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    assert _verify(app, totp_code(secret, clock.now, -1), device_id).ok
    clock.advance(90)
    assert _verify(app, totp_code(secret, clock.now, +1), device_id).ok


def test_two_steps_of_drift_is_rejected(app, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    assert _verify(app, totp_code(secret, clock.now, -2), device_id).verdict is Verdict.WRONG
    assert _verify(app, totp_code(secret, clock.now, +2), device_id).verdict is Verdict.WRONG


def test_an_older_code_after_a_newer_one_is_refused(app, clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    assert _verify(app, totp_code(secret, clock.now, +1), device_id).ok
    assert _verify(app, totp_code(secret, clock.now), device_id).verdict is Verdict.REPLAY


def test_code_of_another_users_device_is_refused(app, clock):
    make_user(app, "alice")
    make_user(app, "bob")
    bob_device, bob_secret = add_totp_device(app, "bob")
    outcome = _verify(app, totp_code(bob_secret, clock.now), bob_device, username="alice")
    assert outcome.verdict is Verdict.WRONG
    # and without naming the device, alice's (empty) device list does not match bob's code
    assert _verify(app, totp_code(bob_secret, clock.now), None, "alice").verdict is Verdict.WRONG


def test_without_a_chosen_device_any_of_the_users_devices_counts(app, clock):
    make_user(app)
    add_totp_device(app, name="Phone")
    second_id, second_secret = add_totp_device(app, name="Tablet")
    outcome = _verify(app, totp_code(second_secret, clock.now))
    assert outcome.ok and outcome.device.id == second_id


def test_garbage_is_wrong_not_an_error(app):
    make_user(app)
    add_totp_device(app)
    for junk in ["", "12345", "abcdef", "1234567", "12 34 5x", "9" * 40]:
        assert _verify(app, junk).verdict is Verdict.WRONG


def test_replay_is_refused_across_processes(app, clock, database_url):
    """Another process (another node) accepts the code; ours must then refuse it."""
    make_user(app)
    device_id, secret = add_totp_device(app)
    code = totp_code(secret, clock.now)
    instance = app.config["UM2FA"].instance_dir
    script = textwrap.dedent(f"""
        from app import create_app
        from app.core import passcodes, users
        from app.core.context import Origin
        from app.extensions import core
        app = create_app({{"instance_dir": {str(instance)!r}, "database_url": {database_url!r}}})
        with app.app_context():
            c = core.context()
            out = passcodes.verify_passcode(c, Origin("other-node"), users.get(c, "alice"),
                                         {code!r}, device_id={device_id})
            c.db.commit()
            print(out.verdict.value)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                            timeout=60)
    assert result.stdout.strip() == "ok", result.stderr
    assert _verify(app, code, device_id).verdict is Verdict.REPLAY
