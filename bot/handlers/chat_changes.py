"""The bot's own place in a chat: removed, kicked or muted there, the chat's waiting jobs
end (nobody could be answered); a group upgraded to a supergroup takes its settings and
queued jobs to its new id."""

from __future__ import annotations

import asyncio

from telegram import ChatMemberRestricted, Update
from telegram.constants import ChatMemberStatus
from telegram.ext import Application, ChatMemberHandler, ContextTypes, MessageHandler, filters

from bot import chat_changes
from bot.handlers.common import services

GONE_STATUSES = frozenset({ChatMemberStatus.LEFT, ChatMemberStatus.BANNED})


async def on_my_chat_member(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    change = update.my_chat_member
    if change is None:
        return
    member = change.new_chat_member
    muted = isinstance(member, ChatMemberRestricted) and not member.can_send_messages
    if member.status not in GONE_STATUSES and not muted:
        return
    detail = "bot muted" if muted else f"bot {member.status}"
    db = services(context).db
    await asyncio.to_thread(chat_changes.end_waiting_jobs, db, change.chat.id, detail)


async def on_migrate(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    """Telegram says it twice, in the old group (``migrate_to_chat_id``) and in the new
    supergroup (``migrate_from_chat_id``): whichever comes first moves the chat."""
    message = update.effective_message
    if message is None:
        return
    if message.migrate_to_chat_id is not None:
        old, new = message.chat_id, message.migrate_to_chat_id
    elif message.migrate_from_chat_id is not None:
        old, new = message.migrate_from_chat_id, message.chat_id
    else:
        return
    await asyncio.to_thread(chat_changes.migrate_chat, services(context).db, old, new)


def register(app: Application) -> None:
    app.add_handler(ChatMemberHandler(on_my_chat_member, ChatMemberHandler.MY_CHAT_MEMBER))
    app.add_handler(MessageHandler(filters.StatusUpdate.MIGRATE, on_migrate))
