"""Which correction labels a stored audio clip: the policy against hijacked labels.

Identical audio is stored once (content addressing), so several users can send the same
clip, for example by forwarding someone else's voice note. Without a rule, whoever
corrected last would decide the text the model learns. The rule:

1. **Only self-corrections count.** A correction is training text only when its author
   is the user who sent that transcription's audio (the bot already refuses other
   people's corrections in groups; this holds even for rows written before that rule).
2. **The first sender labels.** Of all users who sent the same audio, the one whose
   transcription was stored first is its *owner*; the owner's latest correction is the
   sample's text. Another sender's correction never becomes training text: a user can
   label only audio nobody had sent before them, which is no more than they could do
   with audio they recorded themselves.
3. **Disagreement quarantines.** If another sender's latest correction differs from the
   owner's (after normalisation: case and punctuation do not count), the clip is in
   quarantine: out of training *and* evaluation until an admin removes one side's
   contributions (or the users come to agree). This catches the attacker who forwards a
   voice note before its author does: the author's later correction disagrees, and
   neither label is used.

Nothing here tells a user whether someone else sent the same audio: the bot answers a
correction the same way in every case, so the policy leaks nobody's messages.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from storage.models import LABEL_CONFIRMATION, SOURCE_IMPORT, Correction, Transcription
from storage.split_policy import SentenceKey

# Whisper's special tokens are all spelt ``<|...|>`` (``<|endoftext|>``, ``<|en|>``,
# ``<|translate|>``, ``<|5.00|>``). A label holding one could teach the model a trigger
# (stop transcribing, switch language), so corrections and imports refuse them; training
# also tokenises labels with special tokens split (``training.data.LabelEncoder``).
CONTROL_TOKEN = re.compile(r"<\|.*?\|>", re.DOTALL)


def has_control_token(text: str) -> bool:
    """Whether ``text`` holds something spelt like a Whisper special token."""
    return CONTROL_TOKEN.search(text) is not None


@dataclass(frozen=True)
class Label:
    """The owner's latest correction (or confirmation) of one audio clip: a training
    sample's text."""

    audio_sha256: str
    text: str
    duration: float
    transcription_id: int
    correction_id: int
    user_id: int
    corrected_at: datetime
    # Who the gate counts as the speaker: "user:<id>", or "speaker:<name>" for an import
    # that named one (``samples import``'s third column).
    speaker: str = ""
    # True when the clip exists because a model's transcript was wrong (a user's
    # correction); an import was selected by nobody.
    selected: bool = False
    # True when the label is the transcript its sender confirmed as right (the "✅ Giusto"
    # button): the other side of what users were served, not selected on errors.
    confirmed: bool = False


@dataclass(frozen=True)
class Conflict:
    """A clip whose senders disagree on its text: in quarantine."""

    audio_sha256: str
    duration: float
    owner_id: int
    # The owner first, then every other sender whose latest correction disagrees.
    user_ids: tuple[int, ...]
    texts: tuple[str, ...]
    # The newest correction involved: a quarantine is "new" like a sample is.
    correction_id: int


@dataclass(frozen=True)
class Labels:
    labelled: tuple[Label, ...]  # oldest correction first
    quarantined: tuple[Conflict, ...]  # oldest clip first


def resolve_labels(session: Session, *, sentence_key: SentenceKey) -> Labels:
    """Apply the policy (module docstring) to every corrected clip still stored."""
    owners = _first_senders(session)
    labelled: list[Label] = []
    quarantined: list[Conflict] = []
    for sha, by_user in _latest_self_corrections(session).items():
        owner = owners.get(sha)
        label = by_user.get(owner) if owner is not None else None
        if label is None:
            continue  # rule 2: only the first sender's correction labels the clip
        wanted = sentence_key(label.text)
        rivals = [
            other
            for user_id, other in by_user.items()
            if user_id != owner and sentence_key(other.text) != wanted
        ]
        if not rivals:
            labelled.append(label)
            continue
        quarantined.append(
            Conflict(
                audio_sha256=sha,
                duration=label.duration,
                owner_id=label.user_id,
                user_ids=(label.user_id, *(other.user_id for other in rivals)),
                texts=(label.text, *(other.text for other in rivals)),
                correction_id=max(c.correction_id for c in (label, *rivals)),
            )
        )
    labelled.sort(key=lambda label: label.correction_id)
    quarantined.sort(key=lambda conflict: conflict.correction_id)
    return Labels(labelled=tuple(labelled), quarantined=tuple(quarantined))


def _latest_self_corrections(session: Session) -> dict[str, dict[int, Label]]:
    """audio -> user -> that user's latest correction of their own transcription (rule 1)."""
    rows = session.execute(
        select(
            Correction.id,
            Correction.text,
            Correction.user_id,
            Correction.created_at,
            Transcription.id,
            Transcription.audio_sha256,
            Transcription.audio_duration,
            Transcription.source_kind,
            Transcription.speaker,
            Correction.kind,
        )
        .join(Transcription, Transcription.id == Correction.transcription_id)
        .where(
            Transcription.audio_sha256.is_not(None),
            Correction.user_id == Transcription.user_id,  # rule 1
        )
        .order_by(Correction.id)
    )
    latest: dict[str, dict[int, Label]] = {}
    for row in rows:  # oldest first: a later correction replaces the earlier one
        correction_id, text, user_id, created_at, transcription_id, sha, duration = row[:7]
        source_kind, speaker, label_kind = row[7:]
        imported = source_kind == SOURCE_IMPORT
        confirmed = label_kind == LABEL_CONFIRMATION
        latest.setdefault(sha, {})[user_id] = Label(
            audio_sha256=sha,
            text=text,
            duration=duration or 0.0,
            transcription_id=transcription_id,
            correction_id=correction_id,
            user_id=user_id,
            corrected_at=created_at,
            speaker=f"speaker:{speaker}" if imported and speaker else f"user:{user_id}",
            selected=not imported and not confirmed,
            confirmed=confirmed,
        )
    return latest


def _first_senders(session: Session) -> dict[str, int]:
    """audio hash -> the user whose transcription of it was stored first.

    Stored first, by row id: ids grow with every insert on every backend, whereas
    ``created_at`` is whatever the writer passed. Transcriptions without a user (the
    ``transcribe`` command line) send nothing on anyone's behalf and own nothing.
    """
    corrected = select(Transcription.audio_sha256).join(
        Correction, Correction.transcription_id == Transcription.id
    )
    first = (
        select(func.min(Transcription.id).label("id"))
        .where(
            Transcription.audio_sha256.in_(corrected),
            Transcription.user_id.is_not(None),
        )
        .group_by(Transcription.audio_sha256)
        .subquery()
    )
    rows = session.execute(
        select(Transcription.audio_sha256, Transcription.user_id).join(
            first, first.c.id == Transcription.id
        )
    )
    return {sha: user_id for sha, user_id in rows}
