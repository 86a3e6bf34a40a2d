"""Repository functions: users, transcriptions, reply messages, corrections (training runs,
model versions and evaluations are in ``storage.training_records``). They add and flush,
and never commit: the caller's unit of work does.

Times default to now (UTC); tests pass ``now=`` to control them.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from storage.audio_store import AudioRef
from storage.errors import InvalidValueError, require
from storage.models import (
    LABEL_CONFIRMATION,
    LABEL_CORRECTION,
    PATH_CHARS,
    SOURCE_KINDS,
    USER_SYSTEM,
    USER_TELEGRAM,
    Correction,
    ReplyMessage,
    Transcription,
    TranscriptionStatus,
    User,
    utcnow,
)

# System users have ids <= 0 (Telegram user ids are positive).
IMPORT_USER_ID = -1
IMPORT_USER_NAME = "import"
# A user's corrections of one transcription that are kept: the latest (the one that
# counts) and a little history before it; older ones are deleted as new ones arrive.
CORRECTIONS_KEPT = 5


# --- users ------------------------------------------------------------------------------


def touch_user(
    session: Session,
    user_id: int,
    *,
    name: str | None = None,
    username: str | None = None,
    language: str | None = None,
    now: datetime | None = None,
) -> User:
    """Create or update a Telegram user and mark it seen now. Given fields overwrite."""
    if user_id <= 0:
        raise InvalidValueError(f"Telegram user ids are positive, got {user_id}")
    now = now or utcnow()
    user = session.get(User, user_id)
    if user is None:
        user = _insert_user(
            session,
            User(
                id=user_id,
                kind=USER_TELEGRAM,
                name=name,
                username=username,
                language=language,
                created_at=now,
                last_seen_at=now,
            ),
        )
    for field, value in (("name", name), ("username", username), ("language", language)):
        if value is not None:
            setattr(user, field, value)
    user.last_seen_at = now
    session.flush()
    return user


def _insert_user(session: Session, user: User) -> User:
    # Two bot instances can meet the same new user at once (PostgreSQL; SQLite serialises
    # writers): the loser of the race reads the winner's row.
    try:
        with session.begin_nested():
            session.add(user)
    except IntegrityError:
        return require(session.get(User, user.id, populate_existing=True), "user", user.id)
    return user


def get_user(session: Session, user_id: int) -> User | None:
    return session.get(User, user_id)


def import_user(session: Session) -> User:
    """The system user that owns corrections imported from the command line."""
    user = session.get(User, IMPORT_USER_ID)
    if user is None:
        user = _insert_user(
            session, User(id=IMPORT_USER_ID, kind=USER_SYSTEM, name=IMPORT_USER_NAME)
        )
    return user


# --- transcriptions ---------------------------------------------------------------------


def add_transcription(
    session: Session,
    *,
    source_kind: str,
    text: str = "",
    user_id: int | None = None,
    source_ref: str | None = None,
    chat_id: int | None = None,
    user_message_id: int | None = None,
    audio: AudioRef | None = None,
    model_version: str | None = None,
    language: str | None = None,
    segments: Sequence[Any] = (),
    tags: Sequence[str] = (),
    timings: dict[str, float] | None = None,
    status: str = TranscriptionStatus.DONE,
    error: str | None = None,
    now: datetime | None = None,
    vocabulary_sha256: str | None = None,
) -> Transcription:
    if source_kind not in SOURCE_KINDS:
        raise InvalidValueError(f"unknown source kind {source_kind!r}")
    now = now or utcnow()
    transcription = Transcription(
        user_id=user_id,
        source_kind=source_kind,
        # A reference for people (a path, a link): cut to its column, which PostgreSQL
        # enforces (an imported file's path may be longer).
        source_ref=None if source_ref is None else source_ref[:PATH_CHARS],
        chat_id=chat_id,
        user_message_id=user_message_id,
        audio_sha256=audio.sha256 if audio else None,
        audio_duration=audio.duration if audio else None,
        model_version=model_version,
        language=language,
        text=text,
        segments=list(segments),
        tags=list(tags),
        timings=dict(timings or {}),
        status=status,
        error=error,
        created_at=now,
        updated_at=now,
        vocabulary_sha256=vocabulary_sha256,
    )
    session.add(transcription)
    session.flush()
    return transcription


def get_transcription(session: Session, transcription_id: int) -> Transcription | None:
    return session.get(Transcription, transcription_id)


def add_reply_messages(
    session: Session, transcription_id: int, *, chat_id: int, message_ids: Iterable[int]
) -> None:
    """Remember the bot messages that carry a transcription (replies to them correct it)."""
    require(session.get(Transcription, transcription_id), "transcription", transcription_id)
    for message_id in message_ids:
        session.add(
            ReplyMessage(transcription_id=transcription_id, chat_id=chat_id, message_id=message_id)
        )
    session.flush()


def set_reply_messages(
    session: Session,
    transcription_id: int,
    *,
    chat_id: int,
    message_ids: Iterable[int],
    replacing: Iterable[int] = (),
) -> None:
    """Record ``message_ids`` as the transcription's messages in ``chat_id`` (once each,
    however often a delivery is recorded), in place of the provisional ``replacing`` (a
    status message, maybe deleted since). Other messages of the transcription stay: an
    earlier request answered with the same row still corrects it."""
    delivered = dict.fromkeys(message_ids)
    session.execute(
        delete(ReplyMessage).where(
            ReplyMessage.transcription_id == transcription_id,
            ReplyMessage.chat_id == chat_id,
            ReplyMessage.message_id.in_([*replacing, *delivered]),
        )
    )
    add_reply_messages(session, transcription_id, chat_id=chat_id, message_ids=delivered)


def find_transcription_by_reply(
    session: Session, *, chat_id: int, message_id: int
) -> Transcription | None:
    """The transcription whose bot message ``message_id`` in ``chat_id`` a user replied to."""
    return session.scalar(
        select(Transcription)
        .join(ReplyMessage, ReplyMessage.transcription_id == Transcription.id)
        .where(ReplyMessage.chat_id == chat_id, ReplyMessage.message_id == message_id)
    )


# --- corrections ------------------------------------------------------------------------


def add_correction(
    session: Session,
    *,
    transcription_id: int,
    user_id: int,
    text: str,
    now: datetime | None = None,
    kind: str = LABEL_CORRECTION,
) -> Correction:
    """Record a corrected text (``kind``: or the transcript confirmed as right). The latest
    counts; of this user's earlier corrections of the transcription, only the newest
    ``CORRECTIONS_KEPT`` stay (history), the older ones are deleted here."""
    text = text.strip()
    if not text:
        raise InvalidValueError("a correction needs some text")
    require(session.get(Transcription, transcription_id), "transcription", transcription_id)
    correction = Correction(
        transcription_id=transcription_id,
        user_id=user_id,
        text=text,
        created_at=now or utcnow(),
        kind=kind,
    )
    session.add(correction)
    session.flush()
    if kind == LABEL_CORRECTION:
        _prune_corrections(session, transcription_id=transcription_id, user_id=user_id)
    return correction


def _prune_corrections(session: Session, *, transcription_id: int, user_id: int) -> None:
    """Keep the user's newest ``CORRECTIONS_KEPT`` corrections of a transcription: the
    latest is the label, and a user alternating two long texts must not grow the database
    without bound. A confirmation (at most one, before any correction) is not touched."""
    older = (
        select(Correction.id)
        .where(
            Correction.transcription_id == transcription_id,
            Correction.user_id == user_id,
            Correction.kind == LABEL_CORRECTION,
        )
        .order_by(Correction.id.desc())
        .offset(CORRECTIONS_KEPT)
    )
    old_ids = list(session.scalars(older))
    if old_ids:
        session.execute(
            delete(Correction)
            .where(Correction.id.in_(old_ids))
            .execution_options(synchronize_session="fetch")
        )


def set_tags(session: Session, transcription_id: int, tags: Sequence[str]) -> str | None:
    """Store a transcript's hashtags; the kind of its latest label ("" when it has none),
    or None when the transcript is gone (nothing stored)."""
    row = session.get(Transcription, transcription_id)
    if row is None:
        return None
    row.tags = list(tags)
    latest = latest_correction(session, transcription_id)
    return latest.kind if latest is not None else ""


def latest_correction(session: Session, transcription_id: int) -> Correction | None:
    return session.scalar(
        select(Correction)
        .where(Correction.transcription_id == transcription_id)
        .order_by(Correction.id.desc())
        .limit(1)
    )


def list_corrections(session: Session, transcription_id: int) -> list[Correction]:
    """Every correction of a transcription, oldest first."""
    return list(
        session.scalars(
            select(Correction)
            .where(Correction.transcription_id == transcription_id)
            .order_by(Correction.id)
        )
    )


@dataclass(frozen=True)
class StorageCounts:
    """Totals for the admin ``/stats`` command."""

    users: int
    transcriptions: int
    corrections: int  # transcripts corrected (each counted once)
    audio_seconds: float
    confirmations: int = 0  # transcripts confirmed as right (the "✅ Giusto" button)


def storage_counts(session: Session) -> StorageCounts:
    return StorageCounts(
        users=session.scalar(
            select(func.count()).select_from(User).where(User.kind == USER_TELEGRAM)
        )
        or 0,
        transcriptions=session.scalar(select(func.count()).select_from(Transcription)) or 0,
        corrections=_count_labels(session, LABEL_CORRECTION),
        audio_seconds=float(session.scalar(select(func.sum(Transcription.audio_duration))) or 0.0),
        confirmations=_count_labels(session, LABEL_CONFIRMATION),
    )


def _count_labels(session: Session, kind: str) -> int:
    """Transcripts labelled with ``kind`` (per user): a transcript corrected several times
    counts once, however much of its history is kept."""
    labelled = (
        select(Correction.transcription_id, Correction.user_id)
        .where(Correction.kind == kind)
        .distinct()
        .subquery()
    )
    return session.scalar(select(func.count()).select_from(labelled)) or 0
