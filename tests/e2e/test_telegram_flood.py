"""Telegram's 429 "retry after" on sends and edits, injected by the Bot API emulator: the
real bot waits and repeats the call, so every transcript arrives exactly once, and the
repetitions are counted in ``whisper_it_telegram_retries_total``."""

from __future__ import annotations

from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from storage.models import JobStatus
from tests.support.bot_harness import USER, is_status_text, running_bot
from tests.support.worker_support import FakeTranscriber, tone_wav

FLOOD = "Too Many Requests: retry after 1"


def retries(rendered: bytes) -> dict[str, float]:
    return {
        sample.labels["method"]: sample.value
        for family in text_string_to_metric_families(rendered.decode())
        if family.name == "whisper_it_telegram_retries"
        for sample in family.samples
        if sample.name.endswith("_total")
    }


async def test_429_on_sends_and_edits_neither_loses_nor_doubles_a_transcript(
    tmp_path: Path,
) -> None:
    async with running_bot(tmp_path, FakeTranscriber(), tagger="off") as bot:
        emu = bot.emu
        # The queued message, the progress edit and the final edit all meet a flood wait.
        emu.fail_next("sendMessage", error_code=429, description=FLOOD, retry_after=1)
        for _ in range(2):
            emu.fail_next("editMessageText", error_code=429, description=FLOOD, retry_after=1)
        sent = emu.send_voice(user_id=USER, data=tone_wav(1.0), duration=1)
        job = await bot.wait_job(sent["message_id"], timeout=60)
        # A second note after the flood: answered normally.
        second = emu.send_voice(user_id=USER, data=tone_wav(1.0), duration=1)
        await bot.wait_job(second["message_id"], timeout=60)
        counted = retries(bot.services.metrics.render())
        texts = bot.texts()
        transcriptions = bot.transcriptions()
        edits = emu.calls_to("editMessageText")
    assert job.status == JobStatus.DONE and job.attempts == 1
    assert texts == ["buongiorno a tutti", "buongiorno a tutti"], texts
    assert not any(is_status_text(text) for text in texts)
    assert len(transcriptions) == 2
    assert counted == {"sendMessage": 1, "editMessageText": 2}
    assert len(edits) >= 3  # two refused, then accepted
