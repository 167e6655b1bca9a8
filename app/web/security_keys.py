"""The web side of security keys and passkeys (app/core/security_keys.py decides): the JSON the
ceremonies' script (static/js/webauthn.js) fetches and posts, and the challenge record kept in
the server-side session, taken out once. Used by "Add a new device" (app/web/devices.py), the
portal's prompt (app/web/prompt.py) and the SSO prompt (app/web/sso_prompt.py)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Response, current_app, jsonify, request, session

from app.core import security_keys
from app.extensions import core
from app.models import User
from app.web.request_info import origin

SESSION_KEY = "webauthn"


def relying_party() -> security_keys.RelyingParty:
    return security_keys.relying_party(core.context(), request.host_url)


def options(ceremony: tuple[str, dict]) -> Response:
    """The options for the browser; the challenge stays here, in the session."""
    options_json, record = ceremony
    session[SESSION_KEY] = record
    response = Response(options_json, mimetype="application/json")
    response.headers["Cache-Control"] = "no-store"
    return response


def sign_in_options(user: User) -> Response:
    """ "Use your security key" at a prompt: navigator.credentials.get's options for the user."""
    return options(security_keys.authentication_options(core.context(), user, relying_party()))


def sign_in(door: str, user: User, done: Callable[[int], Any]) -> Any:
    """The security key's answer at a prompt (JSON): refused, or `done(device_id)`, the door's
    next page after a second factor, for the script to move to."""
    outcome = security_keys.authenticate(core.context(), origin(door), user, relying_party(),
                                         credential(), take_record())
    if not outcome.ok:
        return refused(outcome.message, 401)
    return go_to(done(outcome.device.id))


def take_record() -> dict | None:
    """The challenge record, out of the session: a challenge answers once."""
    return session.pop(SESSION_KEY, None)


def credential() -> Any:
    """The browser's answer (a JSON object), or None when the body is not one."""
    body = request.get_json(silent=True)
    return body.get("credential") if isinstance(body, dict) else None


def refused(message: str, status: int = 400) -> tuple[Response, int]:
    return jsonify(error=message), status


def go_to(response: Any) -> Response:
    """A redirect (with its cookies) as the script's JSON: it moves the page."""
    response = current_app.make_response(response)
    target = response.headers.get("HX-Redirect") or response.headers.get("Location") or "/"
    answer = jsonify(redirect=target)
    for cookie in response.headers.getlist("Set-Cookie"):
        answer.headers.add("Set-Cookie", cookie)
    return answer
