"""Issue 18: decoding runs in a child process under memory, CPU and wall-clock limits.

The hostile files are real containers that FFmpeg accepts (tests/support/hostile_media.py). Each
one is decoded through the sandbox and refused as damaged, with the child's peak memory
measured (``VmHWM`` of the decoder process) and held under the sandbox's limit.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from model.asr.audio import (
    MAX_CHANNELS,
    MAX_SAMPLE_RATE,
    AudioLimits,
    CorruptAudioError,
    decode_audio,
    decode_in_process,
)
from model.asr.limits import GIB, SandboxLimits
from model.asr.sandbox import DecoderPool, SandboxFailure
from tests.support import hostile_media
from tests.support.speech import synthesize

SANDBOX = SandboxLimits(memory_bytes=GIB)
IN_PROCESS = SandboxLimits(enabled=False)
# Refusals are quick: a killed or over-limit decode must not hold a worker for long.
REFUSAL_SECONDS = 10.0

HOSTILE: dict[str, Callable[[], bytes]] = {
    "mp4-4-tracks-of-40M-samples": hostile_media.mp4_sample_table_bomb,
    "wav-declaring-200MHz": hostile_media.wav_declaring_rate,
    "mp3-rate-change-44k-to-48k": hostile_media.mp3_rate_change,
    "float-wav-of-3e38": hostile_media.huge_float_wav,
    "wav-of-64-channels": hostile_media.wav_with_channels,
}


@pytest.fixture
def pool() -> Iterator[DecoderPool]:
    pool = DecoderPool(SANDBOX)
    yield pool
    pool.close()


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize(
        "Buongiorno, questa è una nota vocale.", tmp_path_factory.mktemp("s") / "n.ogg"
    )


def test_the_bomb_is_small_and_declares_tens_of_millions_of_samples() -> None:
    """What the first case sends: under 4 KB, yet 4 x 40M samples in its tables."""
    import io

    import av

    data = hostile_media.mp4_sample_table_bomb(samples=1_000, tracks=4)  # cheap to open
    assert len(hostile_media.mp4_sample_table_bomb()) < 4_000
    with av.open(io.BytesIO(data)) as container:
        assert [stream.frames for stream in container.streams.audio] == [1_000] * 4


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_refused_by_the_sandbox_under_its_memory_limit(
    pool: DecoderPool, name: str
) -> None:
    data = HOSTILE[name]()
    started = time.monotonic()
    result = pool.decode(None, data, AudioLimits(sandbox=SANDBOX))
    assert time.monotonic() - started < REFUSAL_SECONDS
    assert (result.samples, result.reason) == (None, "corrupt"), result
    # Measured, not assumed: the decoder's peak resident memory stayed under the limit.
    assert result.peak_rss is not None and 0 < result.peak_rss < SANDBOX.memory_bytes


@pytest.mark.parametrize("name", list(HOSTILE))
def test_hostile_file_is_a_damaged_file_for_decode_audio(name: str) -> None:
    with pytest.raises(CorruptAudioError):
        decode_audio(HOSTILE[name](), limits=AudioLimits(sandbox=SANDBOX))


def test_the_memory_limit_is_what_stops_the_bomb(pool: DecoderPool) -> None:
    """One track of 40M samples: refused in a 1 GiB child, whose peak stays below 1 GiB,
    while the same file opened without the limit needs more than that (measured in a
    child with a looser 4 GiB cap, so a regression cannot take the test machine down)."""
    data = hostile_media.mp4_sample_table_bomb(tracks=1)
    assert pool.decode(None, data, AudioLimits(sandbox=SANDBOX)).reason == "corrupt"
    loose = DecoderPool(SandboxLimits(memory_bytes=4 * GIB))
    try:
        result = loose.decode(None, data, AudioLimits(sandbox=loose.limits))
    finally:
        loose.close()
    assert result.reason == "corrupt"  # declared frames never decode
    assert result.peak_rss is not None and result.peak_rss > SANDBOX.memory_bytes


def test_rate_and_channel_checks_also_hold_in_process() -> None:
    import io

    for build in (hostile_media.wav_declaring_rate, hostile_media.wav_with_channels):
        with pytest.raises(CorruptAudioError, match=r"sample rate|channels"):
            decode_in_process(io.BytesIO(build()), AudioLimits(sandbox=IN_PROCESS))
    at_limit = hostile_media.wav_declaring_rate(MAX_SAMPLE_RATE, data_bytes=MAX_SAMPLE_RATE)
    assert decode_in_process(io.BytesIO(at_limit), AudioLimits(sandbox=IN_PROCESS)).size > 0
    eight = hostile_media.wav_with_channels(MAX_CHANNELS)
    assert decode_in_process(io.BytesIO(eight), AudioLimits(sandbox=IN_PROCESS)).size > 0


def test_sandboxed_decode_equals_in_process_decode(speech: Path) -> None:
    sandboxed = decode_audio(speech, limits=AudioLimits(sandbox=SANDBOX))
    direct = decode_audio(speech, limits=AudioLimits(sandbox=IN_PROCESS))
    from_bytes = decode_audio(speech.read_bytes(), limits=AudioLimits(sandbox=SANDBOX))
    np.testing.assert_array_equal(sandboxed.samples, direct.samples)
    np.testing.assert_array_equal(from_bytes.samples, direct.samples)
    assert sandboxed.samples.flags.writeable


def test_the_pool_keeps_a_warm_child_and_replaces_a_failed_one(
    pool: DecoderPool, speech: Path
) -> None:
    limits = AudioLimits(sandbox=SANDBOX)
    assert pool.decode(str(speech), b"", limits).samples is not None
    (child,) = pool._idle
    assert pool.decode(str(speech), b"", limits).samples is not None
    assert pool._idle == [child]  # reused: no process start per note
    starved = DecoderPool(SandboxLimits(cpu_per_audio_second=0.0, extra_seconds=0.0))
    try:
        with pytest.raises(SandboxFailure, match="out of time"):
            starved.decode(str(speech), b"", AudioLimits(sandbox=starved.limits))
        # The killed child is not reused: a fresh one was started in its place.
        (replacement,) = starved._idle
        assert replacement.requests == 0 and replacement.alive
        assert not starved._busy
    finally:
        starved.close()


def test_a_killed_decode_is_a_damaged_file(speech: Path) -> None:
    """The wall-clock kill through ``decode_audio``: a clean CorruptAudioError."""
    starved = SandboxLimits(cpu_per_audio_second=0.0, extra_seconds=0.0)
    with pytest.raises(CorruptAudioError, match="stopped"):
        decode_audio(speech, limits=AudioLimits(sandbox=starved))


def test_close_kills_the_children(speech: Path) -> None:
    pool = DecoderPool(SANDBOX)
    pool.decode(str(speech), b"", AudioLimits(sandbox=SANDBOX))
    (child,) = pool._idle
    pool.close()
    assert not child.alive
    with pytest.raises(SandboxFailure):
        pool.decode(str(speech), b"", AudioLimits(sandbox=SANDBOX))


def test_the_decoder_sees_none_of_the_bots_secrets(
    pool: DecoderPool, speech: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("WHISPER_IT_TELEGRAM_TOKEN", "123:segreto")
    assert pool.decode(str(speech), b"", AudioLimits(sandbox=SANDBOX)).samples is not None
    (child,) = pool._idle
    environment = Path(f"/proc/{child.process.pid}/environ").read_bytes()
    assert b"segreto" not in environment and b"WHISPER_IT" not in environment


def test_the_cpu_limit_kills_a_decoder_without_a_core_file(pool: DecoderPool, speech: Path) -> None:
    """RLIMIT_CPU is a real kernel limit in the child (SIGXCPU), and cores are off."""

    pool.decode(str(speech), b"", AudioLimits(sandbox=SANDBOX))
    (child,) = pool._idle
    limits = Path(f"/proc/{child.process.pid}/limits").read_text().splitlines()
    core = next(line for line in limits if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]
    memory = next(line for line in limits if line.startswith("Max address space"))
    assert int(memory.split()[3]) == SANDBOX.memory_bytes
    cpu = next(line for line in limits if line.startswith("Max cpu time"))
    # The soft limit the last request set: its CPU so far plus the request's budget.
    assert 1 <= int(cpu.split()[3]) <= 5 + SANDBOX.extra_seconds + 60


def test_a_big_valid_file_in_memory_decodes_in_the_child(tmp_path: Path) -> None:
    """Local Bot API mode accepts 2 GB files, read into memory: piped to the child they had
    to fit in its memory limit beside FFmpeg and a valid file was answered as damaged.
    Here 200 MB against a 320 MiB child (piped, it fails the same way)."""
    import tempfile

    data = hostile_media.mp4_padded(200 * 2**20)
    limits = AudioLimits(max_bytes=len(data), sandbox=SandboxLimits(memory_bytes=320 * 2**20))
    spills = set(Path(tempfile.gettempdir()).glob("whisper-it-decode-*"))
    audio = decode_audio(data, limits=limits)
    assert 4.5 < audio.duration < 5.5
    assert set(Path(tempfile.gettempdir()).glob("whisper-it-decode-*")) == spills  # removed
