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
import time
from collections.abc import Callable, Sequence

from telegram import Bot
from telegram.error import TelegramError

from bot import messages
from bot.model_holder import LoadFailure
from bot.ops.throttled_alert import ONE_HOUR_SECONDS, KeyedThrottle

log = logging.getLogger(__name__)

# Error text included in an admin report, at most.
REPORT_CHARS = 600
# The same report is not sent again within this long (a crash that repeats per message).
REPEAT_SECONDS = 600.0
# A recurring condition (``kind``: a polling error by type) is reported once per this long.
RECURRING_SECONDS = ONE_HOUR_SECONDS


async def notify_admins(bot: Bot, admin_ids: Sequence[int], text: str) -> None:
    for admin_id in admin_ids:
        with contextlib.suppress(TelegramError):  # admins who never opened the chat
            await bot.send_message(admin_id, text)


class AdminAlerts:
    def __init__(
        self, admin_ids: Sequence[int], *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.admin_ids = tuple(admin_ids)
        self._bot: Bot | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._by_text = KeyedThrottle(REPEAT_SECONDS, clock=clock)
        self._by_kind = KeyedThrottle(RECURRING_SECONDS, clock=clock)

    def attach(self, bot: Bot) -> None:
        """Send through ``bot`` from now on; call from the event loop that runs the bot."""
        self._bot = bot
        self._loop = asyncio.get_running_loop()

    async def report(self, text: str, *, kind: str | None = None) -> None:
        """A crashed job or another fault an admin should hear about (HTML). The same text
        goes out at most once per ``REPEAT_SECONDS``; with ``kind`` (a condition that
        recurs, such as a polling error), one alert per kind per ``RECURRING_SECONDS``."""
        if not (self._by_kind.due(kind) if kind is not None else self._by_text.due(text)):
            log.debug("admin alert not repeated: %s", text)
            return
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
