"""The admin API's audit search and dashboard (issue 15)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from app.core import admins
from app.models import AuditEvent
from tests.conftest import committed
from tests.helpers.console import api_token


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


def add_events(app, count: int, **fields) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with committed(app) as c:
        for i in range(count):
            values = {"username": "alice", "door": "sso", "action": "sign_in", "result": "ok",
                      **fields}
            c.db.add(AuditEvent(at=start + timedelta(minutes=i), **values))


def get(client, url: str, token: str):
    return client.get(url, headers={"Authorization": f"Bearer {token}"})


def test_search_pages_through_every_match_with_the_cursor(app, client):
    token = api_token(app, "siem", admins.ADMIN)
    add_events(app, 5)
    add_events(app, 2, username="bob", result="fail")
    seen, url = [], "/api/v1/audit?username=alice&since=2026-12-01&limit=2"
    for _ in range(5):
        answer = get(client, url, token)
        assert answer.status_code == 200, answer.get_json()
        body = answer.get_json()
        seen += body["events"]
        if body["next_cursor"] is None:
            break
        url = f"/api/v1/audit?username=alice&since=2026-12-01&limit=2&cursor={body['next_cursor']}"
    assert [e["at"][11:16] for e in seen] == ["08:04", "08:03", "08:02", "08:01", "08:00"]
    assert {e["username"] for e in seen} == {"alice"}
    assert set(seen[0]) == {"id", "at", "username", "door", "action", "result", "address",
                            "device", "actor", "detail"}
    failed = get(client, "/api/v1/audit?result=fail", token).get_json()["events"]
    assert [e["username"] for e in failed] == ["bob", "bob"]


def test_no_token_is_401_and_a_help_desk_token_is_403(app, client):
    assert client.get("/api/v1/audit").status_code == 401
    helpdesk = api_token(app, "hd", admins.HELPDESK)
    for url in ("/api/v1/audit", "/api/v1/dashboard"):
        answer = get(client, url, helpdesk)
        assert answer.status_code == 403 and "error" in answer.get_json()


@pytest.mark.parametrize("query, message", [
    ("since=2026-02-30", "is not a date"),
    ("until=soon", "is not a date"),
    ("since=2026-12-02&until=2026-12-01", "until must be later than since"),
    ("limit=0", "limit must be a whole number from 1 to 500"),
    ("limit=9999", "limit must be"),
    ("limit=%C2%B2", "limit must be"),
    ("username=alice%00", "NUL"),
    ("result=%00", "NUL"),
    ("cursor=abc", "cursor is not valid"),
    ("cursor=1-9999999999", "cursor is not valid"),
    ("until=9999-12-31", "out of range"),
    ("since=0001-01-01T00:00%2B01:00", "out of range"),
])
def test_a_bad_filter_is_400_with_a_message(app, client, query, message):
    token = api_token(app, "siem", admins.ADMIN)
    answer = get(client, f"/api/v1/audit?{query}", token)
    assert answer.status_code == 400 and message in answer.get_json()["error"]


def test_the_dashboard_as_json(app, client, clock):
    token = api_token(app, "siem", admins.ADMIN)
    now = datetime.fromtimestamp(clock.now, UTC)
    with committed(app) as c:
        c.db.add(AuditEvent(at=now, username="alice", door="radius",
                            action="radius.access", result="accept"))
    body = get(client, "/api/v1/dashboard", token).get_json()
    sign_ins = body["sign_ins_per_hour"]
    assert len(sign_ins["hours"]) == 24 and sign_ins["totals"][-1] == 1
    assert sign_ins["series"] == [{"door": "radius", "result": "accept",
                                   "counts": [0] * 23 + [1]}]
    assert body["lockouts"] == {"locked": 0, "disabled": 0, "usernames": []}
    assert body["fraud_reports"] == {"last_24h": 0, "last_7d": 0}
    assert body["enrolment"] == {"users": 0, "enrolled": 0, "percent": 0.0}
    assert body["devices_by_kind"] == {}
