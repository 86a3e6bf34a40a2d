"""Run the real bot (``bot.app.build_application``) in-process against the emulator.

``running_bot`` builds the same services ``whisper-it bot`` builds, from real settings,
with one exception: the transcriber is the session's already-loaded whisper-base, so
each test does not pay for loading it again.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from telegram import Update
from telegram.ext import Application

from bot.app import build_application
from bot.container import Services, build_services
from bot.services import ModelHolder
from bot.settings import Settings
from tests.telegram_emulator import BotApiEmulator

USER = 1001
OTHER_USER = 1002
ADMIN = 4242


@dataclass
class RunningBot:
    emu: BotApiEmulator
    app: Application
    services: Services
    errors: list[BaseException] = field(default_factory=list)

    def texts(self, chat_id: int = USER) -> list[str]:
        return [m.content for m in self.emu.messages(chat_id)]

    async def wait_text(self, predicate, chat_id: int = USER, timeout: float = 60.0) -> str:
        """The first bot message in ``chat_id`` whose text satisfies ``predicate``."""

        def find() -> str | None:
            for text in self.texts(chat_id):
                if predicate(text):
                    return text
            return None

        return await self.emu.async_wait_for(find, timeout=timeout)


def bot_settings(data_dir: Path, emu: BotApiEmulator, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "telegram_token": emu.token,
        "telegram_api_url": emu.api_url,
        "telegram_file_url": emu.file_url,
        "data_dir": data_dir,
        "admin_ids": [ADMIN],
        "tagger": "keywords",
        "beam_size": 1,
        "offline": True,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


@contextlib.asynccontextmanager
async def running_bot(
    data_dir: Path, transcriber: Any, **overrides: Any
) -> AsyncIterator[RunningBot]:
    with BotApiEmulator() as emu:
        settings = bot_settings(data_dir, emu, **overrides)
        services = build_services(settings)
        if transcriber is not None:
            services.transcription.models = ModelHolder(
                lambda _spec: transcriber, lambda: "packaged:whisper-base"
            )
        app = build_application(settings, services)
        running = RunningBot(emu, app, services)

        async def collect(update: object, context: Any) -> None:
            running.errors.append(context.error)

        app.add_error_handler(collect)
        await app.initialize()
        # run_polling() calls these hooks; driving the application by hand, we do.
        assert app.post_init is not None and app.post_shutdown is not None
        await app.post_init(app)
        await app.start()
        assert app.updater is not None
        await app.updater.start_polling(poll_interval=0.0, timeout=1)
        try:
            yield running
        finally:
            await app.updater.stop()
            await app.stop()
            await app.shutdown()
            await app.post_shutdown(app)
        assert not running.errors, running.errors
        _ = Update  # keep the import: PTB types are part of this harness's contract
