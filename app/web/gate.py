"""On campus or off: the portal answers only to campus networks."""

from __future__ import annotations

from flask import render_template, request, session

from app.web.request_info import on_campus


def campus_only():
    """before_request hook for the portal's blueprints.

    A session that came through the SSO prompt (off campus) may reach the device pages.
    """
    if session.get("via") == "sso" or on_campus():
        return None
    return render_template("off_campus.html"), 403


def portal_campus_only():
    """before_request hook for the portal home: on campus only, even for an SSO session.

    "Sign out" (in every page's header, the SSO pages' too) works from anywhere.
    """
    if request.endpoint == "portal.sign_out" or on_campus():
        return None
    return render_template("off_campus.html"), 403
