"""One training run at a time across processes and machines: two fronts on one
PostgreSQL database start one run between them, and a trainer that stopped renewing its
lease is resumed, not waited for forever (no PIDs involved)."""

from __future__ import annotations

import subprocess
import threading
from pathlib import Path

import pytest

from bot.settings import Settings
from bot.training_control import StartRefusal, TrainingControl
from storage import training_records
from storage.training_lease import lease_owner, renew_run_lease
from storage.unit_of_work import Database
from tests.support.postgres import fresh_database


class _Trainer:
    """A launched trainer that keeps running (the real one renews its lease)."""

    pid = 4242

    def poll(self) -> None:
        return None


@pytest.fixture
def fake_trainer(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    launched: list[list[str]] = []

    def popen(argv, **kwargs):
        launched.append(argv)
        return _Trainer()

    monkeypatch.setattr(subprocess, "Popen", popen)
    return launched


def test_two_fronts_on_postgresql_start_one_run(
    tmp_path: Path, postgres_url: str, fake_trainer: list[list[str]]
) -> None:
    url = fresh_database(postgres_url, "training_lease")
    settings = Settings(data_dir=tmp_path / "data", database_url=url, _env_file=None)
    databases = [Database.open(url), Database.open(url, migrate=False)]
    controls = [TrainingControl(settings, database) for database in databases]
    barrier = threading.Barrier(len(controls))
    results = []

    def start(control: TrainingControl) -> None:
        barrier.wait()
        results.append(control.start_run(force=True))

    try:
        threads = [threading.Thread(target=start, args=(c,)) for c in controls]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        started = [r for r in results if r.started]
        refused = [r for r in results if not r.started]
        assert len(started) == 1 and len(fake_trainer) == 1
        assert refused[0].refusal is StartRefusal.IN_PROGRESS
        assert refused[0].run_id == started[0].run_id
        with databases[0].unit_of_work(read_only=True) as uow:
            assert len(training_records.list_training_runs(uow.session)) == 1
    finally:
        for database in databases:
            database.close()


def test_a_silent_trainer_is_resumed_by_another_front(
    tmp_path: Path, fake_trainer: list[list[str]]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)
    database = Database.open(settings.resolved_database_url)
    try:
        first = TrainingControl(settings, database).start_run(force=True)
        other_front = TrainingControl(settings, database)
        assert other_front.start_run(force=True).refusal is StartRefusal.IN_PROGRESS
        # The trainer's machine disappears: nobody renews the lease, and it runs out.
        with database.unit_of_work() as uow:
            renew_run_lease(uow.session, first.run_id, owner=lease_owner(4242), lease_seconds=-1)
            uow.commit()
        again = other_front.start_run(force=True)
        assert again.started and again.resumed and again.run_id == first.run_id
        assert len(fake_trainer) == 2
    finally:
        database.close()
