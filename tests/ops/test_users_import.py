"""`um2fa users import` at scale and `um2fa users export` (app/core/user_import.py,
app/core/user_export.py): directory hashes kept until the first sign-in replaces them with
argon2id, all or nothing with the first bad line named (the header is line 1), duplicates,
rows without passwords under LDAP, an export without secrets that reads back."""

from __future__ import annotations

import csv
import io
import time
from collections import Counter

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select

from app import create_app, migrate
from app.cli import progress
from app.core import password_hashes, user_export
from app.extensions import core
from app.models import AuditEvent, User
from tests.conftest import PASSWORD, add_totp_device, audit_rows, committed, make_user, sign_in
from tests.core.test_password_hashes import CURRENT_ARGON2ID, FORMATS

HEADER = "username,dob,id_last4,role,name,email,password_hash\n"
BCRYPT = FORMATS["bcrypt $2y$"][1]
# With `cheap_argon2` this is "ours" (the parameters we hash with); the one below is older.
CHEAP_ARGON2ID = FORMATS["argon2id, older parameters"][1]
OLDER_ARGON2ID = ("$argon2id$v=19$m=16,t=2,p=1$Tv96tcleGJ1xIU8rmOKhgA$jH8GigLNlUM1jG7EkBo1QzN6Y0"
                  "fb4XiLF76oER3wal4")


@pytest.fixture
def cheap_argon2(monkeypatch):
    """Our argon2id at the lowest cost: a sign-in's rehash takes no time here, and a hash with
    these parameters is one that needs none (CHEAP_ARGON2ID)."""
    cheap = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    monkeypatch.setattr(password_hashes, "ARGON2", cheap)
    monkeypatch.setattr(password_hashes, "DUMMY_HASH", cheap.hash("um2fa-timing-equaliser"))


def invoke(runner, *args):
    return runner.invoke(args=list(args))


def write(tmp_path, text: str, name: str = "users.csv"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


def user_count(app) -> int:
    with committed(app) as c:
        return c.db.scalar(select(func.count()).select_from(User))


def stored_hash(app, username: str) -> str | None:
    with committed(app) as c:
        return c.db.scalar(select(User.password_hash).where(User.username == username))


def test_every_hash_format_signs_in_once_and_becomes_argon2id(app, runner, tmp_path,
                                                              cheap_argon2):
    names = {f"u{n:02}": stored for n, (_kind, stored) in enumerate(sorted(FORMATS.values()))
             if stored != CHEAP_ARGON2ID}
    names["older"] = OLDER_ARGON2ID
    names["ours"] = CHEAP_ARGON2ID
    lines = [f'{name},2000-01-01,AB12,student,User {name},{name}@example.edu,"{stored}"'
             for name, stored in names.items()]
    result = invoke(runner, "users", "import", write(tmp_path, HEADER + "\n".join(lines) + "\n"))
    assert result.exit_code == 0, result.output
    assert f"imported {len(names)} user(s)" in result.output
    kinds = Counter(password_hashes.importable(stored) for stored in names.values())
    for kind, n in kinds.items():
        assert f"{n} {kind} hash(es) kept until the first sign-in" in result.output
    for name, stored in names.items():
        assert stored_hash(app, name) == stored  # kept as it came
        client = app.test_client()
        assert sign_in(client, name, PASSWORD + "-wrong").status_code == 401
        assert stored_hash(app, name) == stored  # a wrong password changes nothing
        assert sign_in(client, name).status_code == 302, name
        now = stored_hash(app, name)
        assert now.startswith("$argon2id$") and not password_hashes.needs_upgrade(now)
        assert password_hashes.verify(now, PASSWORD)
        assert (now == stored) == (name == "ours")
    rehashed = {row.username: row.detail for row in audit_rows(app, "password.rehash")}
    assert set(rehashed) == set(names) - {"ours"}
    kinds = {name: password_hashes.label(stored) for name, stored in names.items()}
    for name, detail in rehashed.items():
        assert detail == f"{kinds[name]} -> argon2id", detail
        assert PASSWORD not in detail
    assert sign_in(app.test_client(), "u00").status_code == 302  # the second time: no rehash
    assert len(audit_rows(app, "password.rehash")) == len(names) - 1


@pytest.mark.parametrize(("stored", "why"), [
    ("{SHA}DnbZZXtOAn2bNQ15s8x9m5c5eII=", "unsalted SHA-1"),
    ("{MD5}RqeI3wP2hP/lvl/C1cIsNA==", "unsalted MD5"),
    ("{CRYPT}S956rdtlyKsYUz4a1Au1CiRE", "DES or MD5 {CRYPT}"),
    ("correct-horse-9", "a plain password belongs in the password column"),
])
def test_a_refused_hash_names_its_line_and_nothing_is_imported(app, runner, tmp_path, stored,
                                                                why):
    text = (HEADER + f"s1,2000-01-01,AB12,student,S1,,{BCRYPT}\n"
            f"s2,2000-01-01,AB12,student,S2,,{stored}\n")
    result = invoke(runner, "users", "import", write(tmp_path, text))
    assert result.exit_code == 1
    assert "line 3: password_hash is" in result.output and why in result.output
    assert stored.split("}")[-1] not in result.output
    assert user_count(app) == 0


def test_ten_thousand_rows_with_a_bad_line_at_row_9999_import_nothing(app, runner, tmp_path,
                                                                      cheap_argon2):
    rows = [f"user{n:05},2000-01-01,AB12,student,User {n},user{n}@example.edu,{BCRYPT}"
            for n in range(1, 10_001)]
    good = HEADER + "\n".join(rows) + "\n"
    rows[9_998] = rows[9_998].replace("2000-01-01", "2000-13-01")  # row 9,999 = line 10,000
    result = invoke(runner, "users", "import", write(tmp_path, HEADER + "\n".join(rows) + "\n"))
    assert result.exit_code == 1
    assert "Error: line 10000: date of birth '2000-13-01'" in result.output
    assert user_count(app) == 0 and audit_rows(app, "user.add") == []
    started = time.monotonic()
    result = invoke(runner, "users", "import", write(tmp_path, good, "good.csv"))
    took = time.monotonic() - started
    assert result.exit_code == 0, result.output
    assert "imported 10000 user(s): 10000 bcrypt hash(es) kept" in result.output
    assert took < 60, f"10,000 rows took {took:.1f} s"
    assert user_count(app) == 10_000
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(AuditEvent)
                           .where(AuditEvent.action == "user.add")) == 10_000
        last = c.db.scalar(select(User).where(User.username == "user10000"))
        assert last.display_name == "User 10000" and last.password_hash == BCRYPT
        assert last.dob_hash == c.keys.keyed_hash("date-of-birth", "2000-01-01")
    assert sign_in(app.test_client(), "user09999").status_code == 302


def test_line_numbers_count_the_header_and_a_quoted_line_break(app, runner, tmp_path):
    text = (HEADER + f's1,2000-01-01,AB12,student,"Chan,\nTai Man",,{BCRYPT}\n'
            f"\ns2,2000-01-01,AB1,student,S2,,{BCRYPT}\n")
    result = invoke(runner, "users", "import", write(tmp_path, text))
    assert result.exit_code == 1 and "line 5: the last 4 characters" in result.output


def test_duplicates_in_the_file_and_in_the_database(app, runner, tmp_path):
    make_user(app, "alice")
    row = "{},2000-01-01,AB12,student,X,,{}\n"
    twice = HEADER + row.format("s1", BCRYPT) + row.format("s2", BCRYPT) + row.format("S1",
                                                                                      BCRYPT)
    result = invoke(runner, "users", "import", write(tmp_path, twice))
    assert result.exit_code == 1 and "line 4: user s1 is also on line 2" in result.output
    # a known user before a bad row: the known user's line is the first bad line
    known = HEADER + row.format("s1", BCRYPT) + row.format("alice", BCRYPT) + row.format(
        "s3", "{SHA}DnbZZXtOAn2bNQ15s8x9m5c5eII=")
    result = invoke(runner, "users", "import", write(tmp_path, known))
    assert result.exit_code == 1 and "line 3: user alice already exists" in result.output
    # ... and after it: the bad row is
    later = HEADER + row.format("s1", "{SHA}DnbZZXtOAn2bNQ15s8x9m5c5eII=") + row.format(
        "alice", BCRYPT)
    result = invoke(runner, "users", "import", write(tmp_path, later))
    assert result.exit_code == 1 and "line 2: password_hash is an unsalted" in result.output
    assert user_count(app) == 1


def test_rows_and_headers_that_cannot_be_read(app, runner, tmp_path):
    cases = {
        "username,dob,id_last4,role,name,email\n": "lacks column(s): password or password_hash",
        "username,dob,id_last4,role,name,email,password,password\n": "names column(s) twice",
        HEADER + f"s1,2000-01-01,AB12,student,Chan, Tai Man,,{BCRYPT}\n":
            "line 2: 8 fields where the header has 7",
        "username,dob,id_last4,role,name,email,password,password_hash\n"
        f"s1,2000-01-01,AB12,student,S1,,long-enough-1,{BCRYPT}\n": "line 2: give a password "
                                                                  "or a password_hash",
        "username,dob,id_last4,role,name,email,password,password_hash\n"
        "s1,2000-01-01,AB12,student,S1,,,\n": "line 2: no password and no password_hash",
        HEADER + f"s1,2000-01-01,AB12,teacher,S1,,{BCRYPT}\n": "line 2: role must be one of",
        "": "the file is empty",
    }
    for text, message in cases.items():
        result = invoke(runner, "users", "import", write(tmp_path, text))
        assert result.exit_code == 1 and message in result.output, (text, result.output)
        assert "Traceback" not in result.output
    not_utf8 = tmp_path / "latin1.csv"
    not_utf8.write_bytes((HEADER + f"s1,2000-01-01,AB12,student,João,,{BCRYPT}\n")
                         .encode("latin-1"))
    result = invoke(runner, "users", "import", str(not_utf8))
    assert result.exit_code == 1 and "not UTF-8" in result.output
    assert user_count(app) == 0


class TestWithLdap:
    """UM2FA_DIRECTORY=ldap: the directory checks passwords, the rows carry none."""

    @pytest.fixture
    def settings_overrides(self):
        return {"directory": "ldap", "ldap_url": "ldap://127.0.0.1:9",
                "ldap_user_dn_template": "uid={username},ou=people,dc=um,dc=edu,dc=mo"}

    def test_rows_without_a_password_and_a_password_refused(self, app, runner, tmp_path):
        text = ("username,dob,id_last4,role,name,email\n"
                "s1,2000-01-01,AB12,student,S1,s1@example.edu\n"
                "s2,2000-01-01,AB12,staff,S2,\n")
        result = invoke(runner, "users", "import", write(tmp_path, text))
        assert result.exit_code == 0, result.output
        assert "imported 2 user(s): 2 checked by the directory" in result.output
        assert stored_hash(app, "s1") is None and stored_hash(app, "s2") is None
        text = ("username,dob,id_last4,role,name,email,password\n"
                "s3,2000-01-01,AB12,student,S3,,\n"
                "s4,2000-01-01,AB12,student,S4,,long-enough-1\n")
        result = invoke(runner, "users", "import", write(tmp_path, text, "with.csv"))
        assert result.exit_code == 1
        assert "line 3: passwords are checked by the ldap directory" in result.output
        assert user_count(app) == 2


def _second_instance(tmp_path):
    url = f"sqlite:///{tmp_path / 'second.sqlite3'}"
    migrate.upgrade(url)
    return create_app({"instance_dir": tmp_path / "second", "database_url": url,
                       "testing": True})


NAMES = {"alice": "Chan, Tai Man", "bob": 'Bob "the Builder"', "carol": "陳大文",
         "dave": "=HYPERLINK(\"http://x\")", "erin": "João\nSilva"}


def test_export_has_no_secrets_and_reads_back(app, runner, tmp_path, cheap_argon2):
    for username, name in NAMES.items():
        make_user(app, username, name=name, given_name=name[:3], surname="S")
    _, secret = add_totp_device(app, "alice")
    add_totp_device(app, "alice", name="Tablet")
    invoke(runner, "users", "lock", "bob")
    result = runner.invoke(args=["users", "export"])
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert not out.startswith("\ufeff")  # no BOM on standard output
    with committed(app) as c:
        secrets = [secret]
        for user in c.db.scalars(select(User)):
            secrets += [user.password_hash, user.password_hash.split("$")[-1],
                        user.dob_hash.hex(), user.id_last4_hash.hex()]
    for text in secrets:
        assert text not in out
    assert "argon2" not in out and "2001-02-03" not in out and "123A" not in out
    rows = list(csv.reader(io.StringIO(out)))
    assert tuple(rows[0]) == user_export.COLUMNS
    by_name = {row[0]: dict(zip(rows[0], row, strict=True)) for row in rows[1:]}
    assert sorted(by_name) == sorted(NAMES)
    for username, name in NAMES.items():
        expected = "'" + name if name.startswith("=") else name  # no formula cells
        assert by_name[username]["name"] == expected
    assert by_name["alice"]["devices"] == "2" and by_name["alice"]["device_kinds"] == "totp:2"
    assert by_name["bob"]["state"] == "disabled" and by_name["carol"]["state"] == "active"
    assert by_name["carol"]["email"] == "carol@example.edu" and by_name["carol"]["role"] == \
        "student"
    # to a file: a byte order mark for spreadsheets, and it imports elsewhere with the columns
    # an export cannot have (dob, id_last4, password_hash)
    path = tmp_path / "export.csv"
    result = runner.invoke(args=["users", "export", str(path)])
    assert result.exit_code == 0 and f"exported 5 user(s) to {path}" in result.stderr
    assert path.read_bytes().startswith(b"\xef\xbb\xbf")
    with path.open(encoding="utf-8-sig", newline="") as stream:
        exported = list(csv.DictReader(stream))
    again = io.StringIO()
    writer = csv.writer(again)
    writer.writerow([*user_export.IMPORTABLE, "dob", "id_last4", "password_hash"])
    for row in exported:
        writer.writerow([row[c] for c in user_export.IMPORTABLE] + ["2001-02-03", "123A",
                                                                     CURRENT_ARGON2ID])
    second = _second_instance(tmp_path)
    try:
        reimport = write(tmp_path, again.getvalue(), "again.csv")
        result = second.test_cli_runner().invoke(args=["users", "import", reimport])
        assert result.exit_code == 0, result.output
        second_out = second.test_cli_runner().invoke(args=["users", "export"]).stdout
        second_rows = {row[0]: row for row in csv.reader(io.StringIO(second_out))}
        for username in NAMES:
            importable = len(user_export.IMPORTABLE)
            first = [by_name[username][c] for c in user_export.COLUMNS[:importable]]
            assert second_rows[username][:importable] == first
    finally:
        core.database(second).dispose()


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_bars_only_on_a_terminal(app, runner, tmp_path):
    text = HEADER + f"s1,2000-01-01,AB12,student,S1,,{BCRYPT}\n"
    result = invoke(runner, "users", "import", write(tmp_path, text))
    assert result.exit_code == 0 and "checking" not in result.output
    assert "exporting" not in runner.invoke(args=["users", "export"]).stderr
    assert progress.terminal(io.StringIO()) is not None
    screen = _Terminal()
    with progress.terminal(screen)("adding users", 10) as phase:
        phase.update(10)
    assert "adding users" in screen.getvalue() and "100%" in screen.getvalue()
    quiet = io.StringIO()
    with progress.terminal(quiet)("adding users", 10) as phase:
        phase.update(10)
    assert quiet.getvalue() == ""
