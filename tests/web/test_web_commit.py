"""The web door's commit at the end of each request (app/web/__init__.py `_commit`): when it
fails, the answer acknowledges nothing - the session cookie stays as the request brought it -
except a sign-out, which stands. The failures are real ones at COMMIT: a deferred foreign key
(IntegrityError, 500) and, on PostgreSQL, a deferred trigger raising admin_shutdown, which is
what a server going away looks like (OperationalError, 503)."""

from __future__ import annotations

import pytest
from flask import make_response, session
from sqlalchemy import text

from app.extensions import core

SCHEMA = [
    "CREATE TABLE parent (id integer PRIMARY KEY)",
    "CREATE TABLE child (p integer REFERENCES parent(id) DEFERRABLE INITIALLY DEFERRED)",
]
SHUTDOWN = [  # PostgreSQL: a COMMIT that fails as if the server were shutting down
    "CREATE TABLE doomed (n integer)",
    "CREATE FUNCTION shut() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'going away' USING ERRCODE = 'admin_shutdown'; END $$",
    "CREATE CONSTRAINT TRIGGER doomed_commit AFTER INSERT ON doomed "
    "DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION shut()",
]


@pytest.fixture
def web(app):
    postgres = app.config["UM2FA"].database_url.startswith("postgresql")
    with core.database(app).engine.begin() as conn:
        for statement in SCHEMA + (SHUTDOWN if postgres else []):
            conn.execute(text(statement))
    app.config["PROPAGATE_EXCEPTIONS"] = False  # the 500 page, as in production

    def failing_commit(failure: str) -> None:
        if postgres and failure == "unavailable":
            core.context().db.execute(text("INSERT INTO doomed VALUES (1)"))
        else:
            core.context().db.execute(text("INSERT INTO child VALUES (99)"))

    @app.get("/t/mark")
    def mark():
        session["passed"] = True  # as a second factor would
        failing_commit(session["fail"])
        return "acknowledged"

    @app.get("/t/leave")
    def leave():
        failure = session["fail"]
        session.clear()  # as signing out does, with its "remember me" cookie
        failing_commit(failure)
        response = make_response("signed out")
        response.delete_cookie("um2fa_remember")
        return response

    client = app.test_client()
    with client.session_transaction() as s:
        s["uid"] = 7
    return client, postgres


def brought(client) -> dict:
    """The session the client holds, but the CSRF token an error page may add."""
    with client.session_transaction() as s:
        return {key: value for key, value in s.items() if key != "csrf_token"}


@pytest.mark.parametrize("failure", ["integrity", "unavailable"])
def test_a_failed_commit_acknowledges_nothing_in_the_cookie(web, failure):
    client, postgres = web
    if failure == "unavailable" and not postgres:
        pytest.skip("an OperationalError at COMMIT is made with a PostgreSQL trigger")
    with client.session_transaction() as s:
        s["fail"] = failure
    before = brought(client)
    answer = client.get("/t/mark")
    assert answer.status_code == (503 if failure == "unavailable" else 500)
    assert "acknowledged" not in answer.get_data(as_text=True)
    assert brought(client) == before  # not "passed"


@pytest.mark.parametrize("failure", ["integrity", "unavailable"])
def test_a_sign_out_stands_when_its_commit_fails(web, failure):
    client, postgres = web
    if failure == "unavailable" and not postgres:
        pytest.skip("an OperationalError at COMMIT is made with a PostgreSQL trigger")
    with client.session_transaction() as s:
        s["fail"] = failure
    client.set_cookie("um2fa_remember", "a-remembered-device")
    answer = client.get("/t/leave")
    assert answer.status_code == (503 if failure == "unavailable" else 500)
    assert brought(client) == {}
    assert client.get_cookie("um2fa_remember") is None  # deleted all the same
