"""The forms a transcript can take (chosen per chat with /impostazioni): plain text, text
with timestamps, or a file (.txt, .srt or .vtt subtitles)."""

from __future__ import annotations

from collections.abc import Iterable

from model.asr.subtitles import segments_to_srt, segments_to_vtt
from model.asr.transcription import Segment
from storage.chat_settings import (
    OUTPUT_SRT,
    OUTPUT_TIMESTAMPS,
    OUTPUT_TXT,
    OUTPUT_VTT,
    ChatPreferences,
)

FILE_OUTPUTS = frozenset({OUTPUT_TXT, OUTPUT_SRT, OUTPUT_VTT})
FILE_CAPTIONS = {
    OUTPUT_TXT: "📄 Trascrizione (.txt)",
    OUTPUT_SRT: "🎞 Sottotitoli (.srt)",
    OUTPUT_VTT: "🎞 Sottotitoli (.vtt)",
}
SECONDS_PER_HOUR = 3600


def timestamped_text(segments: Iterable[Segment]) -> str:
    """One line per segment: "[01:05] testo" (hours shown only when needed)."""
    lines = [
        f"[{_clock(segment.start)}] {' '.join(segment.text.split())}"
        for segment in segments
        if segment.text.strip()
    ]
    return "\n".join(lines)


def _clock(seconds: float) -> str:
    total = max(0, int(seconds))
    hours, rest = divmod(total, SECONDS_PER_HOUR)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes:02d}:{secs:02d}"


def transcript_file(output: str, text: str, segments: tuple[Segment, ...]) -> bytes:
    """The file's content for a file output."""
    if output == OUTPUT_SRT:
        return segments_to_srt(segments).encode()
    if output == OUTPUT_VTT:
        return segments_to_vtt(segments).encode()
    return text.encode()


def has_words(output: str, text: str, segments: tuple[Segment, ...]) -> bool:
    """Whether the file for ``output`` would hold any words (Telegram refuses an empty
    file; a subtitle file without a cue says nothing)."""
    if output in (OUTPUT_SRT, OUTPUT_VTT):
        return any(segment.text.strip() for segment in segments)
    return bool(text.strip())


def shown_text(text: str, segments: tuple[Segment, ...], prefs: ChatPreferences) -> str:
    """The transcript as the chat wants to read it (with timestamps, if chosen)."""
    if prefs.output == OUTPUT_TIMESTAMPS and segments and text.strip():
        return timestamped_text(segments)
    return text
