"""An album (several files sent together) asked for with one caption in a group: every
file is transcribed, whichever item carries the caption; an album nobody asked for, and
other albums in the same group, are left alone."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot.albums import ALBUM_WAIT_SECONDS
from storage.models import JobStatus
from tests.support.bot_harness import GROUP, RunningBot, running_bot
from tests.support.held_transcriber import HeldTranscriber
from tests.support.worker_support import tone_wav

MEMBER = 3101
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}
ITEMS = 3


def _send_album(bot: RunningBot, group_id: str, caption_at: int | None) -> list[dict]:
    """The album's items as Telegram delivers them: one message each, in order."""
    mention = f"@{bot.emu.bot_username} trascrivi"
    return [
        bot.emu.send_audio(
            user_id=MEMBER,
            data=tone_wav(1.5, frequency=300 + 60 * index),
            duration=2,
            file_name=f"parte-{index}.wav",
            mime_type="audio/wav",
            caption=mention if index == caption_at else None,
            media_group_id=group_id,
            **IN_GROUP,
        )
        for index in range(ITEMS)
    ]


@pytest.mark.parametrize("caption_at", [0, ITEMS - 1], ids=["caption-first", "caption-last"])
async def test_one_caption_asks_for_every_file_of_its_album(
    tmp_path: Path, caption_at: int
) -> None:
    async with running_bot(tmp_path, HeldTranscriber(hold=False)) as bot:
        bot.emu.open_chat(user_id=MEMBER, chat_id=GROUP, chat_type="supergroup")
        album = _send_album(bot, "album-1", caption_at)
        for item in album:
            job = await bot.wait_job(item["message_id"], chat_id=GROUP, timeout=30)
            assert job.status == JobStatus.DONE, job
        # Each file has its own answer, under its own message.
        answered = {m.reply_to for m in bot.emu.messages(GROUP) if "trascrizione" in m.content}
        assert answered == {item["message_id"] for item in album}


async def test_albums_nobody_asked_for_are_left_alone(tmp_path: Path) -> None:
    async with running_bot(tmp_path, HeldTranscriber(hold=False)) as bot:
        bot.emu.open_chat(user_id=MEMBER, chat_id=GROUP, chat_type="supergroup")
        silent = _send_album(bot, "album-silent", caption_at=None)
        asked = _send_album(bot, "album-asked", caption_at=1)
        for item in asked:
            await bot.wait_job(item["message_id"], chat_id=GROUP, timeout=30)
        # Past the wait for a caption, the uncaptioned album still has no job.
        await asyncio.sleep(ALBUM_WAIT_SECONDS + 1)
        silent_ids = {item["message_id"] for item in silent}
        assert [job for job in bot.jobs() if job.user_message_id in silent_ids] == []
        assert len(bot.jobs()) == ITEMS
