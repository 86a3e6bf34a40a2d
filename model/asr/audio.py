"""Decode any audio or video input to float32 mono 16 kHz samples with PyAV.

Limits are enforced in three places because each alone can be fooled (NOTES §4): the
input's size, the container's declared duration (probed before decoding), and the
number of decoded samples (chained OGG files declare no duration; a tiny Opus file can
hold hours of silence).

Input is hostile until decoded (DESIGN "Trust boundary", NOTES §4): FFmpeg picks its
demuxer from the *content*, and some demuxers are playlists that open other files (concat,
hls, image2), sockets (sdp, rtp) or URLs. So every input is handed to FFmpeg as a Python
file object (a path is opened here, never by FFmpeg), only the containers a voice note, an
audio or a video file can be are allowed (``ALLOWED_DEMUXERS``), and no protocol at all is
allowed: a demuxer that tries to open anything besides the one stream it was given fails.
Decoded samples that are not finite (a float WAV of NaNs) or far beyond full scale are
refused as damaged, and so are sample rates and channel counts no recording has.

FFmpeg itself runs in a child process with an address-space, CPU and wall-clock limit
(``model.asr.sandbox``): the checks here cannot stop what the demuxer does inside
``av.open`` (an MP4 whose sample tables declare millions of samples).
"""

from __future__ import annotations

import contextlib
import io
import os
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np

from model.asr.limits import AudioLimits

SAMPLE_RATE = 16_000
# Digital silence: every sample below this is "nothing was said".
SILENCE_PEAK = 1e-4
_MICROSECONDS = 1_000_000
# In-memory media bigger than this share of the decoder child's memory limit reaches it as
# a temporary file it opens itself: piped, it had to fit in that memory beside FFmpeg, and
# a valid 750 MB file (local Bot API mode allows 2 GB) was answered as damaged.
SPILL_SHARE_OF_CHILD_MEMORY = 0.25
# Input formats accepted before any resampler is built (FFmpeg's swresample builds filters
# sized by the rate ratio: 200 MHz costs seconds of CPU and gigabytes).
MIN_SAMPLE_RATE = 4_000
MAX_SAMPLE_RATE = 384_000
MAX_CHANNELS = 8
# Decoded float samples live in [-1, 1]; float files may exceed it a little (+24 dBFS
# here), never by orders of magnitude.
MAX_AMPLITUDE = 16.0

# FFmpeg demuxer names (``ffmpeg -demuxers``) of the containers users send: Telegram voice
# notes (ogg/opus), phone recordings (mov/mp4/m4a/3gp, amr, caf, aac), music and podcast
# files (mp3, flac, wav/w64, aiff, ogg/vorbis, asf/wma), and videos (mov/mp4, matroska/webm,
# avi, flv, mpeg-ps, mpeg-ts). FFmpeg matches each comma-separated element against a
# demuxer's own name list ("mov" matches "mov,mp4,m4a,3gp,3g2,mj2"). Deliberately absent:
# every demuxer that reads a list of other inputs or opens sockets (concat/ffconcat, hls,
# dash, sdp, rtp, rtsp, image2, subfile, tee, data/text formats ...).
ALLOWED_DEMUXERS: tuple[str, ...] = (
    "ogg",
    "matroska",
    "mov",
    "mp3",
    "wav",
    "w64",
    "flac",
    "aac",
    "amr",
    "amrnb",
    "amrwb",
    "aiff",
    "caf",
    "asf",
    "avi",
    "flv",
    "mpeg",
    "mpegts",
)
# The input always arrives as a file object (custom I/O, no protocol involved), so the
# protocol whitelist names no real protocol: any attempt to open a further file, socket or
# URL from inside a container fails instead of reaching the disk or the network.
NO_PROTOCOL = "none"
_FFMPEG_OPTIONS: dict[str, str] = {
    "format_whitelist": ",".join(ALLOWED_DEMUXERS),
    "protocol_whitelist": NO_PROTOCOL,
}

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


_ERRORS_BY_REASON: dict[str, type[AudioError]] = {
    cls.reason: cls
    for cls in (
        EmptyAudioError,
        CorruptAudioError,
        NoAudioStreamError,
        FileTooLargeError,
        AudioTooLongError,
        AudioTooShortError,
        SilentAudioError,
    )
}


@dataclass(frozen=True)
class DecodedAudio:
    samples: np.ndarray  # float32, mono, SAMPLE_RATE
    duration: float

    @property
    def sample_rate(self) -> int:
        return SAMPLE_RATE


@contextlib.contextmanager
def _opened_source(source: AudioSource, max_bytes: int) -> Iterator[BinaryIO]:
    """Check the size and yield a binary file object for :func:`_open_container`.

    A path is opened here rather than by FFmpeg, so FFmpeg never needs a protocol.
    """
    with contextlib.ExitStack() as stack:
        if isinstance(source, bytes | bytearray | memoryview):
            size = len(source)
            opened: BinaryIO = io.BytesIO(bytes(source))
        elif isinstance(source, str | os.PathLike):
            path = Path(source)
            try:
                opened = stack.enter_context(path.open("rb"))
                size = os.fstat(opened.fileno()).st_size
            except OSError as exc:
                raise CorruptAudioError(f"cannot read {path.name}: {exc.strerror}") from exc
        else:
            position = source.tell()
            size = source.seek(0, io.SEEK_END) - position
            source.seek(position)
            opened = source
        if size == 0:
            raise EmptyAudioError("the file is empty")
        if size > max_bytes:
            raise FileTooLargeError(f"{size} bytes is over the limit of {max_bytes}")
        yield opened


# Demuxers without an index, whose duration FFmpeg may only estimate from the first
# frames' bitrate (raw ADTS AAC, MP3 without a Xing header): a file starting in silence
# read as 6,809 s for 402. Those are not refused on it; the decoded samples decide.
ESTIMATED_DURATION_FORMATS = frozenset({"aac", "mp3"})
# Damaged packets in a row that end decoding (one is skipped, as FFmpeg's CLI does).
MAX_BAD_PACKETS_IN_A_ROW = 50


def _open_container(opened: BinaryIO) -> Any:
    """``av.open`` restricted to media containers and to the one stream given."""
    import av

    try:
        return av.open(opened, mode="r", metadata_errors="ignore", options=_FFMPEG_OPTIONS)
    except av.FFmpegError as exc:
        # Also what a refused demuxer (a playlist, an SDP file) raises: "not on whitelist".
        raise CorruptAudioError("not a readable audio or video file") from exc


def _declared_duration(container: object, stream: object) -> float | None:
    if getattr(container, "duration", None):
        return container.duration / _MICROSECONDS  # type: ignore[attr-defined]
    if getattr(stream, "duration", None) and getattr(stream, "time_base", None):
        return float(stream.duration * stream.time_base)  # type: ignore[attr-defined]
    return None


def decode_audio(source: AudioSource, *, limits: AudioLimits | None = None) -> DecodedAudio:
    """Decode ``source`` (bytes, a file object or a path) to float32 mono 16 kHz.

    FFmpeg runs in a sandboxed child process (``model.asr.sandbox``) unless
    ``limits.sandbox.enabled`` is off; a child that dies or overruns is a damaged file.
    """
    limits = limits or AudioLimits()
    with _opened_source(source, limits.max_bytes) as opened:
        if limits.sandbox.enabled:
            samples = _decode_sandboxed(source, opened, limits)
        else:
            samples = decode_in_process(opened, limits)
    duration = samples.size / SAMPLE_RATE
    if samples.size == 0:
        raise EmptyAudioError("the file contains no audio")
    if duration < limits.min_seconds:
        raise AudioTooShortError(f"{duration:.2f} s is under the minimum of {limits.min_seconds} s")
    if float(np.max(np.abs(samples))) < SILENCE_PEAK:
        raise SilentAudioError("the audio is silent")
    return DecodedAudio(samples=samples, duration=duration)


def _decode_sandboxed(source: AudioSource, opened: BinaryIO, limits: AudioLimits) -> np.ndarray:
    from model.asr.sandbox import SandboxFailure, shared_pool

    try:
        with _for_child(source, opened, limits) as (path, data):
            result = shared_pool(limits.sandbox).decode(path, data, limits)
    except SandboxFailure as exc:
        raise CorruptAudioError(f"the decoder was stopped: {exc}") from exc
    if result.samples is None:
        error = _ERRORS_BY_REASON.get(result.reason or "", CorruptAudioError)
        raise error(result.message)
    return result.samples


@contextlib.contextmanager
def _for_child(
    source: AudioSource, opened: BinaryIO, limits: AudioLimits
) -> Iterator[tuple[str | None, bytes]]:
    """What the decoder child gets: a path it opens, or the bytes themselves (small)."""
    if isinstance(source, str | os.PathLike):
        yield str(Path(source).resolve()), b""
        return
    data = opened.read()
    if len(data) <= limits.sandbox.memory_bytes * SPILL_SHARE_OF_CHILD_MEMORY:
        yield None, data
        return
    with tempfile.NamedTemporaryFile(prefix="whisper-it-decode-") as spill:
        spill.write(data)
        spill.flush()
        del data
        yield spill.name, b""


def decode_in_process(
    opened: BinaryIO,
    limits: AudioLimits,
    *,
    on_probe: Callable[[float | None], None] | None = None,
) -> np.ndarray:
    """Decode in this process, with no memory or CPU limit: the sandbox's child calls it.

    ``on_probe`` receives the container's declared duration once the file is open.
    Every failure of FFmpeg or PyAV is an ``AudioError``.
    """
    import av

    try:
        return _decode(opened, limits, on_probe)
    except (av.FFmpegError, ValueError, OverflowError, IndexError, RuntimeError) as exc:
        raise CorruptAudioError("the audio data cannot be decoded") from exc


def _check_format(rate: int, channels: int) -> None:
    """Refuse absurd rates and channel counts before any resampler is built for them."""
    if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
        raise CorruptAudioError(f"a sample rate of {rate} Hz is not audio")
    if not 1 <= channels <= MAX_CHANNELS:
        raise CorruptAudioError(f"{channels} channels is over the limit of {MAX_CHANNELS}")


def _decode(
    opened: BinaryIO, limits: AudioLimits, on_probe: Callable[[float | None], None] | None
) -> np.ndarray:
    import av

    chunks: list[np.ndarray] = []
    with _open_container(opened) as container:
        if not container.streams.audio:
            raise NoAudioStreamError("the file has no audio track")
        stream = container.streams.audio[0]
        declared = _declared_duration(container, stream)
        trusted = container.format.name not in ESTIMATED_DURATION_FORMATS
        if trusted and declared is not None and declared > limits.max_seconds:
            raise AudioTooLongError(f"{declared:.0f} s is over the limit of {limits.max_seconds} s")
        codec = stream.codec_context
        _check_format(codec.sample_rate, codec.channels)
        if on_probe is not None:
            on_probe(declared)
        try:
            _decode_packets(container, stream, chunks, limits)
        except av.FFmpegError as exc:
            # A damaged tail still leaves usable speech (faster-whisper does the same).
            if not chunks:
                raise CorruptAudioError("the audio data cannot be decoded") from exc
        if not chunks and stream.frames:
            # Frames declared, none decoded: what FFmpeg leaves when it could not allocate
            # the index of a container's sample tables (it logs the error and goes on).
            raise CorruptAudioError(f"{stream.frames} frames declared, none decodable")
    return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)


def _decode_packets(
    container: Any, stream: Any, chunks: list[np.ndarray], limits: AudioLimits
) -> None:
    """Decode ``stream`` packet by packet into ``chunks`` (16 kHz mono). A damaged packet is
    skipped, as ``ffmpeg -i`` does: stopping there dropped the rest of the file (a burst of
    bad bytes at 10% kept one minute of ten). A run of them ends the decoding."""
    import av

    max_samples = int(limits.max_seconds * SAMPLE_RATE)
    resampler = av.AudioResampler(format="flt", layout="mono", rate=SAMPLE_RATE)
    first: tuple[int, int] | None = None
    total = bad_in_a_row = 0
    for packet in container.demux(stream):
        try:
            frames = packet.decode()
        except av.InvalidDataError:
            bad_in_a_row += 1
            if bad_in_a_row > MAX_BAD_PACKETS_IN_A_ROW:
                raise
            continue
        bad_in_a_row = 0
        for frame in frames:
            shape = (frame.sample_rate, frame.layout.nb_channels)
            _check_format(*shape)
            if first is not None and shape != first:
                raise CorruptAudioError("the sample rate or channels change mid-file")
            first = shape
            for out in resampler.resample(frame):
                total += _append(chunks, out, total, max_samples, limits)
    for out in resampler.resample(None):
        total += _append(chunks, out, total, max_samples, limits)


def _append(
    chunks: list[np.ndarray], frame: object, total: int, max_samples: int, limits: AudioLimits
) -> int:
    array = frame.to_ndarray().reshape(-1)  # type: ignore[attr-defined]
    if total + array.size > max_samples:
        raise AudioTooLongError(f"the audio is longer than {limits.max_seconds} s")
    # NaN is not "silence" (every comparison with it is False) and crashes the PCM
    # conversion later; checked per frame so a long NaN file stops at its first frame.
    # The same test refuses absurd amplitudes (a float WAV of 3e38): NaN <= x is False.
    if not (np.abs(array) <= MAX_AMPLITUDE).all():
        raise CorruptAudioError("the audio holds non-finite or out-of-range samples")
    chunks.append(array.astype(np.float32, copy=False))
    return array.size


def probe_duration(source: AudioSource) -> float | None:
    """The container's declared duration in seconds, without decoding (None if unknown)."""
    with (
        _opened_source(source, max_bytes=2**63 - 1) as opened,
        _open_container(opened) as container,
    ):
        if not container.streams.audio:
            raise NoAudioStreamError("the file has no audio track")
        return _declared_duration(container, container.streams.audio[0])
