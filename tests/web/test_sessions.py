"""Browser sessions kept on the server (security issue, points 7 and 17): what a copied cookie
could do before, and cannot now."""

from __future__ import annotations

import base64
import os
import re
import uuid

import pytest
from sqlalchemy import func, select

from app.models import WebSession
from tests.conftest import (
    add_totp_device,
    audit_rows,
    committed,
    csrf_token,
    make_user,
    post,
    sign_in,
    totp_code,
)
from tests.helpers.portal import text
from tests.push.test_push_web import activation_link, to_app_step

COOKIE = "um2fa_session"
HX = {"HX-Request": "true"}


def cookie(client) -> str:
    return client.get_cookie(COOKIE).value


def thief_with(app, value: str):
    thief = app.test_client()
    thief.set_cookie(COOKIE, value)
    return thief


def fully_signed_in(app, client, clock, username: str = "alice") -> int:
    """Password and passcode done in the portal: "My Settings & Devices" opens."""
    device_id, secret = add_totp_device(app, username)
    assert sign_in(client, username).status_code == 302
    response = post(client, "/prompt", {"next": "settings", "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)},
                    token_from="/prompt?next=settings")
    assert response.headers["Location"] == "/settings"
    assert client.get("/settings").status_code == 200
    return device_id


def reaches_settings(client) -> bool:
    return client.get("/settings").status_code == 200


def signed_in(client) -> bool:
    return "Sign out" in text(client.get("/"))


def test_a_copied_cookie_is_refused_after_sign_out(app, client, clock):
    make_user(app)
    fully_signed_in(app, client, clock)
    copied = cookie(client)
    assert reaches_settings(thief_with(app, copied))  # a copy works while the session lives
    assert post(client, "/sign-out", token_from="/settings").status_code == 302
    thief = thief_with(app, copied)
    assert not reaches_settings(thief) and not signed_in(thief)


def test_sign_out_ends_the_users_sessions_in_every_browser(app, client, clock):
    make_user(app)
    fully_signed_in(app, client, clock)
    laptop = app.test_client()
    assert sign_in(laptop).status_code == 302 and signed_in(laptop)
    post(client, "/sign-out", token_from="/settings")
    assert not signed_in(laptop)


def test_the_session_id_changes_after_the_password_and_after_the_second_factor(app, client,
                                                                              clock):
    make_user(app)
    device_id, secret = add_totp_device(app)
    csrf_token(client, "/")  # the sign-in page: an anonymous session (its CSRF token)
    anonymous = cookie(client)
    assert sign_in(client).status_code == 302
    after_password = cookie(client)
    assert after_password != anonymous
    assert not signed_in(thief_with(app, anonymous))  # fixation: the old id signs in nobody
    post(client, "/prompt", {"next": "settings", "device": str(device_id),
                             "passcode": totp_code(secret, clock.now)},
         token_from="/prompt?next=settings")
    after_factor = cookie(client)
    assert after_factor not in (anonymous, after_password)
    # a copy taken after the password alone is dead: not even signed in with the password
    assert not signed_in(thief_with(app, after_password))
    assert reaches_settings(client)


def test_a_get_does_not_reissue_the_cookie(app, client, clock):
    make_user(app)
    fully_signed_in(app, client, clock)
    for url in ("/", "/settings"):
        response = client.get(url)
        assert response.status_code == 200
        assert COOKIE not in response.headers.get("Set-Cookie", "")


@pytest.mark.parametrize("settings_overrides", [{"session_lifetime_seconds": 3600}])
def test_a_session_ends_its_lifetime_after_sign_in_however_busy(app, client, clock):
    make_user(app)
    sign_in(client)
    for _ in range(5):  # a request every 11 minutes: 55 minutes in all
        clock.advance(660)
        assert signed_in(client)
    clock.advance(360)  # 61 minutes after sign-in
    assert not signed_in(client)
    # the cookie the browser holds expires with the session, set once at sign-in
    response = sign_in(client)
    cookie_header = next(h for h in response.headers.getlist("Set-Cookie") if COOKIE in h)
    assert "Expires=" in cookie_header and "HttpOnly" in cookie_header


def test_the_cookie_holds_only_a_random_id_and_the_record_is_encrypted(app, client, clock):
    make_user(app)
    fully_signed_in(app, client, clock)
    value = cookie(client)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", value)  # 32 random bytes, nothing else
    with committed(app) as ctx:
        rows = ctx.db.scalars(select(WebSession)).all()
    assert rows and all(b"mfa_at" not in row.data and b"uid" not in row.data for row in rows)
    assert all(value.encode() not in row.key for row in rows)  # found by a keyed hash


def test_a_forged_step_up_cannot_be_written_into_the_cookie(app, client, clock):
    """Before: the step-up time lived in the signed cookie, so whoever held the secret key
    (or any cookie-signing slip) could write one. Now a cookie is only an id."""
    from flask.sessions import SecureCookieSessionInterface

    make_user(app)
    sign_in(client)
    serializer = SecureCookieSessionInterface().get_signing_serializer(app)
    forged = serializer.dumps({"uid": 1, "via": "portal", "mfa_at": int(clock.now) + 10**6})
    assert not reaches_settings(thief_with(app, forged))


def test_ending_a_users_sessions_keeps_the_one_that_asks(app, client, clock):
    """Removing a device signs out every other browser of the user (a thief's copy too)."""
    make_user(app)
    first = fully_signed_in(app, client, clock)
    other_device, _ = add_totp_device(app, name="Spare")
    elsewhere = app.test_client()
    assert sign_in(elsewhere).status_code == 302 and signed_in(elsewhere)
    token = csrf_token(client, "/settings")
    removed = client.post(f"/settings/devices/{other_device}/remove",
                          headers={**HX, "X-CSRFToken": token})
    assert removed.status_code == 200, text(removed)
    assert reaches_settings(client)  # the browser that removed it stays signed in
    assert not signed_in(elsewhere)
    assert first


def test_unlock_and_a_recovery_end_the_users_other_sessions(app, client, clock, runner):
    from tests.conftest import issue_recovery

    make_user(app)
    elsewhere = app.test_client()
    sign_in(elsewhere)
    sign_in(client)
    assert signed_in(client) and signed_in(elsewhere)
    code = issue_recovery(app)
    assert signed_in(elsewhere)  # issuing a passcode alone signs nobody out (no denial)
    assert post(client, "/prompt", {"next": "add", "passcode": code},
                token_from="/prompt?next=add").headers["Location"] == "/devices/add/type"
    assert signed_in(client) and not signed_in(elsewhere)  # used: the recovering one stays
    result = runner.invoke(args=["users", "unlock", "alice"])
    assert result.exit_code == 0, result.output
    assert not signed_in(client)


def test_the_activation_code_stays_on_the_server(app, client, clock):
    make_user(app)
    to_app_step(client, app)
    post(client, "/devices/add/app", {"app": "push"}, token_from="/devices/add/app")
    link = activation_link(text(client.get("/devices/add/activate"))).replace("&amp;", "&")
    code = link.rsplit("=", 1)[1]
    value = cookie(client)
    decoded = b"".join(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))
                       for part in value.split(".") if part)
    assert code not in value and code.encode() not in decoded
    with committed(app) as ctx:
        assert all(code.encode() not in row.data for row in ctx.db.scalars(select(WebSession)))


# --- the same with sessions in Redis (UM2FA_SESSION_STORE=redis; runs where Redis is set) -----

REDIS_URL = os.environ.get("UM2FA_TEST_REDIS_URL", "")
needs_redis = pytest.mark.skipif(not REDIS_URL, reason="needs UM2FA_TEST_REDIS_URL")


def in_redis() -> dict:
    return {"session_store": "redis", "redis_url": REDIS_URL,
            "ratelimit_key_prefix": f"t{uuid.uuid4().hex[:8]}:"}


@needs_redis
@pytest.mark.parametrize("settings_overrides", [in_redis()])
def test_sessions_in_redis_end_at_sign_out_and_device_removal(app, client, clock):
    import redis

    make_user(app)
    fully_signed_in(app, client, clock)
    other_device, _ = add_totp_device(app, name="Spare")
    copied = cookie(client)
    elsewhere = app.test_client()
    sign_in(elsewhere)
    assert signed_in(elsewhere) and reaches_settings(thief_with(app, copied))
    prefix = app.config["UM2FA"].ratelimit_key_prefix
    store = redis.Redis.from_url(REDIS_URL)
    keys = store.keys(prefix + "um2fa:session:*")
    assert keys and all(b"mfa_at" not in (store.get(k) or b"") for k in keys
                        if store.type(k) == b"string")
    assert copied.encode() not in b"".join(keys)
    token = csrf_token(client, "/settings")
    client.post(f"/settings/devices/{other_device}/remove", headers={**HX, "X-CSRFToken": token})
    assert not signed_in(elsewhere) and reaches_settings(client)
    post(client, "/sign-out", token_from="/settings")
    assert not signed_in(thief_with(app, copied))


@needs_redis
@pytest.mark.parametrize("settings_overrides", [{**in_redis(), "session_lifetime_seconds": 600}])
def test_sessions_in_redis_keep_their_fixed_lifetime(app, client, clock):
    make_user(app)
    sign_in(client)
    clock.advance(590)
    assert signed_in(client)
    clock.advance(20)
    assert not signed_in(client)


def test_a_signed_in_request_reads_its_user_with_its_session(app, client, clock, monkeypatch):
    """The prompt's passcode POST reads the session and the user with their devices in one
    SELECT (the database store); then claims the step, writes the audit and renews the id."""
    from app import db

    make_user(app)
    device_id, secret = add_totp_device(app)
    assert sign_in(client).status_code == 302
    token = csrf_token(client, "/prompt")
    seen: list[str] = []
    execute = db.Prepared.execute

    def recording(prepared, conn, params):
        seen.append(str(prepared.statement).split(None, 1)[0])
        return execute(prepared, conn, params)

    monkeypatch.setattr(db.Prepared, "execute", recording)
    response = client.post("/prompt", data={"csrf_token": token, "device": str(device_id),
                                            "passcode": totp_code(secret, clock.now)})
    assert response.headers["Location"] == "/prompt/done"
    assert seen.count("SELECT") == 1, seen
    monkeypatch.undo()
    assert client.get("/prompt/done").status_code == 200


def test_the_user_read_with_the_session_is_read_afresh_each_request(app, client, clock):
    """Locked meanwhile (by another node's failures: the sessions stay): the next request,
    which reads the user with its session, is not signed in."""
    from datetime import timedelta

    from app.models import User

    make_user(app)
    fully_signed_in(app, client, clock)
    with committed(app) as c:
        user = c.db.scalar(select(User).where(User.username == "alice"))
        user.locked_at, user.locked_until = c.now(), c.now() + timedelta(minutes=15)
    assert not reaches_settings(client)


def _ended_while_the_passcode_was_checked(app, client, clock, monkeypatch) -> tuple:
    """alice types her passcode; while it is being checked, her sessions are ended elsewhere
    ("This wasn't me", an administrator's sign-out: another transaction, committed)."""
    from app.core import browser_sessions, passcodes
    from app.extensions import core

    make_user(app)
    device_id, secret = add_totp_device(app)
    assert sign_in(client).status_code == 302
    token = csrf_token(client, "/prompt")
    verify = passcodes.verify_passcode

    def and_meanwhile(ctx, origin, user, *args, **kwargs):
        outcome = verify(ctx, origin, user, *args, **kwargs)
        with core.own_context() as elsewhere:  # its own transaction, committed first
            browser_sessions.end_for_user(elsewhere, user.id)
        return outcome

    monkeypatch.setattr(passcodes, "verify_passcode", and_meanwhile)
    return client.post("/prompt", data={"csrf_token": token, "device": str(device_id),
                                        "passcode": totp_code(secret, clock.now)})


def test_a_session_ended_while_its_passcode_is_checked_stays_ended(app, client, clock,
                                                                   monkeypatch, database_url):
    """The passcode POST renews the session's id: it must not bring back a session that was
    ended meanwhile (it used to save it anew when its row was gone)."""
    if database_url.startswith("sqlite"):
        pytest.skip("SQLite has one writer at a time: the race is PostgreSQL's")
    _ended_while_the_passcode_was_checked(app, client, clock, monkeypatch)
    monkeypatch.undo()
    assert not signed_in(client) and not reaches_settings(client)
    with committed(app) as c:
        assert c.db.scalar(select(func.count()).select_from(WebSession)
                           .where(WebSession.user_id.is_not(None))) == 0  # none of alice's


@needs_redis
@pytest.mark.parametrize("settings_overrides", [in_redis()])
def test_a_session_in_redis_ended_while_its_passcode_is_checked_stays_ended(app, client, clock,
                                                                            monkeypatch):
    _ended_while_the_passcode_was_checked(app, client, clock, monkeypatch)
    monkeypatch.undo()
    assert not signed_in(client) and not reaches_settings(client)


def test_the_passcode_posts_last_writes_go_with_its_commit(app, client, clock, monkeypatch,
                                                           database_url):
    """PostgreSQL: the session's renewal, the audit record and the COMMIT go to the server
    together, in one round trip (app/db.py: sent_with_the_commit, psycopg's pipeline mode)."""
    if database_url.startswith("sqlite"):
        pytest.skip("psycopg's pipeline mode: PostgreSQL's")
    import psycopg
    from psycopg import pq

    make_user(app)
    device_id, secret = add_totp_device(app)
    assert sign_in(client).status_code == 302
    token = csrf_token(client, "/prompt")
    pipelined: list[tuple[str, bool]] = []
    execute, commit = psycopg.Cursor.execute, psycopg.Connection.commit

    def in_pipeline(connection) -> bool:
        return connection.pgconn.pipeline_status != pq.PipelineStatus.OFF

    def executing(cursor, query, *args, **kwargs):
        pipelined.append((" ".join(str(query).split()[:3]), in_pipeline(cursor.connection)))
        return execute(cursor, query, *args, **kwargs)

    def committing(connection):
        pipelined.append(("COMMIT", in_pipeline(connection)))
        return commit(connection)

    monkeypatch.setattr(psycopg.Cursor, "execute", executing)
    monkeypatch.setattr(psycopg.Connection, "commit", committing)
    response = client.post("/prompt", data={"csrf_token": token, "device": str(device_id),
                                            "passcode": totp_code(secret, clock.now)})
    monkeypatch.undo()
    assert response.headers["Location"] == "/prompt/done"
    together = [what for what, piped in pipelined if piped]
    assert together[:1] == ["UPDATE web_sessions SET"], pipelined
    assert together[1:] == ["INSERT INTO audit_events", "COMMIT"], pipelined
    assert client.get("/prompt/done").status_code == 200
    assert [row.action for row in audit_rows(app)][-1] == "factor"
