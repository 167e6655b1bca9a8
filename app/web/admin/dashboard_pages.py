"""The console's dashboard (docs/admin.md, "Dashboard"): the figures of app/core/dashboard.py,
sign-ins per hour as a server-made SVG chart (app/web/admin/charts.py) with its numbers in a
table, the rest as numbers. Hours are the university's local hours (UM2FA_TIMEZONE)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from flask import current_app, render_template

from app.core import dashboard
from app.extensions import core
from app.i18n import N_, _
from app.web.admin import charts
from app.web.admin.base import bp, menu, requires

menu("admin.dashboard", N_("Dashboard"), "dashboard.read")


def local_hour(hour: datetime) -> str:
    """"15:00": the start of an hour in the university's time zone."""
    aware = hour if hour.tzinfo is not None else hour.replace(tzinfo=UTC)
    return aware.astimezone(ZoneInfo(current_app.config["UM2FA"].timezone)).strftime("%H:00")


@bp.get("/dashboard", endpoint="dashboard")
@requires("dashboard.read")
def dashboard_page():
    figures = dashboard.figures(core.context())
    sign_ins = figures.sign_ins
    labels = [local_hour(hour) for hour in sign_ins.hours]
    series = [(f"{door} {result}", counts) for (door, result), counts in sign_ins.series.items()]
    chart = charts.stacked_bars("sign-ins-chart", _("Sign-ins per hour, the last 24 hours"),
                                labels, series)
    return render_template("admin/dashboard.html", figures=figures, chart=chart, labels=labels,
                           series=series)
