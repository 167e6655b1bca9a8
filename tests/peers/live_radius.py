"""`um2fa radius` in a subprocess on 127.0.0.1 (a free UDP port chosen by the server), and the
clients that talk to it: pyrad's, radclient and radtest."""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from pyrad import packet as rp
from pyrad.client import Client, Timeout

from radius.translate import load_dictionary
from tests.peers.live import UM2FA

CHECKOUT = Path(__file__).resolve().parents[2]  # the subprocess runs this checkout's code

LISTENING = re.compile(r"listening on 127\.0\.0\.1:(\d+)")
DICTIONARY = load_dictionary()


@dataclass
class LiveRadius:
    instance_dir: Path
    env: dict[str, str]
    port: int = 0
    process: subprocess.Popen | None = None
    log_path: Path = field(init=False)

    def __post_init__(self) -> None:
        self.log_path = self.instance_dir / "radius.log"

    def start(self, *args: str) -> LiveRadius:
        log = open(self.log_path, "w")  # noqa: SIM115 - closed in stop()
        self._log = log
        self.process = subprocess.Popen(
            [UM2FA, "radius", "--host", "127.0.0.1", "--port", "0", "--refresh", "1", *args],
            env=self.env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"um2fa radius exited:\n{self.log()}")
            match = LISTENING.search(self.log())
            if match:
                self.port = int(match.group(1))
                return self
            time.sleep(0.05)
        raise AssertionError(f"um2fa radius did not start in 30 s:\n{self.log()}")

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        if getattr(self, "_log", None):
            self._log.close()

    # --- pyrad's client -------------------------------------------------------------------

    def client(self, secret: str, source: str = "127.0.0.1", timeout: float = 3.0) -> Client:
        client = Client(server="127.0.0.1", authport=self.port, secret=secret.encode(),
                        dict=DICTIONARY, retries=1, timeout=timeout, enforce_ma=True)
        client.bind((source, 0))
        return client

    def ask(self, username: str, password: str, *, secret: str, source: str = "127.0.0.1",
            state: bytes | None = None, timeout: float = 3.0) -> rp.Packet | None:
        """One Access-Request with pyrad's client; None when no valid reply comes."""
        client = self.client(secret, source, timeout)
        pkt = client.CreateAuthPacket(User_Name=username, NAS_IP_Address="127.0.0.1",
                                      Calling_Station_Id="203.0.113.7")
        pkt["User-Password"] = pkt.PwCrypt(password)
        if state is not None:
            pkt["State"] = state
        try:
            return client.SendPacket(pkt)
        except Timeout:
            return None
        finally:
            client._CloseSocket()


def reply_message(reply: rp.Packet) -> str:
    return "".join(reply.get("Reply-Message", []))


class RawSocket:
    """A UDP socket for hand-made packets (retransmissions, forgeries, malformed bytes)."""

    def __init__(self, port: int, source: str = "127.0.0.1") -> None:
        self.port = port
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((source, 0))

    def send(self, data: bytes) -> None:
        self.sock.sendto(data, ("127.0.0.1", self.port))

    def receive(self, timeout: float) -> bytes | None:
        self.sock.settimeout(timeout)
        try:
            return self.sock.recv(4096)
        except TimeoutError:
            return None

    def receive_all(self, window: float, *, until: Callable[[bytes], bool] | None = None,
                    ) -> list[bytes]:
        """Every datagram that arrives within `window` seconds (or until one that `until`
        accepts has arrived)."""
        replies, deadline = [], time.monotonic() + window
        while (left := deadline - time.monotonic()) > 0:
            data = self.receive(left)
            if data is not None:
                replies.append(data)
                if until is not None and until(data):
                    break
        return replies

    def close(self) -> None:
        self.sock.close()


def request_packet(username: str, password: str, secret: str, *, ma: bool = True,
                   state: bytes | None = None) -> rp.AuthPacket:
    pkt = rp.AuthPacket(code=rp.AccessRequest, secret=secret.encode(), dict=DICTIONARY,
                        User_Name=username, NAS_IP_Address="127.0.0.1")
    pkt["User-Password"] = pkt.PwCrypt(password)
    if state is not None:
        pkt["State"] = state
    if ma:
        pkt.add_message_authenticator()
    return pkt


def decode_reply(request: rp.AuthPacket, raw: bytes) -> rp.Packet:
    """The reply, after checking its Response Authenticator and Message-Authenticator."""
    reply = request.CreateReply(packet=raw)
    assert request.VerifyReply(reply, raw, enforce_ma=True), "reply does not verify"
    return reply


# --- radclient and radtest ------------------------------------------------------------------

@dataclass
class ToolResult:
    returncode: int
    output: str

    @property
    def code(self) -> str | None:
        match = re.search(r"Received (Access-\w+)", self.output)
        return match.group(1) if match else None

    @property
    def reply_message(self) -> str:
        return "".join(re.findall(r'Reply-Message = "([^"]*)"', self.output))


def radclient(port: int, secret: str, attributes: list[str], command: str = "auth",
              timeout: float = 2.0) -> ToolResult:
    result = subprocess.run(
        ["radclient", "-x", "-r", "1", "-t", str(timeout), f"127.0.0.1:{port}", command, secret],
        input="\n".join(attributes) + "\n", capture_output=True, text=True, timeout=30)
    return ToolResult(result.returncode, result.stdout + result.stderr)


def radtest(port: int, secret: str, username: str, password: str) -> ToolResult:
    result = subprocess.run(
        ["radtest", username, password, f"127.0.0.1:{port}", "0", secret, "0", "127.0.0.1"],
        capture_output=True, text=True, timeout=30, stdin=subprocess.DEVNULL)
    return ToolResult(result.returncode, result.stdout + result.stderr)


def make_env(instance_dir: Path, database_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("UM2FA_")}
    env.update({"UM2FA_INSTANCE_DIR": str(instance_dir), "UM2FA_DATABASE_URL": database_url,
                "PYTHONUNBUFFERED": "1"})
    # the code of this checkout, not whichever one the virtualenv's editable install names
    env["PYTHONPATH"] = os.pathsep.join(filter(None, (str(CHECKOUT), env.get("PYTHONPATH"))))
    env.update({f"UM2FA_{k.upper()}": v for k, v in settings.items()})
    return env
