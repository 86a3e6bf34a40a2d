"""The job queue's leases on both backends: SQLite (the embedded default) and a real
PostgreSQL server (tests/support/postgres.py). Several workers, in threads here and in processes
in tests/e2e/test_worker_processes.py, share one queue: each job is claimed by one worker at
a time, a dead worker's jobs go to another once its lease expires, and a worker that lost
its lease cannot finish the job."""

from __future__ import annotations

import itertools
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from storage import job_cancel, jobs, queue_counts, repository
from storage.models import JobStatus, utcnow
from storage.unit_of_work import Database
from tests.support.postgres import backend_url, fresh_database

# The tests that need PostgreSQL alone name their own databases.
_NAMES = itertools.count()


@pytest.fixture(params=["sqlite", "postgresql"])
def database(request, tmp_path: Path) -> Database:
    db = Database.open(backend_url(request, tmp_path, "leases"))
    yield db
    db.close()


def enqueue(db: Database, *users: int) -> list[int]:
    with db.unit_of_work() as uow:
        for user in set(users):
            repository.touch_user(uow.session, user)
        ids = [
            jobs.enqueue_job(uow.session, kind="telegram_file", payload={"n": n}, user_id=user).id
            for n, user in enumerate(users)
        ]
        uow.commit()
    return ids


def test_a_lease_is_renewed_while_held_and_lost_once_it_expires(database: Database) -> None:
    (job_id,) = enqueue(database, 1)
    start = utcnow()
    with database.unit_of_work() as uow:
        (job,) = jobs.claim_jobs(uow.session, owner="a", lease_seconds=30, now=start)
        assert (job.status, job.lease_owner) == (JobStatus.RUNNING, "a")
        uow.commit()
    with database.unit_of_work() as uow:
        later = start + timedelta(seconds=20)
        assert jobs.renew_leases(uow.session, owner="a", leases={job_id: 1}, now=later,
                                 lease_seconds=30) == {job_id}  # fmt: skip
        # Renewed: still alive after the first expiry would have passed.
        assert jobs.requeue_expired(uow.session, now=start + timedelta(seconds=40)).requeued == ()
        assert jobs.claim_jobs(uow.session, owner="b", now=later) == []
        uow.commit()
    with database.unit_of_work() as uow:
        # Worker a stops renewing (it died): anyone may requeue it; b takes it.
        dead = start + timedelta(seconds=120)
        assert jobs.requeue_expired(uow.session, now=dead).requeued == (job_id,)
        (again,) = jobs.claim_jobs(uow.session, owner="b", now=dead)
        assert again.attempts == 2 and again.lease_owner == "b"
        uow.commit()
    with database.unit_of_work() as uow:
        # a comes back from the dead: it may neither renew nor finish the job.
        assert jobs.renew_leases(uow.session, owner="a", leases={job_id: 1}) == set()
        assert not jobs.holds_lease(uow.session, job_id, "a")
        with pytest.raises(jobs.LeaseLostError):
            jobs.mark_job_done(uow.session, job_id, owner="a")
        assert jobs.holds_lease(uow.session, job_id, "b")
        jobs.mark_job_done(uow.session, job_id, owner="b")
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        done = jobs.get_job(uow.session, job_id)
        assert done is not None and done.status == JobStatus.DONE and done.lease_owner is None


def test_one_users_jobs_are_never_split_between_workers(database: Database) -> None:
    first_of_1, second_of_1, first_of_2 = enqueue(database, 1, 1, 2)
    with database.unit_of_work() as uow:
        assert [j.id for j in jobs.claim_jobs(uow.session, owner="a")] == [first_of_1]
        # b skips user 1 (a job of theirs runs elsewhere) and takes user 2's.
        assert [j.id for j in jobs.claim_jobs(uow.session, owner="b", limit=2)] == [first_of_2]
        # a may take user 1's next job into its own batch: it answers them in order.
        assert [j.id for j in jobs.claim_jobs(uow.session, owner="a")] == [second_of_1]
        uow.commit()


def test_batches_take_only_what_the_filter_accepts(database: Database) -> None:
    ids = enqueue(database, 1, 2, 3, 4, 5)
    with database.unit_of_work() as uow:
        odd = jobs.claim_jobs(
            uow.session, owner="a", limit=2, accept=lambda job: job.payload["n"] % 2 == 0
        )
        assert [j.id for j in odd] == [ids[0], ids[2]]
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        statuses = [jobs.get_job(uow.session, i).status for i in ids]  # type: ignore[union-attr]
    assert statuses == [
        JobStatus.RUNNING,
        JobStatus.PENDING,
        JobStatus.RUNNING,
        JobStatus.PENDING,
        JobStatus.PENDING,
    ]


def test_concurrent_workers_claim_each_job_exactly_once(database: Database) -> None:
    ids = enqueue(database, *range(1, 61))
    claimed: dict[str, list[int]] = {}
    errors: list[BaseException] = []

    def worker(owner: str) -> None:
        mine = claimed.setdefault(owner, [])
        try:
            while True:
                with database.unit_of_work() as uow:
                    batch = jobs.claim_jobs(uow.session, owner=owner, limit=3)
                    uow.commit()
                    if not batch:
                        return
                    mine.extend(job.id for job in batch)
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(f"w{n}",)) for n in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    everything = [job_id for batch in claimed.values() for job_id in batch]
    assert sorted(everything) == ids  # none lost, none twice


def test_a_job_is_claimable_only_once_its_front_released_it(database: Database) -> None:
    start = utcnow()
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        held = jobs.enqueue_job(
            uow.session, kind="telegram_file", payload={}, user_id=1, held_by="front", now=start
        )
        dead = jobs.enqueue_job(
            uow.session, kind="telegram_file", payload={}, user_id=1, held_by="gone", now=start
        )
        uow.commit()
    with database.unit_of_work() as uow:
        # Still being announced: no worker may take it (it would send a second message).
        assert jobs.claim_jobs(uow.session, owner="worker", now=start) == []
        assert queue_counts.queue_position(uow.session, held.id) == 1
        assert jobs.release_job(uow.session, held.id, owner="front", status_message_id=77)
        assert not jobs.release_job(uow.session, dead.id, owner="front")  # not its job
        (claimed,) = jobs.claim_jobs(uow.session, owner="worker", lease_seconds=600, now=start)
        assert (claimed.id, claimed.status_message_id) == (held.id, 77)
        uow.commit()
    with database.unit_of_work() as uow:
        # A front that died while announcing: its hold expires like any lease.
        later = start + timedelta(seconds=jobs.DEFAULT_LEASE_SECONDS + 1)
        assert jobs.requeue_expired(uow.session, now=later).requeued == (dead.id,)
        uow.commit()


def test_a_job_cancelled_while_its_place_is_announced_never_runs(database: Database) -> None:
    """Pressing "Annulla" the moment "In coda" shows: the job is still held by the front
    that sent the message. It was answered as finished and ran anyway."""
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        held = jobs.enqueue_job(
            uow.session, kind="telegram_file", payload={}, user_id=1, held_by="front"
        )
        outcome = job_cancel.request_cancel(uow.session, held.id, user_id=1)
        assert outcome is job_cancel.CancelOutcome.CANCELLED
        assert jobs.release_job(uow.session, held.id, owner="front", status_message_id=5)
        assert held.status == JobStatus.CANCELLED
        assert jobs.claim_jobs(uow.session, owner="worker") == []
        uow.commit()


def test_a_clean_stop_gives_its_running_jobs_back_without_spending_an_attempt(
    database: Database,
) -> None:
    """SIGTERM (a deploy) is no crash: three of them in a job's life failed it unanswered
    ("interrupted too many times"), as three deaths would."""
    mine, cancelled, theirs = enqueue(database, 1, 2, 3)
    with database.unit_of_work() as uow:
        assert len(jobs.claim_jobs(uow.session, owner="a", lease_seconds=600, limit=2)) == 2
        assert jobs.claim_jobs(uow.session, owner="b", lease_seconds=600)[0].id == theirs
        jobs.get_job(uow.session, cancelled).cancel_requested = True  # "Annulla", in flight
        uow.commit()
    with database.unit_of_work() as uow:
        given = jobs.give_back_leases(uow.session, owner="a")
        uow.commit()
    assert given == jobs.RequeueResult(requeued=(mine,), failed=(), cancelled=(cancelled,))
    for _stop in range(jobs.DEFAULT_MAX_ATTEMPTS + 1):  # claimed and stopped again and again
        with database.unit_of_work() as uow:
            (job,) = jobs.claim_jobs(uow.session, owner="a", lease_seconds=600)
            assert (job.id, job.attempts) == (mine, 1)
            assert jobs.give_back_leases(uow.session, owner="a").requeued == (mine,)
            uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        rows = {j: jobs.get_job(uow.session, j) for j in (mine, cancelled, theirs)}
        states = {j: (row.status, row.attempts, row.lease_owner) for j, row in rows.items()}
    assert states == {
        mine: (JobStatus.PENDING, 0, None),
        cancelled: (JobStatus.CANCELLED, 1, None),
        theirs: (JobStatus.RUNNING, 1, "b"),  # another process's claim: untouched
    }
    with database.unit_of_work() as uow:  # a crash still counts: the claim's attempt stays
        jobs.claim_jobs(uow.session, owner="a", lease_seconds=0)
        later = utcnow() + timedelta(seconds=1)
        assert jobs.requeue_expired(uow.session, now=later).requeued == (mine,)
        assert jobs.get_job(uow.session, mine).attempts == 1
        uow.commit()


def test_a_claim_requeued_and_claimed_again_under_the_same_name_is_lost(
    database: Database,
) -> None:
    # One process's workers share a name: only the claim's attempt tells them apart.
    (job_id,) = enqueue(database, 1)
    start = utcnow()
    with database.unit_of_work() as uow:
        (first,) = jobs.claim_jobs(uow.session, owner="o", now=start)
        uow.commit()
    later = start + timedelta(seconds=jobs.DEFAULT_LEASE_SECONDS + 1)
    with database.unit_of_work() as uow:
        assert jobs.requeue_expired(uow.session, now=later).requeued == (job_id,)
        (second,) = jobs.claim_jobs(uow.session, owner="o", now=later)
        uow.commit()
    stale, current = 1, 2
    assert (first.id, second.id, second.attempts) == (job_id, job_id, current)
    with database.unit_of_work() as uow:
        assert not jobs.holds_lease(uow.session, job_id, "o", attempt=stale)
        assert jobs.renew_leases(uow.session, owner="o", leases={job_id: stale}) == set()
        with pytest.raises(jobs.LeaseLostError):
            jobs.mark_job_done(uow.session, job_id, owner="o", attempt=stale)
        assert not job_cancel.mark_job_cancelled(uow.session, job_id, owner="o", attempt=stale)
        uow.commit()
    with database.unit_of_work() as uow:
        job = jobs.get_job(uow.session, job_id)
        assert job is not None and job.status == JobStatus.RUNNING  # untouched
        assert jobs.holds_lease(uow.session, job_id, "o", attempt=current)
        assert jobs.renew_leases(uow.session, owner="o", leases={job_id: current}) == {job_id}
        jobs.mark_job_done(uow.session, job_id, owner="o", attempt=current)
        uow.commit()


def test_a_hold_renewed_while_held_is_never_requeued(database: Database) -> None:
    (job_id,) = enqueue(database, 1)
    start = utcnow()
    with database.unit_of_work() as uow:
        assert jobs.hold_job(uow.session, job_id, owner="front", now=start)
        uow.commit()
    for seconds in (20, 40, 60):  # the front renews while its message edit waits
        with database.unit_of_work() as uow:
            now = start + timedelta(seconds=seconds)
            assert jobs.renew_leases(uow.session, owner="front", leases={job_id: None},
                                     now=now) == {job_id}  # fmt: skip
            uow.commit()
    with database.unit_of_work() as uow:
        now = start + timedelta(seconds=jobs.DEFAULT_LEASE_SECONDS + 1)
        assert jobs.requeue_expired(uow.session, now=now).requeued == ()
        assert jobs.claim_jobs(uow.session, owner="worker", now=now) == []
        assert jobs.release_job(uow.session, job_id, owner="front")
        assert [j.id for j in jobs.claim_jobs(uow.session, owner="front", now=now)] == [job_id]
        uow.commit()
    with database.unit_of_work() as uow:
        # Renewing a hold never renews a claim: the holder's hold is gone.
        assert jobs.renew_leases(uow.session, owner="front", leases={job_id: None}) == set()
        assert jobs.renew_leases(uow.session, owner="front", leases={job_id: 1}) == {job_id}
        uow.commit()


def test_postgres_claims_wait_for_each_other(request) -> None:
    # Row locks alone: b skipped a's uncommitted claim and took user 1's second job.
    server = request.getfixturevalue("postgres_url")
    db = Database.open(fresh_database(server, f"leases_pg_{next(_NAMES)}"))
    try:
        _, second_job, *_ = enqueue(db, 1, 2, 3, 4, 1)  # user 1 sent the first and last
        with db.unit_of_work() as a:
            assert [j.user_id for j in jobs.claim_jobs(a.session, owner="a")] == [1]
            b_claimed: list[int] = []
            b = threading.Thread(target=_claim_into, args=(db, "b", b_claimed))
            b.start()
            b.join(timeout=1.0)
            assert b.is_alive()  # waits for a's claim to commit
            a.commit()
        b.join(timeout=30)
        assert b_claimed == [second_job]  # not user 1's last: a runs their first
    finally:
        db.close()


def _claim_into(db: Database, owner: str, claimed: list[int]) -> None:
    with db.unit_of_work() as uow:
        claimed.extend(job.id for job in jobs.claim_jobs(uow.session, owner=owner))
        uow.commit()


def test_postgres_claims_do_not_pass_a_users_job_being_held(request) -> None:
    # A front holds user 1's first job (its "In coda" message is being edited) and has not
    # committed yet: the claim skipped the locked row and started user 1's second job.
    server = request.getfixturevalue("postgres_url")
    db = Database.open(fresh_database(server, f"leases_pg_{next(_NAMES)}"))
    try:
        first, second = enqueue(db, 1, 1)
        with db.unit_of_work() as front:
            assert jobs.hold_job(front.session, first, owner="front")
            claimed: list[int] = []
            _claim_into(db, "worker", claimed)
            assert claimed == []  # nothing: the second waits for the first
            front.commit()
        with db.unit_of_work() as front:
            assert jobs.release_job(front.session, first, owner="front")
            front.commit()
        _claim_into(db, "worker", claimed)
        assert claimed == [first]
        _claim_into(db, "other", claimed)
        assert claimed == [first]  # the second waits until the first is done
        with db.unit_of_work() as uow:
            jobs.mark_job_done(uow.session, first, owner="worker")
            uow.commit()
        _claim_into(db, "other", claimed)
        assert claimed == [first, second]
    finally:
        db.close()
