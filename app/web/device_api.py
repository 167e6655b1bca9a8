"""The device API: JSON for the companion app (docs/device-api.md).

Answers on and off campus, without cookies or CSRF tokens: after activation every call is
signed by the device's key (checked by core, `push.authenticate_call`). Errors are JSON
{"error": "<message safe to show>"}, never an HTML page. The message is in the request's
language (the app sends its page's language as Accept-Language); a refused signature also
carries "reason", the same in English, for the app to act on.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import wraps
from typing import Any

from flask import Blueprint, Response, current_app, g, jsonify, request

from app.config import Settings
from app.core import notices, push, wasnt_me, webpush
from app.core.context import Context
from app.extensions import core, csrf
from app.i18n import N_, _
from app.models import Device, PushRequest
from app.web.addresses import is_campus
from app.web.limits import activate_address_limit, address_limit
from app.web.request_info import origin

bp = Blueprint("device_api", __name__, url_prefix="/api/device/v1")
csrf.exempt(bp)

DOOR = "device-api"
# Why "This wasn't me" did nothing (app/core/wasnt_me.py's statuses).
NOT_DONE = {
    wasnt_me.USED: N_("Nothing was done: this notice's \"This wasn't me\" was used already."),
    wasnt_me.EXPIRED: N_("Nothing was done: this notice's \"This wasn't me\" was expired."),
}
NOT_DONE_OTHER = N_("Nothing was done: this notice's \"This wasn't me\" was %(status)s.")
MAX_BODY = 16 * 1024
HEADER_DEVICE = "X-UM2FA-Device"
HEADER_TIMESTAMP = "X-UM2FA-Timestamp"
HEADER_SIGNATURE = "X-UM2FA-Signature"


class BadRequest(ValueError):
    """A request body the API cannot use; the message is safe to show."""


def error(message: str, status: int, **extra: str) -> tuple[Response, int]:
    return jsonify(error=message, **extra), status


def _settings() -> Settings:
    return current_app.config["UM2FA"]


def _ctx() -> Context:
    return core.context()


@bp.before_request
def _limit_body():
    if (request.content_length or 0) > MAX_BODY:
        return error(_("The request body is larger than %(limit)s bytes.", limit=MAX_BODY), 413)
    return None


@bp.errorhandler(BadRequest)
def _bad_request(exc: BadRequest):
    return error(str(exc), 400)


@bp.errorhandler(push.DeviceAuthError)
def _unauthorised(exc: push.DeviceAuthError):
    reason = str(exc)
    return error(_("Not authenticated: %(reason)s.", reason=_(reason)), 401, reason=reason)


@bp.errorhandler(push.UnknownRequest)
def _unknown(exc: push.UnknownRequest):
    return error(str(exc), 404)


@bp.errorhandler(push.AlreadyAnswered)
def _conflict(exc: push.AlreadyAnswered):
    return error(str(exc), 409)


@bp.errorhandler(push.BadAnswerSignature)
def _bad_answer(exc: push.BadAnswerSignature):
    return error(str(exc), 401)


@bp.errorhandler(push.PushError)
def _push_error(exc: push.PushError):
    return error(str(exc), 400)


@bp.errorhandler(webpush.SubscriptionError)
def _subscription_error(exc: webpush.SubscriptionError):
    return error(_("Push subscription refused: %(reason)s.", reason=str(exc)), 400)


# --- request bodies -------------------------------------------------------------------------

def _body() -> dict[str, Any]:
    raw = request.get_data(cache=True)
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, RecursionError) as exc:  # ValueError: also a too-long integer
        raise BadRequest(_("The request body must be JSON.")) from exc
    if not isinstance(data, dict):
        raise BadRequest(_("The request body must be a JSON object."))
    return data


def _text(data: dict[str, Any], name: str, *, max_length: int, required: bool = True) -> str:
    value = data.get(name, None if required else "")
    if not isinstance(value, str) or (required and not value.strip()):
        raise BadRequest(_("\"%(name)s\" must be a non-empty string.", name=name) if required
                         else _("\"%(name)s\" must be a string.", name=name))
    if len(value) > max_length:
        raise BadRequest(_("\"%(name)s\" is too long (at most %(limit)s characters).",
                           name=name, limit=max_length))
    return value


def _subscription(data: dict[str, Any], *, required: bool) -> dict | None:
    if required and "subscription" not in data:
        raise BadRequest(_("\"subscription\" is required (an object, or null to remove it)."))
    value = data.get("subscription")
    if value is not None and not isinstance(value, dict):
        raise BadRequest(_("\"subscription\" must be a PushSubscription object or null."))
    return value


# --- signed calls ---------------------------------------------------------------------------

def _signed_path() -> str:
    query = request.query_string.decode("latin-1")
    return f"{request.path}?{query}" if query else request.path


def signed(view: Callable[..., Any]) -> Callable[..., Any]:
    """The call must carry the device's signature; the device is in g.device."""

    @wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        values = [request.headers.get(name, "").strip()
                  for name in (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE)]
        missing = [name for name, value in zip(
            (HEADER_DEVICE, HEADER_TIMESTAMP, HEADER_SIGNATURE), values, strict=True) if not value]
        if missing:
            raise push.DeviceAuthError(f"missing header {', '.join(missing)}")
        device_id, timestamp, signature = values
        g.device = push.authenticate_call(_ctx(), device_id, timestamp, signature,
                                          request.method, _signed_path(),
                                          request.get_data(cache=True))
        return view(*args, **kwargs)

    return wrapper


def _device() -> Device:
    return g.device


# --- endpoints ------------------------------------------------------------------------------

@bp.get("/config")
def config():
    settings = _settings()
    return jsonify(issuer=settings.issuer,
                   vapid_public_key=webpush.application_server_key(settings),
                   server_time=int(_ctx().clock()))


@bp.post("/activate")
@address_limit(activate_address_limit)
def activate():
    data = _body()
    code = _text(data, "code", max_length=200)
    public_key = _text(data, "public_key", max_length=400)
    proof = _text(data, "proof", max_length=200)
    subscription = _subscription(data, required=False)
    ctx = _ctx()
    done = push.activate(ctx, origin(DOOR), code, public_key, proof, subscription)
    from app.core.factors import totp as totp_factor

    return jsonify(device_id=str(done.device.id), device_name=done.device.name,
                   username=done.device.user.username, issuer=ctx.settings.issuer,
                   totp={"secret": done.totp_secret, "digits": totp_factor.DIGITS,
                         "period": totp_factor.PERIOD, "algorithm": "SHA1"},
                   server_time=int(ctx.clock())), 201


@bp.get("/requests")
@signed
def pending():
    device = _device()
    username = device.user.username
    # push_subscribed: false once a push service said the subscription is gone (404/410), so
    # the app subscribes anew instead of waiting for the browser to change its endpoint.
    return jsonify(requests=[_described(r, username)
                             for r in push.pending_for(_ctx(), device)],
                   push_subscribed=device.push_subscription is not None)


@bp.get("/requests/<public_id>")
@signed
def details(public_id: str):
    ctx, device = _ctx(), _device()
    found = push.request_for_device(ctx, device, public_id)
    state = push.statuses(ctx, [found.public_id])[found.public_id]
    return jsonify({**_described(found, device.user.username), "status": state})


def _described(request_: PushRequest, username: str) -> dict:
    """What the phone shows about a request, with where it comes from in words a person
    knows: `service` (the SP's or the VPN's name) and `campus` (true on campus, false off
    campus, null when the address is unknown)."""
    addr = request_.client_addr or ""
    campus = is_campus(addr, current_app.config["UM2FA"].campus_networks) if addr else None
    return {**push.describe(request_, username), "campus": campus}


@bp.post("/requests/<public_id>/answer")
@signed
def answer(public_id: str):
    data = _body()
    decision = _text(data, "decision", max_length=20)
    number = _text(data, "number", max_length=20, required=False)
    signature = _text(data, "signature", max_length=200)
    if decision not in push.DECISIONS:
        raise BadRequest(_("\"decision\" must be approve, deny or fraud."))
    new = push.answer(_ctx(), origin(DOOR), _device(), public_id, decision, number, signature)
    return jsonify(status=new)


@bp.put("/subscription")
@signed
def subscription():
    value = _subscription(_body(), required=True)
    push.set_subscription(_ctx(), origin(DOOR), _device(), value)
    return jsonify(ok=True)


@bp.get("/notices")
@signed
def notices_list():
    """The user's recent notices (a device added or removed, a recovery passcode issued, the
    account locked), newest first; a Web Push {"type": "notice"} says there is a new one."""
    ctx = _ctx()
    return jsonify(notices=[notices.describe(ctx, n) for n in notices.recent_for(ctx, _device())])


@bp.post("/notices/<notice_id>/wasnt-me")
@signed
def notice_wasnt_me(notice_id: str):
    """ "This wasn't me" from the app: the same as the email's link (once per notice)."""
    known = notice_id.isascii() and notice_id.isdigit() and len(notice_id) <= 18
    result = wasnt_me.by_device(_ctx(), origin(DOOR), _device(), int(notice_id) if known else 0)
    if result.status == wasnt_me.UNKNOWN:
        return error(_("No such notice for this device."), 404)
    if result.status != wasnt_me.DONE:
        return error(_(NOT_DONE.get(result.status, NOT_DONE_OTHER), status=result.status),
                     409)
    return jsonify(status="locked")
