"""Issue 18: IPv6 forms that embed or reach private IPv4 are not public addresses, for the
link rules (model/media/links.py) and the connect-time check netguard applies."""

from __future__ import annotations

import ipaddress

import pytest

from model.media.address_policy import connect_allowed, is_public_address
from model.media.links import parse_link

NOT_PUBLIC = [
    "::ffff:0:127.0.0.1",  # IPv4-translated loopback
    "::ffff:0:10.0.0.1",
    "::127.0.0.1",  # IPv4-compatible loopback
    "::10.1.2.3",
    "::8.8.8.8",  # IPv4-compatible: deprecated, never routed
    "64:ff9b:1::7f00:1",  # local-use NAT64 (RFC 8215)
    "64:ff9b:1:ffff::1",
    "fec0::1",  # site-local (RFC 3879)
    "feff:ffff::1",
]
PUBLIC = ["2a00:1450:4001:82a::200e", "64:ff9b::8.8.8.8", "::ffff:8.8.8.8", "2606:4700::1111"]


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_not_public(address: str) -> None:
    assert not is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", PUBLIC)
def test_still_public(address: str) -> None:
    assert is_public_address(ipaddress.ip_address(address))


@pytest.mark.parametrize("address", NOT_PUBLIC)
def test_a_listed_name_resolving_there_may_not_connect(address: str) -> None:
    """A host the operator listed by *name* whose DNS answers with one of these forms."""
    host = "media.example.org"
    link = parse_link(f"http://{host}/video.mp4", extra_hosts=frozenset({host}))
    assert not connect_allowed(link, ipaddress.ip_address(address), 80)
