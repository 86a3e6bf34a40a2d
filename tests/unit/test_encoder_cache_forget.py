"""A /forget that lands while a run computes the encoder cache: the forgotten clip's entries
are not written back, and the run's prune does not keep them (no model is loaded)."""

from __future__ import annotations

import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import training._datasets as datasets
from training.data import Example
from training.encoder_cache import EncoderCache, deleted_clips, forget_clips, prune


class _Encoder:
    """The frozen lower encoder; the first batch is when a user's /forget lands."""

    config = SimpleNamespace(num_mel_bins=80)

    def __init__(self, on_first_batch: Any) -> None:
        self.on_first_batch = on_first_batch

    def eval(self) -> None:
        pass

    def train(self) -> None:
        pass

    def lower_encoder(self, inputs: Any) -> Any:
        import torch

        if self.on_first_batch is not None:
            self.on_first_batch()
            self.on_first_batch = None
        return torch.zeros((inputs.shape[0], 4, 2))


def test_a_clip_forgotten_while_cached_leaves_no_entry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "_training_audio", lambda e: np.zeros(16000, np.float32))
    root = tmp_path / "cache"
    alice, bob = (hashlib.sha256(n.encode()).hexdigest() for n in ("alice", "bob"))
    clips = {h: tmp_path / f"{h}.flac" for h in (alice, bob)}
    for path in clips.values():
        path.write_bytes(b"audio")
    examples = [Example(h, "una frase", path) for h, path in clips.items()]

    def forget_alice() -> None:  # the store deletes the audio, then training forgets it
        clips[alice].unlink()
        forget_clips(root, [alice])

    cache = EncoderCache(root, "key")
    dataset, _ = datasets.cached_dataset(
        _Encoder(forget_alice), examples, lambda text: [1, 2], cache=cache,
        augment_copies=0, seed=0,
    )  # fmt: skip
    assert not cache.has(alice, "clean") and cache.has(bob, "clean")
    # What the run would keep, from rows listed before the /forget: alice is dropped.
    used = {path.parent.name for path, _ in dataset.rows}
    assert used == {alice, bob}
    assert deleted_clips(e.audio_path for e in examples) == {alice}
    cache.put(alice, "clean", np.zeros((4, 2), np.float32))  # a put that won the race
    prune(root, key="key", keep=used - deleted_clips(e.audio_path for e in examples))
    assert not cache.has(alice, "clean") and cache.has(bob, "clean")
