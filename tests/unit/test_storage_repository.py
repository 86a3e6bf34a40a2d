"""Repositories and the unit of work against a real, migrated SQLite file."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from bot.corrections import CorrectionOutcome, CorrectionService
from storage import jobs, queue_counts, repository, training_records
from storage.audio_store import AudioStore
from storage.confirmations import ConfirmOutcome, confirm_transcript
from storage.contributions import list_contributions
from storage.errors import InvalidStateError, InvalidValueError, NotFoundError
from storage.models import LABEL_CONFIRMATION, LABEL_CORRECTION, JobStatus, RunStatus, User
from storage.privacy import delete_user_data
from storage.unit_of_work import Database
from tests.support.labelling import SPLIT, labels_of

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def test_unit_of_work_commits_only_when_told(database: Database) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1, name="Anna")
        # no commit: rolled back on exit
    with pytest.raises(RuntimeError), database.unit_of_work() as uow:
        repository.touch_user(uow.session, 2, name="Bruno")
        raise RuntimeError("boom")
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 3, name="Carla")
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert list(uow.session.scalars(select(User.id))) == [3]


def test_datetimes_come_back_aware_utc(database: Database) -> None:
    rome = datetime(2026, 3, 1, 11, 0, tzinfo=ZoneInfo("Europe/Rome"))
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 7, now=rome)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        user = repository.get_user(uow.session, 7)
        assert user is not None
        assert user.last_seen_at == rome
        assert user.last_seen_at.tzinfo == UTC
    with database.unit_of_work() as uow, pytest.raises(Exception, match="naive"):
        repository.touch_user(uow.session, 8, now=datetime(2026, 1, 1))


def test_touch_user_updates_given_fields(database: Database) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 5, name="Anna", language="it", now=T0)
        user = repository.touch_user(uow.session, 5, username="anna", now=T0 + timedelta(days=1))
        uow.commit()
    assert (user.name, user.username, user.language) == ("Anna", "anna", "it")
    assert user.created_at == T0
    assert user.last_seen_at == T0 + timedelta(days=1)
    with database.unit_of_work() as uow, pytest.raises(InvalidValueError):
        repository.touch_user(uow.session, 0)


def test_transcription_found_by_reply_and_corrections_keep_history(database: Database) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        transcription = repository.add_transcription(
            uow.session,
            source_kind="voice",
            text="la pizza margarita",
            user_id=1,
            chat_id=100,
            user_message_id=10,
            segments=[{"start": 0.0, "end": 1.5, "text": "la pizza margarita"}],
            tags=["#pizza"],
            timings={"transcribe": 1.2},
            model_version="packaged:whisper-base",
        )
        repository.add_reply_messages(
            uow.session, transcription.id, chat_id=100, message_ids=[11, 12]
        )
        uow.commit()
        transcription_id = transcription.id
    with database.unit_of_work() as uow:
        found = repository.find_transcription_by_reply(uow.session, chat_id=100, message_id=12)
        assert found is not None and found.id == transcription_id
        assert found.reply_message_ids == [11, 12]
        assert found.segments[0]["text"] == "la pizza margarita"
        assert (
            repository.find_transcription_by_reply(uow.session, chat_id=101, message_id=12) is None
        )
        # The delivered reply replaces the provisional one: 11 was deleted, 13 is new.
        repository.set_reply_messages(
            uow.session, transcription_id, chat_id=100, message_ids=[12, 13, 13], replacing=[11]
        )
        uow.session.refresh(found)
        assert found.reply_message_ids == [12, 13]
        assert (
            repository.find_transcription_by_reply(uow.session, chat_id=100, message_id=11) is None
        )
        repository.add_correction(
            uow.session,
            transcription_id=transcription_id,
            user_id=1,
            text=" la pizza margherita ",
            now=T0,
        )
        repository.add_correction(
            uow.session,
            transcription_id=transcription_id,
            user_id=1,
            text="La pizza margherita.",
            now=T0,
        )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        history = repository.list_corrections(uow.session, transcription_id)
        assert [c.text for c in history] == ["la pizza margherita", "La pizza margherita."]
        latest = repository.latest_correction(uow.session, transcription_id)
        assert latest is not None and latest.text == "La pizza margherita."


def test_bad_input_is_refused_with_typed_errors(database: Database) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        with pytest.raises(InvalidValueError):
            repository.add_transcription(uow.session, source_kind="fax")
        with pytest.raises(NotFoundError):
            repository.add_correction(uow.session, transcription_id=999, user_id=1, text="x")
        transcription = repository.add_transcription(uow.session, source_kind="cli")
        with pytest.raises(InvalidValueError):
            repository.add_correction(
                uow.session, transcription_id=transcription.id, user_id=1, text="   "
            )
        repository.add_reply_messages(uow.session, transcription.id, chat_id=1, message_ids=[5])
        uow.commit()
    with database.unit_of_work() as uow, pytest.raises(IntegrityError):
        # one bot message carries one transcription
        other = repository.add_transcription(uow.session, source_kind="cli")
        repository.add_reply_messages(uow.session, other.id, chat_id=1, message_ids=[5])


def test_foreign_keys_are_enforced(database: Database) -> None:
    with database.unit_of_work() as uow, pytest.raises(IntegrityError):
        repository.add_transcription(uow.session, source_kind="voice", user_id=424242)


# --- jobs -------------------------------------------------------------------------------


def test_job_queue_lifecycle(database: Database) -> None:
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        repository.touch_user(uow.session, 2)
        first = jobs.enqueue_job(
            uow.session,
            kind="transcribe",
            payload={"file_id": "AAA", "kind": "voice", "duration": 4},
            user_id=1,
            chat_id=100,
            user_message_id=7,
        )
        second = jobs.enqueue_job(uow.session, kind="transcribe", payload={}, user_id=2)
        third = jobs.enqueue_job(uow.session, kind="youtube", payload={}, user_id=1)
        uow.commit()
    with database.unit_of_work() as uow:
        s = uow.session
        assert queue_counts.count_pending_jobs(s) == 3
        assert queue_counts.count_pending_jobs(s, user_id=1) == 2
        assert [queue_counts.queue_position(s, j.id) for j in (first, second, third)] == [1, 2, 3]
        claimed = jobs.claim_next_job(s, now=T0)
        assert claimed is not None and claimed.id == first.id
        assert (claimed.status, claimed.attempts, claimed.started_at) == (JobStatus.RUNNING, 1, T0)
        assert claimed.payload["file_id"] == "AAA"
        assert queue_counts.queue_position(s, first.id) is None
        assert queue_counts.queue_position(s, third.id) == 2
        assert queue_counts.count_open_jobs(s, user_id=1) == 2
        jobs.set_job_messages(s, first.id, status_message_id=8, reply_message_ids=[9])
        jobs.set_job_messages(s, first.id, reply_message_ids=[10])
        jobs.mark_job_done(s, first.id)
        youtube = jobs.claim_next_job(s, kinds={"youtube"})
        assert youtube is not None and youtube.id == third.id
        jobs.mark_job_failed(s, third.id, error="video unavailable")
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        done = jobs.get_job(uow.session, first.id)
        assert done is not None
        assert (done.status, done.status_message_id, done.reply_message_ids) == (
            JobStatus.DONE,
            8,
            [9, 10],
        )
        failed = jobs.get_job(uow.session, third.id)
        assert failed is not None and (failed.status, failed.error) == (
            JobStatus.FAILED,
            "video unavailable",
        )
    with database.unit_of_work() as uow:
        with pytest.raises(InvalidStateError):
            jobs.mark_job_done(uow.session, first.id)
        assert jobs.claim_next_job(uow.session, kinds={"youtube"}) is None


def test_requeue_expired_fails_jobs_that_keep_killing_their_worker(database: Database) -> None:
    with database.unit_of_work() as uow:
        ids = tuple(jobs.enqueue_job(uow.session, kind="t", payload={}).id for _ in range(3))
        uow.commit()
    outcomes = []
    for _start in range(4):
        # A worker recovers expired jobs, claims everything and dies before finishing.
        with database.unit_of_work() as uow:
            outcomes.append(jobs.requeue_expired(uow.session, max_attempts=3))
            while jobs.claim_next_job(uow.session, lease_seconds=0) is not None:
                pass
            uow.commit()
    assert outcomes[0] == jobs.RequeueResult(requeued=(), failed=())
    assert outcomes[1] == outcomes[2] == jobs.RequeueResult(requeued=ids, failed=())
    assert outcomes[3] == jobs.RequeueResult(requeued=(), failed=ids)
    with database.unit_of_work(read_only=True) as uow:
        for job_id in ids:
            job = jobs.get_job(uow.session, job_id)
            assert job is not None
            assert (job.status, job.attempts, job.error) == (
                JobStatus.FAILED,
                3,
                jobs.INTERRUPTED_ERROR,
            )


def test_requeue_puts_expired_jobs_back_in_order(database: Database) -> None:
    with database.unit_of_work() as uow:
        a = jobs.enqueue_job(uow.session, kind="transcribe", payload={"n": 1})
        b = jobs.enqueue_job(uow.session, kind="transcribe", payload={"n": 2})
        jobs.claim_next_job(uow.session, now=T0)
        uow.commit()
    with database.unit_of_work() as uow:
        # A live lease is left alone; an expired one goes back to the queue.
        assert jobs.requeue_expired(uow.session, now=T0 + timedelta(seconds=30)).requeued == ()
        assert jobs.requeue_expired(uow.session, now=T0 + timedelta(hours=1)).requeued == (a.id,)
        uow.commit()
    with database.unit_of_work() as uow:
        assert jobs.get_job(uow.session, a.id).status == JobStatus.PENDING  # type: ignore[union-attr]
        assert queue_counts.queue_position(uow.session, a.id) == 1
        assert queue_counts.queue_position(uow.session, b.id) == 2
        again = jobs.claim_next_job(uow.session)
        assert again is not None and again.id == a.id and again.attempts == 2


def test_delete_finished_jobs(database: Database) -> None:
    with database.unit_of_work() as uow:
        old = jobs.enqueue_job(uow.session, kind="t", payload={}, now=T0)
        jobs.claim_next_job(uow.session)
        jobs.mark_job_done(uow.session, old.id)
        jobs.enqueue_job(uow.session, kind="t", payload={}, now=T0)  # pending: kept
        assert jobs.delete_finished_jobs(uow.session, older_than=T0 + timedelta(days=1)) == 1
        uow.commit()


# --- training runs, model versions, evaluations ------------------------------------------


def test_training_run_lifecycle(database: Database) -> None:
    with database.unit_of_work() as uow:
        s = uow.session
        assert training_records.active_training_run(s) is None
        run = training_records.create_training_run(
            s, config={"lr": 1e-5}, base_model="packaged:whisper-base", output_dir="/m/run-1"
        )
        assert training_records.active_training_run(s) == run
        training_records.start_training_run(
            s, run.id, samples_used=40, max_correction_id=17, steps_total=200, pid=1234
        )
        training_records.update_training_progress(
            s, run.id, steps_done=50, phase="training", loss=1.5
        )
        assert run.progress == pytest.approx(0.25)
        training_records.update_training_progress(s, run.id, steps_done=100, loss=0.9)
        state = training_records.run_state(run)
        assert (state.phase, state.loss, state.attempts) == ("training", 0.9, 1)
        assert training_records.restart_training_run(s, run.id).attempts == 2
        training_records.finish_training_run(
            s, run.id, status=RunStatus.DONE, phase="done", report={"wer": 0.37}
        )
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        stored = training_records.get_training_run(uow.session, run.id)
        assert stored is not None
        report = training_records.run_state(stored).report
        assert (stored.status, stored.progress, report["wer"]) == (
            RunStatus.DONE,
            1.0,
            0.37,
        )
        assert stored.finished_at is not None and stored.finished_at.tzinfo == UTC
        assert training_records.active_training_run(uow.session) is None
        assert training_records.latest_training_run(uow.session, status=RunStatus.DONE) == stored
    with database.unit_of_work() as uow:
        with pytest.raises(InvalidStateError):
            training_records.start_training_run(
                uow.session, run.id, samples_used=1, max_correction_id=1
            )
        with pytest.raises(InvalidValueError):
            training_records.finish_training_run(uow.session, run.id, status="running")


def test_stale_runs_are_failed_at_start(database: Database) -> None:
    with database.unit_of_work() as uow:
        run = training_records.create_training_run(uow.session, config={})
        training_records.start_training_run(
            uow.session, run.id, samples_used=1, max_correction_id=1
        )
        uow.commit()
    with database.unit_of_work() as uow:
        assert training_records.fail_open_training_runs(uow.session, error="trainer died") == 1
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        assert training_records.get_training_run(uow.session, run.id).status == "failed"  # type: ignore[union-attr]


def test_model_versions_and_wer_history(database: Database) -> None:
    with database.unit_of_work() as uow:
        s = uow.session
        base = training_records.add_model_version(s, name="base", ct2_dir="/m/base")
        training_records.activate_model_version(s, base.id, now=T0)
        candidate = training_records.add_model_version(
            s, name="run-1", ct2_dir="/m/run-1", hf_dir="/m/run-1/hf", parent_id=base.id
        )
        training_records.add_evaluation(
            s,
            model_version_id=base.id,
            eval_set="held-out",
            wer=0.512,
            cer=0.171,
            count=40,
            now=T0,
        )
        training_records.add_evaluation(
            s,
            model_version_id=candidate.id,
            eval_set="held-out",
            wer=0.374,
            cer=0.124,
            count=40,
            now=T0 + timedelta(hours=1),
            metrics={"insertion_rate": 0.01},
        )
        training_records.add_evaluation(
            s,
            model_version_id=candidate.id,
            eval_set="base",
            wer=0.3,
            count=10,
            now=T0 + timedelta(hours=1),
        )
        training_records.activate_model_version(s, candidate.id, now=T0 + timedelta(hours=2))
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        s = uow.session
        active = training_records.active_model_version(s)
        assert active is not None and active.name == "run-1"
        assert active.promoted_at == T0 + timedelta(hours=2)
        assert [v.is_active for v in training_records.list_model_versions(s)] == [False, True]
        history = training_records.wer_history(s, eval_set="held-out")
        assert [(p.model_version, p.wer, p.is_active) for p in history] == [
            ("base", 0.512, False),
            ("run-1", 0.374, True),
        ]
        assert len(training_records.wer_history(s)) == 3
    with database.unit_of_work() as uow:  # rollback to the parent
        training_records.activate_model_version(uow.session, base.id)
        uow.commit()
    with database.unit_of_work(read_only=True) as uow:
        active = training_records.active_model_version(uow.session)
        assert active is not None and active.name == "base"


def test_only_the_latest_corrections_of_a_transcript_are_kept(
    database: Database, store: AudioStore
) -> None:
    """A user alternating two corrections of one transcript adds no row beyond the last
    ``CORRECTIONS_KEPT``; the latest is still the label, /stats and /contributors count
    the transcript once, the confirmation before the corrections stays, /forget takes all."""
    ref = store.put(np.random.default_rng(1).uniform(-0.5, 0.5, 16_000).astype(np.float32))
    with database.unit_of_work() as uow:
        repository.touch_user(uow.session, 1)
        row = repository.add_transcription(
            uow.session, source_kind="voice", text="il treno parte", user_id=1, chat_id=1,
            audio=ref,
        )  # fmt: skip
        repository.add_reply_messages(uow.session, row.id, chat_id=1, message_ids=[7])
        assert confirm_transcript(
            uow.session, transcription_id=row.id, chat_id=1, user_id=1, max_seconds=30.0
        ) is ConfirmOutcome.CONFIRMED  # fmt: skip
        uow.commit()
        transcription_id = row.id
    service = CorrectionService(database, max_chars=1000, training_max_seconds=30.0)
    texts = [f"Il treno parte alle {hour}." for hour in ("otto", "nove") * 6]
    for text in texts:
        outcome = service.record(chat_id=1, replied_message_id=7, user_id=1, text=text, group=False)
        assert outcome is CorrectionOutcome.SAVED
    with database.unit_of_work(read_only=True) as uow:
        kept = repository.list_corrections(uow.session, transcription_id)
        assert [(c.kind, c.text) for c in kept] == [
            (LABEL_CONFIRMATION, "il treno parte"),
            *((LABEL_CORRECTION, text) for text in texts[-repository.CORRECTIONS_KEPT :]),
        ]
        counts = repository.storage_counts(uow.session)
        assert (counts.corrections, counts.confirmations) == (1, 1)
        (contribution,) = list_contributions(uow.session, policy=SPLIT)
        assert contribution.corrections == 1
    assert labels_of(database) == [(1, texts[-1])]
    with database.unit_of_work() as uow:
        deleted = delete_user_data(uow.session, store, 1)
        uow.commit()
    assert deleted.corrections == 1 + repository.CORRECTIONS_KEPT
