"""Per-chat preferences chosen with /impostazioni: how transcripts come back, hashtags,
and in groups whether every voice note is transcribed and who may change all this."""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from sqlalchemy.orm import Session

from storage.errors import InvalidValueError
from storage.models import ChatSettings

OUTPUT_TEXT = "text"  # messages (the default)
OUTPUT_TXT = "txt"  # a .txt file
OUTPUT_SRT = "srt"  # SubRip subtitles
OUTPUT_VTT = "vtt"  # WebVTT subtitles
OUTPUT_TIMESTAMPS = "timestamps"  # messages, one timed line per segment
OUTPUTS = (OUTPUT_TEXT, OUTPUT_TXT, OUTPUT_SRT, OUTPUT_VTT, OUTPUT_TIMESTAMPS)
# Outputs that need segment timings (the decoding path that gives them).
TIMED_OUTPUTS = frozenset({OUTPUT_SRT, OUTPUT_VTT, OUTPUT_TIMESTAMPS})


@dataclass(frozen=True, kw_only=True)
class ChatPreferences:
    output: str = OUTPUT_TEXT
    hashtags: bool = True
    transcribe_all: bool = False  # groups: every voice note, not only when addressed
    admins_only: bool = False  # groups: only administrators change these settings

    @property
    def needs_timings(self) -> bool:
        return self.output in TIMED_OUTPUTS


DEFAULT_PREFERENCES = ChatPreferences()


def get_preferences(session: Session, chat_id: int) -> ChatPreferences:
    row = session.get(ChatSettings, chat_id)
    if row is None:
        return DEFAULT_PREFERENCES
    output = row.output if row.output in OUTPUTS else OUTPUT_TEXT
    return ChatPreferences(
        output=output,
        hashtags=row.hashtags,
        transcribe_all=row.transcribe_all,
        admins_only=row.admins_only,
    )


def update_preferences(session: Session, chat_id: int, **changes: Any) -> ChatPreferences:
    """Apply ``changes`` (ChatPreferences fields) to the chat's settings; the new ones."""
    known = {field.name for field in fields(ChatPreferences)}
    if unknown := set(changes) - known:
        raise InvalidValueError(f"unknown chat settings {sorted(unknown)}")
    if "output" in changes and changes["output"] not in OUTPUTS:
        raise InvalidValueError(f"unknown output {changes['output']!r}")
    updated = replace(get_preferences(session, chat_id), **changes)
    row = session.get(ChatSettings, chat_id)
    if row is None:
        row = ChatSettings(chat_id=chat_id)
        session.add(row)
    row.output = updated.output
    row.hashtags = updated.hashtags
    row.transcribe_all = updated.transcribe_all
    row.admins_only = updated.admins_only
    session.flush()
    return updated
