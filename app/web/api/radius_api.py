"""Admin API for RADIUS clients (role admin): list, add (the shared secret is in that answer
only), change the mode, the Reply-Messages' language or whether it is a RADIUS proxy, remove;
a proxy's NAS policies (add, remove); app/core/radius_clients.py's and
app/core/radius_nas_policies.py's rules, as in the console and the CLI."""

from __future__ import annotations

from typing import Any

from flask import jsonify

from app.core import radius_clients, radius_nas_policies
from app.extensions import core
from app.models import RadiusClient, RadiusNasPolicy
from app.web.api import params
from app.web.api.base import ApiError, api_origin, bp, documented, requires

ACTION = "radius_clients.manage"

MODE = {"type": "string", "enum": list(radius_clients.MODES)}
FAIL_MODE = {"type": "string", "enum": list(radius_clients.FAIL_MODES)}
LANGUAGE = {"type": ["string", "null"],
            "description": "the language of its Reply-Messages, one of UM2FA_LANGUAGES (e.g. en, "
                           "zh_Hant, pt); null: UM2FA_DEFAULT_LANGUAGE"}
PROXY_WAIT = {"type": "string", "enum": [w.value for w in radius_clients.ProxyWait],
              "description": "whether a FreeRADIUS proxy waits long enough for a push login: "
                             "fits (within a stock proxy's 20 s), needs a configured proxy "
                             "(response_window and max_request_time raised, docs/radius.md), "
                             "too long (over what any FreeRADIUS proxy waits: 60 s)"}
NAS_POLICY = {"type": "object", "properties": {
    "name": {"type": "string"},
    "nas_identifier": {"type": ["string", "null"], "description": "matched exactly"},
    "nas_network": {"type": ["string", "null"],
                    "description": "a network holding the request's NAS-IP-Address"},
    "mode": {"type": ["string", "null"], "enum": [*radius_clients.MODES, None],
             "description": "null: the proxy's"},
    "fail_mode": {"type": ["string", "null"], "enum": [*radius_clients.FAIL_MODES, None],
                  "description": "null: the proxy's"},
    "push_timeout": {"type": ["integer", "null"], "description": "null: the proxy's"},
    "language": {"type": ["string", "null"], "description": "null: the proxy's"},
    "effective": {"type": "object", "description": "the settings its requests get",
                  "properties": {"mode": MODE, "fail_mode": FAIL_MODE,
                                 "push_timeout": {"type": "integer"}, "language": LANGUAGE}},
    "proxy_wait": PROXY_WAIT,
    "created_at": {"type": "string"}}}
CLIENT = {"type": "object", "properties": {
    "name": {"type": "string"}, "network": {"type": "string"},
    "mode": MODE,
    "delimiter": {"type": "string"}, "require_message_authenticator": {"type": "boolean"},
    "fail_mode": FAIL_MODE,
    "push_timeout": {"type": "integer"},
    "language": LANGUAGE,
    "proxy": {"type": "boolean", "description": "a RADIUS proxy (FreeRADIUS) in front of "
                                                "several NAS, each with its NAS policy"},
    "proxy_wait": {**PROXY_WAIT, "description": "proxies only: " + PROXY_WAIT["description"]},
    "nas_policies": {"type": "array", "items": NAS_POLICY,
                     "description": "a proxy's NAS policies, by name"},
    "created_at": {"type": "string"}}}
NEW_CLIENT = {"type": "object", "required": ["name", "address"], "properties": {
    "name": {"type": "string"},
    "address": {"type": "string", "description": "an address or a network in CIDR form"},
    "secret": {"type": "string", "description": "16-128 printable characters; left out: "
                                                "generated and returned once"},
    "mode": MODE, "delimiter": {"type": "string"},
    "require_message_authenticator": {"type": "boolean"},
    "fail_mode": FAIL_MODE, "push_timeout": {"type": "integer"},
    "language": LANGUAGE, "proxy": {"type": "boolean"}}}
CHANGE = {"type": "object", "description": "mode, language, proxy, or several",
          "properties": {"mode": MODE, "language": LANGUAGE, "proxy": {"type": "boolean"}}}
NEW_POLICY = {"type": "object", "required": ["name"],
              "description": "nas_identifier, nas_network or both; a setting left out or null "
                             "is the proxy's",
              "properties": {key: NAS_POLICY["properties"][key]
                             for key in ("name", "nas_identifier", "nas_network", "mode",
                                         "fail_mode", "push_timeout", "language")}}


def policy_json(client: RadiusClient, row: RadiusNasPolicy) -> dict[str, Any]:
    effective = radius_clients.effective(client, row)
    return {"name": row.name, "nas_identifier": row.nas_identifier,
            "nas_network": row.nas_network, "mode": row.mode, "fail_mode": row.fail_mode,
            "push_timeout": row.push_timeout, "language": row.language,
            "effective": effective,
            "proxy_wait": radius_clients.proxy_wait(effective["push_timeout"]).value,
            "created_at": row.created_at.isoformat() if row.created_at else None}


def as_json(client: RadiusClient, policies: list[RadiusNasPolicy] | None = None) -> dict[str, Any]:
    found = {"name": client.name, "network": client.network, "mode": client.mode,
             "delimiter": client.delimiter,
             "require_message_authenticator": client.require_message_authenticator,
             "fail_mode": client.fail_mode, "push_timeout": client.push_timeout,
             "language": client.language, "proxy": bool(client.proxy),
             "nas_policies": [policy_json(client, row) for row in policies or []],
             "created_at": client.created_at.isoformat() if client.created_at else None}
    if client.proxy:
        found["proxy_wait"] = radius_clients.proxy_wait(client.push_timeout).value
    return found


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
    ctx = core.context()
    policies = radius_nas_policies.by_client(ctx)
    return jsonify({"radius_clients": [as_json(c, policies.get(c.id))
                                       for c in radius_clients.list_all(ctx)]})


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
            language=_language(data), proxy=params.flag(data, "proxy", False))
    except radius_clients.RadiusClientError as exc:
        raise ApiError(400, str(exc)) from exc
    response = jsonify({**as_json(client), "secret": secret})
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.patch("/radius-clients/<name>")
@requires(ACTION)
@documented("Change a RADIUS client's mode, its Reply-Messages' language or whether it is "
            "a RADIUS proxy", statuses=(400, 404), returns=CLIENT, body=CHANGE)
def radius_client_change(name: str):
    ctx = core.context()
    client = _found(ctx, name)
    data = params.json_body()
    params.change_fields(data, ("mode", "language", "proxy"))
    language = _language(data)
    if language is not None and language not in ctx.settings.languages:  # before any change
        raise ApiError(400, f"the language must be one of {', '.join(ctx.settings.languages)}")
    if "mode" in data and params.required_text(data, "mode") not in radius_clients.MODES:
        raise ApiError(400, f"mode must be one of {', '.join(radius_clients.MODES)}")
    proxy = params.optional_flag(data, "proxy")
    try:  # the one change core may still refuse first, so a refusal changes nothing
        if proxy is not None:
            client = radius_clients.set_proxy(ctx, api_origin(), name, proxy)
        if "language" in data:
            client = radius_clients.set_language(ctx, api_origin(), name, language)
        if "mode" in data:
            client = radius_clients.set_mode(ctx, api_origin(), name,
                                             params.required_text(data, "mode"))
    except radius_clients.RadiusClientError as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify(as_json(client, radius_nas_policies.policies_of(ctx, client)))


def _optional_text(data: dict[str, Any], name: str) -> str | None:
    value = data.get(name)
    if value is not None and not isinstance(value, str):
        raise ApiError(400, f"{name} must be a string or null")
    return value.strip() or None if value is not None else None


@bp.post("/radius-clients/<name>/nas-policies")
@requires(ACTION)
@documented("Give a NAS behind a RADIUS proxy client a policy of its own", body=NEW_POLICY,
            statuses=(400, 404), returns=NAS_POLICY, success=201)
def radius_nas_policy_add(name: str):
    ctx = core.context()
    client = _found(ctx, name)
    data = params.json_body()
    params.change_fields(data, tuple(NEW_POLICY["properties"]))
    timeout = data.get("push_timeout")
    if timeout is not None and (not isinstance(timeout, int) or isinstance(timeout, bool)):
        raise ApiError(400, "push_timeout must be an integer or null")
    new = radius_nas_policies.NewPolicy(
        name=params.required_text(data, "name"),
        nas_identifier=_optional_text(data, "nas_identifier"),
        nas_address=_optional_text(data, "nas_network"),
        mode=_optional_text(data, "mode"), fail_mode=_optional_text(data, "fail_mode"),
        push_timeout=timeout, language=_optional_text(data, "language"))
    try:
        row = radius_nas_policies.add(ctx, api_origin(), name, new)
    except radius_clients.RadiusClientError as exc:
        raise ApiError(400, str(exc)) from exc
    return jsonify(policy_json(client, row)), 201


@bp.delete("/radius-clients/<name>/nas-policies/<policy>")
@requires(ACTION)
@documented("Remove a NAS policy of a RADIUS proxy client (that NAS gets the proxy's settings)",
            statuses=(404,), returns={"type": "object",
                                      "properties": {"removed": {"type": "string"}}})
def radius_nas_policy_remove(name: str, policy: str):
    ctx = core.context()
    _found(ctx, name)
    try:
        radius_nas_policies.remove(ctx, api_origin(), name, policy)
    except radius_clients.RadiusClientError as exc:
        raise ApiError(404, str(exc)) from exc
    return jsonify({"removed": f"{name}/nas {policy}"})


@bp.delete("/radius-clients/<name>")
@requires(ACTION)
@documented("Remove a RADIUS client", statuses=(404,), returns={
    "type": "object", "properties": {"removed": {"type": "string"}}})
def radius_client_remove(name: str):
    ctx = core.context()
    _found(ctx, name)
    radius_clients.remove(ctx, api_origin(), name)
    return jsonify({"removed": name})
