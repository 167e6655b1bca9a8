"""`um2fa` for operators and the help desk: clear messages and non-zero exits on bad input."""

from __future__ import annotations

import subprocess

import pyotp
import pytest

from app.core import passcodes, users
from tests.conftest import TEST_ORIGIN, committed, make_user
from tests.peers.live import UM2FA, make_live_server


def invoke(runner, *args, input=None):
    return runner.invoke(args=list(args), input=input)


def test_users_add_list_lock_unlock(app, runner):
    result = invoke(runner, "users", "add", "Alice", "--password", "long-enough-1",
                    "--dob", "2001-02-03", "--id-last4", "123a", "--role", "staff",
                    "--name", "Alice Chan", "--email", "alice@example.edu")
    assert result.exit_code == 0, result.output
    assert "added alice" in result.output
    listing = invoke(runner, "users", "list").output
    assert "alice\tstaff\tactive\t0 device(s)\tAlice Chan" in listing
    assert invoke(runner, "users", "lock", "alice").exit_code == 0
    assert "disabled" in invoke(runner, "users", "list").output
    assert invoke(runner, "users", "unlock", "alice").exit_code == 0
    assert "active" in invoke(runner, "users", "list").output


def test_users_list_shows_until_when_a_lockout_holds(app, runner, clock):
    from datetime import UTC, datetime, timedelta

    from tests.conftest import add_totp_device

    make_user(app)
    add_totp_device(app)
    for _ in range(app.config["UM2FA"].lockout_threshold):
        with committed(app) as c:
            passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"), "000000")
    until = datetime.fromtimestamp(clock.now, UTC) + timedelta(minutes=15)
    assert f"locked out until {until:%Y-%m-%d %H:%M} UTC" in invoke(runner, "users", "list").output
    clock.advance(15 * 60 + 1)
    assert "alice\tstudent\tactive" in invoke(runner, "users", "list").output


def test_users_add_reads_the_password_from_standard_input(app, runner):
    """Security issue: `--password VALUE` shows in the process list and the shell's history;
    `--password -` reads one line from standard input instead."""
    from app.core import signin

    result = invoke(runner, "users", "add", "alice", "--password", "-", "--dob", "2001-02-03",
                    "--id-last4", "123A", input="a pass from stdin 9\n")
    assert result.exit_code == 0, result.output
    assert "a pass from stdin" not in result.output
    with committed(app) as ctx:
        assert signin.sign_in(ctx, TEST_ORIGIN, "alice", "a pass from stdin 9") is not None
        assert signin.sign_in(ctx, TEST_ORIGIN, "alice", "-") is None


def test_users_add_password_from_empty_standard_input_is_a_clear_error(app, runner):
    result = invoke(runner, "users", "add", "alice", "--password", "-", "--dob", "2001-02-03",
                    "--id-last4", "123A", input="")
    assert result.exit_code != 0 and "Traceback" not in result.output
    assert "standard input" in result.output
    assert "alice" not in invoke(runner, "users", "list").output


@pytest.mark.parametrize("args, message", [
    (["--dob", "2001-13-40"], "not a date"),
    (["--id-last4", "12345"], "4 letters or digits"),
    (["--password", "short"], "at least 8"),
])
def test_users_add_bad_input(app, runner, args, message):
    base = {"--password": "long-enough-1", "--dob": "2001-02-03", "--id-last4": "123A"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    flat = [x for pair in base.items() for x in pair]
    result = invoke(runner, "users", "add", "alice", *flat)
    assert result.exit_code != 0 and message in result.output
    assert "alice" not in invoke(runner, "users", "list").output


def test_duplicate_and_unknown_users(app, runner):
    make_user(app)
    result = invoke(runner, "users", "add", "alice", "--password", "long-enough-1",
                    "--dob", "2001-02-03", "--id-last4", "123A")
    assert result.exit_code == 1 and "already exists" in result.output
    for args in (["users", "lock", "nobody"], ["devices", "list", "nobody"],
                 ["recovery", "issue", "nobody"], ["devices", "add-totp", "nobody", "--name",
                                                   "T"]):
        result = invoke(runner, *args)
        assert result.exit_code == 1 and "no such user: nobody" in result.output


def test_users_import_all_or_nothing(app, runner, tmp_path):
    good = tmp_path / "users.csv"
    good.write_text("username,password,dob,id_last4,role,name,email\n"
                    "s1,password-one,2000-01-01,AB12,student,Student One,s1@example.edu\n"
                    "t1,password-two,1970-05-05,XY99,staff,Teacher One,t1@example.edu\n")
    result = invoke(runner, "users", "import", str(good))
    assert result.exit_code == 0 and "imported 2 user(s)" in result.output
    bad = tmp_path / "bad.csv"
    bad.write_text("username,password,dob,id_last4,role,name,email\n"
                   "s2,password-one,2000-01-01,AB12,student,S2,\n"
                   "s3,password-one,not-a-date,AB12,student,S3,\n")
    result = invoke(runner, "users", "import", str(bad))
    assert result.exit_code == 1 and "line 3" in result.output and "not a date" in result.output
    assert "s2" not in invoke(runner, "users", "list").output
    header = tmp_path / "header.csv"
    header.write_text("user,pw\nx,y\n")
    result = invoke(runner, "users", "import", str(header))
    assert result.exit_code == 1 and "lacks column" in result.output


def test_devices_add_totp_prints_a_working_uri_once(app, runner, clock):
    make_user(app)
    result = invoke(runner, "devices", "add-totp", "alice", "--name", "Token 1234")
    assert result.exit_code == 0
    uri = result.output.strip()
    totp = pyotp.parse_uri(uri)
    assert uri.startswith("otpauth://totp/") and "issuer=UM%202FA" in uri
    with committed(app) as c:
        assert passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"),
                                      totp.at(clock.now)).ok
    listing = invoke(runner, "devices", "list", "alice").output
    assert "Token 1234" in listing and "token/other" in listing and "default" in listing
    assert totp.secret not in listing


def test_devices_remove_by_the_id_devices_list_shows(app, runner):
    from tests.conftest import add_totp_device, audit_rows

    make_user(app)
    device_id, _ = add_totp_device(app, name="Lost phone")
    assert invoke(runner, "devices", "list", "alice").output.startswith(f"{device_id}\tLost")
    result = invoke(runner, "devices", "remove", "alice", str(device_id),
                    "--reason", "phone stolen, ticket 4711")
    assert result.exit_code == 0 and f"removed device {device_id} of alice" in result.output
    assert invoke(runner, "devices", "list", "alice").output == ""
    row = audit_rows(app, "device.remove")[-1]
    assert row.door == "cli" and "reason: phone stolen, ticket 4711" in row.detail
    for args, message in ((["alice", str(device_id)], "not found"),
                          (["nobody", "1"], "no such user: nobody"),
                          (["alice", "x"], "is not a valid integer"),
                          (["alice", "1", "--reason", " "], "Give a reason")):
        result = invoke(runner, "devices", "remove", *args)
        assert result.exit_code != 0 and message in result.output, (args, result.output)
        assert "Traceback" not in result.output


def test_devices_import_hardware_tokens(app, runner, tmp_path, clock):
    make_user(app)
    secret = pyotp.random_base32()
    csv_file = tmp_path / "tokens.csv"
    csv_file.write_text(f"username,name,secret\nalice,Token A,{secret.lower()}\n")
    result = invoke(runner, "devices", "import", str(csv_file))
    assert result.exit_code == 0 and "imported 1 token(s)" in result.output
    with committed(app) as c:
        assert passcodes.verify_passcode(c, TEST_ORIGIN, users.get(c, "alice"),
                                      pyotp.TOTP(secret).at(clock.now)).ok
    bad = tmp_path / "bad.csv"
    bad.write_text("username,name,secret\nalice,Token B,not!base32\nnobody,Token C,"
                   f"{secret}\n")
    result = invoke(runner, "devices", "import", str(bad))
    assert result.exit_code == 1 and "line 2" in result.output and "base32" in result.output
    assert "Token B" not in invoke(runner, "devices", "list", "alice").output


def test_recovery_issue_prints_nine_digits_and_revokes_the_old(app, runner):
    make_user(app)
    first = invoke(runner, "recovery", "issue", "alice")
    second = invoke(runner, "recovery", "issue", "alice")
    code1 = first.stdout.strip().splitlines()[0]
    code2 = second.stdout.strip().splitlines()[0]
    assert len(code1) == 9 and code1.isdigit() and code1 != code2
    assert "works once" in second.stderr
    with committed(app) as c:
        user = users.get(c, "alice")
        assert not passcodes.verify_passcode(c, TEST_ORIGIN, user, code1).ok
        assert passcodes.verify_passcode(c, TEST_ORIGIN, user, code2).ok


def test_recovery_is_refused_for_a_locked_account(app, runner):
    make_user(app)
    invoke(runner, "users", "lock", "alice")
    result = invoke(runner, "recovery", "issue", "alice")
    assert result.exit_code == 1 and "locked" in result.output


def test_the_console_script_end_to_end(tmp_path):
    """The installed `um2fa` command: upgrade, add, bad input, and a bad configuration."""
    server = make_live_server(tmp_path)
    assert "database at revision" in server.cli("db", "upgrade").stdout
    assert server.cli("db", "upgrade").returncode == 0  # safe to repeat
    server.cli("users", "add", "zoe", "--password", "long-enough-1", "--dob", "1999-09-09",
               "--id-last4", "9Z9Z")
    bad = server.cli("users", "add", "zoe", "--password", "long-enough-1", "--dob",
                     "1999-09-09", "--id-last4", "9Z9Z", check=False)
    assert bad.returncode == 1 and "already exists" in bad.stderr and "Traceback" not in bad.stderr
    env = {**server.env, "UM2FA_CAMPUS_NETWORKS": "not-a-network"}
    result = subprocess.run([UM2FA, "users", "list"], env=env, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode != 0 and "CIDR" in result.stderr
    assert "Traceback" not in result.stderr


def test_serve_refuses_an_unmigrated_database(tmp_path):
    server = make_live_server(tmp_path)
    result = server.cli("serve", "--port", "1", check=False)
    assert result.returncode == 1 and "um2fa db upgrade" in result.stderr


def test_serve_generates_the_saml_key_on_first_start(tmp_path):
    server = make_live_server(tmp_path).start()
    try:
        keys = list((server.instance_dir / "saml").glob("key-*.pem"))
        assert len(keys) == 1 and oct(keys[0].stat().st_mode & 0o777) == "0o600"
    finally:
        server.stop()
