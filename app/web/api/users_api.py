"""The admin API for people (docs/admin.md, "People"): find them, read their state and
timeline, and the help desk's actions: unlock, remove a device, end sessions, a recovery
passcode after an ID check, disable and enable.

app/core/support.py reads and app/core/helpdesk.py acts, exactly as for the console; this
module only translates JSON. Every action takes {"reason": "..."}, which goes into the audit
record with the token as the actor ("api:NAME"). Each action answers the person's summary
(username, name, email, state, locked_until), a recovery passcode 201 with the code, once."""

from __future__ import annotations

from flask import jsonify, request

from app.core import audit_search, helpdesk, support
from app.extensions import core
from app.web.api import users_json as shape
from app.web.api.base import ApiError, api_origin, bp, documented, error, requires
from app.web.api.params import int_arg, json_body, text_field

MAX_PAGE = 10_000
TIMELINE_MAX = 200

REASON = {"type": "string", "minLength": 1, "maxLength": helpdesk.REASON_MAX,
          "description": "why (goes into the audit record)"}
REASON_BODY = {"type": "object", "properties": {"reason": REASON}, "required": ["reason"]}
RECOVERY_BODY = {"type": "object", "required": ["reason", "identity_checked"], "properties": {
    "reason": REASON,
    "identity_checked": {"const": True, "description": "you checked the person's ID document"}}}
PAGE = {"type": "object", "properties": {
    "users": {"type": "array", "items": shape.SUMMARY}, "page": shape.INTEGER,
    "has_more": shape.BOOLEAN, "next_page": {"type": ["integer", "null"]}}}
TIMELINE = {"type": "object", "properties": {
    "records": {"type": "array", "items": shape.RECORD},
    "next": {"type": ["integer", "null"], "description": "ask again with before=next"}}}
PASSCODE = shape.object_schema(
    passcode={"type": "string", "description": "9 digits, shown once"}, expires=shape.TIME)


@bp.errorhandler(support.NotFound)
def _not_found(exc: support.NotFound):
    return error(404, str(exc))


@bp.errorhandler(helpdesk.HelpdeskError)
def _refused(exc: helpdesk.HelpdeskError):
    return error(400, str(exc))


def _reason() -> str:
    return text_field(json_body(), "reason")


def _done(username: str):
    """The person's summary after an action."""
    ctx = core.context()
    return jsonify(shape.summary(ctx, support.get_user(ctx, username)))


@bp.get("/users")
@requires("users.read")
@documented("Find people by part of their UMPASS ID, name or email", query={
    "q": "the text to look for (required)", "page": f"1 (default) to {MAX_PAGE}"},
    returns=PAGE, statuses=(400,))
def find_users():
    text = " ".join(request.args.get("q", "").split())
    if not text:
        raise ApiError(400, "q is required: part of a UMPASS ID, name or email")
    page = int_arg("page", 1, 1, MAX_PAGE)
    ctx = core.context()
    found, more = support.find_users(ctx, text, page)
    return jsonify({"users": [shape.summary(ctx, u) for u in found], "page": page,
                    "has_more": more, "next_page": page + 1 if more else None})


@bp.get("/users/<username>")
@requires("users.read")
@documented("A person: state, devices, recovery passcodes (never a code), remembered "
            "browsers, open sessions", returns=shape.PERSON, statuses=(404,))
def get_user(username: str):
    return jsonify(shape.person(support.user_view(core.context(), username)))


@bp.get("/users/<username>/timeline")
@requires("users.read")
@documented("A person's audit records, newest first, a page at a time", query={
    "door": "only this door (portal, sso, radius, recovery, admin, api, ...)",
    "result": "only this outcome (ok, fail, locked, ...)",
    "before": "the previous page's `next`", "limit": f"1 to {TIMELINE_MAX} (default "
    f"{support.TIMELINE_PAGE})"}, returns=TIMELINE, statuses=(400, 404))
def timeline(username: str):
    limit = int_arg("limit", support.TIMELINE_PAGE, 1, TIMELINE_MAX)
    try:
        rows, cursor = support.timeline(core.context(), username,
                                        door=request.args.get("door", ""),
                                        result=request.args.get("result", ""),
                                        before=request.args.get("before", ""), limit=limit)
    except audit_search.AuditSearchError as exc:
        raise ApiError(400, str(exc)) from None
    return jsonify({"records": [shape.record(r) for r in rows], "next": cursor})


@bp.post("/users/<username>/unlock")
@requires("users.unlock")
@documented("Lift a lockout (an admin token: also an administrator's lock)", body=REASON_BODY,
            returns=shape.SUMMARY, statuses=(400, 404))
def unlock(username: str):
    helpdesk.unlock(core.context(), api_origin(), username, _reason())
    return _done(username)


@bp.post("/users/<username>/devices/<int:device_id>/remove")  # bounded: app/web/input_guard.py
@requires("devices.remove")
@documented("Remove a device (the last one too: the person lost it)", body=REASON_BODY,
            returns=shape.SUMMARY, statuses=(400, 404))
def remove_device(username: str, device_id: int):
    helpdesk.remove_device(core.context(), api_origin(), username, device_id, _reason())
    return _done(username)


@bp.post("/users/<username>/sessions/end")
@requires("sessions.end")
@documented("Sign the person out everywhere (sessions and remembered browsers)",
            body=REASON_BODY, returns=shape.SUMMARY, statuses=(400, 404))
def end_sessions(username: str):
    helpdesk.end_sessions(core.context(), api_origin(), username, _reason())
    return _done(username)


@bp.post("/users/<username>/recovery-passcodes")
@requires("recovery.issue")
@documented("Issue a recovery passcode after checking the person's ID (revokes the previous "
            "one); the code is in this answer only", body=RECOVERY_BODY, returns=PASSCODE,
            statuses=(400, 404), success=201)
def issue_recovery(username: str):
    body = json_body()
    ctx = core.context()
    code, issued = helpdesk.issue_recovery(ctx, api_origin(), username,
                                           text_field(body, "reason"),
                                           id_checked=body.get("identity_checked") is True)
    # shown once: no cache keeps it (as the console's page)
    return jsonify({"passcode": code, "expires": shape.when(issued.expires_at)}), 201, {
        "Cache-Control": "no-store", "Pragma": "no-cache"}


@bp.post("/users/<username>/disable")
@requires("users.disable")
@documented("Disable the account: no second factor admits it, its sessions end",
            body=REASON_BODY, returns=shape.SUMMARY, statuses=(400, 404))
def disable(username: str):
    helpdesk.set_disabled(core.context(), api_origin(), username, True, _reason())
    return _done(username)


@bp.post("/users/<username>/enable")
@requires("users.disable")
@documented("Enable a disabled account again", body=REASON_BODY, returns=shape.SUMMARY,
            statuses=(400, 404))
def enable(username: str):
    helpdesk.set_disabled(core.context(), api_origin(), username, False, _reason())
    return _done(username)
