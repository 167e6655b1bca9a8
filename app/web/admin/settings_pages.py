"""The console's read-only view of the effective settings (role admin), secrets masked by
app/config/masked.py."""

from __future__ import annotations

from flask import current_app, render_template

from app.config.masked import effective
from app.i18n import N_
from app.web.admin.base import bp, menu, requires

ACTION = "settings.read"

menu("admin.settings", N_("Settings"), ACTION)


@bp.get("/settings", endpoint="settings")
@requires(ACTION)
def settings_page():
    return render_template("admin/settings.html",
                           rows=effective(current_app.config["UM2FA"]))
