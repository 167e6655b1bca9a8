"""A private, throwaway PostgreSQL cluster that a test owns and may stop and start at will,
without touching the machine's shared one (port 5432).

    cluster = PgCluster.create()       # initdb in a fresh temporary directory, then start
    cluster.url                        # postgresql://postgres@127.0.0.1:<port>/postgres
    cluster.stop()                     # pg_ctl stop -m fast (or mode="immediate": a crash)
    cluster.start()                    # the same port and data again
    cluster.configure(name="value")    # ALTER SYSTEM SET and reload; reset(name) undoes it
    cluster.cleanup()                  # stop and delete everything

PostgreSQL refuses to run as root, so as root (CI) the binaries run as the `postgres` user
(`runuser`) and the data directory belongs to it; it lives in its own directory under the
system temporary directory, which that user can reach (pytest's tmp_path cannot be). Trust
authentication on 127.0.0.1 and a socket directory inside the cluster's directory: nothing
outside it is used. fsync is off (the cluster is thrown away) but commits still wait for their
WAL to be written, so a committed transaction survives a crash of the server (`stop("immediate")`)
as long as the machine itself stays up.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from tests.peers.live import free_port

PG_ROOT = Path("/usr/lib/postgresql")
RUN_AS = "postgres"


def bin_dir() -> Path | None:
    """The newest installed server's bin directory (Debian's layout), or None."""
    versions = sorted((p for p in PG_ROOT.glob("*/bin") if (p / "pg_ctl").exists()),
                      key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0)
    return versions[-1] if versions else None


def available() -> bool:
    return bin_dir() is not None


@dataclass
class PgCluster:
    base: Path  # the cluster's own temporary directory (data, socket, log)
    port: int
    bin: Path
    user: str | None  # run the binaries as this user (when we are root), else as ourselves

    @classmethod
    def create(cls, *, start: bool = True) -> PgCluster:
        binaries = bin_dir()
        if binaries is None:
            raise RuntimeError(f"no PostgreSQL server under {PG_ROOT}")
        user = RUN_AS if os.geteuid() == 0 else None
        base = Path(tempfile.mkdtemp(prefix="um2fa-pg-"))
        cluster = cls(base=base, port=free_port(), bin=binaries, user=user)
        try:
            if user is not None:
                entry = pwd.getpwnam(user)
                os.chown(base, entry.pw_uid, entry.pw_gid)
            cluster._initdb()
            if start:
                cluster.start()
        except BaseException:
            cluster.cleanup()
            raise
        return cluster

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log_path(self) -> Path:
        return self.base / "postgres.log"

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
        command = [str(self.bin / args[0]), *args[1:]]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                                stdin=subprocess.DEVNULL, cwd=self.base)
        if result.returncode != 0:
            raise RuntimeError(f"{args[0]} failed ({result.returncode}): "
                               f"{result.stdout}{result.stderr}{self._log_tail()}")
        return result

    def _log_tail(self) -> str:
        try:
            return "\n" + self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _initdb(self) -> None:
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust",
                  "--encoding=UTF8", "--locale=C.UTF-8", "--no-sync")
        settings = {
            "listen_addresses": "'127.0.0.1'", "port": str(self.port),
            "unix_socket_directories": f"'{self.base}'", "fsync": "off",
            "full_page_writes": "off", "max_connections": "100", "shared_buffers": "32MB",
            "logging_collector": "off"}
        with open(self.data / "postgresql.conf", "a") as conf:
            conf.writelines(f"{name} = {value}\n" for name, value in settings.items())

    def start(self) -> None:
        self._run("pg_ctl", "start", "-w", "-t", "30", "-D", str(self.data),
                  "-l", str(self.log_path))

    def stop(self, mode: str = "fast") -> None:
        """fast: disconnect the clients and shut down cleanly; immediate: a crash (recovery at
        the next start)."""
        self._run("pg_ctl", "stop", "-w", "-t", "30", "-m", mode, "-D", str(self.data))

    def execute(self, sql: str) -> list[tuple]:
        """One statement, autocommit, as the superuser (for set-up and for watching)."""
        import psycopg

        with psycopg.connect(self.url, autocommit=True, connect_timeout=5) as conn:
            cursor = conn.execute(sql)
            return cursor.fetchall() if cursor.description else []

    def configure(self, **settings: str) -> None:
        """ALTER SYSTEM SET each setting and reload: running sessions see it at once."""
        for name, value in settings.items():
            self.execute(f"ALTER SYSTEM SET {name} = '{value}'")
        self.execute("SELECT pg_reload_conf()")

    def reset(self, *names: str) -> None:
        for name in names:
            self.execute(f"ALTER SYSTEM RESET {name}")
        self.execute("SELECT pg_reload_conf()")

    def running(self) -> bool:
        command = [str(self.bin / "pg_ctl"), "status", "-D", str(self.data)]
        if self.user is not None:
            command = ["runuser", "-u", self.user, "--", *command]
        return subprocess.run(command, capture_output=True, timeout=30,
                              stdin=subprocess.DEVNULL).returncode == 0

    def cleanup(self) -> None:
        try:
            if self.data.exists() and self.running():
                self.stop("immediate")
        finally:
            shutil.rmtree(self.base, ignore_errors=True)
