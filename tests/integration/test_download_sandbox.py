"""Issue 18: yt-dlp downloads natively, in a child process with a hard deadline.

- An HLS playlist with ``#EXT-X-KEY:METHOD=SAMPLE-AES`` on a listed host makes yt-dlp hand
  the URL to ffmpeg, whose own connections netguard never sees: the key and segments on an
  *unlisted* loopback port were fetched. Now it is refused and that port hears nothing.
- A listed host that sends one byte every couple of seconds never trips a socket timeout:
  the download is killed from outside at its deadline, and a cancel stops it at once.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from model.media.download_child import ExternalProgramRefused, ProgramGuard
from model.media.links import LinkError, parse_link
from model.media.native_only import check_native
from model.media.youtube import DownloadLimits, download_audio
from tests.support.drip_server import Drip
from tests.support.hostile_media import sample_aes_playlist
from tests.support.media_server import MediaServer, serve_directory

ROOMY = DownloadLimits(max_seconds=600, max_bytes=50_000_000, timeout_seconds=30)
# The download deadline in the drip tests: the child must start, import yt-dlp and reach the
# server before it; 4 s was not always enough with four processes on two cores.
DRIP_TIMEOUT = 8.0
KILL_SLACK = 3.0  # how much later than the deadline the error may come


@pytest.fixture
def servers(tmp_path: Path) -> Iterator[tuple[MediaServer, MediaServer]]:
    """A listed site and an internal service on another (unlisted) loopback port."""
    with serve_directory(tmp_path / "site") as site, serve_directory(tmp_path / "in") as inner:
        inner.add_file("key-from-ffmpeg", bytes(16))
        inner.add_file("internal-admin/segment.ts", bytes(188 * 10))
        yield site, inner


def test_sample_aes_hls_is_refused_and_the_unlisted_port_hears_nothing(
    servers: tuple[MediaServer, MediaServer], tmp_path: Path
) -> None:
    site, internal = servers
    url = site.add_file("lezione.m3u8", sample_aes_playlist(internal))
    link = parse_link(url, extra_hosts=frozenset({site.netloc}))
    dest = tmp_path / "out"
    with pytest.raises(LinkError) as caught:
        download_audio(link, dest, limits=ROOMY)
    assert caught.value.reason == "needs_program", caught.value
    time.sleep(0.5)  # anything still connecting would arrive now
    assert internal.requests == []
    assert set(site.requests) == {"/lezione.m3u8"}
    assert list(dest.iterdir()) == []


@pytest.mark.parametrize(
    ("protocol", "native"),
    [("https", True), ("m3u8_native", True), ("m3u8", True), ("http_dash_segments", True),
     ("rtmp", False), ("rtmp_ffmpeg", False), ("rtsp", False), ("mms", False),
     ("websocket_frag", False)],
)  # fmt: skip
def test_only_native_downloaders_pass(protocol: str, native: bool) -> None:
    from model.media.native_only import NATIVE_OPTIONS

    info = {"url": "http://example.com/x", "protocol": protocol, "ext": "mp4"}
    if native:
        check_native(info, NATIVE_OPTIONS, url="u")
    else:
        with pytest.raises(LinkError) as caught:
            check_native(info, NATIVE_OPTIONS, url="u")
        assert caught.value.reason == "needs_program"


def test_the_program_guard_refuses_everything_but_the_runtime(tmp_path: Path) -> None:
    runtime = tmp_path / "deno"
    runtime.write_text("")
    guard = ProgramGuard(frozenset({str(runtime)}))
    guard("subprocess.Popen", (None, [str(runtime), "run"], None, None))  # allowed
    for event, args in [
        ("subprocess.Popen", (None, ["ffmpeg", "-i", "http://127.0.0.1/"], None, None)),
        ("subprocess.Popen", ("/usr/bin/rtmpdump", ["rtmpdump"], None, None)),
        ("os.posix_spawn", ("/usr/bin/mpv", ["mpv"], {})),
        ("os.system", (b"aria2c http://127.0.0.1/",)),
    ]:
        with pytest.raises(ExternalProgramRefused):
            guard(event, args)
    assert guard.refused == ["ffmpeg", "rtmpdump", "mpv", "?"]


# --------------------------------------------------------------------------- the deadline


def _children_alive() -> set[int]:
    """Live child processes of this test process (zombies excluded)."""
    import os

    alive = set()
    for task in Path(f"/proc/{os.getpid()}/task").iterdir():
        for pid in (task / "children").read_text().split():
            with contextlib.suppress(OSError):
                state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    alive.add(int(pid))
    return alive


def test_a_dripping_server_is_cut_off_at_the_deadline(drip: Drip, tmp_path: Path) -> None:
    netloc, requests = drip.netloc, drip.requests
    link = parse_link(f"http://{netloc}/lento.mp4", extra_hosts=frozenset({netloc}))
    limits = DownloadLimits(max_seconds=600, max_bytes=50_000_000, timeout_seconds=DRIP_TIMEOUT)
    before = _children_alive()
    started = time.monotonic()
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path / "out", limits=limits)
    elapsed = time.monotonic() - started
    assert caught.value.reason == "timeout"
    assert DRIP_TIMEOUT - 0.5 < elapsed < DRIP_TIMEOUT + KILL_SLACK, elapsed
    assert requests  # it was really downloading when it was cut off
    assert list((tmp_path / "out").iterdir()) == []
    assert _children_alive() <= before  # the downloader process is gone


def test_cancel_stops_a_dripping_download_at_once(drip: Drip, tmp_path: Path) -> None:
    netloc = drip.netloc
    link = parse_link(f"http://{netloc}/lento.mp4", extra_hosts=frozenset({netloc}))
    cancel = threading.Event()
    timer = threading.Timer(1.5, cancel.set)
    timer.start()
    started = time.monotonic()
    with pytest.raises(LinkError) as caught:
        download_audio(link, tmp_path / "out", limits=ROOMY, cancel=cancel)
    assert caught.value.reason == "cancelled"
    assert time.monotonic() - started < 1.5 + 1.0
    assert list((tmp_path / "out").iterdir()) == []


def test_a_download_that_fits_the_deadline_still_works(
    media_server: MediaServer, tmp_path: Path
) -> None:
    from tests.support.media_server import VIDEO_NAME

    link = parse_link(media_server.url(VIDEO_NAME), extra_hosts=frozenset({media_server.netloc}))
    media = download_audio(link, tmp_path, limits=ROOMY)
    assert media.path.read_bytes() == (media_server.root / VIDEO_NAME).read_bytes()


def test_the_downloader_sees_none_of_the_bots_secrets(
    drip: Drip, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Read the downloader's environment while it is busy with the dripping server."""
    import os

    monkeypatch.setenv("WHISPER_IT_TELEGRAM_TOKEN", "123:segreto")
    link = parse_link(f"http://{drip.netloc}/lento.mp4", extra_hosts=frozenset({drip.netloc}))
    before = _children_alive()
    seen: list[bytes] = []

    def look() -> None:
        for pid in _children_alive() - before:
            with contextlib.suppress(OSError):
                seen.append(Path(f"/proc/{pid}/environ").read_bytes())

    cancel = threading.Event()
    timer = threading.Timer(1.5, lambda: (look(), cancel.set()))
    timer.start()
    with pytest.raises(LinkError):
        download_audio(link, tmp_path / "out", limits=ROOMY, cancel=cancel)
    assert seen and all(b"segreto" not in env and b"WHISPER_IT" not in env for env in seen)
    assert os.environ["WHISPER_IT_TELEGRAM_TOKEN"] == "123:segreto"  # the parent's, intact
