"""/start, /help, /privacy and /forget (with a confirmation button)."""

from __future__ import annotations

import asyncio

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, CommandHandler, ContextTypes

from bot import messages
from bot.handlers.common import answer, services

FORGET_YES = "forget:yes"
FORGET_NO = "forget:no"

# (command, description) as registered with setMyCommands.
USER_COMMANDS = (
    ("start", "Presentazione"),
    ("help", "Come funziona"),
    ("privacy", "Cosa conservo e per quanto"),
    ("forget", "Cancella tutti i tuoi dati"),
    ("trascrivi", "Trascrivi l'audio a cui rispondi"),
    ("impostazioni", "Formato, hashtag e altre impostazioni"),
)


async def start(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer(update, messages.START)


async def help_command(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    settings = services(context).settings
    await answer(
        update,
        messages.HELP.format(
            max_mb=f"{settings.max_file_bytes / 2**20:.0f}",
            max_duration=messages.format_duration(settings.max_audio_seconds),
        ),
    )


async def privacy(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await answer(update, messages.PRIVACY.format(days=services(context).settings.retention_days))


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(messages.FORGET_YES, callback_data=FORGET_YES),
                InlineKeyboardButton(messages.FORGET_NO, callback_data=FORGET_NO),
            ]
        ]
    )
    message = update.effective_message
    if message is not None:
        await message.reply_text(messages.FORGET_CONFIRM, reply_markup=keyboard)


async def forget_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    await query.answer()
    if query.data != FORGET_YES:
        await query.edit_message_text(messages.FORGET_CANCELLED)
        return
    svc = services(context)
    counts = await asyncio.to_thread(svc.forget_user, query.from_user.id)
    await query.edit_message_text(
        messages.FORGET_DONE.format(
            transcriptions=counts.transcriptions,
            corrections=counts.corrections,
            audio=counts.audio_files,
        )
    )


def register(app: Application) -> None:
    app.add_handler(CommandHandler("start", start))
    app.add_handler(CommandHandler("help", help_command))
    app.add_handler(CommandHandler("privacy", privacy))
    app.add_handler(CommandHandler("forget", forget))
    app.add_handler(CallbackQueryHandler(forget_answer, pattern=r"^forget:"))
