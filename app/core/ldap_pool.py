"""A bounded pool of open LDAP connections, for app/core/directory_ldap.py, which keeps two:
the service account's searches, and the users' binds (never mixed up: a connection last bound
as a user is only ever used for another user's bind).

At most `size` connections are in use at once (a slot, waited for up to `timeout` seconds);
idle ones are kept open for the next use. The pool opens nothing itself: the directory opens a
connection (TCP, TLS, its bind) when `take` finds none idle, and gives it back when it still
works or closes it when it does not.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator

from ldap3 import Connection
from ldap3.core.exceptions import LDAPException

from app.core.directory import DirectoryUnavailable


class LdapPool:
    def __init__(self, size: int, timeout: float, what: str) -> None:
        self.size, self.timeout, self.what = size, timeout, what
        self._idle: list[Connection] = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(size)
        self.opened = 0  # connections opened so far, for info()

    @contextlib.contextmanager
    def slot(self) -> Iterator[None]:
        """One of the `size` connections may be used in this block; DirectoryUnavailable when
        none is free within the timeout."""
        if not self._slots.acquire(timeout=self.timeout):
            raise DirectoryUnavailable(f"LDAP {self.what} connection pool exhausted")
        try:
            yield
        finally:
            self._slots.release()

    def take(self) -> Connection | None:
        """An idle connection that is still open (the most recently used), or None: then the
        caller opens one (and calls `opening`)."""
        while True:
            with self._lock:
                if not self._idle:
                    return None
                conn = self._idle.pop()
            if not conn.closed:
                return conn
            close(conn)  # ldap3 noticed it was dropped: never reopened behind our back

    def opening(self) -> None:
        with self._lock:
            self.opened += 1

    def give_back(self, conn: Connection) -> None:
        with self._lock:
            self._idle.append(conn)

    def info(self) -> dict[str, int]:
        with self._lock:
            return {"opened": self.opened, "idle": len(self._idle), "size": self.size}

    def forget(self) -> None:
        """After a fork: the parent's connections are not this process's to use or close."""
        self._idle = []
        self._lock = threading.Lock()
        self._slots = threading.BoundedSemaphore(self.size)
        self.opened = 0

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            close(conn)


def close(conn: Connection) -> None:
    with contextlib.suppress(LDAPException, OSError):
        conn.unbind()
