"""Model registry, gate decisions, rollback and run bookkeeping (no model loading: fast)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from bot.settings import Settings
from bot.training_control import StartRefusal, TrainingControl
from model.asr.registry import BASE_VERSION, ModelRegistry, RegistryError
from storage import training_records
from storage.training_lease import lease_alive, renew_run_lease, take_run_lease
from storage.unit_of_work import Database
from tests.support.fake_versions import fake_hf, install_fake_version
from training.config import RunConfig
from training.forgetting import forget_training_audio
from training.promote import ensure_version_row, rollback
from training.runner import CONFIG_FILE


def test_registry_install_switch_and_rollback(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    assert registry.current_name() == BASE_VERSION and registry.current() is None
    install_fake_version(registry, tmp_path, "v1", BASE_VERSION)
    # Installing does not serve it; the pointer does.
    assert registry.current() is None
    registry.set_current("v1")
    install_fake_version(registry, tmp_path, "v2", "v1")
    registry.set_current("v2")
    current = registry.current()
    assert current is not None and current.name == "v2"
    assert (current.ct2_dir / "model.bin").is_file() and (current.path / "README.md").is_file()
    assert [v.name for v in registry.versions()] == ["v1", "v2"]
    # No temporary folders or pointer files are left behind.
    leftovers = [p.name for p in (tmp_path / "models").rglob(".*")]
    assert leftovers == []

    assert registry.rollback() == "v1"
    assert registry.rollback() == BASE_VERSION
    with pytest.raises(RegistryError):
        registry.rollback()
    # Versions are kept after rolling back.
    assert registry.get("v2").hf_dir.is_dir()


def test_registry_refuses_bad_names_and_incomplete_versions(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    with pytest.raises(RegistryError):
        registry.set_current("missing")
    with pytest.raises(RegistryError):
        registry.get("../escape")
    with pytest.raises(RegistryError):
        registry.install(
            "v1",
            hf_dir=fake_hf(tmp_path / "hf"),
            ct2_dir=tmp_path / "nothing",
            metrics={},
            card="",
        )
    assert not (tmp_path / "models" / "versions" / "v1").exists()
    assert registry.current_name() == BASE_VERSION


def test_rollback_updates_pointer_and_database(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        control = TrainingControl(settings, database)
        registry = control.registry
        install_fake_version(registry, tmp_path, "v1", BASE_VERSION)
        with database.unit_of_work() as uow:
            base = ensure_version_row(uow.session, BASE_VERSION, spec=settings.base_model)
            v1 = training_records.add_model_version(uow.session, name="v1", parent_id=base.id)
            training_records.activate_model_version(uow.session, v1.id)
            training_records.add_evaluation(
                uow.session, model_version_id=v1.id, eval_set="x", wer=0.2, count=3
            )
            uow.commit()
        registry.set_current("v1")
        current = control.current_model()
        assert current is not None and current[0] == "v1" and current[1].name == "ct2"
        models = {m.name: m for m in control.list_models()}
        assert models["v1"].is_current and models["v1"].parent == BASE_VERSION
        assert models["v1"].wer == {"x": 0.2}

        assert rollback(registry, database) == BASE_VERSION
        assert control.current_model() is None
        with database.unit_of_work(read_only=True) as uow:
            active = training_records.active_model_version(uow.session)
            assert active is not None and active.name == BASE_VERSION
    finally:
        database.close()


def test_start_run_needs_samples_and_refuses_a_second_run(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path / "data", train_min_new_samples=3, _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        control = TrainingControl(settings, database)
        refused = control.start_run()
        assert not refused.started and refused.refusal is StartRefusal.NOT_ENOUGH_SAMPLES
        assert (refused.new_samples, refused.needed) == (0, 3)
        # A run whose trainer (on any machine) renews its lease blocks a new start.
        with database.unit_of_work() as uow:
            run = training_records.create_training_run(uow.session, config={})
            take_run_lease(uow.session, run, owner="another-machine:77")
            uow.commit()
        blocked = control.start_run(force=True)
        assert not blocked.started and blocked.run_id == run.id
        assert blocked.refusal is StartRefusal.IN_PROGRESS
        # Once the lease has run out the trainer is gone, whatever its PID was.
        with database.unit_of_work() as uow:
            assert renew_run_lease(
                uow.session, run.id, owner="another-machine:77", lease_seconds=-1
            )
            uow.commit()
        with database.unit_of_work(read_only=True) as uow:
            stale = training_records.get_training_run(uow.session, run.id)
            assert stale is not None and not lease_alive(stale)
        status = control.status()
        assert status is not None and status.is_open and status.run_id == run.id
    finally:
        database.close()


def test_a_runs_database_row_holds_no_database_password(tmp_path: Path) -> None:
    """The trainer gets the URL in its own 0600 file; the run's row (read by admins'
    tools, kept in backups) must not carry the password."""
    url = "postgresql+psycopg://whisper:s3cret-pw@db.example:5432/whisper"
    settings = Settings(data_dir=tmp_path / "data", database_url=url, _env_file=None)
    database = Database.open(f"sqlite:///{tmp_path / 'whisper.db'}")
    try:
        control = TrainingControl(settings, database)
        control._spawn = lambda config, log: SimpleNamespace(pid=os.getpid())  # type: ignore[method-assign]
        started = control.start_run(force=True)
        assert started.started
        with database.unit_of_work(read_only=True) as uow:
            run = training_records.get_training_run(uow.session, started.run_id)
            assert run is not None and "s3cret-pw" not in json.dumps(run.config)
            assert (
                run.config["database_url"]
                == "postgresql+psycopg://whisper:***@db.example:5432/whisper"
            )
        on_disk = RunConfig.from_json((Path(run.output_dir) / CONFIG_FILE).read_text())
        assert on_disk.database_url == url
    finally:
        database.close()


def test_prune_keeps_the_serving_version_and_its_rollback_steps(tmp_path: Path) -> None:
    registry = ModelRegistry(tmp_path / "models")
    for n in range(1, 6):
        install_fake_version(registry, tmp_path, f"v{n}", f"v{n - 1}" if n > 1 else BASE_VERSION)
    registry.set_current("v5")
    assert registry.prune(keep=2) == ["v1", "v2"]
    assert registry.prune(keep=2) == []  # nothing left to delete
    assert [v.name for v in registry.versions()] == ["v1", "v2", "v3", "v4", "v5"]  # history
    assert not registry.get("v2").ct2_dir.exists() and registry.get("v2").parent == "v1"
    assert registry.rollback() == "v4" and registry.rollback() == "v3"
    with pytest.raises(RegistryError, match="CTranslate2"):  # its weights are gone
        registry.rollback()
    assert registry.current_name() == "v3"


def test_a_pointer_to_a_missing_version_serves_base_warns_once_and_rollback_repairs_it(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Its folder deleted by hand, the version CURRENT names cannot serve: the base model
    does, the log says so once (not before every job), and /rollback points CURRENT at
    the base model (it refused before: "version v1 does not exist")."""
    import shutil

    from bot.bootstrap import current_model_spec

    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    registry = ModelRegistry(settings.models_dir)
    install_fake_version(registry, tmp_path, "v1", BASE_VERSION)
    registry.set_current("v1")
    shutil.rmtree(registry.get("v1").path)
    specs = [current_model_spec(settings) for _ in range(3)]
    assert specs == [settings.base_model] * 3
    warned = [r for r in caplog.records if "cannot be served" in r.getMessage()]
    assert len(warned) == 1, warned
    assert registry.rollback() == BASE_VERSION
    assert registry.current_name() == BASE_VERSION and registry.current() is None
    with pytest.raises(RegistryError):
        registry.rollback()


ALICE, BOB = "a" * 64, "b" * 64


def _trained_versions(tmp_path: Path, count: int) -> ModelRegistry:
    registry = ModelRegistry(tmp_path / "models")
    for n in range(1, count + 1):
        install_fake_version(registry, tmp_path, f"v{n}", f"v{n - 1}" if n > 1 else BASE_VERSION)
        (registry.get(f"v{n}").path / "trained_on.txt").write_text(f"{ALICE}\n{BOB}\n")
    return registry


def test_two_writers_of_one_versions_lists_do_not_take_each_others_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Bob's /forget (another thread, or the trainer's withdraw) rewrites v1's files while
    Alice's is between writing its temporary copy and renaming it: with one fixed
    temporary name the second rename took the first's file (FileNotFoundError) and the
    loop stopped before v2."""
    registry = _trained_versions(tmp_path, 2)
    real_replace = os.replace
    interleaved: list[str] = []

    def replace_after_the_other_writer(src: Any, dst: Any) -> None:
        if not interleaved:
            interleaved.append(str(dst))
            registry.withdraw("v1", [BOB])  # the other writer, in the middle of this one
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_after_the_other_writer)
    assert registry.mark_forgotten([ALICE]) == ["v1", "v2"]
    assert interleaved and all(v.forgotten for v in registry.versions())
    assert all(ALICE not in v.trained_on() for v in registry.versions())
    assert not list(registry.root.rglob("*.tmp"))  # no temporary file left


def test_two_users_forget_at_once_and_every_version_is_marked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The bot runs each /forget in a worker thread. Bob's starts while Alice's is about
    to write back v1's list: it waits for Alice's to end. It used to rename Alice's
    temporary file away (her marking stopped at v1 with FileNotFoundError); with unique
    names but no lock, Alice's write put Bob's hash back into the list."""
    registry = _trained_versions(tmp_path, 3)
    places = {
        "runs_dir": tmp_path / "runs", "models_dir": registry.root,
        "encoder_cache_dir": tmp_path / "cache", "in_progress": None,
    }  # fmt: skip
    errors: list[BaseException] = []

    def forget(audio: str) -> None:
        try:
            forget_training_audio([audio], **places)
        except BaseException as exc:
            errors.append(exc)

    bob = threading.Thread(target=forget, args=(BOB,))
    real_replace = os.replace

    def replace_while_bob_forgets(src: Any, dst: Any) -> None:
        if Path(dst).name == "trained_on.txt" and bob.ident is None:
            bob.start()
            bob.join(timeout=0.5)  # Bob's runs to its end, unless it waits for Alice's
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", replace_while_bob_forgets)
    forget(ALICE)
    bob.join()
    assert errors == []
    assert all(v.forgotten and not v.trained_on() for v in registry.versions())


def test_a_version_that_cannot_be_marked_does_not_stop_the_others(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """/forget's DB rows are gone when the registry is marked: a retry cannot find the
    audio again, so every version gets its chance before the error is raised."""
    registry = _trained_versions(tmp_path, 3)
    real_replace = os.replace

    def v2_unwritable(src: Any, dst: Any) -> None:
        if Path(dst).parent.name == "v2":
            raise PermissionError(f"cannot write {dst}")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", v2_unwritable)
    with pytest.raises(PermissionError):
        registry.mark_forgotten([ALICE])
    assert [v.name for v in registry.versions() if v.forgotten] == ["v1", "v3"]
    assert not list(registry.get("v2").path.glob(".*"))  # its temporary files removed


def test_partial_installs_are_deleted_and_installed_versions_kept(tmp_path: Path) -> None:
    """A trainer killed inside ``install`` leaves ``versions/.vN.tmp-*`` with weights that
    ``versions()`` never lists (so no /forget or prune reaches them)."""
    registry = _trained_versions(tmp_path, 1)
    partial = registry.root / "versions" / ".v2.tmp-k1ll3d"
    fake_hf(partial / "hf")
    assert [v.name for v in registry.versions()] == ["v1"]
    assert registry.remove_partial_installs() == [".v2.tmp-k1ll3d"]
    assert not partial.exists() and registry.get("v1").hf_dir.is_dir()
    assert registry.remove_partial_installs() == []
