"""Where a download may go: which URLs a link's download may request (redirects, a page's
media) and which addresses it may connect to (``model.media.netguard`` enforces both)."""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from model.media.links import (
    ALLOWED_SCHEMES,
    DEFAULT_PORTS,
    IPAddress,
    VideoLink,
    extra_host_ports,
    is_ip_literal,
)

# Registrable domains Google serves YouTube from: the watch page, the player, and the media
# (``*.googlevideo.com`` redirects between its own nodes). A redirect of a YouTube download
# must stay inside them; matched as the domain itself or a subdomain of it.
YOUTUBE_SERVICE_DOMAINS: tuple[str, ...] = (
    "youtube.com",
    "youtu.be",
    "youtube-nocookie.com",
    "googlevideo.com",
    "ytimg.com",
    "ggpht.com",
    "google.com",
    "googleapis.com",
    "gstatic.com",
)
# NAT64's well-known prefix maps the whole IPv4 space, loopback included, into IPv6.
_NAT64_PREFIX = ipaddress.IPv6Network("64:ff9b::/96")
# IPv6 ranges Python's ``is_global`` calls global but that are not public unicast: forms
# that embed an IPv4 address (IPv4-compatible ``::a.b.c.d``, IPv4-translated
# ``::ffff:0:a.b.c.d``), the local-use NAT64 prefix (RFC 8215, the operator's own
# translator) and the deprecated site-local range (RFC 3879).
_NON_PUBLIC_V6 = tuple(
    ipaddress.IPv6Network(network)
    for network in ("::/96", "::ffff:0:0:0/96", "64:ff9b:1::/48", "fec0::/10")
)


def request_allowed(link: VideoLink, url: str) -> bool:
    """May the download of ``link`` fetch ``url`` (a redirect target, a page's media)?"""
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return False
    if parts.scheme not in ALLOWED_SCHEMES or "@" in parts.netloc or not parts.hostname:
        return False
    host = parts.hostname.lower().rstrip(".")
    if link.video_id is not None:
        return not is_ip_literal(host) and any(
            host == domain or host.endswith("." + domain) for domain in YOUTUBE_SERVICE_DOMAINS
        )
    if is_ip_literal(host):
        host = str(ipaddress.ip_address(host))
    table = extra_host_ports(link.allowed_hosts)
    if host not in table:
        return False
    ports = table[host]
    return ports is None or (port or DEFAULT_PORTS[parts.scheme]) in ports


def is_public_address(address: IPAddress) -> bool:
    """Globally routable unicast: not private, loopback, link-local, shared, reserved ..."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = address.ipv4_mapped or address.sixtofour
        if embedded is None and address in _NAT64_PREFIX:
            embedded = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
        if embedded is not None:
            return is_public_address(embedded)
        if any(address in network for network in _NON_PUBLIC_V6):
            return False
    return address.is_global and not address.is_multicast


def connect_allowed(link: VideoLink, address: IPAddress, port: int) -> bool:
    """May the download of ``link`` open a connection to ``address:port`` (checked at connect)?

    Public addresses: yes. Any other: only when the operator listed that exact address as an
    IP literal for an extra host (with this port, if the entry names one).
    """
    if is_public_address(address):
        return True
    if link.video_id is not None or address.is_unspecified or address.is_multicast:
        return False
    ports = extra_host_ports(link.allowed_hosts).get(str(address), ())
    return ports is None or port in ports
