"""The HTTP doors: thin blueprints that translate requests into core calls."""

from __future__ import annotations

import contextlib
import logging

from flask import Flask, current_app, g, jsonify, render_template, request, session
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException

from app.core import audit, notices, support
from app.core.directory import DirectoryUnavailable
from app.db import UNAVAILABLE, sent_with_the_commit
from app.i18n import N_, _
from app.web import csp, limits, push_stream, server_session
from app.web.limits import TooManyAttempts

log = logging.getLogger("um2fa.web")
# Under these paths every error is JSON, {"error": "..."}, never a page: the companion app's
# device API (/api/device/v1) and the admin API (/api/v1), including URLs that match no route.
JSON_PATHS = "/api/"


def _security_headers(response):
    response.headers.setdefault("Content-Security-Policy",
                                csp.policy(push_stream.connect_source()))
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    if request.endpoint and request.endpoint != "static":
        response.headers.setdefault("Cache-Control", "no-store")
    return response


def _commit(response):
    """Each request's core work commits once, before the answer leaves. When the commit fails
    (the database went away in between, or any other error), the answer becomes the
    "temporarily unavailable" page (or the 500 page) and the session cookie stays as the
    request brought it: a sign-in or a second factor that may not have been recorded must not
    be acknowledged."""
    ctx = g.get("core_ctx")
    if ctx is not None and response.status_code < 500:
        try:
            # the browser session and the audit records, in the same transaction, sent with
            # its COMMIT (one round trip on PostgreSQL)
            with sent_with_the_commit(ctx.db):
                server_session.persist(ctx)
                audit.flush(ctx.db)
            ctx.db.commit()
        except Exception as exc:
            with contextlib.suppress(Exception):
                ctx.db.rollback()
            server_session.forget_written()
            server_session.restore()
            if isinstance(exc, UNAVAILABLE):
                page = _database_down(exc)
            else:
                log.exception("the request's commit failed")
                page = _unexpected_page()
            app = current_app._get_current_object()
            answer = _security_headers(app.make_response(page))
            _keep_cookie_deletions(response, answer)
            return answer
    return response


def _keep_cookie_deletions(original, answer) -> None:
    """A cookie the request meant to delete (e.g. "remember me" at sign-out) stays deleted."""
    for header in original.headers.getlist("Set-Cookie"):
        if "Max-Age=0" in header:
            answer.headers.add("Set-Cookie", header)


# The error pages' own words for the HTTP errors people meet (werkzeug's texts, as msgids).
HTTP_TEXTS = {
    400: (N_("Bad Request"), N_("The browser (or proxy) sent a request that this server could "
                                "not understand.")),
    401: (N_("Unauthorized"), N_("The server could not verify that you are authorized to "
                                 "access the URL requested. You either supplied the wrong "
                                 "credentials (e.g. a bad password), or your browser doesn't "
                                 "understand how to supply the credentials required.")),
    403: (N_("Forbidden"), N_("You don't have the permission to access the requested "
                              "resource. It is either read-protected or not readable by the "
                              "server.")),
    404: (N_("Not Found"), N_("The requested URL was not found on the server. If you entered "
                              "the URL manually please check your spelling and try again.")),
    405: (N_("Method Not Allowed"), N_("The method is not allowed for the requested URL.")),
    413: (N_("Request Entity Too Large"), N_("The data value transmitted exceeds the capacity "
                                             "limit.")),
    500: (N_("Internal Server Error"), N_("The server encountered an internal error and was "
                                          "unable to complete your request. Either the server "
                                          "is overloaded or there is an error in the "
                                          "application.")),
}


def _error_page(title: str, message: str, status: int):
    """`title` and `message` are msgids (or texts translated already): a page shows them in
    its language; the JSON answers keep the English words they always had."""
    if request.path.startswith(JSON_PATHS):  # the companion app and the admin API read JSON
        return jsonify(error=message or title), status
    return render_template("error.html", title=_(title),
                           message=_(message) if message else ""), status


def _database_down(exc: Exception):
    log.error("%s unavailable: %s", "directory" if isinstance(exc, DirectoryUnavailable)
              else "database", exc.__class__.__name__)
    g.user = None  # the page must not ask the database who is signed in
    return _error_page(N_("Temporarily unavailable"),
                       N_("The 2FA service is temporarily unavailable. "
                          "Please try again in a few minutes."), 503)


def _register_errors(app: Flask) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(_exc):
        return _error_page(N_("Please try again"),
                           N_("This form was open too long or came from another site. "
                              "Go back, reload the page and try again."), 400)

    @app.errorhandler(TooManyAttempts)
    def rate_limited(_exc):
        return _error_page(N_("Too many attempts"),
                           N_("Too many attempts from here or for this account. "
                              "Please wait a minute and try again."), 429)

    for unavailable in (*UNAVAILABLE, DirectoryUnavailable):
        app.register_error_handler(unavailable, _database_down)

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        answer = app.make_response(_error_page(exc.name, str(exc.description or ""),
                                               exc.code or 500))
        allowed = getattr(exc, "valid_methods", None)  # a 405 says what the URL takes
        if allowed:
            answer.headers["Allow"] = ", ".join(allowed)
        return answer

    @app.errorhandler(Exception)
    def unexpected(exc: Exception):
        log.exception("unhandled error")
        return _unexpected_page()


def _unexpected_page():
    return _error_page(N_("Something went wrong"),
                       N_("An unexpected error occurred. Please try again."), 500)


def init_app(app: Flask) -> None:
    from app.web import (
        devices,
        input_guard,
        portal,
        prompt,
        settings,
        sso,  # noqa: F401 - its routes (the SAML protocol) join sso_base.bp
        sso_base,
        sso_logout,  # noqa: F401 - its routes (single logout, /saml/slo) join sso_base.bp
        sso_prompt,
    )

    app.url_map.converters["int"] = input_guard.BoundedInt  # before any route is added
    from app.web import language

    language.init_app(app)  # the page's language and local time (docs/languages.md)
    limits.init_app(app)  # the counters behind the limits on guessing (app/web/limits.py)
    app.session_interface = server_session.ServerSessionInterface()
    # First of all hooks (the CSRF check reads the session too): a session store that is down
    # is the "temporarily unavailable" page.
    app.before_request_funcs.setdefault(None, []).insert(0, server_session.require_available)
    app.before_request_funcs[None].insert(1, input_guard.refuse_nul)
    for bp in (portal.bp, prompt.bp, devices.bp, settings.bp, sso_base.bp):
        app.register_blueprint(bp)
    from app.web import sso_upstream

    sso_upstream.init_app(app)  # IdP-proxy mode (docs/saml.md)
    from app.web import recovery

    recovery.init_app(app)  # off campus too: not behind the campus gate
    from app.web import wasnt_me

    app.register_blueprint(wasnt_me.bp)  # "This wasn't me": off campus too, no sign-in
    from app.web import device_api

    app.register_blueprint(device_api.bp)  # signed JSON, off campus too, no CSRF token
    from app.web import companion

    app.register_blueprint(companion.bp)  # the companion app: off campus too
    from app.web import admin, api

    admin.register(app)  # the help-desk console (docs/admin.md)
    api.register(app)  # the admin API: bearer tokens, JSON, no CSRF token
    from app import logging_setup
    from app.web import ops

    app.register_blueprint(ops.bp)  # /healthz, /metrics: no campus gate, CSRF or rate limit
    logging_setup.init_app(app)  # X-Request-ID
    app.after_request(_commit)
    app.after_request(_security_headers)
    _register_errors(app)

    @app.context_processor
    def inject():
        from app.core.devices import DEVICE_TYPES, PLATFORMS
        from app.web.auth import current_user
        from app.web.remember import browser_words

        # the device types and platforms in the page's language
        return {"current_user": current_user,
                "DEVICE_TYPES": {key: _(label) for key, label in DEVICE_TYPES.items()},
                "pending_login_url": sso_prompt.pending_login_url,
                "PLATFORMS": {key: _(label) for key, label in PLATFORMS.items()},
                "door_words": notices.door_words, "activity_words": support.activity_words,
                "browser_words": browser_words}

