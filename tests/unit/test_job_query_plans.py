"""The per-job queue queries read an index, not every job ever finished (SQLite plans of
the statements the real functions send, on the migrated schema). Finished jobs are kept
for the retention period: at 5,000 a day, 150,000 of them; the waiting-time estimate
sorted them all (185 ms) for each accepted job and each announced one every refresh."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import event, insert
from sqlalchemy.orm import Session

from storage import queue_counts, queue_eta
from storage.models import Job, JobStatus, User, utcnow
from storage.unit_of_work import Database

FINISHED_JOBS = 200


def _finished_job(message_id: int, finished: datetime) -> dict[str, Any]:
    started = finished - timedelta(seconds=2)
    return {"kind": "telegram_file", "user_id": 1, "chat_id": 1, "user_message_id": message_id,
            "status": JobStatus.DONE, "started_at": started, "finished_at": finished}  # fmt: skip


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Database]:
    db = Database.open(f"sqlite:///{tmp_path / 'plans.db'}")  # the real migrations
    now = utcnow()
    with db.unit_of_work() as uow:
        uow.session.add(User(id=1))
        uow.session.flush()
        rows = [_finished_job(n, now - timedelta(seconds=n)) for n in range(FINISHED_JOBS)]
        uow.session.execute(insert(Job), rows)
        uow.commit()
    yield db
    db.close()


def _plans(db: Database, query: Callable[[Session], Any]) -> list[str]:
    """What SQLite's EXPLAIN QUERY PLAN says of each SELECT ``query`` sends."""
    sent: list[tuple[str, Any]] = []

    def record(_conn: Any, _cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", record)
    try:
        with db.unit_of_work(read_only=True) as uow:
            query(uow.session)
    finally:
        event.remove(db.engine, "before_cursor_execute", record)
    assert sent
    with db.engine.connect() as connection:
        return [
            str(row[-1])
            for statement, parameters in sent
            for row in connection.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
        ]


def test_the_throughput_reads_the_latest_finished_jobs_from_an_index(database: Database) -> None:
    plans = _plans(database, queue_eta.recent_throughput)
    assert any("jobs USING INDEX ix_jobs_status_finished_at" in step for step in plans), plans
    assert not any("TEMP B-TREE" in step for step in plans), plans  # no sort of every job


def test_already_queued_finds_the_message_from_an_index(database: Database) -> None:
    plans = _plans(database, lambda session: queue_counts.job_for_message(session, 1, 7))
    assert any("USING INDEX ix_jobs_chat_id_user_message_id" in step for step in plans), plans
    assert not any(step.startswith("SCAN jobs") for step in plans), plans
