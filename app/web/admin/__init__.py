"""The help-desk console (docs/admin.md): base.py holds the blueprint, its guard and sign-in;
each other module holds one area's pages on that blueprint."""

from __future__ import annotations

from flask import Flask

from app.web.admin import (  # noqa: F401 - each area's pages join base.bp
    access_pages,
    audit_pages,
    base,
    dashboard_pages,
    radius_pages,
    settings_pages,
    sp_pages,
    users,
)


def register(app: Flask) -> None:
    app.register_blueprint(base.bp)
