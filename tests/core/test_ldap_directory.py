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
from tests.peers.ldap_server import PASSWORDS, PEOPLE, SERVICE_DN, SERVICE_PASSWORD

ALICE_DN = f"uid=alice,{PEOPLE}"
MAPPING = {"dob": "umDateOfBirth", "id_last4": "umIdNumber"}


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
    # From cold pools: the first check opens a connection (and StartTLS) for the bind, whoever
    # it is for; then both pools are open and every check is a bind (and a search) on them.
    cold_known, cold_unknown = make(mode, **extra), make(mode, **extra)
    for directory in (cold_known, cold_unknown):
        directory.lookup("alice")  # the pool's service connection is open before we count
    first = _cost(slapd, lambda: cold_known.check_password("alice", None, "wrong-password"))
    assert first == _cost(slapd, lambda: cold_unknown.check_password("nobody", None, "wrong"))
    assert first["ACCEPT"] == 1 and first["BIND"] == 1
    assert first.get("EXT", 0) == (1 if tls else 0)
    directory = cold_known
    known = _cost(slapd, lambda: directory.check_password("alice", None, "wrong-password"))
    for username in ("nobody", "alice2", "no such user"):
        unknown = _cost(slapd, lambda u=username: directory.check_password(
            u, None, "wrong-password"))
        assert unknown == known, (username, unknown, known)
    assert known == {"BIND": 1, **({"SRCH": 1} if mode == "search" else {})}


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
    assert directory.pool_info() == {"service": {"opened": 1, "idle": 1, "size": 2},
                                     "binds": {"opened": 1, "idle": 1, "size": 8}}


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

    in_threads(work, 8)
    assert not errors and len(results) == 80 and all(results)
    assert slapd.binds_of(SERVICE_DN) - before <= 2
    info = directory.pool_info()["service"]
    assert info["opened"] <= 2 and info["idle"] <= 2


def test_a_forked_child_opens_its_own_connections(make, slapd):
    directory = make("search")
    assert directory.lookup("alice") is not None
    assert directory.check_password("bob", None, PASSWORDS["bob"])
    assert [pool["idle"] for pool in directory.pool_info().values()] == [1, 1]
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report, then leave without running pytest's teardown
        try:
            fresh = all(pool["idle"] == 0 for pool in directory.pool_info().values())
            ok = directory.check_password("alice", None, PASSWORDS["alice"])
            os.write(write, b"ok" if fresh and ok else b"no")
        finally:
            os._exit(0)
    os.close(write)
    _pid, status = os.waitpid(pid, 0)
    assert os.read(read, 2) == b"ok" and status == 0
    os.close(read)
    # The parent's pooled connection is untouched by the child.
    assert directory.lookup("bob") is not None
    assert directory.check_password("bob", None, PASSWORDS["bob"])
    assert [pool["opened"] for pool in directory.pool_info().values()] == [1, 1]


# -- the user-bind pool -------------------------------------------------------------------


def _whoami(conn) -> str:
    """Who the server takes a pooled connection for (RFC 4532): "" when anonymous."""
    return (conn.extend.standard.who_am_i() or "").removeprefix("dn:").lower()


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_user_binds_reuse_pooled_connections(make, slapd, mode):
    """A password check is one bind on an open connection: no connection, no unbind each."""
    directory = make(mode, ldap_bind_pool_size=2)
    assert directory.check_password("alice", None, PASSWORDS["alice"])  # both pools open
    before = slapd.operations()
    for _ in range(5):
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        assert not directory.check_password("alice", None, "wrong-password")
        assert not directory.check_password("nobody", None, "wrong-password")
        assert directory.check_password("bob", None, PASSWORDS["bob"])
    cost = dict(slapd.operations() - before)
    assert cost == {"BIND": 20, **({"SRCH": 20} if mode == "search" else {})}
    assert directory.pool_info()["binds"] == {"opened": 1, "idle": 1, "size": 2}


def test_a_wrong_password_then_a_right_one_on_the_same_connection(make, slapd):
    directory = make("bind", ldap_bind_pool_size=1)
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    (conn,) = directory._binds._idle
    assert _whoami(conn) == ALICE_DN.lower()
    assert not directory.check_password("alice", None, "wrong-password")
    assert directory._binds._idle == [conn]
    assert _whoami(conn) == ""  # refused: anonymous again, alice's identity is gone
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert not directory.check_password("bob", None, PASSWORDS["alice"])
    assert directory.check_password("bob", None, PASSWORDS["bob"])
    assert directory._binds._idle == [conn] and directory.pool_info()["binds"]["opened"] == 1
    # ldap3 keeps a bind's password on the connection: not one that stays open in the pool
    assert conn.password is None and conn.request is None
    assert PASSWORDS["bob"] not in repr(vars(conn))


def test_searches_never_run_on_a_users_connection(make, slapd):
    """A connection last bound as alice is only ever used for the next user's bind: bob's
    attributes (which alice may not read) are read by the service account on its own pool."""
    directory = make("bind", ldap_pool_size=1, ldap_bind_pool_size=1)
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    bob = directory.lookup("bob")
    assert bob is not None and bob.email == "bob@um.edu.mo"
    (service,), (user,) = directory._service._idle, directory._binds._idle
    assert service is not user
    assert _whoami(service) == SERVICE_DN.lower() and _whoami(user) == ALICE_DN.lower()


def test_starttls_once_per_pooled_connection(make, slapd):
    directory = make("bind", ldap_starttls=True, ldap_ca_file=str(slapd.ca_file))
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    before = slapd.operations()
    for _ in range(3):
        assert directory.check_password("alice", None, PASSWORDS["alice"])
        assert not directory.check_password("bob", None, "wrong-password")
    assert dict(slapd.operations() - before) == {"BIND": 6}
    assert all(conn.tls_started for conn in directory._binds._idle)


def test_a_pooled_connection_that_lost_tls_is_never_reused(make, slapd):
    """ldap3 reopens a closed connection on the next bind, without StartTLS: such a pooled
    connection is closed and a fresh one (with StartTLS) opened instead."""
    directory = make("bind", ldap_starttls=True, ldap_ca_file=str(slapd.ca_file),
                     ldap_bind_pool_size=1)
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    (conn,) = directory._binds._idle
    conn.tls_started = False  # as if it had been reopened in clear
    before = slapd.operations()
    assert directory.check_password("alice", None, PASSWORDS["alice"])
    assert dict(slapd.operations() - before) == {"ACCEPT": 1, "EXT": 1, "BIND": 1}
    assert directory._binds._idle != [conn] and conn.closed


@pytest.mark.parametrize("mode", ["bind", "search"])
def test_slapd_restarted_mid_pool(make, slapd, mode, caplog):
    """Every pooled connection is dropped by a restart: each is replaced on its next use, and
    no check fails meanwhile."""
    directory = make(mode, ldap_bind_pool_size=3, ldap_pool_size=3)
    errors: list[BaseException] = []

    def at_once(rounds: int) -> None:
        """3 threads, each checking at the same moment, so that all 3 connections are used."""
        barrier = threading.Barrier(3)

        def check() -> None:
            try:
                for _ in range(rounds):
                    barrier.wait(timeout=10)
                    assert directory.check_password("alice", None, PASSWORDS["alice"])
                    assert not directory.check_password("nobody", None, "wrong-password")
                    assert directory.lookup("bob") is not None
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)

        threads = [threading.Thread(target=check) for _ in range(3)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=30)

    at_once(3)
    opened = directory.pool_info()["binds"]["opened"]
    assert not errors and opened >= 2  # several pooled connections open when slapd goes
    slapd.stop()
    slapd.start()
    at_once(3)
    assert not errors, errors
    assert not directory.check_password("alice", None, "wrong-password")
    info = directory.pool_info()["binds"]
    assert opened < info["opened"] <= 2 * 3 and info["idle"] <= 3
    assert "unavailable" not in caplog.text


def test_user_binds_are_bounded_under_concurrency(make, slapd):
    directory = make("bind", ldap_bind_pool_size=2)
    before = slapd.operations()
    results: list[bool] = []
    errors: list[BaseException] = []

    def work() -> None:
        try:
            for _ in range(10):
                results.append(directory.check_password("alice", None, PASSWORDS["alice"]))
                results.append(not directory.check_password("bob", None, "wrong-password"))
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    in_threads(work, 8)
    assert not errors and len(results) == 160 and all(results)
    cost = slapd.operations() - before
    assert cost["BIND"] == 160 and cost["ACCEPT"] <= 2
    info = directory.pool_info()["binds"]
    assert info["opened"] <= 2 and info["idle"] <= 2


def test_waiting_for_a_user_bind_connection_is_bounded(make, slapd):
    directory = make("bind", ldap_bind_pool_size=1, ldap_timeout=1)
    with directory._binds.slot():  # the one connection is busy (a bind that never ends)
        started = time.monotonic()
        with pytest.raises(DirectoryUnavailable, match="user-bind connection pool exhausted"):
            directory.check_password("alice", None, PASSWORDS["alice"])
        assert 0.9 <= time.monotonic() - started < 3
    assert directory.check_password("alice", None, PASSWORDS["alice"])


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
    ({"ldap_bind_pool_size": 0}, "UM2FA_LDAP_BIND_POOL_SIZE must be between 1 and 64"),
    ({"ldap_bind_pool_size": 65}, "UM2FA_LDAP_BIND_POOL_SIZE must be between 1 and 64"),
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
           "UM2FA_LDAP_STARTTLS": "true", "UM2FA_LDAP_POOL_SIZE": "3",
           "UM2FA_LDAP_BIND_POOL_SIZE": "12"}
    settings = _settings(tmp_path, environ=env, ldap_url="ldap://ldap.um.edu.mo")
    assert settings.ldap_attributes["dob"] == "umDateOfBirth"
    assert settings.ldap_attributes["username"] == "uid"  # defaults kept
    assert settings.ldap_starttls and settings.ldap_pool_size == 3
    assert settings.ldap_bind_pool_size == 12
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


def in_threads(work, count: int) -> None:
    """`work` on `count` threads at once, each given a minute to finish."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
