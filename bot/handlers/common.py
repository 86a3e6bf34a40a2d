"""Helpers every handler shares: the services, chat kinds, group addressing, and who
sends a request (:func:`sender`, the one place a handler learns it)."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
from collections.abc import Awaitable, Callable, Iterator
from contextvars import ContextVar

from telegram import CallbackQuery, Chat, InputFile, Message, MessageEntity, Update, User
from telegram.constants import ChatType
from telegram.error import BadRequest
from telegram.ext import CommandHandler, ContextTypes, filters

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


def text_with_links(message: Message) -> str:
    """The message's text and the addresses behind its linked words (a forwarded channel
    post links "questo video": the URL is in a ``text_link`` entity, not in the text)."""
    text = message.text or ""
    hidden = [e.url for e in message.entities if e.type == MessageEntity.TEXT_LINK and e.url]
    return " ".join([text, *hidden])


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

# Requests come as new messages. An edit is not a new request: an edited caption was
# transcribed again, an edited /rollback rolled back again. (Corrections alone take
# edits: a fixed typo in a correction is the newer correction.)
NOT_EDITED = ~filters.UpdateType.EDITED


def command(name: str, callback: Handler) -> CommandHandler:
    """``/name``, answered for new messages only (see :data:`NOT_EDITED`)."""
    return CommandHandler(name, callback, filters=filters.UpdateType.MESSAGE)


# A number in a button's data, which any client may forge (up to 64 bytes): ASCII digits
# (``\d`` and ``str.isdigit`` take others), at most 18, so it fits an SQLite INTEGER.
BUTTON_NUMBER = "[0-9]{1,18}"

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


# What Telegram says when a press is answered too late (about 15 s: the bot was restarting
# or busy): the press still did what it asked for, only its little notice is lost.
STALE_PRESS_TEXTS = ("query is too old", "query id is invalid")


async def answer_press(
    query: CallbackQuery, text: str | None = None, *, show_alert: bool = False
) -> None:
    """Answer a button press; one answered too late is not an error (the handler goes on
    to edit the message, save the setting...)."""
    try:
        await query.answer(text, show_alert=show_alert)
    except BadRequest as exc:
        if not any(t in str(exc).lower() for t in STALE_PRESS_TEXTS):
            raise


def sent_as_chat(update: Update) -> Chat | None:
    """The chat a message was sent on behalf of: an anonymous admin's group, the channel a
    user "sends as", a channel whose post was forwarded into its discussion group. Its
    ``from`` is then a placeholder every such chat shares (GroupAnonymousBot, Channel_Bot,
    Telegram), never a person. (A button press's ``from`` always is the person; a channel's
    own posts have no ``from`` and get no answer: it would go out to every subscriber.)"""
    message = update.message or update.edited_message
    return message.sender_chat if message is not None else None


async def sender(update: Update, context: ContextTypes.DEFAULT_TYPE) -> User | None:
    """The person a request comes from: what every per-user record, limit and vocabulary
    is keyed on. None when there is none; and, after telling them why, for a message sent
    on behalf of a chat: nobody can be told apart behind its placeholder, so such messages
    never become anyone's jobs, corrections or vocabulary."""
    chat = sent_as_chat(update)
    if chat is None:
        return update.effective_user
    # Refusals count against the chat's own bucket (chat ids are negative, user ids are
    # not): a chat sending too much cannot make the bot flood the group, nor slow anyone.
    if not await over_limit(update, context, chat.id):
        await answer(update, messages.SENT_AS_CHAT)
    return None


async def over_limit(update: Update, context: ContextTypes.DEFAULT_TYPE, key: int) -> bool:
    """Count a request against ``key``'s rate limit; True when it is over, after telling
    them how long to wait (once per stretch: a notice per refused message would flood)."""
    limiter = services(context).limiter
    wait = limiter.hit(key)
    if not wait:
        return False
    if limiter.notice_due(key, wait):
        await answer(update, messages.RATE_LIMITED.format(seconds=max(1, round(wait))))
    return True


async def submit_job(
    update: Update,
    context: ContextTypes.DEFAULT_TYPE,
    payload: JobPayload,
    *,
    target: Message,
    user: User,
) -> None:
    """Queue work on ``target`` for ``user`` (from :func:`counted_sender`: the request is
    counted already), unless they are over a queue limit."""
    svc = services(context)
    # In a forum, the request's topic: answered there, whatever becomes of ``target``.
    thread = target.message_thread_id if target.is_topic_message else None
    payload = dataclasses.replace(payload, thread_id=thread)
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


async def counted_sender(update: Update, context: ContextTypes.DEFAULT_TYPE) -> User | None:
    """:func:`sender`, with the request counted against their per-user limit (the one jobs
    count against); None, after telling them how long to wait, when they are over it."""
    user = await sender(update, context)
    if user is None or await over_limit(update, context, user.id):
        return None
    return user


def rate_limited(handler: Handler, *, chat_senders: bool = False) -> Handler:
    """A command handler for people (see :func:`sender`) that counts against the user's
    rate limit. ``chat_senders``: a command that is the chat's, not a person's, also
    answers messages sent on behalf of a chat (an anonymous admin), counted against the
    chat's own bucket."""

    @functools.wraps(handler)
    async def limited(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
        chat = sent_as_chat(update) if chat_senders else None
        if chat is not None:
            if await over_limit(update, context, chat.id):
                return
        elif await counted_sender(update, context) is None:
            return
        await handler(update, context)

    return limited
