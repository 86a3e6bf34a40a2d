"""``whisper-it worker``: a transcription worker as its own process.

It claims jobs from the shared database (under renewable leases), transcribes them and
replies through the Bot API; it receives no updates. Run any number of them, on one
machine or many, beside one ``whisper-it bot`` front (``WHISPER_IT_WORKERS=0`` makes the
front accept jobs only). Stops cleanly on SIGTERM or Ctrl-C; a worker killed outright
loses nothing: its leases expire and another worker answers its jobs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
from typing import TYPE_CHECKING

from bot.cli import CommandError
from bot.settings import Settings

if TYPE_CHECKING:
    from telegram.ext import ExtBot

    from bot.bootstrap import Services

log = logging.getLogger(__name__)

NO_TOKEN = (
    "un worker risponde attraverso la Bot API: imposta WHISPER_IT_TELEGRAM_TOKEN (lo stesso "
    "token del bot)."
)
NO_WORKERS = "WHISPER_IT_WORKERS è 0: un processo worker ha bisogno di almeno un worker."


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "worker", help="run transcription workers (no Telegram updates) on the shared database"
    )
    parser.set_defaults(func=run)


def run(args: argparse.Namespace, settings: Settings) -> int:
    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise CommandError(NO_TOKEN)
    if settings.workers <= 0:
        raise CommandError(NO_WORKERS)
    from bot.bootstrap import bootstrap

    services = bootstrap(settings, role="worker")
    try:
        asyncio.run(serve(services))
    finally:
        services.close()
    return 0


async def serve(services: Services, *, stop: asyncio.Event | None = None) -> None:
    """Run the workers until ``stop`` is set (or SIGTERM/SIGINT arrives)."""
    from telegram.constants import ParseMode
    from telegram.ext import Defaults, ExtBot

    from bot.bootstrap import start_ops_server
    from bot.ops.telegram_retry import RetryAfterLimiter

    settings = services.settings
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signum, stop.set)
    bot = ExtBot(
        settings.telegram_token.get_secret_value(),
        base_url=settings.telegram_api_url,
        base_file_url=settings.telegram_file_url,
        local_mode=settings.telegram_local_mode,
        defaults=Defaults(parse_mode=ParseMode.HTML),
        rate_limiter=RetryAfterLimiter(on_retry=services.metrics.retried),
    )
    await _reach_bot_api(bot, settings)
    async with bot:  # already initialized: closes it at the end
        services.alerts.attach(bot)
        services.ops = await start_ops_server(services)
        try:
            await asyncio.to_thread(services.pipeline.models.get)  # fail at start, not mid-job
            await services.runner.start(bot)
            log.info("worker %s ready (%d worker(s))", services.queue.owner, settings.workers)
            await stop.wait()
        finally:
            await services.runner.stop()
            if services.ops is not None:
                await services.ops.stop()
    log.info("worker %s stopped", services.queue.owner)


async def _reach_bot_api(bot: ExtBot, settings: Settings) -> None:
    """Ask the Bot API who we are (getMe) before any work: a token Telegram refuses, or a
    server that does not answer, ends the worker with one line (run_bot.start_failure)."""
    from telegram.error import InvalidToken, NetworkError

    from bot.commands.run_bot import start_failure

    try:
        await bot.initialize()
    except (InvalidToken, NetworkError) as exc:  # NetworkError: includes TimedOut
        await bot.shutdown()
        raise start_failure(exc, settings) from None
