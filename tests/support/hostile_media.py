"""Hostile media of issue 18: files that cost the decoder memory or CPU, or break PyAV.

Each builder returns the bytes an attacker would send. Unlike ``hostile_inputs`` these
are real media containers that FFmpeg accepts; what makes them hostile is what they
declare (millions of samples, a 200 MHz sample rate) or hold (a rate change, 3e38).
"""

from __future__ import annotations

import io
import struct
from collections.abc import Iterator

import numpy as np

from tests.support.media_server import MediaServer

_MP4_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl"}
_AAC_FRAME = 1024


def _tone(seconds: float, rate: int) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32)[None, :]


def _encode(codec: str, container: str, seconds: float, rate: int) -> bytes:
    import av

    out = io.BytesIO()
    with av.open(out, "w", format=container) as muxer:
        stream = muxer.add_stream(codec, rate=rate)
        stream.layout = "mono"
        tone = _tone(seconds, rate)
        for start in range(0, tone.shape[1], _AAC_FRAME):
            frame = av.AudioFrame.from_ndarray(
                tone[:, start : start + _AAC_FRAME].copy(), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            for packet in stream.encode(frame):
                muxer.mux(packet)
        for packet in stream.encode(None):
            muxer.mux(packet)
    return out.getvalue()


def _boxes(data: bytes | bytearray, start: int, end: int) -> Iterator[tuple[int, int, bytes]]:
    offset = start
    while offset + 8 <= end:
        size, kind = struct.unpack(">I4s", data[offset : offset + 8])
        yield offset, size, kind
        offset += size


def mp4_sample_table_bomb(samples: int = 40_000_000, tracks: int = 4) -> bytes:
    """An M4A of a few hundred bytes of AAC whose ``tracks`` tracks each declare
    ``samples`` samples: FFmpeg builds a 24-byte index entry per sample inside ``av.open``
    (about 1.5 GB of peak memory per 40M-sample track, before any duration check)."""
    data = bytearray(_encode("aac", "mp4", 0.05, 44_100))

    def walk(start: int, end: int) -> None:
        for offset, size, kind in _boxes(data, start, end):
            if kind in _MP4_CONTAINERS:
                walk(offset + 8, offset + size)
            elif kind == b"stts":  # one entry: `samples` samples of 1024 ticks
                struct.pack_into(">III", data, offset + 12, 1, samples, _AAC_FRAME)
            elif kind == b"stsc":  # one chunk holding them all
                struct.pack_into(">IIII", data, offset + 12, 1, 1, samples, 1)
            elif kind == b"stsz":  # a constant sample size: no table needed
                struct.pack_into(">II", data, offset + 12, 1, samples)

    walk(0, len(data))
    for offset, size, kind in _boxes(data, 0, len(data)):
        if kind == b"moov":  # the muxer writes it after mdat: no chunk offset moves
            moov = bytes(data[offset : offset + size])
            trak = next(moov[o : o + s] for o, s, k in _boxes(moov, 8, size) if k == b"trak")
            grown = moov + trak * (tracks - 1)
            grown = struct.pack(">I", len(grown)) + grown[4:]
            return bytes(data[:offset]) + grown + bytes(data[offset + size :])
    raise AssertionError("the muxer wrote no moov box")


def wav_declaring_rate(rate: int = 200_000_003, data_bytes: int = 2_000) -> bytes:
    """A 16-bit mono PCM WAV whose header declares ``rate`` Hz (issue 18: 200,000,003)."""
    samples = (np.sin(np.arange(data_bytes // 2) / 5) * 8_000).astype("<i2").tobytes()
    fmt = struct.pack("<HHIIHH", 1, 1, rate, (rate * 2) & 0xFFFFFFFF, 2, 16)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(samples)) + samples
    return b"RIFF" + struct.pack("<I", len(body)) + body


def mp3_rate_change(seconds: float = 0.5) -> bytes:
    """An MP3 switching from 44.1 to 48 kHz mid-file: PyAV's resampler raises ValueError."""
    return _encode("libmp3lame", "mp3", seconds, 44_100) + _encode(
        "libmp3lame", "mp3", seconds, 48_000
    )


def huge_float_wav(value: float = 3e38, seconds: float = 1.0, rate: int = 16_000) -> bytes:
    """A 32-bit float WAV alternating ``+value`` and ``-value``: finite, but not audio."""
    import soundfile

    samples = np.full(int(seconds * rate), value, dtype=np.float32)
    samples[1::2] *= -1
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="FLOAT")
    return out.getvalue()


def wav_with_channels(channels: int = 64, seconds: float = 0.5, rate: int = 16_000) -> bytes:
    """A PCM WAV with ``channels`` channels (FFmpeg accepts many more than a recording has)."""
    import soundfile

    samples = np.tile(_tone(seconds, rate).T, (1, channels))
    out = io.BytesIO()
    soundfile.write(out, samples, rate, format="WAV", subtype="PCM_16")
    return out.getvalue()


def sample_aes_playlist(internal: MediaServer) -> str:
    return (
        "#EXTM3U\n#EXT-X-VERSION:5\n#EXT-X-TARGETDURATION:10\n#EXT-X-MEDIA-SEQUENCE:0\n"
        f'#EXT-X-KEY:METHOD=SAMPLE-AES,URI="{internal.url("key-from-ffmpeg")}",'
        "IV=0x00000000000000000000000000000000\n"
        f"#EXTINF:10.0,\n{internal.url('internal-admin/segment.ts')}\n#EXT-X-ENDLIST\n"
    )


def mp4_padded(pad_bytes: int, seconds: float = 5.0) -> bytes:
    """A valid AAC tone followed by a ``free`` box of ``pad_bytes``: big, yet cheap to
    decode (the demuxer skips the box), as a long video's file would be."""
    return (
        _encode("aac", "mp4", seconds, 16_000)
        + struct.pack(">I", pad_bytes + 8)
        + b"free"
        + (bytes(pad_bytes))
    )
