"""What the VPN door hands the core (`AccessRequest`) and gets back (`Decision`), the texts a
VPN user reads, and `finish`: the one way every mode answers (audited, with the reply
attributes of the user's role on an accept)."""

from __future__ import annotations

import enum
import secrets
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

from app.core import audit
from app.core.attempts import Count
from app.core.context import Context, Origin
from app.core.keys import Keys
from app.core.radius_clients import ClientConfig
from app.core.signin import PasswordCheck
from app.core.subjects import Subject
from app.i18n import N_, _, use_language
from app.models import User

DOOR = "radius"
ACTION = "radius.access"

# Append mode: a wrong password and a wrong or missing factor read the same, so the answer does
# not tell a guesser that the password was right (the audit record says which).
# The Reply-Messages are marked N_ here and translated with _ when a decision is made, in the
# RADIUS client's language (the door sets it: radius/server.py).
APPEND_FAILED = N_("Incorrect password or passcode. Append a 6-digit passcode to your password, "
                   "e.g. password%(d)s123456 (no 2FA device yet? Add one in the 2FA portal, "
                   "with a recovery passcode from the recovery portal).")
CHALLENGE_GONE = N_("This login has expired or was already answered. Please log in again.")
UNAVAILABLE = N_("The 2FA service is temporarily unavailable. Please try again later.")


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
    # the directory's answer for the password, asked before the transaction (append and
    # challenge modes with LDAP or upstream RADIUS: modes.check_password_apart)
    checked: CheckedApart | None = field(default=None, repr=False)


@dataclass(frozen=True)
class CheckedApart:
    """A password asked before the request's transaction, when its username and source were
    not waiting (guessing): the directory's answer, and the username's failure count then."""

    password: PasswordCheck
    counted: Count


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
    delay: float = 0.0  # seconds the door holds this reject (guessing: bounded by the settings)


def speaking(req: AccessRequest, default_language: str) -> AbstractContextManager[None]:
    """Texts made inside the block are in the RADIUS client's language (None: the default).
    Set it in the thread that makes them: a context variable does not cross run_in_executor."""
    return use_language(req.client.language or default_language)


def error_decision(req: AccessRequest, default_language: str) -> Decision:
    """The reject the door sends when deciding failed unexpectedly."""
    with speaking(req, default_language):
        return Decision(Outcome.REJECT, _(UNAVAILABLE), reason="error")


def failure_text(req: AccessRequest, message: str) -> str:
    """What a failed login reads: in append mode `APPEND_FAILED`, one text for a wrong password
    and a wrong or missing factor alike; in the other modes `message`."""
    if req.client.mode == "append" and req.state is None:
        return _(APPEND_FAILED, d=req.client.delimiter)
    return message


def origin_of(req: AccessRequest) -> Origin:
    facts = [f"radius client {req.client.label}"]
    for label, value in (("NAS-IP-Address", req.nas_ip), ("NAS-Identifier", req.nas_identifier),
                         ("Calling-Station-Id", req.calling_station)):
        if value:
            facts.append(f"{label} {value}")
    return Origin(door=DOOR, client_addr=req.source, info="; ".join(facts))


def typed_username(keys: Keys, req: AccessRequest) -> str:
    """The User-Name as the audit records it when no user row stands behind it: a keyed hash,
    never the text (it may be a password typed in the wrong field)."""
    return audit.unknown_username(keys, req.username)


def session_class() -> bytes:
    return b"um2fa:" + secrets.token_hex(16).encode()


def finish(ctx: Context, origin: Origin, req: AccessRequest, outcome: Outcome, message: str,
           *, user: User | Subject | None = None, reason: str = "", device: str = "",
           delay: float = 0.0) -> Decision:
    username = audit.username_of(ctx.keys, user, req.username)
    audit.record(ctx, origin, ACTION, outcome.value, username=username, device=device,
                 detail=reason)
    if outcome is not Outcome.ACCEPT:
        return Decision(outcome, message, reason=reason, delay=delay)
    attributes = ctx.settings.radius_role_attributes.get(user.role, ()) if user else ()
    return Decision(outcome, message, reason=reason, session_class=session_class(),
                    attributes=attributes)


def unavailable(keys: Keys, req: AccessRequest, detail: str, reason: str) -> Decision:
    """Reject because the database or the directory cannot be reached: the audit record goes
    to the log only (the database may not take it). Without the database a known user cannot
    be told from a mistyped password, so the username is the keyed hash for everyone."""
    audit.log_only(origin_of(req), ACTION, "reject", username=typed_username(keys, req),
                   detail=detail)
    return Decision(Outcome.REJECT, _(UNAVAILABLE), reason=reason)
