"""/start, /help, /privacy and /forget (with a confirmation button)."""

from __future__ import annotations

import asyncio
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.handlers.common import BUTTON_NUMBER, answer, answer_press, command, rate_limited, services

FORGET_YES = "forget:yes"
FORGET_NO = "forget:no"
FORGET_DATA = re.compile(rf"({FORGET_YES}|{FORGET_NO}):({BUTTON_NUMBER})")

# (command, description) as registered with setMyCommands.
USER_COMMANDS = (
    ("start", "Presentazione"),
    ("help", "Come funziona"),
    ("privacy", "Cosa conservo e per quanto"),
    ("forget", "Cancella tutti i tuoi dati"),
    ("trascrivi", "Trascrivi l'audio a cui rispondi"),
    ("impostazioni", "Formato, hashtag e altre impostazioni"),
    ("vocabolario", "Le parole che mi hai insegnato correggendo"),
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
    settings = services(context).settings
    vocabulary = messages.PRIVACY_VOCABULARY if settings.personal_vocabulary else ""
    await answer(
        update, messages.PRIVACY.format(days=settings.retention_days, vocabulary=vocabulary)
    )


def _forget_data(choice: str, user_id: int) -> str:
    """A button's callback data: the choice and the user who asked (only they may press)."""
    return f"{choice}:{user_id}"


def forget_choice(data: str | None) -> tuple[str, int] | None:
    """The choice and the asker a press carries; None for data no button of ours has."""
    match = FORGET_DATA.fullmatch(data or "")
    return (match.group(1), int(match.group(2))) if match else None


async def forget(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    keyboard = InlineKeyboardMarkup(
        [
            [
                InlineKeyboardButton(
                    messages.FORGET_YES, callback_data=_forget_data(FORGET_YES, user.id)
                ),
                InlineKeyboardButton(
                    messages.FORGET_NO, callback_data=_forget_data(FORGET_NO, user.id)
                ),
            ]
        ]
    )
    await message.reply_text(messages.FORGET_CONFIRM, reply_markup=keyboard)


async def forget_answer(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    pressed = forget_choice(query.data)
    if pressed is None:
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    choice, asker = pressed
    if asker != query.from_user.id:
        # In a group anyone sees the buttons: only the user who asked may answer them.
        await answer_press(query, messages.FORGET_NOT_YOURS, show_alert=True)
        return
    await answer_press(query)
    if choice != FORGET_YES:
        await query.edit_message_text(messages.FORGET_CANCELLED)
        return
    svc = services(context)
    counts = await asyncio.to_thread(svc.forget_user, query.from_user.id)
    await query.edit_message_text(
        messages.FORGET_DONE.format(
            transcriptions=counts.transcriptions,
            corrections=counts.corrections,
            # The user's own recordings, whether or not another user's identical upload
            # keeps the file: the count must not tell who else sent the same audio.
            audio=counts.recordings,
        )
    )


def register(app: Application) -> None:
    # User commands share the per-user rate limit with jobs and corrections.
    app.add_handler(command("start", rate_limited(start)))
    app.add_handler(command("help", rate_limited(help_command)))
    app.add_handler(command("privacy", rate_limited(privacy)))
    app.add_handler(command("forget", rate_limited(forget)))
    app.add_handler(CallbackQueryHandler(forget_answer, pattern=r"^forget:"))
