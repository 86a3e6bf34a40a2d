"""``whisper-it bot``: migrate the database, load the model, and serve Telegram."""

from __future__ import annotations

import argparse
import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bot.cli import CommandError
from bot.ops.log_format import add_secret
from bot.settings import DEFAULT_API_URL, Settings

if TYPE_CHECKING:
    from telegram.error import TelegramError
    from telegram.ext import Application

    from bot.ops.updates_watch import UpdatesWatch

log = logging.getLogger(__name__)

NO_TOKEN = (
    "manca il token del bot Telegram: imposta WHISPER_IT_TELEGRAM_TOKEN (nell'ambiente o in "
    ".env). Per averne uno scrivi a @BotFather su Telegram: manda /newbot e segui i passaggi."
)
BAD_TOKEN = (
    "Telegram rifiuta il token del bot ({detail}). Controlla WHISPER_IT_TELEGRAM_TOKEN: "
    "copialo di nuovo da @BotFather (/mybots -> il tuo bot -> API Token)."
)
API_UNREACHABLE = (
    "impossibile raggiungere la Bot API di Telegram a {url} ({detail}): controlla la rete, "
    "o WHISPER_IT_TELEGRAM_API_URL se usi un server Bot API locale."
)
# A NetworkError's text is quoted up to this length.
MAX_DETAIL_CHARS = 200
# PTB names the retry loops it runs while starting (getMe, deleteWebhook, setWebhook)
# "Bootstrap ...": the one whose failure run() reports is one of them.
PTB_STARTUP_LOOP = "(Bootstrap "
REVOKED_TOKEN = (
    "Telegram non accetta più il token del bot mentre il bot è in funzione (revocato o "
    "rigenerato in @BotFather): non può arrivare nessun aggiornamento. Imposta il token "
    "attuale in WHISPER_IT_TELEGRAM_TOKEN e riavvia il bot."
)


# Telegram accepts 1-256 characters of A-Z, a-z, 0-9, "_" and "-" as a webhook secret. We
# ask for at least 16: the secret is the only thing that tells Telegram's calls from forged
# ones, and anyone who can reach the port may try to guess it.
WEBHOOK_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{16,256}")
# 32 random bytes, URL-safe base64: 43 characters, all in Telegram's alphabet.
GENERATED_SECRET_BYTES = 32
WEAK_WEBHOOK_SECRET = (
    "WHISPER_IT_WEBHOOK_SECRET deve avere da 16 a 256 caratteri tra A-Z, a-z, 0-9, _ e - "
    "(oppure lascialo vuoto: a ogni avvio ne viene generato uno robusto)."
)


@dataclass(frozen=True, kw_only=True)
class WebhookOptions:
    """How the webhook server runs; ``secret_token`` is never empty (issue 10).

    PTB's webhook server answers 403 to any request whose ``X-Telegram-Bot-Api-Secret-Token``
    header is missing or differs, before the update reaches the application, and
    ``setWebhook`` registers the same secret with Telegram.
    """

    listen: str
    port: int
    url_path: str
    webhook_url: str
    secret_token: str
    generated: bool  # True: made for this run (each start registers a new one)

    def run_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for ``Application.run_webhook`` / ``Updater.start_webhook``."""
        return {
            "listen": self.listen,
            "port": self.port,
            "url_path": self.url_path,
            "webhook_url": self.webhook_url,
            "secret_token": self.secret_token,
        }


def webhook_options(settings: Settings) -> WebhookOptions:
    """The webhook configuration, with a secret always; raises CommandError on a weak one."""
    if not settings.webhook_url:
        raise ValueError("webhook mode needs WHISPER_IT_WEBHOOK_URL")
    configured = settings.webhook_secret.get_secret_value() if settings.webhook_secret else ""
    if configured and not WEBHOOK_SECRET_RE.fullmatch(configured):
        raise CommandError(WEAK_WEBHOOK_SECRET)
    secret_token = configured or secrets.token_urlsafe(GENERATED_SECRET_BYTES)
    # A configured secret is redacted from the start (cli.secrets_of); a generated one
    # from the moment it exists, before any Bot API call could log it at DEBUG.
    add_secret(secret_token)
    return WebhookOptions(
        listen=settings.webhook_listen,
        port=settings.webhook_port,
        url_path=settings.webhook_path,
        webhook_url=settings.webhook_url,
        secret_token=secret_token,
        generated=not configured,
    )


# The operations endpoints never share the webhook's listener (README: Deploying, Ports).
SHARED_PORT = (
    "WHISPER_IT_HTTP_PORT and WHISPER_IT_WEBHOOK_PORT are both {port}: the health and "
    "metrics endpoints need a port of their own."
)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("bot", help="run the Telegram bot")
    parser.set_defaults(func=run)


def _drop_reported_failures(
    app: Application, watch: UpdatesWatch
) -> Callable[[logging.LogRecord], bool]:
    """A filter for PTB's tracebacks of what run() reports in one line: a refused token (at
    startup, and after a 401 to getUpdates) and a Bot API that cannot be reached at startup.
    Any other such record is kept (a network error while running, or while shutting down)."""
    from telegram.error import InvalidToken, NetworkError

    def keep(record: logging.LogRecord) -> bool:
        error = record.exc_info[1] if record.exc_info is not None else None
        if isinstance(error, InvalidToken):
            return app.running and not watch.token_refused
        if isinstance(error, NetworkError) and not app.running:
            return PTB_STARTUP_LOOP not in record.getMessage()
        return True

    return keep


def start_failure(exc: TelegramError, settings: Settings) -> CommandError:
    """The one line for a Bot API that refused the token or could not be reached at start
    (the bot's and a worker's), naming the server's URL but never the token: PTB's
    InvalidToken quotes it."""
    from telegram.error import InvalidToken

    token = settings.telegram_token.get_secret_value() if settings.telegram_token else ""

    def redacted(text: str) -> str:
        return text.replace(token, "<redacted>") if token else text

    detail = redacted(exc.message)[:MAX_DETAIL_CHARS]
    if isinstance(exc, InvalidToken):
        return CommandError(BAD_TOKEN.format(detail=detail))
    url = redacted(settings.telegram_api_url)
    return CommandError(API_UNREACHABLE.format(url=url, detail=detail))


def run(args: argparse.Namespace, settings: Settings) -> int:
    from telegram import Update
    from telegram.error import InvalidToken, NetworkError

    from bot.app import UPDATES_WATCH_KEY, build_application
    from bot.bootstrap import bootstrap

    if settings.telegram_token is None or not settings.telegram_token.get_secret_value():
        raise CommandError(NO_TOKEN)
    # Checked before anything is built: a weak secret must not cost a model load first.
    webhook = webhook_options(settings) if settings.webhook_url else None
    if webhook is not None and settings.http_port == webhook.port:
        raise CommandError(SHARED_PORT.format(port=webhook.port))
    if settings.telegram_api_url != DEFAULT_API_URL:
        log.info("using the Bot API server at %s", settings.telegram_api_url)
    services = bootstrap(settings)
    app = build_application(settings, services)
    watch: UpdatesWatch = app.bot_data[UPDATES_WATCH_KEY]
    logging.getLogger("telegram.ext").addFilter(_drop_reported_failures(app, watch))
    try:
        if webhook is not None:
            if webhook.generated:
                # Never logged: the secret is the webhook's only credential.
                log.info("webhook: no WHISPER_IT_WEBHOOK_SECRET set, generated one for this run")
            app.run_webhook(**webhook.run_kwargs(), allowed_updates=Update.ALL_TYPES)
        else:
            app.run_polling(allowed_updates=Update.ALL_TYPES)
    except (InvalidToken, NetworkError) as exc:  # NetworkError: includes TimedOut
        raise start_failure(exc, settings) from None
    if watch.token_refused:
        raise CommandError(REVOKED_TOKEN)
    return 0
