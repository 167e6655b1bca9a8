""" "This wasn't me": the link in every notice (app/core/notices.py).

Off campus too and without signing in (the person may be anywhere, their password known to
someone else). A GET only shows what happened and the button: mail scanners fetch links, so
nothing changes until the POST (with a CSRF token). Core (app/core/wasnt_me.py) decides.
"""

from __future__ import annotations

from flask import Blueprint, render_template, session

from app.core import notices, wasnt_me
from app.extensions import core
from app.i18n import N_, _, local, local_iso
from app.models import Notice
from app.web.forms import EmptyForm
from app.web.limits import address_limit, recovery_address_limit
from app.web.request_info import origin

bp = Blueprint("wasnt_me", __name__, url_prefix=notices.PATH.rstrip("/"))
DOOR = "notice"

PAGES = {
    wasnt_me.USED: (N_("This link was used already"),
                    N_("\"This wasn't me\" was already done with this link: nothing more "
                       "happened now. If you still need help, contact the IT help desk.")),
    wasnt_me.EXPIRED: (N_("This link has expired"),
                       N_("Nothing was done. If you did not make this change, contact the IT "
                          "help desk at once.")),
    wasnt_me.UNKNOWN: (N_("This link is not valid"),
                       N_("Nothing was done. Open the link from the email exactly as it was "
                          "sent, or contact the IT help desk.")),
}

# What the button will do, and what it did: whole sentences per event (word order differs).
OFFERS = {
    notices.RECOVERY_ISSUED: N_("If it was not you, click the button: we will revoke the "
                                "recovery passcode, sign you out everywhere, lock your account "
                                "and alert the IT help desk."),
    notices.DEVICE_ADDED: N_("If it was not you, click the button: we will remove the device, "
                             "sign you out everywhere, lock your account and alert the IT help "
                             "desk."),
}
OFFER = N_("If it was not you, click the button: we will sign you out everywhere, lock your "
           "account and alert the IT help desk.")
DONE = {
    notices.RECOVERY_ISSUED: N_("Thank you. We revoked the recovery passcode, signed you out "
                                "everywhere, locked your account and alerted the IT help desk, "
                                "who will contact you."),
    notices.DEVICE_ADDED: N_("Thank you. We removed the device, signed you out everywhere, "
                             "locked your account and alerted the IT help desk, who will "
                             "contact you."),
}
DONE_DEFAULT = N_("Thank you. We signed you out everywhere, locked your account and alerted "
                  "the IT help desk, who will contact you.")



def _facts(notice: Notice | None) -> dict[str, str]:
    """What happened, when (in local time) and from where; the sentences for its event."""
    if notice is None:
        return {"what": "", "when": "", "when_iso": "", "where": "", "offer": "",
                "done_message": ""}
    return {"what": notices.what(notice), "when": local(notice.created_at),
            "when_iso": local_iso(notice.created_at), "where": notices.where(notice),
            "offer": _(OFFERS.get(notice.event, OFFER)),
            "done_message": _(DONE.get(notice.event, DONE_DEFAULT))}


def _page(result: wasnt_me.Result, *, status: int = 200, done: bool = False):
    notice = result.notice if result.status == wasnt_me.DONE or done else None
    title, message = PAGES.get(result.status, ("", ""))
    return render_template(
        "wasnt_me/page.html", form=EmptyForm(), status=result.status, done=done,
        title=_(title) if title else "", message=_(message) if message else "",
        **_facts(notice)), status


@bp.get("/<token>")
@address_limit(recovery_address_limit)
def show(token: str):
    result = wasnt_me.check(core.context(), token)
    return _page(result, status=200 if result.status == wasnt_me.DONE else 404)


@bp.post("/<token>")
@address_limit(recovery_address_limit)
def report(token: str):
    form = EmptyForm()
    if not form.validate():
        return _page(wasnt_me.check(core.context(), token), status=400)
    result = wasnt_me.by_link(core.context(), origin(DOOR), token)
    if result.status != wasnt_me.DONE:
        return _page(result, status=409 if result.status == wasnt_me.USED else 404)
    session.clear()  # this browser is signed out too
    return _page(result, done=True)
