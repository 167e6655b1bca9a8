"""Group commit: requests that arrive together are decided in one transaction
(radius_auth.decide_many), in-process and through the live server."""

from __future__ import annotations

import dataclasses
import ipaddress
import re
import time
from pathlib import Path

import pytest
from pyrad import packet as rp
from sqlalchemy.engine import make_url

from app.core import audit, lockout, passcodes, radius_auth
from app.core.directory import LocalDirectory
from app.core.keys import Keys
from app.core.radius_auth import AccessRequest
from app.core.radius_clients import ClientConfig
from app.core.services import CoreServices
from app.db import Database
from app.extensions import core
from tests.conftest import (
    PASSWORD,
    add_totp_device,
    audit_rows,
    committed,
    make_user,
    totp_code,
)
from tests.helpers.radius import DirectoryOutsideTheDatabase
from tests.peers.live_radius import (
    LiveRadius,
    RawSocket,
    decode_reply,
    make_env,
    request_packet,
)
from tests.radius.conftest import CLIENTS, SECRETS, SOURCE

NET = ipaddress.ip_network("127.0.0.1/32")


def client(mode: str = "second-factor", **fields) -> ClientConfig:
    return ClientConfig(name="vpn", network=NET, secret=b"s" * 16, mode=mode, **fields)


def request(username: str, typed: str | None, mode: str = "second-factor",
            **fields) -> AccessRequest:
    return AccessRequest(client=client(mode), source="127.0.0.1", username=username,
                         password=typed, **fields)


@pytest.fixture
def services(app, clock):
    return dataclasses.replace(core.services(app), clock=clock)


def outcomes(decisions: list[radius_auth.Decision]) -> list[str]:
    return [d.outcome.value for d in decisions]


def test_a_code_used_twice_in_one_batch_is_accepted_once(app, clock, services):
    make_user(app)
    _, secret = add_totp_device(app)
    code = totp_code(secret, clock.now)
    decisions = radius_auth.decide_many(services, [request("alice", code),
                                                   request("alice", code)])
    assert outcomes(decisions) == ["accept", "reject"]
    assert decisions[1].message == passcodes.MESSAGES[passcodes.Verdict.REPLAY]
    assert [(r.result, r.detail.split(";")[0]) for r in audit_rows(app, "factor")] == [
        ("ok", "totp"), ("fail", "totp:replay")]
    assert [r.result for r in audit_rows(app, radius_auth.ACTION)] == ["accept", "reject"]


def test_a_batch_decides_as_if_one_after_the_other(app, clock, services):
    make_user(app)
    make_user(app, "bob")
    _, alice = add_totp_device(app)
    _, bob = add_totp_device(app, "bob")
    threshold = app.config["UM2FA"].lockout_threshold
    wrong = f"{(int(totp_code(bob, clock.now)) + 1) % 10**6:06d}"
    batch = ([request("alice", totp_code(alice, clock.now))]
             + [request("bob", wrong)] * threshold
             + [request("bob", totp_code(bob, clock.now)), request("nobody", "123456"),
                request("alice", f"{PASSWORD},{totp_code(alice, clock.now, 1)}", "append")])
    decisions = radius_auth.decide_many(services, batch)
    assert outcomes(decisions) == ["accept"] + ["reject"] * (threshold + 2) + ["accept"]
    # bob's failures were counted in order: the last one locked him, so his right code
    # in the same batch is refused as locked
    assert decisions[threshold + 1].message == lockout.LOCKED_MESSAGE
    assert [r.result for r in audit_rows(app, "lockout")] == ["locked"]
    with committed(app) as c:
        from app.core import users

        assert users.get(c, "bob").locked_at is not None
        assert users.get(c, "alice").failed_factor_count == 0
    rows = audit_rows(app, radius_auth.ACTION)
    # "nobody" matches no user: audited as its keyed hash (security issue point 16)
    assert [r.username for r in rows] == [
        r.username if r.username != "nobody"
        else audit.unknown_username(services.keys, "nobody") for r in batch]


def test_one_request_failing_does_not_cost_the_others(app, clock, services, monkeypatch,
                                                      caplog):
    make_user(app)
    make_user(app, "bob")
    _, alice = add_totp_device(app)
    _, bob = add_totp_device(app, "bob")
    real = radius_auth.modes.second_factor_only

    def broken_for_bob(ctx, origin, req):
        if req.username == "bob":
            raise RuntimeError("a bug")
        return real(ctx, origin, req)

    monkeypatch.setattr(radius_auth.modes, "second_factor_only", broken_for_bob)
    decisions = radius_auth.decide_many(services, [
        request("alice", totp_code(alice, clock.now)), request("bob", totp_code(bob, clock.now)),
        request("alice", totp_code(alice, clock.now))])
    assert outcomes(decisions) == ["accept", "reject", "reject"]
    assert decisions[1].message == radius_auth.UNAVAILABLE
    assert decisions[2].message == passcodes.MESSAGES[passcodes.Verdict.REPLAY]
    # the batch was rolled back and decided again one by one: alice's login is recorded once
    assert [(r.username, r.result) for r in audit_rows(app, radius_auth.ACTION)] == [
        ("alice", "accept"), ("alice", "reject")]
    assert "deciding them one by one" in caplog.text


def test_an_unreachable_database_gives_each_request_its_fail_mode(unreachable):
    unreachable.directory = DirectoryOutsideTheDatabase()
    safe = ClientConfig(name="vpn", network=NET, secret=b"s" * 16, fail_mode="safe")
    decisions = radius_auth.decide_many(unreachable, [
        request("alice", "123456"),
        AccessRequest(client=safe, source="127.0.0.1", username="alice",
                      password=PASSWORD)])
    assert outcomes(decisions) == ["reject", "accept"]
    assert decisions[0].message == radius_auth.UNAVAILABLE
    assert decisions[1].message == radius_auth.DEGRADED


@pytest.fixture
def unreachable(app):
    """Core services whose database does not answer (nothing listens on 127.0.0.1:1)."""
    db = Database("postgresql://um2fa@127.0.0.1:1/none?connect_timeout=2")
    yield CoreServices(db=db, settings=app.config["UM2FA"],
                       keys=Keys(app.config["UM2FA"].encryption_key), directory=LocalDirectory())
    db.dispose()


def test_only_password_checks_leave_the_batch():
    assert not radius_auth.verifies_password(request("a", "123456"))
    assert not radius_auth.verifies_password(request("a", "123456", "challenge", state=b"s"))
    assert radius_auth.verifies_password(request("a", "pw,123456", "append"))
    assert radius_auth.verifies_password(request("a", "pw", "challenge"))
    assert not radius_auth.verifies_password(request("a", None, "append"))


# --- through the live server ----------------------------------------------------------------

def test_a_burst_is_answered_once_each_and_a_doubled_code_accepted_once(app, radius):
    """Many requests at once (they reach the decision thread together and are decided in
    batches), one code sent twice under different Identifiers, and one retransmission."""
    names = [f"user{i:02d}" for i in range(40)]
    codes = {}
    for name in names:
        make_user(app, name)
        _, secret = add_totp_device(app, name)
        codes[name] = totp_code(secret, time.time())
    key, src = SECRETS["second"], SOURCE["second"]
    packets = [request_packet(name, codes[name], key) for name in names]
    packets.append(request_packet(names[0], codes[names[0]], key))  # the same code again
    for ident, pkt in enumerate(packets):
        pkt.id = ident
    sock = RawSocket(radius.port, src)
    raw = [pkt.RequestPacket() for pkt in packets]
    for data in raw:
        sock.send(data)
    sock.send(raw[1])  # a retransmission, while deciding or after: never a second decision
    replies = sock.receive_all(4.0)
    sock.close()
    by_id = {}
    for data in replies:
        by_id.setdefault(data[1], []).append(data)
    assert sorted(by_id) == sorted(pkt.id for pkt in packets)
    codes_seen = {}
    for pkt in packets:
        answers = {bytes(a) for a in by_id[pkt.id]}
        assert len(answers) == 1  # a retransmission gets the same reply, if any
        codes_seen[pkt.id] = decode_reply(pkt, answers.pop()).code
    accepted = [codes_seen[pkt.id] == rp.AccessAccept for pkt in packets]
    assert accepted[1:-1] == [True] * (len(names) - 1)
    assert sorted(accepted[::len(packets) - 1]) == [False, True]  # the doubled code: once
    rows = audit_rows(app, radius_auth.ACTION)
    assert len(rows) == len(packets)
    assert sum(r.result == "accept" for r in rows) == len(names)


def test_prepared_statements_match_sqlalchemy(app, clock):
    """The hot path's Prepared statements bind and read values as SQLAlchemy itself does."""
    from datetime import UTC, datetime

    from sqlalchemy import bindparam, select, update

    from app.db import Prepared
    from app.models import Device

    make_user(app)
    device_id, _ = add_totp_device(app)
    table = Device.__table__
    at = datetime(2030, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
    write = Prepared(update(table).where(table.c.id == bindparam("id"))
                     .values(last_used_at=bindparam("at"), last_step=bindparam("step")))
    read = Prepared(select(table.c.last_used_at, table.c.last_step, table.c.active,
                           table.c.secret_enc).where(table.c.id == bindparam("id")))
    with committed(app) as c:
        assert write.execute(c.db.connection(), {"id": device_id, "at": at,
                                                 "step": 2**40}).rowcount == 1
        assert write.execute(c.db.connection(), {"id": -1, "at": at, "step": 1}).rowcount == 0
    with committed(app) as c:
        [row] = read.execute(c.db.connection(), {"id": device_id}).rows
        expected = c.db.execute(select(table.c.last_used_at, table.c.last_step,
                                       table.c.active, table.c.secret_enc)
                                .where(table.c.id == device_id)).one()
    assert row == tuple(expected)
    assert row[:3] == (at, 2**40, True) and isinstance(row[3], bytes)


# --- several processes on one port (SO_REUSEPORT) -------------------------------------------

@pytest.fixture
def live_radius(app, runner, tmp_path, database_url, settings_overrides):
    """Starts `um2fa radius` with the given options (the clients of tests/radius/conftest)."""
    for name, _source, network, options in CLIENTS:
        result = runner.invoke(args=["radius-clients", "add", name, "--address", network,
                                     "--secret", SECRETS[name], *options])
        assert result.exit_code == 0, result.output
    env = make_env(tmp_path / "instance", database_url,
                   **{k: str(v) for k, v in settings_overrides.items()})
    servers = []

    def start(*options: str) -> LiveRadius:
        servers.append(LiveRadius(instance_dir=tmp_path / "instance", env=env).start(*options))
        return servers[-1]

    yield start
    for server in servers:
        server.stop()


@pytest.fixture
def radius_processes(live_radius):
    return live_radius("--processes", "2")


@pytest.mark.real_argon2  # the checks must take argon2's real time for a queue to form
def test_password_checks_beyond_two_per_thread_are_dropped(app, live_radius):
    """argon2 costs a third of a second: a longer queue would be answered after the NAS gave
    up, so the server drops what is beyond 2 checks per worker thread (the NAS retransmits)."""
    server = live_radius("--threads", "1")
    make_user(app)
    key = SECRETS["local"]
    packets = [request_packet("alice", f"{PASSWORD},123456", key) for _ in range(5)]
    sock = RawSocket(server.port)
    for ident, pkt in enumerate(packets):
        pkt.id = ident
        sock.send(pkt.RequestPacket())
    replies = sock.receive_all(4.0)
    sock.close()
    assert len(replies) == 2
    server.stop()
    assert "dropped: overloaded=3" in server.log()


def _children(pid: int) -> list[int]:
    return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]


def test_two_processes_share_the_port_the_database_and_the_replay_rule(app, database_url,
                                                                     radius_processes):
    server = radius_processes
    deadline = time.monotonic() + 10
    while "2 RADIUS processes share UDP port" not in server.log():
        assert time.monotonic() < deadline, server.log()
        time.sleep(0.05)
    children = _children(server.process.pid)
    assert len(children) == 2
    make_user(app)
    _, secret = add_totp_device(app)
    key, src = SECRETS["second"], SOURCE["second"]
    code = totp_code(secret, time.time())
    # one code from 16 sockets at once: they hash to both processes; one accept in all
    sockets = [RawSocket(server.port, src) for _ in range(16)]
    packets = [request_packet("alice", code, key) for _ in sockets]
    for sock, pkt in zip(sockets, packets, strict=True):
        sock.send(pkt.RequestPacket())
    answers = [decode_reply(pkt, sock.receive(4.0)).code
               for sock, pkt in zip(sockets, packets, strict=True)]
    assert sorted(answers) == [rp.AccessAccept] + [rp.AccessReject] * 15
    # a retransmission reaches the process that decided the first copy: answered from its
    # cache, the same bytes, no second decision
    make_user(app, "bob")
    _, bob = add_totp_device(app, "bob")
    bob_code = totp_code(bob, time.time())
    pkt = request_packet("bob", bob_code, key)
    raw = pkt.RequestPacket()
    sockets[0].send(raw)
    first = sockets[0].receive(4.0)
    for _ in range(3):
        sockets[0].send(raw)
        assert sockets[0].receive(4.0) == first
    assert decode_reply(pkt, first).code == rp.AccessAccept
    for sock in sockets:
        sock.close()
    rows = audit_rows(app, radius_auth.ACTION)
    assert [r.result for r in rows].count("accept") == 2 and len(rows) == 17
    if database_url.startswith("sqlite"):  # the processes took turns at SQLite's writer lock
        assert Path(make_url(database_url).database + ".radius-turns").exists()
    server.stop()
    assert server.process.returncode == 0
    # both processes decided some of the 16 (all 16 hashing to one: a 1 in 32,768 chance)
    counters = re.findall(r"RADIUS counters: .*\breceived=(\d+)", server.log())
    assert len(counters) == 2 and all(int(n) > 0 for n in counters), server.log()
    for pid in children:
        assert not Path(f"/proc/{pid}").exists() or "Z" in Path(
            f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
