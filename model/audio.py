"""Decode any audio or video input to float32 mono 16 kHz samples with PyAV.

Limits are enforced in three places because each alone can be fooled (NOTES §4): the
input's size, the container's declared duration (probed before decoding), and the
number of decoded samples (chained OGG files declare no duration; a tiny Opus file can
hold hours of silence).
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np

SAMPLE_RATE = 16_000
# Digital silence: every sample below this is "nothing was said".
SILENCE_PEAK = 1e-4
_MICROSECONDS = 1_000_000

AudioSource = bytes | bytearray | memoryview | BinaryIO | str | os.PathLike[str]


class AudioError(Exception):
    """Input that cannot be turned into speech samples. ``reason`` is machine-readable."""

    reason = "invalid"


class EmptyAudioError(AudioError):
    reason = "empty"


class CorruptAudioError(AudioError):
    reason = "corrupt"


class NoAudioStreamError(AudioError):
    reason = "no_audio"


class FileTooLargeError(AudioError):
    reason = "too_big"


class AudioTooLongError(AudioError):
    reason = "too_long"


class AudioTooShortError(AudioError):
    reason = "too_short"


class SilentAudioError(AudioError):
    reason = "silent"


@dataclass(frozen=True, kw_only=True)
class AudioLimits:
    max_seconds: float = 1800.0
    min_seconds: float = 0.3
    max_bytes: int = 20 * 1024 * 1024


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    duration: float

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE


def _open_source(source: AudioSource, max_bytes: int) -> str | BinaryIO:
    """Check the size and return something ``av.open`` accepts."""
    if isinstance(source, bytes | bytearray | memoryview):
        size = len(source)
        opened: str | BinaryIO = io.BytesIO(bytes(source))
    elif isinstance(source, str | os.PathLike):
        path = Path(source)
        try:
            size = path.stat().st_size
        except OSError as exc:
            raise CorruptAudioError(f"cannot read {path.name}: {exc.strerror}") from exc
        opened = str(path)
    else:
        position = source.tell()
        size = source.seek(0, io.SEEK_END) - position
        source.seek(position)
        opened = source
    if size == 0:
        raise EmptyAudioError("the file is empty")
    if size > max_bytes:
        raise FileTooLargeError(f"{size} bytes is over the limit of {max_bytes}")
    return opened


def _declared_duration(container: object, stream: object) -> float | None:
    if getattr(container, "duration", None):
        return container.duration / _MICROSECONDS  # type: ignore[attr-defined]
    if getattr(stream, "duration", None) and getattr(stream, "time_base", None):
        return float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    return None


def decode_audio(source: AudioSource, *, limits: AudioLimits | None = None) -> DecodedAudio:
    """Decode ``source`` (bytes, a file object or a path) to float32 mono 16 kHz."""
    import av

    limits = limits or AudioLimits()
    opened = _open_source(source, limits.max_bytes)
    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    try:
        container = av.open(opened, mode="r", metadata_errors="ignore")
    except av.FFmpegError as exc:
        raise CorruptAudioError("not a readable audio or video file") from exc
    chunks: list[np.ndarray] = []
    total = 0
    with container:
        if not container.streams.audio:
            raise NoAudioStreamError("the file has no audio track")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        if declared is not None and declared > limits.max_seconds:
            raise AudioTooLongError(f"{declared:.0f} s is over the limit of {limits.max_seconds} s")
        resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
        try:
            for frame in container.decode(stream):
                for out in resampler.resample(frame):
                    total += _append(chunks, out, total, max_samples, limits)
            for out in resampler.resample(None):
                total += _append(chunks, out, total, max_samples, limits)
        except av.FFmpegError as exc:
            # A damaged tail still leaves usable speech (faster-whisper does the same).
            if not chunks:
                raise CorruptAudioError("the audio data cannot be decoded") from exc
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    duration = samples.size / SAMPLE_RATE
    if samples.size == 0:
        raise EmptyAudioError("the file contains no audio")
    if duration < limits.min_seconds:
        raise AudioTooShortError(f"{duration:.2f} s is under the minimum of {limits.min_seconds} s")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise SilentAudioError("the audio is silent")
    return DecodedAudio(samples=samples, duration=duration)


def _append(
    chunks: list[np.ndarray], frame: object, total: int, max_samples: int, limits: AudioLimits
) -> int:
    array = frame.to_ndarray().reshape(-1)  # type: ignore[attr-defined]
    if total + array.size > max_samples:
        raise AudioTooLongError(f"the audio is longer than {limits.max_seconds} s")
    chunks.append(array.astype(np.float32, copy=False))
    return array.size


def probe_duration(source: AudioSource) -> float | None:
    """The container's declared duration in seconds, without decoding (None if unknown)."""
    import av

    opened = _open_source(source, max_bytes=2**63 - 1)
    try:
        with av.open(opened, mode="r", metadata_errors="ignore") as container:
            if not container.streams.audio:
                raise NoAudioStreamError("the file has no audio track")
            return _declared_duration(container, container.streams.audio[0])
    except av.FFmpegError as exc:
        raise CorruptAudioError("not a readable audio or video file") from exc
