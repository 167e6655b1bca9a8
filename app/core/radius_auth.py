"""VPN logins: what an Access-Request means for the password and the second factor.

The RADIUS door (radius/) decodes a packet into an `AccessRequest`, calls `decide` in a worker
thread and encodes the `Decision`. Everything about modes, the delimiter, factors, challenge
State, push and fail modes is decided here, with the same sign-in, lockout, replay and audit
as the web doors (app.core.prompt). Nothing here imports pyrad.

Push: `_push` starts the push in core (one per login: the door answers retransmissions from
its cache) and returns a Decision whose outcome is `Outcome.PENDING` with the push id; the door
then waits for the answer on its event loop, not in a thread, up to the client's push timeout,
and calls `finish_push` for the final decision. A VPN client has no screen for a Verified Push
number, so VPN pushes are plain approve/deny (the phone says it is a VPN login).
"""

from __future__ import annotations

import enum
import json
import logging
import re
import secrets
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import delete, select, update

from app.config import ConfigError, Settings
from app.core import audit, devices, prompt, push, users
from app.core.context import Context, Origin
from app.core.directory import DirectoryUnavailable
from app.core.factors import FACTORS
from app.core.radius_clients import ClientConfig
from app.core.services import CoreServices
from app.core.users import Subject
from app.db import UNAVAILABLE as DATABASE_UNAVAILABLE
from app.models import Device, PushRequest, RadiusChallenge, User

log = logging.getLogger("um2fa.radius")

DOOR = "radius"
ACTION = "radius.access"
CHALLENGE_TTL_SECONDS = 300
STATE_PURPOSE = "radius-state"
PUSH_RE = re.compile(r"push([1-9]?)")

PASSCODE_EXAMPLE = "e.g. password{d}123456"
PUSH_UNAVAILABLE = ("You have no device that can receive a push; append your 6-digit "
                    "passcode, " + PASSCODE_EXAMPLE)
PUSH_UNAVAILABLE_ALONE = "You have no device that can receive a push; enter your 6-digit passcode."
PUSH_SENT = "Push sent. Approve it in the UM 2FA app."
PASSCODE_NEEDED = ("A second factor is needed: append your 6-digit passcode to your password, "
                   + PASSCODE_EXAMPLE)
NO_DEVICE = ("You have no 2FA device yet: add one in the 2FA portal, or append a recovery "
             "passcode to your password, e.g. password{d}123456789")
CHALLENGE_GONE = "This login has expired or was already answered. Please log in again."
PAP_ONLY = "Only PAP is supported: set the VPN to send the password with PAP."
UNAVAILABLE = "The 2FA service is temporarily unavailable. Please try again later."
DEGRADED = "Signed in with your password only: the 2FA service is temporarily unavailable."


class Outcome(enum.Enum):
    ACCEPT = "accept"
    REJECT = "reject"
    CHALLENGE = "challenge"
    PENDING = "pending"  # a push was sent: the door waits for the answer (never sent as is)


@dataclass(frozen=True)
class AccessRequest:
    """A decoded PAP Access-Request from a known client whose packet has been authenticated."""

    client: ClientConfig
    source: str
    username: str
    password: str | None = field(default=None, repr=False)
    state: bytes | None = None
    nas_ip: str = ""
    nas_identifier: str = ""
    calling_station: str = ""


@dataclass(frozen=True)
class Decision:
    outcome: Outcome
    message: str
    reason: str = ""
    state: bytes | None = None
    session_class: bytes | None = None
    attributes: tuple[tuple[str, str], ...] = ()
    push_id: str = ""
    push_row: int = 0  # the push request's row id (the door's poller scans from the lowest)
    push_timeout: int = 0


def origin_of(req: AccessRequest) -> Origin:
    facts = [f"radius client {req.client.name}"]
    for label, value in (("NAS-IP-Address", req.nas_ip), ("NAS-Identifier", req.nas_identifier),
                         ("Calling-Station-Id", req.calling_station)):
        if value:
            facts.append(f"{label} {value}")
    return Origin(door=DOOR, client_addr=req.source, info="; ".join(facts))


# --- entry points ---------------------------------------------------------------------------

def decide(services: CoreServices, req: AccessRequest) -> Decision:
    """Decide one Access-Request in its own transaction; the client's fail mode answers when
    the database cannot be reached."""
    try:
        with services.context() as ctx:
            return authenticate(ctx, req)
    except DATABASE_UNAVAILABLE as exc:
        cause = exc.orig if getattr(exc, "orig", None) is not None else exc
        log.error("database unavailable for a RADIUS decision: %s: %s", type(cause).__name__,
                  str(cause).splitlines()[0][:200] if str(cause) else "")
        return database_unavailable(services, req)
    except DirectoryUnavailable as exc:
        log.error("directory unavailable for a RADIUS decision: %s", exc)
        audit.log_only(origin_of(req), ACTION, "reject",
                       username=req.username.strip().lower()[:64],
                       detail="directory unavailable")
        return Decision(Outcome.REJECT, UNAVAILABLE, reason="directory unavailable")


def verifies_password(req: AccessRequest) -> bool:
    """Whether deciding `req` checks a password (argon2: a third of a second of CPU) or not
    (second-factor-only mode, a challenge answer): the door decides the latter in batches."""
    return req.password is not None and req.state is None and req.client.mode != "second-factor"


def decide_many(services: CoreServices, requests: list[AccessRequest]) -> list[Decision]:
    """Decide requests that arrived together in one transaction (group commit): one commit, and
    the audit records in one INSERT, instead of one of each per request. The door answers only
    after this returns, so nothing is answered that was not committed.

    The requests see each other's writes in order, as if decided one after the other: a TOTP
    code used twice in a batch is accepted once and refused as a replay once (the step claim
    is one conditional UPDATE). If anything fails, the batch is rolled back and every request
    is decided again in its own transaction (`decide`), so one request's error never costs the
    others their answer; if the database is unreachable, each gets its client's fail mode."""
    if len(requests) == 1:
        return [decide(services, requests[0])]
    try:
        with services.context() as ctx:
            decisions = []
            for req in requests:
                decisions.append(authenticate(ctx, req))
                if ctx.db.identity_map or ctx.db.new:
                    # the ORM paths (a challenge answer, append mode) must not see another
                    # request's objects as they were before its plain UPDATEs
                    ctx.db.flush()
                    ctx.db.expire_all()
            return decisions
    except DATABASE_UNAVAILABLE as exc:
        cause = exc.orig if getattr(exc, "orig", None) is not None else exc
        log.error("database unavailable for %d RADIUS decisions: %s: %s", len(requests),
                  type(cause).__name__, str(cause).splitlines()[0][:200] if str(cause) else "")
        return [database_unavailable(services, req) for req in requests]
    except Exception:  # noqa: BLE001 - decided again one by one below
        log.exception("a batch of %d RADIUS decisions failed; deciding them one by one",
                      len(requests))
    return [_decide_or_error(services, req) for req in requests]


def _decide_or_error(services: CoreServices, req: AccessRequest) -> Decision:
    try:
        return decide(services, req)
    except Exception:  # noqa: BLE001 - answer, and keep the traceback in the log
        log.exception("error deciding an Access-Request from client %s", req.client.name)
        return Decision(Outcome.REJECT, UNAVAILABLE, reason="error")


def authenticate(ctx: Context, req: AccessRequest) -> Decision:
    origin = origin_of(req)
    if req.password is None:
        return _finish(ctx, origin, req, Outcome.REJECT, PAP_ONLY, reason="no User-Password")
    if req.state is not None:
        return _answer_challenge(ctx, origin, req)
    if req.client.mode == "second-factor":
        return _second_factor_only(ctx, origin, req)
    return _password_first(ctx, origin, req)


def database_unavailable(services: CoreServices, req: AccessRequest) -> Decision:
    """Fail mode. secure: reject. safe: accept a correct password alone, audited loudly to the
    log (the database cannot take the record). A directory that keeps its passwords in the
    database (the local one) cannot check them now, so safe mode rejects with it too."""
    origin = origin_of(req)
    username = req.username.strip().lower()[:64]
    if (req.client.fail_mode == "safe" and req.password is not None
            and req.client.mode != "second-factor"):
        readings = [password for password, _factor in _readings(req)]
        try:
            correct = any(services.directory.check_password(req.username, None, p)
                          for p in readings)
        except DirectoryUnavailable:
            correct = False
        if correct:
            audit.log_only(origin, ACTION, "accept", username=username, level=logging.ERROR,
                           detail="FAIL-SAFE: database unreachable, password only, "
                                  "no second factor")
            return Decision(Outcome.ACCEPT, DEGRADED, reason="fail-safe",
                            session_class=_session_class())
    audit.log_only(origin, ACTION, "reject", username=username,
                   detail=f"database unreachable (fail mode {req.client.fail_mode})")
    return Decision(Outcome.REJECT, UNAVAILABLE, reason="database unavailable")


def purge_challenges(ctx: Context) -> int:
    """Delete challenge States that expired a minute ago or more."""
    cutoff = ctx.now() - timedelta(seconds=60)
    return ctx.db.execute(delete(RadiusChallenge).where(RadiusChallenge.expires_at < cutoff)
                          .execution_options(synchronize_session=False)).rowcount or 0


def role_attributes(settings: Settings) -> dict[str, tuple[tuple[str, str], ...]]:
    """Reply attributes per role, from `radius_role_attributes` in the settings (a TOML table or
    a JSON object in UM2FA_RADIUS_ROLE_ATTRIBUTES), e.g. {"staff": {"Filter-Id": "staff"}}."""
    raw: Any = settings.extra.get("radius_role_attributes") or {}
    if isinstance(raw, str):
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise ConfigError("UM2FA_RADIUS_ROLE_ATTRIBUTES is not valid JSON") from exc
    if not isinstance(raw, dict):
        raise ConfigError("radius_role_attributes must map roles to attribute tables")
    table: dict[str, tuple[tuple[str, str], ...]] = {}
    for role, attrs in raw.items():
        if not isinstance(attrs, dict):
            raise ConfigError(f"radius_role_attributes.{role} must be a table of attributes")
        pairs = []
        for name, value in attrs.items():
            for item in value if isinstance(value, list) else [value]:
                if not isinstance(item, str | int) or isinstance(item, bool):
                    raise ConfigError(f"radius_role_attributes.{role}.{name} must be text or a "
                                      "number (or a list of them)")
                pairs.append((str(name), str(item)))
        table[str(role)] = tuple(pairs)
    return table


# --- reading what the user typed ------------------------------------------------------------

def _is_push(word: str) -> bool:
    return PUSH_RE.fullmatch(word.lower()) is not None


def _push_index(word: str) -> int:
    match = PUSH_RE.fullmatch(word.lower())
    return int(match.group(1) or 1) if match else 1


def _is_factor(word: str) -> bool:
    code = prompt.normalise_passcode(word)
    return _is_push(code) or any(factor.accepts(code) for factor in FACTORS.values())


def _readings(req: AccessRequest) -> list[tuple[str, str | None]]:
    """(password, factor) readings, most specific first: "secret,123456" is first read as the
    password "secret" with a factor, then as the password "secret,123456" alone."""
    password = req.password or ""
    readings: list[tuple[str, str | None]] = []
    delimiter = req.client.delimiter
    if delimiter and delimiter in password:
        head, tail = password.rsplit(delimiter, 1)
        if head and _is_factor(tail):
            readings.append((head, tail.strip()))
    readings.append((password, None))
    return readings


# --- the modes ------------------------------------------------------------------------------

def _password_first(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """append and challenge modes: the password, optionally followed by a factor."""
    readings = _readings(req)
    user, index = prompt.sign_in_first(ctx, origin, req.username, [p for p, _ in readings])
    if user is None:
        return _finish(ctx, origin, req, Outcome.REJECT, prompt.SIGN_IN_FAILED,
                       reason="password")
    factor = readings[index][1]
    if factor is not None:
        return _factor(ctx, origin, req, user, factor)
    if req.client.mode == "challenge":
        return _challenge(ctx, origin, req, user)
    pushable = _push_devices(user)
    if pushable:
        return _push(ctx, origin, req, user, pushable[0])
    hint = PASSCODE_NEEDED if devices.active_devices(user) else NO_DEVICE
    return _finish(ctx, origin, req, Outcome.REJECT, hint.format(d=req.client.delimiter),
                   user=user, reason="no second factor given")


def _second_factor_only(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """The VPN has checked the password itself; the password field holds only the factor.
    A passcode (the hot path) is checked on the user read without the ORM (users.Subject)."""
    factor = (req.password or "").strip()
    user = (users.find(ctx, req.username) if _is_push(factor)
            else users.subject(ctx, req.username))
    if user is None:
        return _finish(ctx, origin, req, Outcome.REJECT, prompt.MESSAGES[prompt.Verdict.WRONG],
                       reason="unknown user")
    return _factor(ctx, origin, req, user, factor)


def _factor(ctx: Context, origin: Origin, req: AccessRequest, user: User | Subject,
            factor: str) -> Decision:
    if _is_push(factor):
        pushable = _push_devices(user)
        index = _push_index(factor)
        device = pushable[index - 1] if index <= len(pushable) else None
        return _push(ctx, origin, req, user, device)
    outcome = prompt.verify_passcode(ctx, origin, user, factor)
    if not outcome.ok:
        return _finish(ctx, origin, req, Outcome.REJECT, outcome.message, user=user,
                       reason=f"{outcome.factor or 'passcode'} "
                              f"{'locked' if outcome.locked else outcome.verdict.value}")
    used = outcome.device.name if outcome.device else "a recovery passcode"
    return _finish(ctx, origin, req, Outcome.ACCEPT, f"Success. Logged in with {used}.",
                   user=user, reason=outcome.factor,
                   device=outcome.device.name if outcome.device else "")


def _push_devices(user: User) -> list[Device]:
    return push.push_devices(user)


def _push(ctx: Context, origin: Origin, req: AccessRequest, user: User,
          device: Device | None) -> Decision:
    """Send the push; the door waits for its answer and then calls `finish_push`."""
    if device is None:
        message = (PUSH_UNAVAILABLE.format(d=req.client.delimiter)
                   if req.client.mode == "append" else PUSH_UNAVAILABLE_ALONE)
        return _finish(ctx, origin, req, Outcome.REJECT, message, user=user,
                       reason="no push device")
    try:
        request = push.start(ctx, origin, user, device, service=f"VPN ({req.client.name})",
                             timeout=req.client.push_timeout, verified=False)
    except push.PushError as exc:
        return _finish(ctx, origin, req, Outcome.REJECT, str(exc), user=user,
                       reason="push refused")
    return Decision(Outcome.PENDING, PUSH_SENT, reason="push sent", push_id=request.public_id,
                    push_row=request.id, push_timeout=req.client.push_timeout)


def push_answers(services: CoreServices, since_row: int) -> dict[str, str]:
    """Pushes from row `since_row` on that are no longer pending (answered, expired by a
    login's wait, used): what the door's poller needs, at a cost that does not grow with the
    number of logins waiting (the pending rows are skipped inside the database, by a primary
    key range scan, and never fetched)."""
    with services.context() as ctx:
        rows = ctx.db.execute(select(PushRequest.public_id, PushRequest.status)
                              .where(PushRequest.id >= since_row,
                                     PushRequest.status != "pending")).all()
    return dict(rows)


def finish_push(services: CoreServices, req: AccessRequest, push_id: str) -> Decision:
    """The final answer to a login that waited for a push: accept once if it was approved
    (used up here, so one approval admits one login), else reject with why."""
    try:
        with services.context() as ctx:
            origin = origin_of(req)
            user = users.find(ctx, req.username)
            if user is None:
                return _finish(ctx, origin, req, Outcome.REJECT, CHALLENGE_GONE,
                               reason="push: user gone")
            request = push.find(ctx, user, push_id)
            if push.complete(ctx, origin, user, push_id):
                device = ctx.db.get(Device, request.device_id) if request else None
                name = device.name if device else "push"
                return _finish(ctx, origin, req, Outcome.ACCEPT,
                               f"Success. Logged in with a push to {name}.", user=user,
                               reason="push", device=name)
            status = push.status(ctx, user, push_id)
            if user.is_locked:
                message = prompt.LOCKED_MESSAGE
            elif push.is_blocked(ctx, user) and status != "fraud":
                message = push.BLOCKED
            else:
                message = push.MESSAGES.get(status, push.MESSAGES["expired"])
            if status == "pending":  # the wait ended first: expire it, it can no longer help
                message = push.MESSAGES["expired"]
                push.expire(ctx, push_id)
                status = "expired"
            return _finish(ctx, origin, req, Outcome.REJECT, message, user=user,
                           reason=f"push {status}")
    except DATABASE_UNAVAILABLE as exc:
        log.error("database unavailable for a RADIUS push answer: %s", type(exc).__name__)
        audit.log_only(origin_of(req), ACTION, "reject",
                       username=req.username.strip().lower()[:64],
                       detail="database unreachable while finishing a push")
        return Decision(Outcome.REJECT, UNAVAILABLE, reason="database unavailable")


# --- challenge mode -------------------------------------------------------------------------

def _state_hash(ctx: Context, state: bytes) -> bytes:
    return ctx.keys.keyed_hash(STATE_PURPOSE, state.hex())


def _challenge_prompt(user: User) -> str:
    names = [d.name for d in devices.active_devices(user)]
    if not names:
        return ("Enter a 9-digit recovery passcode. (You have no 2FA device yet: add one in the "
                "2FA portal.)")
    pushes = [f"{i} to push to {d.name}" for i, d in enumerate(_push_devices(user), 1)]
    if pushes:
        return (f"Enter a passcode or {', '.join(pushes)} (6-digit passcode from "
                f"{', '.join(names)}, or a 9-digit recovery passcode).")
    return (f"Enter a 6-digit passcode from {', '.join(names)}, or a 9-digit recovery "
            "passcode.")


def _challenge(ctx: Context, origin: Origin, req: AccessRequest, user: User) -> Decision:
    state = secrets.token_bytes(16)
    now = ctx.now()
    ctx.db.add(RadiusChallenge(state_hash=_state_hash(ctx, state), user_id=user.id,
                               client_name=req.client.name, created_at=now,
                               expires_at=now + timedelta(seconds=CHALLENGE_TTL_SECONDS)))
    audit.record(ctx, origin, ACTION, "challenge", username=user.username,
                 detail="password ok, second factor asked")
    return Decision(Outcome.CHALLENGE, _challenge_prompt(user), reason="challenge",
                    state=state)


def _answer_challenge(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """The answer to an Access-Challenge: the State must be ours, unexpired, unused, and
    issued to this user through this client. It is used up whatever the answer."""
    now = ctx.now()
    row = ctx.db.scalar(select(RadiusChallenge).where(
        RadiusChallenge.state_hash == _state_hash(ctx, req.state or b"")))
    user = ctx.db.get(User, row.user_id) if row is not None else None
    valid = (row is not None and user is not None and row.client_name == req.client.name
             and user.username == req.username.strip().lower() and row.expires_at > now)
    if valid:
        valid = ctx.db.execute(
            update(RadiusChallenge)
            .where(RadiusChallenge.id == row.id, RadiusChallenge.used_at.is_(None))
            .values(used_at=now).execution_options(synchronize_session=False)).rowcount == 1
    if not valid or user is None:
        return _finish(ctx, origin, req, Outcome.REJECT, CHALLENGE_GONE,
                       reason="unknown, expired, used or misbound State")
    answer = (req.password or "").strip()
    if answer.isdigit() and len(answer) == 1:
        answer = f"push{answer}"
    return _factor(ctx, origin, req, user, answer)


# --- the answer -----------------------------------------------------------------------------

def _session_class() -> bytes:
    return b"um2fa:" + secrets.token_hex(16).encode()


def _finish(ctx: Context, origin: Origin, req: AccessRequest, outcome: Outcome, message: str,
            *, user: User | Subject | None = None, reason: str = "", device: str = "") -> Decision:
    username = user.username if user else req.username.strip().lower()[:64]
    audit.record(ctx, origin, ACTION, outcome.value, username=username, device=device,
                 detail=reason)
    if outcome is not Outcome.ACCEPT:
        return Decision(outcome, message, reason=reason)
    attributes = role_attributes(ctx.settings).get(user.role, ()) if user else ()
    return Decision(outcome, message, reason=reason, session_class=_session_class(),
                    attributes=attributes)
