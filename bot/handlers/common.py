"""Helpers every handler shares: the services, chat kinds, and group addressing."""

from __future__ import annotations

from telegram import Message, MessageEntity, Update
from telegram.constants import ChatType
from telegram.ext import ContextTypes

from bot import messages
from bot.bootstrap import SERVICES_KEY, Services
from bot.job_payloads import JobPayload


def services(context: ContextTypes.DEFAULT_TYPE) -> Services:
    return context.application.bot_data[SERVICES_KEY]


def is_private(update: Update) -> bool:
    chat = update.effective_chat
    return chat is not None and chat.type == ChatType.PRIVATE


def mentions_bot(message: Message, bot_username: str) -> bool:
    target = f"@{bot_username}".lower()
    for entities, text in (
        (message.entities, message.text),
        (message.caption_entities, message.caption),
    ):
        if not text:
            continue
        for entity in entities:
            if entity.type == MessageEntity.MENTION:
                mention = (
                    message.parse_entity(entity)
                    if text is message.text
                    else message.parse_caption_entity(entity)
                )
                if mention.lower() == target:
                    return True
    return False


def replies_to_bot(message: Message, bot_id: int) -> bool:
    replied = message.reply_to_message
    return replied is not None and replied.from_user is not None and replied.from_user.id == bot_id


def addressed(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """In private chats always; in groups only when mentioned or replied to."""
    if is_private(update):
        return True
    message = update.effective_message
    if message is None:
        return False
    bot = context.bot
    return mentions_bot(message, bot.username or "") or replies_to_bot(message, bot.id)


async def answer(update: Update, text: str) -> None:
    """Reply to the message that triggered the update (quoted in groups)."""
    message = update.effective_message
    if message is not None:
        await message.reply_text(text, do_quote=not is_private(update))


async def submit_job(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    payload: JobPayload,
    *,
    target: Message,
) -> None:
    """Queue work on ``target`` for the user, unless they are flooding or over a limit."""
    svc = services(context)
    user = update.effective_user
    if user is None:
        return
    wait = svc.limiter.hit(user.id)
    if wait:
        await answer(update, messages.RATE_LIMITED.format(seconds=max(1, round(wait))))
        return
    submitted = await svc.runner.submit(
        payload,
        user_id=user.id,
        chat_id=target.chat_id,
        user_message_id=target.message_id,
        user_name=user.full_name,
    )
    if not submitted.accepted and submitted.refusal:
        await answer(update, submitted.refusal)
