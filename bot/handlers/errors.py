"""The one error handler: the user gets an apology, the admins a short report. And the
button press no other handler took (forged data, an old button): answered, harmlessly."""

from __future__ import annotations

import contextlib
import html
import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.alerts import REPORT_CHARS
from bot.handlers.common import answer_press, services

log = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    summary = f"{type(error).__name__}: {error}"[:REPORT_CHARS]
    report = f"<b>Errore</b>\n<code>{html.escape(summary)}</code>"
    if update is None:
        # Not from a handler: polling (409 Conflict from a second instance, 5xx during a
        # Telegram incident, retried by PTB forever) or a job. Once an hour per error type.
        if isinstance(error, TelegramError):
            log.warning("Telegram error outside any update: %s", summary)
        else:
            log.error("unhandled error outside any update", exc_info=error)
        await services(context).alerts.report(report, kind=type(error).__name__)
        return
    log.error("unhandled error while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        message = update.effective_message
        # In the update's forum topic, if any: naming none, it would land in "General".
        thread = message.message_thread_id if message and message.is_topic_message else None
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(
                update.effective_chat.id, messages.INTERNAL_ERROR, message_thread_id=thread
            )
    await services(context).alerts.report(report)


async def on_unknown_button(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Unanswered, a press keeps the client's spinner going; it changes nothing."""
    if update.callback_query is not None:
        await answer_press(update.callback_query, messages.BUTTON_UNKNOWN)


def register(app: Application) -> None:
    app.add_error_handler(on_error)
    # The last feature registered (bot/app.py), so every other button handler comes first.
    app.add_handler(CallbackQueryHandler(on_unknown_button))
