"""``/vocabolario``: the words a user's corrections taught (``bot.vocabulary``), with a
button (or ``/vocabolario cancella``) that forgets them. Private chats only: a group's
members must not read someone's words. The words are plain words by construction
(``model.asr.hotwords``) and are HTML-escaped all the same."""

from __future__ import annotations

import asyncio
import html
import re

from telegram import InlineKeyboardButton, InlineKeyboardMarkup, Update
from telegram.ext import Application, CallbackQueryHandler, ContextTypes

from bot import messages
from bot.handlers.common import (
    BUTTON_NUMBER,
    answer,
    answer_press,
    command,
    is_private,
    rate_limited,
    services,
)
from bot.vocabulary import PersonalVocabulary

COMMAND = "vocabolario"
CLEAR_WORD = "cancella"
CLEAR_ACTION = "vocab:clear"
CLEAR_DATA = re.compile(rf"{CLEAR_ACTION}:({BUTTON_NUMBER})")


def _vocabulary(context: ContextTypes.DEFAULT_TYPE) -> PersonalVocabulary | None:
    vocabulary = services(context).vocabulary
    return vocabulary if vocabulary is not None and vocabulary.enabled else None


def clear_asker(data: str | None) -> int | None:
    """Who asked for the button a press carries; None for data no button of ours has."""
    match = CLEAR_DATA.fullmatch(data or "")
    return int(match.group(1)) if match else None


def vocabulary_text(words: list[str]) -> str:
    shown = ", ".join(html.escape(word) for word in words)
    return messages.VOCABULARY_SHOW.format(count=len(words), words=shown)


async def show(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message, user = update.effective_message, update.effective_user
    if message is None or user is None:
        return
    vocabulary = _vocabulary(context)
    if vocabulary is None:
        await answer(update, messages.VOCABULARY_OFF)
        return
    if not is_private(update):
        await answer(update, messages.VOCABULARY_PRIVATE_ONLY)
        return
    args = [arg.lower() for arg in context.args or []]
    if args == [CLEAR_WORD]:
        count = await asyncio.to_thread(vocabulary.clear, user.id)
        await answer(update, messages.VOCABULARY_CLEARED.format(count=count))
        return
    if args:
        await answer(update, messages.VOCABULARY_USAGE)
        return
    words = await asyncio.to_thread(vocabulary.words, user.id)
    if not words:
        await answer(update, messages.VOCABULARY_EMPTY)
        return
    button = InlineKeyboardButton(
        messages.VOCABULARY_CLEAR_BUTTON, callback_data=f"{CLEAR_ACTION}:{user.id}"
    )
    await message.reply_text(vocabulary_text(words), reply_markup=InlineKeyboardMarkup([[button]]))


async def clear_pressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    query = update.callback_query
    if query is None:
        return
    asker = clear_asker(query.data)
    if asker is None:
        await answer_press(query, messages.BUTTON_UNKNOWN)
        return
    if asker != query.from_user.id:
        await answer_press(query, messages.VOCABULARY_NOT_YOURS, show_alert=True)
        return
    vocabulary = _vocabulary(context)
    await answer_press(query)
    if vocabulary is None:
        await query.edit_message_text(messages.VOCABULARY_OFF)
        return
    count = await asyncio.to_thread(vocabulary.clear, query.from_user.id)
    await query.edit_message_text(messages.VOCABULARY_CLEARED.format(count=count))


def register(app: Application) -> None:
    app.add_handler(command(COMMAND, rate_limited(show)))
    app.add_handler(CallbackQueryHandler(clear_pressed, pattern=rf"^{CLEAR_ACTION}:"))
