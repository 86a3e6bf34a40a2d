"""SQLAlchemy 2.0 typed models: everything the bot and the trainer remember.

The schema is owned by the Alembic migrations in ``alembic/versions``; a test checks that
these models and the migrations never drift apart. Status and kind columns are plain
strings checked by the repositories (no database enums: they are painful to migrate).
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    DateTime,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Text,
    UniqueConstraint,
    false,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.types import TypeDecorator

# Deterministic constraint names: Alembic can only alter or drop what it can name, and
# SQLite batch migrations need names to find constraints again.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

NAME_CHARS = 200
PATH_CHARS = 1024
SPEAKER_CHARS = 128
SHA256_HEX_CHARS = 64
VOCABULARY_WORD_CHARS = 64
KIND_CHARS = 32
LEASE_OWNER_CHARS = 128
SECRET_NAME_CHARS = 64
SECRET_VALUE_CHARS = 128

# installation_secrets.name
SECRET_SPLIT_SALT = "split_salt"

# users.kind
USER_TELEGRAM = "telegram"
USER_SYSTEM = "system"

# transcriptions.source_kind
SOURCE_VOICE = "voice"
SOURCE_AUDIO = "audio"
SOURCE_VIDEO = "video"
SOURCE_VIDEO_NOTE = "video_note"
SOURCE_DOCUMENT = "document"
SOURCE_YOUTUBE = "youtube"
SOURCE_CLI = "cli"
SOURCE_IMPORT = "import"
# corrections.kind: a user's corrected text, or the transcript itself confirmed as right
# (the "✅ Giusto" button): a label not selected on the serving model's errors.
LABEL_CORRECTION = "correction"
LABEL_CONFIRMATION = "confirmation"

SOURCE_KINDS = frozenset(
    {
        SOURCE_VOICE,
        SOURCE_AUDIO,
        SOURCE_VIDEO,
        SOURCE_VIDEO_NOTE,
        SOURCE_DOCUMENT,
        SOURCE_YOUTUBE,
        SOURCE_CLI,
        SOURCE_IMPORT,
    }
)


class TranscriptionStatus(StrEnum):
    PENDING = "pending"
    DONE = "done"
    FAILED = "failed"


class JobStatus(StrEnum):
    """pending -> (held ->) running -> done | failed.

    ``HELD``: accepted by a front that has not yet shown the user their place in the queue;
    no worker takes it until the front releases it (or its lease expires: then it queues)."""

    PENDING = "pending"
    HELD = "held"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"  # its sender pressed "Annulla"


class RunStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on every backend.

    PostgreSQL keeps the zone (``timestamptz``); SQLite has no zone, so values are stored
    as naive UTC and given back their zone when read. Naive input is refused: it is
    always a bug (local time mistaken for UTC).
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: pass a timezone-aware UTC datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {  # noqa: RUF012 (SQLAlchemy reads this class attribute)
        datetime: UTCDateTime(),
        dict[str, Any]: JSON(),
        list[Any]: JSON(),
        str: String(NAME_CHARS),
    }


class User(Base):
    """A Telegram user (``id`` is the Telegram user id) or a system user (``id`` <= 0)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    kind: Mapped[str] = mapped_column(String(KIND_CHARS), default=USER_TELEGRAM)
    name: Mapped[str | None]
    username: Mapped[str | None]
    language: Mapped[str | None] = mapped_column(String(KIND_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)


class Transcription(Base):
    __tablename__ = "transcriptions"
    __table_args__ = (
        Index("ix_transcriptions_user_id_created_at", "user_id", "created_at"),
        Index("ix_transcriptions_audio_sha256", "audio_sha256"),
        Index("ix_transcriptions_source_ref", "source_ref"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    source_kind: Mapped[str] = mapped_column(String(KIND_CHARS))
    # A YouTube video id, a file name, a Telegram file_unique_id: where the audio came from.
    source_ref: Mapped[str | None] = mapped_column(String(PATH_CHARS))
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    user_message_id: Mapped[int | None] = mapped_column(BigInteger)
    # None once the audio is purged (retention) but the text is kept.
    audio_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX_CHARS))
    audio_duration: Mapped[float | None] = mapped_column(Float)
    audio_purged_at: Mapped[datetime | None]
    model_version: Mapped[str | None]
    # Who speaks in an imported sample (``samples import``'s third column); NULL otherwise.
    speaker: Mapped[str | None] = mapped_column(String(SPEAKER_CHARS))
    language: Mapped[str | None] = mapped_column(String(KIND_CHARS))
    text: Mapped[str] = mapped_column(Text, default="")
    segments: Mapped[list[Any]] = mapped_column(default=list)
    tags: Mapped[list[Any]] = mapped_column(default=list)
    # Seconds spent per stage, e.g. {"decode": 0.1, "transcribe": 2.3, "tags": 0.4}.
    timings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(KIND_CHARS), default=TranscriptionStatus.DONE)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # SHA-256 of the hotwords (a user's vocabulary) it was decoded with; NULL: none. An
    # instant repeat reuses only a transcript made with the very same words.
    vocabulary_sha256: Mapped[str | None] = mapped_column(String(SHA256_HEX_CHARS))

    reply_messages: Mapped[list[ReplyMessage]] = relationship(
        back_populates="transcription",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="ReplyMessage.message_id",
    )

    @property
    def reply_message_ids(self) -> list[int]:
        return [message.message_id for message in self.reply_messages]


class ReplyMessage(Base):
    """A bot message that carries a transcription: a user's reply to it is a correction.

    A table rather than a JSON list so the lookup by (chat, message) is an index hit on
    every backend.
    """

    __tablename__ = "reply_messages"
    __table_args__ = (UniqueConstraint("chat_id", "message_id"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcription_id: Mapped[int] = mapped_column(
        ForeignKey("transcriptions.id", ondelete="CASCADE"), index=True
    )
    chat_id: Mapped[int] = mapped_column(BigInteger)
    message_id: Mapped[int] = mapped_column(BigInteger)

    transcription: Mapped[Transcription] = relationship(back_populates="reply_messages")


class Correction(Base):
    """A user's corrected text for a transcription, or (``kind`` confirmation) the
    transcript confirmed as right. The latest one counts; a few before it are kept as
    history (``storage.repository.CORRECTIONS_KEPT``)."""

    __tablename__ = "corrections"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    transcription_id: Mapped[int] = mapped_column(
        ForeignKey("transcriptions.id", ondelete="CASCADE"), index=True
    )
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    kind: Mapped[str] = mapped_column(
        String(KIND_CHARS), default=LABEL_CORRECTION, server_default=LABEL_CORRECTION
    )


class Job(Base):
    """Accepted work, durable so the bot can resume it after a crash or restart."""

    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_status_id", "status", "id"),
        Index("ix_jobs_user_id_status", "user_id", "status"),
        Index("ix_jobs_status_lease_expires_at", "status", "lease_expires_at"),
        Index("ix_jobs_status_finished_at", "status", "finished_at"),  # the ETA's recent jobs
        Index("ix_jobs_chat_id_user_message_id", "chat_id", "user_message_id"),  # "già in coda"
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(KIND_CHARS))
    user_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE")
    )
    chat_id: Mapped[int | None] = mapped_column(BigInteger)
    user_message_id: Mapped[int | None] = mapped_column(BigInteger)
    status_message_id: Mapped[int | None] = mapped_column(BigInteger)
    reply_message_ids: Mapped[list[Any]] = mapped_column(default=list)
    # What the worker needs to redo the job, e.g. {"file_id": ..., "kind": "voice", "duration": 4}.
    payload: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(KIND_CHARS), default=JobStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    transcription_id: Mapped[int | None] = mapped_column(
        ForeignKey("transcriptions.id", ondelete="SET NULL")
    )
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The worker holding a running job, until when (renewed while it works).
    lease_owner: Mapped[str | None] = mapped_column(String(LEASE_OWNER_CHARS))
    lease_expires_at: Mapped[datetime | None]
    # Its sender pressed "Annulla" while it ran: the worker stops it (storage.job_cancel).
    cancel_requested: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())


class ChatSettings(Base):
    """What a chat chose with /impostazioni (a chat without a row has the defaults)."""

    __tablename__ = "chat_settings"

    chat_id: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    output: Mapped[str] = mapped_column(String(KIND_CHARS), default="text")
    hashtags: Mapped[bool] = mapped_column(Boolean, default=True)
    transcribe_all: Mapped[bool] = mapped_column(Boolean, default=False)
    admins_only: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class TrainingRun(Base):
    __tablename__ = "training_runs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    status: Mapped[str] = mapped_column(String(KIND_CHARS), default=RunStatus.PENDING, index=True)
    config: Mapped[dict[str, Any]] = mapped_column(default=dict)
    output_dir: Mapped[str | None] = mapped_column(String(PATH_CHARS))
    checkpoint_dir: Mapped[str | None] = mapped_column(String(PATH_CHARS))
    base_model: Mapped[str | None]
    steps_done: Mapped[int] = mapped_column(Integer, default=0)
    steps_total: Mapped[int | None] = mapped_column(Integer)
    samples_used: Mapped[int | None] = mapped_column(Integer)
    # Highest correction id in the run's data snapshot: samples above it are "new".
    max_correction_id: Mapped[int | None] = mapped_column(Integer)
    progress: Mapped[float] = mapped_column(Float, default=0.0)
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[str | None] = mapped_column(Text)
    pid: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    # The process running it, until when (renewed by its heartbeat): no PIDs.
    lease_owner: Mapped[str | None] = mapped_column(String(LEASE_OWNER_CHARS))
    lease_expires_at: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ModelVersion(Base):
    __tablename__ = "model_versions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_CHARS), unique=True)
    hf_dir: Mapped[str | None] = mapped_column(String(PATH_CHARS))
    ct2_dir: Mapped[str | None] = mapped_column(String(PATH_CHARS))
    parent_id: Mapped[int | None] = mapped_column(
        ForeignKey("model_versions.id", ondelete="SET NULL")
    )
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    promoted_at: Mapped[datetime | None]
    is_active: Mapped[bool] = mapped_column(Boolean, default=False)


class Evaluation(Base):
    __tablename__ = "evaluations"
    __table_args__ = (
        Index("ix_evaluations_model_version_id_eval_set", "model_version_id", "eval_set"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    model_version_id: Mapped[int] = mapped_column(
        ForeignKey("model_versions.id", ondelete="CASCADE")
    )
    training_run_id: Mapped[int | None] = mapped_column(
        ForeignKey("training_runs.id", ondelete="SET NULL")
    )
    eval_set: Mapped[str]
    wer: Mapped[float] = mapped_column(Float)
    cer: Mapped[float | None] = mapped_column(Float)
    count: Mapped[int] = mapped_column(Integer)
    # Anything else the evaluator measured (insertion rate, substitutions, ...).
    metrics: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class InstallationSecret(Base):
    """A random value made once per installation (by a migration) and kept with the data.

    ``split_salt`` keys the train/held-out split, so that nobody outside the installation
    can tell which side a sentence falls on (and steer the promotion gate).
    """

    __tablename__ = "installation_secrets"

    name: Mapped[str] = mapped_column(String(SECRET_NAME_CHARS), primary_key=True)
    value: Mapped[str] = mapped_column(String(SECRET_VALUE_CHARS))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class VocabularyWord(Base):
    """A word a user's correction taught (``bot.vocabulary``): it biases that user's next
    transcripts. Newest first by ``id``; cleared by /vocabolario, deleted by /forget."""

    __tablename__ = "vocabulary_words"
    __table_args__ = (UniqueConstraint("user_id", "word_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("users.id", ondelete="CASCADE"), index=True
    )
    word: Mapped[str] = mapped_column(String(VOCABULARY_WORD_CHARS))
    word_key: Mapped[str] = mapped_column(String(VOCABULARY_WORD_CHARS))  # lower case
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
