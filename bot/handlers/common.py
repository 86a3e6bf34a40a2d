"""Helpers every handler shares: the services, chat kinds, and group addressing."""

from __future__ import annotations

import asyncio
import contextlib
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

from telegram import InputFile, Message, MessageEntity, Update
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


Handler = Callable[[Update, ContextTypes.DEFAULT_TYPE], Awaitable[None]]

# Set while an admin command typed in a group runs: its answers go to that user's private
# chat instead (a group's members must not see ids, names, statistics).
_ANSWER_PRIVATELY_TO: ContextVar[int | None] = ContextVar("answer_privately_to", default=None)


@contextlib.contextmanager
def answering_privately(user_id: int) -> Iterator[None]:
    """Within the block, :func:`answer` and :func:`answer_photo` write to ``user_id``."""
    token = _ANSWER_PRIVATELY_TO.set(user_id)
    try:
        yield
    finally:
        _ANSWER_PRIVATELY_TO.reset(token)


async def answer(update: Update, text: str) -> None:
    """Reply to the message that triggered the update (quoted in groups)."""
    message = update.effective_message
    if message is None:
        return
    private_to = _ANSWER_PRIVATELY_TO.get()
    if private_to is not None and not is_private(update):
        await message.get_bot().send_message(private_to, text)
        return
    await message.reply_text(text, do_quote=not is_private(update))


async def answer_photo(update: Update, photo: InputFile, caption: str) -> None:
    """Like :func:`answer`, with a picture."""
    message = update.effective_message
    if message is None:
        return
    private_to = _ANSWER_PRIVATELY_TO.get()
    if private_to is not None and not is_private(update):
        await message.get_bot().send_photo(private_to, photo, caption=caption)
        return
    await message.reply_photo(photo, caption=caption)


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
    if svc.vocabulary is not None:  # this sender's words, and only theirs (bot.vocabulary)
        payload = await asyncio.to_thread(svc.vocabulary.personalise, payload, user.id)
    submitted = await svc.runner.submit(
        payload,
        user_id=user.id,
        chat_id=target.chat_id,
        user_message_id=target.message_id,
        user_name=user.full_name,
    )
    if not submitted.accepted and submitted.refusal:
        await answer(update, submitted.refusal)


async def over_rate_limit(update: Update, context: ContextTypes.DEFAULT_TYPE) -> bool:
    """Count one request against the user's per-user limit (the one jobs count against);
    True, after telling them how long to wait, when they are over it."""
    user = update.effective_user
    if user is None:
        return False
    wait = services(context).limiter.hit(user.id)
    if not wait:
        return False
    await answer(update, messages.RATE_LIMITED.format(seconds=max(1, round(wait))))
    return True


def rate_limited(handler: Handler) -> Handler:
    """A command handler that counts against the user's rate limit."""

    @functools.wraps(handler)
    async def limited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        if await over_rate_limit(update, context):
            return
        await handler(update, context)

    return limited
