"""Test-then-train (issue 19): sentences corrected since the last finished run are first
judged on (held out of this run) and trained on by the next run."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pytest

from storage import training_records
from storage.audio_store import AudioStore
from storage.models import RunStatus
from storage.samples import (
    EVAL,
    TRAIN,
    add_labelled_sample,
    last_trained_correction_id,
    list_samples,
)
from storage.unit_of_work import Database
from training.config import RunConfig
from training.snapshot import HELDOUT_MANIFEST, TRAIN_MANIFEST, hold_out_fresh, take_snapshot
from training.snapshot import read_run_manifest as read

WORDS = ("uno", "due", "tre", "quattro", "cinque", "sei", "sette", "otto", "nove", "dieci",
         "undici", "dodici", "tredici", "quattordici", "quindici", "sedici")  # fmt: skip
OLD = [f"La frase vecchia numero {w}." for w in WORDS]
NEW = [f"Una frase nuova, la {w}." for w in WORDS[:10]]


@dataclass(frozen=True)
class _Sample:
    group: str
    correction_id: int


def test_only_sentences_wholly_new_since_the_cutoff_are_held_out() -> None:
    train = [_Sample("a", 1), _Sample("b", 2), _Sample("a", 5), _Sample("c", 6), _Sample("c", 7)]
    kept, fresh = hold_out_fresh(train, 4)
    # "a" was trained on before: its new clip trains; "c" is a new sentence: judged first.
    assert kept == [train[0], train[1], train[2]] and fresh == [train[3], train[4]]
    assert hold_out_fresh(train, None) == (train, [])  # no previous run: nothing held out
    assert hold_out_fresh(train, 9) == (train, [])  # nothing new
    # Never leaves fewer than min_train samples to train on.
    assert hold_out_fresh(train, 4, min_train=4) == (train, [])


@pytest.fixture
def world(tmp_path: Path):
    database = Database.open(f"sqlite:///{tmp_path / 'db.sqlite3'}")
    store = AudioStore(tmp_path / "audio")
    rng = np.random.default_rng(0)

    def add(sentences: list[str]) -> None:
        with database.unit_of_work() as uow:
            for text in sentences:
                ref = store.put((0.1 * rng.standard_normal(16_000)).astype(np.float32))
                add_labelled_sample(uow.session, audio=ref, text=text, speaker=f"s{len(text)}")
            uow.commit()

    yield database, add
    database.close()


def _finished_run(database: Database, max_correction_id: int | None) -> None:
    with database.unit_of_work() as uow:
        run = training_records.create_training_run(uow.session, config={})
        training_records.start_training_run(
            uow.session, run.id, samples_used=1, max_correction_id=max_correction_id
        )
        training_records.finish_training_run(uow.session, run.id, status=RunStatus.DONE)
        uow.commit()


def test_the_snapshot_judges_new_sentences_and_the_next_run_trains_on_them(
    world, tmp_path: Path
) -> None:
    database, add = world
    config = RunConfig(
        run_id=7, database_url="", audio_dir=str(tmp_path / "audio"), models_dir="",
        cache_dir="", runs_dir=str(tmp_path / "runs"), base_model="x", eval_fraction=0.0,
        train_max_user_share=1.0,
    )  # fmt: skip
    add(OLD)
    first = take_snapshot(config, database, start_model="base", start_hf_dir=tmp_path)
    assert first.fresh_clips == 0  # the first run has nothing to compare "new" with
    _finished_run(database, first.max_correction_id)
    add(NEW)

    second_config = replace(config, run_id=8)
    second = take_snapshot(second_config, database, start_model="base", start_hf_dir=tmp_path)
    train = {e.text for e in read(second_config.run_dir / TRAIN_MANIFEST)}
    heldout = {e.text for e in read(second_config.run_dir / HELDOUT_MANIFEST)}
    with database.unit_of_work(read_only=True) as uow:
        sides = {s.text: s.split for s in list_samples(uow.session, policy=config.split)}
    new_train_side = {text for text in NEW if sides[text] == TRAIN}
    floor = {text for text, side in sides.items() if side == EVAL}
    assert new_train_side and train == {t for t in OLD if sides[t] == TRAIN}
    assert heldout == floor | new_train_side  # the floor plus every new train-side sentence
    assert second.fresh_clips == len(new_train_side)
    assert second.heldout_clips == len(heldout)
    # The new corrections count as seen: the next run trains on them.
    _finished_run(database, second.max_correction_id)
    with database.unit_of_work(read_only=True) as uow:
        assert last_trained_correction_id(uow.session) == second.max_correction_id
    third_config = replace(config, run_id=9)
    third = take_snapshot(third_config, database, start_model="base", start_hf_dir=tmp_path)
    assert third.fresh_clips == 0
    assert {e.text for e in read(third_config.run_dir / TRAIN_MANIFEST)} >= new_train_side

    # Off: the second run would have trained on them at once.
    off = replace(config, run_id=10, test_then_train=False)
    _finished_run(database, first.max_correction_id)
    assert take_snapshot(off, database, start_model="base", start_hf_dir=tmp_path).fresh_clips == 0
    assert {e.text for e in read(off.run_dir / TRAIN_MANIFEST)} >= new_train_side


def test_the_gate_knows_who_spoke_every_judged_clip(world, tmp_path: Path) -> None:
    """Fresh clips are train-side samples: the gate clusters them by speaker like the rest
    (a clip without its origin would count as nobody's)."""
    from training.judging import _heldout_origins

    database, add = world
    add(OLD)
    config = RunConfig(
        run_id=1, database_url="", audio_dir=str(tmp_path / "audio"), models_dir="",
        cache_dir="", runs_dir=str(tmp_path / "runs"), base_model="x", eval_fraction=0.0,
    )  # fmt: skip
    origins, _share = _heldout_origins(config, database)
    store = AudioStore(tmp_path / "audio")
    with database.unit_of_work(read_only=True) as uow:
        samples = list_samples(uow.session, policy=config.split)
    assert {s.split for s in samples} == {TRAIN, EVAL}
    for sample in samples:
        assert origins[store.path(sample.audio_sha256).resolve()].speaker == sample.speaker


def test_status_tells_the_admin_how_many_new_clips_were_judged_first() -> None:
    import datetime as dt

    from bot.training_control import TrainingStatus
    from bot.training_texts import status_text
    from storage.training_records import RunState
    from training.arguments import FinetuneResult
    from training.gate_records import GateDecision
    from training.report import DataFacts, RunReport

    def status(fresh: int) -> str:
        report = RunReport(
            run_id=2, candidate="v2", parent="v1", promoted=True,
            gate=GateDecision(promote=True, primary_set=None, checks=(), confidence=0.95),
            finetune=FinetuneResult(Path("/x"), "cpu", 7, 7, 0.5, 10.0, 3.0, 2.6, 18, None, True),
            data=DataFacts(samples_used=18, train_clips=18, heldout_clips=42, fresh_clips=fresh),
            base_model="packaged:whisper-base", created_at="2026-01-01T00:00:00+00:00",
        )  # fmt: skip
        now = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
        return status_text(
            TrainingStatus(
                run_id=2, status=RunStatus.DONE, phase="done", steps_done=7, steps_total=7,
                progress=1.0, samples_used=18, error=None, created_at=now, started_at=now,
                finished_at=now, updated_at=now, state=RunState(report=report.to_dict()),
            )
        )  # fmt: skip

    assert "Clip di frasi nuove messe alla prova: 18" in status(18)
    assert "messe alla prova" not in status(0)
