"""Admin API for RADIUS clients (role admin): list, add (the shared secret is in that answer
only), change the mode or the Reply-Messages' language, remove; app/core/radius_clients.py's
rules, as in the console."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.core import radius_clients
from app.extensions import core
from app.models import RadiusClient
from app.web.api import params
from app.web.api.base import ApiError, api_origin, bp, documented, requires

ACTION = "radius_clients.manage"

CLIENT = {"type": "object", "properties": {
    "name": {"type": "string"}, "network": {"type": "string"},
    "mode": {"type": "string", "enum": list(radius_clients.MODES)},
    "delimiter": {"type": "string"}, "require_message_authenticator": {"type": "boolean"},
    "fail_mode": {"type": "string", "enum": list(radius_clients.FAIL_MODES)},
    "push_timeout": {"type": "integer"},
    "language": {"type": ["string", "null"],
                 "description": "the language of its Reply-Messages, one of UM2FA_LANGUAGES "
                                "(e.g. en, zh_Hant, pt); null: UM2FA_DEFAULT_LANGUAGE"},
    "created_at": {"type": "string"}}}
NEW_CLIENT = {"type": "object", "required": ["name", "address"], "properties": {
    "name": {"type": "string"},
    "address": {"type": "string", "description": "an address or a network in CIDR form"},
    "secret": {"type": "string", "description": "16-128 printable characters; left out: "
                                                "generated and returned once"},
    "mode": CLIENT["properties"]["mode"], "delimiter": {"type": "string"},
    "require_message_authenticator": {"type": "boolean"},
    "fail_mode": CLIENT["properties"]["fail_mode"], "push_timeout": {"type": "integer"},
    "language": CLIENT["properties"]["language"]}}
CHANGE = {"type": "object", "description": "mode, language or both", "properties": {
    "mode": CLIENT["properties"]["mode"], "language": CLIENT["properties"]["language"]}}


def as_json(client: RadiusClient) -> dict[str, Any]:
    return {"name": client.name, "network": client.network, "mode": client.mode,
            "delimiter": client.delimiter,
            "require_message_authenticator": client.require_message_authenticator,
            "fail_mode": client.fail_mode, "push_timeout": client.push_timeout,
            "language": client.language,
            "created_at": client.created_at.isoformat() if client.created_at else None}


def _language(data: dict[str, Any]) -> str | None:
    """The "language" field: one of the offered languages, or null (the default language)."""
    value = data.get("language")
    if value is not None and not isinstance(value, str):
        raise ApiError(400, "language must be a string or null")
    return value or None


def _found(ctx, name: str) -> RadiusClient:
    client = radius_clients.find(ctx, name)
    if client is None:
        raise ApiError(404, f"no RADIUS client named {name}")
    return client


@bp.get("/radius-clients")
@requires(ACTION)
@documented("The RADIUS clients (secrets are never returned)", returns={
    "type": "object", "properties": {"radius_clients": {"type": "array", "items": CLIENT}}})
def radius_clients_list():
    return jsonify({"radius_clients": [as_json(c)
                                       for c in radius_clients.list_all(core.context())]})


@bp.post("/radius-clients")
@requires(ACTION)
@documented("Add a RADIUS client; the answer holds its shared secret, this once",
            body=NEW_CLIENT, statuses=(400,), returns={
                "type": "object", "properties": {**CLIENT["properties"],
                                                 "secret": {"type": "string"}}})
def radius_client_add():
    data = params.json_body()
    typed = params.required_text(data, "secret", "")
    secret = typed or radius_clients.generate_secret()
    try:
        client = radius_clients.add(
            core.context(), api_origin(), params.required_text(data, "name"),
            params.required_text(data, "address"),
            secret, mode=params.required_text(data, "mode", "append"),
            delimiter=params.required_text(data, "delimiter", ","),
            require_message_authenticator=params.flag(data, "require_message_authenticator",
                                                    True),
            fail_mode=params.required_text(data, "fail_mode", "secure"),
            push_timeout=params.number(data, "push_timeout", radius_clients.DEFAULT_PUSH_TIMEOUT),
            language=_language(data))
    except radius_clients.RadiusClientError as exc:
        raise ApiError(400, str(exc)) from exc
    response = jsonify({**as_json(client), "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.patch("/radius-clients/<name>")
@requires(ACTION)
@documented("Change a RADIUS client's mode or its Reply-Messages' language",
            statuses=(400, 404), returns=CLIENT, body=CHANGE)
def radius_client_change(name: str):
    ctx = core.context()
    client = _found(ctx, name)
    data = params.json_body()
    params.change_fields(data, ("mode", "language"))
    language = _language(data)
    if language is not None and language not in ctx.settings.languages:  # before any change
        raise ApiError(400, f"the language must be one of {', '.join(ctx.settings.languages)}")
    try:
        if "language" in data:
            client = radius_clients.set_language(ctx, api_origin(), name, language)
        if "mode" in data:
            client = radius_clients.set_mode(ctx, api_origin(), name,
                                             params.required_text(data, "mode"))
    except radius_clients.RadiusClientError as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify(as_json(client))


@bp.delete("/radius-clients/<name>")
@requires(ACTION)
@documented("Remove a RADIUS client", statuses=(404,), returns={
    "type": "object", "properties": {"removed": {"type": "string"}}})
def radius_client_remove(name: str):
    ctx = core.context()
    _found(ctx, name)
    radius_clients.remove(ctx, api_origin(), name)
    return jsonify({"removed": name})
