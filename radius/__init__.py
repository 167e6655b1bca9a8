"""The RADIUS door: VPN concentrators send PAP Access-Requests; app.core.radius_auth decides.

server.py (pyrad's asyncio server), translate.py (packets <-> core), cache.py (retransmissions),
cli.py (`um2fa radius`, `um2fa radius-clients`), dictionary (the attributes we use).
"""
