"""Two real processes (the bot and the trainer) writing to one SQLite file at once."""

from __future__ import annotations

import multiprocessing
import threading
import time
import traceback
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError

from storage import jobs, migrations, queue_counts, repository, training_records
from storage.audio_store import AudioStore
from storage.engine import create_engine_for
from storage.models import Correction, Transcription
from storage.unit_of_work import Database
from tests.support.databases import database_url

JOBS = 150
WORKERS = 2


def _worker(url: str, audio_dir: str, worker: int, barrier: object, results: object) -> None:
    """Claim jobs until none is left, doing per job what the bot does, plus the trainer's
    progress updates: many short transactions that read, then write."""
    try:
        database = Database(create_engine_for(url))
        store = AudioStore(Path(audio_dir))
        with database.unit_of_work() as uow:
            run = training_records.create_training_run(uow.session, config={"worker": worker})
            uow.commit()
        barrier.wait()  # type: ignore[attr-defined]
        claimed: list[int] = []
        step = 0
        while True:
            with database.unit_of_work() as uow:
                job = jobs.claim_next_job(uow.session)
                uow.commit()
            if job is None:
                break
            samples = np.full(800, (job.id % 100) / 200, dtype=np.float32)
            ref = store.put(samples)  # both workers store some identical audio
            with database.unit_of_work() as uow:
                repository.touch_user(uow.session, job.user_id or 1)
                transcription = repository.add_transcription(
                    uow.session, source_kind="voice", text="testo", user_id=job.user_id, audio=ref
                )
                repository.add_correction(
                    uow.session, transcription_id=transcription.id, user_id=1, text="corretto"
                )
                jobs.mark_job_done(uow.session, job.id, transcription_id=transcription.id)
                uow.commit()
            step += 1
            with database.unit_of_work() as uow:
                training_records.update_training_progress(uow.session, run.id, steps_done=step)
                uow.commit()
            claimed.append(job.id)
        database.close()
        results.put((worker, claimed, None))  # type: ignore[attr-defined]
    except BaseException:  # report everything: a silent child failure would pass the test
        results.put((worker, [], traceback.format_exc()))  # type: ignore[attr-defined]


@pytest.mark.timeout(180)
def test_two_processes_write_at_once(tmp_path: Path) -> None:
    url = database_url(tmp_path)
    database = Database.open(url)
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        for i in range(JOBS):
            jobs.enqueue_job(uow.session, kind="transcribe", payload={"n": i}, user_id=1)
        uow.commit()

    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    results = context.Queue()
    processes = [
        context.Process(target=_worker, args=(url, str(tmp_path / "audio"), n, barrier, results))
        for n in range(WORKERS)
    ]
    for process in processes:
        process.start()
    outcomes = [results.get(timeout=150) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    errors = [error for _, _, error in outcomes if error]
    assert errors == [], "\n".join(errors)
    claimed = [ids for _, ids, _ in outcomes]
    assert all(claimed), "both processes should have worked"
    assert sorted(claimed[0] + claimed[1]) == list(range(1, JOBS + 1))  # each job exactly once
    with database.unit_of_work(read_only=True) as uow:
        assert queue_counts.count_open_jobs(uow.session) == 0
        assert uow.session.scalar(select(func.count()).select_from(Transcription)) == JOBS
        assert uow.session.scalar(select(func.count()).select_from(Correction)) == JOBS
    assert len(list(AudioStore(tmp_path / "audio"))) == 100
    database.close()


def test_read_only_work_does_not_block_writers(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'whisper-it.sqlite3'}"
    Database.open(url).close()
    database = Database(create_engine_for(url, busy_timeout_s=0.2))
    try:
        with database.unit_of_work(read_only=True) as reader:
            assert repository.get_user(reader.session, 1) is None  # a read transaction is open
            with database.unit_of_work() as writer:
                repository.touch_user(writer.session, 1)
                writer.commit()
        # A write transaction holds the lock from its start: a second writer waits for it,
        # here only 0.2 s, then fails. With the default 30 s it would simply have waited.
        with database.unit_of_work() as first:
            repository.touch_user(first.session, 2)
            failure: list[BaseException] = []

            def second_writer() -> None:
                try:
                    with database.unit_of_work() as second:
                        repository.touch_user(second.session, 3)
                        second.commit()
                except OperationalError as exc:
                    failure.append(exc)

            thread = threading.Thread(target=second_writer)
            started = time.monotonic()
            thread.start()
            thread.join()
            first.commit()
        assert failure and "locked" in str(failure[0])
        assert time.monotonic() - started >= 0.15
    finally:
        database.close()


def _upgrade(url: str, barrier: object) -> None:
    from storage import migrations

    barrier.wait()  # type: ignore[attr-defined]
    migrations.upgrade(url)


@pytest.mark.timeout(120)
def test_two_processes_upgrade_a_fresh_database_at_once(tmp_path: Path) -> None:
    """The bot and the trainer both migrate at start; neither may fail."""
    url = database_url(tmp_path)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(WORKERS)
    processes = [context.Process(target=_upgrade, args=(url, barrier)) for _ in range(WORKERS)]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=90)
    assert [process.exitcode for process in processes] == [0] * WORKERS
    assert migrations.current(url) == migrations.head()
