"""Issue 18: /forget stops a link download that is under way (the download runs in a
child process the worker kills), and the user hears nothing more about that job."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from bot import messages
from tests.support.bot_harness import USER, running_bot
from tests.support.drip_server import DRIP_SECONDS, Drip

FORGET_SECONDS = 4.0  # from "yes" to the download hanging up: polling + the kill


async def test_forget_cancels_a_running_download(tmp_path: Path, drip: Drip) -> None:
    async with running_bot(
        tmp_path, None, allowed_url_hosts=[drip.netloc], download_timeout_seconds=120.0
    ) as bot:
        emu = bot.emu
        sent = emu.send_text(user_id=USER, text=f"http://{drip.netloc}/lezione.mp4")
        await emu.async_wait_for(lambda: drip.requests, timeout=30)
        emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        yes = question.reply_markup["inline_keyboard"][0][0]
        emu.send_callback_query(
            user_id=USER, message_id=question.message_id, data=yes["callback_data"]
        )
        await bot.wait_text(lambda t: t.startswith("🗑"))
        confirmed = time.monotonic()
        await emu.async_wait_for(lambda: drip.closed, timeout=FORGET_SECONDS + DRIP_SECONDS)
        assert drip.closed[0] - confirmed < FORGET_SECONDS
        assert bot.jobs() == []
        # No "download cancelled" or error: the job's status message is simply removed.
        await emu.async_wait_for(lambda: not bot.replies_to(sent["message_id"]), timeout=10)
        texts = bot.texts(USER)
        assert messages.LINK_ERRORS["cancelled"] not in " ".join(texts)
        assert messages.INTERNAL_ERROR not in texts


async def test_shutdown_cancels_a_running_download(tmp_path: Path, drip: Drip) -> None:
    async with running_bot(
        tmp_path, None, allowed_url_hosts=[drip.netloc], download_timeout_seconds=120.0
    ) as bot:
        bot.emu.send_text(user_id=USER, text=f"http://{drip.netloc}/lezione.mp4")
        await bot.emu.async_wait_for(lambda: drip.requests, timeout=30)
        stopping = time.monotonic()
    # The bot has stopped; its download process must not outlive it.
    deadline = time.monotonic() + FORGET_SECONDS + DRIP_SECONDS
    while not drip.closed and time.monotonic() < deadline:
        await asyncio.sleep(0.1)
    assert drip.closed and drip.closed[0] - stopping < FORGET_SECONDS + DRIP_SECONDS
