"""The VPN modes: what the password field means, and which second factor it carries.

- append (and challenge) mode: the password, optionally followed by the client's delimiter
  and a factor ("secret,123456", "secret,push2"); without one, challenge mode asks for it and
  append mode pushes to the default device (or says what to append). Failed passwords are
  limited (`guessing`); in append mode a wrong password and a wrong or missing factor get the
  same answer (`decision.failure_text`), so it does not tell a guesser the password was right;
- second-factor mode: the VPN checked the password itself; the field holds only the factor.
"""

from __future__ import annotations

import re
from dataclasses import replace

from app.core import devices, passcodes, provisioning, push, signin, users
from app.core.context import Context, Origin
from app.core.factors import FACTORS
from app.core.radius_auth import challenge, guessing, pushes
from app.core.radius_auth.decision import (
    CHALLENGE_GONE,
    AccessRequest,
    CheckedApart,
    Decision,
    Outcome,
    failure_text,
    finish,
)
from app.core.services import CoreServices
from app.core.subjects import Subject
from app.i18n import N_, _
from app.models import User

PUSH_RE = re.compile(r"push([1-9]?)")

RECOVERY_REFUSED = N_("A recovery passcode only adds a new device in the 2FA portal; it does "
                      "not sign in to the VPN. Add a device there, then use its passcode.")


def is_push(word: str) -> bool:
    return PUSH_RE.fullmatch(word.lower()) is not None


def _push_index(word: str) -> int:
    match = PUSH_RE.fullmatch(word.lower())
    return int(match.group(1) or 1) if match else 1


def _is_factor(word: str) -> bool:
    code = passcodes.normalise_passcode(word)
    return is_push(code) or any(factor.accepts(code) for factor in FACTORS.values())


def check_password_apart(services: CoreServices, req: AccessRequest) -> AccessRequest:
    """Before the request's transaction, for a directory outside our database (LDAP, upstream
    RADIUS): the request with the directory's answer for its readings (`checked`), so that
    its transaction holds no LDAP round trip. A username or source that is waiting is not asked
    about (its request goes on unchecked, and is refused in its transaction). The directory's
    attributes are not read for a user whose row is fresh (`provisioning.attributes_fresh`).
    Raises DirectoryUnavailable, and the database's errors (the guessing counters)."""
    with services.context() as ctx:
        waiting, counted = guessing.waiting(ctx, req)
        fresh = not waiting and provisioning.attributes_fresh(ctx, req.username)
    if waiting:
        return req
    checked = signin.check_apart(services.directory, req.username,
                                 [password for password, _factor in readings(req)],
                                 attributes=not fresh)
    return req if checked is None else replace(req, checked=CheckedApart(checked, counted))


def readings(req: AccessRequest) -> list[tuple[str, str | None]]:
    """(password, factor) readings, most specific first: "secret,123456" is first read as the
    password "secret" with a factor, then as the password "secret,123456" alone."""
    password = req.password or ""
    found: list[tuple[str, str | None]] = []
    delimiter = req.client.delimiter
    if delimiter and delimiter in password:
        head, tail = password.rsplit(delimiter, 1)
        if head and _is_factor(tail):
            found.append((head, tail.strip()))
    found.append((password, None))
    return found


def password_first(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """append and challenge modes: the password, optionally followed by a factor. A username or
    source that has guessed too often waits, and its password is not checked meanwhile. The
    directory's answer may have been asked before the transaction (`req.checked`,
    `check_password_apart`, when the username and source were not waiting: then it stands)."""
    if req.checked is not None:
        checked, counted = req.checked.password, req.checked.counted
    else:
        checked = None
        refused, counted = guessing.refusal(ctx, origin, req)
        if refused is not None:
            return refused
    options = readings(req)
    user, index = signin.sign_in_first(ctx, origin, req.username, [p for p, _ in options],
                                       checked)
    if user is None:
        return finish(ctx, origin, req, Outcome.REJECT,
                      failure_text(req, signin.SIGN_IN_FAILED), reason="password",
                      delay=guessing.failed(ctx, req))
    guessing.succeeded(ctx, req, counted)
    factor = options[index][1]
    if factor is None or is_push(factor):  # a passcode is checked on a Subject as it is
        user = _row(ctx, user)
        if user is None:  # removed in the meantime
            return finish(ctx, origin, req, Outcome.REJECT,
                          failure_text(req, signin.SIGN_IN_FAILED), reason="unknown user")
    if factor is not None:
        return second_factor(ctx, origin, req, user, factor)
    if req.client.mode == "challenge":
        return challenge.ask(ctx, origin, req, user)
    pushable = push.push_devices(user)
    if pushable:
        return pushes.send(ctx, origin, req, user, pushable[0])
    # append mode (challenge mode asked above): the same text as a wrong password
    return finish(ctx, origin, req, Outcome.REJECT, failure_text(req, ""), user=user,
                  reason="no second factor given"
                  + ("" if devices.vpn_devices(user) else " (no device)"))


def _row(ctx: Context, user: User | Subject) -> User | None:
    """The user as an ORM row, for the paths that use one (a push, a challenge): sign-in reads
    a Subject when it has nothing to store (`signin.sign_in_first`)."""
    return user if isinstance(user, User) else users.find(ctx, user.username)


def second_factor_only(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """The VPN has checked the password itself; the password field holds only the factor.
    A passcode (the hot path) is checked on the user read without the ORM (subjects.Subject)."""
    factor = (req.password or "").strip()
    user = (users.find(ctx, req.username) if is_push(factor)
            else users.subject(ctx, req.username))
    if user is None:
        return finish(ctx, origin, req, Outcome.REJECT,
                      passcodes.MESSAGES[passcodes.Verdict.WRONG], reason="unknown user")
    return second_factor(ctx, origin, req, user, factor)


def challenge_answer(ctx: Context, origin: Origin, req: AccessRequest) -> Decision:
    """The answer to an Access-Challenge: a factor, for the user the State was issued to. The
    answer to a Verified Push's challenge (its number shown) waits for the phone, unless it is
    a passcode."""
    user, answer, push_id = challenge.redeem(ctx, req)
    if user is None:
        return finish(ctx, origin, req, Outcome.REJECT, _(CHALLENGE_GONE),
                      reason="unknown, expired, used or misbound State")
    if push_id and (not answer or is_push(answer) or not _is_factor(answer)):
        return pushes.follow(ctx, origin, req, user, push_id)
    return second_factor(ctx, origin, req, user, answer)


def second_factor(ctx: Context, origin: Origin, req: AccessRequest, user: User | Subject,
                  factor: str) -> Decision:
    """A push ("push", "pushN": the Nth push device) or a passcode, for a known user."""
    if is_push(factor):
        assert isinstance(user, User)  # pushes are read with the ORM (second_factor_only)
        pushable = push.push_devices(user)
        index = _push_index(factor)
        device = pushable[index - 1] if index <= len(pushable) else None
        return pushes.send(ctx, origin, req, user, device)
    if passcodes.is_recovery_passcode(factor):
        # an enrolment credential only: refused unverified (not spent, not counted)
        return finish(ctx, origin, req, Outcome.REJECT, failure_text(req, _(RECOVERY_REFUSED)),
                      user=user, reason="recovery passcode refused")
    outcome = passcodes.verify_passcode(ctx, origin, user, factor, allow_recovery=False)
    if not outcome.ok:
        return finish(ctx, origin, req, Outcome.REJECT, failure_text(req, outcome.message),
                      user=user,
                      reason=f"{outcome.factor or 'passcode'} "
                             f"{'locked' if outcome.locked else outcome.verdict.value}")
    used = outcome.device.name if outcome.device else _("a passcode")
    return finish(ctx, origin, req, Outcome.ACCEPT, _("Success. Logged in with %(used)s.",
                                                      used=used),
                  user=user, reason=outcome.factor,
                  device=outcome.device.name if outcome.device else "")
