"""The Alembic migrations build exactly the schema the models describe, and go down again."""

from __future__ import annotations

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from app import migrate
from app.db import normalise_url
from app.models import Base


def test_migrations_match_the_models(database_url):
    migrate.upgrade(database_url)
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    finally:
        engine.dispose()
    assert diff == []
    assert migrate.current(database_url) == migrate.heads()


def test_one_linear_history_that_downgrades_and_upgrades(database_url):
    assert len(migrate.heads()) == 1
    migrate.upgrade(database_url)
    command.downgrade(migrate.alembic_config(database_url), "base")
    assert migrate.current(database_url) == set()
    migrate.upgrade(database_url)
    assert migrate.current(database_url) == migrate.heads()


def test_0008_marks_users_with_devices_as_enrolled_and_lets_old_lockouts_lift(database_url):
    """Users who have an active device were enrolled (NEW_USER=allow must not treat them as new
    once they remove it); a lockout from before lifts 15 minutes after it began."""
    from datetime import UTC, datetime, timedelta

    from sqlalchemy import text

    command.upgrade(migrate.alembic_config(database_url), "0006")
    engine = create_engine(normalise_url(database_url))
    added = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    locked = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)
    try:
        with engine.begin() as conn:
            for uid, name, locked_at in ((1, "withdevice", None), (2, "nodevice", locked),
                                         (3, "pending", None)):
                conn.execute(text(
                    "INSERT INTO users (id, username, display_name, email, role, disabled, "
                    "failed_factor_count, locked_at, created_at) VALUES (:id, :name, '', '', "
                    "'student', false, 0, :locked_at, :now)"),
                    {"id": uid, "name": name, "locked_at": locked_at, "now": added})
            for uid, active in ((1, True), (3, False)):
                conn.execute(text(
                    "INSERT INTO devices (user_id, name, kind, device_type, platform, "
                    "secret_enc, active, is_default, created_at) VALUES (:uid, 'Phone', "
                    "'totp', 'mobile', 'other', :secret, :active, :active, :at)"),
                    {"uid": uid, "secret": b"x", "active": active, "at": added})
        migrate.upgrade(database_url)
        with engine.connect() as conn:
            rows = {r.username: r for r in conn.execute(text(
                "SELECT username, enrolled_at, locked_until, lockout_level FROM users"))}
    finally:
        engine.dispose()

    def utc(value):
        value = datetime.fromisoformat(value) if isinstance(value, str) else value
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value

    assert utc(rows["withdevice"].enrolled_at) == added
    assert rows["nodevice"].enrolled_at is None and rows["pending"].enrolled_at is None
    assert utc(rows["nodevice"].locked_until) == locked + timedelta(minutes=15)
    assert rows["nodevice"].lockout_level == 1 and rows["withdevice"].locked_until is None


def test_0011_keeps_releasing_what_existing_sps_received(database_url):
    """SPs registered before the release policy keep the attributes they always had (uid, mail,
    displayName, eppn, affiliation) and the email NameID, until an operator says otherwise."""
    import json

    from sqlalchemy import text

    from app.core import attribute_release

    command.upgrade(migrate.alembic_config(database_url), "0010")
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO service_providers (entity_id, name, acs_urls, slo_url, certs, "
                "sign_requests, nameid_formats, metadata_xml, created_at) VALUES ('http://old', "
                "'Old', '[\"http://old/acs\"]', '', '[]', false, '[]', '', CURRENT_TIMESTAMP)"))
        migrate.upgrade(database_url)
        with engine.begin() as conn:
            row = conn.execute(text("SELECT release, allow_email_nameid, encrypt_assertions "
                                    "FROM service_providers")).one()
            # an SP registered afterwards (by SQL too) gets the model's default: no email NameID
            conn.execute(text(
                "INSERT INTO service_providers (entity_id, name, acs_urls, slo_url, certs, "
                "sign_requests, nameid_formats, metadata_xml, created_at) VALUES ('http://new', "
                "'New', '[\"http://new/acs\"]', '', '[]', false, '[]', '', CURRENT_TIMESTAMP)"))
            new = conn.execute(text("SELECT allow_email_nameid FROM service_providers "
                                    "WHERE entity_id = 'http://new'")).scalar_one()
    finally:
        engine.dispose()
    assert json.loads(row.release) == attribute_release.resolve(
        ["uid", "mail", "displayName", "eduPersonPrincipalName", "eduPersonAffiliation"])
    assert row.allow_email_nameid and row.encrypt_assertions
    assert not new


def test_0016_adds_auto_push_off_for_existing_users_and_drops_it_again(database_url):
    """ "Automatically send me a push" (issue 17, point 5): off for the users already there;
    undone, the column goes and the users stay."""
    from sqlalchemy import inspect, text

    command.upgrade(migrate.alembic_config(database_url), "0015")
    engine = create_engine(normalise_url(database_url))
    try:
        with engine.begin() as conn:
            conn.execute(text(
                "INSERT INTO users (id, username, display_name, email, given_name, surname, "
                "role, disabled, failed_factor_count, lockout_level, created_at) VALUES (1, "
                "'old', '', '', '', '', 'student', false, 0, 0, CURRENT_TIMESTAMP)"))
        migrate.upgrade(database_url)
        with engine.connect() as conn:
            assert conn.execute(text("SELECT auto_push FROM users")).scalar_one() in (False, 0)
        command.downgrade(migrate.alembic_config(database_url), "0015")
        with engine.connect() as conn:
            assert "auto_push" not in {c["name"] for c in inspect(conn).get_columns("users")}
            assert conn.execute(text("SELECT username FROM users")).scalar_one() == "old"
    finally:
        engine.dispose()
        migrate.upgrade(database_url)


def test_0017_keeps_clients_as_they_were_and_goes_down_without_long_state_names(database_url):
    """Existing RADIUS clients are not proxies after 0017 (also one added by SQL without the
    column); a challenge State bound to "proxy/nas policy" (over 64 characters) fits, and
    going down deletes only such States (they live five minutes)."""
    from sqlalchemy import text

    command.upgrade(migrate.alembic_config(database_url), "0015")
    engine = create_engine(normalise_url(database_url))
    client = ("INSERT INTO radius_clients (name, network, secret_enc, mode, delimiter, "
              "require_message_authenticator, fail_mode, push_timeout, created_at) VALUES "
              "(:name, :network, :secret, 'append', ',', true, 'secure', 60, CURRENT_TIMESTAMP)")
    state = ("INSERT INTO radius_challenges (state_hash, user_id, client_name, created_at, "
             "expires_at) VALUES (:hash, 1, :name, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    user = ("INSERT INTO users (id, username, display_name, email, role, disabled, "
            "failed_factor_count, created_at) VALUES (1, 'alice', '', '', 'student', false, 0, "
            "CURRENT_TIMESTAMP)")
    long_name = "p" * 64 + "/nas " + "n" * 64
    try:
        with engine.begin() as conn:
            conn.execute(text(client), {"name": "fw1", "network": "10.0.0.5/32",
                                        "secret": b"x"})
            conn.execute(text(user))
        command.upgrade(migrate.alembic_config(database_url), "0017")
        with engine.begin() as conn:
            conn.execute(text(client), {"name": "fw2", "network": "10.0.0.6/32",
                                        "secret": b"x"})
            proxies = dict(conn.execute(text("SELECT name, proxy FROM radius_clients")).all())
            conn.execute(text(state), {"hash": b"a" * 32, "name": long_name})
            conn.execute(text(state), {"hash": b"b" * 32, "name": "fw1"})
        command.downgrade(migrate.alembic_config(database_url), "0015")
        with engine.connect() as conn:
            left = conn.execute(text("SELECT client_name FROM radius_challenges")).scalars()
            left = list(left)
    finally:
        engine.dispose()
    assert proxies == {"fw1": False, "fw2": False}
    assert left == ["fw1"]
