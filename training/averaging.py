"""Checkpoint averaging: the candidate as the mean of the run's last weight snapshots.

Averaging the weights of the last points of a constant-learning-rate run (Vaswani et al.,
2017; "stochastic weight averaging", Izmailov et al., 2018) lands nearer the middle of the
region the run wanders in than any single point, which tends to generalise better.

How it fits the trainer and its resume protocol:

* After warm-up, every ``every`` steps and at every checkpoint, the weights the run trains
  (the rest are the start model's) are written to ``checkpoints/averaged-weights/
  step-NNNNNN.safetensors``, atomically. Nothing new goes into the Trainer's checkpoints.
* The candidate is the mean of the newest ``count`` snapshots up to the step the run keeps
  (the best validation step, else the last), computed tensor by tensor from the files: no
  copy of the model is held beyond the one tensor being averaged.
* A resumed run deletes the snapshots after its checkpoint's step (that stretch is trained
  again, the same way) and writes the checkpoint's own snapshot if the kill came between
  the checkpoint and its snapshot, so a killed and resumed run averages the same weights.
  Pruning keeps the newest ``count`` snapshots up to every checkpoint on disk and up to the
  current step: whichever of those the run resumes from or keeps, its window is still there.

Why not an exponential moving average: it would be one more full copy in memory for the
whole run, it would have to ride inside every Trainer checkpoint (which the Trainer writes
on its own, with no hook before it is complete) to survive a kill, and it cannot be wound
back to the best validation step when training goes on past it. Snapshots on disk need
none of that. Imported by ``training.finetune`` only (it imports torch).
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers import TrainerCallback

log = logging.getLogger(__name__)

SNAPSHOT_DIR = "averaged-weights"
_SNAPSHOT = re.compile(r"^step-(\d+)\.safetensors$")
_CHECKPOINT = re.compile(r"^checkpoint-(\d+)$")
_TMP_SUFFIX = ".tmp"
# ``Trainer.evaluate`` prefix of the averaged weights' validation loss.
_PREFIX = "averaged"


def snapshot_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.safetensors"


def snapshot_steps(folder: Path) -> list[int]:
    """The steps whose snapshot is in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = (_SNAPSHOT.match(p.name) for p in folder.iterdir())
    return sorted(int(m.group(1)) for m in found if m)


def trained_weights(model: Any) -> dict[str, torch.Tensor]:
    return {n: p for n, p in model.named_parameters() if p.requires_grad}


def write_snapshot(model: Any, folder: Path, step: int) -> Path:
    """The trained weights at ``step``, written atomically (kept if already there). On a
    CPU the tensors are written from the model's own memory; from a GPU they pass through
    host memory while the file is written."""
    path = snapshot_path(folder, step)
    if path.is_file():
        return path
    folder.mkdir(parents=True, exist_ok=True)
    tensors = {n: p.detach().to("cpu").contiguous() for n, p in trained_weights(model).items()}
    tmp = path.with_name(path.name + _TMP_SUFFIX)
    save_file(tensors, str(tmp))
    tmp.replace(path)
    return path


def window(steps: Iterable[int], *, upto: int, count: int) -> list[int]:
    """The newest ``count`` of ``steps`` at or before ``upto``, oldest first."""
    return sorted(s for s in steps if s <= upto)[-count:] if count > 0 else []


def steps_to_keep(steps: Sequence[int], anchors: Iterable[int], count: int) -> set[int]:
    """Every snapshot some window could still need: the newest ``count`` up to each anchor
    (the current step and each checkpoint a resume or the end could come back to)."""
    keep: set[int] = set()
    for anchor in anchors:
        keep.update(window(steps, upto=anchor, count=count))
    return keep


def average_into(model: Any, paths: Sequence[Path]) -> None:
    """Set the trained weights to the mean of the snapshots at ``paths``, one tensor at a
    time (a running sum of one tensor: no other copy of the model in memory)."""
    if not paths:
        raise ValueError("nothing to average")
    parameters = dict(model.named_parameters())
    with contextlib.ExitStack() as stack:
        handles = [stack.enter_context(safe_open(str(p), framework="pt")) for p in paths]
        names = set(handles[0].keys())
        if any(set(h.keys()) != names for h in handles[1:]) or not names <= set(parameters):
            raise ValueError("the snapshots are not of this model's trained weights")
        with torch.no_grad():
            for name in sorted(names):
                total = handles[0].get_tensor(name).to(torch.float64)
                for handle in handles[1:]:
                    total += handle.get_tensor(name).to(torch.float64)
                target = parameters[name]
                target.copy_((total / len(handles)).to(target.dtype))


def _checkpoint_steps(folder: Path) -> list[int]:
    if not folder.is_dir():
        return []
    found = (_CHECKPOINT.match(p.name) for p in folder.iterdir() if p.is_dir())
    return [int(m.group(1)) for m in found if m]


class SnapshotCallback(TrainerCallback):
    """Writes the snapshots into ``checkpoints``/SNAPSHOT_DIR (every ``every`` steps and at
    each checkpoint, from ``first_step`` on: after warm-up) and prunes them."""

    def __init__(self, checkpoints: Path, every: int, count: int, first_step: int) -> None:
        self.folder = checkpoints / SNAPSHOT_DIR
        self.every = max(1, every)
        self.count = count
        self.first_step = first_step

    def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        if not state.is_world_process_zero:
            return
        step = int(state.global_step)  # > 0 only when resuming from checkpoint ``step``
        for stale in snapshot_steps(self.folder):  # trained again after this resume
            if stale > step:
                snapshot_path(self.folder, stale).unlink()
        for tmp in self.folder.glob(f"*{_TMP_SUFFIX}") if self.folder.is_dir() else ():
            tmp.unlink()
        if step >= max(1, self.first_step):  # killed before its snapshot: the weights now
            write_snapshot(kw["model"], self.folder, step)  # are the checkpoint's

    def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        step = int(state.global_step)
        if state.is_world_process_zero and step >= self.first_step and step % self.every == 0:
            self._snapshot(kw["model"], args, step)

    def on_save(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
        step = int(state.global_step)
        if state.is_world_process_zero and step >= self.first_step:
            self._snapshot(kw["model"], args, step)

    def _snapshot(self, model: Any, args: Any, step: int) -> None:
        write_snapshot(model, self.folder, step)
        steps = snapshot_steps(self.folder)
        anchors = [step, *_checkpoint_steps(Path(args.output_dir))]
        for old in set(steps) - steps_to_keep(steps, anchors, self.count):
            snapshot_path(self.folder, old).unlink()


def kept_step(trainer: Any) -> int:
    """The step whose weights the run keeps: the best validation step, else the last."""
    state = trainer.state
    if trainer.args.load_best_model_at_end and state.best_model_checkpoint:
        return int(state.best_global_step)
    return int(state.global_step)


def average_kept(
    trainer: Any, checkpoints: Path, count: int, *, validate: bool
) -> tuple[tuple[int, ...], float | None]:
    """Replace the trainer's model by the mean of the ``count`` snapshots ending at the
    kept step. Returns the steps averaged (none when fewer than two snapshots were taken
    after warm-up: the model is left as it was) and, with ``validate``, the average's
    validation loss."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.barrier()  # process 0 writes the snapshots: until its last one
    folder = checkpoints / SNAPSHOT_DIR
    steps = window(snapshot_steps(folder), upto=kept_step(trainer), count=count)
    if len(steps) < 2:
        log.info("checkpoint averaging: %d snapshot(s) after warm-up, none averaged", len(steps))
        return (), None
    average_into(trainer.model, [snapshot_path(folder, s) for s in steps])
    log.info("checkpoint averaging: the candidate is the mean of steps %s", steps)
    if not validate:
        return tuple(steps), None
    metrics = trainer.evaluate(metric_key_prefix=_PREFIX)
    return tuple(steps), round(float(metrics[f"{_PREFIX}_loss"]), 4)
