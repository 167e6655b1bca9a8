"""The admin API at /api/v1/ (docs/admin.md): JSON for the university's automation.

Every call carries `Authorization: Bearer <token>` (`um2fa api-tokens add`); the token's role
decides, by the same console actions as the help-desk console (app/core/admins.py), what it may
do. Errors are `{"error": "..."}` with their status: 400 bad input, 401 no or unknown token, 403
the role may not, 404 no such thing. The API answers from UM2FA_ADMIN_NETWORKS only, like the
console. The endpoints of each area are in this package's other modules, on this blueprint;
app/web/api/__init__.py registers them all.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, g, jsonify, request
from werkzeug.exceptions import HTTPException

from app.core import api_tokens
from app.extensions import core, csrf
from app.web.admin.base import in_admin_networks
from app.web.console_actions import guarded, public, requested_view_is_public  # noqa: F401 - public: for the area modules
from app.web.request_info import origin

bp = Blueprint("api", __name__, url_prefix="/api/v1")
csrf.exempt(bp)  # no cookies: a bearer token, which a browser never sends on its own
DOOR = "api"


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status, self.message = status, message


def error(status: int, message: str):
    response = jsonify({"error": message})
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = 'Bearer realm="um2fa"'
    return response


def requires(action: str) -> Callable:
    """The console action this endpoint takes; a token whose role may not take it gets 403."""
    return guarded(action, lambda: g.api_token.role,
                   lambda role: error(403, f"this token's role ({role}) may not do that"))


def api_origin():
    found = origin(DOOR)
    found.actor, found.actor_role = f"api:{g.api_token.name}", g.api_token.role
    return found


@bp.before_request
def authenticate():
    if not in_admin_networks():
        return error(403, "the admin API does not answer this network")
    if requested_view_is_public():
        return None
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        return error(401, "an API token is required (Authorization: Bearer ...)")
    found = api_tokens.authenticate(core.context(), token.strip())
    if found is None:
        return error(401, "the API token is not valid (unknown or removed)")
    g.api_token = found
    return None


@bp.errorhandler(ApiError)
def _api_error(exc: ApiError):
    return error(exc.status, exc.message)


@bp.errorhandler(HTTPException)
def _http_error(exc: HTTPException):
    return error(exc.code or 500, exc.description or exc.name)


def documented(summary: str, *, query: dict[str, str] | None = None,
               body: dict[str, Any] | None = None, returns: dict[str, Any] | None = None,
               statuses: tuple[int, ...] = (), success: int = 200) -> Callable:
    """An endpoint's entry in /api/v1/openapi.json; put it under the route and `requires`
    decorators. `query`: name -> description of each query parameter; `body`: the JSON schema
    of the request body; `returns`: the JSON schema of a success, answered with the status
    `success` (201 for something made); `statuses`: the error statuses it may answer besides
    401 and 403 (400, 404, 409...)."""

    def decorate(view: Callable) -> Callable:
        view.api_doc = {"summary": summary, "query": query or {}, "body": body,
                        "returns": returns or {"type": "object"}, "statuses": statuses,
                        "success": success}
        return view

    return decorate


@bp.get("/me")
@requires("users.read")
@documented("The calling token's name and role", returns={
    "type": "object", "properties": {"name": {"type": "string"}, "role": {"type": "string"}}})
def me():
    """Which token this is, and its role (a first call to check a token works)."""
    return jsonify({"name": g.api_token.name, "role": g.api_token.role})
