"""Checkpoint averaging in real fine-tuning runs (``training.finetune``) of a tiny Whisper
over the cached lower encoder: the exported candidate is the mean of the weights the run
went through, a run killed with SIGKILL and resumed exports the same one, and WiSE-FT
interpolates toward the average."""

from __future__ import annotations

import dataclasses
import json
import logging
import subprocess
import sys
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from safetensors.torch import load_file  # noqa: E402

from tests.support.training_support import REPO, labelled_tsv  # noqa: E402
from training.arguments import FinetuneArguments  # noqa: E402
from training.averaging import SNAPSHOT_DIR, snapshot_path, snapshot_steps  # noqa: E402
from training.finetune import CHECKPOINTS_DIR, finetune, split_validation  # noqa: E402

__all__ = ["labelled_tsv"]  # a fixture, imported for pytest
pytestmark = pytest.mark.slow

STEPS = 8
COUNT = 3
KILL_AT = 6  # after the checkpoint at step 4, before the one at step 8


@pytest.fixture(scope="module")
def tiny(tiny_whisper: Path) -> Path:
    return tiny_whisper


def _args(tiny: Path, manifest: Path, out: Path, **changes: object) -> FinetuneArguments:
    """A few fast steps at a constant learning rate, the lower encoder layer cached and
    frozen, a snapshot every step: every step's weights differ and are known."""
    base = FinetuneArguments(
        model_dir=str(tiny), train_manifest=str(manifest), output_dir=str(out), mode="cpu",
        max_epochs=0, max_steps=STEPS, batch_size=2, augment_copies=0, encoder_layers=1,
        decoder="all", learning_rate=1e-3, warmup_ratio=0.0, checkpoint_every=4,
        validation_fraction=0.0, average_checkpoints=COUNT, average_every=1, threads=1,
        encoder_cache_dir=str(out.parent / "encoder-cache"),
    )  # fmt: skip
    return dataclasses.replace(base, **changes)  # type: ignore[arg-type]


def _trained_names(tiny: Path, out: Path) -> set[str]:
    snapshots = out / CHECKPOINTS_DIR / SNAPSHOT_DIR
    return set(load_file(str(snapshot_path(snapshots, snapshot_steps(snapshots)[-1]))))


def _final(out: Path) -> dict[str, torch.Tensor]:
    return load_file(str(out / "final" / "model.safetensors"))


@pytest.fixture(scope="module")
def averaged_run(tiny: Path, labelled_tsv: Path, tmp_path_factory: pytest.TempPathFactory):
    out = tmp_path_factory.mktemp("averaged") / "train"
    return finetune(_args(tiny, labelled_tsv, out)), out


def test_the_candidate_is_the_mean_of_the_last_steps(
    averaged_run, tiny: Path, labelled_tsv: Path, tmp_path: Path
) -> None:
    result, out = averaged_run
    assert result.steps == STEPS and result.averaged_steps == [6, 7, 8]
    # The weights at steps 6, 7 and 8, each from its own run without averaging (same seed,
    # data order and constant learning rate: the same trajectory, stopped earlier).
    points = []
    for steps in (6, 7, 8):
        plain = tmp_path / f"plain-{steps}"
        finetune(_args(tiny, labelled_tsv, plain, max_steps=steps, average_checkpoints=0))
        points.append(_final(plain))
    final, base = _final(out), load_file(str(tiny / "model.safetensors"))
    trained = _trained_names(tiny, out)
    assert trained and "model.decoder.layers.0.fc1.weight" in trained
    for name in trained:
        mean = torch.stack([p[name] for p in points]).mean(dim=0)
        assert torch.allclose(final[name], mean, atol=1e-6), name
    # ... which is not the last checkpoint (what the run would export without averaging).
    assert any(not torch.allclose(final[n], points[-1][n], atol=1e-5) for n in trained)
    # The cached (frozen) lower encoder is the base model's, as the cache assumes.
    lower = [n for n in base if n.startswith("model.encoder.layers.0.")]
    assert lower and all(torch.equal(final[n], base[n]) for n in lower)


def test_a_killed_and_resumed_run_averages_the_same_weights(
    averaged_run, tiny: Path, labelled_tsv: Path, tmp_path: Path
) -> None:
    _, uninterrupted = averaged_run
    out = tmp_path / "train"
    args = _args(tiny, labelled_tsv, out, average_checkpoints=5)
    killed = _run_killed_at(args, KILL_AT, tmp_path)
    assert killed.returncode == -9, killed.stderr[-2000:]
    checkpoints = out / CHECKPOINTS_DIR
    assert (checkpoints / "checkpoint-4").is_dir() and not (checkpoints / "checkpoint-8").exists()
    snapshots = checkpoints / SNAPSHOT_DIR
    assert max(snapshot_steps(snapshots)) > 4  # steps the resumed run trains again
    # As if the kill had come between the checkpoint and its snapshot.
    snapshot_path(snapshots, 4).unlink()

    resumed = finetune(args)
    assert resumed.resumed_from == "checkpoint-4" and resumed.averaged_steps == [4, 5, 6, 7, 8]
    # The same run, never killed:
    whole = tmp_path / "whole"
    assert finetune(_args(tiny, labelled_tsv, whole, average_checkpoints=5)).averaged_steps == [
        4, 5, 6, 7, 8
    ]  # fmt: skip
    final, reference = _final(out), _final(whole)
    assert all(torch.allclose(final[n], reference[n], atol=1e-6) for n in reference)
    assert any(not torch.allclose(final[n], _final(uninterrupted)[n]) for n in reference)


def test_wise_ft_interpolates_toward_the_average(
    tiny: Path, labelled_tsv: Path, tmp_path: Path
) -> None:
    fraction = _validation_fraction(labelled_tsv)
    out = tmp_path / "train"
    # transformers' loggers do not propagate to pytest's: listen to them directly.
    warnings = _Records()
    logging.getLogger("transformers").addHandler(warnings)
    try:
        # Early stopping on (2 validations in 8 steps: it cannot stop this run).
        result = finetune(
            _args(tiny, labelled_tsv, out, validation_fraction=fraction, wise_alphas="0.5",
                  early_stopping_patience=2, average_checkpoints=STEPS)
        )  # fmt: skip
    finally:
        logging.getLogger("transformers").removeHandler(warnings)
    assert result.validation_clips > 0 and result.wise_alpha == 0.5
    # The averaged and WiSE-FT evaluations come after early stopping: no false alarm.
    assert not [m for m in warnings.messages if "early stopping is disabled" in m]
    steps = result.averaged_steps
    assert steps == list(range(1, result.best_step + 1)) and len(steps) >= 2
    assert result.averaged_validation_loss is not None
    snapshots = out / CHECKPOINTS_DIR / SNAPSHOT_DIR
    points = [load_file(str(snapshot_path(snapshots, s))) for s in steps]
    final, base = _final(out), load_file(str(tiny / "model.safetensors"))
    for name in points[0]:
        mean = torch.stack([p[name] for p in points]).mean(dim=0)
        assert torch.allclose(final[name], base[name] + 0.5 * (mean - base[name]), atol=1e-6)


def test_validations_start_late_in_the_run(tiny: Path, labelled_tsv: Path, tmp_path: Path) -> None:
    """``validation_start``: no validation (so no kept step, no early stop) in the first
    half of the step budget; the kept step and its average come from the second half."""
    out = tmp_path / "train"
    result = finetune(
        _args(tiny, labelled_tsv, out, validation_fraction=_validation_fraction(labelled_tsv),
              checkpoint_every=2, validation_start=0.5, early_stopping_patience=1)
    )  # fmt: skip
    state = json.loads((out / CHECKPOINTS_DIR / "trainer_state.json").read_text())
    validated = [e["step"] for e in state["log_history"] if "eval_loss" in e]
    assert validated == [4, 6, 8] or validated == [4, 6]  # patience 1 may stop at 6
    assert result.best_step in validated and result.averaged_steps[-1] == result.best_step


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


def _run_killed_at(
    args: FinetuneArguments, step: int, tmp_path: Path
) -> subprocess.CompletedProcess[str]:
    """``finetune(args)`` in a process that kills itself with SIGKILL at ``step``."""
    saved = tmp_path / "finetune_args.json"
    saved.write_text(args.to_json(), encoding="utf-8")
    script = (
        "import os, signal, sys\n"
        "from pathlib import Path\n"
        "from training.arguments import FinetuneArguments\n"
        "from training.finetune import finetune\n"
        "def progress(p):\n"
        f"    if p.step >= {step}:\n"
        "        os.kill(os.getpid(), signal.SIGKILL)\n"
        "finetune(FinetuneArguments.from_json(Path(sys.argv[1])), progress=progress)\n"
    )
    return subprocess.run([sys.executable, "-c", script, str(saved)], cwd=REPO,
                          capture_output=True, text=True, timeout=300, check=False)  # fmt: skip


def _validation_fraction(tsv: Path) -> float:
    from training.data import read_manifest

    examples = read_manifest(tsv)
    for tenths in range(1, 10):
        _, validation = split_validation(examples, fraction=tenths / 10, min_sentences=3)
        if validation:
            return tenths / 10
    raise AssertionError("no share of the sentences gives a validation slice")
