"""The help-desk console (docs/admin.md): base.py holds the blueprint, its guard and sign-in;
each other module holds one area's pages on that blueprint."""

from __future__ import annotations

from flask import Flask

from app.web.admin import audit_pages, base, dashboard_pages  # noqa: F401 - their routes join base.bp


def register(app: Flask) -> None:
    app.register_blueprint(base.bp)
