"""The one error handler: the user gets an apology, the admins a short report."""

from __future__ import annotations

import contextlib
import html
import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bot import messages
from bot.alerts import REPORT_CHARS
from bot.handlers.common import services

log = logging.getLogger(__name__)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    log.error("unhandled error while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, messages.INTERNAL_ERROR)
    summary = f"{type(error).__name__}: {error}"[:REPORT_CHARS]
    await services(context).alerts.report(f"<b>Errore</b>\n<code>{html.escape(summary)}</code>")


def register(app: Application) -> None:
    app.add_error_handler(on_error)
