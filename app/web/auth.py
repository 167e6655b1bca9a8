"""The signed-in user and the freshness of their second factor, kept in the server-side session
(app/web/server_session.py): its id changes after the password and after the second factor."""

from __future__ import annotations

import time
from collections.abc import Callable
from functools import wraps

from flask import abort, current_app, g, redirect, session, url_for

from app.core import lockout, signin, users
from app.core.subjects import Subject
from app.extensions import core
from app.models import User
from app.web import language, remember, server_session
from app.web.request_info import origin


def start_session(user: User, via: str) -> None:
    session.clear()  # a new session on sign-in: nothing from before carries over
    server_session.regenerate()
    session["uid"] = user.id
    session["via"] = via
    session["auth_at"] = int(time.time())
    language.signed_in(user.id)


def end_session(door: str = "portal") -> None:
    """Sign out: this session, and every other session of the same user."""
    user_id = session.get("uid")
    session.clear()
    signin.sign_out(core.context(), origin(door), user_id)
    remember.forget_this_browser()


def current_user() -> User | None:
    """The signed-in user as the ORM's User. Like `current_subject`, decided once per request:
    a user the request itself locks (a tenth wrong passcode) still sees its answer."""
    if "user" not in g:
        uid = session.get("uid")
        ctx = core.context()
        if "subject" in g:  # checked already in this request (login_required)
            g.user = ctx.db.get(User, g.subject.id) if g.subject is not None else None
            return g.user
        user = ctx.db.get(User, uid) if uid else None
        g.user = user if user is not None and not lockout.is_locked(user, ctx.now()) else None
    return g.user


def current_subject() -> Subject | None:
    """The signed-in user and their devices in one plain SELECT (app/core/subjects.py: Subject):
    what `login_required` and the prompts' passcode check need, without the ORM's cost. Views
    that show or change the user take `current_user()`. The database store reads it with the
    session, in the same round trip and transaction (server_session: `session.subject`)."""
    if "subject" not in g:
        if g.get("user", False) is None:  # known to be signed out (or the database down)
            g.subject = None
            return None
        uid = session.get("uid")
        ctx = core.context()
        brought = getattr(session, "subject", None)
        if not isinstance(uid, int):
            found = None
        elif brought is not None and brought.id == uid:
            found = brought
        else:
            found = users.subject_by_id(ctx, uid)
        g.subject = found if found is not None and not lockout.is_locked(found, ctx.now()) \
            else None
    return g.subject


def mark_second_factor(device_id: int | None = None) -> None:
    """A good second factor: a new session id, the time, and which device gave it (core's
    devices.remove holds back a device enrolled with a recovery passcode: hold_until)."""
    server_session.regenerate()
    session["mfa_at"] = int(time.time())
    session["mfa_device"] = device_id


def mark_recovery() -> None:
    """A recovery passcode: its own grade (session["recovery_at"]), never "mfa_at". It opens
    "Add a new device" only (`step_up_is_fresh("add")`): not "My Settings & Devices", not
    "Continue to Login", and the SSO door never counts it as a second factor."""
    server_session.regenerate()
    session["recovery_at"] = int(time.time())


def _fresh(key: str) -> bool:
    ttl = current_app.config["UM2FA"].stepup_ttl_seconds
    return time.time() - session.get(key, 0) < ttl


def second_factor_is_fresh() -> bool:
    """A device's second factor within the step-up window (a recovery passcode is not one)."""
    return _fresh("mfa_at")


def step_up_is_fresh(next_step: str) -> bool:
    """The step-up that `next_step` ("done", "settings", "add") needs is fresh: a device's
    second factor for every one; a recovery passcode for "add" only."""
    return second_factor_is_fresh() or (next_step == "add" and _fresh("recovery_at"))


def login_required(view: Callable) -> Callable:
    @wraps(view)
    def wrapped(*args, **kwargs):
        if current_subject() is None:
            session.clear()
            return redirect(url_for("portal.index"))
        return view(*args, **kwargs)

    return wrapped


def require_user() -> User:
    user = current_user()
    if user is None:
        abort(401)
    return user


def require_subject() -> Subject:
    subject = current_subject()
    if subject is None:
        abort(401)
    return subject
