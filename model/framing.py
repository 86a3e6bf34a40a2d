"""The framed pipe protocol between the bot and its sandboxed children (decoder, downloader).

A frame is one JSON header line followed by ``header["size"]`` raw bytes. Nothing is
pickled: a child taken over by hostile input can lie in its answers, but never make the
parent run code. The parent reads with a deadline (``FrameReader``), so a child that hangs
is noticed and killed; the child reads blocking (``read_frame``).
"""

from __future__ import annotations

import json
import os
import select
import time
from typing import BinaryIO

_READ_CHUNK = 1 << 20


class FrameTimeout(Exception):
    """No complete frame before the deadline (what was read so far is kept)."""


class FrameError(Exception):
    """The other side closed the pipe or sent something that is not a frame."""


def write_frame(
    out: BinaryIO, header: dict[str, object], payload: bytes | memoryview = b""
) -> None:
    out.write(json.dumps({**header, "size": len(payload)}).encode() + b"\n")
    if len(payload):
        out.write(payload)
    out.flush()


def read_frame(source: BinaryIO) -> tuple[dict[str, object], bytes] | None:
    """The next frame from a blocking stream, or None at its end."""
    line = source.readline()
    if not line:
        return None
    header = json.loads(line)
    size = int(header.get("size", 0))
    payload = source.read(size) if size else b""
    if len(payload) != size:
        return None
    return header, payload


class FrameReader:
    """Reads frames from a pipe's file descriptor, never waiting past a deadline."""

    def __init__(self, fd: int, *, max_payload: int) -> None:
        self._fd = fd
        self._max_payload = max_payload
        self._buffer = bytearray()

    def read(self, deadline: float) -> tuple[dict[str, object], bytes]:
        """The next frame; ``FrameTimeout`` at ``deadline`` (also when the frame is already
        buffered: a late answer is a late answer), ``FrameError`` on a closed or bad pipe."""
        if time.monotonic() >= deadline:
            raise FrameTimeout
        while (newline := self._buffer.find(b"\n")) < 0:
            self._fill(deadline)
        try:
            header = json.loads(bytes(self._buffer[: newline + 1]))
            size = int(header.get("size", 0))
        except (ValueError, TypeError, AttributeError) as exc:
            raise FrameError("a malformed header") from exc
        if not isinstance(header, dict) or not 0 <= size <= self._max_payload:
            raise FrameError("an oversized or malformed frame")
        while len(self._buffer) < newline + 1 + size:
            self._fill(deadline)
        del self._buffer[: newline + 1]
        payload = bytes(self._buffer[:size])
        del self._buffer[:size]
        return header, payload

    def _fill(self, deadline: float) -> None:
        left = deadline - time.monotonic()
        if left <= 0:
            raise FrameTimeout
        readable, _w, _x = select.select([self._fd], [], [], left)
        if not readable:
            raise FrameTimeout
        chunk = os.read(self._fd, _READ_CHUNK)
        if not chunk:
            raise FrameError("the other side closed the pipe")
        self._buffer += chunk
