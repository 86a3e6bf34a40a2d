"""``whisper-it bot``: migrate the database, load the model, and serve Telegram."""

from __future__ import annotations

import argparse
import logging

from bot.cli import CommandError
from bot.settings import DEFAULT_API_URL, Settings

log = logging.getLogger(__name__)

NO_TOKEN = (
    "no Telegram bot token: set WHISPER_IT_TELEGRAM_TOKEN (in the environment or in .env). "
    "Get a token from @BotFather in Telegram: send /newbot and follow the steps."
)
BAD_TOKEN = (
    "Telegram refused the bot token ({detail}). Check WHISPER_IT_TELEGRAM_TOKEN: copy it "
    "again from @BotFather (/mybots -> your bot -> API Token)."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bot", help="run the Telegram bot")
    parser.set_defaults(func=run)


def _drop_invalid_token_traceback(record: logging.LogRecord) -> bool:
    # PTB logs the refused token with a traceback before raising it; run() reports it.
    from telegram.error import InvalidToken

    return not (record.exc_info and isinstance(record.exc_info[1], InvalidToken))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from telegram import Update
    from telegram.error import InvalidToken

    from bot.app import build_application
    from bot.container import build_services

    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise CommandError(NO_TOKEN)
    token = settings.telegram_token.get_secret_value()
    logging.getLogger("telegram.ext").addFilter(_drop_invalid_token_traceback)
    if settings.telegram_api_url != DEFAULT_API_URL:
        log.info("using the Bot API server at %s", settings.telegram_api_url)
    services = build_services(settings)
    app = build_application(settings, services)
    try:
        if settings.webhook_url:
            secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
            app.run_webhook(
                listen=settings.webhook_listen,
                port=settings.webhook_port,
                url_path=settings.webhook_path,
                webhook_url=settings.webhook_url,
                secret_token=secret,
                allowed_updates=Update.ALL_TYPES,
            )
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except InvalidToken as exc:
        detail = exc.message.replace(token, "<redacted>")
        raise CommandError(BAD_TOKEN.format(detail=detail)) from None
    return 0
