"""Fast tests of the training service: the validation split and how the trainer is launched."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

import training
from bot.settings import Settings
from bot.training_control import StartRefusal, TrainingControl
from bot.training_texts import start_text, status_text
from storage import training_records
from storage.training_lease import take_run_lease
from storage.unit_of_work import Database
from training.config import RunConfig
from training.data import Example
from training.finetune import split_validation


def test_validation_holds_out_whole_sentences() -> None:
    sentences = [f"frase numero {n}" for n in range(40)]
    examples = [
        Example(key=f"{n}-{v}", text=s.upper() if v else s, audio_path=Path(f"/a/{n}-{v}"))
        for n, s in enumerate(sentences)
        for v in range(3)
    ]
    train, validation = split_validation(examples, fraction=0.2, min_sentences=3)
    assert len(train) + len(validation) == len(examples)
    # Case and punctuation do not make another sentence: all three voices go together.
    held = {e.text.lower() for e in validation}
    assert 3 <= len(held) <= 16 and len(validation) == 3 * len(held)
    assert not held & {e.text.lower() for e in train}
    again, _ = split_validation(examples[:60], fraction=0.2, min_sentences=3)
    assert {e.key for e in again} <= {e.key for e in train}  # more data never moves a clip
    few, none = split_validation(examples[:6], fraction=0.2, min_sentences=3)
    assert few == examples[:6] and none == []


def test_a_validation_slice_whenever_the_share_reaches_the_minimum() -> None:
    # The hash draw alone once left runs of 23 sentences without validation (it picked 2):
    # from fraction x sentences >= 3 on, the slice is there, whatever the sentences.
    from training.data import _validation_rank

    def drawn(sentences: list[str]) -> int:
        return sum(_validation_rank(s) < 0.15 * 2**64 for s in sentences)

    topped_up = 0
    for start in range(60):
        sentences = [f"frase numero {n}" for n in range(start, start + 20)]
        examples = [Example(key=s, text=s, audio_path=Path(f"/a/{s}")) for s in sentences]
        train, validation = split_validation(examples, fraction=0.15, min_sentences=3)
        assert len(validation) >= 3 and len(train) + len(validation) == 20
        topped_up += drawn(sentences) < 3
        more = [Example(key=s, text=s, audio_path=Path(f"/a/{s}"))
                for s in (f"frase numero {n}" for n in range(start, start + 40))]  # fmt: skip
        _, validation_later = split_validation(more, fraction=0.15, min_sentences=3)
        # more data never moves a training sentence to validation
        assert not {e.key for e in train} & {e.key for e in validation_later}
    assert topped_up  # the draw did fall short in some windows: the rule was exercised
    few = [Example(key=str(n), text=f"frase {n}", audio_path=Path(f"/a/{n}")) for n in range(19)]
    assert split_validation(few, fraction=0.15, min_sentences=3) == (few, [])


def test_the_trainer_runs_in_its_run_folder_with_the_same_code(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = Settings(data_dir=tmp_path / "data", train_decoder="all", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    launched: dict[str, object] = {}

    class _Process:
        pid = 4242

        def poll(self) -> None:
            return None

    def fake_popen(argv, **kwargs):
        launched.update(kwargs, argv=argv)
        return _Process()

    monkeypatch.setattr(subprocess, "Popen", fake_popen)
    monkeypatch.chdir(tmp_path)
    try:
        control = TrainingControl(settings, database)
        result = control.start_run(force=True, max_steps=3)
        assert result.started and result.pid == 4242
        run_dir = control.runs_dir / f"run-{result.run_id:04d}"
        assert launched["argv"][:3] == [sys.executable, "-m", "training"]
        assert Path(launched["cwd"]) == run_dir
        package_root = str(Path(training.__file__).resolve().parent.parent)
        assert launched["env"]["PYTHONPATH"].split(os.pathsep)[0] == package_root
        config = RunConfig.from_json((run_dir / "run_config.json").read_text())
        assert config.finetune.max_steps == 3 and config.finetune.model_dir == ""
        assert config.gate.confidence == settings.gate_confidence
        assert config.gate.min_eval_sentences == settings.gate_min_eval_sentences
        assert config.finetune.decoder == "all"

        busy = control.start_run(force=True)
        assert busy.refusal is StartRefusal.IN_PROGRESS and busy.run_id == result.run_id
        assert start_text(busy).startswith(f"È già in corso l'addestramento #{result.run_id}")
    finally:
        database.close()


def test_start_refusals_have_italian_texts(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", train_min_new_samples=20, _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        result = TrainingControl(settings, database).start_run()
    finally:
        database.close()
    assert result.refusal is StartRefusal.NOT_ENOUGH_SAMPLES
    assert result.new_samples == 0 and result.needed == 20
    assert start_text(result) == (
        "Non ho avviato l'addestramento: 0 campioni nuovi, ne servono 20."
    )


def test_a_dead_trainer_leaves_its_open_run_interrupted(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainer killed before it closed its run (the OOM killer): no zombie stays behind,
    its exit status is kept, and the run reads as interrupted until it is resumed."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    trainers = [  # neither touches the run: the first dies at once, the second works on
        [sys.executable, "-c", "raise SystemExit(9)"],
        [sys.executable, "-c", "import time; time.sleep(60)"],
    ]
    monkeypatch.setattr(
        TrainingControl, "_spawn", lambda self, config, log: subprocess.Popen(trainers.pop(0))
    )
    try:
        control = TrainingControl(settings, database)
        started = control.start_run(force=True)
        assert started.started and started.pid is not None
        # Until it has been waited for, an ended child is a zombie: wait without reaping.
        os.waitid(os.P_PID, started.pid, os.WEXITED | os.WNOWAIT)
        status = control.status()
        assert status is not None and status.is_open and status.interrupted
        with pytest.raises(ChildProcessError):  # already reaped: no zombie left
            os.waitpid(started.pid, os.WNOHANG)
        assert control.wait(started.run_id) == 9
        resumed = control.start_run()
        assert resumed.resumed and resumed.run_id == started.run_id
        status = control.status()
        assert status is not None and not status.interrupted  # its new trainer works
        assert control.wait(resumed.run_id, timeout=0.1) is None
        os.kill(resumed.pid, signal.SIGKILL)
        assert control.wait(resumed.run_id, timeout=30) == -signal.SIGKILL
    finally:
        database.close()


def test_finished_trainers_leave_no_zombies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A trainer that closed its run and exited is reaped by the next status() (the bot's
    watcher calls it every 30 s), even while a later run is in progress."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    trainers = [
        [sys.executable, "-c", "pass"],
        [sys.executable, "-c", "import time; time.sleep(60)"],
    ]
    monkeypatch.setattr(
        TrainingControl, "_spawn", lambda self, config, log: subprocess.Popen(trainers.pop(0))
    )
    try:
        control = TrainingControl(settings, database)
        first = control.start_run(force=True)
        assert first.pid is not None and first.run_id is not None
        os.waitid(os.P_PID, first.pid, os.WEXITED | os.WNOWAIT)  # ended, not yet reaped
        with database.unit_of_work() as uow:  # what the trainer does before it exits
            training_records.finish_training_run(uow.session, first.run_id, status="done")
            uow.commit()
        second = control.start_run(force=True)
        assert second.started and second.pid is not None
        status = control.status()
        assert status is not None and status.run_id == second.run_id
        with pytest.raises(ChildProcessError):  # reaped: no zombie left
            os.waitpid(first.pid, os.WNOHANG)
        assert control.wait(first.run_id) == 0
        os.kill(second.pid, signal.SIGKILL)
        assert control.wait(second.run_id, timeout=30) == -signal.SIGKILL
    finally:
        database.close()


def test_an_open_run_whose_lease_ran_out_is_interrupted(tmp_path: Path) -> None:
    """Its trainer was started elsewhere (the CLI, another front) and stopped renewing."""
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        with database.unit_of_work() as uow:
            run = training_records.create_training_run(uow.session, config={})
            take_run_lease(uow.session, run, owner="elsewhere:1", lease_seconds=-1)
            uow.commit()
        status = TrainingControl(settings, database).status()
        assert status is not None and status.is_open and status.interrupted
        assert status_text(status).startswith(f"<b>Addestramento #{status.run_id}</b>: interrotto")
    finally:
        database.close()
