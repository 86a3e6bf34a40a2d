"""The one error handler: the user gets an apology, the admins a short report."""

from __future__ import annotations

import contextlib
import html
import logging

from telegram import Update
from telegram.error import TelegramError
from telegram.ext import Application, ContextTypes

from bot import messages
from bot.handlers.common import services

log = logging.getLogger(__name__)
REPORT_CHARS = 600


async def notify_admins(context_bot, admin_ids: list[int], text: str) -> None:
    for admin_id in admin_ids:
        with contextlib.suppress(TelegramError):  # admins who never opened the chat
            await context_bot.send_message(admin_id, text)


async def on_error(update: object, context: ContextTypes.DEFAULT_TYPE) -> None:
    error = context.error
    log.error("unhandled error while handling an update", exc_info=error)
    if isinstance(update, Update) and update.effective_chat is not None:
        with contextlib.suppress(TelegramError):
            await context.bot.send_message(update.effective_chat.id, messages.INTERNAL_ERROR)
    summary = f"{type(error).__name__}: {error}"[:REPORT_CHARS]
    await notify_admins(
        context.bot,
        services(context).settings.admin_ids,
        f"⚠️ <b>Errore</b>\n<code>{html.escape(summary)}</code>",
    )


def register(app: Application) -> None:
    app.add_error_handler(on_error)
