"""Decoding real files of every common kind, and every bad input from NOTES §4."""

from __future__ import annotations

import io
import subprocess
import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from model.audio import (
    SAMPLE_RATE,
    AudioLimits,
    AudioTooLongError,
    AudioTooShortError,
    CorruptAudioError,
    EmptyAudioError,
    FileTooLargeError,
    NoAudioStreamError,
    SilentAudioError,
    decode_audio,
    probe_duration,
)
from tests.speech import synthesize

SENTENCE = "Buongiorno a tutti, oggi parliamo del tempo a Roma."


def ffmpeg(*args: str) -> None:
    subprocess.run(["ffmpeg", "-y", "-loglevel", "error", *args], check=True)


@pytest.fixture(scope="module")
def wav(speech_dir: Path) -> Path:
    return synthesize(SENTENCE, speech_dir / "audio_ref.wav")


@pytest.fixture(scope="module")
def encoded(wav: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("encoded")
    files = {
        "ogg": ("-c:a", "libopus"),
        "mp3": ("-c:a", "libmp3lame"),
        "m4a": ("-c:a", "aac"),
        "wav": ("-c:a", "pcm_s16le", "-ar", "44100", "-ac", "2"),
    }
    paths = {}
    for ext, codec in files.items():
        paths[ext] = out / f"speech.{ext}"
        ffmpeg("-i", str(wav), *codec, str(paths[ext]))
    paths["mp4"] = out / "speech.mp4"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "color=c=black:s=64x48:d=5",
        "-i",
        str(wav),
        "-shortest",
        "-c:v",
        "libx264",
        "-c:a",
        "aac",
        str(paths["mp4"]),
    )
    return paths


@pytest.mark.parametrize("ext", ["ogg", "mp3", "m4a", "wav", "mp4"])
def test_every_format_decodes_to_the_same_audio(ext: str, wav: Path, encoded: dict) -> None:
    reference = decode_audio(wav)
    decoded = decode_audio(encoded[ext])
    assert decoded.samples.dtype == np.float32
    assert decoded.samples.ndim == 1
    assert decoded.sample_rate == SAMPLE_RATE
    # Codec priming/padding may add a few tens of milliseconds, no more.
    assert abs(decoded.duration - reference.duration) < 0.08
    assert 0.05 < float(np.abs(decoded.samples).max()) <= 1.0


def test_bytes_file_objects_and_paths_agree(encoded: dict) -> None:
    path = encoded["ogg"]
    from_path = decode_audio(path)
    from_bytes = decode_audio(path.read_bytes())
    from_file = decode_audio(io.BytesIO(path.read_bytes()))
    assert from_path.samples.size == from_bytes.samples.size == from_file.samples.size
    assert np.allclose(from_path.samples, from_bytes.samples)


def _raises_fast(error: type[Exception], source: object, **limits: float) -> None:
    started = time.perf_counter()
    with pytest.raises(error):
        decode_audio(source, limits=AudioLimits(**limits))  # type: ignore[arg-type]
    assert time.perf_counter() - started < 2.0


def test_empty_input() -> None:
    _raises_fast(EmptyAudioError, b"")


def test_random_bytes() -> None:
    _raises_fast(CorruptAudioError, np.random.default_rng(0).bytes(50_000))


def test_text_renamed_mp3(tmp_path: Path) -> None:
    fake = tmp_path / "song.mp3"
    fake.write_text("questo non è un mp3, è solo testo " * 100)
    _raises_fast(CorruptAudioError, fake)


def test_zero_length_wav_and_ogg(tmp_path: Path) -> None:
    wav = tmp_path / "zero.wav"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono", "-t", "0", str(wav))
    _raises_fast(EmptyAudioError, wav)
    ogg = tmp_path / "zero.ogg"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "0", "-c:a", "libopus", str(ogg))
    _raises_fast((EmptyAudioError, CorruptAudioError), ogg)  # type: ignore[arg-type]


def test_truncated_files(encoded: dict) -> None:
    # An OGG cut in half still holds the first half of the speech: keep what decodes.
    ogg = encoded["ogg"].read_bytes()
    full = decode_audio(ogg).duration
    half = decode_audio(ogg[: len(ogg) // 2]).duration
    assert 0.2 * full < half < 0.8 * full
    # An MP4 without its index (moov atom at the end) cannot be read at all.
    mp4 = encoded["mp4"].read_bytes()
    _raises_fast((CorruptAudioError, NoAudioStreamError), mp4[: len(mp4) // 3])  # type: ignore[arg-type]


def test_video_without_audio(tmp_path: Path) -> None:
    video = tmp_path / "mute.mp4"
    ffmpeg("-f", "lavfi", "-i", "color=c=blue:s=64x48:d=2", "-c:v", "libx264", str(video))
    _raises_fast(NoAudioStreamError, video)


def test_too_big_is_refused_before_decoding(encoded: dict) -> None:
    _raises_fast(FileTooLargeError, encoded["wav"], max_bytes=1000)


def test_too_short_and_silent(tmp_path: Path) -> None:
    short = (0.5 * np.sin(np.arange(1600) / 5)).astype(np.float32)  # 0.1 s of tone
    path = tmp_path / "short.wav"
    import soundfile

    soundfile.write(path, short, SAMPLE_RATE)
    _raises_fast(AudioTooShortError, path)
    silent = tmp_path / "silent.ogg"
    ffmpeg(
        "-f", "lavfi", "-i", "anullsrc=r=48000:cl=mono", "-t", "3", "-c:a", "libopus", str(silent)
    )
    _raises_fast(SilentAudioError, silent)


@pytest.fixture(scope="module")
def three_hours_of_silence(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """3 h of Opus silence in ~4 MB: 10 minutes encoded once, then stream-copied 18 times."""
    out = tmp_path_factory.mktemp("long")
    piece = out / "ten_minutes.ogg"
    ffmpeg(
        "-f",
        "lavfi",
        "-i",
        "anullsrc=r=48000:cl=mono",
        "-t",
        "600",
        "-c:a",
        "libopus",
        "-b:a",
        "6k",
        "-compression_level",
        "0",
        str(piece),
    )
    listing = out / "list.txt"
    listing.write_text("".join(f"file '{piece}'\n" for _ in range(18)))
    result = out / "three_hours.ogg"
    ffmpeg("-f", "concat", "-safe", "0", "-i", str(listing), "-c", "copy", str(result))
    return result


def test_three_hours_refused_from_the_declared_duration(three_hours_of_silence: Path) -> None:
    assert probe_duration(three_hours_of_silence) == pytest.approx(10_800, abs=1)
    assert three_hours_of_silence.stat().st_size < 20 * 2**20  # under Telegram's limit
    _raises_fast(AudioTooLongError, three_hours_of_silence)


def test_chained_ogg_without_duration_is_capped_while_decoding(encoded: dict) -> None:
    """Two OGG files glued together declare no usable duration: the sample cap stops them."""
    once = encoded["ogg"].read_bytes()
    chained = once * 40  # ~2.5 minutes of audio, in one byte string
    tracemalloc.start()
    try:
        _raises_fast(AudioTooLongError, chained, max_seconds=30.0)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decoding stopped at the cap: far less than the whole stream would need.
    assert peak < 30 * SAMPLE_RATE * 4 * 4
