"""A real FreeRADIUS for the upstream-RADIUS tests and the RADIUS benchmark: Debian's
`freeradius` (3.2) in the foreground, from its own configuration in a directory we give it.

`FreeRadius(workdir, users, secret).start()` writes a minimal radiusd.conf (PAP against a users
file of Cleartext-Passwords, one client for 127.0.0.1 with require_message_authenticator = yes,
Status-Server on) and runs `freeradius -f -l stdout` on a free 127.0.0.1 port; `stop()` and
`start()` again keep the port, for the outage tests. The system service and /etc/freeradius are
never touched. `ensure_freeradius()` installs the package with apt-get when it is missing.
"""

from __future__ import annotations

import hmac
import os
import re
import secrets
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

CONF = """\
prefix = /usr
exec_prefix = /usr
sysconfdir = /etc
localstatedir = /var
sbindir = /usr/sbin
name = freeradius
raddbdir = {raddb}
confdir = {raddb}
modconfdir = {raddb}/mods-config
logdir = {raddb}/log
run_dir = {raddb}/run
db_dir = {raddb}
libdir = /usr/lib/freeradius
pidfile = {raddb}/run/freeradius.pid
radacctdir = {raddb}/log/radacct
max_request_time = 30
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
log {{
    destination = stdout
    auth = {auth_log}
    auth_badpass = no
    auth_goodpass = no
}}
security {{
    allow_core_dumps = no
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = 5
    max_servers = 32
    min_spare_servers = 3
    max_spare_servers = 10
    max_requests_per_server = 0
    auto_limit_acct = no
}}
client localhost {{
    ipaddr = 127.0.0.1
    secret = {secret}
    require_message_authenticator = yes
}}
modules {{
    pap {{
    }}
    files {{
        filename = {raddb}/users
    }}
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        files
        pap
    }}
    authenticate {{
        Auth-Type PAP {{
            pap
        }}
    }}
    # 3.2.1 signs only replies that have a Message-Authenticator (3.2.5 signs them all): add one
    # to every reply, as the BlastRADIUS guidance asks, so clients can require it.
    post-auth {{
        update reply {{
            &Message-Authenticator := 0x00
        }}
        Post-Auth-Type REJECT {{
            update reply {{
                &Message-Authenticator := 0x00
            }}
        }}
    }}
}}
"""


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def find_freeradius() -> str | None:
    if binary := shutil.which("freeradius"):
        return binary
    return "/usr/sbin/freeradius" if Path("/usr/sbin/freeradius").exists() else None


def ensure_freeradius() -> str | None:
    """The freeradius binary, installed with apt-get (as root, or with `sudo -n`) if missing;
    None when it cannot be installed. A system service the package starts is stopped."""
    if binary := find_freeradius():
        return binary
    apt = ["apt-get", "install", "-y", "-qq", "--no-install-recommends", "freeradius"]
    update = ["apt-get", "update", "-qq"]
    if os.geteuid() != 0:
        apt, update = ["sudo", "-n", *apt], ["sudo", "-n", *update]
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    if subprocess.run(apt, env=env, capture_output=True, timeout=600).returncode != 0:
        subprocess.run(update, env=env, capture_output=True, timeout=600)
        if subprocess.run(apt, env=env, capture_output=True, timeout=600).returncode != 0:
            return None
    # Debian starts the system service after installing it where it can; it is not ours.
    if shutil.which("systemctl") and Path("/run/systemd/system").exists():
        subprocess.run(["systemctl", "disable", "--now", "freeradius"], capture_output=True,
                       timeout=60)
    return find_freeradius()


def _quoted(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def users_file(users: Mapping[str, str]) -> str:
    return "".join(f"{_quoted(name)} Cleartext-Password := {_quoted(password)}\n"
                   for name, password in users.items())


def status_answered(port: int, secret: bytes, timeout: float = 0.5) -> bool:
    """A Status-Server with a Message-Authenticator gets an answer (the server is up)."""
    header = struct.pack("!BBH", 12, 1, 38)
    authenticator = secrets.token_bytes(16)
    mac = hmac.new(secret, header + authenticator + bytes([80, 18]) + b"\0" * 16, "md5").digest()
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(timeout)
        sock.sendto(header + authenticator + bytes([80, 18]) + mac, ("127.0.0.1", port))
        try:
            return bool(sock.recv(4096))
        except (TimeoutError, ConnectionRefusedError):
            return False


@dataclass
class FreeRadius:
    workdir: Path
    users: Mapping[str, str]
    secret: str
    extra_users: str = ""  # more users-file entries, as written
    auth_log: bool = False  # "Login OK" / "Login incorrect" lines (never the passwords)
    binary: str | None = None
    port: int = 0
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.raddb = self.workdir / "raddb"
        self.log_path = self.workdir / "freeradius.log"

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def _configure(self) -> None:
        for sub in ("log", "run", "mods-config"):
            (self.raddb / sub).mkdir(parents=True, exist_ok=True)
        (self.raddb / "dictionary").write_text("")
        (self.raddb / "radiusd.conf").write_text(CONF.format(
            raddb=self.raddb, port=self.port, secret=_quoted(self.secret),
            auth_log="yes" if self.auth_log else "no"))
        (self.raddb / "users").write_text(users_file(self.users) + self.extra_users)

    def start(self, timeout: float = 60) -> FreeRadius:
        self.binary = self.binary or ensure_freeradius()
        if self.binary is None:
            raise RuntimeError("FreeRADIUS is not installed and could not be installed "
                               "(apt-get install freeradius)")
        self.port = self.port or free_udp_port()
        self._configure()
        with self.log_path.open("a") as log:
            self.process = subprocess.Popen(
                [self.binary, "-f", "-d", str(self.raddb), "-l", "stdout"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"freeradius exited:\n{self.log()[-3000:]}")
            if status_answered(self.port, self.secret.encode()):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"freeradius did not start in {timeout:.0f} s:\n{self.log()[-3000:]}")

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=5)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def version(self) -> str:
        if not self.binary:
            return "?"
        out = subprocess.run([self.binary, "-v"], capture_output=True, text=True,
                             timeout=30).stdout
        match = re.search(r"Version (\S+)", out)
        return match.group(1).rstrip(",") if match else "?"
