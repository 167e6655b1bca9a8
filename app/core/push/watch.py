"""The push event stream's ticket: who may hear that a push stopped waiting.

A login page waiting for its push is given a token that names the push (its public id and row)
until the push expires, signed with the instance's keyed-hash key (`Keys.keyed_hash`, under a
purpose of its own). The event stream (app/push_wait/events.py) accepts a token only when its
signature matches, compared in constant time, and it has not expired. It then says one thing:
"look now". The page's status route, with the browser's session, is what tells the outcome and
completes the login; the token opens nothing else. So nobody can watch a push they were not
given a token for, and watching one tells nothing but when it stopped waiting.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass

from app.core.keys import Keys
from app.core.push.lifecycle import well_formed
from app.models import PushRequest

PURPOSE = "push-watch"
MAX_LENGTH = 160  # a token longer than any we make is refused unread
_MAC_LENGTH = 32


@dataclass(frozen=True)
class Watch:
    """A push a page may watch: its public id, its row (where the waiter's range scan starts)
    and when the push expires (seconds since the epoch)."""

    public_id: str
    row: int
    expires_at: int


def _payload(public_id: str, row: int, expires_at: int) -> str:
    return f"{public_id}.{row}.{expires_at}"


def watch_token(keys: Keys, request: PushRequest) -> str:
    """The token with which the page that sent `request` may watch it, until it expires."""
    expires_at = int(request.expires_at.timestamp())
    payload = _payload(request.public_id, request.id, expires_at)
    mac = base64.urlsafe_b64encode(keys.keyed_hash(PURPOSE, payload)).rstrip(b"=").decode()
    return f"{payload}.{mac}"


def _number(text: str, digits: int) -> int | None:
    return int(text) if text.isascii() and text.isdigit() and len(text) <= digits else None


def read_watch_token(keys: Keys, token: str, now: float) -> Watch | None:
    """The push a token lets its holder watch, or None: malformed, forged (the signature is
    checked in constant time) or expired."""
    if not isinstance(token, str) or len(token) > MAX_LENGTH or not token.isascii():
        return None
    parts = token.split(".")
    if len(parts) != 4:
        return None
    public_id, row_text, expires_text, mac_text = parts
    row, expires_at = _number(row_text, 18), _number(expires_text, 12)
    if not well_formed(public_id) or row is None or expires_at is None:
        return None
    try:
        mac = base64.urlsafe_b64decode(mac_text + "=" * (-len(mac_text) % 4))
    except (binascii.Error, ValueError):
        return None
    if len(mac) != _MAC_LENGTH:
        return None
    if not keys.matches(PURPOSE, _payload(public_id, row, expires_at), mac):
        return None
    if expires_at <= now:
        return None
    return Watch(public_id, row, expires_at)
