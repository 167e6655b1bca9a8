"""The admin API's audit search and dashboard (docs/admin.md): the same core queries as the
console's pages (app/core/audit_search.py, app/core/dashboard.py), as JSON."""

from __future__ import annotations

from typing import Any

from flask import jsonify, request

from app.core import audit_search, dashboard
from app.core.audit_search import AuditSearchError
from app.extensions import core
from app.models import AuditEvent
from app.web.api import params, users_json
from app.web.api.base import ApiError, bp, documented, requires

# A record as the people endpoints show one (users_json.record), and whose it is.
EVENT = users_json.object_schema(**users_json.RECORD["properties"], username=users_json.STRING)
FILTERS = {
    "since": "from this time: 2026-12-01, 2026-12-01T08:00 (UTC unless an offset is given), "
             "or a span back from now (30m, 12h, 7d)",
    "until": "before this time (a date: until the end of that day)",
    "username": "exactly this user", "door": "portal, sso, radius, recovery, admin, api, cli...",
    "action": "e.g. sign_in, factor, radius.access, user.unlock",
    "result": "the outcome, e.g. ok, fail, reject", "address": "the client's address",
    "actor": "the console user or api:TOKEN-NAME who acted",
    "limit": f"records per page (default {audit_search.DEFAULT_PAGE}, "
             f"at most {audit_search.MAX_PAGE})",
    "cursor": "next_cursor of the previous page",
}


@bp.get("/audit")
@requires("audit.search")
@documented("Search the audit records of every user, newest first, a page at a time",
            query=FILTERS, statuses=(400,), returns={
                "type": "object", "properties": {
                    "events": {"type": "array", "items": EVENT},
                    "next_cursor": {"type": ["string", "null"]}}})
def audit_events():
    ctx = core.context()
    try:
        query = audit_search.query_from(request.args, ctx.now())
        after = audit_search.parse_cursor(request.args.get("cursor", ""))
    except AuditSearchError as exc:
        raise ApiError(400, str(exc)) from None
    size = params.int_arg("limit", audit_search.DEFAULT_PAGE, 1, audit_search.MAX_PAGE)
    found = audit_search.page(ctx, query, size=size or audit_search.DEFAULT_PAGE, after=after)
    return jsonify({"events": [event_json(row) for row in found.rows],
                    "next_cursor": str(found.next_cursor) if found.next_cursor else None})


def event_json(row: AuditEvent) -> dict[str, Any]:
    return {**users_json.record(row), "username": row.username}


@bp.get("/dashboard")
@requires("dashboard.read")
@documented("The dashboard's figures: sign-ins per hour (24 h) by door and outcome, lockouts, "
            "fraud reports, enrolment coverage, devices by kind", returns={"type": "object"})
def dashboard_figures():
    figures = dashboard.figures(core.context())
    sign_ins = figures.sign_ins
    return jsonify({
        "at": figures.at.isoformat(),
        "sign_ins_per_hour": {
            "hours": [hour.isoformat() for hour in sign_ins.hours],
            "series": [{"door": door, "result": result, "counts": counts}
                       for (door, result), counts in sign_ins.series.items()],
            "totals": sign_ins.totals},
        "lockouts": {"locked": figures.lockouts.locked, "disabled": figures.lockouts.disabled,
                     "usernames": figures.lockouts.usernames},
        "fraud_reports": {"last_24h": figures.fraud.last_day,
                          "last_7d": figures.fraud.last_week},
        "enrolment": {"users": figures.coverage.users, "enrolled": figures.coverage.enrolled,
                      "percent": figures.coverage.percent},
        "devices_by_kind": figures.devices_by_kind})
