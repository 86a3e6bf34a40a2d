"""WiSE-FT (``training.robust``): the interpolation, and alpha chosen on validation loss."""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from training.robust import choose_alpha, interpolate, parse_alphas, trainable_state  # noqa: E402


class _Model(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.trained = torch.nn.Linear(2, 1)
        self.frozen = torch.nn.Linear(2, 1)
        self.frozen.requires_grad_(False)


class _Trainer:
    """Validation loss = distance of the trained weights from ``target``."""

    def __init__(self, model: _Model, target: torch.Tensor) -> None:
        self.model = model
        self.target = target
        self.calls = 0

    def evaluate(self, *, metric_key_prefix: str) -> dict[str, float]:
        self.calls += 1
        distance = (self.model.trained.weight.detach() - self.target).abs().sum()
        return {f"{metric_key_prefix}_loss": float(distance)}


def _weights(model: _Model) -> torch.Tensor:
    return model.trained.weight.detach().clone()


def test_interpolation_moves_only_the_trained_weights() -> None:
    model = _Model()
    start = trainable_state(model)
    assert set(start) == {"trained.weight", "trained.bias"}
    frozen = model.frozen.weight.detach().clone()
    with torch.no_grad():
        model.trained.weight.add_(1.0)
    tuned = trainable_state(model)
    interpolate(model, start, tuned, 0.25)
    assert torch.allclose(_weights(model), start["trained.weight"] + 0.25)
    assert torch.equal(model.frozen.weight, frozen)


def test_alpha_is_chosen_on_validation_loss() -> None:
    model = _Model()
    start = trainable_state(model)
    with torch.no_grad():
        model.trained.weight.add_(1.0)  # "fine-tuned": 1.0 away from the start
    # The validation data prefer half-way: alpha 0.5 must be kept, and the model left there.
    trainer = _Trainer(model, start["trained.weight"] + 0.5)
    choice = choose_alpha(trainer, start, (1.0, 0.25, 0.5, 0.75))
    assert choice.alpha == 0.5 and trainer.calls == 4
    assert choice.losses[0.5] < min(choice.losses[a] for a in (0.25, 0.75, 1.0))
    assert torch.allclose(_weights(model), start["trained.weight"] + 0.5)
    # Prefers the fine-tuned model when validation says so.
    trainer.target = start["trained.weight"] + 1.0
    assert choose_alpha(trainer, start, (0.5, 1.0)).alpha == 1.0


def test_alphas_setting() -> None:
    assert parse_alphas("") == ()
    assert parse_alphas("0.5, 0.75,1") == (0.5, 0.75, 1.0)
    for bad in ("0", "1.5", "-0.5"):
        with pytest.raises(ValueError, match="within"):
            parse_alphas(bad)
