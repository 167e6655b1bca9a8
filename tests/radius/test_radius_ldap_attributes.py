"""How often a VPN login reads the LDAP directory's attributes (issue 18, point 3): not again
within UM2FA_LDAP_ATTRIBUTE_MAX_AGE of the row's last update from them, while the password is
still checked by a bind at every login, a user we do not hold is still looked up, the role is
read at every login when it decides the VPN's reply attributes, and the web doors always read
them. In-process (`radius_auth.check_then_decide`, the path of `um2fa radius` with LDAP)
against a real slapd; slapd's log counts its SEARCHes and BINDs."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import pytest
from ldap3 import MODIFY_REPLACE, NONE, Connection, Server
from sqlalchemy import event, select, update
from sqlalchemy.orm import Session

from app.core import radius_auth, signin
from app.core.radius_auth import AccessRequest, Outcome
from app.extensions import core
from app.models import User
from tests.conftest import TEST_ORIGIN, audit_rows, committed, totp_code
from tests.helpers.radius import client
from tests.peers.ldap_server import (
    ADMIN_DN,
    ADMIN_PASSWORD,
    PASSWORDS,
    PEOPLE,
    SERVICE_DN,
    SERVICE_PASSWORD,
)
from tests.radius.test_radius_ldap import directory_user

ALICE_DN = f"uid=alice,{PEOPLE}"
CHANGED = 1  # the search `changed` makes as the administrator, to put the entry back after
MAX_AGE = 600


@pytest.fixture(params=["bind", "search"])
def mode(request) -> str:
    return request.param


@pytest.fixture
def settings_overrides(slapd, mode):
    values = {"directory": "ldap", "ldap_url": slapd.url,
              "ldap_bind_dn": SERVICE_DN, "ldap_bind_password": SERVICE_PASSWORD,
              "ldap_timeout": 2, "ldap_attribute_max_age": MAX_AGE}
    if mode == "bind":
        values["ldap_user_dn_template"] = f"uid={{username}},{PEOPLE}"
    else:
        values["ldap_base_dn"] = PEOPLE
    return values


@pytest.fixture
def services(app, clock):
    return dataclasses.replace(core.services(app), clock=clock)


def _admin(slapd) -> Connection:
    return Connection(Server("127.0.0.1", port=slapd.port, get_info=NONE), ADMIN_DN,
                      ADMIN_PASSWORD, auto_bind=True)


@contextmanager
def removed(slapd, dn: str) -> Iterator[None]:
    """The entry deleted (as the directory's administrator), put back after."""
    conn = _admin(slapd)
    try:
        conn.search(dn, "(objectClass=*)", "BASE", attributes=["*"])
        attributes = {k: v for k, v in conn.response[0]["raw_attributes"].items()}
        assert conn.delete(dn)
        try:
            yield
        finally:
            assert conn.add(dn, attributes=attributes)
    finally:
        conn.unbind()


@contextmanager
def changed(slapd, dn: str, **values: str) -> Iterator[None]:
    """The entry's attributes replaced (as the directory's administrator), put back after."""
    conn = _admin(slapd)
    try:
        conn.search(dn, "(objectClass=*)", "BASE", attributes=list(values))
        before = {name: list(conn.entries[0][name].values) for name in values}
        assert conn.modify(dn, {k: [(MODIFY_REPLACE, [v])] for k, v in values.items()})
        try:
            yield
        finally:
            assert conn.modify(dn, {k: [(MODIFY_REPLACE, v)] for k, v in before.items()})
    finally:
        conn.unbind()


def login(services, clock, secret: str | None, password: str,
          username: str = "alice") -> radius_auth.Decision:
    """An append-mode login, "password,code", at the next TOTP step."""
    clock.advance(30)
    code = totp_code(secret, clock.now) if secret else "123456"
    req = AccessRequest(client=client(), source="127.0.0.1", username=username,
                        password=f"{password},{code}", nas_ip="10.1.2.3",
                        calling_station="203.0.113.9")
    return radius_auth.check_then_decide(services, req)


def at(clock) -> datetime:
    return datetime.fromtimestamp(clock.now, UTC)


def searches(slapd) -> int:
    return slapd.operations()["SRCH"]


def dn_searches(mode: str) -> int:
    """The searches a login makes to find the DN: search-then-bind mode only."""
    return 1 if mode == "search" else 0


def row(app, username: str = "alice") -> User:
    with committed(app) as c:
        user = c.db.scalar(select(User).where(User.username == username))
        c.db.refresh(user, ["directory_synced_at"])
        c.db.expunge(user)
        return user


def test_a_second_login_within_the_window_reads_no_attributes(app, services, clock, slapd,
                                                               mode):
    secret = directory_user(app)
    start, binds = searches(slapd), slapd.binds_of(ALICE_DN)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    assert searches(slapd) == start + dn_searches(mode) + 1  # the attributes, read
    assert row(app).directory_synced_at == at(clock)
    middle = searches(slapd)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    assert searches(slapd) == middle + dn_searches(mode)  # not read again
    assert slapd.binds_of(ALICE_DN) == binds + 2  # the password: a bind at every login
    results = [r.result for r in audit_rows(app, "radius.access")]
    assert results == ["accept", "accept"]
    assert [r.result for r in audit_rows(app, "sign_in")] == ["ok", "ok"]
    assert [r.result for r in audit_rows(app, "factor")] == ["ok", "ok"]


def test_a_change_in_the_directory_shows_after_the_window(app, services, clock, slapd):
    secret = directory_user(app)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    assert row(app).email == "alice@um.edu.mo"
    with changed(slapd, ALICE_DN, mail="alice.new@um.edu.mo"):
        assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
        assert row(app).email == "alice@um.edu.mo"  # within the window: as it was
        clock.advance(MAX_AGE)
        assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
        assert row(app).email == "alice.new@um.edu.mo"
    assert audit_rows(app, "user.provision")[-1].detail.startswith("changed email;")


@pytest.mark.parametrize("how", ["password changed", "entry removed"])
def test_an_account_the_directory_no_longer_opens_is_refused_within_the_window(
        app, services, clock, slapd, how):
    secret = directory_user(app)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    if how == "password changed":
        with changed(slapd, ALICE_DN, userPassword="disabled-by-the-it-office"):
            refused = login(services, clock, secret, PASSWORDS["alice"])
    else:
        with removed(slapd, ALICE_DN):
            refused = login(services, clock, secret, PASSWORDS["alice"])
    assert refused.outcome is Outcome.REJECT
    assert [r.detail.split(";")[0] for r in audit_rows(app, "radius.access")] == [
        "totp", "password"]
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT


def test_a_user_we_do_not_hold_is_looked_up(app, services, clock, slapd, mode):
    start = searches(slapd)
    # bob is in the directory, not yet ours: his row is made (no device: refused)
    assert login(services, clock, None, PASSWORDS["bob"], "bob").outcome is Outcome.REJECT
    assert searches(slapd) == start + dn_searches(mode) + 1
    bob = row(app, "bob")
    assert bob.email == "bob@um.edu.mo" and bob.directory_synced_at == at(clock)
    assert [(r.username, r.result) for r in audit_rows(app, "user.provision")] == [
        ("bob", "created")]


def test_a_row_made_here_is_not_taken_as_fresh(app, services, clock, slapd, mode):
    """A row that was never brought up to date from the directory (users add, an import)."""
    secret = directory_user(app)
    with committed(app) as c:
        c.db.execute(update(User).values(directory_synced_at=None))
    start = searches(slapd)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    assert searches(slapd) == start + dn_searches(mode) + 1


def test_no_window_reads_them_at_every_login(app, services, clock, slapd, mode):
    services = dataclasses.replace(services, settings=dataclasses.replace(
        services.settings, ldap_attribute_max_age=0))
    secret = directory_user(app)
    start = searches(slapd)
    for _ in range(2):
        assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    assert searches(slapd) == start + 2 * (dn_searches(mode) + 1)
    assert row(app).directory_synced_at is None  # nothing to keep


def test_the_role_is_read_at_every_login_when_it_decides_the_reply(app, services, clock,
                                                                    slapd, mode):
    """UM2FA_RADIUS_ROLE_ATTRIBUTES: the role decides what the VPN is told (e.g. its filter),
    so a role changed in the directory shows at the next login, not after the window."""
    services = dataclasses.replace(services, settings=dataclasses.replace(
        services.settings, radius_role_attributes={"staff": (("Filter-Id", "staff-net"),)}))
    secret = directory_user(app)
    start = searches(slapd)
    first = login(services, clock, secret, PASSWORDS["alice"])
    assert first.outcome is Outcome.ACCEPT and first.attributes == ()  # alice is a student
    with changed(slapd, ALICE_DN, employeeType="staff"):
        second = login(services, clock, secret, PASSWORDS["alice"])
    assert second.outcome is Outcome.ACCEPT and second.attributes == (("Filter-Id",
                                                                        "staff-net"),)
    assert searches(slapd) == start + 2 * (dn_searches(mode) + 1) + CHANGED


def test_the_web_sign_in_reads_them_at_every_sign_in(app, services, clock, slapd, mode):
    """The web doors (and what the recovery portal's identity check relies on: the keyed
    hashes of date of birth and ID characters) read the attributes fresh, window or not."""
    secret = directory_user(app)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    start = searches(slapd)
    with changed(slapd, ALICE_DN, mail="alice.web@um.edu.mo"), committed(app) as c:
        assert signin.sign_in(c, TEST_ORIGIN, "alice", PASSWORDS["alice"]) is not None
    assert searches(slapd) == start + dn_searches(mode) + 1 + CHANGED
    assert row(app).email == "alice.web@um.edu.mo"


def test_a_fresh_login_reads_the_user_without_the_orm(app, services, clock, slapd):
    """The login's database part reads the user as a subjects.Subject (one plain SELECT), as the
    second-factor door does: no ORM query for a User."""
    secret = directory_user(app)
    assert login(services, clock, secret, PASSWORDS["alice"]).outcome is Outcome.ACCEPT
    orm_reads: list[str] = []

    def count(state) -> None:
        if state.is_select and any(m.class_ is User for m in state.all_mappers):
            orm_reads.append(str(state.statement))

    event.listen(Session, "do_orm_execute", count)
    try:
        decision = login(services, clock, secret, PASSWORDS["alice"])
    finally:
        event.remove(Session, "do_orm_execute", count)
    assert decision.outcome is Outcome.ACCEPT and decision.message.endswith("Phone.")
    assert orm_reads == []
