"""Forum topics: every message about a request goes to the request's topic. Telegram puts
a message that names no topic in the replied-to message's topic, but in "General" once
that message is gone (its user deleted it) or when it replies to nothing."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

import bot.handlers.media
from bot import formatting, messages
from storage.models import JobStatus
from tests.support.bot_harness import ADMIN, GROUP, OTHER_USER, USER, RunningBot, running_bot
from tests.support.held_transcriber import HELD_SECONDS, HeldTranscriber
from tests.support.telegram_emulator import BotMessage
from tests.support.worker_support import FakeTranscriber, SlowTagger, tone_wav

TOPIC = 77
IN_TOPIC: dict[str, Any] = {"chat_id": GROUP, "chat_type": "supergroup", "topic": TOPIC}
MESSAGE_CHARS = 200
FILE_CHARS = 1000
SENTENCE = "Questa è una frase di prova abbastanza lunga per superare il limite."
PARTS = " ".join([SENTENCE] * 8)  # several messages of MESSAGE_CHARS
AS_FILE = " ".join([SENTENCE] * 16)  # over FILE_CHARS: a .txt file
# One message with room for no more than a few characters: late hashtags spill over.
NEARLY_FULL = "Il treno per Milano parte alle otto e arriva a Roma nel pomeriggio. " * 2 + (
    "La stazione centrale è affollata, ma i treni arrivano."
)


async def _deleted_while_transcribed(
    bot: RunningBot, model: HeldTranscriber, text: str, frequency: float
) -> tuple[Any, list[BotMessage]]:
    """A member's note in the topic, deleted by them while it is transcribed: its job,
    and every bot message sent since."""
    model.text = text
    model.started.clear()
    model.release.clear()
    note = bot.emu.send_voice(
        user_id=OTHER_USER, data=tone_wav(2, frequency=frequency), duration=2,
        caption=f"@{bot.emu.bot_username}", **IN_TOPIC,
    )  # fmt: skip
    assert await asyncio.to_thread(model.started.wait, HELD_SECONDS)
    bot.emu.delete_message(chat_id=GROUP, message_id=note["message_id"])
    model.release.set()
    job = await bot.wait_job(note["message_id"], chat_id=GROUP)
    assert job.status == JobStatus.DONE, job
    since = bot.emu.messages(GROUP, include_deleted=True)
    return job, [m for m in since if m.message_id > note["message_id"]]


async def test_a_note_deleted_while_transcribed_is_still_answered_in_its_topic(
    tmp_path: Path,
) -> None:
    model = HeldTranscriber()
    async with running_bot(
        tmp_path, model, max_message_chars=MESSAGE_CHARS, long_text_as_file_chars=FILE_CHARS
    ) as bot:
        # Someone chatting in "General" meanwhile: the bot's messages must not go there.
        bot.emu.send_text(user_id=USER, text="Ciao a tutti!", chat_id=GROUP, chat_type="supergroup")

        # A transcript in several messages: the status message becomes the first, the
        # others are new messages replying to the (deleted) note.
        job, sent = await _deleted_while_transcribed(bot, model, PARTS, 440.0)
        assert len(job.reply_message_ids) >= 3, job
        assert [(m.message_id, m.topic) for m in sent] == [(m.message_id, TOPIC) for m in sent]

        # A transcript too long for messages: a .txt file.
        job, sent = await _deleted_while_transcribed(bot, model, AS_FILE, 550.0)
        (document,) = [m for m in sent if m.message_id in job.reply_message_ids]
        assert document.document is not None and document.document.name.endswith(".txt")
        assert {m.topic for m in sent} == {TOPIC}

        # The chat chose transcripts as .txt files (/impostazioni).
        queue = bot.services.runner.queue
        await asyncio.to_thread(queue.set_preferences, GROUP, output="txt")
        job, sent = await _deleted_while_transcribed(bot, model, PARTS, 660.0)
        (document,) = [m for m in sent if m.message_id in job.reply_message_ids]
        assert document.document is not None and document.document.name.endswith(".txt")
        assert {m.topic for m in sent} == {TOPIC}

        general = [
            m.content for m in bot.emu.messages(GROUP, include_deleted=True) if m.topic is None
        ]
        assert general == []


async def test_late_hashtags_that_spill_over_follow_the_transcript_in_its_topic(
    tmp_path: Path,
) -> None:
    (fits,) = formatting.transcript_messages(NEARLY_FULL, (), limit=MESSAGE_CHARS).messages
    assert len(fits) > MESSAGE_CHARS - 15  # no room left for a line of hashtags
    model = FakeTranscriber(text=NEARLY_FULL)
    async with running_bot(
        tmp_path, model, max_message_chars=MESSAGE_CHARS, tag_budget_seconds=0.1
    ) as bot:
        pipeline = bot.services.pipeline
        pipeline.tagger = SlowTagger(pipeline.tagger, delay=1.0)
        note = bot.emu.send_voice(
            user_id=USER, data=tone_wav(2), duration=2, caption=f"@{bot.emu.bot_username}",
            **IN_TOPIC,
        )  # fmt: skip
        (reply,) = await bot.wait_reply(note["message_id"], chat_id=GROUP)
        tags = await bot.wait_message(lambda m: m.content.startswith("#"), chat_id=GROUP)
        assert "#" not in reply.content  # the reply went out before its tags
        assert (tags.topic, tags.reply_to) == (TOPIC, reply.message_id)
        assert reply.topic == TOPIC


async def test_a_topic_deleted_while_its_note_is_transcribed_ends_the_job_quietly(
    tmp_path: Path,
) -> None:
    """Nowhere to answer (Telegram refuses the topic): the job ends, no apology elsewhere
    and no alert to the admins, as for a chat that removed the bot."""
    model = HeldTranscriber()
    async with running_bot(tmp_path, model) as running:
        note = running.emu.send_voice(
            user_id=USER, data=tone_wav(2), duration=2, caption=f"@{running.emu.bot_username}",
            **IN_TOPIC,
        )  # fmt: skip
        assert await asyncio.to_thread(model.started.wait, HELD_SECONDS)
        running.emu.delete_topic(chat_id=GROUP, topic=TOPIC)
        model.release.set()
        await running.emu.async_wait_for(
            lambda: [job.status for job in running.jobs()] == [JobStatus.FAILED]
        )
        (job,) = running.jobs()
        assert job.user_message_id == note["message_id"] and "unreachable" in (job.error or "")
        assert messages.INTERNAL_ERROR not in running.texts(GROUP)
        assert running.texts(ADMIN) == [] and not running.errors


async def test_the_apology_for_an_unexpected_error_stays_in_the_topic(
    tmp_path: Path, fake_transcriber, monkeypatch: pytest.MonkeyPatch
) -> None:
    async def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("a bug")

    monkeypatch.setattr(bot.handlers.media, "accept", broken)
    async with running_bot(tmp_path, fake_transcriber) as running:
        running.emu.send_voice(
            user_id=USER, data=tone_wav(1), duration=1, caption=f"@{running.emu.bot_username}",
            **IN_TOPIC,
        )  # fmt: skip
        apology = await running.wait_message(
            lambda m: m.content == messages.INTERNAL_ERROR, chat_id=GROUP
        )
        assert apology.topic == TOPIC
        await running.emu.async_wait_for(lambda: running.errors)
        assert [str(error) for error in running.errors] == ["a bug"]
        running.errors.clear()  # (the harness fails a test with unexpected errors)
