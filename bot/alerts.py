"""Admin alerts from the job runner and the model holder, for the bot and worker processes
alike: a crashed job, a promoted model that does not load."""

from __future__ import annotations

import asyncio
import html

from telegram import Bot

from bot import messages
from bot.container import Services
from bot.handlers.errors import REPORT_CHARS, notify_admins
from bot.model_holder import LoadFailure


def wire_admin_alerts(services: Services, bot: Bot) -> None:
    """Call from the event loop that will run the runner."""
    loop = asyncio.get_running_loop()
    admin_ids = services.settings.admin_ids

    async def report(text: str) -> None:
        await notify_admins(bot, admin_ids, f"⚠️ {text}")

    def model_broken(failure: LoadFailure) -> None:  # from a worker thread, once per version
        text = messages.MODEL_BROKEN.format(
            spec=html.escape(failure.spec), error=html.escape(failure.error[:REPORT_CHARS])
        )
        asyncio.run_coroutine_threadsafe(notify_admins(bot, admin_ids, text), loop)

    services.runner.report_error = report
    services.pipeline.models.on_broken = model_broken
