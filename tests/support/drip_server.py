"""A listed host that sends one byte every few seconds: a download that never ends unless
something outside it stops it."""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

DRIP_SECONDS = 2.0  # one byte this often


class _Drip(BaseHTTPRequestHandler):
    """Announces a large MP4, then sends one byte every DRIP_SECONDS."""

    requests: list[str]
    closed: list[float]  # when the downloader hung up (monotonic seconds)

    def do_GET(self) -> None:
        self.requests.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "video/mp4")
        self.send_header("Content-Length", "1000000")
        self.end_headers()
        try:
            for _ in range(1000):
                self.wfile.write(b"\0")
                self.wfile.flush()
                time.sleep(DRIP_SECONDS / 10)
                self.wfile.write(b"")  # noticed within a tenth of the drip period
                time.sleep(DRIP_SECONDS * 9 / 10)
        except OSError:
            self.closed.append(time.monotonic())

    def log_message(self, format: str, *args: object) -> None:
        pass


@dataclass(frozen=True)
class Drip:
    netloc: str
    requests: list[str]
    closed: list[float]


@contextlib.contextmanager
def drip_server() -> Iterator[Drip]:
    handler = type("_BoundDrip", (_Drip,), {"requests": [], "closed": []})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.1})
    thread.start()
    try:
        yield Drip(f"127.0.0.1:{server.server_address[1]}", handler.requests, handler.closed)
    finally:
        server.shutdown()
        server.server_close()
