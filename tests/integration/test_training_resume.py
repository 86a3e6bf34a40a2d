"""A training process killed with SIGKILL resumes from its checkpoint at the next start.

The mechanics of the run's process (its record, the kill, the resume, the encoder cache,
the clean-up) on the tiny Whisper: whisper-base's checkpoints made this test take minutes."""

from __future__ import annotations

import os
import re
import signal
import time
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.training_control import TrainingControl
from storage.unit_of_work import Database
from tests.support.training_support import FAST_TRAINING, data_dir_with_cache, labelled_tsv, run_cli

__all__ = ["labelled_tsv"]  # a fixture, imported for pytest
pytestmark = pytest.mark.slow


def test_killed_run_resumes_from_its_checkpoint(
    tmp_path: Path, model_cache: Path, labelled_tsv: Path, tiny_whisper: Path
) -> None:
    data = data_dir_with_cache(tmp_path, model_cache)
    assert run_cli(["samples", "import", str(labelled_tsv)], data).returncode == 0
    settings = Settings(
        data_dir=data,
        base_model=str(tiny_whisper),
        train_max_steps=5,
        train_max_epochs=0,  # ten clips: the cap would leave fewer than the 5 steps needed
        train_checkpoint_every=2,
        _env_file=None,
        **{**FAST_TRAINING, "eval_fraction": 0.0},  # type: ignore[arg-type]
    )
    # A validation slice of whole sentences, so the best checkpoint is tracked across the
    # kill (the smallest share of the five sentences that the hash turns into one).
    settings = settings.model_copy(
        update={"train_validation_fraction": _validation_fraction(labelled_tsv)}
    )
    database = Database.open(settings.resolved_database_url)
    control = TrainingControl(settings, database)
    try:
        first = control.start_run(force=True)
        assert first.started and first.pid is not None and first.run_id is not None
        checkpoints = control.runs_dir / f"run-{first.run_id:04d}" / "train" / "checkpoints"
        deadline = time.monotonic() + 300
        while not (checkpoints / "checkpoint-2" / "trainer_state.json").is_file():
            assert control.wait(first.run_id, timeout=0.5) is None, "finished too early"
            assert time.monotonic() < deadline, "no checkpoint in time"
        os.killpg(first.pid, signal.SIGKILL)
        control.wait(first.run_id, timeout=30)

        status = control.status()
        assert status is not None and status.is_open  # a kill records nothing: resumable
        again = control.start_run(force=True)
        assert again.started and again.resumed and again.run_id == first.run_id
        assert control.wait(again.run_id, timeout=600) == 0
        done = control.get_run(first.run_id)
        assert done is not None and done.status == "done", done
        assert done.report is not None
        finetune = done.report.finetune
        assert finetune.resumed_from in ("checkpoint-2", "checkpoint-4")
        assert finetune.steps == 5
        # The tiny model's validation loss falls to the last step; validations at 2 and 4
        # (one before the kill) and 5.
        assert finetune.validation_clips >= 6 and finetune.best_step in (2, 4, 5)
        assert finetune.best_validation_loss is not None
        log = (first.log_path or Path()).read_text()
        # The resumed process found every clip in the persistent encoder cache.
        assert re.search(r"encoder cache: [1-9]\d* entries reused, 0 computed", log), log
        # What only a resume needs is cleaned up once the run is over.
        assert not checkpoints.exists()
    finally:
        database.close()


def _validation_fraction(tsv: Path) -> float:
    from training.data import read_manifest
    from training.finetune import split_validation

    examples = read_manifest(tsv)
    for tenths in range(1, 10):
        _, validation = split_validation(examples, fraction=tenths / 10, min_sentences=3)
        if validation:
            return tenths / 10
    raise AssertionError("no share of the sentences gives a validation slice")
