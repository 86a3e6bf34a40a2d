"""What a run folder keeps once its run is over: no checkpoints, no correction text, a
refused model only when an operator asked, and nothing another run could resume."""

from __future__ import annotations

import shutil
from pathlib import Path

from training.finetune import CHECKPOINTS_DIR, FINAL_DIR
from training.forgetting import (
    CANDIDATE_CT2,
    REFUSED_CT2,
    TRAIN_SUBDIR,
    TRAINED_ON_FILE,
    delete_closed_run_models,
    run_forgotten,
)
from training.snapshot import delete_text_manifests

__all__ = ["CANDIDATE_CT2", "TRAIN_SUBDIR", "clean_up", "sweep_closed_runs"]


def clean_up(run_dir: Path, *, promoted: bool, keep_refused: bool = False) -> None:
    """Drop what only a resume needs (checkpoints), the text manifests and a refused model;
    with ``keep_refused`` its CTranslate2 export stays as ``REFUSED_CT2``, and with it the
    list of trained audio, so that /forget finds and deletes it (otherwise the list goes:
    privacy, the promoted version keeps its own)."""
    train = run_dir / TRAIN_SUBDIR
    shutil.rmtree(train / CHECKPOINTS_DIR, ignore_errors=True)
    delete_text_manifests(run_dir)
    if promoted:
        (run_dir / TRAINED_ON_FILE).unlink(missing_ok=True)
        return
    shutil.rmtree(train / FINAL_DIR, ignore_errors=True)
    candidate, kept = run_dir / CANDIDATE_CT2, run_dir / REFUSED_CT2
    if keep_refused and candidate.is_dir():
        shutil.rmtree(kept, ignore_errors=True)
        candidate.rename(kept)
        # Checked after the rename: a /forget before it marked the run, one after finds it.
        if not run_forgotten(run_dir):
            return
    for model in (candidate, kept):
        shutil.rmtree(model, ignore_errors=True)
    (run_dir / TRAINED_ON_FILE).unlink(missing_ok=True)


def sweep_closed_runs(run_dir: Path) -> None:
    """What a run killed between its record and its clean-up, or failed, left: checkpoints,
    text manifests and model weights. One run is open at a time (the lease) and it is this
    one, so no other run folder is ever resumed."""
    for other in run_dir.parent.iterdir():
        if other != run_dir and other.is_dir():
            shutil.rmtree(other / TRAIN_SUBDIR / CHECKPOINTS_DIR, ignore_errors=True)
            delete_text_manifests(other)
            delete_closed_run_models(other)
