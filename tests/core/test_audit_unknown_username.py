"""Security issue point 16: a username that matches no user may be a password typed into the
wrong field, so neither the audit table nor the log carries it; a keyed hash stands in for it
(the same for the same text, so repeated attempts still correlate). Known users keep theirs."""

from __future__ import annotations

import dataclasses
import logging
import re

from app.core import audit, identity, radius_auth, recovery_flow, signin
from app.core.context import Origin
from app.core.radius_auth import AccessRequest
from app.extensions import core
from app.models import AuditEvent
from tests.conftest import PASSWORD, audit_rows, committed, make_user, sign_in
from tests.helpers.radius import client as client_config
from tests.helpers.radius import decide

SECRET = "MySecretPassw0rd!"
HASHED = re.compile(r"^unknown:[0-9a-f]{8}$")


def leaked(app, caplog) -> list[str]:
    """Where the typed secret shows, in any case: audit rows (every column) and log lines."""
    found = []
    for row in audit_rows(app):
        for column in AuditEvent.__table__.columns:
            value = getattr(row, column.key)
            if isinstance(value, str) and SECRET.lower() in value.lower():
                found.append(f"audit {row.action} {column.key}: {value}")
    found += [f"log: {r.getMessage()}" for r in caplog.records
              if SECRET.lower() in r.getMessage().lower()]
    return found


def test_the_web_portal_does_not_record_a_typed_secret_as_username(app, client, caplog):
    make_user(app)
    with caplog.at_level(logging.INFO, logger="um2fa.audit"):
        sign_in(client, SECRET, PASSWORD)
        sign_in(client, SECRET, "whatever")
        sign_in(client, "alice", PASSWORD)
    assert leaked(app, caplog) == []
    names = [r.username for r in audit_rows(app, "sign_in")]
    assert HASHED.match(names[0]) and names[0] == names[1]  # correlated, not readable
    assert names[2] == "alice"  # a known user keeps their name


def test_core_sign_in_and_radius_record_the_hash(app, caplog):
    make_user(app)
    with caplog.at_level(logging.INFO, logger="um2fa.audit"):
        with committed(app) as c:
            signin.sign_in_first(c, Origin(door="web", client_addr="192.0.2.1"), SECRET,
                                 [PASSWORD])
        decide(app, f"{PASSWORD},123456", username=SECRET)
        decide(app, f"{PASSWORD},123456", username="alice")
    assert leaked(app, caplog) == []
    assert [r.username for r in audit_rows(app, radius_auth.ACTION)][-1] == "alice"
    hashed = {r.username for r in audit_rows(app) if r.username != "alice"}
    assert len(hashed) == 1 and HASHED.match(hashed.pop())


def test_the_recovery_portal_does_not_record_an_unknown_id(app, clock, caplog):
    make_user(app)
    typed = identity.normalise("student", SECRET, "2001-02-03", "123a")
    origin = Origin(door="recovery", client_addr="192.0.2.7")
    with caplog.at_level(logging.INFO, logger="um2fa.audit"):
        for _ in range(app.config["UM2FA"].recovery_max_failures + 1):  # up to the lock
            with committed(app) as c:
                token = recovery_flow.start(c, origin, typed)
                if token and recovery_flow.choose(c, token):
                    recovery_flow.finish(c, origin, token, PASSWORD)
    assert leaked(app, caplog) == []
    actions = {r.action for r in audit_rows(app)}
    assert {"recovery.identify", "recovery.verify", "recovery.lock"} <= actions
    with committed(app) as c:  # the lock still works on the typed ID
        assert recovery_flow.start(c, origin, typed) is None


def test_radius_without_the_database_logs_the_hash(app, caplog):
    services = core.services(app)
    req = AccessRequest(client=client_config(), source="127.0.0.1", username=SECRET,
                        password=f"{PASSWORD},123456", nas_ip="10.1.2.3")
    with caplog.at_level(logging.INFO, logger="um2fa.audit"):
        decision = radius_auth.database_unavailable(dataclasses.replace(services), req)
    assert decision.outcome is radius_auth.Outcome.REJECT
    assert leaked(app, caplog) == []
    assert any('"user": "unknown:' in r.getMessage() for r in caplog.records)
    assert audit.log  # the audit's log lines are the ones captured
