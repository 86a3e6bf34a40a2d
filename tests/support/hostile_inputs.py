"""Hostile files for the trust-boundary tests (test_audio.py, test_security_battery.py).

Each builder returns the bytes an attacker would send. None of them is audio: every one
makes FFmpeg's content-based probing pick a demuxer that reads *something else* (a file
from the working folder, a URL, UDP sockets) or yields samples that are not numbers.
Network targets are always loopback, so a test can listen and assert nothing arrived.
"""

from __future__ import annotations

import io
import socket
import struct

import numpy as np

LOOPBACK = "127.0.0.1"
SECRET_NAME = "secret.ogg"  # the file a playlist tries to read from the working folder


def ffconcat(target: str = SECRET_NAME) -> bytes:
    """The 39-byte attack from issue 10: FFmpeg's concat demuxer reads ``target``."""
    return f"ffconcat version 1.0\nfile {target}\n".encode()


def hls_playlist(segment_url: str) -> bytes:
    """An HLS playlist: FFmpeg's hls demuxer fetches ``segment_url`` (a file or a URL)."""
    return (
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f"#EXTINF:10.0,\n{segment_url}\n#EXT-X-ENDLIST\n"
    ).encode()


def sdp_session(port: int, host: str = LOOPBACK) -> bytes:
    """An SDP description: FFmpeg's sdp demuxer opens RTP/UDP sockets for ``host:port``."""
    return (
        "v=0\r\n"
        f"o=- 0 0 IN IP4 {host}\r\n"
        "s=nota\r\n"
        f"c=IN IP4 {host}\r\n"
        "t=0 0\r\n"
        f"m=audio {port} RTP/AVP 0\r\n"
        "a=rtpmap:0 PCMU/8000\r\n"
    ).encode()


def srt_subtitles() -> bytes:
    """A subtitle file: a real FFmpeg demuxer (srt), but no audio container."""
    return b"1\n00:00:00,000 --> 00:00:02,000\nciao a tutti\n\n"


def png_image() -> bytes:
    """A 1x1 PNG: FFmpeg's png_pipe demuxer (image2 family) opens it."""
    import zlib

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    header = struct.pack(">IIBBBBB", 1, 1, 8, 0, 0, 0, 0)
    pixels = zlib.compress(b"\x00\x00")
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", pixels) + chunk(b"IEND", b"")
    )


def float_wav(value: float, seconds: float = 2.0, rate: int = 16_000) -> bytes:
    """A 32-bit float WAV whose every sample is ``value`` (NaN, inf)."""
    import soundfile

    samples = np.full(int(seconds * rate), value, dtype=np.float32)
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="FLOAT")
    return out.getvalue()


def nan_in_speech(speech: np.ndarray, rate: int = 16_000) -> bytes:
    """Real speech with one NaN sample in the middle: the check cannot be a peak test."""
    import soundfile

    samples = speech.astype(np.float32).copy()
    samples[samples.size // 2] = np.nan
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="FLOAT")
    return out.getvalue()


# --------------------------------------------------------------------------- forged updates

SECRET_TOKEN_HEADER = "X-Telegram-Bot-Api-Secret-Token"
FORGED_UPDATE_ID = 900_000  # far above the emulator's own update ids


def command_update(*, user_id: int, chat_id: int, text: str, update_id: int) -> dict[str, object]:
    """A private-chat command update as Telegram would POST it, with any sender id."""
    command = text.split()[0]
    person = {"id": user_id, "is_bot": False, "first_name": "Falso"}
    return {
        "update_id": update_id,
        "message": {
            "message_id": update_id,
            "date": 1_700_000_000,
            "chat": {"id": chat_id, "type": "private", "first_name": "Falso"},
            "from": person,
            "text": text,
            "entities": [{"type": "bot_command", "offset": 0, "length": len(command)}],
        },
    }


def post_headers_only(url: str, headers: dict[str, str], timeout: float = 10.0) -> int:
    """The HTTP status a webhook answers to a POST's headers alone (the body never sent):
    a listener that waits for the body times out here (socket.timeout)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    assert parts.hostname == LOOPBACK and parts.port is not None, url
    lines = [f"POST {parts.path} HTTP/1.1", f"Host: {parts.netloc}"]
    lines += [f"{name}: {value}" for name, value in headers.items()]
    with socket.create_connection((LOOPBACK, parts.port), timeout=timeout) as connection:
        connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        status_line = connection.makefile("rb").readline()
    return int(status_line.split()[1])


def post_update(
    url: str,
    update: dict[str, object],
    secret: str | None,
    *,
    content_type: str = "application/json",
) -> int:
    """POST ``update`` to a webhook (loopback only) as a forger would; the HTTP status."""
    import json
    import urllib.error
    import urllib.request
    from urllib.parse import urlsplit

    assert urlsplit(url).hostname == LOOPBACK, url
    headers = {"Content-Type": content_type}
    if secret is not None:
        headers[SECRET_TOKEN_HEADER] = secret
    request = urllib.request.Request(
        url, data=json.dumps(update).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


# --------------------------------------------------------------------------- forged buttons

CALLBACK_DATA_BYTES = 64  # the most a button press may carry (Bot API)
# What may follow a button's prefix in forged data: none of it is a number the bot sent.
FORGED_NUMBERS = (
    "9" * 56,  # fills the 64 bytes after "annulla:": too big for an SQLite INTEGER
    "9" * 19,  # one digit past the longest id the bot reads
    "\u0661\u0662\u0663",  # Arabic-Indic digits: \d and str.isdigit() accept them
    "\u00b2",  # a superscript two: str.isdigit() is True, int() raises
    "12\n",  # "$" accepts a trailing newline
    "12 ",
    "-12",
    "1_000",
    "",
)
# Data no button of the bot carries, whatever the handler it reaches.
FORGED_OTHER_DATA = (
    "forget:yes:\u00b2",
    "forget:yes:" + "9" * 50,
    "vocab:clear:\u00b2",
    "imp:out:../../etc/passwd",
    "imp:" + "9" * 60,
    "nonsense",
    "x" * CALLBACK_DATA_BYTES,
)


def forged_button_data(prefixes: tuple[str, ...]) -> list[str]:
    """Button data a modified client can send: each prefix with every forged number, then
    data for no button at all; each within the Bot API's 64 bytes."""
    forged = [f"{prefix}{number}" for prefix in prefixes for number in FORGED_NUMBERS]
    forged += FORGED_OTHER_DATA
    return [data for data in forged if len(data.encode()) <= CALLBACK_DATA_BYTES]
