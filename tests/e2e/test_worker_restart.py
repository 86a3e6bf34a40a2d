"""A restart resumes at once: a worker process killed mid-transcription and started again
takes its own job back under its stable name (``host:worker:slot``) instead of waiting
for the lease to expire, while another process's live lease is honoured."""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest

from bot.ops.identity import IdentityTaken, claim_identity
from storage import jobs
from storage.models import Job, JobStatus, utcnow
from storage.unit_of_work import Database
from tests.support.bot_harness import bot_process_env, read_jobs, running_bot
from tests.support.worker_support import FakeTranscriber, tone_wav

LEASE_SECONDS = 120.0
OTHER_OWNER = "another-host:worker:0"


def test_identity_slots_are_stable_and_never_shared(tmp_path: Path) -> None:
    first = claim_identity(tmp_path, "worker")
    second = claim_identity(tmp_path, "worker")
    front = claim_identity(tmp_path, "bot")
    assert first.name.endswith(":worker:0") and second.name.endswith(":worker:1")
    assert front.name.endswith(":bot:0")
    first.release()  # the process holding slot 0 died: its successor gets the same name
    again = claim_identity(tmp_path, "worker")
    assert again.name == first.name
    named = claim_identity(tmp_path, "worker", "gpu-box-a")
    assert named.name == "gpu-box-a"
    with pytest.raises(IdentityTaken):
        claim_identity(tmp_path, "worker", "gpu-box-a")
    for identity in (second, front, again, named):
        identity.release()


def test_take_back_leases_touches_only_the_owner_s_jobs(tmp_path: Path) -> None:
    db = Database.open(f"sqlite:///{tmp_path / 'q.db'}")
    now = utcnow()
    with db.unit_of_work() as uow:
        for _ in range(3):
            jobs.enqueue_job(uow.session, kind="k", payload={}, now=now)
        (mine,) = jobs.claim_jobs(uow.session, owner="me", lease_seconds=600, now=now)
        (theirs,) = jobs.claim_jobs(uow.session, owner="them", lease_seconds=600, now=now)
        uow.commit()
        mine_id, theirs_id = mine.id, theirs.id
    with db.unit_of_work() as uow:
        result = jobs.take_back_leases(uow.session, owner="me", now=now + timedelta(seconds=1))
        uow.commit()
    assert result.requeued == (mine_id,) and result.failed == ()
    with db.unit_of_work(read_only=True) as uow:
        states = {job.id: (job.status, job.lease_owner) for job in uow.session.query(Job)}
    assert states[mine_id] == (JobStatus.PENDING, None)
    assert states[theirs_id] == (JobStatus.RUNNING, "them")
    db.close()


def test_take_back_leases_also_takes_back_the_jobs_the_owner_held(tmp_path: Path) -> None:
    """A front killed while announcing a job's place ("In coda") and restarted under its
    name: the job it held is queued at once, not after its lease (nor are that user's
    later jobs kept waiting behind it). A hold is no attempt: it never fails one."""
    db = Database.open(f"sqlite:///{tmp_path / 'q.db'}")
    now = utcnow()
    with db.unit_of_work() as uow:
        held = jobs.enqueue_job(uow.session, kind="k", payload={}, user_id=None, held_by="front",
                                lease_seconds=600, now=now)  # fmt: skip
        held.attempts = jobs.DEFAULT_MAX_ATTEMPTS - 1  # run and interrupted before
        cancelled = jobs.enqueue_job(uow.session, kind="k", payload={}, held_by="front",
                                     lease_seconds=600, now=now)  # fmt: skip
        cancelled.cancel_requested = True  # "Annulla" pressed as "In coda" showed
        theirs = jobs.enqueue_job(uow.session, kind="k", payload={}, held_by="other-front",
                                  lease_seconds=600, now=now)  # fmt: skip
        uow.commit()
        ids = held.id, cancelled.id, theirs.id
    with db.unit_of_work() as uow:
        result = jobs.take_back_leases(uow.session, owner="front", now=now + timedelta(seconds=1))
        uow.commit()
    assert result.requeued == (ids[0],) and result.failed == ()
    assert result.cancelled == (ids[1],)
    with db.unit_of_work() as uow:
        states = {job.id: (job.status, job.lease_owner) for job in uow.session.query(Job)}
        (claimed,) = jobs.claim_jobs(uow.session, owner="worker", now=now)
        uow.commit()
    assert states == {
        ids[0]: (JobStatus.PENDING, None),
        ids[1]: (JobStatus.CANCELLED, None),
        ids[2]: (JobStatus.HELD, "other-front"),  # another live front's hold is honoured
    }
    assert (claimed.id, claimed.attempts) == (ids[0], jobs.DEFAULT_MAX_ATTEMPTS)
    db.close()


def _start_worker(env: dict[str, str], delay: float, log: Path) -> subprocess.Popen:
    env = env | {"FAKE_TRANSCRIBE_SECONDS": str(delay)}
    with log.open("ab") as out:
        return subprocess.Popen(
            [sys.executable, "-m", "tests.support.worker_process"],
            env=env,
            cwd=log.parent,
            stdout=out,
            stderr=subprocess.STDOUT,
        )


async def test_a_killed_worker_restarted_answers_its_job_without_waiting_for_the_lease(
    tmp_path: Path,
) -> None:
    overrides = {"workers": 0, "tagger": "off", "lease_seconds": LEASE_SECONDS}
    log = tmp_path / "worker.log"
    async with running_bot(tmp_path, FakeTranscriber(), **overrides) as bot:
        # A job another live process works on: its lease must survive our restart.
        with bot.services.db.unit_of_work() as uow:
            jobs.enqueue_job(uow.session, kind="telegram_file", payload={})
            (foreign,) = jobs.claim_jobs(uow.session, owner=OTHER_OWNER, lease_seconds=600)
            uow.commit()
            foreign_id = foreign.id
        env = bot_process_env(
            bot.emu,
            tmp_path,
            tmp_path / "cache",
            TAGGER="off",
            LEASE_SECONDS=str(LEASE_SECONDS),
            WORKER_POLL_SECONDS="0.2",
            BATCH_SIZE="1",
        )
        victim = _start_worker(env, delay=600, log=log)  # never finishes by itself
        try:
            sent = bot.emu.send_voice(user_id=6000, data=tone_wav(1.0), duration=1)
            await bot.emu.async_wait_for(
                lambda: any(j.status == JobStatus.RUNNING and j.attempts == 1 for j in _ours(bot)),
                timeout=120,
            )
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait, 10)
            restarted_at = time.monotonic()
            successor = _start_worker(env, delay=0.01, log=log)
            try:
                job = await bot.wait_job(sent["message_id"], chat_id=6000, timeout=LEASE_SECONDS)
                waited = time.monotonic() - restarted_at
            finally:
                successor.terminate()
                await asyncio.to_thread(successor.wait, 30)
        finally:
            if victim.poll() is None:
                victim.kill()
        assert job.status == JobStatus.DONE and job.attempts == 2, log.read_text()[-3000:]
        assert waited < LEASE_SECONDS / 2, f"{waited:.1f} s: the lease was waited out"
        assert [m.content for m in bot.emu.messages(6000)] == ["buongiorno a tutti"]
        assert "back in the queue at once" in log.read_text()
        foreign_row = next(j for j in read_jobs(bot.services.db) if j.id == foreign_id)
        assert foreign_row.status == JobStatus.RUNNING and foreign_row.attempts == 1


def _ours(bot) -> list:
    return [j for j in read_jobs(bot.services.db) if j.chat_id == 6000]


def test_without_file_locks_a_fresh_name_is_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno
    import fcntl

    def no_locks(handle: object, operation: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(fcntl, "flock", no_locks)
    first, second = claim_identity(tmp_path, "worker"), claim_identity(tmp_path, "worker")
    assert first.name != second.name and ":worker:" in first.name
    assert claim_identity(tmp_path, "worker", "named").name == "named"
