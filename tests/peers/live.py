"""A real UM 2FA server in a subprocess, driven through the `um2fa` command as an operator would."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
UM2FA = str(Path(sys.executable).with_name("um2fa"))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Subprocess:
    """A server process with its output in a log file; `start` returns once `ready_url`
    answers, `stop` ends it."""

    def __init__(self) -> None:
        self.process: subprocess.Popen | None = None
        self._log = None

    def spawn(self, args: list[str], *, env: dict[str, str], log_path: Path, ready_url: str,
              cwd: Path | None = None) -> None:
        self._log = open(log_path, "w")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(args, env=env, cwd=cwd, stdout=self._log,
                                        stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(log_path.read_text())
            try:
                urllib.request.urlopen(ready_url, timeout=1)  # noqa: S310
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{args[0]} did not start in 20 s")

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
        if self._log:
            self._log.close()


@dataclass
class LiveServer(Subprocess):
    instance_dir: Path
    env: dict[str, str]
    port: int = field(default_factory=free_port)

    def __post_init__(self) -> None:
        Subprocess.__init__(self)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        result = subprocess.run([UM2FA, *args], env=self.env, capture_output=True, text=True,
                                timeout=60, stdin=subprocess.DEVNULL)
        if check and result.returncode != 0:
            raise AssertionError(f"um2fa {' '.join(args)} failed: {result.stderr}")
        return result

    def start(self) -> LiveServer:
        self.cli("db", "upgrade")
        self.spawn([UM2FA, "serve", "--host", "127.0.0.1", "--port", str(self.port)],
                   env=self.env, log_path=self.instance_dir / "server.log",
                   ready_url=self.url + "/static/css/site.css")
        return self


def make_live_server(tmp_path: Path, **settings: str) -> LiveServer:
    instance = tmp_path / "instance"
    instance.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    # The `um2fa` script imports the project the .venv was installed from (an editable
    # install): in another git worktree sharing that .venv, the server would run that other
    # checkout's code. PYTHONPATH makes it run this one's.
    env.update({"UM2FA_INSTANCE_DIR": str(instance), "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT),
                                                            env.get("PYTHONPATH")]))})
    env.update({f"UM2FA_{k.upper()}": v for k, v in settings.items()})
    return LiveServer(instance_dir=instance, env=env)
