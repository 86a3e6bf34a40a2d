"""What a media download is given and gives back, shared by the in-process downloader
(``model.media.youtube``) and the child process that runs it (``model.media.download_process``)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DownloadLimits:
    max_seconds: float
    max_bytes: int
    timeout_seconds: float = 120
    # A Netscape cookies.txt of a signed-in browser, given to yt-dlp for YouTube links only
    # (a datacenter address is otherwise asked to "confirm you're not a bot").
    cookies_file: Path | None = None


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
