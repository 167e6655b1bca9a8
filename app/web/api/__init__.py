"""The admin API (docs/admin.md): base.py holds the blueprint, the token check and the JSON
errors; openapi.py the OpenAPI document; each other module one area's endpoints."""

from __future__ import annotations

from flask import Flask

from app.web.api import audit_api, base, openapi  # noqa: F401 - their routes join base.bp


def register(app: Flask) -> None:
    app.register_blueprint(base.bp)
