"""Helpers for tests that run whisper-it processes with ``WHISPER_IT_HTTP_PORT``: a free
port, waiting for ``/readyz``, and a worker process with a fake model
(``tests.support.worker_process``)."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

START_TIMEOUT = 120.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_ready(port: int, process: subprocess.Popen, log: Path) -> dict:
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        assert process.poll() is None, log.read_text(errors="replace")[-3000:]
        with contextlib.suppress(httpx.HTTPError):
            response = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5)
            if response.status_code == 200:
                return response.json()
        time.sleep(0.5)
    raise AssertionError(f"not ready: {log.read_text(errors='replace')[-3000:]}")


@contextlib.contextmanager
def worker_process(env: dict[str, str], cwd: Path, log_path: Path) -> Iterator[subprocess.Popen]:
    with log_path.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_process"],
            cwd=cwd,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        try:
            yield process
        finally:
            if process.poll() is None:
                process.terminate()
            process.wait(timeout=30)
