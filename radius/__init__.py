"""The RADIUS door: VPN concentrators send PAP Access-Requests; app.core.radius_auth decides.

server.py (pyrad's asyncio server), translate.py (packets <-> core), cache.py (retransmissions),
cli.py (`um2fa radius`, `um2fa radius-clients`), dictionary (the attributes we use).
"""

# Requests being decided at once, per process (`um2fa radius --max-in-flight`): about what the
# server decides in a second or less (docs/benchmarks.md), so that whatever is queued is answered
# well before a NAS gives up (typically 3-5 s) rather than all of it late.
DEFAULT_MAX_IN_FLIGHT = 2048
