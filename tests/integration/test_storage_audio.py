"""The content-addressed FLAC store, on real files and real espeak speech."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile

from storage.audio_store import (
    SAMPLE_RATE,
    AudioNotFoundError,
    AudioStore,
    InvalidAudioError,
)
from tests.support.speech import synthesize_array


@pytest.fixture(scope="module")
def speech(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return synthesize_array("Il treno per Milano parte alle otto.", tmp_path_factory.mktemp("s"))


def test_put_writes_16_bit_flac_named_by_content(tmp_path: Path, speech: np.ndarray) -> None:
    store = AudioStore(tmp_path / "audio")
    ref = store.put(speech)
    assert ref.path == tmp_path / "audio" / ref.sha256[:2] / f"{ref.sha256}.flac"
    assert ref.duration == pytest.approx(speech.size / SAMPLE_RATE)
    info = soundfile.info(ref.path)
    assert (info.format, info.subtype, info.samplerate, info.channels) == (
        "FLAC",
        "PCM_16",
        SAMPLE_RATE,
        1,
    )
    restored = store.get(ref.sha256)
    assert restored.dtype == np.float32
    assert restored.shape == speech.shape
    assert np.max(np.abs(restored - speech)) < 1e-4  # 16-bit quantisation only
    # Nothing but the blob: no temporary file left behind.
    assert [p.name for p in (tmp_path / "audio").rglob("*") if p.is_file()] == [ref.path.name]


def test_same_audio_is_stored_once(tmp_path: Path, speech: np.ndarray) -> None:
    store = AudioStore(tmp_path)
    first = store.put(speech)
    inode = first.path.stat().st_ino
    again = store.put(speech.copy())
    # float64 input with the same 16-bit content is the same audio
    as_double = store.put(speech.astype(np.float64))
    assert first == again == as_double
    # Not written again (same file); only its age is refreshed, for the orphan sweep.
    assert first.path.stat().st_ino == inode
    other = store.put(speech * 0.5)
    assert other.sha256 != first.sha256
    assert sorted(store) == sorted([first.sha256, other.sha256])


def test_round_trip_of_stored_audio_is_stable(tmp_path: Path, speech: np.ndarray) -> None:
    """Decoding a blob and storing it again gives the same hash (no drift on re-import)."""
    store = AudioStore(tmp_path)
    ref = store.put(speech)
    assert store.put(store.get(ref.sha256)).sha256 == ref.sha256


def test_delete_and_missing(tmp_path: Path, speech: np.ndarray) -> None:
    store = AudioStore(tmp_path)
    ref = store.put(speech)
    assert store.exists(ref.sha256)
    assert store.delete(ref.sha256) is True
    assert not store.exists(ref.sha256)
    assert store.delete(ref.sha256) is False
    with pytest.raises(AudioNotFoundError):
        store.get(ref.sha256)
    # Stored again after deletion: the same name comes back.
    assert store.put(speech).sha256 == ref.sha256


@pytest.mark.parametrize(
    "samples",
    [
        np.zeros((2, 100), dtype=np.float32),
        np.zeros(0, dtype=np.float32),
        np.arange(10, dtype=np.int16),
        np.array([0.1, np.nan], dtype=np.float32),
    ],
    ids=["stereo", "empty", "int16", "nan"],
)
def test_put_refuses_what_is_not_mono_float_audio(tmp_path: Path, samples: np.ndarray) -> None:
    with pytest.raises(InvalidAudioError):
        AudioStore(tmp_path).put(samples)


@pytest.mark.parametrize("name", ["../../etc/passwd", "ABC", "a" * 63, "g" * 64])
def test_malformed_hashes_never_become_paths(tmp_path: Path, name: str) -> None:
    with pytest.raises(InvalidAudioError):
        AudioStore(tmp_path).path(name)


def test_loud_input_is_clipped_not_wrapped(tmp_path: Path) -> None:
    store = AudioStore(tmp_path)
    ref = store.put(np.array([2.0, -2.0, 0.5] * 1000, dtype=np.float32))
    restored = store.get(ref.sha256)
    assert restored[0] == pytest.approx(1.0, abs=1e-4)
    assert restored[1] == pytest.approx(-1.0, abs=1e-4)
