"""Password guessing at the VPN door: failed passwords are counted per typed username and per
NAS + Calling-Station-Id (app/core/attempts.py: Redis or the database, shared by every node).
Past a key's limit it waits, progressively longer: `backoff` seconds after the failure that
reached the limit, twice that after the next, and so on, at most the window. While a key waits,
its requests are rejected at once, without checking the password, with a Reply-Message that says
how long to wait; the door holds such a reject (and a failure past the limit) a little, at most
`radius_guess_max_delay_seconds`, on its event loop. A right password forgets the username's
count; the source's count is only forgotten with time (a guesser with one good account must
not clear it).

Another user on the same NAS has a count of their own; the source's limit is higher than a
user's, so one person's typos never lock out the others behind the same address.
"""

from __future__ import annotations

import math

from app.core import users
from app.core.attempts import Count
from app.core.context import Context, Origin
from app.core.radius_auth.decision import AccessRequest, Decision, Outcome, finish
from app.i18n import N_, _, ngettext

WAIT = N_("Too many failed attempts. Wait %(wait)s and try again.")
TOLERANCE = 0.001  # seconds: the database keeps times to the microsecond


def wait_text(seconds: float) -> str:
    whole = max(1, math.ceil(seconds - TOLERANCE))
    if whole < 120:
        return ngettext("%(num)d second", "%(num)d seconds", whole)
    return ngettext("%(num)d minute", "%(num)d minutes", math.ceil(whole / 60))


def _keys(ctx: Context, req: AccessRequest) -> list[tuple[str, int, str]]:
    """(counter key, limit, what it counts) for this request."""
    settings = ctx.settings
    found = [(f"radius-user:{req.username.strip().lower()[:64]}",
              settings.radius_guess_user_limit, "user")]
    if req.calling_station:  # without it, only the username is counted (see docs/radius.md)
        found.append((f"radius-source:{req.client.label}|{req.source}|{req.calling_station}",
                      settings.radius_guess_source_limit, "NAS and Calling-Station-Id"))
    return found


def _wait(ctx: Context, count: Count, limit: int) -> float:
    """How long after its last failure a counter past its limit waits (0: not past it)."""
    if count.failures < limit:
        return 0.0
    settings = ctx.settings
    return float(min(settings.radius_guess_backoff_seconds * 2 ** min(count.failures - limit, 30),
                     settings.radius_guess_window_seconds))


def _left(ctx: Context, req: AccessRequest) -> tuple[float, str, Count]:
    """How long the request's username or source still waits (0: not), which one, and the
    username's count."""
    keys = _keys(ctx, req)
    counts = ctx.attempts.get(ctx, [key for key, _limit, _what in keys])
    now = ctx.clock()
    left, what = max(((count.last + wait - now) if (wait := _wait(ctx, count, limit)) else 0.0,
                      what) for (_key, limit, what), count in zip(keys, counts, strict=True))
    return left, what, counts[0]


def waiting(ctx: Context, req: AccessRequest) -> tuple[bool, Count]:
    """Whether the request's username or source is waiting (its password is not checked), and
    the username's count (for `succeeded`)."""
    left, _what, counted = _left(ctx, req)
    return left > TOLERANCE, counted


def refusal(ctx: Context, origin: Origin,
            req: AccessRequest) -> tuple[Decision | None, Count]:
    """The reject for a request whose username or source is waiting, or None to go on and
    check the password; and the username's count (for `succeeded`)."""
    left, what, counted = _left(ctx, req)
    if left <= TOLERANCE:
        return None, counted
    # the user row only names the audit record (known users by name, others as a keyed hash)
    return finish(ctx, origin, req, Outcome.REJECT, _(WAIT, wait=wait_text(left)),
                  user=users.find(ctx, req.username),
                  reason=f"too many failed passwords ({what}): password not checked",
                  delay=min(left, ctx.settings.radius_guess_max_delay_seconds)), counted


def failed(ctx: Context, req: AccessRequest) -> float:
    """Count a wrong password; how long the door holds its reject (0 before the limit)."""
    keys = _keys(ctx, req)
    counts = ctx.attempts.add(ctx, [key for key, _limit, _what in keys],
                              ctx.settings.radius_guess_window_seconds)
    wait = max(_wait(ctx, count, limit)
               for (_key, limit, _what), count in zip(keys, counts, strict=True))
    return min(wait, ctx.settings.radius_guess_max_delay_seconds)


def succeeded(ctx: Context, req: AccessRequest, counted: Count) -> None:
    """A right password: the username's count starts again. `counted` is what `refusal` read:
    a username without failures then has nothing to forget (no write; a failure counted by
    another request since then stays counted)."""
    if counted.failures:
        ctx.attempts.clear(ctx, _keys(ctx, req)[0][0])
