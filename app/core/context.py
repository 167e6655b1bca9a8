from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from app.config import Settings
from app.core.attempts import Attempts, DatabaseAttempts
from app.core.directory import Directory
from app.core.keys import Keys
from app.core.push_events import NoPushEvents, PushEvents
from app.core.session_store import DatabaseSessions, SessionStore


@dataclass
class Origin:
    """Where an authentication step comes from, for policy and the audit record."""

    door: str
    client_addr: str = ""
    # Door-specific facts for the audit detail, e.g. a RADIUS client's name and NAS address.
    info: str = ""
    # The browser session the step comes from (web doors): actions that end the user's other
    # sessions keep this one.
    session_id: str = field(default="", repr=False)
    # Who acted on the user's behalf (help desk, administrator, API token), for the audit, and
    # their console role (app/core/admins.py); "" for the person themself and the command line.
    actor: str = ""
    actor_role: str = ""


@dataclass
class Context:
    """What a core call needs: the database session, settings, keys and the directory."""

    db: Session
    settings: Settings
    keys: Keys
    directory: Directory
    clock: Callable[[], float] = field(default=time.time)
    push_events: PushEvents = field(default_factory=NoPushEvents)
    sessions: SessionStore = field(default_factory=DatabaseSessions)
    # Failure counters shared by every node (app/core/attempts.py)
    attempts: Attempts = field(default_factory=DatabaseAttempts)

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)
