"""/api/v1/openapi.json: the API's OpenAPI 3.1 document, made from the routes themselves.

Every endpoint says what it does with `@documented(...)` (under its route decorator); the
document lists every route of the `api` blueprint, so an endpoint cannot go undocumented
(tests/admin/test_api_openapi.py checks it)."""

from __future__ import annotations

import re
from typing import Any

from flask import current_app, jsonify

from app.web.api.base import bp, public

ERROR = {"type": "object", "properties": {"error": {"type": "string"}}, "required": ["error"]}


def _operation(rule, method: str, doc: dict[str, Any]) -> dict[str, Any]:
    params = [{"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
              for name in rule.arguments]
    params += [{"name": name, "in": "query", "required": False, "description": text,
                "schema": {"type": "string"}} for name, text in doc["query"].items()]
    responses: dict[str, Any] = {
        str(doc["success"]): {"description": "OK", "content": {
            "application/json": {"schema": doc["returns"]}}}}
    for status in (*doc["statuses"], 401, 403):
        responses[str(status)] = {"description": "error",
                                  "content": {"application/json": {"schema": ERROR}}}
    operation: dict[str, Any] = {"summary": doc["summary"], "parameters": params,
                                 "responses": responses, "security": [{"bearer": []}]}
    if doc["body"] is not None and method in ("POST", "PUT", "PATCH"):
        operation["requestBody"] = {"required": True, "content": {
            "application/json": {"schema": doc["body"]}}}
    return operation


def document() -> dict[str, Any]:
    paths: dict[str, dict[str, Any]] = {}
    for rule in current_app.url_map.iter_rules():
        if not rule.endpoint.startswith("api."):
            continue
        doc = getattr(current_app.view_functions[rule.endpoint], "api_doc", None)
        if doc is None:
            continue
        path = re.sub(r"<(?:[^:>]+:)?([^>]+)>", r"{\1}", rule.rule).removeprefix("/api/v1")
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            paths.setdefault(path, {})[method.lower()] = _operation(rule, method, doc)
    return {"openapi": "3.1.0",
            "info": {"title": "UM 2FA admin API", "version": "1"},
            "servers": [{"url": "/api/v1"}],
            "components": {"securitySchemes": {"bearer": {"type": "http",
                                                          "scheme": "bearer"}}},
            "paths": dict(sorted(paths.items()))}


@bp.get("/openapi.json")
@public
def openapi():
    return jsonify(document())
