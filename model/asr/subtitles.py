"""SubRip (.srt) and WebVTT (.vtt) subtitles from timestamped transcript segments.

Shared by the bot (the .srt it sends for YouTube links) and the CLI (``--srt FILE``).
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Iterable

from model.asr.transcription import Segment

# Subtitle convention: lines of at most ~42 characters read comfortably on any screen.
MAX_LINE_CHARS = 42
# A cue must stay on screen long enough to be seen, even when the engine gives it no length.
MIN_CUE_SECONDS = 0.5
_MILLISECONDS = 1000


def format_timestamp(seconds: float, *, marker: str = ",") -> str:
    """``3723.5`` -> ``"01:02:03,500"`` (SubRip's ``HH:MM:SS,mmm``; WebVTT's with ``marker="."``;
    negatives clamp to 0)."""
    total_ms = max(0, round(seconds * _MILLISECONDS))
    hours, rest = divmod(total_ms, 3600 * _MILLISECONDS)
    minutes, rest = divmod(rest, 60 * _MILLISECONDS)
    secs, millis = divmod(rest, _MILLISECONDS)
    return f"{hours:02d}:{minutes:02d}:{secs:02d}{marker}{millis:03d}"


def segments_to_srt(segments: Iterable[Segment], *, max_line_chars: int = MAX_LINE_CHARS) -> str:
    """SubRip text for ``segments``: cues numbered from 1, blank segments skipped.

    Cue times never run backwards and never overlap the next cue's start, whatever the
    engine reported; text is wrapped at ``max_line_chars``. No segments -> ``""``.
    """
    return _render(segments, max_line_chars, marker=",", escape=lambda line: line)


def segments_to_vtt(segments: Iterable[Segment], *, max_line_chars: int = MAX_LINE_CHARS) -> str:
    """WebVTT text: the SubRip cues, "." before the milliseconds, and the cue text escaped
    (in WebVTT "<" opens a tag and "&" an entity: a player would hide or restyle them)."""
    return "WEBVTT\n\n" + _render(segments, max_line_chars, marker=".", escape=_vtt_escape)


def _vtt_escape(line: str) -> str:
    return line.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _render(
    segments: Iterable[Segment], max_line_chars: int, *, marker: str, escape: Callable[[str], str]
) -> str:
    cues: list[str] = []
    previous_end = 0.0
    items = [s for s in segments if s.text.strip()]
    for index, segment in enumerate(items):
        start = max(segment.start, previous_end)
        end = max(segment.end, start + MIN_CUE_SECONDS)
        if index + 1 < len(items):
            next_start = max(items[index + 1].start, start)
            if next_start > start:
                end = min(end, next_start)
        previous_end = end
        lines = textwrap.wrap(" ".join(segment.text.split()), width=max_line_chars)
        times = (
            f"{format_timestamp(start, marker=marker)} --> {format_timestamp(end, marker=marker)}"
        )
        cues.append(f"{len(cues) + 1}\n{times}\n" + "\n".join(map(escape, lines)) + "\n")
    return "\n".join(cues)
