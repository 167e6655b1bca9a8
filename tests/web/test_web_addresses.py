from __future__ import annotations

import pytest

from app.config import parse_networks
from app.web.addresses import client_address, is_campus

CAMPUS = parse_networks("10.0.0.0/8,2001:db8::/32")
PROXIES = parse_networks("192.0.2.10/32,192.0.2.11/32")


@pytest.mark.parametrize("addr, expected", [
    ("10.1.2.3", True), ("11.0.0.1", False), ("2001:db8::5", True), ("::ffff:10.0.0.1", True),
    ("not-an-ip", False), ("", False),
])
def test_is_campus(addr, expected):
    assert is_campus(addr, CAMPUS) is expected


def test_forwarded_for_is_ignored_from_an_untrusted_peer():
    assert client_address("203.0.113.9", "10.0.0.1", PROXIES) == "203.0.113.9"


def test_forwarded_for_is_used_from_a_trusted_proxy():
    assert client_address("192.0.2.10", "10.0.0.1", PROXIES) == "10.0.0.1"


def test_a_spoofed_hop_before_the_real_client_is_not_believed():
    # the client (203.0.113.9) sent its own X-Forwarded-For claiming 10.0.0.1
    assert client_address("192.0.2.10", "10.0.0.1, 203.0.113.9", PROXIES) == "203.0.113.9"


def test_chained_trusted_proxies_are_walked():
    assert client_address("192.0.2.10", "10.0.0.7, 192.0.2.11", PROXIES) == "10.0.0.7"


def test_garbage_in_forwarded_for_stops_the_walk():
    assert client_address("192.0.2.10", "10.0.0.1, junk", PROXIES) == "192.0.2.10"
