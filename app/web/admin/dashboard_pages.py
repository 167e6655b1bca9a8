"""The console's dashboard (docs/admin.md, "Dashboard"): the figures of app/core/dashboard.py,
sign-ins per hour as a server-made SVG chart (app/web/admin/charts.py) with its numbers in a
table, the rest as numbers."""

from __future__ import annotations

from flask import render_template

from app.core import dashboard
from app.extensions import core
from app.web.admin import charts
from app.web.admin.base import bp, menu, requires

menu("admin.dashboard", "Dashboard", "dashboard.read")


@bp.get("/dashboard", endpoint="dashboard")
@requires("dashboard.read")
def dashboard_page():
    figures = dashboard.figures(core.context())
    sign_ins = figures.sign_ins
    labels = [hour.strftime("%H:00") for hour in sign_ins.hours]
    series = [(f"{door} {result}", counts) for (door, result), counts in sign_ins.series.items()]
    chart = charts.stacked_bars("sign-ins-chart", "Sign-ins per hour, the last 24 hours (UTC)",
                                labels, series)
    return render_template("admin/dashboard.html", figures=figures, chart=chart, labels=labels,
                           series=series)
