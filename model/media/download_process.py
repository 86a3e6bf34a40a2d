"""Run one download in a child process the caller can kill (``model.media.download_child``).

yt-dlp's own timeouts are per socket operation: a server sending one byte every few
seconds keeps a download alive for ever, and nothing inside the download thread can stop
a blocked read. So the whole download (page, formats, media) runs in a child process, and
this side enforces, from outside, the hard wall-clock deadline (``timeout_seconds``) and
cancellation (``cancel``: /forget, shutdown) by killing it. Whatever the child leaves in
the destination folder when it is killed is removed here.
"""

from __future__ import annotations

import contextlib
import shutil
import subprocess
import sys
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING

from model.framing import FrameError, FrameReader, FrameTimeout, write_frame
from model.media.downloads import DownloadedMedia, DownloadLimits, DownloadProgress
from model.media.links import LINK_ERROR_REASONS, LinkError, VideoLink

if TYPE_CHECKING:
    from collections.abc import Callable


# How often the waiting side looks at the cancel event.
CANCEL_POLL_SECONDS = 0.2
_PACKAGE_ROOT = str(Path(__file__).resolve().parents[2])
CHILD_ENVIRONMENT: dict[str, str] = {"LC_ALL": "C.UTF-8"}
_CHILD_CODE = (
    "import sys; sys.path.insert(0, sys.argv[1]); "
    "from model.media.download_child import main; main()"
)


def download_in_child(
    link: VideoLink,
    dest_dir: Path,
    *,
    limits: DownloadLimits,
    progress: Callable[[DownloadProgress], None] | None = None,
    cancel: threading.Event | None = None,
) -> DownloadedMedia:
    """``download_in_process`` in a child, killed at the deadline or on ``cancel``."""
    dest_dir = Path(dest_dir)
    dest_dir.mkdir(parents=True, exist_ok=True)
    before = set(dest_dir.iterdir())
    deadline = time.monotonic() + limits.timeout_seconds
    if cancel is not None and cancel.is_set():
        raise LinkError("cancelled", url=link.url)
    process = subprocess.Popen(
        [sys.executable, "-c", _CHILD_CODE, _PACKAGE_ROOT],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        close_fds=True,
        # An empty environment: a page (or the JavaScript yt-dlp runs for YouTube, which
        # inherits this process's environment) never sees the bot's token or database URL.
        env=CHILD_ENVIRONMENT,
    )
    finished = False
    try:
        assert process.stdin is not None and process.stdout is not None
        request = {
            "link": {**asdict(link), "allowed_hosts": sorted(link.allowed_hosts)},
            "dest_dir": str(dest_dir),
            "limits": {**asdict(limits), "cookies_file": _path_text(limits.cookies_file)},
        }
        write_frame(process.stdin, request)
        reader = FrameReader(process.stdout.fileno(), max_payload=0)
        media = _wait(reader, link, dest_dir, deadline, progress, cancel)
        finished = True
        return media
    finally:
        _kill(process)
        if not finished:
            for entry in set(dest_dir.iterdir()) - before:
                if entry.is_dir():
                    shutil.rmtree(entry, ignore_errors=True)
                else:
                    entry.unlink(missing_ok=True)


def _wait(
    reader: FrameReader,
    link: VideoLink,
    dest_dir: Path,
    deadline: float,
    progress: Callable[[DownloadProgress], None] | None,
    cancel: threading.Event | None,
) -> DownloadedMedia:

    while True:
        if cancel is not None and cancel.is_set():
            raise LinkError("cancelled", url=link.url)
        now = time.monotonic()
        if now >= deadline:
            raise LinkError("timeout", "download took too long", url=link.url)
        try:
            header, _payload = reader.read(min(deadline, now + CANCEL_POLL_SECONDS))
        except FrameTimeout:
            continue
        except FrameError as exc:
            detail = f"the downloader stopped ({exc})"
            raise LinkError("download_failed", detail, url=link.url) from None
        kind = header.get("kind")
        if kind == "progress":
            if progress is not None:
                progress(DownloadProgress(**_progress_fields(header)))
        elif kind == "error":
            reason = str(header.get("reason"))
            if reason not in LINK_ERROR_REASONS:
                reason = "download_failed"
            raise LinkError(reason, str(header.get("detail") or ""), url=link.url)
        elif kind == "done":
            return _media(header, link, dest_dir)
        else:
            raise LinkError("download_failed", f"unexpected answer {kind!r}", url=link.url)


def _progress_fields(header: dict[str, object]) -> dict[str, object]:
    def number(key: str) -> float | None:
        value = header.get(key)
        return value if isinstance(value, int | float) and not isinstance(value, bool) else None

    downloaded, total = number("downloaded_bytes"), number("total_bytes")
    fraction = number("fraction")
    return {
        "downloaded_bytes": int(downloaded or 0),
        "total_bytes": int(total) if total is not None else None,
        "fraction": min(1.0, max(0.0, float(fraction))) if fraction is not None else None,
        "status": str(header.get("status") or "downloading"),
    }


def _media(header: dict[str, object], link: VideoLink, dest_dir: Path) -> DownloadedMedia:
    """The child's answer, trusted only as far as it can be checked here."""

    path = Path(str(header.get("path")))
    if path.resolve().parent != dest_dir.resolve() or not path.is_file():
        raise LinkError("download_failed", "file written outside the folder", url=link.url)
    title, duration = header.get("title"), header.get("duration")
    return DownloadedMedia(
        path=path,
        title=title if isinstance(title, str) else None,
        duration=float(duration) if isinstance(duration, int | float) else None,
        video_id=link.video_id,
        webpage_url=str(header.get("webpage_url") or link.url),
    )


def _kill(process: subprocess.Popen[bytes]) -> None:
    with contextlib.suppress(OSError):
        process.kill()
    with contextlib.suppress(OSError, subprocess.TimeoutExpired):
        process.wait(timeout=5)
    for stream in (process.stdin, process.stdout):
        if stream is not None:
            with contextlib.suppress(OSError):
                stream.close()


def _path_text(path: Path | None) -> str | None:
    return None if path is None else str(path)
