"""Flask's session, kept on the server (app/core/browser_sessions.py decides how).

The cookie holds a random id and is set only when that id is new: after the password and
after the second factor (`regenerate`), or when an anonymous visitor first needs a session.
It expires with the session, counted from sign-in, and is never re-issued on a plain GET.
The session is written after the request's own commit, in a transaction of its own; a request
that fails (5xx) writes nothing.
"""

from __future__ import annotations

import logging
from datetime import datetime

from flask import Flask, Request, Response, current_app, request, session
from flask.sessions import SessionInterface, SessionMixin
from werkzeug.datastructures import CallbackDict

from app.core import browser_sessions, redis_outage
from app.core.context import Context
from app.core.subjects import Subject
from app.db import UNAVAILABLE
from app.extensions import core

log = logging.getLogger("um2fa.web")

MAX_ID_LENGTH = 64


def _store_errors() -> tuple[type[BaseException], ...]:
    return (*UNAVAILABLE, *redis_outage.errors())


class ServerSession(CallbackDict, SessionMixin):
    def __init__(self, data: dict | None = None, *, sid: str | None = None,
                 created_at: datetime | None = None, subject: Subject | None = None) -> None:
        def on_update(_self: CallbackDict) -> None:
            self.modified = True

        super().__init__(data or {}, on_update)
        self.sid = sid                  # the id the browser brought, if its session was found
        self.created_at = created_at
        self.subject = subject          # its user, if the store read them together (auth.py)
        self.modified = False
        self.renew = False              # a new id (and a new lifetime) at the next save
        self.unavailable: BaseException | None = None  # the store could not be read
        self.stale_cookie = False       # the browser brought an id that matches no session
        self.ended_sid: str | None = None  # the id this request ended (sign-out, sign-in)
        self.written: Written | None = None  # what was saved, once it is (id, record)

    def clear(self) -> None:
        """End the session: its id is dead even if the request fails afterwards."""
        if self.sid is not None:
            self.ended_sid, self.sid = self.sid, None
        super().clear()

    def take_back(self, brought: ServerSession) -> None:
        """Become the session as the browser brought it: nothing of this request is saved."""
        dict.clear(self)
        dict.update(self, brought)
        self.sid, self.created_at = brought.sid, brought.created_at
        self.subject = brought.subject
        self.unavailable, self.stale_cookie = brought.unavailable, brought.stale_cookie
        self.modified = self.renew = False
        self.ended_sid = self.written = None

    def regenerate(self) -> None:
        """A new id for this session from now on: the one a thief may have copied is dead."""
        self.renew = True
        self.modified = True


class ServerSessionInterface(SessionInterface):
    def get_cookie_secure(self, app: Flask) -> bool:
        from app.web.request_info import is_secure

        return bool(app.config.get("SESSION_COOKIE_SECURE")) or is_secure()

    def open_session(self, app: Flask, request: Request) -> ServerSession:
        sid = request.cookies.get(self.get_cookie_name(app), "")
        if not sid:
            return ServerSession()
        if len(sid) > MAX_ID_LENGTH:
            return _stale()
        try:
            record = browser_sessions.load(core.context(), sid)
        except _store_errors() as exc:
            new = ServerSession()
            new.unavailable = exc
            return new
        if record is None:
            return _stale()
        return ServerSession(record.data, sid=sid, created_at=record.created_at,
                             subject=record.subject)

    def save_session(self, app: Flask, session: ServerSession, response: Response) -> None:
        if session.unavailable is not None:
            return
        if session.written is None:  # not written with the request's commit (see `persist`)
            if response.status_code >= 500:
                # Nothing of the request is kept; an ended session stays ended all the same.
                session.written = _write_apart(session, keep=False)
            else:
                session.written = _write_apart(session, keep=True)
            if session.written is None:
                return
        sid, record = session.written
        if record is not None and sid != session.sid:
            response.set_cookie(
                self.get_cookie_name(app), sid, expires=record.expires_at,
                path=self.get_cookie_path(app), domain=self.get_cookie_domain(app),
                secure=self.get_cookie_secure(app), httponly=self.get_cookie_httponly(app),
                samesite=self.get_cookie_samesite(app))
        elif record is None and (session.ended_sid is not None or session.stale_cookie):
            self._delete_cookie(app, response)
        response.vary.add("Cookie")

    def _delete_cookie(self, app: Flask, response: Response) -> None:
        response.delete_cookie(self.get_cookie_name(app), path=self.get_cookie_path(app),
                               domain=self.get_cookie_domain(app))


Written = tuple[str, "browser_sessions.Record | None"]  # the id, and its record if kept


def _write(ctx: Context, session: ServerSession, *, keep: bool) -> Written:
    """What the request changed, in ctx's transaction: the session it ended is deleted, and
    (with `keep`) the session is saved, under a new id when it was renewed."""
    if session.ended_sid is not None:
        browser_sessions.end(ctx, session.ended_sid)
    if not keep or not session or not (session.renew or session.modified):
        return session.sid or "", None
    fresh = session.renew or session.sid is None
    sid = browser_sessions.new_id() if fresh else session.sid
    created_at = ctx.now() if fresh else session.created_at or ctx.now()
    record = browser_sessions.save(ctx, sid, dict(session), created_at, new=fresh,
                                   replaces=session.sid if fresh else None)
    return sid, record


def _write_apart(session: ServerSession, *, keep: bool) -> Written | None:
    """`_write` in a transaction of its own (a store outside the database, a request that did
    not commit, Flask's test client's session_transaction)."""
    try:
        with core.own_context() as ctx:
            return _write(ctx, session, keep=keep)
    except _store_errors() as exc:
        log.error("the browser session could not be saved: %s", type(exc).__name__)
        return None


def persist(ctx: Context) -> None:
    """Write the session in the request's own transaction, just before its commit (app/web's
    `_commit`): one commit per request. Only for the database store; Redis is written after
    the commit, in save_session."""
    if not ctx.sessions.in_transaction or session.unavailable is not None:
        return
    session.written = _write(ctx, session, keep=True)


def forget_written() -> None:
    """The request's commit failed: what `persist` wrote was rolled back."""
    session.written = None


def _stale() -> ServerSession:
    new = ServerSession()
    new.stale_cookie = True
    return new


def regenerate() -> None:
    session.regenerate()


def require_available() -> None:
    """before_request: a session that could not be read is the database (or Redis) being down:
    the error handlers answer "temporarily unavailable"."""
    if getattr(session, "unavailable", None) is not None:
        raise session.unavailable


def restore() -> None:
    """The session as the request's cookie brought it, unless the request emptied it (signed
    out): ending a session stands even when the request's commit failed."""
    if not session or session.ended_sid is not None:
        return
    app = current_app._get_current_object()
    session.take_back(app.session_interface.open_session(app, request))
