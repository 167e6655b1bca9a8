"""Live servers the tests (and benchmarks/) start as processes of their own.

The real peers, third-party programs UM 2FA talks to:
    freeradius.py     Debian's FreeRADIUS as a NAS-side proxy / upstream RADIUS server
    ldap_server.py    Debian's slapd with a small directory
    pg_cluster.py     a private PostgreSQL cluster a test may stop and start
    redis_server.py   a private redis-server on a free port
    push_service.py   a Web Push service that checks VAPID and decrypts as a browser would
    push_device.py    the test phone: a device API client with a real P-256 key
    saml_sp.py        a python3-saml service provider
    myum_live.py      the demo service provider myUM in a subprocess

Our own servers started the way an operator would (`um2fa ...`, gunicorn):
    live.py           process plumbing (Subprocess, free_port) and a live `um2fa serve`
    live_radius.py    `um2fa radius` and the RADIUS clients that talk to it
    nodes.py          web and RADIUS nodes sharing one database, and a browser for them
"""
