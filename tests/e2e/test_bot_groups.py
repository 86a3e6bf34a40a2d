"""Group chats: the bot acts only when addressed."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from storage.models import JobStatus
from tests.support.bot_harness import GROUP, OTHER_USER, USER, running_bot
from tests.support.speech import synthesize

SENTENCE = "Il treno per Milano parte alle otto."


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "bot_group.ogg").read_bytes()


async def test_group_media_is_transcribed_only_when_the_bot_is_addressed(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    in_group = {"chat_id": GROUP, "chat_type": "group"}
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        # People talking among themselves: a voice note, a text, a reply between users.
        ignored = emu.send_voice(user_id=USER, data=voice_note, duration=3, **in_group)
        chat = emu.send_text(user_id=OTHER_USER, text="Ciao a tutti!", **in_group)
        emu.send_text(user_id=USER, text="Ciao!", reply_to=chat["message_id"], **in_group)
        emu.send_text(user_id=USER, text="Guardate https://youtu.be/dQw4w9WgXcQ", **in_group)

        # A voice note whose caption mentions the bot.
        mentioned = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, caption=f"@{emu.bot_username} grazie",
            **in_group,
        )  # fmt: skip
        replies = await bot.wait_reply(mentioned["message_id"], chat_id=GROUP)
        assert "treno" in replies[0].content.lower(), replies[0].content
        assert replies[0].reply_to == mentioned["message_id"]

        # /trascrivi as a reply to the voice note the bot ignored.
        command = emu.send_text(
            user_id=OTHER_USER, text="/trascrivi", reply_to=ignored["message_id"], **in_group
        )
        replies = await bot.wait_reply(ignored["message_id"], chat_id=GROUP)
        assert "treno" in replies[0].content.lower(), replies[0].content

        # Exactly the two addressed requests became jobs; nothing else got an answer.
        jobs = bot.jobs()
        assert [(job.user_message_id, job.status) for job in jobs] == [
            (mentioned["message_id"], JobStatus.DONE),
            (ignored["message_id"], JobStatus.DONE),
        ]
        answered = {m.reply_to for m in emu.messages(GROUP)}
        assert answered == {mentioned["message_id"], ignored["message_id"]}
        # Whoever typed /trascrivi asked for it, but the transcript (and its label) is
        # the note's author's (issue 18).
        stored = bot.transcription_by_reply(replies[0].message_id, chat_id=GROUP)
        assert stored is not None and stored.user_id == USER
        assert command["message_id"] > ignored["message_id"]
        assert bot.texts(USER) == [] and bot.texts(OTHER_USER) == []


async def test_a_note_asked_for_twice_is_transcribed_once(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    # Several members reply /trascrivi to the same note: each used to get its own job and
    # the group the same transcript again and again.
    in_group = {"chat_id": GROUP, "chat_type": "group"}
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        note = emu.send_voice(user_id=USER, data=voice_note, duration=3, **in_group)
        ask = {"text": "/trascrivi", "reply_to": note["message_id"], **in_group}
        emu.send_text(user_id=OTHER_USER, **ask)
        await bot.wait_reply(note["message_id"], chat_id=GROUP)
        emu.send_text(user_id=USER, **ask)
        await bot.wait_text(lambda t: t == messages.ALREADY_DONE, chat_id=GROUP)
        assert len(bot.jobs()) == 1
