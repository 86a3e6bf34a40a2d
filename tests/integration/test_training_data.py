"""Training data: serving-engine features, forced-language labels, augmentation, corpora."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from tests.support.speech import synthesize
from training.data import (
    N_FRAMES,
    DataError,
    Example,
    LabelEncoder,
    Perturbation,
    ServingFeatures,
    load_audio,
    pad_labels,
    perturb,
    prepare_corpus,
    read_manifest,
    replay_mix,
)


@pytest.fixture(scope="module")
def clip(speech_dir: Path) -> Path:
    return synthesize("Il treno per Milano parte alle otto.", speech_dir / "data-clip.wav")


def test_features_are_the_serving_engines(clip: Path) -> None:
    from faster_whisper.audio import pad_or_trim
    from faster_whisper.feature_extractor import FeatureExtractor
    from transformers import WhisperFeatureExtractor

    audio = load_audio(clip)
    features = ServingFeatures()(audio)
    assert features.shape == (80, N_FRAMES) and features.dtype == np.float32
    content = audio.size // 160
    # faster-whisper pads the log-mel with zeros (NOTES §2) ...
    assert np.all(features[:, content + 2 :] == 0.0)
    expected = pad_or_trim(FeatureExtractor(feature_size=80)(audio)[:, :-1])
    np.testing.assert_array_equal(features, expected)
    # ... where transformers pads the audio: its padded frames are not zero.
    hf = WhisperFeatureExtractor(feature_size=80)(audio, sampling_rate=16_000).input_features[0]
    assert np.all(hf[:, content + 2 :] != 0.0)


def test_labels_force_italian_transcription(model_cache: Path) -> None:
    from model.asr.sources import hf_dir

    encoder = LabelEncoder(hf_dir("packaged:whisper-base", cache_dir=model_cache).path,
                           language="it")  # fmt: skip
    ids = encoder("Ciao  a tutti")
    tokens = encoder.tokenizer.convert_ids_to_tokens(ids)
    assert tokens[:3] == ["<|it|>", "<|transcribe|>", "<|notimestamps|>"]
    assert tokens[-1] == "<|endoftext|>"
    assert encoder.tokenizer.decode(ids, skip_special_tokens=True) == " Ciao a tutti"
    padded = pad_labels([ids, ids[:3]])
    assert padded.shape == (2, len(ids)) and (padded[1, 3:] == -100).all()


def test_perturbation_changes_speed_and_adds_noise(clip: Path) -> None:
    audio = load_audio(clip)
    rng = np.random.default_rng(0)
    faster = perturb(audio, Perturbation(speed=1.25), rng=rng)
    assert abs(faster.size - audio.size / 1.25) <= 1
    noisy = perturb(audio, Perturbation(snr_db=10.0), rng=rng)
    residual = noisy - audio
    snr = 10 * np.log10(np.mean(audio**2) / np.mean(residual**2))
    assert 8.0 < snr < 12.0 and np.max(np.abs(noisy)) <= 1.0


def test_prepare_corpus_and_replay(tmp_path: Path, clip: Path) -> None:
    # The one TSV reader's rules (model/asr/tsv.py): paths inside the TSV's folder, every file
    # present; audio that cannot be decoded is skipped and counted.
    shutil.copy(clip, tmp_path / "clip.wav")
    (tmp_path / "broken.wav").write_bytes(b"not audio" * 50)
    tsv = tmp_path / "set.tsv"
    tsv.write_text("clip.wav\tIl treno per Milano parte alle otto.\nbroken.wav\tniente\n")
    prepared = prepare_corpus(str(tsv), tmp_path / "corpus")
    assert (prepared.examples, prepared.skipped) == (1, 1)
    outside = tmp_path / "outside.tsv"
    outside.write_text(f"{clip}\tfuori\n")
    with pytest.raises(DataError, match="esce dalla cartella"):
        read_manifest(outside)
    assert read_manifest(outside, allow_outside=True)[0].audio_path == clip.resolve()
    (example,) = read_manifest(prepared.path)
    assert example.text.startswith("Il treno") and load_audio(example.audio_path).size > 0

    mine = [Example(key=str(i), text="x", audio_path=clip) for i in range(4)]
    base = [Example(key=f"b{i}", text="y", audio_path=clip) for i in range(10)]
    mixed = replay_mix(mine, base, ratio=0.5, seed=1)
    assert mixed[:4] == mine and len(mixed) == 6
    assert replay_mix(mine, base, ratio=0.0, seed=1) == mine
