"""`um2fa radius --processes N`: N server processes on one UDP port (SO_REUSEPORT).

Each process is a whole server (event loop, decision thread, password pool, retransmission
cache); the kernel spreads the datagrams over their sockets by a hash of the source and
destination address and port, so all of one NAS socket's packets - and so its retransmissions,
which come from the same address and port - reach the same process and its cache. The hash
only changes when the set of sockets does, so if a process dies the parent stops the others
and exits (the service manager restarts the whole server). Linux only (fork, SO_REUSEPORT).

With SQLite (one writer at a time, and a connection waiting for the write lock sleeps 1-100 ms
between tries) the processes take turns at deciding a batch with an exclusive `flock` on a file
beside the database (`WriteTurns`): a waiting process is woken as soon as the lock is free.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import select
import signal
import socket
import sys
from collections.abc import Callable
from types import TracebackType

log = logging.getLogger("um2fa.radius")

START_TIMEOUT = 30.0


def run(serve_one: Callable[[int, Callable[[str, int], None] | None], None], port: int,
        processes: int) -> int:
    """Fork `processes` children that each call serve_one(port, listening); the first one binds
    `port` (0: a free one) and reports it through `listening`, the others bind the same one.
    Returns the exit status for the parent."""
    if not hasattr(socket, "SO_REUSEPORT"):
        raise OSError("SO_REUSEPORT is not available on this system")
    children: list[int] = []
    read_end, write_end = os.pipe()
    children.append(_fork(lambda: serve_one(port, _reporter(write_end))))
    os.close(write_end)
    bound = _read_port(read_end)
    os.close(read_end)
    if bound is None:
        _stop(children)
        log.error("the first RADIUS process did not start")
        return 1
    children += [_fork(lambda: serve_one(bound, None)) for _ in range(processes - 1)]
    log.info("%d RADIUS processes share UDP port %d (SO_REUSEPORT): %s", processes, bound,
             ", ".join(str(pid) for pid in children))
    return _supervise(children)


class WriteTurns:
    """An exclusive flock on `path`, held around each batch: the RADIUS processes of one SQLite
    database decide their batches in turn. The file is opened once per process (a descriptor
    inherited through fork would share its lock with the parent's)."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> WriteTurns:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def write_turns(database_url: str) -> WriteTurns | None:
    """Turns for an SQLite database file; None for a server database (PostgreSQL's row locks
    let the processes write at once)."""
    from sqlalchemy.engine import make_url

    url = make_url(database_url)
    if url.get_backend_name() != "sqlite" or not url.database or url.database == ":memory:":
        return None
    return WriteTurns(f"{url.database}.radius-turns")


def _fork(job: Callable[[], None]) -> int:
    pid = os.fork()
    if pid == 0:  # the child: run the server, never return into the parent's code
        status = 0
        try:
            job()
        except SystemExit as exc:
            status = exc.code if isinstance(exc.code, int) else 1
        except BaseException:  # noqa: BLE001
            log.exception("RADIUS process %d failed", os.getpid())
            status = 1
        finally:
            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(status)
    return pid


def _reporter(fd: int) -> Callable[[str, int], None]:
    def listening(_host: str, port: int) -> None:
        os.write(fd, f"{port}\n".encode())
        os.close(fd)

    return listening


def _read_port(fd: int) -> int | None:
    ready, _, _ = select.select([fd], [], [], START_TIMEOUT)
    data = os.read(fd, 32) if ready else b""
    return int(data) if data.strip().isdigit() else None


def _stop(children: list[int]) -> None:
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)


def _supervise(children: list[int]) -> int:
    """Forward SIGTERM/SIGINT to the children; if one exits, stop the rest. Waits for all."""
    stopping = False

    def forward(_sig, _frame) -> None:
        nonlocal stopping
        stopping = True
        _stop(children)

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, forward)
    status, alive = 0, set(children)
    while alive:
        try:
            pid, code = os.wait()
        except ChildProcessError:
            break
        except InterruptedError:
            continue
        if pid not in alive:
            continue
        alive.discard(pid)
        exit_code = os.waitstatus_to_exitcode(code)
        if not stopping:
            log.error("RADIUS process %d exited (%d): stopping the others", pid, exit_code)
            stopping = True
            status = 1
            _stop(list(alive))
    return status
