"""YouTube links: parse them against a host allow-list, then download audio with yt-dlp.

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
"""

from __future__ import annotations

import functools
import ipaddress
import logging
import re
import shutil
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit, urlunsplit

from model.js_runtime import yt_dlp_js_runtimes

_log = logging.getLogger(__name__)

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


@dataclass(frozen=True)
class DownloadLimits:
    max_seconds: float
    max_bytes: int
    timeout_seconds: float = 120


@dataclass(frozen=True)
class DownloadProgress:
    downloaded_bytes: int
    total_bytes: int | None
    fraction: float | None  # 0..1, never decreasing within one download; None if size unknown
    status: str  # yt-dlp's: "downloading", "finished"


@dataclass(frozen=True)
class DownloadedMedia:
    path: Path
    title: str | None
    duration: float | None  # None when the source does not say (generic pages)
    video_id: str | None
    webpage_url: str


# --------------------------------------------------------------------------- parsing


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

    allowed = _extra_host_ports(extra_hosts)
    if host not in allowed:
        raise LinkError("not_allowed_host", host, url=url)
    allowed_ports = allowed[host]
    effective_port = port if port is not None else DEFAULT_PORTS[parts.scheme]
    if allowed_ports is not None and effective_port not in allowed_ports:
        raise LinkError("not_allowed_host", f"{host} port {effective_port}", url=url)
    shown_host = f"[{host}]" if ":" in host else host
    netloc = shown_host if port is None else f"{shown_host}:{port}"
    canonical = urlunsplit((parts.scheme, netloc, parts.path or "/", parts.query, ""))
    return VideoLink(url=canonical, video_id=None, start_seconds=None, host=host)


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
    if _is_ip_literal(host):
        return str(ipaddress.ip_address(host))
    if not host.isascii() or not _HOSTNAME_RE.fullmatch(host) or ".." in host:
        # Percent-encoded, non-ASCII (homographs) or otherwise odd hosts never match.
        raise LinkError("not_allowed_host", host, url=url)
    return host


def _is_ip_literal(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def _extra_host_ports(extra_hosts: frozenset[str]) -> dict[str, frozenset[int] | None]:
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
    if _is_ip_literal(host):
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


_TRAILING_PUNCTUATION = ".,;:!?'\"»«)]}>…"


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
        r"[^\s<>\"]*",
        re.IGNORECASE,
    )


# --------------------------------------------------------------------------- downloading

OUTPUT_STEM = "media"
WORKDIR_PREFIX = ".ytdl-"
AUDIO_FORMAT = "bestaudio/best"
YOUTUBE_EXTRACTORS = ("youtube",)  # the single-video extractor; not youtube:tab (lists)
GENERIC_EXTRACTORS = ("generic", "html5")  # a direct media URL, or a page with <video>
MAX_SOCKET_TIMEOUT_SECONDS = 30.0
NETWORK_RETRIES = 2
LIVE_STATUSES = frozenset({"is_live", "post_live"})
UPCOMING_STATUSES = frozenset({"is_upcoming"})
MAX_FILESIZE_MESSAGE = "larger than max-filesize"
_RECENT_MESSAGES = 50


def download_audio(
    link: VideoLink,
    dest_dir: Path,
    *,
    limits: DownloadLimits,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DownloadedMedia:
    """Download the audio of ``link`` (from :func:`parse_link`) into ``dest_dir``.

    Live/upcoming streams, known durations over ``limits.max_seconds`` and known sizes over
    ``limits.max_bytes`` are refused before any media is fetched; the size is enforced again
    while downloading and after. Runs in the calling thread (call it from a worker);
    ``progress`` is called from that thread. Raises :class:`LinkError`; on failure nothing is
    left in ``dest_dir``.
    """
    import yt_dlp

    deadline = time.monotonic() + limits.timeout_seconds
    _check_cancel(cancel, link)
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix=WORKDIR_PREFIX, dir=dest_dir))
    ytdl_logger = _YtDlpLogger(_log)
    hook = _ProgressHook(
        link=link, limits=limits, deadline=deadline, progress=progress, cancel=cancel
    )
    options = _ytdl_options(link, workdir, limits, ytdl_logger, hook)
    try:
        with _guarded_downloader_class()(options) as ydl:
            if link.video_id is None:
                ydl.allowed_origin = _origin(link.url)
            try:
                info = _extract_checked(ydl, link, limits)
                _check_time(deadline, link)
                _check_cancel(cancel, link)
                result = ydl.process_ie_result(info, download=True)
            except yt_dlp.utils.YoutubeDLError as exc:
                raise _link_error_from(exc, link) from exc
        return _finish(result, link, workdir, dest_dir, limits, ytdl_logger)
    except LinkError as exc:
        if exc.url is None:  # raised inside yt-dlp's machinery (request guard)
            exc.url = link.url
        raise
    finally:
        # On success the file was moved out already; on failure nothing is left behind.
        shutil.rmtree(workdir, ignore_errors=True)


def _ytdl_options(
    link: VideoLink,
    workdir: Path,
    limits: DownloadLimits,
    ytdl_logger: _YtDlpLogger,
    hook: _ProgressHook,
) -> dict[str, Any]:
    extractors = GENERIC_EXTRACTORS if link.video_id is None else YOUTUBE_EXTRACTORS
    return {
        "format": AUDIO_FORMAT,
        "allowed_extractors": list(extractors),
        "paths": {"home": str(workdir), "temp": str(workdir)},
        "outtmpl": {"default": f"{OUTPUT_STEM}.%(ext)s"},
        "restrictfilenames": True,
        "overwrites": True,
        "continuedl": False,
        "noplaylist": True,
        "max_filesize": limits.max_bytes,
        "match_filter": _MatchFilter(limits),
        "progress_hooks": [hook],
        "socket_timeout": min(limits.timeout_seconds, MAX_SOCKET_TIMEOUT_SECONDS),
        "retries": NETWORK_RETRIES,
        "fragment_retries": NETWORK_RETRIES,
        "extractor_retries": NETWORK_RETRIES,
        "fixup": "never",  # no ffmpeg post-processing: the decoder reads any container
        "cachedir": False,
        "logger": ytdl_logger,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "no_color": True,
        # Real YouTube needs a JavaScript runtime: the deno wheel's, found by full path.
        "js_runtimes": yt_dlp_js_runtimes(),
    }


def _extract_checked(ydl: Any, link: VideoLink, limits: DownloadLimits) -> dict[str, Any]:
    """Metadata first (nothing downloaded yet), refused early when it breaks a limit."""
    raw = ydl.extract_info(link.url, download=False, process=False)
    if raw is None:
        raise LinkError("download_failed", "no information extracted", url=link.url)
    if raw.get("_type") in ("playlist", "multi_video"):
        raise LinkError("playlist", "the page holds several videos", url=link.url)
    refusal = _refusal(raw, limits)
    if refusal is not None:
        raise LinkError(refusal[0], refusal[1], url=link.url)
    info = ydl.process_ie_result(raw, download=False)
    if info is None:
        raise LinkError("download_failed", "no information extracted", url=link.url)
    refusal = _refusal(info, limits)
    if refusal is not None:
        raise LinkError(refusal[0], refusal[1], url=link.url)
    return info


def _refusal(info: Mapping[str, Any], limits: DownloadLimits) -> tuple[str, str] | None:
    """(reason, detail) when the metadata alone rules the video out."""
    live_status = info.get("live_status")
    if live_status in LIVE_STATUSES or info.get("is_live"):
        return "live", str(live_status or "is_live")
    if live_status in UPCOMING_STATUSES:
        return "upcoming", str(live_status)
    duration = info.get("duration")
    if isinstance(duration, int | float) and duration > limits.max_seconds:
        return "too_long", f"{duration:.0f} s > {limits.max_seconds:.0f} s"
    size = _declared_size(info)
    if size is not None and size > limits.max_bytes:
        return "too_big", f"{size} bytes > {limits.max_bytes} bytes"
    for fmt in info.get("requested_formats") or [info]:
        if fmt.get("format_id") is not None and fmt.get("acodec") == "none":
            return "no_audio", "the selected format has no audio track"
    return None


def _declared_size(info: Mapping[str, Any]) -> int | None:
    formats = info.get("requested_formats") or [info]
    sizes = [fmt.get("filesize") or fmt.get("filesize_approx") for fmt in formats]
    known = [int(size) for size in sizes if isinstance(size, int | float)]
    return sum(known) if known else None


def _guarded_downloader_class() -> type[Any]:
    """YoutubeDL whose every HTTP request (pages, embeds, media) may be held to one origin.

    For operator-added hosts a page could point yt-dlp anywhere (a <video> on another host,
    a meta refresh, JSON-LD); ``urlopen`` is the one door all of yt-dlp's requests go through.
    HTTP redirects are followed inside the request handler and are not seen here.
    """
    import yt_dlp

    class _OriginGuardedYoutubeDL(yt_dlp.YoutubeDL):
        allowed_origin: tuple[str, int | None] | None = None

        def urlopen(self, req: Any) -> Any:
            url = req if isinstance(req, str) else getattr(req, "url", None) or req.full_url
            if self.allowed_origin is not None and _origin(url) != self.allowed_origin:
                raise LinkError("not_allowed_host", f"request to {url[:200]}")
            return super().urlopen(req)

    return _OriginGuardedYoutubeDL


def _origin(url: str) -> tuple[str, int | None]:
    try:
        parts = urlsplit(url)
        port = parts.port or DEFAULT_PORTS.get(parts.scheme)
    except ValueError:
        return ("", None)
    return ((parts.hostname or "").rstrip("."), port)


def _finish(
    result: Mapping[str, Any] | None,
    link: VideoLink,
    workdir: Path,
    dest_dir: Path,
    limits: DownloadLimits,
    ytdl_logger: _YtDlpLogger,
) -> DownloadedMedia:
    if result is None:
        raise LinkError("download_failed", "yt-dlp returned nothing", url=link.url)
    downloads = result.get("requested_downloads") or []
    filepath = downloads[0].get("filepath") if downloads else None
    if not filepath or not Path(filepath).is_file():
        # yt-dlp returns normally when max_filesize or the match filter skipped the file.
        if ytdl_logger.saw(MAX_FILESIZE_MESSAGE):
            raise LinkError("too_big", f"over {limits.max_bytes} bytes", url=link.url)
        refusal = _refusal(result, limits)
        if refusal is not None:
            raise LinkError(refusal[0], refusal[1], url=link.url)
        raise LinkError("download_failed", "no file was written", url=link.url)
    path = Path(filepath)
    if path.resolve().parent != workdir.resolve():
        raise LinkError("download_failed", "file written outside the work folder", url=link.url)
    size = path.stat().st_size
    if size > limits.max_bytes:
        raise LinkError("too_big", f"{size} bytes > {limits.max_bytes} bytes", url=link.url)
    if size == 0:
        raise LinkError("download_failed", "empty file", url=link.url)
    duration = result.get("duration")
    if isinstance(duration, int | float) and duration > limits.max_seconds:
        raise LinkError("too_long", f"{duration:.0f} s", url=link.url)
    final = _free_path(dest_dir, link.video_id or OUTPUT_STEM, path.suffix, workdir.name)
    path.replace(final)
    title = result.get("title")
    return DownloadedMedia(
        path=final,
        title=title if isinstance(title, str) else None,
        duration=float(duration) if isinstance(duration, int | float) else None,
        video_id=link.video_id,
        webpage_url=str(result.get("webpage_url") or link.url),
    )


def _free_path(dest_dir: Path, stem: str, suffix: str, unique: str) -> Path:
    candidate = dest_dir / f"{stem}{suffix}"
    return candidate if not candidate.exists() else dest_dir / f"{stem}{unique}{suffix}"


def _check_cancel(cancel: threading.Event | None, link: VideoLink) -> None:
    if cancel is not None and cancel.is_set():
        raise LinkError("cancelled", url=link.url)


def _check_time(deadline: float, link: VideoLink) -> None:
    if time.monotonic() > deadline:
        raise LinkError("timeout", "download took too long", url=link.url)


class _MatchFilter:
    """yt-dlp's match_filter: a second line behind the explicit checks in _extract_checked."""

    def __init__(self, limits: DownloadLimits) -> None:
        self._limits = limits

    def __call__(self, info: Mapping[str, Any], *, incomplete: bool = False) -> str | None:
        refusal = _refusal(info, self._limits)
        return None if refusal is None else f"{refusal[0]}: {refusal[1]}"


class _ProgressHook:
    """Maps yt-dlp progress to DownloadProgress; raising here aborts the download."""

    def __init__(
        self,
        *,
        link: VideoLink,
        limits: DownloadLimits,
        deadline: float,
        progress: Callable[[DownloadProgress], None] | None,
        cancel: threading.Event | None,
    ) -> None:
        self._link = link
        self._limits = limits
        self._deadline = deadline
        self._progress = progress
        self._cancel = cancel
        self._fraction = 0.0

    def __call__(self, status: Mapping[str, Any]) -> None:
        _check_cancel(self._cancel, self._link)
        _check_time(self._deadline, self._link)
        downloaded = int(status.get("downloaded_bytes") or 0)
        total_raw = status.get("total_bytes") or status.get("total_bytes_estimate")
        total = int(total_raw) if total_raw else None
        if downloaded > self._limits.max_bytes:
            # Sources without a Content-Length slip past yt-dlp's max_filesize check.
            raise LinkError("too_big", f"over {self._limits.max_bytes} bytes", url=self._link.url)
        state = str(status.get("status") or "downloading")
        fraction: float | None = None
        if state == "finished":
            fraction = 1.0
        elif total:
            fraction = min(1.0, downloaded / total)
        if fraction is not None:
            fraction = self._fraction = max(self._fraction, fraction)
        if self._progress is not None:
            self._progress(DownloadProgress(downloaded, total, fraction, state))


class _YtDlpLogger:
    """Routes yt-dlp's output to logging (never stderr) and keeps recent lines to inspect."""

    def __init__(self, log: logging.Logger) -> None:
        self._log = log
        self._recent: deque[str] = deque(maxlen=_RECENT_MESSAGES)

    def saw(self, fragment: str) -> bool:
        return any(fragment in message for message in self._recent)

    def debug(self, message: str) -> None:
        self._recent.append(message)
        self._log.debug("yt-dlp: %s", message)

    def info(self, message: str) -> None:
        self._recent.append(message)
        self._log.info("yt-dlp: %s", message)

    def warning(self, message: str) -> None:
        self._recent.append(message)
        self._log.warning("yt-dlp: %s", message)

    def error(self, message: str) -> None:
        # The same error is raised to download_audio and mapped to a LinkError there.
        self._recent.append(message)
        self._log.info("yt-dlp: %s", message)


# --------------------------------------------------------------------------- error mapping

# (reason, lower-case fragments of yt-dlp's messages), first match wins.
_MESSAGE_REASONS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("private", ("private video", "video is private")),
    (
        "age_restricted",
        ("confirm your age", "age-restricted", "age restricted", "inappropriate for some users"),
    ),
    ("blocked", ("not a bot",)),
    ("upcoming", ("live event will begin", "premieres in", "premiere will begin")),
    ("live", ("is live", "live stream recording is not available")),
    ("no_audio", ("requested format is not available", "no video formats found")),
    ("not_a_video", ("unsupported url",)),
    ("timeout", ("timed out", "timeout")),
    (
        "unavailable",
        (
            "video unavailable",
            "not available",
            "no longer available",
            "has been removed",
            "has been terminated",
            "copyright",
            "does not exist",
        ),
    ),
    (
        "network",
        (
            "unable to download webpage",
            "unable to download video data",
            "connection refused",
            "connection reset",
            "name or service not known",
            "temporary failure in name resolution",
            "network is unreachable",
            "failed to resolve",
        ),
    ),
)
_HTTP_STATUS_RE = re.compile(r"http error (\d{3})")
_GONE_STATUSES = frozenset({404, 410})


def _link_error_from(exc: BaseException, link: VideoLink) -> LinkError:
    """Map a yt-dlp error (usually a DownloadError wrapping the real one) to a LinkError."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import GeoRestrictedError

    cause = exc
    exc_info = getattr(exc, "exc_info", None)
    if exc_info and exc_info[1] is not None:
        cause = exc_info[1]
    message = f"{exc} {cause}".lower()
    detail = str(exc).removeprefix("ERROR: ")[:300]

    status = cause.status if isinstance(cause, HTTPError) else None
    if status is None and (match := _HTTP_STATUS_RE.search(message)):
        status = int(match.group(1))
    if isinstance(cause, GeoRestrictedError):
        return LinkError("unavailable", detail, url=link.url)
    for reason, fragments in _MESSAGE_REASONS:
        if reason in ("timeout", "unavailable", "network") and status is not None:
            break  # an HTTP answer came back: decided by its status below
        if any(fragment in message for fragment in fragments):
            return LinkError(reason, detail, url=link.url)
    if status is not None:
        reason = "unavailable" if status in _GONE_STATUSES else "download_failed"
        return LinkError(reason, detail, url=link.url)
    if isinstance(cause, TimeoutError):
        return LinkError("timeout", detail, url=link.url)
    if isinstance(cause, TransportError | ConnectionError):
        return LinkError("network", detail, url=link.url)
    return LinkError("download_failed", detail, url=link.url)
