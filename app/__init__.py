"""UM 2FA: the Flask app factory."""

from __future__ import annotations

from typing import Any

from flask import Flask

from app.config import PROJECT_ROOT, load_settings


def create_app(overrides: dict[str, Any] | None = None) -> Flask:
    settings = load_settings(overrides)
    app = Flask(__name__, template_folder=str(PROJECT_ROOT / "templates"),
                static_folder=str(PROJECT_ROOT / "static"), instance_path=str(
                    settings.instance_dir.resolve()))
    app.config.update(
        SECRET_KEY=settings.secret_key,
        UM2FA=settings,
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_NAME="um2fa_session",
        PERMANENT_SESSION_LIFETIME=8 * 3600,
        WTF_CSRF_TIME_LIMIT=None,
        MAX_CONTENT_LENGTH=1024 * 1024,
    )
    if overrides and "testing" in overrides:
        app.testing = bool(overrides["testing"])

    from app import extensions, web

    extensions.init_app(app)
    web.init_app(app)

    from app.cli.groups import register

    register(app)
    return app
