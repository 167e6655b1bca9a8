"""`um2fa serve` (waitress) behind a reverse proxy: X-Forwarded-For and X-Forwarded-Proto
count only from UM2FA_TRUSTED_PROXIES, as under gunicorn (security issue, point 12).

The "proxy" is this test: it connects from 127.0.0.1 and adds the headers a TLS proxy would.
"""

from __future__ import annotations

import urllib.error
import urllib.request

import pytest

from tests.peers.live import make_live_server

CLIENT = "203.0.113.9"  # off campus
FORWARDED = {"X-Forwarded-For": CLIENT, "X-Forwarded-Proto": "https"}


def fetch(url: str, headers: dict[str, str]) -> tuple[int, str]:
    """Status and Set-Cookie of a GET (no redirects followed)."""
    request = urllib.request.Request(url, headers=headers)  # noqa: S310 - a local test URL
    try:
        with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310
            return response.status, ", ".join(response.headers.get_all("Set-Cookie") or [])
    except urllib.error.HTTPError as exc:
        return exc.code, ", ".join(exc.headers.get_all("Set-Cookie") or [])


@pytest.fixture
def serve(tmp_path):
    servers = []

    def start(**settings: str):
        server = make_live_server(tmp_path / str(len(servers)),
                                  campus_networks="127.0.0.0/8", **settings)
        servers.append(server)
        return server.start()

    yield start
    for server in servers:
        server.stop()


def test_behind_a_trusted_proxy_the_forwarded_client_and_https_count(serve):
    server = serve(trusted_proxies="127.0.0.1/32")
    # the forwarded client is off campus: the portal refuses it
    status, _ = fetch(server.url + "/", FORWARDED)
    assert status == 403
    # the proxy's own requests are on campus
    assert fetch(server.url + "/", {})[0] == 200
    # the proxy said https: the session cookie is Secure
    status, cookie = fetch(server.url + "/saml/slo", FORWARDED)
    assert status == 200 and "session=" in cookie
    assert "Secure" in cookie, cookie


def test_without_trusted_proxies_the_forwarded_headers_are_ignored(serve):
    server = serve()
    status, cookie = fetch(server.url + "/", FORWARDED)
    assert status == 200  # the peer, 127.0.0.1, is on campus
    status, cookie = fetch(server.url + "/saml/slo", FORWARDED)
    assert status == 200 and "session=" in cookie
    assert "Secure" not in cookie, cookie
