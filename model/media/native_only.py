"""yt-dlp downloads natively or not at all (issue 18).

yt-dlp hands some formats to external programs: ffmpeg for HLS it cannot handle itself
(``#EXT-X-KEY:METHOD=SAMPLE-AES``, live playlists), rtmpdump for RTMP, mpv/mplayer for
RTSP and MMS, aria2c/curl/wget when configured. Those programs open their own connections,
which netguard (``model.media.netguard``) never sees: a listed host could point them at
loopback or the private network. So the download options select the native downloaders,
every download is checked here before it starts, and the downloader process refuses to
start any program at all (``model.media.download_child``): a format that needs one is
refused with the ``needs_program`` reason.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from model.media.links import LinkError

# The options that keep yt-dlp on its own (Python) downloaders.
NATIVE_OPTIONS: Mapping[str, Any] = {
    "external_downloader": {"default": "native"},
    "hls_prefer_native": True,
    "postprocessors": [],
    "fixup": "never",  # no ffmpeg post-processing: the decoder reads any container
}


# Protocols (yt-dlp's ``determine_protocol``) the native downloaders speak; rtsp, mms,
# rtmp and the rest are refused even where yt-dlp would hand them to HttpFD.
NATIVE_PROTOCOLS = frozenset(
    {"http", "https", "m3u8", "m3u8_native", "http_dash_segments", "ism", "f4m"}
)


def native_downloaders() -> tuple[type, ...]:
    """yt-dlp's downloaders that fetch over its own (guarded) HTTP handler."""
    from yt_dlp.downloader import DashSegmentsFD, F4mFD, HlsFD, HttpFD, IsmFD

    return (HttpFD, HlsFD, DashSegmentsFD, IsmFD, F4mFD)


def check_native(info: Mapping[str, Any], params: Mapping[str, Any], *, url: str) -> None:
    """Raise ``LinkError("needs_program")`` unless a native downloader handles ``info``."""
    from yt_dlp.downloader import get_suitable_downloader
    from yt_dlp.utils import determine_protocol

    protocols = set(determine_protocol(dict(info)).split("+"))
    downloader = get_suitable_downloader(dict(info), dict(params))
    if (
        not protocols <= NATIVE_PROTOCOLS
        or downloader is None
        or downloader not in native_downloaders()
    ):
        name = getattr(downloader, "__name__", "none")
        protocol = info.get("protocol")
        raise LinkError("needs_program", f"{protocol} needs {name}", url=url)
