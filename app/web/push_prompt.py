"""'Send me a Push' in a 2FA prompt, shared by the portal and the SSO doors.

The push's id stays in the session, and the status route (`check`, then the door's own
finish) is the only one that tells the outcome and completes the login. The waiting page asks
it when the push event stream (app/push_wait/events.py) says the push stopped waiting: the
page's signed watch token (app/web/push_stream.py) lets it hear that and nothing else. Without
the stream the page asks every second (htmx polling), as it always may.

"Automatically send me a push" (the user's setting, "My Settings & Devices"): `send_at_once`
sends the push while the prompt page is drawn, so the page arrives with the push pending
(polled like a clicked one, or checked with "Check now" without JavaScript).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from math import ceil

from flask import redirect, render_template, session

from app.core import push
from app.extensions import core, htmx
from app.i18n import N_, _
from app.models import Device, PushRequest, User
from app.web import push_stream
from app.web.forms import parse_device_id
from app.web.request_info import origin

SESSION_KEY = "push"
# The prompt (sign-in, then second factor) a push was sent automatically for: once each.
AUTO_KEY = "push_auto"
NO_PUSH = N_("There is no push waiting. Send one, or enter a passcode.")
# HTTP status for each kind of PushError; any other is a 400.
ERROR_STATUS: dict[type[push.PushError], int] = {push.PushBlocked: 403, push.TooManyPushes: 429}


@dataclass
class PushView:
    """What the status region shows.

    status: pending, done (approved and used for this login now), none (no push in this
    session) or why not, as core's push.PushOutcome says: locked, blocked, denied, mismatch,
    fraud, expired, used; or refused (the push the prompt sends as it opens could not go:
    the message says why).
    """

    status: str
    message: str = ""
    device_name: str = ""
    number: str = ""
    seconds_left: int = 0
    state: dict = field(default_factory=dict)
    automatic: bool = False  # sent as the prompt opened ("Automatically send me a push")
    stream: str = ""  # the push event stream's URL with the watch token ("": poll only)


@dataclass(frozen=True)
class Links:
    """A door's URLs for the prompt's methods and the push status region."""

    start: str         # POST: "Send me a Push"
    status: str        # GET: the status route the page asks (on the stream's word, or polling)
    methods: str       # GET: the methods bar for the chosen device (htmx)
    passcode: str      # GET: "Enter a Passcode" without htmx
    passcode_hx: str   # GET: the passcode fragment htmx swaps in
    remember: bool = False  # the prompt has a "Remember me" box (sent along with each poll)
    key_options: str = ""  # POST: "Use your security key": the options (JSON)
    key_verify: str = ""   # POST: its answer (JSON)


def error_status(exc: push.PushError) -> int:
    return next((code for kind, code in ERROR_STATUS.items() if isinstance(exc, kind)), 400)


def chosen_device(user: User, raw: str | int | None) -> Device | None:
    """The device picked in the prompt (one of the user's active ones), else the default."""
    from app.core import devices

    raw = str(raw or "")
    if (device_id := parse_device_id(raw)) is not None:
        found = next((d for d in devices.active_devices(user) if d.id == device_id), None)
        if found is not None:
            return found
    return devices.default_device(user)


def passcode_at_once(user: User) -> bool:
    """A user with no device can only "Enter a Passcode" (a recovery passcode): the prompt
    shows the field at once, with no extra click."""
    from app.core import devices

    return not devices.active_devices(user)


def can_push(user: User, raw_device: str | int | None) -> bool:
    return push.can_push(chosen_device(user, raw_device))


def can_use_key(user: User, raw_device: str | int | None) -> bool:
    """The chosen device is a security key or passkey ("Use your security key")."""
    from app.core import security_keys

    return getattr(chosen_device(user, raw_device), "kind", "") == security_keys.KIND


def has_push_device(user: User) -> bool:
    return bool(push.push_devices(user))


def start(door: str, user: User, raw_device: str, service: str, **state) -> PushView:
    """Send a push to the chosen device; PushError (safe to show) when it cannot go."""
    ctx = core.context()
    device = None
    if raw_device:
        if (device_id := parse_device_id(raw_device)) is None:
            raise push.NotPushable()
        device = ctx.db.get(Device, device_id)
        if device is None or device.user_id != user.id:
            raise push.NotPushable()
    request = push.start(ctx, origin(door), user, device, service=service)
    session[SESSION_KEY] = {"id": request.public_id, "door": door, **state}
    return _pending(request, session[SESSION_KEY])


def send_at_once(door: str, user: User, raw_device: str, service: str,
                 **state) -> PushView | None:
    """ "Automatically send me a push": the view of the push sent as the prompt opens, else
    None (the prompt waits for a click).

    Core says whether this user's prompt sends it (`push.sends_at_once`, for the chosen
    device). A push already waiting in this session is shown, not sent again. Otherwise one
    push per prompt: per sign-in and second factor (a later step-up prompt sends again, a
    reload does not), so a denied, expired or refused push is not sent again by itself: the
    person clicks "Send me a Push". Core's limits hold (lockout, fraud pause, pushes pending):
    a refusal is the view's message."""
    ctx = core.context()
    device = chosen_device(user, raw_device)
    if device is None or not push.sends_at_once(ctx, user, device):
        return None
    if (view := waiting(door, user)) is not None:
        return view
    occasion = f"{door}:{session.get('auth_at')}:{session.get('mfa_at')}"
    if session.get(AUTO_KEY) == occasion:
        return None
    session[AUTO_KEY] = occasion
    try:
        return start(door, user, str(device.id), service, device=str(device.id), auto=True,
                     **state)
    except push.PushError as exc:
        return PushView("refused", str(exc), device.name, state={"device": str(device.id)})


def waiting(door: str, user: User) -> PushView | None:
    """The push this session sent at this door, while it still waits for the phone."""
    state = session.get(SESSION_KEY)
    if not state or state.get("door") != door:
        return None
    ctx = core.context()
    request = push.find(ctx, user, state["id"])
    if request is None or push.status(ctx, user, state["id"]) != "pending":
        return None
    return _pending(request, state)


def _pending(request: PushRequest, state: dict) -> PushView:
    ctx = core.context()
    device = ctx.db.get(Device, request.device_id)
    left = max(0, ceil((request.expires_at - ctx.now()).total_seconds()))
    return PushView("pending", push.MESSAGES["pending"], device.name if device else "",
                    request.number, left, dict(state), automatic=bool(state.get("auto")),
                    stream=push_stream.url_for_push(request))


def check(door: str, user: User) -> PushView:
    """Where this session's push stands (core's `push.finish` decides). An approved push is
    used for this login here, once: the view is "done" only for the request that used it."""
    state = session.get(SESSION_KEY)
    if not state or state.get("door") != door:
        return PushView("none", _(NO_PUSH))
    outcome = push.finish(core.context(), origin(door), user, state["id"])
    if outcome.status == "pending" and outcome.request is not None:
        return _pending(outcome.request, state)
    session.pop(SESSION_KEY, None)
    if outcome.ok:
        return PushView("done", state={**state, "device_id": getattr(outcome.device, "id",
                                                                      None)})
    return PushView(outcome.status, outcome.message,
                    outcome.device.name if outcome.device else "", state=dict(state))


def forget() -> None:
    session.pop(SESSION_KEY, None)


def go_to(target: str):
    """Leave the prompt: the whole page moves, for htmx polls and plain requests alike."""
    if htmx:
        return "", 204, {"HX-Redirect": target}
    return redirect(target)


def poll_response(view: PushView, links: Links):
    """The htmx answer to a status poll: a fresh countdown while pending (it keeps polling; the
    stream, outside it, stays open), else the final message swapped into the status region
    (which ends the polling and the stream)."""
    if view.status == "pending":
        return render_template("prompt/_push_countdown.html", push_view=view, push_links=links)
    page = render_template("prompt/_push_status.html", push_view=view, push_links=links,
                           inner=True)
    return page, 200, {"HX-Retarget": "#push-status", "HX-Reswap": "innerHTML"}
