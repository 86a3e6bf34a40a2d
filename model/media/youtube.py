"""Download the audio of a parsed link (model/media/links.py) with yt-dlp.

yt-dlp gets the canonical watch URL of a YouTube link, or the validated URL of an
operator-added host restricted to the generic extractors. Every request it makes goes
through model/media/netguard.py (connect-time address check, redirects re-checked, one origin
for operator hosts). Limits are checked on the metadata before anything is fetched, again
while downloading and on the file.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from model.media.downloads import DownloadedMedia, DownloadLimits, DownloadProgress
from model.media.js_runtime import yt_dlp_js_runtimes
from model.media.links import (
    LinkError,
    VideoLink,
)
from model.media.native_only import NATIVE_OPTIONS
from model.media.netguard import guarded_downloader
from model.media.ytdlp_messages import YtDlpLogger, link_error_from

_log = logging.getLogger(__name__)
COOKIES_NAME = "cookies.txt"


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
PLAYLIST_RESULTS = frozenset({"playlist", "multi_video"})
URL_RESULTS = frozenset({"url", "url_transparent"})  # "look there instead"
MAX_URL_HOPS = 3  # pages pointing to pages before the video
# What a "url_transparent" page does not lend the result it points to (yt-dlp's rule).
_OWN_FIELDS = frozenset({"_type", "url", "ie_key", "id", "extractor", "extractor_key"})
MAX_FILESIZE_MESSAGE = "larger than max-filesize"


def download_audio(
    link: VideoLink,
    dest_dir: Path,
    *,
    limits: DownloadLimits,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DownloadedMedia:
    """Download the audio of ``link`` into ``dest_dir`` in a child process (see
    :func:`download_in_process` for what is checked), killed when ``limits.timeout_seconds``
    pass or ``cancel`` is set, whatever it is doing: the hard deadline of issue 18."""
    from model.media.download_process import download_in_child

    return download_in_child(link, dest_dir, limits=limits, progress=progress, cancel=cancel)


def download_in_process(
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
    ytdl_logger = YtDlpLogger(_log)
    hook = _ProgressHook(
        link=link, limits=limits, deadline=deadline, progress=progress, cancel=cancel
    )
    options = _ytdl_options(link, workdir, limits, ytdl_logger, hook)
    try:
        if limits.cookies_file is not None and link.video_id is not None:
            options["cookiefile"] = _private_cookies(limits.cookies_file, workdir)
        with guarded_downloader(link, options) as ydl:
            try:
                info = _extract_checked(ydl, link, limits)
                _check_time(deadline, link)
                _check_cancel(cancel, link)
                result = ydl.process_ie_result(info, download=True)
            except yt_dlp.utils.YoutubeDLError as exc:
                raise link_error_from(exc, link) from exc
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
    ytdl_logger: YtDlpLogger,
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
        **NATIVE_OPTIONS,  # yt-dlp's own downloaders only (model/media/native_only.py)
        "cachedir": False,
        "logger": ytdl_logger,
        "quiet": True,
        "no_warnings": False,
        "noprogress": True,
        "no_color": True,
        # Real YouTube needs a JavaScript runtime: the deno wheel's, found by full path.
        "js_runtimes": yt_dlp_js_runtimes(),
    }


def _private_cookies(cookies_file: Path, workdir: Path) -> str | None:
    """A copy in the work folder (0700, removed afterwards): yt-dlp writes its cookie jar
    back, and the original may be read-only (a mounted secret). None if unreadable."""
    try:
        return str(shutil.copyfile(cookies_file, workdir / COOKIES_NAME))
    except OSError as exc:  # the download goes on without cookies; the path is no secret
        _log.warning("cookies file %s not readable: %s", cookies_file, exc.strerror)
        return None


def _extract_checked(ydl: Any, link: VideoLink, limits: DownloadLimits) -> dict[str, Any]:
    """Metadata first (nothing downloaded yet), refused early when it breaks a limit."""
    raw = _unprocessed(ydl, link.url, link.url)
    # A page that only points elsewhere (a meta refresh, an embed) is followed here, one
    # unprocessed step at a time, so a playlist behind it is refused before yt-dlp would
    # fetch (and download) every entry; what each page declares is checked on the way.
    for hop in range(MAX_URL_HOPS + 1):
        refusal = _refusal(raw, limits)
        if refusal is not None:
            raise LinkError(refusal[0], refusal[1], url=link.url)
        if raw.get("_type") not in URL_RESULTS:
            break
        if hop == MAX_URL_HOPS:
            raise LinkError("download_failed", "too many pages pointing on", url=link.url)
        inner = _unprocessed(ydl, str(raw.get("url")), link.url, ie_key=raw.get("ie_key"))
        if raw.get("_type") == "url_transparent":  # the page's details win, as in yt-dlp
            inner = {**inner, **{k: v for k, v in raw.items() if v is not None and k not in
                                 _OWN_FIELDS}}  # fmt: skip
        raw = inner
    info = ydl.process_ie_result(raw, download=False)
    if info is None:
        raise LinkError("download_failed", "no information extracted", url=link.url)
    if info.get("_type") in PLAYLIST_RESULTS or "entries" in info:
        raise LinkError("playlist", "the page holds several videos", url=link.url)
    refusal = _refusal(info, limits)
    if refusal is not None:
        raise LinkError(refusal[0], refusal[1], url=link.url)
    return info


def _unprocessed(ydl: Any, url: str, asked: str, *, ie_key: Any = None) -> dict[str, Any]:
    """One extractor's answer for ``url``, nothing followed; refused if it lists videos."""
    raw = ydl.extract_info(url, download=False, process=False, ie_key=ie_key)
    if raw is None:
        raise LinkError("download_failed", "no information extracted", url=asked)
    if raw.get("_type") in PLAYLIST_RESULTS or "entries" in raw:
        raise LinkError("playlist", "the page holds several videos", url=asked)
    return raw


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


def _finish(
    result: Mapping[str, Any] | None,
    link: VideoLink,
    workdir: Path,
    dest_dir: Path,
    limits: DownloadLimits,
    ytdl_logger: YtDlpLogger,
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
