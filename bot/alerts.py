"""Admin alerts for the bot and worker processes alike: a crashed job, a promoted model that
does not load, an unhandled error.

``AdminAlerts`` is built with the other services and handed to the runner and the model
holder at construction; the Telegram ``Bot`` it sends through exists only once the
application (or the worker's bot) starts, which then ``attach``es it. Until then, and for
admins who never opened the chat, alerts only reach the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import html
import logging
from collections.abc import Sequence

from telegram import Bot
from telegram.error import TelegramError

from bot import messages
from bot.model_holder import LoadFailure

log = logging.getLogger(__name__)

# Error text included in an admin report, at most.
REPORT_CHARS = 600


async def notify_admins(bot: Bot, admin_ids: Sequence[int], text: str) -> None:
    for admin_id in admin_ids:
        with contextlib.suppress(TelegramError):  # admins who never opened the chat
            await bot.send_message(admin_id, text)


class AdminAlerts:
    def __init__(self, admin_ids: Sequence[int]) -> None:
        self.admin_ids = tuple(admin_ids)
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def attach(self, bot: Bot) -> None:
        """Send through ``bot`` from now on; call from the event loop that runs the bot."""
        self._bot = bot
        self._loop = asyncio.get_running_loop()

    async def report(self, text: str) -> None:
        """A crashed job or another fault an admin should hear about (HTML)."""
        if self._bot is None:
            log.warning("admin alert before the bot started: %s", text)
            return
        await notify_admins(self._bot, self.admin_ids, f"⚠️ {text}")

    def model_broken(self, failure: LoadFailure) -> None:
        """From a worker thread, once per version that fails to load."""
        text = messages.MODEL_BROKEN.format(
            spec=html.escape(failure.spec), error=html.escape(failure.error[:REPORT_CHARS])
        )
        if self._bot is None or self._loop is None:
            log.warning("model %s does not load: %s", failure.spec, failure.error)
            return
        asyncio.run_coroutine_threadsafe(notify_admins(self._bot, self.admin_ids, text), self._loop)
