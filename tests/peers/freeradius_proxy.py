"""FreeRADIUS 3.2 (Debian's) as the university's RADIUS proxy in front of a UM 2FA RADIUS
server, configured with the files of deploy/freeradius/ - the ones docs/radius.md shows - in a
private directory; the system service and /etc/freeradius are never touched.

`deployed(name, {text: replacement})` reads one of those files and replaces its example
addresses, ports and secrets, each of which must appear exactly once (so the test fails when
the file changes under it). `FreeRadiusProxy(workdir, home_port, home_secret, nas).start()`
writes a radiusd.conf that includes the deployed proxy.conf, clients.conf, radiusd.conf setting
and policy.d/um2fa, calls the policies where docs/radius.md says (authorize, pre-proxy), and
runs `freeradius -f` on a free 127.0.0.1 port.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from tests.peers.freeradius import _quoted, ensure_freeradius, free_udp_port, status_answered

DEPLOY = Path(__file__).resolve().parents[2] / "deploy" / "freeradius"
# the examples in deploy/freeradius/clients.conf: NAS name -> (address, secret)
EXAMPLE_NAS = {"vpn-a": ("198.51.100.11", "change-me-vpn-a-secret"),
               "vpn-b": ("198.51.100.12", "change-me-vpn-b-secret")}
STATUS_SECRET = "status-secret-0123456789"

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
$INCLUDE {raddb}/um2fa-radiusd.conf
cleanup_delay = 5
max_requests = 65536
hostname_lookups = no
proxy_requests = yes
log {{
    destination = stdout
}}
security {{
    max_attributes = 200
    reject_delay = 0
    status_server = yes
}}
thread pool {{
    start_servers = 2
    max_servers = 8
    min_spare_servers = 1
    max_spare_servers = 4
    max_requests_per_server = 0
}}
proxy server {{
    default_fallback = no
}}
$INCLUDE {raddb}/proxy.conf
$INCLUDE {raddb}/clients.conf
client status-check {{
    ipaddr = 127.0.0.1
    secret = {status_secret}
}}
policy {{
    $INCLUDE {raddb}/policy.d/um2fa
}}
modules {{
}}
server default {{
    listen {{
        type = auth
        ipaddr = 127.0.0.1
        port = {port}
    }}
    authorize {{
        um2fa_proxy
    }}
    authenticate {{
    }}
    pre-proxy {{
        um2fa_nas_address
    }}
}}
"""


def deployed(name: str, replacements: Mapping[str, str]) -> str:
    """The file deploy/freeradius/`name` with its examples replaced (each must be there once)."""
    text = (DEPLOY / name).read_text()
    for example, value in replacements.items():
        assert text.count(example) == 1, f"deploy/freeradius/{name}: {example!r} not once"
        text = text.replace(example, value)
    return text


@dataclass
class FreeRadiusProxy:
    workdir: Path
    home_port: int  # the UM 2FA RADIUS server on 127.0.0.1
    home_secret: str
    nas: Mapping[str, tuple[str, str]]  # the NAS of clients.conf: name -> (address, secret)
    port: int = 0
    binary: str | None = None
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.raddb = self.workdir / "raddb"
        self.log_path = self.workdir / "freeradius-proxy.log"

    def _configure(self) -> None:
        for sub in ("log", "run", "policy.d"):
            (self.raddb / sub).mkdir(parents=True, exist_ok=True)
        (self.raddb / "dictionary").write_text("")
        (self.raddb / "proxy.conf").write_text(deployed("proxy.conf", {
            "ipaddr = 192.0.2.10": "ipaddr = 127.0.0.1",
            "port = 1812": f"port = {self.home_port}",
            '"change-me-um2fa-proxy-secret"': _quoted(self.home_secret)}))
        clients = {}
        for name, (address, secret) in self.nas.items():
            example_address, example_secret = EXAMPLE_NAS[name]
            clients[f"ipaddr = {example_address}"] = f"ipaddr = {address}"
            clients[_quoted(example_secret)] = _quoted(secret)
        (self.raddb / "clients.conf").write_text(deployed("clients.conf", clients))
        (self.raddb / "um2fa-radiusd.conf").write_text(deployed("radiusd.conf", {}))
        (self.raddb / "policy.d" / "um2fa").write_text(deployed("policy.d/um2fa", {}))
        (self.raddb / "radiusd.conf").write_text(CONF.format(
            raddb=self.raddb, port=self.port, status_secret=_quoted(STATUS_SECRET)))

    def start(self, timeout: float = 30) -> FreeRadiusProxy:
        self.binary = self.binary or ensure_freeradius()
        if self.binary is None:
            raise RuntimeError("FreeRADIUS is not installed and could not be installed "
                               "(apt-get install freeradius)")
        self.port = self.port or free_udp_port()
        self._configure()
        with self.log_path.open("a") as log:
            # -x: each request's steps in the log (a failing test prints its tail)
            self.process = subprocess.Popen(
                [self.binary, "-f", "-x", "-d", str(self.raddb), "-l", "stdout"],
                stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"freeradius exited:\n{self.log()[-3000:]}")
            if status_answered(self.port, STATUS_SECRET.encode()):
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"freeradius did not start in {timeout:.0f} s:\n{self.log()[-3000:]}")

    def checked_configuration(self) -> str:
        """`freeradius -XC`: the configuration as FreeRADIUS reads it (values it changes are
        reported as 'Ignoring "x = 1", forcing to "x = 2"')."""
        assert self.binary is not None
        result = subprocess.run([self.binary, "-XC", "-d", str(self.raddb)], capture_output=True,
                                text=True, timeout=60, stdin=subprocess.DEVNULL)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr
        return result.stdout

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
