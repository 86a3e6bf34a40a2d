"""Long transcripts (split / .txt), flood limits, and the admin-only /stats."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import messages
from storage.models import JobStatus
from tests.support.bot_harness import ADMIN, USER, running_bot
from tests.support.speech import synthesize

# ~8 s of speech: a transcript of ~100 characters.
SENTENCE = "Il treno per Milano parte alle otto e arriva a Roma nel pomeriggio."
SHORT = "La pizza margherita è nata a Napoli."
SPLIT_LIMIT = 40


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, bytes]:
    folder = speech_dir / "bot_limits"
    return {
        "long": synthesize(SENTENCE, folder / "long.ogg").read_bytes(),
        "short": synthesize(SHORT, folder / "short.ogg").read_bytes(),
    }


async def test_long_transcript_is_split_and_every_part_is_stored(
    tmp_path: Path, fake_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber, max_message_chars=SPLIT_LIMIT) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=clips["long"], duration=6)
        replies = await bot.wait_reply(sent["message_id"])
        (stored,) = bot.transcriptions()
        assert len(stored.text) > 1.5 * SPLIT_LIMIT, stored.text
        assert len(replies) >= 2, [m.content for m in replies]
        assert all(len(m.content) <= SPLIT_LIMIT for m in replies)
        assert all(m.reply_to == sent["message_id"] for m in replies)
        # The pieces, put back together, are the transcript (then the hashtags).
        pieces = [m.content for m in replies if not m.content.startswith("#")]
        assert " ".join(pieces).split() == stored.text.split()
        assert replies[-1].content.split("\n\n")[-1].startswith("#")
        # Each message is a handle for corrections.
        assert stored.reply_message_ids == tuple(m.message_id for m in replies)
        for message in replies:
            found = bot.transcription_by_reply(message.message_id)
            assert found is not None and found.id == stored.id

        bot.emu.send_text(user_id=USER, text="Testo corretto.", reply_to=replies[-1].message_id)
        await bot.wait_text(lambda t: t == messages.CORRECTION_SAVED)


async def test_very_long_transcript_goes_as_a_text_file(
    tmp_path: Path, fake_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber, long_text_as_file_chars=30) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=clips["long"], duration=6)
        (reply,) = await bot.wait_reply(sent["message_id"])
        (stored,) = bot.transcriptions()
        assert reply.document is not None and reply.document.name.endswith(".txt")
        assert reply.document.data.decode() == stored.text
        assert reply.content.startswith("📄 Trascrizione completa nel file.")
        assert reply.reply_to == sent["message_id"]
        # The status message made way for the document.
        statuses = bot.emu.messages(USER, include_deleted=True)
        assert [m.deleted for m in statuses] == [True, False]
        assert bot.transcription_by_reply(reply.message_id) == stored
        assert stored.reply_message_ids == (reply.message_id,)


async def test_flood_gets_the_rate_limit_message(
    tmp_path: Path, fake_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber, messages_per_minute=2) as bot:
        sent = [bot.emu.send_voice(user_id=USER, data=clips["short"], duration=3) for _ in range(3)]
        limited = await bot.wait_text(lambda t: t.startswith("Stai inviando troppi messaggi"))
        seconds = int(limited.split("tra ")[1].split()[0])
        assert 1 <= seconds <= 60
        # The other two are accepted (concurrently: the refusal may come first).
        jobs = await bot.emu.async_wait_for(
            lambda: (jobs := bot.jobs()) and len(jobs) == 2 and jobs
        )
        for job in jobs:
            await bot.wait_job(job.user_message_id)
        assert [job.status for job in bot.jobs()] == [JobStatus.DONE, JobStatus.DONE]
        assert {job.user_message_id for job in jobs} < {m["message_id"] for m in sent}
        # Links count too (without a second notice: the user knows already).
        bot.emu.send_text(user_id=USER, text="https://youtu.be/dQw4w9WgXcQ")
        bot.emu.send_text(user_id=USER + 1, text="https://youtu.be/dQw4w9WgXcQ")
        await bot.emu.async_wait_for(lambda: len(bot.jobs()) == 3)
        await asyncio.sleep(0.5)  # (updates are handled concurrently)
        assert sum(t.startswith("Stai inviando") for t in bot.texts()) == 1
        assert [job.chat_id for job in bot.jobs()] == [USER, USER, USER + 1]


async def test_too_many_pending_jobs_are_refused(
    tmp_path: Path, fake_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber, max_pending_jobs_per_user=1) as bot:
        first = bot.emu.send_voice(user_id=USER, data=clips["long"], duration=6)
        await bot.emu.async_wait_for(lambda: bot.jobs())
        bot.emu.send_voice(user_id=USER, data=clips["short"], duration=3)
        busy = await bot.wait_text(lambda t: "richieste in corso" in t)
        assert busy == messages.TOO_MANY_PENDING.format(count=1)
        await bot.wait_job(first["message_id"])
        # Once the first is answered, the user may send again.
        again = bot.emu.send_voice(user_id=USER, data=clips["short"], duration=3)
        assert (await bot.wait_job(again["message_id"])).status == JobStatus.DONE
        assert len(bot.jobs()) == 2


async def test_stats_is_for_admins_only(
    tmp_path: Path, fake_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=clips["short"], duration=3)
        await bot.wait_job(sent["message_id"])
        bot.emu.send_text(user_id=USER, text="/stats")
        refusal = await bot.wait_text(lambda t: t == messages.NOT_ADMIN)
        assert "Statistiche" not in " ".join(bot.texts())
        assert refusal

        bot.emu.send_text(user_id=ADMIN, text="/stats")
        stats = await bot.wait_text(lambda t: t.startswith("Statistiche"), chat_id=ADMIN)
        assert "Utenti: 1" in stats and "Trascrizioni: 1" in stats, stats
        assert "Correzioni: 0" in stats and "Modello: packaged:whisper-base" in stats, stats
        # Admins see /stats in their command menu; everyone else does not.
        assert "stats" not in {command["command"] for command in bot.emu.commands}
        admin_scopes = [call for call in bot.emu.calls_to("setMyCommands") if call.get("scope")]
        assert admin_scopes and admin_scopes[0]["scope"]["chat_id"] == ADMIN
        assert "stats" in {command["command"] for command in admin_scopes[0]["commands"]}
