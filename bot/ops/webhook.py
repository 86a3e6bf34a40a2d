"""The Telegram webhook listener (webhook mode), served by aiohttp.

PTB's own listener (tornado) reads a request's whole body, up to 100 MB, before it looks
at the secret header: anyone who can reach the port can make the process hold 100 MB per
connection without knowing the secret. Here the secret is checked on the headers, before
a byte of the body is read, and a body is read only up to ``WHISPER_IT_WEBHOOK_MAX_BODY_
BYTES`` (Telegram's updates are a few KB). Polling is PTB's, unchanged.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiohttp import web
from telegram import Update
from telegram.ext import Application, Updater

log = logging.getLogger(__name__)

SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
JSON_CONTENT_TYPE = "application/json"
# Telegram keeps at most this many connections open to a webhook (setWebhook's default).
MAX_CONNECTIONS = 40
# An idle or half-sent request is dropped after this long (aiohttp's default is an hour).
KEEPALIVE_TIMEOUT_SECONDS = 5.0
STATUS_OK = 200
STATUS_BAD_REQUEST = 400
STATUS_FORBIDDEN = 403
STATUS_TIMEOUT = 408
STATUS_TOO_LARGE = 413
# A body (of at most max_body_bytes) must arrive within this long: Telegram sends an
# update in one go, and a slow sender must not hold a handler and its buffer.
BODY_TIMEOUT_SECONDS = 10.0


class WebhookUpdater(Updater):
    """PTB's ``Updater`` with ``start_webhook`` served by :func:`webhook_app`; polling and
    everything else as PTB does it. ``Application.run_webhook`` drives it unchanged."""

    def __init__(self, *, bot: Any, update_queue: Any, max_body_bytes: int) -> None:
        super().__init__(bot=bot, update_queue=update_queue)
        self._max_body_bytes = max_body_bytes
        self._runner: web.AppRunner | None = None

    async def start_webhook(  # type: ignore[override]
        self,
        listen: Any = "127.0.0.1",
        port: Any = 80,
        url_path: str = "",
        cert: str | Path | None = None,
        key: str | Path | None = None,
        bootstrap_retries: int = 0,
        webhook_url: str | None = None,
        allowed_updates: Sequence[str] | None = None,
        drop_pending_updates: bool | None = None,
        ip_address: str | None = None,
        max_connections: int = MAX_CONNECTIONS,
        secret_token: str | None = None,
        unix: Any = None,
    ) -> Any:
        """Listen on ``listen:port/url_path``, then register ``webhook_url`` with Telegram.

        TLS is the reverse proxy's (``cert``/``key``, ``unix`` and ``ip_address`` are not
        supported); a secret is required. A failed ``setWebhook`` stops the listener again
        and raises (``bootstrap_retries`` is not used: the process exits and is restarted).
        """
        if cert or key or unix or ip_address:
            raise ValueError("the webhook listener takes no certificate, socket or IP address")
        if not secret_token or not webhook_url:
            raise ValueError("the webhook listener needs a secret and a public URL")
        if self.running:
            raise RuntimeError("This Updater is already running!")
        if not self._initialized:
            raise RuntimeError("This Updater was not initialized via `Updater.initialize`!")
        app = webhook_app(
            path="/" + url_path.lstrip("/"),
            secret=secret_token,
            application_bot=self.bot,
            update_queue=self.update_queue,
            max_body_bytes=self._max_body_bytes,
        )
        self._runner = await start_listener(app, str(listen), int(port))
        self._running = True
        try:
            await self.bot.set_webhook(
                url=webhook_url,
                allowed_updates=allowed_updates,
                drop_pending_updates=drop_pending_updates,
                max_connections=max_connections,
                secret_token=secret_token,
            )
        except BaseException:
            await self._stop_listener()
            raise
        return self.update_queue

    async def stop(self) -> None:
        if self._runner is None:
            await super().stop()  # polling, or not running (PTB raises as it would)
            return
        await self._stop_listener()

    async def _stop_listener(self) -> None:
        self._running = False
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()


async def start_listener(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app, access_log=None, keepalive_timeout=KEEPALIVE_TIMEOUT_SECONDS)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner


def webhook_app(
    *,
    path: str,
    secret: str,
    application_bot: Any,
    update_queue: Any,
    max_body_bytes: int,
    body_timeout: float = BODY_TIMEOUT_SECONDS,
) -> web.Application:
    """One POST route: the secret, then the content type, then at most ``max_body_bytes``
    of JSON, parsed into an ``Update`` and queued for the application."""
    expected = secret.encode()

    async def receive(request: web.Request) -> web.Response:
        given = request.headers.get(SECRET_HEADER, "").encode("utf-8", "surrogateescape")
        if not hmac.compare_digest(given, expected):
            log.debug("webhook: a request without the right secret was refused")
            return web.Response(status=STATUS_FORBIDDEN)
        if request.content_type != JSON_CONTENT_TYPE:
            return web.Response(status=STATUS_FORBIDDEN)
        declared = request.content_length
        if declared is not None and declared > max_body_bytes:
            return web.Response(status=STATUS_TOO_LARGE)  # refused before reading it
        try:
            async with asyncio.timeout(body_timeout):
                body = await request.read()  # a longer chunked body: aiohttp answers 413
        except TimeoutError:
            return web.Response(status=STATUS_TIMEOUT)
        try:
            data = json.loads(body)
            if not isinstance(data, dict):
                raise TypeError("an update is a JSON object")
            update = Update.de_json(data, application_bot)
        except Exception as exc:  # any unparseable body is the sender's error
            log.warning("webhook: an unreadable update was refused (%s)", type(exc).__name__)
            return web.Response(status=STATUS_BAD_REQUEST)
        await update_queue.put(update)
        return web.Response(status=STATUS_OK)

    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_post(path, receive)
    return app


class WebhookApplication(Application):
    """PTB's ``Application`` whose updater is a :class:`WebhookUpdater` (set with
    ``ApplicationBuilder.application_class(WebhookApplication, kwargs=...)``)."""

    def __init__(self, *, updater: Updater | None, webhook_max_body_bytes: int, **kwargs: Any):
        if updater is not None:
            updater = WebhookUpdater(
                bot=updater.bot,
                update_queue=updater.update_queue,
                max_body_bytes=webhook_max_body_bytes,
            )
        super().__init__(updater=updater, **kwargs)
