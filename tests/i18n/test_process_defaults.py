"""Every door, not only the web app, speaks UM2FA_DEFAULT_LANGUAGE and UM2FA_TIMEZONE: the RADIUS
server and the CLI build their services without Flask (app/bootstrap.py)."""

from __future__ import annotations

from datetime import UTC, datetime

from app import i18n
from app.bootstrap import build_services
from app.config import load_settings


def test_services_built_without_flask_take_the_language_and_zone_from_settings(tmp_path):
    settings = load_settings({"instance_dir": tmp_path, "timezone": "Europe/Lisbon",
                              "default_language": "pt",
                              "database_url": f"sqlite:///{tmp_path}/t.db"})
    try:
        build_services(settings)
        assert i18n.current_language() == "pt"  # no request, no use_language: the default
        noon = datetime(2026, 12, 6, 12, 0, tzinfo=UTC)  # Lisbon is on UTC in December
        assert "12:00" in i18n.local(noon) and "Lisboa" in i18n.zone()
    finally:
        i18n.configure("en", "Asia/Macau")
