"""Replies to the bot's transcript messages are corrections: new training data."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot import messages
from bot.corrections import CorrectionOutcome, without_mention
from bot.handlers import links
from bot.handlers.common import (
    answer,
    counted_sender,
    is_private,
    mentions_bot,
    replies_to_bot,
    services,
    text_with_links,
)
from model.media.links import find_links

REPLIES = {
    CorrectionOutcome.SAVED: messages.CORRECTION_SAVED,
    CorrectionOutcome.NOT_A_TRANSCRIPT: messages.CORRECTION_NOT_TRANSCRIPT,
    CorrectionOutcome.NOT_OWNER: messages.CORRECTION_NOT_OWNER,
    CorrectionOutcome.EMPTY: messages.CORRECTION_EMPTY,
    CorrectionOutcome.UNCHANGED: messages.CORRECTION_UNCHANGED,
    CorrectionOutcome.CONTROL_TOKEN: messages.CORRECTION_CONTROL_TOKEN,
}


async def on_reply(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or update.effective_user is None or message.reply_to_message is None:
        return
    svc = services(context)
    to_bot = replies_to_bot(message, context.bot.id)
    found, refused = find_links(
        text_with_links(message), extra_hosts=frozenset(svc.settings.allowed_url_hosts)
    )
    has_link = bool(found or refused)  # a refused link gets its refusal, never stored
    if update.edited_message is not None and (has_link or not to_bot):
        return  # an edit is no new request; only an edited correction counts again
    if has_link or (not to_bot and not is_private(update)):
        # A link sent as a reply, or people talking to each other in a group.
        await links.on_text(update, context)
        return
    if not to_bot:
        await answer(update, messages.CORRECTION_NOT_TRANSCRIPT)
        return
    # Only a person's own words label their audio; corrections count like any request.
    user = await counted_sender(update, context)
    if user is None:
        return
    outcome = await _record(svc, update, context, user.id, message.reply_to_message.message_id)
    if outcome is CorrectionOutcome.CONVERSATION:
        return  # people answering the speaker in a group: not for the bot
    if outcome is CorrectionOutcome.TOO_LONG:
        text = messages.CORRECTION_TOO_LONG.format(max_chars=svc.settings.max_correction_chars)
    elif outcome is CorrectionOutcome.SAVED_NOT_FOR_TRAINING:
        text = messages.CORRECTION_SAVED_LONG.format(
            seconds=round(svc.corrections.training_max_seconds)
        )
    else:
        text = REPLIES[outcome]
    await message.reply_text(text, do_quote=True)


async def _record(
    svc, update: Update, context: ContextTypes.DEFAULT_TYPE, user_id: int, replied_id: int
) -> CorrectionOutcome:
    import asyncio

    assert update.effective_chat is not None and update.effective_message is not None
    message, username = update.effective_message, context.bot.username or ""
    group = not is_private(update)
    return await asyncio.to_thread(
        svc.corrections.record,
        chat_id=update.effective_chat.id,
        replied_message_id=replied_id,
        user_id=user_id,
        text=without_mention(message.text or "", username) if group else message.text or "",
        group=group,
        mentioned=group and mentions_bot(message, username),
    )


def register(app: Application) -> None:
    app.add_handler(MessageHandler(filters.TEXT & filters.REPLY & ~filters.COMMAND, on_reply))
