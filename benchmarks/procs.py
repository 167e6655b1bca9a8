"""The servers the benchmarks start, as processes: a server process and its children (gunicorn's
workers, `um2fa radius --processes N`), their CPU time and memory from /proc, and stopping them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path


def _cpu_ticks(pid: int) -> int | None:
    """User + system CPU time of one process (all its threads) in clock ticks, or None if it is
    gone."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return int(fields[11]) + int(fields[12])


def proc_cpu_seconds(pid: int) -> float | None:
    """User + system CPU time of one process (all its threads), or None if it is gone."""
    ticks = _cpu_ticks(pid)
    return None if ticks is None else ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class Proc:
    name: str
    process: subprocess.Popen
    port: int
    log: Path
    extra: dict = field(default_factory=dict)
    group: bool = False  # started in a session of its own: stop() signals its process group
    stop_timeout: float = 15.0  # after SIGTERM, before SIGKILL
    kill_timeout: float = 5.0

    def pids(self) -> list[int]:
        """The server process and its children (`um2fa radius --processes N` forks N; gunicorn's
        master has its workers)."""
        pid = self.process.pid
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            children = []
        return [pid, *map(int, children)]

    def cpu(self) -> dict[int, float]:
        """CPU seconds so far of each of the server's processes."""
        return {pid: cpu for pid in self.pids() if (cpu := proc_cpu_seconds(pid)) is not None}

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server's processes (all their threads) so far."""
        total = 0
        for pid in self.pids():
            ticks = _cpu_ticks(pid)
            if ticks is not None:
                total += ticks
        return total / os.sysconf("SC_CLK_TCK")

    def rss_mb(self) -> float:
        total = 0
        for pid in self.pids():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            match = re.search(r"VmRSS:\s+(\d+) kB", status)
            total += int(match.group(1)) if match else 0
        return total / 1024

    def _signal(self, sig: int) -> None:
        if self.group:
            os.killpg(self.process.pid, sig)
        else:
            self.process.send_signal(sig)

    def stop(self) -> None:
        if self.process.poll() is None:
            self._signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=self.stop_timeout)
            except subprocess.TimeoutExpired:
                self._signal(signal.SIGKILL)
                self.process.wait(timeout=self.kill_timeout)
