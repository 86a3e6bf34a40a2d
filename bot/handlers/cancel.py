"""The "Annulla" button under a job's status message: only its sender may press it."""

from __future__ import annotations

import contextlib

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.cancel_button import CANCEL_PATTERN, cancelled_job_id
from bot.handlers.common import answer_press, services
from storage.job_cancel import CancelOutcome


async def on_cancel(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    job_id = cancelled_job_id(query.data)
    if job_id is None:  # the pattern lets none through; answered all the same
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    outcome = await services(context).runner.cancel(job_id, user_id=query.from_user.id)
    if outcome is CancelOutcome.NOT_YOURS:
        await answer_press(query, messages.CANCEL_NOT_YOURS, show_alert=True)
        return
    if outcome is CancelOutcome.FINISHED:
        await answer_press(query, messages.CANCEL_TOO_LATE)
        return
    await answer_press(query, messages.CANCEL_ANSWER)
    # At once, whatever process works on it (its worker shows the same when it stops).
    with contextlib.suppress(TelegramError):
        await query.edit_message_text(messages.JOB_CANCELLED)


def register(app: Application) -> None:
    app.add_handler(CallbackQueryHandler(on_cancel, pattern=CANCEL_PATTERN))
