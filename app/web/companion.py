"""The companion app: an installable web app (PWA) that the service serves itself.

The page, its service worker and its manifest live under /app/, so the service worker's scope
is /app/ (a worker controls only the paths under its own). The app's script, styles and icons
are ordinary static files. Reachable from anywhere, like the device API: a phone is rarely on
the campus network. Nothing here reads the session or the database.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, send_from_directory, url_for

bp = Blueprint("companion", __name__, url_prefix="/app")

NAME = "UM 2FA"
THEME = "#0b3d91"
ICON_SIZES = (192, 512)


@bp.get("/")
def index():
    return render_template("companion/app.html", name=NAME, theme=THEME)


@bp.get("/sw.js")
def service_worker():
    response = send_from_directory(f"{current_app.static_folder}/companion", "sw.js",
                                   mimetype="text/javascript", max_age=0)
    # Browsers look for an updated worker on each visit; let them always get the latest.
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.get("/manifest.webmanifest")
def manifest():
    icons = [{"src": url_for("static", filename=f"companion/icon-{size}.png"),
              "sizes": f"{size}x{size}", "type": "image/png", "purpose": "any"}
             for size in ICON_SIZES]
    icons.append({"src": url_for("static", filename="companion/icon-maskable-512.png"),
                  "sizes": "512x512", "type": "image/png", "purpose": "maskable"})
    icons.append({"src": url_for("static", filename="companion/icon.svg"),
                  "sizes": "any", "type": "image/svg+xml", "purpose": "any"})
    body = {
        "name": NAME, "short_name": NAME, "id": url_for("companion.index"),
        "description": "Approve University of Macau sign-ins and show 2FA passcodes.",
        "start_url": url_for("companion.index"), "scope": url_for("companion.index"),
        "display": "standalone", "orientation": "portrait",
        "background_color": "#f4f6fb", "theme_color": THEME, "icons": icons,
    }
    response = current_app.json.response(body)
    response.mimetype = "application/manifest+json"
    return response
