"""The "✅ Giusto" button under a transcript: only the audio's sender may press it; the
transcript becomes a confirmed training label and the button reads "✅ Confermata"."""

from __future__ import annotations

import asyncio
import contextlib

from telegram import InlineKeyboardMarkup, Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.confirm_button import CONFIRM_PATTERN, confirm_markup, confirmed_transcription_id
from bot.handlers.common import answer_press, services
from storage.confirmations import ConfirmOutcome

ANSWERS = {
    ConfirmOutcome.CONFIRMED: messages.CONFIRM_SAVED,
    ConfirmOutcome.ALREADY_CONFIRMED: messages.CONFIRM_ALREADY,
    ConfirmOutcome.CORRECTED: messages.CONFIRM_CORRECTED,
    ConfirmOutcome.NOT_FOUND: messages.CONFIRM_GONE,
    ConfirmOutcome.NOT_USABLE: messages.CONFIRM_NOT_USABLE,
    ConfirmOutcome.NOT_OWNER: messages.CONFIRM_NOT_YOURS,
}
# Answered as an alert (a dialog), not a passing note.
ALERTS = frozenset({ConfirmOutcome.NOT_OWNER, ConfirmOutcome.CORRECTED, ConfirmOutcome.NOT_USABLE})


async def on_confirm(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    transcription_id = confirmed_transcription_id(query.data)
    if transcription_id is None:  # the pattern lets none through; answered all the same
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    chat_id = query.message.chat.id if query.message is not None else None
    outcome = await asyncio.to_thread(
        services(context).corrections.confirm,
        transcription_id=transcription_id,
        chat_id=chat_id,
        user_id=query.from_user.id,
    )
    await answer_press(query, ANSWERS[outcome], show_alert=outcome in ALERTS)
    if outcome is ConfirmOutcome.NOT_OWNER:
        return  # the button stays for its sender
    markup: InlineKeyboardMarkup | None = None  # corrected, gone, unusable: no button
    if outcome in (ConfirmOutcome.CONFIRMED, ConfirmOutcome.ALREADY_CONFIRMED):
        markup = confirm_markup(transcription_id, confirmed=True)
    # (Unchanged markup is a "not modified" error: nothing to do then.)
    with contextlib.suppress(TelegramError):
        await query.edit_message_reply_markup(reply_markup=markup)


def register(app: Application) -> None:
    app.add_handler(CallbackQueryHandler(on_confirm, pattern=CONFIRM_PATTERN))
