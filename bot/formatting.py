"""Everything the user reads, as HTML for Telegram: transcripts, progress and status texts."""

from __future__ import annotations

import html
from dataclasses import dataclass

TELEGRAM_MESSAGE_LIMIT = 4096
TELEGRAM_CAPTION_LIMIT = 1024  # characters of visible text, markup not counted
# Marks a link's title, the note under its transcript.
TITLE_MARK = "🎬"
# A video title or other note under a transcript is clipped to this many characters: a
# page's 5,000-character title must not push the reply past Telegram's limits.
MAX_NOTE_CHARS = 200
PREVIEW_CHARS = 400
PROGRESS_CELLS = 10
ELLIPSIS = "…"


def escape(text: str) -> str:
    return html.escape(text, quote=False)


def split_text(text: str, *, limit: int = TELEGRAM_MESSAGE_LIMIT) -> list[str]:
    """Split plain text into pieces of at most ``limit`` characters, at the nicest break.

    The limit applies to the *escaped* text (``&`` becomes ``&amp;``), so pieces are
    measured after escaping.
    """
    pieces: list[str] = []
    rest = text.strip()
    while rest:
        if len(escape(rest)) <= limit:
            pieces.append(rest)
            break
        cut = _cut_point(rest, limit)
        pieces.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return pieces


def _cut_point(text: str, limit: int) -> int:
    # Find the longest prefix whose escaped form fits, then back off to a break.
    low, high = 1, min(len(text), limit)
    while low < high:
        middle = (low + high + 1) // 2
        if len(escape(text[:middle])) <= limit:
            low = middle
        else:
            high = middle - 1
    window = text[:low]
    for separator in ("\n\n", "\n", ". ", "? ", "! ", "; ", ", ", " "):
        position = window.rfind(separator)
        if position > low // 2:
            return position + len(separator)
    return low


@dataclass(frozen=True)
class TranscriptMessages:
    """A transcript as Telegram messages, or as a file when it is too long to read inline."""

    messages: tuple[str, ...]
    as_file: bool


def transcript_messages(
    text: str,
    hashtags: tuple[str, ...] | list[str],
    *,
    limit: int = TELEGRAM_MESSAGE_LIMIT,
    file_threshold: int = 12_000,
    note: str | None = None,
) -> TranscriptMessages:
    """HTML messages for a transcript: the text, then a line of hashtags in the last one."""
    tags = clip(" ".join(hashtags), MAX_NOTE_CHARS) if hashtags else ""
    note = clip(note, MAX_NOTE_CHARS) if note else ""
    tags_line = escape(tags)
    note_line = f"<i>{escape(note)}</i>" if note else ""
    if not text.strip():
        body = "<i>Non ho riconosciuto parole in questo audio.</i>"
        return TranscriptMessages((_join(body, tags_line, note_line),), as_file=False)
    if len(text) > file_threshold:
        return TranscriptMessages((_file_caption(text, tags, note),), as_file=True)
    tail = "\n\n".join(part for part in (tags_line, note_line) if part)
    pieces = split_text(text, limit=limit)
    messages = [escape(piece) for piece in pieces]
    if tail:
        if len(messages[-1]) + 2 + len(tail) <= limit:
            messages[-1] = f"{messages[-1]}\n\n{tail}"
        else:
            messages.append(tail)
    return TranscriptMessages(tuple(messages), as_file=False)


def clip(text: str, chars: int) -> str:
    """``text`` cut to at most ``chars`` characters, on a word break where one is near."""
    text = text.strip()
    if len(text) <= chars:
        return text
    cut = text[: chars - len(ELLIPSIS)]
    head = cut.rsplit(" ", 1)[0] if " " in cut[chars // 2 :] else cut
    return head.rstrip() + ELLIPSIS


def _file_caption(text: str, tags: str, note: str) -> str:
    """The caption of a transcript sent as a file: cut on the *plain* text, then marked
    up, so the cut never falls inside a tag or an entity (``<i>`` left open, ``&am``)."""
    header = "📄 Trascrizione completa nel file."
    fixed = sum(_visible(part) + 2 for part in (header, tags, note) if part)
    budget = min(PREVIEW_CHARS, TELEGRAM_CAPTION_LIMIT - fixed)
    preview = clip(text, budget) if budget > len(ELLIPSIS) else ""
    note_line = f"<i>{escape(note)}</i>" if note else ""
    return _join(header, escape(preview), escape(tags), note_line)


def _visible(text: str) -> int:
    """Length as Telegram counts it (UTF-16 code units: an emoji may count two)."""
    return len(text.encode("utf-16-le")) // 2


def _join(*parts: str) -> str:
    return "\n\n".join(part for part in parts if part)


# Queue estimates are rough: seconds in steps of 5, then whole minutes.
ETA_SECONDS_STEP = 5
ETA_MINUTE = 60


def progress_bar(fraction: float) -> str:
    fraction = min(1.0, max(0.0, fraction))
    filled = round(fraction * PROGRESS_CELLS)
    return "▰" * filled + "▱" * (PROGRESS_CELLS - filled) + f" {fraction:.0%}"


def queued_text(position: int | None, total: int | None, eta_seconds: float | None = None) -> str:
    """ "In coda: posizione 2 di 3 · circa 20 s" (the estimate only when there is one)."""
    eta = f" · {eta_text(eta_seconds)}" if eta_seconds is not None else ""
    if position and total and total > 1:
        return f"🕐 In coda: posizione {position} di {total}{eta}."
    return f"🕐 In coda: tocca a te tra poco{eta}."


def eta_text(seconds: float) -> str:
    """A rough, rounded wait: "circa 20 s", "circa 3 min" (never "0 s")."""
    if seconds < ETA_MINUTE:
        step = ETA_SECONDS_STEP
        return f"circa {max(step, round(seconds / step) * step)} s"
    return f"circa {max(1, round(seconds / ETA_MINUTE))} min"


def downloading_text(fraction: float | None = None) -> str:
    if fraction is None:
        return "⬇️ Scarico il file…"
    return f"⬇️ Scarico il file…\n{progress_bar(fraction)}"


def transcribing_text(fraction: float | None = None) -> str:
    if fraction is None:
        return "✍️ Trascrivo…"
    return f"✍️ Trascrivo…\n{progress_bar(fraction)}"
