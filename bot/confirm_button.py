"""The "✅ Giusto" button under a transcript, and the data its press carries: the audio's
sender confirms the transcript as right (``storage.confirmations``)."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

CONFIRM_LABEL = "✅ Giusto"
CONFIRMED_LABEL = "✅ Confermata"
CONFIRM_PREFIX = "giusto:"
# As bot.cancel_button: a forged number must not reach SQLite (at most 18 ASCII digits).
CONFIRM_PATTERN = re.compile(rf"^{CONFIRM_PREFIX}([0-9]{{1,18}})\Z")


def confirm_markup(transcription_id: int, *, confirmed: bool = False) -> InlineKeyboardMarkup:
    """The button; once pressed it reads "Confermata" (pressing it again stores nothing)."""
    label = CONFIRMED_LABEL if confirmed else CONFIRM_LABEL
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(label, callback_data=f"{CONFIRM_PREFIX}{transcription_id}")]]
    )


def confirmed_transcription_id(data: str | None) -> int | None:
    """The transcription a press of the button is about, or None for other data."""
    match = CONFIRM_PATTERN.match(data or "")
    return int(match.group(1)) if match else None
