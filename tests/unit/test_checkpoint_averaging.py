"""Checkpoint averaging (``training.averaging``): snapshots of the trained weights, their
mean, and which snapshots a run keeps and averages."""

from __future__ import annotations

from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from tests.support.tiny_whisper import tiny_whisper_config  # noqa: E402
from training.averaging import (  # noqa: E402
    average_into,
    snapshot_path,
    snapshot_steps,
    steps_to_keep,
    window,
    write_snapshot,
)

STEPS = (10, 15, 20)


@pytest.fixture
def model() -> torch.nn.Module:
    """A tiny Whisper with the cached lower encoder frozen, as cpu mode trains it."""
    from training._whisper_model import PartialEncoderWhisper

    torch.manual_seed(0)
    model = PartialEncoderWhisper(tiny_whisper_config())
    model.configure_trainable(encoder_layers=1, train_embeddings=False, decoder="cross_attention")
    return model


def _trained(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def _frozen(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {n: p.detach().clone() for n, p in model.named_parameters() if not p.requires_grad}


def test_the_average_of_known_weights_is_their_mean(model: torch.nn.Module, tmp_path: Path) -> None:
    generator = torch.Generator().manual_seed(1)
    frozen = _frozen(model)
    known: list[dict[str, torch.Tensor]] = []
    for step in STEPS:  # three different points of a "run"
        with torch.no_grad():
            for parameter in model.parameters():
                if parameter.requires_grad:
                    parameter.copy_(torch.randn(parameter.shape, generator=generator))
        known.append(_trained(model))
        write_snapshot(model, tmp_path, step)
    assert snapshot_steps(tmp_path) == list(STEPS)
    # A snapshot holds the trained weights only, exactly as they were.
    saved = load_file(str(snapshot_path(tmp_path, STEPS[0])))
    assert set(saved) == set(known[0]) and "model.encoder.layers.0.fc1.weight" not in saved
    assert all(torch.equal(saved[n], known[0][n]) for n in saved)

    average_into(model, [snapshot_path(tmp_path, s) for s in STEPS])
    averaged = _trained(model)
    for name, value in averaged.items():
        expected = torch.stack([weights[name] for weights in known]).mean(dim=0)
        assert torch.allclose(value, expected, atol=1e-6), name
        assert not torch.allclose(value, known[-1][name])  # not the last point
    assert all(torch.equal(p, frozen[n]) for n, p in _frozen(model).items())  # untouched


def test_snapshots_of_another_model_are_refused(model: torch.nn.Module, tmp_path: Path) -> None:
    write_snapshot(model, tmp_path, 1)
    model.configure_trainable(encoder_layers=2, train_embeddings=False, decoder="all")
    write_snapshot(model, tmp_path / "other", 2)
    with pytest.raises(ValueError, match="not of this model"):
        average_into(model, [snapshot_path(tmp_path, 1), snapshot_path(tmp_path / "other", 2)])


def test_the_window_ends_at_the_kept_step() -> None:
    steps = [15, 18, 20, 21, 24, 27, 29]
    assert window(steps, upto=29, count=3) == [24, 27, 29]
    assert window(steps, upto=20, count=3) == [15, 18, 20]  # best validation step 20
    assert window(steps, upto=16, count=3) == [15]  # fewer after warm-up: what there is
    assert window(steps, upto=10, count=3) == []


def test_pruning_keeps_every_window_a_resume_or_the_end_can_need() -> None:
    steps = [12, 14, 16, 18, 20, 22, 24]
    # Now at step 24, checkpoints at 20 (the latest) and 10 (the best so far).
    keep = steps_to_keep(steps, [24, 20, 10], 2)
    assert keep == {22, 24, 18, 20}
    # Resumed from checkpoint 20 after a kill at 24: its window is still there.
    assert window(sorted(keep), upto=20, count=2) == window(steps, upto=20, count=2)
