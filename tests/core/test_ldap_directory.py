"""The LDAP directory against a real OpenLDAP (Debian's slapd, tests/peers/ldap_server.py)."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from pathlib import Path

import pytest

from app.bootstrap import make_directory
from app.config import ConfigError, load_settings
from app.core import identity, provisioning, users
from app.core.directory import DirectoryUnavailable, DirectoryUser, LocalDirectory
from app.core.directory_ldap import LdapDirectory, dn_for, filter_for
from tests.conftest import TEST_ORIGIN, audit_rows
from tests.peers.ldap_server import PASSWORDS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD, SlapdServer

ALICE_DN = f"uid=alice,{PEOPLE}"
MAPPING = {"dob": "umDateOfBirth", "id_last4": "umIdNumber"}


@pytest.fixture(scope="module")
def slapd(tmp_path_factory) -> SlapdServer:
    server = SlapdServer(tmp_path_factory.mktemp("slapd"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def make(slapd, tmp_path):
    """An LdapDirectory built from settings, as the app would (load_settings validates)."""
    made: list[LdapDirectory] = []

    def build(mode: str = "search", **overrides) -> LdapDirectory:
        values = {"instance_dir": tmp_path / "instance", "directory": "ldap",
                  "ldap_url": slapd.url, "ldap_bind_dn": SERVICE_DN,
                  "ldap_bind_password": SERVICE_PASSWORD, "ldap_attributes": MAPPING}
        if mode == "bind":
            values["ldap_user_dn_template"] = f"uid={{username}},{PEOPLE}"
        else:
            values["ldap_base_dn"] = PEOPLE
        directory = make_directory(load_settings({**values, **overrides}, environ={}))
        assert isinstance(directory, LdapDirectory)
        made.append(directory)
        return directory

    yield build
    for directory in made:
        directory.close()


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_password_checks(make, slapd, mode):
    directory = make(mode)
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert directory.check_password("ALICE", "ignored-hash", PASSWORDS["alice"])
    assert not directory.check_password("alice", None, PASSWORDS["bob"])
    assert not directory.check_password("nobody", None, PASSWORDS["alice"])
    assert directory.check_password("bob", None, PASSWORDS["bob"])


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_empty_password_never_binds(make, slapd, mode):
    """An empty password would be an unauthenticated bind: refused before the server is asked."""
    directory = make(mode)
    before = slapd.binds_of(ALICE_DN)
    for username in ("alice", "bob", ""):
        assert not directory.check_password(username, None, "")
    assert not directory.check_password("", None, PASSWORDS["alice"])
    assert slapd.binds_of(ALICE_DN) == before


def _cost(slapd, check) -> dict:
    """What one password check asked of the server (connections, BINDs, SRCHs, StartTLS)."""
    before = slapd.operations()
    assert not check()
    return dict(slapd.operations() - before)


@pytest.mark.parametrize("mode,tls", [("bind", False), ("search", False), ("search", True)])
def test_an_unknown_user_costs_the_directory_what_a_known_one_does(make, slapd, mode, tls):
    """Without this, the time of a failed sign-in tells whether a username exists (search
    mode: an unknown user cost one search, a known one a search and a bind)."""
    extra = {"ldap_starttls": True, "ldap_ca_file": str(slapd.ca_file)} if tls else {}
    directory = make(mode, **extra)
    directory.lookup("alice")  # the pool's service connection is open before we count
    known = _cost(slapd, lambda: directory.check_password("alice", None, "wrong-password"))
    for username in ("nobody", "alice2", "no such user"):
        unknown = _cost(slapd, lambda u=username: directory.check_password(
            u, None, "wrong-password"))
        assert unknown == known, (username, unknown, known)
    assert known["BIND"] == 1 and known["ACCEPT"] == 1
    assert known.get("SRCH", 0) == (1 if mode == "search" else 0)
    assert known.get("EXT", 0) == (1 if tls else 0)


INJECTIONS = [
    "*", "al*", "*ice", "alice)(uid=*", "*)(uid=*", "alice)(|(uid=*)", "*)(|(objectClass=*",
    "alice\\", "alice\x00", "(uid=alice)", "alice,ou=people", f"alice,{PEOPLE}",
    "alice+cn=x", "alice\\2a", "#alice", "alice;", "carol)(uid=alice",
]


@pytest.mark.parametrize("mode", ["bind", "search"])
@pytest.mark.parametrize("username", INJECTIONS)
def test_ldap_injection_fails(make, mode, username):
    directory = make(mode)
    for password in PASSWORDS.values():
        assert not directory.check_password(username, None, password)
    assert directory.lookup(username) is None


def test_escaping_keeps_the_structure():
    assert filter_for("(uid={username})", "*)(uid=*") == r"(uid=\2a\29\28uid=\2a)"
    assert filter_for("(&(objectClass=person)(uid={username}))", "a\\b\x00") == \
        r"(&(objectClass=person)(uid=a\5cb\00))"
    assert dn_for("uid={username},ou=people", "a,ou=x+cn=y") == r"uid=a\,ou\=x\+cn\=y,ou=people"


def test_lookup_maps_attributes(make):
    directory = make("search")
    alice = directory.lookup("Alice")
    assert alice == DirectoryUser(username="alice", display_name="Alice Chan",
                                  email="alice@um.edu.mo", role="student", dob="2001-02-03",
                                  id_last4="123A", given_name="Alice", surname="Chan")
    bob = directory.lookup("bob")
    # GeneralizedTime date of birth; the whole ID number; two roles, the known one wins.
    assert (bob.role, bob.dob, bob.id_last4) == ("staff", "1999-05-17", "4567")
    assert directory.lookup("nobody") is None
    assert make("bind").lookup("bob") == bob
    assert "1999" not in repr(bob) and "4567" not in repr(bob)


def test_unmapped_attributes_are_not_read(make):
    plain = make("search", ldap_attributes={"role": "", "mail": "", "given_name": "",
                                            "surname": ""}).lookup("alice")
    assert plain == DirectoryUser(username="alice", display_name="Alice Chan")


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_starttls_and_ldaps_with_the_right_ca(make, slapd, mode):
    starttls = make(mode, ldap_starttls=True, ldap_ca_file=str(slapd.ca_file))
    ldaps = make(mode, ldap_url=slapd.ldaps_url, ldap_ca_file=str(slapd.ca_file))
    for directory in (starttls, ldaps):
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        assert not directory.check_password("alice", None, "wrong-password")
        assert directory.lookup("alice").email == "alice@um.edu.mo"


@pytest.mark.parametrize("mode", ["bind", "search"])
@pytest.mark.parametrize("transport", ["starttls", "ldaps"])
def test_a_wrong_ca_is_refused(make, slapd, mode, transport, caplog):
    if transport == "starttls":
        directory = make(mode, ldap_starttls=True, ldap_ca_file=str(slapd.wrong_ca_file))
    else:
        directory = make(mode, ldap_url=slapd.ldaps_url, ldap_ca_file=str(slapd.wrong_ca_file))
    before = slapd.binds_of(ALICE_DN)
    with pytest.raises(DirectoryUnavailable):
        directory.check_password("alice", None, PASSWORDS["alice"])
    with pytest.raises(DirectoryUnavailable):
        directory.lookup("alice")
    assert slapd.binds_of(ALICE_DN) == before  # the password never went out
    assert "CERTIFICATE_VERIFY_FAILED" in caplog.text
    assert PASSWORDS["alice"] not in caplog.text


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_stopped_server_is_unavailable_then_recovers(make, slapd, mode, caplog):
    directory = make(mode, ldap_timeout=2)
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert directory.lookup("alice") is not None  # a pooled connection now exists
    slapd.stop()
    try:
        for _ in range(2):
            with pytest.raises(DirectoryUnavailable):
                directory.check_password("alice", None, PASSWORDS["alice"])
            with pytest.raises(DirectoryUnavailable):
                directory.lookup("alice")
    finally:
        slapd.start()
    # The same object: the dead pooled connection is replaced without a restart.
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert not directory.check_password("alice", None, "wrong-password")
    assert directory.lookup("bob").role == "staff"
    assert PASSWORDS["alice"] not in caplog.text


def test_a_server_that_never_answers_times_out(tmp_path):
    """TCP accepted, no LDAP answer: unavailable after the timeout, not a hang."""
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        port = silent.getsockname()[1]
        settings = load_settings({
            "instance_dir": tmp_path / "instance", "directory": "ldap",
            "ldap_url": f"ldap://127.0.0.1:{port}", "ldap_user_dn_template":
            f"uid={{username}},{PEOPLE}", "ldap_timeout": 1}, environ={})
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable):
            LdapDirectory(settings).check_password("alice", None, PASSWORDS["alice"])
        assert time.monotonic() - started < 5


def test_pool_reuses_service_connections(make, slapd):
    directory = make("search", ldap_pool_size=2)
    before = slapd.binds_of(SERVICE_DN)
    for _ in range(10):
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        assert directory.lookup("bob") is not None
    assert slapd.binds_of(SERVICE_DN) - before == 1
    assert directory.pool_info() == {"opened": 1, "idle": 1, "size": 2}


def test_pool_is_bounded_under_concurrency(make, slapd):
    directory = make("search", ldap_pool_size=2)
    before = slapd.binds_of(SERVICE_DN)
    results: list[bool] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(5):
                results.append(directory.lookup("alice") is not None)
                results.append(directory.check_password("bob", None, PASSWORDS["bob"]))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=work) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors and len(results) == 80 and all(results)
    assert slapd.binds_of(SERVICE_DN) - before <= 2
    info = directory.pool_info()
    assert info["opened"] <= 2 and info["idle"] <= 2


def test_a_forked_child_opens_its_own_connections(make, slapd):
    directory = make("search")
    assert directory.lookup("alice") is not None
    assert directory.pool_info()["idle"] == 1
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            fresh = directory.pool_info()["idle"] == 0
            ok = directory.check_password("alice", None, PASSWORDS["alice"])
            os.write(write, b"ok" if fresh and ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _pid, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0
    os.close(read)
    # The parent's pooled connection is untouched by the child.
    assert directory.lookup("bob") is not None and directory.pool_info()["opened"] == 1


def test_service_account_with_a_wrong_password_is_unavailable(make):
    directory = make("search", ldap_bind_password="not-the-password")
    with pytest.raises(DirectoryUnavailable, match="service account"):
        directory.check_password("alice", None, PASSWORDS["alice"])


# -- provisioning ------------------------------------------------------------------------


def test_sync_user_creates_then_updates(app, ctx, make):
    directory = make("bind")
    found = directory.lookup("alice")
    user = provisioning.sync_user(ctx, TEST_ORIGIN, found)
    assert (user.username, user.display_name, user.email, user.role) == \
        ("alice", "Alice Chan", "alice@um.edu.mo", "student")
    # givenName and sn (released to SAML services) come from the directory too
    assert (user.given_name, user.surname) == ("Alice", "Chan")
    assert user.password_hash is None
    answers = identity.normalise("student", "alice", "2001-02-03", "123a")
    assert identity.check(ctx, answers).ok
    assert not identity.check(ctx, identity.normalise("student", "alice", "2001-02-04",
                                                      "123A")).ok

    changed = DirectoryUser(username="alice", display_name="Alice Chan Tai Man",
                            email="alice@um.edu.mo", role="staff", dob="20010203",
                            id_last4="999B")
    same = provisioning.sync_user(ctx, TEST_ORIGIN, changed)
    assert same.id == user.id and same.display_name == "Alice Chan Tai Man"
    assert identity.check(ctx, identity.normalise("staff", "alice", "2001-02-03", "999B")).ok
    provisioning.sync_user(ctx, TEST_ORIGIN, changed)  # nothing changed: no record
    ctx.db.commit()
    rows = [(r.result, r.detail) for r in audit_rows(app, "user.provision")]
    assert rows == [("created", "from the directory"),
                    ("updated", "changed display_name, role, id_last4")]


def test_sync_user_keeps_what_the_directory_does_not_give(app, ctx):
    provisioning.sync_user(ctx, TEST_ORIGIN, DirectoryUser(
        username="dora", display_name="Dora", role="student", dob="2000-01-02",
        id_last4="1234"))
    user = provisioning.sync_user(ctx, TEST_ORIGIN, DirectoryUser(
        username="dora", dob="not a date", id_last4="!"))
    assert user.display_name == "Dora" and user.role == "student"
    assert identity.check(ctx, identity.normalise("student", "dora", "2000-01-02", "1234")).ok
    ctx.db.commit()
    rows = audit_rows(app, "user.provision")
    assert rows[-1].detail == ("unusable date of birth in the directory; unusable ID characters "
                               "in the directory")
    assert "not a date" not in rows[-1].detail


def test_sync_user_refuses_a_username_we_cannot_hold(ctx):
    with pytest.raises(users.UserError):
        provisioning.sync_user(ctx, TEST_ORIGIN, DirectoryUser(username="a b"))


# -- settings ----------------------------------------------------------------------------


def _settings(tmp_path, environ=None, **values):
    base = {"instance_dir": tmp_path / "instance", "directory": "ldap",
            "ldap_url": "ldaps://ldap.um.edu.mo", "ldap_base_dn": PEOPLE}
    return load_settings({**base, **values}, environ=environ or {})


@pytest.mark.parametrize(("values", "message"), [
    ({"directory": "ad"}, "UM2FA_DIRECTORY must be 'local', 'ldap' or 'radius'"),
    ({"ldap_url": ""}, "UM2FA_LDAP_URL is required"),
    ({"ldap_url": "http://ldap.um.edu.mo"}, "must be ldaps://host"),
    ({"ldap_url": "ldap://ldap.um.edu.mo:x"}, "is not a URL"),
    ({"ldap_url": "ldap://ldap.um.edu.mo"}, "in clear"),
    ({"ldap_starttls": True}, "ldaps:// is TLS already"),
    ({"ldap_base_dn": ""}, "UM2FA_LDAP_USER_DN_TEMPLATE (bind as the user) or"),
    ({"ldap_user_dn_template": "uid=alice,ou=people"}, "must contain {username} once"),
    ({"ldap_user_filter": "uid={username}"}, "must be a filter in parentheses"),
    ({"ldap_user_filter": "(uid=alice)"}, "must be a filter in parentheses"),
    ({"ldap_bind_dn": SERVICE_DN}, "UM2FA_LDAP_BIND_PASSWORD is required"),
    ({"ldap_ca_file": "/nonexistent/ca.pem"}, "cannot be read"),
    ({"ldap_timeout": 0}, "UM2FA_LDAP_TIMEOUT must be between"),
    ({"ldap_pool_size": 0}, "UM2FA_LDAP_POOL_SIZE must be between"),
    ({"ldap_pool_size": "many"}, "must be a whole number"),
    ({"ldap_attributes": "{not json"}, "must be a JSON object"),
    ({"ldap_attributes": "[1]"}, "must be a table"),
    ({"ldap_attributes": {"birthday": "x"}}, "unknown field 'birthday'"),
    ({"ldap_attributes": {"dob": "date of birth"}}, "is not an LDAP attribute name"),
    ({"ldap_attributes": {"username": ""}}, "username must name an attribute"),
])
def test_bad_settings_are_clear_errors(tmp_path, values, message):
    with pytest.raises(ConfigError) as caught:
        _settings(tmp_path, **values)
    assert message in str(caught.value)


def test_settings_from_env_and_toml(tmp_path):
    env = {"UM2FA_LDAP_ATTRIBUTES": json.dumps({"dob": "umDateOfBirth"}),
           "UM2FA_LDAP_STARTTLS": "true", "UM2FA_LDAP_POOL_SIZE": "3"}
    settings = _settings(tmp_path, environ=env, ldap_url="ldap://ldap.um.edu.mo")
    assert settings.ldap_attributes["dob"] == "umDateOfBirth"
    assert settings.ldap_attributes["username"] == "uid"  # defaults kept
    assert settings.ldap_starttls and settings.ldap_pool_size == 3
    config = Path(tmp_path / "um2fa.toml")
    config.write_text('directory = "ldap"\nldap_url = "ldaps://ldap.um.edu.mo"\n'
                      f'ldap_base_dn = "{PEOPLE}"\nldap_bind_dn = "{SERVICE_DN}"\n'
                      'ldap_bind_password = "s3cret-service"\n'
                      '[ldap_attributes]\nid_last4 = "umIdNumber"\nrole = "eduPersonAffiliation"\n')
    from_toml = load_settings({"instance_dir": tmp_path / "instance"},
                              environ={"UM2FA_CONFIG": str(config)})
    assert from_toml.ldap_attributes["role"] == "eduPersonAffiliation"
    assert from_toml.ldap_attributes["id_last4"] == "umIdNumber"
    assert "s3cret-service" not in repr(from_toml)


def test_make_directory_defaults_to_local(tmp_path):
    settings = load_settings({"instance_dir": tmp_path / "instance"}, environ={})
    assert settings.directory == "local"
    local = make_directory(settings)
    assert isinstance(local, LocalDirectory) and local.lookup("alice") is None


def test_nothing_secret_in_logs(make, caplog):
    caplog.set_level(logging.DEBUG)
    directory = make("search")
    directory.check_password("alice", None, "wrong-but-secret-pw")
    directory.check_password("alice", None, PASSWORDS["alice"])
    assert "wrong-but-secret-pw" not in caplog.text
    assert PASSWORDS["alice"] not in caplog.text
    assert SERVICE_PASSWORD not in caplog.text


# --- wired into the app: the portal signs in against LDAP -----------------------------------

class TestPortalWithLdap:
    @pytest.fixture
    def settings_overrides(self, slapd):
        return {"directory": "ldap", "ldap_url": slapd.url, "ldap_base_dn": PEOPLE,
                "ldap_bind_dn": SERVICE_DN, "ldap_bind_password": SERVICE_PASSWORD,
                "ldap_attributes": {"dob": "umDateOfBirth", "id_last4": "umIdNumber"}}

    def test_sign_in_provisions_and_a_directory_outage_is_a_503(self, app, client, slapd):
        from tests.conftest import audit_rows, sign_in

        assert sign_in(client, "alice", "wrong").status_code == 401
        assert sign_in(client, "alice", PASSWORDS["alice"]).status_code == 302
        assert [r.result for r in audit_rows(app, "user.provision")] == ["created"]
        client.post("/sign-out")
        slapd.stop()
        try:
            response = sign_in(client, "alice", PASSWORDS["alice"])
            assert response.status_code == 503
            assert "temporarily unavailable" in response.get_data(as_text=True)
        finally:
            slapd.start()
        assert sign_in(client, "bob", PASSWORDS["bob"]).status_code == 302


# -- the console's roles by directory group ---------------------------------------------------


def test_member_of_a_group(make):
    from tests.peers.ldap_server import ADMIN_GROUP, HELPDESK_GROUP

    for mode in ("search", "bind"):
        directory = make(mode)
        assert directory.member_of("bob", HELPDESK_GROUP)
        assert not directory.member_of("alice", HELPDESK_GROUP)
        assert not directory.member_of("bob", ADMIN_GROUP)
        assert not directory.member_of("bob", f"cn=nobody,{PEOPLE}")
        assert not directory.member_of("bob)(member=*", HELPDESK_GROUP)  # no injection
        assert not directory.member_of("nobody", HELPDESK_GROUP)


def test_a_directory_group_gives_a_console_role(make):
    from types import SimpleNamespace

    from app.core import admins
    from tests.peers.ldap_server import ADMIN_GROUP, HELPDESK_GROUP

    directory = make("search")
    ctx = SimpleNamespace(directory=directory, settings=SimpleNamespace(
        admin_groups_admin=ADMIN_GROUP, admin_groups_helpdesk=HELPDESK_GROUP))
    assert admins.role_from_groups(ctx, "bob") == admins.HELPDESK
    assert admins.role_from_groups(ctx, "alice") is None
    ctx.settings.admin_groups_helpdesk = ""
    assert admins.role_from_groups(ctx, "bob") is None
