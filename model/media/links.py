"""Links users send: parse them against a host allow-list and canonicalise them.

Pure functions, no network: the download adapter (model/media/youtube.py) and the request guard
(model/media/netguard.py) use the same allow-list through :func:`request_allowed` and
:func:`connect_allowed`.

yt-dlp's own YouTube extractor is not an allow-list (it accepts bare ids and mirror sites), so
links are parsed here with ``urllib.parse`` and yt-dlp only ever sees the canonical watch URL
(``https://www.youtube.com/watch?v=ID``) or, for hosts the operator added (tests use a loopback
server), the validated URL itself, restricted to yt-dlp's generic extractors.

Decisions:

- ``watch?v=ID&list=...`` is the single video ``ID`` (what YouTube plays); a ``list=`` with no
  video id is a playlist and is refused.
- Timestamps (``t=``/``start=``, also in the fragment) are kept in ``start_seconds`` but are
  not part of the canonical URL: the whole video is transcribed.
- A single trailing dot on the host (``youtube.com.``) is the same DNS name and is accepted.
- Hosts are compared exactly after lower-casing: no suffix matching, so look-alikes
  (``youtube.com.evil.example``, ``evil-youtube.com``, punycode) never match.
- Downloads never connect to a private, loopback, link-local or otherwise non-global
  address (issue 10: an allowed host could redirect yt-dlp, or resolve, to the machine's own
  services). The one exception is an address the operator wrote *as an IP literal* in the
  allow-list (``127.0.0.1:8000``): that exact address (and port, if given) was asked for. A
  host *name* never grants it, whatever it resolves to, and neither does a redirect.
"""

from __future__ import annotations

import functools
import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

YOUTUBE_HOSTS: frozenset[str] = frozenset(
    {
        "youtube.com",
        "www.youtube.com",
        "m.youtube.com",
        "music.youtube.com",
        "youtube-nocookie.com",
        "www.youtube-nocookie.com",
        "youtu.be",
    }
)
SHORT_HOST = "youtu.be"
CANONICAL_WATCH_URL = "https://www.youtube.com/watch?v={video_id}"
ALLOWED_SCHEMES = frozenset({"http", "https"})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_URL_CHARS = 2048

# Why a link was refused or a download failed; the bot maps each to an Italian message.
LINK_ERROR_REASONS: tuple[str, ...] = (
    "bad_url",  # not a URL at all: empty, bare id, spaces inside, too long, malformed
    "bad_scheme",  # javascript:, ftp:, file:, data: ...
    "not_allowed_host",  # not YouTube (nor an operator-added host), userinfo and host tricks
    "playlist",
    "channel",
    "not_a_video",  # an allowed host, but no single video in the URL or on the page
    "live",
    "upcoming",
    "private",
    "unavailable",
    "age_restricted",
    "blocked",  # YouTube asks to sign in to prove we are not a bot
    "too_long",
    "too_big",
    "network",
    "timeout",
    "no_audio",
    "cancelled",
    "needs_program",  # the format needs ffmpeg, rtmpdump ... (model/media/native_only.py)
    "download_failed",
)

_VIDEO_ID_RE = re.compile(r"[A-Za-z0-9_-]{11}")
_SCHEME_RE = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*:")
_HOST_PORT_RE = re.compile(r"[^:/?#]+:\d")  # "host:8080/..." looks like a scheme to urlsplit
_HOSTNAME_RE = re.compile(r"[a-z0-9](?:[a-z0-9.-]*[a-z0-9])?")
_TIMESTAMP_RE = re.compile(r"(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s?)?")
_VIDEO_PATH_PREFIXES = frozenset({"shorts", "embed", "live", "v", "e"})
_CHANNEL_PATH_PREFIXES = frozenset({"channel", "c", "user"})
_PLAYLIST_EMBED_ID = "videoseries"
_TIMESTAMP_KEYS = ("t", "start")


class LinkError(Exception):
    """A link that is refused, or a download that failed; ``reason`` is machine-readable."""

    def __init__(self, reason: str, detail: str = "", *, url: str | None = None) -> None:
        if reason not in LINK_ERROR_REASONS:
            raise ValueError(f"unknown LinkError reason {reason!r}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
        self.url = url


@dataclass(frozen=True)
class VideoLink:
    url: str  # what yt-dlp gets: the canonical watch URL, or the normalised extra-host URL
    video_id: str | None  # None for operator-added hosts
    start_seconds: int | None
    host: str  # the host the user wrote, lower-cased, without port or trailing dot
    # The operator's extra-host entries in force when the link was parsed: redirects and
    # connections of the download are judged against them (empty for YouTube links).
    allowed_hosts: frozenset[str] = frozenset()


def parse_link(url: str, *, extra_hosts: frozenset[str] = frozenset()) -> VideoLink:
    """Validate ``url`` against the allow-list and canonicalise it; raises :class:`LinkError`.

    ``extra_hosts`` entries are ``host`` (any port) or ``host:port`` (that port only); IP
    literals are refused unless listed there.
    """
    text = url.strip()
    if not text or len(text) > MAX_URL_CHARS:
        raise LinkError("bad_url", "empty or too long", url=url[:MAX_URL_CHARS])
    if any(ch.isspace() or not ch.isprintable() or ch == "\\" for ch in text):
        raise LinkError("bad_url", "whitespace, control character or backslash", url=url)
    text = _with_scheme(text, original=url)
    try:
        parts = urlsplit(text)
        port = parts.port
    except ValueError as exc:
        raise LinkError("bad_url", str(exc), url=url) from exc
    if parts.scheme not in ALLOWED_SCHEMES:
        raise LinkError("bad_scheme", parts.scheme, url=url)
    if "@" in parts.netloc:
        raise LinkError("not_allowed_host", "credentials in URL", url=url)
    host = _normalised_host(parts.hostname, url=url)

    if host in YOUTUBE_HOSTS:
        if port is not None and port != DEFAULT_PORTS[parts.scheme]:
            raise LinkError("not_allowed_host", f"port {port}", url=url)
        return _parse_youtube(host, parts.path, parts.query, parts.fragment, url=url)

    allowed = extra_host_ports(extra_hosts)
    if host not in allowed:
        raise LinkError("not_allowed_host", host, url=url)
    allowed_ports = allowed[host]
    effective_port = port if port is not None else DEFAULT_PORTS[parts.scheme]
    if allowed_ports is not None and effective_port not in allowed_ports:
        raise LinkError("not_allowed_host", f"{host} port {effective_port}", url=url)
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    canonical = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return VideoLink(
        url=canonical, video_id=None, start_seconds=None, host=host, allowed_hosts=extra_hosts
    )


def find_links(
    text: str, *, extra_hosts: frozenset[str] = frozenset()
) -> tuple[list[VideoLink], list[LinkError]]:
    """Every URL in free text, parsed: (accepted links, refusals), each in order, no repeats.

    Finds URLs with a scheme, and scheme-less ones on YouTube hosts, ``extra_hosts`` or
    ``www.`` (``youtu.be/ID``, ``www.youtube.com/watch?v=ID``).
    """
    links: list[VideoLink] = []
    errors: list[LinkError] = []
    seen_links: set[str] = set()
    seen_errors: set[tuple[str, str | None]] = set()
    for match in _candidate_pattern(extra_hosts).finditer(text):
        candidate = _strip_trailing_punctuation(match.group(0))
        try:
            link = parse_link(candidate, extra_hosts=extra_hosts)
        except LinkError as exc:
            if (exc.reason, exc.url) not in seen_errors:
                seen_errors.add((exc.reason, exc.url))
                errors.append(exc)
            continue
        if link.url not in seen_links:
            seen_links.add(link.url)
            links.append(link)
    return links, errors


def _with_scheme(text: str, *, original: str) -> str:
    if "://" in text:
        return text
    if text.startswith("//"):
        return "https:" + text
    if _SCHEME_RE.match(text) and not _HOST_PORT_RE.match(text):
        scheme = text.split(":", 1)[0].lower()
        reason = "bad_url" if scheme in ALLOWED_SCHEMES else "bad_scheme"
        raise LinkError(reason, scheme, url=original)
    host_part = re.split(r"[/?#]", text, maxsplit=1)[0]
    if "." not in host_part and ":" not in host_part:
        # A bare video id or a word: yt-dlp would happily take it, we don't.
        raise LinkError("bad_url", "no host", url=original)
    return "https://" + text


def _normalised_host(hostname: str | None, *, url: str) -> str:
    if not hostname:
        raise LinkError("bad_url", "no host", url=url)
    host = hostname.lower()
    if host.endswith("."):
        host = host[:-1]
    if is_ip_literal(host):
        return str(ipaddress.ip_address(host))
    if not host.isascii() or not _HOSTNAME_RE.fullmatch(host) or ".." in host:
        # Percent-encoded, non-ASCII (homographs) or otherwise odd hosts never match.
        raise LinkError("not_allowed_host", host, url=url)
    return host


def is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def extra_host_ports(extra_hosts: frozenset[str]) -> dict[str, frozenset[int] | None]:
    """{host: allowed ports, or None for any port}; a host absent from the table is refused."""
    any_port: set[str] = set()
    ports: dict[str, set[int]] = {}
    for entry in extra_hosts:
        host, port = _split_host_entry(entry)
        if not host:
            continue
        if port is None:
            any_port.add(host)
        else:
            ports.setdefault(host, set()).add(port)
    table: dict[str, frozenset[int] | None] = {host: None for host in any_port}
    for host, host_ports in ports.items():
        table.setdefault(host, frozenset(host_ports))
    return table


def _split_host_entry(entry: str) -> tuple[str, int | None]:
    """``host``, ``host:port``, ``[v6]`` or ``[v6]:port`` -> (normalised host, port)."""
    entry = entry.strip().lower()
    if entry.startswith("["):  # "[::1]" or "[::1]:8000"
        host, _, rest = entry[1:].partition("]")
        port = rest[1:] if rest.startswith(":") else ""
    elif entry.count(":") == 1:
        host, port = entry.split(":")
    else:
        host, port = entry, ""
    host = host.rstrip(".")
    if is_ip_literal(host):
        host = str(ipaddress.ip_address(host))
    return host, int(port) if port.isdigit() else None


def _parse_youtube(host: str, path: str, query: str, fragment: str, *, url: str) -> VideoLink:
    params = parse_qs(query, keep_blank_values=True)
    segments = [unquote(segment) for segment in path.split("/") if segment]
    head = segments[0] if segments else ""
    video_id: str | None
    if host == SHORT_HOST:
        video_id = segments[0] if len(segments) == 1 else None
    elif head == "watch":
        video_id = _single_param(params, "v", url=url)
    elif head in _VIDEO_PATH_PREFIXES:
        video_id = segments[1] if len(segments) >= 2 else None
        if video_id == _PLAYLIST_EMBED_ID:
            raise LinkError("playlist", url=url)
    elif head == "playlist":
        raise LinkError("playlist", url=url)
    elif head in _CHANNEL_PATH_PREFIXES or head.startswith("@"):
        raise LinkError("channel", head, url=url)
    else:
        video_id = None
    if video_id is None:
        if "list" in params:
            raise LinkError("playlist", url=url)
        raise LinkError("not_a_video", path or "/", url=url)
    if not _VIDEO_ID_RE.fullmatch(video_id):
        raise LinkError("not_a_video", f"bad video id {video_id!r}", url=url)
    return VideoLink(
        url=CANONICAL_WATCH_URL.format(video_id=video_id),
        video_id=video_id,
        start_seconds=_start_seconds(params, fragment),
        host=host,
    )


def _single_param(params: Mapping[str, list[str]], key: str, *, url: str) -> str | None:
    values = set(params.get(key, []))
    if len(values) > 1:
        raise LinkError("not_a_video", f"several {key}= values", url=url)
    return values.pop() if values else None


def _start_seconds(params: Mapping[str, list[str]], fragment: str) -> int | None:
    fragment_params = parse_qs(fragment)
    for source in (params, fragment_params):
        for key in _TIMESTAMP_KEYS:
            if source.get(key):
                return parse_timestamp(source[key][0])
    return None


def parse_timestamp(value: str) -> int | None:
    """``90``, ``90s``, ``1m30s``, ``1h2m3s`` -> seconds; anything else -> None."""
    match = _TIMESTAMP_RE.fullmatch(value.strip().lower())
    if not value.strip() or match is None:
        return None
    hours, minutes, seconds = (int(group) if group else 0 for group in match.groups())
    return hours * 3600 + minutes * 60 + seconds


_TRAILING_PUNCTUATION = ".,;:!?'\"»«“”‘’„)]}>…"


def _strip_trailing_punctuation(candidate: str) -> str:
    while candidate and candidate[-1] in _TRAILING_PUNCTUATION:
        if candidate[-1] == ")" and candidate.count("(") >= candidate.count(")"):
            break
        candidate = candidate[:-1]
    return candidate


@functools.lru_cache(maxsize=16)
def _candidate_pattern(extra_hosts: frozenset[str]) -> re.Pattern[str]:
    names = {*YOUTUBE_HOSTS, *(_split_host_entry(entry)[0] for entry in extra_hosts)}
    hosts = "|".join(re.escape(name) for name in sorted(names - {""}, key=len, reverse=True))
    return re.compile(
        r"(?<![\w@./-])"  # not inside a word, an e-mail address or another URL
        r"(?:[a-z][a-z0-9+.-]*://"  # any scheme: refused ones are reported too
        rf"|(?:{hosts})(?::\d+)?(?=[/?#])"  # scheme-less, on a known host, with a path
        r"|www\.[a-z0-9-]+(?:\.[a-z0-9-]+)+(?=[/?#]))"
        # Ends at white space, quotes (typographic ones too: iOS types “”) and invisible
        # separators (a zero-width space pasted after a link).
        r"[^\s<>\"“”‘’„«»\u200b-\u200d\u2060\ufeff]*",
        re.IGNORECASE,
    )
