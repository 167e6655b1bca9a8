""" "This wasn't me": the link in every notice (app/core/notices.py).

Off campus too and without signing in (the person may be anywhere, their password known to
someone else). A GET only shows what happened and the button: mail scanners fetch links, so
nothing changes until the POST (with a CSRF token). Core (app/core/wasnt_me.py) decides.
"""

from __future__ import annotations

from flask import Blueprint, current_app, render_template, session

from app.core import notices, wasnt_me
from app.extensions import core, limiter
from app.web.forms import EmptyForm
from app.web.request_info import origin

bp = Blueprint("wasnt_me", __name__, url_prefix=notices.PATH.rstrip("/"))
DOOR = "notice"

PAGES = {
    wasnt_me.USED: ("This link was used already",
                    "\"This wasn't me\" was already done with this link: nothing more happened "
                    "now. If you still need help, contact the IT help desk."),
    wasnt_me.EXPIRED: ("This link has expired",
                       "Nothing was done. If you did not make this change, contact the IT help "
                       "desk at once."),
    wasnt_me.UNKNOWN: ("This link is not valid",
                       "Nothing was done. Open the link from the email exactly as it was sent, "
                       "or contact the IT help desk."),
}


def _limit() -> str:
    return current_app.config["UM2FA"].ratelimit_recovery_address


def _page(result: wasnt_me.Result, *, status: int = 200, done: bool = False):
    settings = current_app.config["UM2FA"]
    notice = result.notice if result.status == wasnt_me.DONE or done else None
    title, message = PAGES.get(result.status, ("", ""))
    return render_template(
        "wasnt_me/page.html", form=EmptyForm(), status=result.status, done=done,
        title=title, message=message,
        what=notices.what(notice) if notice else "",
        when=notices.local_time(settings, notice.created_at) if notice else "",
        where=notices.where(notice) if notice else "",
        undoes=notices.UNDOES.get(notice.event, "") if notice else ""), status


@bp.get("/<token>")
@limiter.limit(_limit)
def show(token: str):
    result = wasnt_me.check(core.context(), token)
    return _page(result, status=200 if result.status == wasnt_me.DONE else 404)


@bp.post("/<token>")
@limiter.limit(_limit)
def report(token: str):
    form = EmptyForm()
    if not form.validate():
        return _page(wasnt_me.check(core.context(), token), status=400)
    result = wasnt_me.by_link(core.context(), origin(DOOR), token)
    if result.status != wasnt_me.DONE:
        return _page(result, status=409 if result.status == wasnt_me.USED else 404)
    session.clear()  # this browser is signed out too
    return _page(result, done=True)
