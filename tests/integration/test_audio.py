"""Decoding real files of every common kind, and every bad input from NOTES §4."""

from __future__ import annotations

import io
import subprocess
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from model.asr.audio import (
    ALLOWED_DEMUXERS,
    SAMPLE_RATE,
    SILENCE_PEAK,
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
from model.asr.limits import SandboxLimits
from tests.support import hostile_inputs
from tests.support.speech import synthesize

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


def _raises_fast(error: type[Exception], source: object, **limits: object) -> None:
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


def test_a_damaged_packet_mid_file_loses_only_itself(tmp_path: Path) -> None:
    """Bad bytes at 10% of an MP3, and two MP3s joined with ``cat``: the whole file is
    decoded (stopping at the first bad packet kept 6 s of 60, and the first file alone)."""
    mp3 = tmp_path / "long.mp3"
    ffmpeg("-f", "lavfi", "-i", "anoisesrc=d=60:c=pink:a=0.3:r=48000", "-c:a", "libmp3lame",
           "-b:a", "64k", str(mp3))  # fmt: skip
    damaged = bytearray(mp3.read_bytes())
    at = len(damaged) // 10
    damaged[at : at + 64] = np.random.default_rng(1).integers(0, 256, 64, dtype=np.uint8).tobytes()
    assert decode_audio(bytes(damaged)).duration == pytest.approx(60, abs=0.5)
    intro = tmp_path / "intro.mp3"
    ffmpeg("-f", "lavfi", "-i", "sine=f=300:d=5", "-c:a", "libmp3lame", "-b:a", "128k",
           "-ar", "48000", str(intro))  # fmt: skip
    joined = intro.read_bytes() + mp3.read_bytes()
    assert decode_audio(joined).duration == pytest.approx(65, abs=1)


def test_an_estimated_duration_does_not_refuse_a_short_file(tmp_path: Path) -> None:
    """Raw AAC starting in silence: FFmpeg guesses 531 s from the first frames' bitrate for
    32 s of audio. The decoded samples decide (a real overrun is still refused)."""
    aac = tmp_path / "silence_first.aac"
    ffmpeg("-f", "lavfi", "-i", "anullsrc=r=44100:cl=mono:d=2", "-f", "lavfi", "-i",
           "anoisesrc=d=30:c=pink:a=0.5:r=44100", "-filter_complex",
           "[1]aformat=channel_layouts=mono[n];[0][n]concat=n=2:v=0:a=1", "-c:a", "aac",
           "-b:a", "64k", str(aac))  # fmt: skip
    assert probe_duration(aac) > 120
    assert decode_audio(aac, limits=AudioLimits(max_seconds=120)).duration == pytest.approx(
        32, abs=0.5
    )
    _raises_fast(AudioTooLongError, aac, max_seconds=20)


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
        # In this process: tracemalloc sees no memory of the sandbox's decoder processes.
        _raises_fast(
            AudioTooLongError, chained, max_seconds=30.0, sandbox=SandboxLimits(enabled=False)
        )
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # Decoding stopped at the cap: far less than the whole stream would need.
    assert peak < 30 * SAMPLE_RATE * 4 * 4


# --------------------------------------------------------------------------- hostile input
# Issue 10: FFmpeg chooses its demuxer from the content, and some demuxers are playlists.
# Each test first shows the attack works on an unrestricted ``av.open`` (so the test keeps
# its meaning if FFmpeg changes), then that decode_audio refuses it as a damaged file.


@pytest.fixture
def secret_in_cwd(tmp_path: Path, encoded: dict, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Another user's recording, in the working folder and next to the attacker's file."""
    secret = tmp_path / hostile_inputs.SECRET_NAME
    secret.write_bytes(encoded["ogg"].read_bytes())
    monkeypatch.chdir(tmp_path)
    return secret


def _unrestricted_audio_seconds(source: bytes | Path) -> float:
    """What FFmpeg reads with no demuxer or protocol restriction: the attack, reproduced."""
    import av

    opened = io.BytesIO(source) if isinstance(source, bytes) else str(source)
    with av.open(opened, mode="r") as container:
        frames = container.decode(container.streams.audio[0])
        return sum(frame.samples / frame.sample_rate for frame in frames)


def test_ffconcat_named_mp3_cannot_read_a_file_from_the_working_folder(
    secret_in_cwd: Path, tmp_path: Path
) -> None:
    document = hostile_inputs.ffconcat()
    fake = tmp_path / "nota.mp3"
    fake.write_bytes(document)
    assert len(document) < 40
    assert _unrestricted_audio_seconds(fake) > 1.0  # the secret's speech, read via concat
    sources: list[Callable[[], object]] = [
        lambda: fake,
        lambda: document,
        lambda: io.BytesIO(document),
    ]
    for source in sources:
        _raises_fast(CorruptAudioError, source())
        with pytest.raises(CorruptAudioError):
            probe_duration(source())  # type: ignore[arg-type]


def test_hls_playlist_fetches_nothing(secret_in_cwd: Path, media_server) -> None:
    """PyAV 18's FFmpeg does not pick hls from content alone; older and other builds do."""
    before = len(media_server.requests)
    for target in (hostile_inputs.SECRET_NAME, media_server.url("video.mp4")):
        _raises_fast(CorruptAudioError, hostile_inputs.hls_playlist(target))
    assert media_server.requests[before:] == []


def test_sdp_opens_no_socket_and_does_not_hold_the_worker() -> None:
    """Unrestricted, FFmpeg binds UDP ports for the SDP and waits ~10 s for RTP packets."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
        probe.bind((hostile_inputs.LOOPBACK, 0))
        port = probe.getsockname()[1]
    started = time.perf_counter()
    _raises_fast(CorruptAudioError, hostile_inputs.sdp_session(port))
    assert time.perf_counter() - started < 1.0
    # Nothing kept the port: FFmpeg never bound it.
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as again:
        again.bind((hostile_inputs.LOOPBACK, port))


@pytest.mark.parametrize(
    "build", [hostile_inputs.srt_subtitles, hostile_inputs.png_image], ids=["srt", "png"]
)
def test_other_demuxers_are_refused(build) -> None:
    _raises_fast(CorruptAudioError, build())


def test_allowed_demuxers_exist_in_this_ffmpeg() -> None:
    import av

    assert set(ALLOWED_DEMUXERS) <= set(av.formats_available)
    assert not {"concat", "hls", "sdp", "rtp", "rtsp", "image2", "dash"} & set(ALLOWED_DEMUXERS)


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf], ids=["nan", "inf", "-inf"])
def test_non_finite_samples_are_damaged(value: float) -> None:
    wav = hostile_inputs.float_wav(value)
    if np.isnan(value):
        # Why a peak test cannot catch it: every comparison with NaN is False.
        assert not float(np.max(np.abs(np.full(4, value)))) < SILENCE_PEAK
    _raises_fast(CorruptAudioError, wav)


def test_one_nan_in_real_speech_is_damaged(wav: Path) -> None:
    speech = decode_audio(wav).samples
    _raises_fast(CorruptAudioError, hostile_inputs.nan_in_speech(speech))
