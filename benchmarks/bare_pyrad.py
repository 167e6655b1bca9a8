"""A bare pyrad asyncio RADIUS server, the RADIUS benchmark's baseline (benchmarks/radius.py):
users u000000, u000001, ... with passwords pw-000000, pw-000001, ... in a dict, PAP only,
Message-Authenticator required, one client (127.0.0.1). Prints "ready" once it listens.

    python -m benchmarks.bare_pyrad PORT SECRET USERS
"""

import asyncio
import sys

from pyrad import packet
from pyrad.server import RemoteHost
from pyrad.server_async import ServerAsync

from radius.translate import load_dictionary


class Bare(ServerAsync):
    passwords: dict[str, str] = {}

    def handle_auth_packet(self, protocol, pkt, addr):
        name = pkt["User-Name"][0]
        ok = self.passwords.get(name) == pkt.PwDecrypt(pkt["User-Password"][0])
        reply = self.CreateReplyPacket(pkt)
        reply.code = packet.AccessAccept if ok else packet.AccessReject
        protocol.send_response(reply, addr)

    def handle_acct_packet(self, *a): pass

    def handle_coa_packet(self, *a): pass

    def handle_disconnect_packet(self, *a): pass


async def main(port: int, secret: str, users: int) -> None:
    Bare.passwords = {f"u{i:06d}": f"pw-{i:06d}" for i in range(users)}
    server = Bare(auth_port=port, dictionary=load_dictionary(), enforce_ma=True,
                  hosts={"127.0.0.1": RemoteHost("127.0.0.1", secret.encode(), "bench")})
    await server.initialize_transports(enable_auth=True, addresses=["127.0.0.1"])
    print("ready", flush=True)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3])))
