"""The "Annulla" button under a job's status message, and the data its press carries."""

from __future__ import annotations

import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup

CANCEL_LABEL = "✖️ Annulla"
CANCEL_PREFIX = "annulla:"
# Button data is whatever a client sends (up to 64 bytes): ASCII digits only, at most 18 (an
# SQLite INTEGER holds any of them), and nothing after them (``$`` allows a newline).
CANCEL_PATTERN = re.compile(rf"^{CANCEL_PREFIX}([0-9]{{1,18}})\Z")


def cancel_markup(job_id: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        [[InlineKeyboardButton(CANCEL_LABEL, callback_data=f"{CANCEL_PREFIX}{job_id}")]]
    )


def cancelled_job_id(data: str | None) -> int | None:
    """The job a press of the button is about, or None for other data."""
    match = CANCEL_PATTERN.match(data or "")
    return int(match.group(1)) if match else None
