"""A 128-mel Whisper (large-v3 / large-v3-turbo's input) end to end: features, encoder
cache, training, the gate's evaluation, CTranslate2 export, promotion and serving, with a
tiny random model built here (``tests.support.tiny_whisper``) so it runs in CI on a CPU."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from model.asr.registry import ModelRegistry
from tests.support.tiny_whisper import LARGE_V3_MEL_BINS
from tests.support.training_support import FAST_TRAINING, data_dir_with_cache, labelled_tsv, run_cli

__all__ = ["labelled_tsv"]  # a fixture, imported for pytest

# The mechanics, not the judgement: any finished candidate may pass.
# Any candidate that is not worse by a whole 100 points passes: with a random tiny model
# both WERs are near 100%, and this test is about the 128-mel path, not the gate's power.
PERMISSIVE_GATE = {
    "gate_min_wer_improvement": -1.0,
    "gate_confidence": 0.9,
    "gate_min_eval_users": 1,
    "gate_general_tolerance": 1.0,
    "gate_max_insertion_rate": 100.0,
}


def test_features_follow_the_models_mel_bins(tiny_whisper: Path, labelled_tsv: Path) -> None:
    from transformers import WhisperConfig

    from training.data import ServingFeatures, load_audio

    n_mels = WhisperConfig.from_pretrained(tiny_whisper).num_mel_bins
    audio = load_audio(next(labelled_tsv.parent.glob("*.wav")))
    assert n_mels == LARGE_V3_MEL_BINS
    assert ServingFeatures(n_mels)(audio).shape == (LARGE_V3_MEL_BINS, 3000)
    # gpu mode's on-the-fly dataset, through DataLoader worker processes as there.
    from torch.utils.data import DataLoader

    from training._datasets import Collator, FeatureDataset
    from training.data import LabelEncoder, read_manifest

    examples = read_manifest(labelled_tsv)[:4]
    dataset = FeatureDataset(examples, LabelEncoder(tiny_whisper, language="it"), seed=0,
                             n_mels=n_mels)  # fmt: skip
    loader = DataLoader(dataset, batch_size=2, num_workers=2, collate_fn=Collator("input_features"))
    batches = list(loader)
    assert len(batches) == 2
    assert tuple(batches[0]["input_features"].shape) == (2, LARGE_V3_MEL_BINS, 3000)


def test_a_128_mel_model_trains_gates_exports_and_serves(
    tmp_path: Path, model_cache: Path, labelled_tsv: Path, tiny_whisper: Path
) -> None:
    data = data_dir_with_cache(tmp_path, model_cache)
    settings = {
        **FAST_TRAINING,
        **PERMISSIVE_GATE,
        "base_model": tiny_whisper,
        "eval_general_set": labelled_tsv,
        "train_max_steps": 2,
        # Nothing held out (a salt could hold out 2 sentences, too few to prove anything):
        # the general set, 5 sentences, judges.
        "eval_fraction": 0.0,
    }
    imported = run_cli(["samples", "import", str(labelled_tsv)], data)
    assert imported.returncode == 0, imported.stderr
    trained = run_cli(["train", "--wait"], data, **settings)
    assert trained.returncode == 0, trained.stderr[-3000:]
    verdict = json.loads(trained.stdout[trained.stdout.index("{") :])
    assert verdict["promoted"] is True and verdict["steps"] == 2, json.dumps(verdict)[:4000]

    current = ModelRegistry(data / "models").current()
    assert current is not None and current.name == verdict["candidate"]
    assert json.loads((current.hf_dir / "config.json").read_text())["num_mel_bins"] == 128
    preprocessor = json.loads((current.ct2_dir / "preprocessor_config.json").read_text())
    assert preprocessor["feature_size"] == LARGE_V3_MEL_BINS
    # The encoder cache holds the 128-mel model's activations (d_model 64, 1500 positions).
    entries = list((data / "encoder-cache").rglob("clean.npy"))
    assert entries and np.load(entries[0]).shape == (1500, 64)

    from model.asr.engines import CT2Transcriber
    from training.data import load_audio

    engine = CT2Transcriber(current.ct2_dir, cpu_threads=2)
    result = engine.transcribe(load_audio(labelled_tsv.parent / "0-itm1.wav"))
    assert isinstance(result.text, str)  # a random model's words; it served them
