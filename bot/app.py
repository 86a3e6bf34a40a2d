"""``build_application(settings, services)``: the Telegram application, wired once."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import BotCommand, BotCommandScopeChat
from telegram.constants import ParseMode
from telegram.error import InvalidToken, TelegramError
from telegram.ext import Application, ApplicationBuilder, Defaults

from bot.bootstrap import SERVICES_KEY, Services, start_ops_server
from bot.handlers import (
    admin,
    cancel,
    chat_changes,
    confirmations,
    corrections,
    errors,
    links,
    media,
    preferences,
    training_admin,
    user_commands,
    vocabulary,
)
from bot.ops.telegram_retry import RetryAfterLimiter
from bot.ops.updates_watch import UpdatesWatch, WatchedUpdatesRequest
from bot.ops.webhook import WebhookApplication
from bot.settings import Settings

log = logging.getLogger(__name__)

# Order matters: the first matching handler in a group wins.
FEATURES = (
    user_commands,
    admin,
    training_admin,
    preferences,
    vocabulary,
    media,
    corrections,
    links,
    cancel,
    confirmations,
    chat_changes,
    errors,  # last: its catch-all answers the button presses no feature above claimed
)
PURGE_INTERVAL_SECONDS = 6 * 3600
# bot_data key of the UpdatesWatch (bot/ops/updates_watch.py): readiness, a revoked token.
UPDATES_WATCH_KEY = "updates_watch"
# How long PTB's polling loop gets to end by itself after a refused token.
POLLING_LOOP_END_SECONDS = 1.0


def build_application(settings: Settings, services: Services) -> Application:
    if settings.telegram_token is None:
        raise ValueError("WHISPER_IT_TELEGRAM_TOKEN is not set")
    watch = UpdatesWatch()
    app = (
        ApplicationBuilder()
        .token(settings.telegram_token.get_secret_value())
        .base_url(settings.telegram_api_url)
        .base_file_url(settings.telegram_file_url)
        .local_mode(settings.telegram_local_mode)
        # A reply to a message deleted meanwhile (a group's cleaner bot deletes commands at
        # once) is sent anyway, not failed as "message to be replied not found".
        .defaults(Defaults(parse_mode=ParseMode.HTML, allow_sending_without_reply=True))
        .concurrent_updates(True)
        .rate_limiter(RetryAfterLimiter(on_retry=services.metrics.retried))
        .get_updates_request(WatchedUpdatesRequest(watch))
        .post_init(_post_init)
        .post_shutdown(_post_shutdown)
        .application_class(
            WebhookApplication, kwargs={"webhook_max_body_bytes": settings.webhook_max_body_bytes}
        )
        .build()
    )
    app.bot_data[SERVICES_KEY] = services
    app.bot_data[UPDATES_WATCH_KEY] = watch
    watch.on_token_refused = lambda: app.create_task(_stop_after_token_refused(app))
    for feature in FEATURES:
        feature.register(app)
    return app


async def _post_init(app: Application) -> None:
    services: Services = app.bot_data[SERVICES_KEY]
    services.alerts.attach(app.bot)
    services.ops = await start_ops_server(services, updates_flowing=lambda: _updates_flowing(app))
    if services.settings.workers > 0:
        # Load the model now, so the first user does not wait for it and a broken model
        # is reported at start. (A front without workers never transcribes.)
        await asyncio.to_thread(services.pipeline.models.get)
    await _set_commands(app, services)
    await services.runner.start(app.bot)
    if app.job_queue is not None:
        app.job_queue.run_repeating(_purge, PURGE_INTERVAL_SECONDS, first=60)
    await training_admin.start_scheduling(app)
    log.info("bot @%s ready", app.bot.username)


def _updates_flowing(app: Application) -> bool:
    """Polling or the webhook runs, and (polling) getUpdates answers, without a conflict."""
    watch: UpdatesWatch = app.bot_data[UPDATES_WATCH_KEY]
    return app.updater is not None and app.updater.running and watch.problem() is None


async def _stop_after_token_refused(app: Application) -> None:
    """getUpdates got a 401 (the token was revoked): PTB's polling loop has ended for good.
    Stop the application, so the process exits and run_bot reports why."""
    # Let PTB's loop see the error and end first: stopped under it, it would leave the
    # error unretrieved ("Task exception was never retrieved", with a traceback).
    await asyncio.sleep(POLLING_LOOP_END_SECONDS)
    if app.updater is not None and app.updater.running:
        with contextlib.suppress(InvalidToken):
            await app.updater.stop()  # awaiting the ended polling loop re-raises its error
    app.stop_running()


async def _set_commands(app: Application, services: Services) -> None:
    user = [BotCommand(name, text) for name, text in user_commands.USER_COMMANDS]
    try:
        await app.bot.set_my_commands(user)
        staff = user + [
            BotCommand(name, text)
            for name, text in (*admin.ADMIN_COMMANDS, *training_admin.TRAINING_COMMANDS)
        ]
        for admin_id in services.settings.admin_ids:
            try:
                await app.bot.set_my_commands(staff, scope=BotCommandScopeChat(admin_id))
            except TelegramError:  # an admin who never opened the chat
                continue
    except TelegramError as exc:
        log.warning("commands not registered: %s", exc)


async def _purge(context) -> None:
    services: Services = context.application.bot_data[SERVICES_KEY]
    purged = await asyncio.to_thread(services.purge_old_audio)
    if purged:
        log.info("retention: purged the audio of %d transcription(s)", purged)


async def _post_shutdown(app: Application) -> None:
    services: Services = app.bot_data[SERVICES_KEY]
    await services.runner.stop()
    if services.ops is not None:
        await services.ops.stop()
    services.close()
