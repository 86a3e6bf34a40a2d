"""What yt-dlp says: its log lines routed to logging (kept for inspection), and its
errors mapped to ``LinkError`` reasons, each of which has its Italian message."""

from __future__ import annotations

import logging
import re
from collections import deque

from model.media.links import LinkError, VideoLink
from model.media.netguard import blocked_cause

_RECENT_MESSAGES = 50
# yt-dlp warnings that describe the normal path, not a problem: operator-added hosts are
# restricted to the generic extractor on purpose (the CLI would print it above its result).
_EXPECTED_WARNINGS = ("Falling back on generic information extractor",)


class YtDlpLogger:
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
        level = logging.DEBUG if any(w in message for w in _EXPECTED_WARNINGS) else logging.WARNING
        self._log.log(level, "yt-dlp: %s", message)

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


def link_error_from(exc: BaseException, link: VideoLink) -> LinkError:
    """Map a yt-dlp error (usually a DownloadError wrapping the real one) to a LinkError."""
    from yt_dlp.networking.exceptions import HTTPError, TransportError
    from yt_dlp.utils import GeoRestrictedError

    if (blocked := blocked_cause(exc)) is not None:
        # A connection to a refused address, or a redirect off the allow-list.
        return LinkError("not_allowed_host", str(blocked), url=link.url)
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
