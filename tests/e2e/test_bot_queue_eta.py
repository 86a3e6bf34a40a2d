"""The queued message estimates the wait from measured throughput ("In coda: posizione 2
di 3 · circa 20 s") and follows the queue as it moves, through the real bot over the
Bot API emulator."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from typing import Any

import pytest

from bot import formatting, queue_display
from storage.models import JobStatus
from tests.support.bot_harness import USER, running_bot
from tests.support.held_transcriber import HELD_SECONDS, HeldTranscriber
from tests.support.worker_support import tone_wav

CLIP_SECONDS = 2
MODEL_SECONDS = 1.0  # each model call takes this long: about 2 audio s per second
DECLARED_SECONDS = 20  # what the queued notes say they last (Telegram's metadata)
ETA = re.compile(r"posizione (\d+) di (\d+) · circa (\d+) (s|min)")


def test_eta_texts_are_rounded_and_never_zero() -> None:
    assert formatting.queued_text(2, 3, 21.0) == "🕐 In coda: posizione 2 di 3 · circa 20 s."
    assert formatting.queued_text(2, 3, 0.4).endswith("circa 5 s.")
    assert formatting.queued_text(2, 3, 130.0).endswith("circa 2 min.")
    assert formatting.queued_text(2, 3) == "🕐 In coda: posizione 2 di 3."


def _eta_seconds(text: str) -> tuple[int, int]:
    match = ETA.search(text)
    assert match, text
    value = int(match.group(3)) * (60 if match.group(4) == "min" else 1)
    return int(match.group(1)), value


async def _until(predicate, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not predicate():
        assert asyncio.get_running_loop().time() < deadline, "timed out"
        await asyncio.sleep(0.05)


def _done(bot: Any, message_id: int) -> bool:
    return any(j.user_message_id == message_id and j.status == JobStatus.DONE for j in bot.jobs())


async def test_the_queue_message_gives_a_measured_estimate_and_follows_the_queue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(queue_display, "QUEUE_REFRESH_SECONDS", 0.2)
    model = HeldTranscriber(hold=False, seconds=MODEL_SECONDS)
    async with running_bot(tmp_path, model, batch_size=1, max_pending_per_user=5, workers=1) as bot:
        # Nothing measured yet: a place, no estimate.
        first = bot.emu.send_voice(user_id=USER, data=tone_wav(CLIP_SECONDS), duration=2)
        await _until(lambda: _done(bot, first["message_id"]))
        (reply,) = [m for m in bot.emu.messages(USER) if m.reply_to == first["message_id"]]
        assert "circa" not in " ".join(reply.edit_history)

        # One job measured (2 s of audio in ~1 s). Hold the next one in the model.
        model.release.clear()
        model.started.clear()
        bot.emu.send_voice(user_id=USER, data=tone_wav(CLIP_SECONDS, frequency=550.0), duration=2)
        assert await asyncio.to_thread(model.started.wait, HELD_SECONDS)
        queued = []
        for n in range(2):
            # One after the other: updates are handled concurrently, so two sent together
            # could be queued in either order.
            queued.append(
                bot.emu.send_voice(
                    user_id=USER,
                    data=tone_wav(CLIP_SECONDS, frequency=600.0 + 50 * n),
                    duration=DECLARED_SECONDS,
                )
            )
            await bot.wait_message(
                lambda m, sent=queued[-1]: m.reply_to == sent["message_id"] and "coda" in m.content
            )
        last = await bot.wait_message(
            lambda m: m.reply_to == queued[1]["message_id"] and "circa" in m.content
        )
        model.release.set()
        await _until(lambda: _done(bot, queued[1]["message_id"]), timeout=60)
        final = next(m for m in bot.emu.messages(USER) if m.message_id == last.message_id)
        places = [_eta_seconds(t) for t in final.edit_history if ETA.search(t)]
        # Second behind the running note at first; then first. The wait shown at first
        # place may be longer than at second: the held note's time (however long this
        # machine took to queue the others) is measured into the throughput when it ends.
        assert places[0][0] == 2 and places[-1][0] == 1, places
        positions = [position for position, _eta in places]
        assert positions == sorted(positions, reverse=True), places
        first_wait = max(eta for position, eta in places if position == 2)
        # Two 20 s notes at about 2 audio seconds per second: some 20 s, well over 10.
        assert 10 <= first_wait <= 60, places
