"""The end of a run racing the admins and the users: a /forget or a /rollback during the
promotion, a kill between promotion and the run's record, a second trainer on the same
run, and the weights failed runs leave. The runner runs for real; training, export and
judging are replaced by placeholder folders and a fixed verdict (nothing loads a model)."""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

import training.runner as runner
from bot.settings import Settings
from model.asr import convert
from model.asr import registry as registry_module
from model.asr.registry import BASE_VERSION, ModelRegistry, RegistryError
from storage import training_records
from storage.models import RunStatus
from storage.training_lease import lease_owner, renew_run_lease, take_run_lease
from storage.unit_of_work import Database
from tests.support.fake_versions import fake_ct2, fake_hf
from training.arguments import FinetuneArguments, FinetuneResult
from training.config import RunConfig
from training.forgetting import forget_training_audio, record_trained_on
from training.gate_records import GateDecision
from training.heartbeat import LeaseHeartbeat, LeaseLost
from training.report import RunReport
from training.run_folder import CANDIDATE_CT2, TRAIN_SUBDIR, sweep_closed_runs
from training.snapshot import SNAPSHOT_FILE, Snapshot

ALICE, BOB = (hashlib.sha256(name.encode()).hexdigest() for name in ("alice", "bob"))


class _Evaluation:
    rates = SimpleNamespace(wer=0.1, cer=0.05, n=8)

    def as_dict(self) -> dict[str, Any]:
        return {}


@dataclass
class Loop:
    """One run of the real runner around placeholder training, export and judging."""

    tmp: Path
    database: Database
    registry: ModelRegistry
    config: RunConfig
    # Called while the candidate is judged (an admin acting mid-run).
    during_judging: Callable[[], object] = lambda: None
    judged: list[str] = field(default_factory=list)

    def install(self, name: str, parent: str) -> None:
        hf, ct2 = fake_hf(self.tmp / f"{name}-hf"), fake_ct2(self.tmp / f"{name}-ct2")
        metrics = {"parent": parent, "created_at": name}
        self.registry.install(name, hf_dir=hf, ct2_dir=ct2, metrics=metrics, card="", move=True)

    def forget(self, audio: str) -> None:
        forget_training_audio(
            [audio], runs_dir=Path(self.config.runs_dir), models_dir=self.registry.root,
            encoder_cache_dir=self.tmp / "cache", in_progress=self.config.run_dir.name,
        )  # fmt: skip

    def run(self) -> RunReport:
        return runner.run_training(self.config)

    def row(self) -> Any:
        with self.database.unit_of_work(read_only=True) as uow:
            run = training_records.get_training_run(uow.session, self.config.run_id)
            uow.session.expunge(run)
            return run

    def evaluations(self) -> int:
        with self.database.unit_of_work(read_only=True) as uow:
            return len(training_records.wer_history(uow.session))


@pytest.fixture
def loop(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Loop]:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    registry = ModelRegistry(settings.models_dir)
    with database.unit_of_work() as uow:
        run = training_records.create_training_run(uow.session, config={})
        take_run_lease(uow.session, run, owner=lease_owner())  # this process is the trainer
        uow.commit()
        run_id = run.id
    config = RunConfig(
        run_id=run_id, database_url=settings.resolved_database_url, audio_dir="audio",
        models_dir=str(settings.models_dir), cache_dir=str(tmp_path / "hf-cache"),
        runs_dir=str(tmp_path / "data" / "runs"), base_model="packaged:whisper-base",
    )  # fmt: skip
    state = Loop(tmp_path, database, registry, config)

    def prepare(config: RunConfig, database: Any, registry: ModelRegistry) -> Any:
        snapshot = Snapshot(
            start_model=BASE_VERSION, start_hf_dir="", samples_used=2, max_correction_id=None,
            train_clips=2, heldout_clips=8, heldout_shared_sentences=0, recent_clips=0,
            replaces=registry.current_name(),
        )  # fmt: skip
        (config.run_dir / SNAPSHOT_FILE).write_text(snapshot.to_json())
        record_trained_on(config.run_dir, [Path(f"/store/{h}.flac") for h in (ALICE, BOB)])
        return snapshot, FinetuneArguments()

    def tune(args: FinetuneArguments, progress: Any = None) -> FinetuneResult:
        final = fake_hf(config.run_dir / TRAIN_SUBDIR / "final")
        return FinetuneResult(
            model_dir=final, mode="cpu", steps=1, max_steps=1, train_loss=None,
            train_seconds=0.0, seconds_per_step=None, samples_per_second=None, examples=2,
            resumed_from=None, stopped_early=False,
        )  # fmt: skip

    def judge(config: RunConfig, database: Any, registry: ModelRegistry, serving: str,
              name: str, ct2: Path) -> Any:  # fmt: skip
        state.judged.append(serving)
        state.during_judging()
        decision = GateDecision(promote=True, primary_set=None, checks=(), confidence=0.95)
        scores = {"heldout": _Evaluation()}
        return decision, {serving: scores, name: scores}, {}

    monkeypatch.setattr(runner, "_prepare", prepare)
    monkeypatch.setattr(runner, "finetune", tune)
    monkeypatch.setattr(runner, "judge", judge)
    monkeypatch.setattr(convert, "export_hf_to_ct2", lambda hf, out, **kw: fake_ct2(out))
    try:
        yield state
    finally:
        database.close()


def test_an_undisturbed_run_promotes(loop: Loop) -> None:
    report = loop.run()
    name = report.candidate
    assert report.promoted and loop.registry.current_name() == name
    assert loop.registry.get(name).trained_on() == {ALICE, BOB}
    assert loop.row().status == RunStatus.DONE and loop.row().error is None
    # Its configuration holds the database URL (a PostgreSQL password): the owner's alone.
    assert (loop.config.run_dir / runner.CONFIG_FILE).stat().st_mode & 0o777 == 0o600


def test_a_promotion_deletes_the_weights_no_rollback_reaches(loop: Loop) -> None:
    for name, parent in (("va", BASE_VERSION), ("vb", "va"), ("vc", "vb")):
        loop.install(name, parent)
    loop.registry.set_current("vc")
    loop.config = dataclasses.replace(loop.config, versions_kept=1)
    report = loop.run()
    assert report.promoted and loop.registry.get(report.candidate).parent == "vc"
    kept = {v.name for v in loop.registry.versions() if v.ct2_dir.is_dir()}
    assert kept == {report.candidate, "vc"}  # the serving one and its one rollback step


@pytest.mark.parametrize("when", ["while installing", "after installing"])
def test_a_forget_during_promotion_leaves_the_version_marked_and_unserved(
    loop: Loop, monkeypatch: pytest.MonkeyPatch, when: str
) -> None:
    # The audit's sequence: the gate check passed, then /forget lands while the version
    # sits in its temporary folder (invisible to mark_forgotten), or just after the rename.
    if when == "while installing":
        fsync = registry_module._fsync_tree

        def fsync_then_forget(root: Path) -> None:
            fsync(root)
            loop.forget(ALICE)

        monkeypatch.setattr(registry_module, "_fsync_tree", fsync_then_forget)
    else:
        install = ModelRegistry.install

        def install_then_forget(self: ModelRegistry, *args: Any, **kwargs: Any) -> Any:
            version = install(self, *args, **kwargs)
            loop.forget(ALICE)
            return version

        monkeypatch.setattr(ModelRegistry, "install", install_then_forget)

    report = loop.run()
    version = loop.registry.get(report.candidate)
    assert not report.promoted and loop.registry.current_name() == BASE_VERSION
    assert version.forgotten and version.trained_on() == {BOB}
    with pytest.raises(RegistryError, match="/forget"):
        loop.registry.set_current(version.name)
    row = loop.row()
    assert row.status == RunStatus.DONE and "/forget" in row.error
    recorded = training_records.RunState.from_json(row.metrics).report
    assert recorded is not None and recorded["promoted"] is False


def test_a_forget_that_deletes_clips_under_the_training_fails_the_run_saying_so(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    # CPU mode reads each clip's cached encoder states at its step: /forget deletes them.
    cache = loop.tmp / "cache" / "clip.npy"

    def tune(args: FinetuneArguments, progress: Any = None) -> FinetuneResult:
        cache.parent.mkdir(parents=True, exist_ok=True)
        cache.write_bytes(b"")
        loop.forget(ALICE)
        cache.unlink()
        cache.read_bytes()  # the next step's clip
        raise AssertionError("unreachable")

    monkeypatch.setattr(runner, "finetune", tune)
    with pytest.raises(runner.RunError, match="/forget"):
        loop.run()
    row = loop.row()
    assert row.status == RunStatus.FAILED
    assert runner.FORGOTTEN_DURING_TRAINING in row.error and "FileNotFound" not in row.error
    assert loop.registry.current_name() == BASE_VERSION


def test_a_rollback_during_the_run_withholds_the_promotion(loop: Loop) -> None:
    loop.install("v2", BASE_VERSION)
    loop.install("v3", "v2")
    loop.registry.set_current("v3")
    loop.during_judging = loop.registry.rollback  # the admin's /rollback: v2 serves

    report = loop.run()
    assert loop.judged == ["v3"]  # judged against v3, which no longer serves
    assert not report.promoted and loop.registry.current_name() == "v2"
    row = loop.row()
    assert row.status == RunStatus.DONE and "/rollback" in row.error and "v3" in row.error
    # /rollback goes where the admin expects, not back to v3.
    assert loop.registry.rollback() == BASE_VERSION


def test_a_kill_between_promotion_and_the_record_resumes_as_promoted(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    finish = training_records.finish_training_run
    killed: list[bool] = []

    def killed_once(*args: Any, **kwargs: Any) -> Any:
        if not killed:
            killed.append(True)
            raise KeyboardInterrupt  # like a kill: nothing recorded, the run stays open
        return finish(*args, **kwargs)

    monkeypatch.setattr(training_records, "finish_training_run", killed_once)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    name = runner.version_name(loop.config.run_id)
    assert loop.registry.current_name() == name
    assert loop.row().status in training_records.OPEN_RUN_STATUSES
    evaluations = loop.evaluations()
    assert evaluations == 2

    report = loop.run()  # the next start resumes it
    assert report.promoted and report.candidate == name and loop.judged == [BASE_VERSION]
    row = loop.row()
    assert row.status == RunStatus.DONE and row.error is None
    assert loop.evaluations() == evaluations  # not judged twice
    assert not (loop.config.run_dir / CANDIDATE_CT2).exists()


def test_a_kill_inside_the_install_leaves_no_weights_and_no_duplicate_evaluations(
    loop: Loop, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Killed while installing (evaluations recorded, the version folder still under its
    temporary name): the next start deletes that folder, which no /forget or prune could
    see, and its judging again replaces the evaluations instead of adding a second set."""
    real_move, real_rmtree = registry_module.shutil.move, registry_module.shutil.rmtree

    def move_then_die(src: Any, dst: Any) -> Any:
        moved = real_move(src, dst)
        if Path(dst).name == "hf":
            raise KeyboardInterrupt  # like a kill: nothing after this runs
        return moved

    monkeypatch.setattr(registry_module.shutil, "move", move_then_die)
    # A kill runs no clean-up: install's removal of its temporary folder never happens.
    monkeypatch.setattr(registry_module.shutil, "rmtree", lambda *a, **k: None)
    with pytest.raises(KeyboardInterrupt):
        loop.run()
    monkeypatch.setattr(registry_module.shutil, "move", real_move)
    monkeypatch.setattr(registry_module.shutil, "rmtree", real_rmtree)
    versions = loop.registry.root / "versions"
    assert [p.name.split(".tmp-")[0] for p in versions.iterdir()] == [".v1"]
    evaluations = loop.evaluations()
    assert evaluations == 2

    report = loop.run()
    assert report.promoted and loop.judged == [BASE_VERSION, BASE_VERSION]
    assert loop.evaluations() == evaluations
    assert [p.name for p in versions.iterdir()] == [report.candidate]


def test_a_trainer_whose_run_was_taken_over_stops_and_records_nothing(loop: Loop) -> None:
    with loop.database.unit_of_work() as uow:
        run = training_records.get_training_run(uow.session, loop.config.run_id)
        assert run is not None
        take_run_lease(uow.session, run, owner="other-host:99")  # resumed by another start
        uow.commit()
    with pytest.raises(LeaseLost):
        loop.run()
    assert loop.row().status == RunStatus.PENDING  # still open, for its real trainer
    assert loop.registry.versions() == [] and loop.judged == []


def test_lease_renewal_is_the_owners_alone(loop: Loop) -> None:
    run_id = loop.config.run_id
    with loop.database.unit_of_work() as uow:
        assert renew_run_lease(uow.session, run_id, owner=lease_owner())
        assert not renew_run_lease(uow.session, run_id, owner="other-host:99")
        run = training_records.get_training_run(uow.session, run_id)
        assert run is not None
        take_run_lease(uow.session, run, owner="other-host:99")
        assert not renew_run_lease(uow.session, run_id, owner=lease_owner())
        uow.commit()
    heartbeat = LeaseHeartbeat(loop.database, run_id, owner=lease_owner())
    assert not heartbeat.renew()
    with pytest.raises(LeaseLost):
        heartbeat.check()
    with pytest.raises(LeaseLost), LeaseHeartbeat(loop.database, run_id, owner=lease_owner()):
        pass


def test_closed_runs_lose_their_weights_the_open_one_keeps_them(tmp_path: Path) -> None:
    runs = tmp_path / "runs"

    def run_with_weights(name: str) -> Path:
        run_dir = runs / name
        fake_hf(run_dir / TRAIN_SUBDIR / "final")
        fake_ct2(run_dir / CANDIDATE_CT2)
        record_trained_on(run_dir, [Path(f"/store/{ALICE}.flac")])
        return run_dir

    failed, open_run = run_with_weights("run-0001"), run_with_weights("run-0002")
    forget_training_audio(
        [ALICE], runs_dir=runs, models_dir=tmp_path / "models",
        encoder_cache_dir=tmp_path / "cache", in_progress=open_run.name,
    )  # fmt: skip
    assert not (failed / CANDIDATE_CT2).exists()
    assert not (failed / TRAIN_SUBDIR / "final").exists()
    assert (open_run / CANDIDATE_CT2).is_dir() and (open_run / TRAIN_SUBDIR / "final").is_dir()

    # A failed run that /forget never reached: the next run's sweep clears it.
    other_failed = run_with_weights("run-0003")
    sweep_closed_runs(open_run)
    assert not (other_failed / CANDIDATE_CT2).exists()
    assert not (other_failed / TRAIN_SUBDIR / "final").exists()
    assert (open_run / CANDIDATE_CT2).is_dir() and (open_run / TRAIN_SUBDIR / "final").is_dir()
