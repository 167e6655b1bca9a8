"""The 2FA portal on campus: sign in with UMPASS, then add or manage devices."""

from __future__ import annotations

from flask import Blueprint, redirect, render_template, url_for

from app.core import devices, signin
from app.extensions import core
from app.i18n import _
from app.web.auth import current_user, end_session, start_session
from app.web.forms import EmptyForm, SignInForm
from app.web.gate import portal_campus_only
from app.web.limits import signin_limits
from app.web.request_info import origin

bp = Blueprint("portal", __name__)
bp.before_request(portal_campus_only)


@bp.get("/")
def index():
    user = current_user()
    if user is None:
        return render_template("portal/sign_in.html", form=SignInForm())
    return render_template("portal/home.html", user=user,
                           devices=devices.active_devices(user), form=EmptyForm())


@bp.post("/sign-in")
@signin_limits()
def sign_in():
    form = SignInForm()
    if not form.validate():
        return render_template("portal/sign_in.html", form=form), 400
    user = signin.sign_in(core.context(), origin(), form.username.data, form.password.data)
    if user is None:
        return render_template("portal/sign_in.html", form=form,
                               error=_(signin.SIGN_IN_FAILED)), 401
    start_session(user, via="portal")
    return redirect(url_for("portal.index"))


@bp.post("/sign-out")
def sign_out():
    end_session()
    return redirect(url_for("portal.index"))
