"""The bot's place in a group changes while requests wait: removed or muted, the queue of
that group ends quietly (no download, no transcription, no apology, no admin alert); a
group upgraded to a supergroup keeps its settings, and its requests are answered there."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from storage.chat_changes import CHAT_UNREACHABLE_ERROR
from storage.models import JobStatus
from tests.support.bot_harness import ADMIN, GROUP, RunningBot, running_bot
from tests.support.held_transcriber import HeldTranscriber
from tests.support.worker_support import tone_wav

IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}
MEMBERS = (2001, 2002, 2003)
OLD_GROUP, SUPERGROUP = -4200, -1004200
WAITING = sorted([JobStatus.RUNNING, JobStatus.PENDING, JobStatus.PENDING])


async def _queue_three_notes(bot: RunningBot, model: HeldTranscriber) -> list[dict]:
    """Three members ask for their notes; one is in the model, two wait."""
    emu = bot.emu
    emu.open_chat(user_id=ADMIN)
    mention = f"@{emu.bot_username}"
    notes = [
        emu.send_voice(
            user_id=user,
            data=tone_wav(2, frequency=300 + 50 * i),
            duration=2,
            caption=mention,
            **IN_GROUP,
        )
        for i, user in enumerate(MEMBERS)
    ]
    await emu.async_wait_for(
        lambda: model.started.is_set() and _statuses(bot) == WAITING, timeout=30
    )
    return notes


def _statuses(bot: RunningBot) -> list[str]:
    return sorted(job.status for job in bot.jobs())


async def _all_ended_quietly(
    bot: RunningBot, notes: list[dict], caplog: pytest.LogCaptureFixture
) -> None:
    jobs = [await bot.wait_job(note["message_id"], chat_id=GROUP) for note in notes]
    assert [job.status for job in jobs] == [JobStatus.FAILED] * len(notes)
    assert all(job.error.startswith(CHAT_UNREACHABLE_ERROR) for job in jobs), jobs
    await asyncio.sleep(0.5)  # an alert or apology would be on its way
    assert bot.emu.messages(ADMIN) == []  # not a bug: nothing for the admins
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


@pytest.mark.parametrize("change", ["kicked", "left", "muted"])
async def test_a_group_that_removes_or_mutes_the_bot_ends_its_queue_at_once(
    tmp_path: Path, change: str, caplog: pytest.LogCaptureFixture
) -> None:
    """The my_chat_member update ends the group's waiting jobs before any is started."""
    model = HeldTranscriber(hold=True)
    async with running_bot(tmp_path, model, batch_size=1, workers=1) as bot:
        emu = bot.emu
        notes = await _queue_three_notes(bot, model)
        downloads = len(emu.calls_to("getFile"))
        if change == "muted":
            emu.mute_bot(chat_id=GROUP, by_user_id=MEMBERS[0])
        else:
            emu.remove_bot(chat_id=GROUP, by_user_id=MEMBERS[0], status=change)
        ended = sorted([JobStatus.RUNNING, JobStatus.FAILED, JobStatus.FAILED])
        await emu.async_wait_for(lambda: _statuses(bot) == ended, timeout=15)
        model.release.set()
        await _all_ended_quietly(bot, notes, caplog)
        assert model.calls == 1  # only the note already being transcribed
        assert len(emu.calls_to("getFile")) == downloads


async def test_jobs_of_a_chat_that_refuses_the_bot_stop_before_downloading(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Without the update (lost, or sent while the bot was down), each queued job finds
    out with its first call to the chat: it ends there, one warning, nothing downloaded."""
    model = HeldTranscriber(hold=True)
    async with running_bot(tmp_path, model, batch_size=1, workers=1) as bot:
        emu = bot.emu
        notes = await _queue_three_notes(bot, model)
        downloads = len(emu.calls_to("getFile"))
        queued = [job.id for job in bot.jobs() if job.status == JobStatus.PENDING]
        emu.mute_bot(chat_id=GROUP, by_user_id=MEMBERS[0], announce=False)
        model.release.set()
        await _all_ended_quietly(bot, notes, caplog)
        assert model.calls == 1
        assert len(emu.calls_to("getFile")) == downloads
        for job_id in queued:
            said = [r for r in caplog.records if f"job {job_id} " in r.getMessage()]
            assert [r.levelno for r in said] == [logging.WARNING], said


async def test_a_group_upgraded_to_a_supergroup_keeps_its_settings_and_its_queue(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = HeldTranscriber(hold=True)
    owner, member = MEMBERS[:2]
    in_old = {"chat_id": OLD_GROUP, "chat_type": "group"}
    async with running_bot(tmp_path, model, batch_size=1, workers=1) as bot:
        emu, queue = bot.emu, bot.services.queue
        emu.open_chat(user_id=ADMIN)
        emu.open_chat(user_id=owner, chat_id=OLD_GROUP, chat_type="group")
        chosen = await asyncio.to_thread(
            queue.set_preferences, OLD_GROUP, transcribe_all=True, admins_only=True, output="txt"
        )
        first = emu.send_voice(user_id=owner, data=tone_wav(2), duration=2, **in_old)
        second = emu.send_voice(
            user_id=member, data=tone_wav(2, frequency=500), duration=2, **in_old
        )
        await emu.async_wait_for(lambda: len(bot.jobs()) == 2 and model.started.is_set(), 30)

        # Telegram says it in both chats; the first job is being transcribed meanwhile.
        emu.migrate_group(chat_id=OLD_GROUP, new_chat_id=SUPERGROUP, user_id=owner)
        await emu.async_wait_for(
            lambda: [job.chat_id for job in bot.jobs()] == [SUPERGROUP] * 2, timeout=15
        )
        assert await asyncio.to_thread(queue.preferences, SUPERGROUP) == chosen
        model.release.set()
        for note in (first, second):  # the running one meets the upgrade and follows it
            job = await bot.wait_job(note["message_id"], chat_id=SUPERGROUP)
            assert job.status == JobStatus.DONE, job
        # The one being transcribed was put back once, and answered from its transcript.
        assert sorted(job.attempts for job in bot.jobs()) == [1, 2]
        assert model.calls == 2
        files = [m.document.name for m in emu.messages(SUPERGROUP) if m.document]
        assert len(files) == 2 and all(name.endswith(".txt") for name in files), files

        # "Trascrivi tutto" still holds: a note nobody addressed is transcribed.
        third = emu.send_voice(
            user_id=member, data=tone_wav(2, frequency=700), duration=2,
            chat_id=SUPERGROUP, chat_type="supergroup",
        )  # fmt: skip
        job = await bot.wait_job(third["message_id"], chat_id=SUPERGROUP)
        assert job.status == JobStatus.DONE
        assert emu.messages(ADMIN) == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_a_job_that_meets_an_unannounced_upgrade_takes_the_chat_along(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The service messages never came (the bot was down): the first reply refused with
    "upgraded to a supergroup" moves the chat, and every request is answered there."""
    model = HeldTranscriber(hold=True)
    in_old = {"chat_id": OLD_GROUP, "chat_type": "group"}
    async with running_bot(tmp_path, model, batch_size=1, workers=1) as bot:
        emu, queue = bot.emu, bot.services.queue
        emu.open_chat(user_id=ADMIN)
        emu.open_chat(user_id=MEMBERS[0], chat_id=OLD_GROUP, chat_type="group")
        chosen = await asyncio.to_thread(queue.set_preferences, OLD_GROUP, output="txt")
        notes = [
            emu.send_voice(
                user_id=user,
                data=tone_wav(2, frequency=300 + 50 * i),
                duration=2,
                caption=f"@{emu.bot_username}",
                **in_old,
            )
            for i, user in enumerate(MEMBERS[:2])
        ]
        await emu.async_wait_for(lambda: len(bot.jobs()) == 2 and model.started.is_set(), 30)
        emu.migrate_group(
            chat_id=OLD_GROUP, new_chat_id=SUPERGROUP, user_id=MEMBERS[0], announce=False
        )
        model.release.set()
        for note in notes:
            job = await bot.wait_job(note["message_id"], chat_id=SUPERGROUP)
            assert job.status == JobStatus.DONE, job
        assert model.calls == 2  # the first one's stored transcript was sent, not redone
        assert await asyncio.to_thread(queue.preferences, SUPERGROUP) == chosen
        assert len([m for m in emu.messages(SUPERGROUP) if m.document]) == 2
        assert emu.messages(ADMIN) == []
        assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
