"""UM 2FA nodes as separate processes, and a browser that talks to them: shared by the
multi-node, fault, live-upgrade and rate-limit tests (a test module that skips itself at import
when PostgreSQL or Redis is not configured cannot share them).

    schema, url = fresh_schema(pg_url)            # a schema of its own on a shared PostgreSQL
    make_keys(env); copy_keys(first, second)     # the first node's keys, then a copy for another
    server, url = start_web(env, "a", log_dir)   # gunicorn with deploy/gunicorn.conf.py
    node = start_radius(env, instance, "1")      # `um2fa radius`, with --metrics-port
    browser = Browser(url); browser.sign_in("alice")
    kill_node(server)                            # SIGKILL, master and workers: a crashed machine
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid
from pathlib import Path
from urllib.parse import quote

import requests

from tests.conftest import CSRF_RE, PASSWORD
from tests.peers.live import ROOT, UM2FA, Subprocess, free_port
from tests.peers.live_radius import LiveRadius

HX = {"HX-Request": "true"}
NUMBER_RE = re.compile(r'Enter this number in the app:\s*<strong class="passcode-big">(\d{3})<')
DEVICE_RE = re.compile(r'name="device" value="(\d+)"')


def run_cli(env: dict[str, str], *args: str) -> None:
    result = subprocess.run([UM2FA, *args], env=env, capture_output=True, text=True, timeout=60,
                            stdin=subprocess.DEVNULL)
    assert result.returncode == 0, f"um2fa {' '.join(args)}: {result.stderr}"


# What docs/deploy.md ("3. Shared keys") copies from the first node to the others.
KEY_FILES = ("secret_key", "encryption_key", "vapid_private.pem", "saml")


def make_keys(env: dict[str, str]) -> None:
    """The service's keys made on its first node, as an operator does: `um2fa keys generate`."""
    run_cli(env, "keys", "generate")


def copy_keys(source: Path, target: Path) -> None:
    """The keys of the node whose instance directory is `source` copied to another node's, by
    docs/deploy.md's command (tar keeps the files' modes: 0600, saml/ 0700)."""
    target.mkdir(mode=0o700, parents=True, exist_ok=True)
    files = " ".join(KEY_FILES)
    command = (f"set -o pipefail; tar -C {shlex.quote(str(source))} -cf - {files} | "
               f"tar -C {shlex.quote(str(target))} -xpf -")
    subprocess.run(["bash", "-c", command], check=True, timeout=30)


def node_env(env: dict[str, str], instance: Path) -> dict[str, str]:
    """`env` for another node: the same settings, its own instance directory."""
    return {**env, "UM2FA_INSTANCE_DIR": str(instance)}


def start_web(env: dict[str, str], name: str, log_dir: Path) -> tuple[Subprocess, str]:
    """A gunicorn web node (one worker, four threads) on a free port; returns once /healthz
    answers."""
    port = free_port()
    node_env = {**env, "UM2FA_BIND": f"127.0.0.1:{port}", "UM2FA_WORKERS": "1",
                "UM2FA_THREADS": "4"}
    server = Subprocess()
    server.spawn([sys.executable, "-m", "gunicorn", "-c", "deploy/gunicorn.conf.py", "wsgi:app"],
                 env=node_env, log_path=log_dir / f"web-{name}.log",
                 ready_url=f"http://127.0.0.1:{port}/healthz", cwd=ROOT)
    return server, f"http://127.0.0.1:{port}"


def fresh_schema(pg_url: str) -> tuple[str, str]:
    """(schema, database URL whose search_path is that schema), as conftest's fixture does."""
    import psycopg

    schema = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(_plain(pg_url), autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"')
    sep = "&" if "?" in pg_url else "?"
    return schema, f"{pg_url}{sep}options={quote(f'-csearch_path={schema}')}"


def drop_schema(pg_url: str, schema: str) -> None:
    import psycopg

    with psycopg.connect(_plain(pg_url), autocommit=True) as conn:
        conn.execute(f'DROP SCHEMA "{schema}" CASCADE')


def _plain(pg_url: str) -> str:
    return pg_url.replace("postgresql+psycopg://", "postgresql://")


def start_radius(env: dict[str, str], instance: Path, name: str) -> LiveRadius:
    """A `um2fa radius` node on a free port, with its /metrics on another."""
    node = LiveRadius(instance_dir=instance, env=env)
    node.log_path = instance.parent / f"radius-{name}.log"
    node.metrics_port = free_port()  # type: ignore[attr-defined]
    return node.start("--metrics-port", str(node.metrics_port))  # type: ignore[attr-defined]


def radius_metric(node: LiveRadius, name: str) -> float:
    text = requests.get(f"http://127.0.0.1:{node.metrics_port}/metrics",  # type: ignore[attr-defined]
                        timeout=5).text
    match = re.search(rf"^{name}(?:_total)? (\S+)$", text, re.M)
    assert match, f"{name} not in /metrics:\n{text}"
    return float(match.group(1))


def _children(pid: int) -> list[int]:
    """The processes whose parent is `pid` (from /proc: no psutil needed)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        # pid (comm) state ppid ...: comm may hold spaces and parentheses, so split after it
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
            found.append(int(entry.name))
    return found


def kill_node(server: Subprocess) -> None:
    """SIGKILL a node and its worker processes at once, as a machine that crashes: nothing
    is finished, nothing is closed cleanly."""
    process = server.process
    assert process is not None and process.poll() is None, "the node is not running"
    workers = _children(process.pid)
    os.kill(process.pid, signal.SIGKILL)  # the master first, so that it respawns nothing
    for pid in workers:
        with contextlib.suppress(ProcessLookupError):  # gone already
            os.kill(pid, signal.SIGKILL)
    process.wait(timeout=10)


class Browser:
    """A cookie-keeping HTTP client against one node (its cookie can move to another)."""

    def __init__(self, base_url: str, session: requests.Session | None = None) -> None:
        self.base_url = base_url
        self.session = session or requests.Session()

    def on(self, base_url: str) -> Browser:
        """The same browser (same cookies) talking to another node."""
        other = Browser(base_url, requests.Session())
        other.session.cookies.update(self.session.cookies)
        return other

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base_url + path, allow_redirects=False, timeout=10,
                                **kwargs)

    def token(self, path: str) -> str:
        page = self.get(path).text
        match = CSRF_RE.search(page)
        assert match, f"no CSRF token on {path}: {page[:500]}"
        return match.group(1) or match.group(2)

    def post(self, path: str, data: dict, *, token_from: str = "/",
             token: str | None = None) -> requests.Response:
        """POST a form with a CSRF token read from `token_from` (or the `token` given, kept
        from an earlier page)."""
        form = {"csrf_token": token or self.token(token_from), **data}
        return self.session.post(self.base_url + path, data=form, allow_redirects=False,
                                 timeout=10)

    def try_sign_in(self, username: str, password: str = PASSWORD, *,
                    token: str | None = None) -> requests.Response:
        return self.post("/sign-in", {"username": username, "password": password}, token=token)

    def sign_in(self, username: str) -> None:
        response = self.try_sign_in(username)
        assert response.status_code == 302, response.text[:500]

    def passcode(self, code: str) -> requests.Response:
        page = self.get("/prompt?next=done").text
        device = DEVICE_RE.search(page)
        assert device, page[:500]
        return self.post("/prompt", {"next": "done", "device": device.group(1),
                                     "passcode": code}, token_from="/prompt?next=done")

    def signed_in_fully(self) -> bool:
        return "You are all set!" in self.get("/prompt/done").text
