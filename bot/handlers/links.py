"""Plain text: YouTube links become jobs; anything else gets a hint (in private chats)."""

from __future__ import annotations

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters

from bot import messages
from bot.handlers.common import (
    NOT_EDITED,
    addressed,
    answer,
    counted_sender,
    is_private,
    services,
    submit_job,
    text_with_links,
)
from bot.job_payloads import LinkJob
from model.media.links import find_links


async def on_text(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    message = update.effective_message
    if message is None or update.effective_user is None or not message.text:
        return
    if not addressed(update, context):
        return
    user = await counted_sender(update, context)
    if user is None:
        return
    svc = services(context)
    extra = frozenset(svc.settings.allowed_url_hosts)
    links, errors = find_links(text_with_links(message), extra_hosts=extra)
    if not links:
        if errors:
            await answer(update, messages.link_error(errors[0].reason))
        elif is_private(update):
            await answer(update, messages.TEXT_HINT)
        return
    link = links[0]  # one video per message keeps the queue fair
    await submit_job(update, context, LinkJob(link.url, link.video_id), target=message, user=user)


def register(app: Application) -> None:
    app.add_handler(MessageHandler(filters.TEXT & ~filters.COMMAND & NOT_EDITED, on_text))
