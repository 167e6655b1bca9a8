"""What a long-running door (the RADIUS server) needs to open a core Context per request,
without Flask: the database, settings, keys, directory, clock and push fan-out. app/bootstrap.py
builds them from the settings, for every door."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from app.config import Settings
from app.core.attempts import Attempts, DatabaseAttempts
from app.core.context import Context
from app.core.directory import Directory
from app.core.keys import Keys
from app.core.push_events import NoPushEvents, PushEvents
from app.core.session_store import DatabaseSessions, SessionStore
from app.db import Database


@dataclass
class CoreServices:
    db: Database
    settings: Settings
    keys: Keys
    directory: Directory
    clock: Callable[[], float] = field(default=time.time)
    push_events: PushEvents = field(default_factory=NoPushEvents)
    sessions: SessionStore = field(default_factory=DatabaseSessions)
    attempts: Attempts = field(default_factory=DatabaseAttempts)

    @contextmanager
    def context(self) -> Iterator[Context]:
        """A Context on a fresh session that commits on success and rolls back on error."""
        with self.db.session() as session:
            yield Context(db=session, settings=self.settings, keys=self.keys,
                          directory=self.directory, clock=self.clock,
                          push_events=self.push_events, sessions=self.sessions,
                          attempts=self.attempts)
