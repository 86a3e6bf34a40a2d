"""The bot's side of the durable job queue: every database step of a job's life, each one
short transaction, synchronous (callers use ``asyncio.to_thread``). No ``telegram`` here.

Accepted work is written before any is done, so a restart loses nothing; a job that was
stored but not yet answered keeps its transcript and is answered from it on resume.
"""

from __future__ import annotations

import enum
import os
import socket
import uuid
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from bot import messages
from bot.claim_order import InOrder
from bot.job_payloads import JobPayload, TelegramFileJob, UnknownJobError, from_record, to_record
from bot.pipeline import PipelineResult
from model.asr.hotwords import vocabulary_key
from model.asr.transcription import Segment
from storage import chat_settings, job_cancel, queue_counts, queue_eta, repeats, repository
from storage import jobs as job_queue
from storage.audio_store import AudioRef, AudioStore
from storage.models import Job, JobStatus
from storage.privacy import delete_blobs_if_unreferenced, job_exists
from storage.unit_of_work import Database, lock_until_end

MAX_ERROR_CHARS = 2000


@dataclass(frozen=True, kw_only=True)
class QueueLimits:
    max_queued_jobs: int
    max_pending_per_user: int
    # A claimed job belongs to its worker this long unless renewed (storage.jobs).
    lease_seconds: float


def worker_name() -> str:
    """Unique per process, readable in the database: host, pid and a random tag."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass(frozen=True, kw_only=True)
class ClaimedJob:
    id: int
    payload: JobPayload
    user_id: int
    chat_id: int
    user_message_id: int
    status_message_id: int | None
    transcription_id: int | None  # set when killed after storing, before replying
    attempt: int  # the job's attempts when claimed: tells this claim from a later one


class Discarded(enum.Enum):
    """Why a finished job's result was not stored."""

    FORGOTTEN = "forgotten"  # the user ran /forget meanwhile
    TAKEN_OVER = "taken_over"  # this worker lost its lease; another one answers
    CANCELLED = "cancelled"  # its sender pressed "Annulla"


@dataclass(frozen=True)
class Enqueued:
    job_id: int | None
    refusal: str | None = None  # Italian text when the job was not accepted


@dataclass(frozen=True, kw_only=True)
class StoredTranscript:
    """What a reply needs, read back from the database (for a job resumed after a crash)."""

    text: str
    hashtags: tuple[str, ...]
    segments: tuple[Segment, ...]
    source_kind: str
    audio_seconds: float = 0.0


class WorkQueue:
    def __init__(
        self, db: Database, store: AudioStore, limits: QueueLimits, *, owner: str | None = None
    ) -> None:
        self.db = db
        self.store = store
        self.limits = limits
        self.owner = owner or worker_name()

    # --- accepting -----------------------------------------------------------------------

    def enqueue(
        self,
        payload: JobPayload,
        *,
        user_id: int,
        chat_id: int,
        user_message_id: int,
        user_name: str | None = None,
    ) -> Enqueued:
        kind, data = to_record(payload)
        with self.db.unit_of_work() as uow:
            session = uow.session
            # Parallel enqueues (on PostgreSQL) could all pass the checks before any inserts.
            lock_until_end(session, queue_counts.ENQUEUE_LOCK_KEY)
            if queue_counts.count_open_jobs(session) >= self.limits.max_queued_jobs:
                return Enqueued(None, messages.QUEUE_FULL)
            open_jobs = queue_counts.count_open_jobs(session, user_id=user_id)
            if open_jobs >= self.limits.max_pending_per_user:
                return Enqueued(None, messages.TOO_MANY_PENDING.format(count=open_jobs))
            if earlier := queue_counts.job_for_message(session, chat_id, user_message_id):
                done = earlier.status == JobStatus.DONE
                return Enqueued(None, messages.ALREADY_DONE if done else messages.ALREADY_QUEUED)
            repository.touch_user(session, user_id, name=user_name)
            # Held until release(): no worker, in any process, may take it before its
            # queued message is recorded, or it would send a second one.
            job = job_queue.enqueue_job(
                session,
                kind=kind,
                payload=data,
                user_id=user_id,
                chat_id=chat_id,
                user_message_id=user_message_id,
                held_by=self.owner,
                lease_seconds=self.limits.lease_seconds,
            )
            uow.commit()
            return Enqueued(job.id)

    def position(self, job_id: int) -> tuple[int | None, int]:
        """(place in the queue or None if no longer waiting, jobs waiting in all)."""
        with self.db.unit_of_work(read_only=True) as uow:
            position = queue_counts.queue_position(uow.session, job_id)
            return position, queue_counts.count_waiting_jobs(uow.session)

    def preferences(self, chat_id: int) -> chat_settings.ChatPreferences:
        """What the chat chose with /impostazioni."""
        with self.db.unit_of_work(read_only=True) as uow:
            return chat_settings.get_preferences(uow.session, chat_id)

    def set_preferences(self, chat_id: int, **changes: Any) -> chat_settings.ChatPreferences:
        with self.db.unit_of_work() as uow:
            updated = chat_settings.update_preferences(uow.session, chat_id, **changes)
            uow.commit()
            return updated

    def eta(self, job_id: int) -> float | None:
        """Seconds until a waiting job is answered, from measured throughput; None when
        it is no longer waiting or nothing was measured yet."""
        with self.db.unit_of_work(read_only=True) as uow:
            throughput = queue_eta.recent_throughput(uow.session)
            if throughput is None:
                return None
            return queue_eta.estimate_wait(uow.session, job_id, throughput)

    def hold(self, job_id: int) -> bool:
        """Hold a waiting job while its queued message is edited (``release`` after)."""
        with self.db.unit_of_work() as uow:
            held = job_queue.hold_job(
                uow.session, job_id, owner=self.owner, lease_seconds=self.limits.lease_seconds
            )
            uow.commit()
        return held

    def release(self, job_id: int, status_message_id: int | None) -> None:
        """Queue an enqueued job, with the id of the message that shows its place."""
        with self.db.unit_of_work() as uow:
            job_queue.release_job(
                uow.session, job_id, owner=self.owner, status_message_id=status_message_id
            )
            uow.commit()

    def pending(self) -> int:
        with self.db.unit_of_work(read_only=True) as uow:
            return queue_counts.count_pending_jobs(uow.session)

    def set_status_message(self, job_id: int, message_id: int) -> None:
        with self.db.unit_of_work() as uow:
            job_queue.set_job_messages(uow.session, job_id, status_message_id=message_id)
            uow.commit()

    # --- working -------------------------------------------------------------------------

    def exists(self, job_id: int) -> bool:
        """False once the job is gone (its user ran /forget): its download can stop."""
        with self.db.unit_of_work(read_only=True) as uow:
            return job_exists(uow.session, job_id)

    def take_back_own(self) -> job_queue.RequeueResult:
        """At start: the jobs a previous process with this process's name held (it was
        killed) go back to the queue now, without waiting for their leases to expire."""
        with self.db.unit_of_work() as uow:
            result = job_queue.take_back_leases(uow.session, owner=self.owner)
            uow.commit()
        return result

    def requeue_expired(self) -> job_queue.RequeueResult:
        """Put back the jobs of workers that died (their leases expired)."""
        with self.db.unit_of_work() as uow:
            result = job_queue.requeue_expired(uow.session)
            uow.commit()
        return result

    def claim(
        self,
        *,
        limit: int = 1,
        accept: Callable[[JobPayload], bool] | None = None,
        busy_users: Collection[int] = (),
    ) -> list[ClaimedJob]:
        """Up to ``limit`` of the oldest jobs this worker may take, under its lease: none of
        ``busy_users`` (whose jobs another worker of this process runs: the database tells
        only other processes apart) and none after a job of the same user ``accept``
        refused (one user's jobs start in order). A stored job this version cannot read
        is failed here, not handed out."""
        claimed: list[ClaimedJob] = []
        with self.db.unit_of_work() as uow:
            jobs = job_queue.claim_jobs(
                uow.session,
                owner=self.owner,
                lease_seconds=self.limits.lease_seconds,
                limit=limit,
                accept=InOrder(accept),
                skip_users=busy_users,
            )
            for job in jobs:
                try:
                    claimed.append(_claimed(job))
                except UnknownJobError as exc:
                    job_queue.mark_job_failed(uow.session, job.id, error=str(exc))
            uow.commit()
        return claimed

    def renew(self, leases: Mapping[int, int | None]) -> set[int]:
        """Extend leases (job id -> attempt claimed, None when held); the ids still held."""
        with self.db.unit_of_work() as uow:
            held = job_queue.renew_leases(
                uow.session,
                owner=self.owner,
                leases=leases,
                lease_seconds=self.limits.lease_seconds,
            )
            uow.commit()
        return held

    def save_result(self, job: ClaimedJob, result: PipelineResult) -> int | Discarded:
        """Store audio and transcript and tie them to the job, in one transaction; the
        transcription's id, or why nothing was kept: the job is gone (its user ran
        /forget while it was being worked on), its sender cancelled it (it ends
        cancelled here), or another worker owns it now (this worker's lease expired)."""
        # Pinned until the row is committed: a /forget or purge of another row with the
        # same audio, deciding the blob is unused meanwhile, must not delete it.
        with self.store.put_pinned(result.audio.samples) as ref:
            saved = self._save(job, result, ref)
        if saved in (Discarded.FORGOTTEN, Discarded.CANCELLED):
            with self.db.unit_of_work() as uow:
                delete_blobs_if_unreferenced(uow.session, self.store, [ref.sha256])
                uow.commit()
        # TAKEN_OVER keeps the file: the new owner may be storing the same audio right
        # now; the orphan sweep removes it later if nobody does.
        return saved

    def _save(self, job: ClaimedJob, result: PipelineResult, ref: AudioRef) -> int | Discarded:
        transcription = result.transcription
        with self.db.unit_of_work() as uow:
            discarded = None
            if not job_exists(uow.session, job.id):
                discarded = Discarded.FORGOTTEN
            elif not job_queue.holds_lease(uow.session, job.id, self.owner, attempt=job.attempt):
                discarded = Discarded.TAKEN_OVER
            elif job_cancel.cancel_requested(uow.session, [job.id]):
                discarded = Discarded.CANCELLED
            if discarded is not None:
                if discarded is Discarded.CANCELLED:
                    job_cancel.mark_job_cancelled(
                        uow.session, job.id, owner=self.owner, attempt=job.attempt
                    )
                    uow.commit()
                return discarded
            stored_job = uow.session.get(Job, job.id)
            assert stored_job is not None
            fields = repeats.TranscriptRow(
                source_kind=result.source_kind,
                source_ref=result.source_ref,
                text=transcription.text,
                audio=ref,
                model_version=transcription.model,
                language=transcription.language,
                segments=[
                    {"start": s.start, "end": s.end, "text": s.text} for s in transcription.segments
                ],
                tags=list(result.hashtags),
                timings={"transcribe": transcription.elapsed, "audio": transcription.duration},
                # The words asked for, as repeats look them up (the engine may have
                # decoded with fewer: a long vocabulary is cut to the prompt's size).
                vocabulary_sha256=vocabulary_key(job.payload.hotwords),
            )
            row = repeats.save_transcript(
                uow.session, fields, owner=transcript_owner(uow.session, job),
                chat_id=job.chat_id, user_message_id=job.user_message_id,
            )  # fmt: skip
            # The job remembers its transcript, so a crash before the reply resends it
            # instead of transcribing again.
            stored_job.transcription_id = row.id
            if stored_job.status_message_id is not None:
                # The status message becomes the reply: a correction sent the moment it
                # shows must find its transcript; finish() then sets the delivered ones.
                repository.add_reply_messages(
                    uow.session,
                    row.id,
                    chat_id=job.chat_id,
                    message_ids=[stored_job.status_message_id],
                )
            uow.commit()
            return row.id

    def stored_transcript(self, transcription_id: int) -> StoredTranscript | None:
        with self.db.unit_of_work(read_only=True) as uow:
            row = repository.get_transcription(uow.session, transcription_id)
            if row is None:
                return None
            return StoredTranscript(
                text=row.text,
                hashtags=tuple(row.tags),
                segments=tuple(Segment(s["start"], s["end"], s["text"]) for s in row.segments),
                source_kind=row.source_kind,
                audio_seconds=row.audio_duration or 0.0,
            )

    def finish(self, job: ClaimedJob, transcription_id: int, message_ids: list[int]) -> None:
        with self.db.unit_of_work() as uow:
            if not job_queue.holds_lease(uow.session, job.id, self.owner, attempt=job.attempt):
                return  # forgotten meanwhile, or another worker owns it now
            stored_job = uow.session.get(Job, job.id)
            status = stored_job.status_message_id if stored_job is not None else None
            repository.set_reply_messages(
                uow.session, transcription_id, chat_id=job.chat_id, message_ids=message_ids,
                replacing=[status] if status is not None else [],
            )  # fmt: skip
            job_queue.set_job_messages(uow.session, job.id, reply_message_ids=message_ids)
            job_queue.mark_job_done(
                uow.session, job.id, transcription_id=transcription_id, owner=self.owner
            )
            uow.commit()

    def cancel(self, job_id: int, user_id: int) -> job_cancel.CancelOutcome:
        """The sender of ``job_id`` pressed "Annulla"."""
        with self.db.unit_of_work() as uow:
            outcome = job_cancel.request_cancel(uow.session, job_id, user_id=user_id)
            uow.commit()
        return outcome

    def cancel_requested(self, job_ids: Collection[int]) -> set[int]:
        with self.db.unit_of_work(read_only=True) as uow:
            return job_cancel.cancel_requested(uow.session, job_ids)

    def cancelled(self, job: ClaimedJob) -> None:
        """This worker stopped a job its sender cancelled."""
        with self.db.unit_of_work() as uow:
            job_cancel.mark_job_cancelled(
                uow.session, job.id, owner=self.owner, attempt=job.attempt
            )
            uow.commit()

    def fail(self, job: ClaimedJob, error: str) -> None:
        with self.db.unit_of_work() as uow:
            if not job_queue.holds_lease(uow.session, job.id, self.owner, attempt=job.attempt):
                return
            job_queue.mark_job_failed(uow.session, job.id, error=error[:MAX_ERROR_CHARS])
            uow.commit()

    def save_tags(self, transcription_id: int, hashtags: tuple[str, ...]) -> str | None:
        """Its latest label's kind ("" for none) once saved; None: gone (/forget)."""
        with self.db.unit_of_work() as uow:
            label = repository.set_tags(uow.session, transcription_id, hashtags)
            uow.commit()
            return label

    def add_reply_message(self, transcription_id: int, chat_id: int, message_id: int) -> None:
        with self.db.unit_of_work() as uow:
            if repository.get_transcription(uow.session, transcription_id) is None:
                return
            repository.add_reply_messages(
                uow.session, transcription_id, chat_id=chat_id, message_ids=[message_id]
            )
            uow.commit()


def transcript_owner(session: Session, job: ClaimedJob) -> int | None:
    """Who the transcript belongs to (and who may label it): the requester, unless a
    ``/trascrivi`` asked for someone else's note, whose author it is then (registered
    as a user here, so their /forget finds it)."""
    payload = job.payload
    if isinstance(payload, TelegramFileJob) and not payload.by_requester:
        if payload.author_id is not None and payload.author_id != job.user_id:
            repository.touch_user(session, payload.author_id)
        return payload.author_id
    return job.user_id


def _claimed(job: Job) -> ClaimedJob:
    payload: dict[str, Any] = dict(job.payload)
    assert job.user_id is not None and job.chat_id is not None
    assert job.user_message_id is not None
    return ClaimedJob(
        id=job.id,
        payload=from_record(job.kind, payload),
        user_id=job.user_id,
        chat_id=job.chat_id,
        user_message_id=job.user_message_id,
        status_message_id=job.status_message_id,
        transcription_id=job.transcription_id,
        attempt=job.attempts,
    )
