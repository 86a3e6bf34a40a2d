"""The Trainer a run trains with: an optional L2-SP pull toward the start weights, the time
budget and progress reports, and the best validation step."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from training.arguments import FinetuneArguments

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainingProgress:
    """Where a fine-tuning run is: its step of ``total``, the phase it announces when it
    changes, and the latest training loss."""

    step: int
    total: int
    phase: str | None = None
    loss: float | None = None


Progress = Callable[[TrainingProgress], None]


def best_validation(state: Any) -> tuple[int | None, float | None]:
    """The step and loss of the best validation (what ``load_best_model_at_end`` kept)."""
    evals = [e for e in state.log_history if "eval_loss" in e]
    if not evals:
        return None, None
    best = min(evals, key=lambda e: e["eval_loss"])
    return int(best["step"]), round(float(best["eval_loss"]), 4)


def make_trainer(*, anchor_strength: float, **kwargs: Any) -> Any:
    """A ``Seq2SeqTrainer``, with an L2-SP penalty toward the start weights if asked."""
    from transformers import Seq2SeqTrainer

    if anchor_strength <= 0:
        return Seq2SeqTrainer(**kwargs)

    class _AnchoredTrainer(Seq2SeqTrainer):
        def __init__(self, **kw: Any) -> None:
            super().__init__(**kw)
            # The start model's trainable weights, captured before any resume loads a
            # checkpoint over them.
            self.anchor = {
                name: p.detach().clone()
                for name, p in self.model.named_parameters()
                if p.requires_grad
            }

        def compute_loss(self, model: Any, inputs: Any, return_outputs: bool = False,
                         num_items_in_batch: Any = None) -> Any:  # fmt: skip
            out = super().compute_loss(
                model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
            )
            if not model.training:  # the validation loss stays comparable across settings
                return out
            loss, rest = (out[0], out[1:]) if return_outputs else (out, None)
            penalty = sum(
                ((p - self.anchor[name]) ** 2).sum()
                for name, p in model.named_parameters()
                if name in self.anchor
            )
            loss = loss + anchor_strength * penalty
            return (loss, *rest) if return_outputs else loss

    return _AnchoredTrainer(**kwargs)


class TrainTimer:
    """Reports progress and stops (with a checkpoint) when the time budget is spent."""

    def __init__(
        self,
        args: FinetuneArguments,
        progress: Progress | None,
        *,
        started_at: float,
        validate: bool,
    ) -> None:
        self.args = args
        self.validate = validate
        self.progress = progress
        self.started = started_at
        self.last_step_at = self.started
        self.first_step = 0
        self.steps = 0
        self.step_seconds = 0.0

    def callback(self) -> Any:
        from transformers import TrainerCallback

        timer = self

        class _Callback(TrainerCallback):
            def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
                timer.first_step = int(state.global_step)
                timer.last_step_at = time.monotonic()
                if timer.progress is not None:
                    timer.progress(
                        TrainingProgress(timer.first_step, int(state.max_steps), phase="training")
                    )

            def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> Any:
                now = time.monotonic()
                timer.steps += 1
                timer.step_seconds += now - timer.last_step_at
                timer.last_step_at = now
                budget = timer.args.max_train_seconds
                if budget > 0 and now - timer.started > budget:
                    log.info("time budget of %.0f s spent at step %d", budget, state.global_step)
                    control.should_training_stop = True
                    control.should_save = True
                    # The last step competes for "best" too (needs a validation set).
                    control.should_evaluate = timer.validate
                if timer.progress is not None:
                    loss = next(
                        (e["loss"] for e in reversed(state.log_history) if "loss" in e), None
                    )
                    timer.progress(
                        TrainingProgress(
                            int(state.global_step),
                            int(state.max_steps),
                            loss=None if loss is None else float(loss),
                        )
                    )
                return control

        return _Callback()
