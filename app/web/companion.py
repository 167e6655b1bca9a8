"""The companion app: an installable web app (PWA) that the service serves itself.

The page, its service worker and its manifest live under /app/, so the service worker's scope
is /app/ (a worker controls only the paths under its own). The app's script, styles and icons
are ordinary static files. Reachable from anywhere, like the device API: a phone is rarely on
the campus network. Nothing here reads the session or the database.

The app's texts are in the page's language (docs/languages.md): the page's own through the
"messages" catalog, the script's (static/companion/*.js, marked `_("...")`) through the
"companion" catalog, which the script loads as JSON from /app/strings/<language>.json.
"""

from __future__ import annotations

from functools import cache

from babel.support import NullTranslations, Translations
from flask import Blueprint, abort, current_app, render_template, send_from_directory, url_for
from markupsafe import Markup

from app.i18n import _, current_language
from app.i18n.languages import CATALOGS, SOURCE
from app.i18n.times import _locale

bp = Blueprint("companion", __name__, url_prefix="/app")

NAME = "UM 2FA"
THEME = "#0b3d91"
ICON_SIZES = (192, 512)
DOMAIN = "companion"
STRINGS_MAX_AGE = 3600  # the app's catalog changes only with a new release


@bp.get("/")
def index():
    settings = current_app.config["UM2FA"]
    return render_template(
        "companion/app.html", name=NAME, theme=THEME,
        issuer_html=Markup('<span class="issuer">%s</span>') % NAME,
        locale_tag=str(_locale(current_language())).replace("_", "-"),
        timezone=settings.timezone)


@cache
def strings_of(language: str) -> dict[str, str]:
    """The companion catalog of `language` as {msgid: translation} (translated texts only)."""
    if language == SOURCE:
        return {}
    found = Translations.load(str(CATALOGS), [language], DOMAIN)
    if type(found) is NullTranslations:  # no compiled catalog for it
        return {}
    return {str(msgid): str(text) for msgid, text in found._catalog.items()
            if isinstance(msgid, str) and msgid and text}


@bp.get("/strings/<language>.json")
def strings(language: str):
    """The app's texts in one of our languages (the service worker caches it for offline)."""
    if language not in current_app.config["UM2FA"].languages:
        abort(404)
    response = current_app.json.response(strings_of(language))
    response.cache_control.public = True
    response.cache_control.max_age = STRINGS_MAX_AGE
    response.headers["Content-Language"] = language.replace("_", "-")
    return response


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
        "description": _("Approve University of Macau sign-ins and show 2FA passcodes."),
        "start_url": url_for("companion.index"), "scope": url_for("companion.index"),
        "display": "standalone", "orientation": "portrait",
        "background_color": "#f4f6fb", "theme_color": THEME, "icons": icons,
    }
    response = current_app.json.response(body)
    response.mimetype = "application/manifest+json"
    return response
