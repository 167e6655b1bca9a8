"""The admin API (docs/admin.md): base.py holds the blueprint, the token check and the JSON
errors; openapi.py the OpenAPI document; params.py reads bodies and query parameters; each
other module one area's endpoints (users_api.py: people and the help desk's actions, with
users_json.py: how they look in JSON)."""

from __future__ import annotations

from flask import Flask

from app.web.api import (  # noqa: F401 - each module's routes join base.bp
    audit_api,
    base,
    openapi,
    radius_api,
    sp_api,
    users_api,
)


def register(app: Flask) -> None:
    app.register_blueprint(base.bp)
