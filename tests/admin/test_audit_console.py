"""The console's audit search, CSV export and dashboard (issue 15)."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest

from app.core import admins
from app.models import AuditEvent
from tests.conftest import audit_rows, committed
from tests.helpers.console import signed_in_console


@pytest.fixture
def settings_overrides():
    return {"campus_networks": "127.0.0.0/8"}


def add_events(app, count: int, **fields) -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    with committed(app) as c:
        for i in range(count):
            values = {"username": "alice", "door": "radius", "action": "radius.access",
                      "result": "reject", "client_addr": "10.1.2.3", **fields}
            c.db.add(AuditEvent(at=start + timedelta(minutes=i), **values))


def test_search_filters_and_pages_newest_first(app, clock):
    client = signed_in_console(app, clock, admins.ADMIN)
    add_events(app, 5)
    add_events(app, 2, username="bob", door="portal", action="sign_in", result="ok")
    page = client.get("/admin/audit?username=alice&door=radius&size=2")
    text = page.get_data(as_text=True)
    assert page.status_code == 200 and 'id="audit-results"' in text
    assert text.count("radius.access") == 2 and "bob" not in text.split("audit-results")[1]
    # shown in Macau time (UTC+8), the zone named once
    assert "2026-12-01 16:04:00" in text and "2026-12-01 16:03:00" in text
    assert "Macao time (GMT+08:00)" in text and "UTC)" not in text
    older = text.split('<a href="')[-1] if 'rel="next"' in text else ""
    assert "after=" in older
    link = older.split('"')[0].replace("&amp;", "&")
    second = client.get(link).get_data(as_text=True)
    assert "2026-12-01 16:02:00" in second and "2026-12-01 16:04:00" not in second
    assert "Newest" in second


def test_a_bad_filter_is_a_clear_error(app, clock):
    client = signed_in_console(app, clock, admins.ADMIN)
    page = client.get("/admin/audit?since=last+tuesday")
    assert page.status_code == 400
    assert "is not a date" in page.get_data(as_text=True)
    assert client.get("/admin/audit?after=nonsense").status_code == 400
    assert client.get("/admin/audit?size=%C2%B2").status_code == 400
    assert client.get("/admin/audit?username=%00").status_code == 400
    assert client.get("/admin/audit.csv?until=2026-99-01").status_code == 400


@pytest.mark.parametrize("path", [
    "/admin/audit?until=9999-12-31", "/admin/audit.csv?until=9999-12-31",
    "/admin/audit?since=0001-01-01T00:00%2B01:00", "/admin/audit?after=1-9999999999",
])
def test_times_and_cursors_out_of_range_are_a_clear_error(app, clock, path):
    client = signed_in_console(app, clock, admins.ADMIN)
    page = client.get(path)
    assert page.status_code == 400
    text = page.get_data(as_text=True)
    assert "out of range" in text or "cursor is not valid" in text


def test_csv_has_every_match_and_no_formula_cells(app, clock):
    client = signed_in_console(app, clock, admins.ADMIN)
    add_events(app, 3)
    add_events(app, 1, username="bob", detail="=HYPERLINK(\"http://evil\")", device="+1 phone",
               actor="@carol")
    response = client.get("/admin/audit.csv?since=2026-12-01&until=2026-12-01")
    assert response.status_code == 200 and response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"].startswith('attachment; filename="audit-')
    rows = list(csv.reader(io.StringIO(response.get_data(as_text=True))))
    assert rows[0][:3] == ["at", "username", "door"] and len(rows) == 5
    bob = next(r for r in rows if r[1] == "bob")
    assert bob[6] == "'+1 phone" and bob[7] == "'@carol"
    assert bob[8] == "'=HYPERLINK(\"http://evil\")"
    assert rows[1][0].startswith("2026-12-01T08:02:00")  # newest first, in UTC
    export = audit_rows(app, "audit.export")[-1]
    assert export.actor == "boss" and export.door == "admin"
    # the console's dates are Macau days: 1 December starts at 16:00 UTC the day before
    assert "since=2026-11-30T16:00:00+00:00" in export.detail
    assert "until=2026-12-01T16:00:00+00:00" in export.detail


def test_a_typed_time_without_an_offset_is_macau_time(app, clock):
    client = signed_in_console(app, clock, admins.ADMIN)
    add_events(app, 5)  # 08:00 to 08:04 UTC: 16:00 to 16:04 in Macau
    text = client.get("/admin/audit?since=2026-12-01T16:03").get_data(as_text=True)
    assert "2026-12-01 16:03:00" in text and "2026-12-01 16:04:00" in text
    assert "2026-12-01 16:02:00" not in text
    # an offset given is taken as it is
    text = client.get("/admin/audit?since=2026-12-01T08:02%2B00:00").get_data(as_text=True)
    assert "2026-12-01 16:02:00" in text and "2026-12-01 16:01:00" not in text


def test_the_dashboard_draws_its_chart_and_figures(app, clock):
    client = signed_in_console(app, clock, admins.ADMIN)
    page = client.get("/admin/dashboard")
    text = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<svg id="sign-ins-chart"' in text and 'role="img"' in text
    assert '<title id="sign-ins-chart-title">Sign-ins per hour' in text
    # boss's own sign-in this hour: the password and the passcode (portal door)
    assert 'id="sign-ins-table"' in text and "<th>admin ok</th>" in text
    assert "style=" not in text and "<script>" not in text
    assert "Enrolment coverage" in text and "1 of 1 (100.0%)" in text
    assert "Active totp devices</th><td>1</td>" in text


def test_the_help_desk_sees_neither_page_nor_their_menu_entries(app, clock):
    client = signed_in_console(app, clock, admins.HELPDESK)
    assert client.get("/admin/audit").status_code == 403
    assert client.get("/admin/audit.csv").status_code == 403
    assert client.get("/admin/dashboard").status_code == 403
    home = client.get("/admin/").get_data(as_text=True)
    assert "Audit search" not in home and "Dashboard" not in home


def test_the_chart_escapes_its_text_and_draws_an_empty_day():
    from app.web.admin import charts

    svg = str(charts.stacked_bars("c", "A <title>", ["00:00", "01:00"],
                                  [("<b>door</b> ok", [1, 2]), ("x fail", [0, 1])]))
    assert "<b>" not in svg and "&lt;b&gt;door&lt;/b&gt; ok" in svg and "A &lt;title&gt;" in svg
    assert svg.count("<rect") == 3 + 2  # three bar parts (no part for a zero), two legend keys
    assert 'role="img"' in svg and 'aria-labelledby="c-title c-desc"' in svg
    empty = str(charts.stacked_bars("e", "Nothing", ["00:00"] * 24, []))
    assert "<rect" not in empty and "0 in all" in empty
