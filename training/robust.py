"""WiSE-FT: the candidate as an interpolation between the start (base) weights and the
fine-tuned ones (Wortsman et al., 2022, "Robust fine-tuning of zero-shot models").

``theta(alpha) = theta_base + alpha * (theta_tuned - theta_base)``, over the weights the run
trained (the rest are the base model's anyway). ``alpha`` is chosen on the run's own
validation split (unseen sentences of the training side, ``training.finetune``), never on
the gate's held-out clips or its general set, so the gate still judges data the choice
never saw. Imported by ``training.finetune`` only (it imports torch).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

log = logging.getLogger(__name__)

# ``Trainer.evaluate`` prefix: keeps these losses apart from the best-step search's.
_PREFIX = "wise"


@dataclass(frozen=True)
class WiseChoice:
    alpha: float
    # alpha -> validation loss, for the report
    losses: dict[float, float]


def trainable_state(model: Any) -> dict[str, torch.Tensor]:
    """A copy of the weights the run trains (call before training: the start weights)."""
    return {n: p.detach().clone() for n, p in model.named_parameters() if p.requires_grad}


def interpolate(model: Any, start: dict[str, torch.Tensor], tuned: dict[str, torch.Tensor],
                alpha: float) -> None:  # fmt: skip
    """Set the trained weights to ``start + alpha * (tuned - start)`` in place."""
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in start:
                parameter.copy_(start[name] + alpha * (tuned[name] - start[name]))


def choose_alpha(
    trainer: Any, start: dict[str, torch.Tensor], alphas: Sequence[float]
) -> WiseChoice:
    """Try each ``alpha`` on the trainer's validation set; leave the model at the best one
    (the larger alpha on a tie: the fine-tuned side is what the users asked for)."""
    model = trainer.model
    tuned = trainable_state(model)
    losses: dict[float, float] = {}
    for alpha in sorted(set(alphas)):
        interpolate(model, start, tuned, alpha)
        metrics = trainer.evaluate(metric_key_prefix=_PREFIX)
        losses[alpha] = round(float(metrics[f"{_PREFIX}_loss"]), 4)
    best = min(sorted(losses, reverse=True), key=lambda a: losses[a])
    interpolate(model, start, tuned, best)
    log.info("WiSE-FT: validation loss by alpha %s; kept alpha %.2f", losses, best)
    return WiseChoice(best, losses)


def parse_alphas(text: str) -> tuple[float, ...]:
    """``"0.5,0.75,1"`` -> (0.5, 0.75, 1.0); empty = WiSE-FT off. Each within (0, 1]."""
    alphas = tuple(float(part) for part in text.split(",") if part.strip())
    if any(not 0.0 < a <= 1.0 for a in alphas):
        raise ValueError(f"WiSE-FT alphas must be within (0, 1], got {text!r}")
    return alphas
