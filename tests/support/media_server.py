"""A loopback HTTP server that stands in for YouTube in tests (yt-dlp's generic extractor).

``serve_directory(root)`` serves a folder on 127.0.0.1 at a free port from a background
thread; ``build_media_site(root)`` fills a folder with an MP4 of espeak Italian speech and an
HTML page embedding it. Anything not in the folder is a 404. The server records every request
path, so a test can assert that nothing was fetched; ``redirect`` makes a path answer 302.

Downloads refuse loopback addresses unless the allow-list names the address as an IP literal
(model/media/links.py), so tests list ``127.0.0.1`` or ``server.netloc``; a host *name* such as
``localhost`` pointing here is what an attacker's DNS would do, and must be refused.
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import partial
from http import HTTPStatus
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import quote, urlsplit

from tests.support.speech import synthesize

LOOPBACK_HOST = "127.0.0.1"
VIDEO_NAME = "video.mp4"
PAGE_NAME = "page.html"
MISSING_NAME = "missing.mp4"  # never created: the server answers 404
DEFAULT_SPEECH = (
    "Buongiorno a tutti, oggi parliamo del tempo a Roma. La pizza margherita è nata a Napoli."
)
VIDEO_SIZE = "160x120"
SHUTDOWN_POLL_SECONDS = 0.05  # serve_forever's default 0.5 s would slow every teardown

_log = logging.getLogger(__name__)


@dataclass
class MediaServer:
    """A running loopback server; see :func:`serve_directory`."""

    root: Path
    base_url: str  # "http://127.0.0.1:PORT/" (trailing slash)
    host: str
    port: int
    requests: list[str] = field(default_factory=list)  # request paths, in arrival order
    delays: dict[str, float] = field(default_factory=dict)  # path -> seconds to stall first
    redirects: dict[str, str] = field(default_factory=dict)  # path -> Location of a 302
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    @property
    def netloc(self) -> str:
        return f"{self.host}:{self.port}"

    def url(self, name: str) -> str:
        return self.base_url + quote(name)

    def add_file(self, name: str, content: bytes | str | Path) -> str:
        """Write ``content`` (bytes, text, or a file to copy) under ``name``; returns its URL."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Path):
            target.write_bytes(content.read_bytes())
        elif isinstance(content, str):
            target.write_text(content, encoding="utf-8")
        else:
            target.write_bytes(content)
        return self.url(name)

    def stall(self, name: str, seconds: float) -> str:
        """Make requests for ``name`` wait ``seconds`` before any answer (timeout tests)."""
        self.delays["/" + name] = seconds
        return self.url(name)

    def redirect(self, name: str, location: str) -> str:
        """Make requests for ``name`` answer ``302 Found`` to ``location``; returns its URL."""
        self.redirects["/" + name] = location
        return self.url(name)

    def _record(self, path: str) -> tuple[float, str | None]:
        with self._lock:
            self.requests.append(path)
            key = urlsplit(path).path
            return self.delays.get(key, 0.0), self.redirects.get(key)


class _Handler(SimpleHTTPRequestHandler):
    server_state: MediaServer  # set per server through a subclass

    def _stall_then(self, method: str) -> None:
        delay, location = self.server_state._record(self.path)
        if delay:
            time.sleep(delay)
        if location is not None:
            self.send_response(HTTPStatus.FOUND)
            self.send_header("Location", location)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        getattr(super(), method)()

    def do_GET(self) -> None:
        self._stall_then("do_GET")

    def do_HEAD(self) -> None:
        self._stall_then("do_HEAD")

    def log_message(self, format: str, *args: object) -> None:
        # Keep pytest output clean; the log is still there with -o log_level=DEBUG.
        _log.debug("%s %s", self.address_string(), format % args)


@contextlib.contextmanager
def serve_directory(root: Path) -> Iterator[MediaServer]:
    """Serve ``root`` on 127.0.0.1 (free port) from a daemon thread until the block exits."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    handler_cls = type("_BoundHandler", (_Handler,), {})
    httpd = ThreadingHTTPServer((LOOPBACK_HOST, 0), partial(handler_cls, directory=str(root)))
    httpd.daemon_threads = True
    port = httpd.server_address[1]
    state = MediaServer(
        root=root, base_url=f"http://{LOOPBACK_HOST}:{port}/", host=LOOPBACK_HOST, port=port
    )
    handler_cls.server_state = state
    thread = threading.Thread(
        target=httpd.serve_forever,
        kwargs={"poll_interval": SHUTDOWN_POLL_SECONDS},
        name="media-server",
        daemon=True,
    )
    thread.start()
    try:
        yield state
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(timeout=5)


def make_speech_mp4(out: Path, text: str = DEFAULT_SPEECH, *, voice: str = "it") -> Path:
    """An MP4 (black H.264 video + AAC audio) whose soundtrack is espeak-ng Italian speech."""
    out = Path(out)
    wav = synthesize(text, out.with_suffix(".speech.wav"), voice=voice)
    subprocess.run(
        [
            "ffmpeg", "-y", "-loglevel", "error",
            "-f", "lavfi", "-i", f"color=c=black:s={VIDEO_SIZE}:r=10",
            "-i", str(wav),
            "-shortest",
            "-c:v", "libx264", "-preset", "ultrafast", "-pix_fmt", "yuv420p",
            "-c:a", "aac", "-b:a", "64k",
            "-movflags", "+faststart",
            str(out),
        ],
        check=True,
    )  # fmt: skip
    wav.unlink()
    return out


def video_page_html(video_src: str, *, title: str = "Video di prova") -> str:
    """A minimal page embedding ``video_src``, the shape yt-dlp's generic extractor reads."""
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="it"><head><meta charset="utf-8"><title>{title}</title></head>\n'
        f'<body><h1>{title}</h1>\n<video controls src="{video_src}"></video>\n</body></html>\n'
    )


def build_media_site(root: Path, *, text: str = DEFAULT_SPEECH) -> Path:
    """Put ``video.mp4`` (Italian speech) and ``page.html`` (embedding it) into ``root``."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    make_speech_mp4(root / VIDEO_NAME, text)
    (root / PAGE_NAME).write_text(video_page_html(VIDEO_NAME), encoding="utf-8")
    return root
