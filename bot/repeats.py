"""Instant repeats: audio the serving model already transcribed is answered from storage.

A repeat is found by the Telegram file's ``file_unique_id`` (the same file forwarded: no
download at all) or by the audio's content hash (the same audio uploaded again: decoded,
not transcribed). Each sender gets a transcription row of their own on the shared audio, so
labels and corrections stay per user (``storage.labels``). A transcript decoded with a
user's vocabulary is reused only for a job carrying the very same hotwords.
"""

from __future__ import annotations

from bot.pipeline import Recalled
from bot.work_queue import ClaimedJob, transcript_owner
from model.asr.transcription import Segment
from storage import job_cancel, repeats
from storage import jobs as job_queue
from storage.audio_store import AudioRef, AudioStore
from storage.models import Job
from storage.unit_of_work import Database


class Repeats:
    def __init__(self, db: Database, store: AudioStore) -> None:
        self.db = db
        self.store = store

    def reuse(
        self,
        job: ClaimedJob,
        model_version: str,
        file_unique_id: str,
        *,
        owner: str,
        vocabulary: str | None = None,
    ) -> int | None:
        """Answer a repeat of a Telegram file from storage: the transcript ``model_version``
        made of the same file with the same hotwords (``vocabulary``: their fingerprint)
        becomes this user's own row, tied to the job as if just transcribed. Its id, or
        None when there is nothing to reuse (or the job is no longer this worker's)."""
        with self.db.unit_of_work(read_only=True) as uow:
            found = repeats.find_reusable(
                uow.session,
                model_version=model_version,
                file_unique_id=file_unique_id,
                vocabulary_sha256=vocabulary,
            )
            sha = None if found is None else found.audio_sha256
        if sha is None:
            return None
        # Pinned, then checked: a /forget of the row found, deleting the audio meanwhile,
        # either sees the pin or has already removed the file (nothing to reuse then).
        with self.store.pinned(sha):
            if not self.store.exists(sha):
                return None
            return self._reuse(job, model_version, file_unique_id, owner, vocabulary, sha)

    def _reuse(
        self,
        job: ClaimedJob,
        model_version: str,
        file_unique_id: str,
        owner: str,
        vocabulary: str | None,
        sha: str,
    ) -> int | None:
        with self.db.unit_of_work() as uow:
            session = uow.session
            found = repeats.find_reusable(
                session,
                model_version=model_version,
                file_unique_id=file_unique_id,
                vocabulary_sha256=vocabulary,
            )
            if found is None or found.audio_sha256 != sha:
                return None  # forgotten meanwhile: another row's audio is not pinned
            if not job_queue.holds_lease(session, job.id, owner, attempt=job.attempt):
                return None
            if job_cancel.cancel_requested(session, [job.id]):
                return None  # the normal path notices and ends it cancelled
            fields = repeats.TranscriptRow(
                source_kind=found.source_kind,
                source_ref=found.source_ref,
                text=found.text,
                audio=AudioRef(
                    sha256=sha,
                    path=self.store.path(sha),
                    duration=found.audio_duration or 0.0,
                ),
                model_version=found.model_version,
                language=found.language,
                segments=list(found.segments),
                tags=list(found.tags),
                timings={"transcribe": 0.0, "audio": found.audio_duration or 0.0},
                vocabulary_sha256=found.vocabulary_sha256,
            )
            row = repeats.save_transcript(
                session, fields, owner=transcript_owner(session, job),
                chat_id=job.chat_id, user_message_id=job.user_message_id,
            )  # fmt: skip
            stored_job = session.get(Job, job.id)
            assert stored_job is not None
            stored_job.transcription_id = row.id
            uow.commit()
            return row.id

    def recall(
        self, audio_sha256: str, model_version: str, *, vocabulary: str | None = None
    ) -> Recalled | None:
        """The transcript ``model_version`` already made of this audio (by content hash)
        with the same hotwords (``vocabulary``: their fingerprint; None: without any)."""
        with self.db.unit_of_work(read_only=True) as uow:
            found = repeats.find_reusable(
                uow.session,
                model_version=model_version,
                audio_sha256=audio_sha256,
                vocabulary_sha256=vocabulary,
            )
            if found is None:
                return None
            return Recalled(
                text=found.text,
                language=found.language or "",
                segments=tuple(Segment(s["start"], s["end"], s["text"]) for s in found.segments),
                hashtags=tuple(found.tags),
            )
