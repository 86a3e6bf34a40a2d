"""Issue 18: admin commands typed in a group answer the admin privately (the group hears
only that), and corrections and user commands share the per-user rate limit."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import messages
from model.asr.registry import ModelRegistry
from storage.models import Correction
from tests.support.bot_harness import ADMIN, GROUP, USER, running_bot
from tests.support.fake_versions import install_fake_version
from tests.support.speech import synthesize

IN_GROUP = {"chat_id": GROUP, "chat_type": "group"}
LIMIT = 3  # requests per user per minute in these tests
OTHER = USER + 1
RATE_LIMITED_PREFIX = messages.RATE_LIMITED.split("{")[0]


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    note = synthesize("Il treno per Milano parte alle otto.", speech_dir / "limits.ogg")
    return note.read_bytes()


async def test_admin_command_in_a_group_answers_in_private(tmp_path: Path, ct2_transcriber) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        emu.open_chat(user_id=ADMIN)  # the admin talked to the bot privately before
        for command in ("/contributors", "/stats"):
            emu.send_text(user_id=ADMIN, text=command, **IN_GROUP)
        await emu.async_wait_for(lambda: len(bot.texts(ADMIN)) == 2)
        # (Updates are handled concurrently: either answer may come first.)
        firsts = sorted(t.split()[0] for t in bot.texts(ADMIN))
        assert firsts == [messages.CONTRIBUTORS_EMPTY.split()[0], "Statistiche"]
        await emu.async_wait_for(lambda: len(emu.messages(GROUP)) == 2)
        group = [m.content for m in emu.messages(GROUP)]
        assert group == [messages.ADMIN_ANSWERED_PRIVATELY] * 2


async def test_admin_command_in_a_group_without_a_private_chat_shows_nothing(
    tmp_path: Path, ct2_transcriber
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        emu.send_text(user_id=ADMIN, text="/contributors", **IN_GROUP)
        await emu.async_wait_for(lambda: emu.messages(GROUP))
        assert [m.content for m in emu.messages(GROUP)] == [messages.ADMIN_PRIVATE_UNREACHABLE]


async def test_an_unreachable_admin_in_a_group_runs_nothing(
    tmp_path: Path, fake_transcriber
) -> None:
    """Told to open a private chat and repeat the command: it must not have run yet."""
    async with running_bot(tmp_path, fake_transcriber, train_schedule_hours=0) as bot:
        emu = bot.emu
        registry = ModelRegistry(bot.services.settings.models_dir)
        install_fake_version(registry, tmp_path, "v1", "base")
        install_fake_version(registry, tmp_path, "v2", "v1")
        registry.set_current("v2")
        emu.send_text(user_id=ADMIN, text="/rollback", **IN_GROUP)
        await emu.async_wait_for(lambda: emu.messages(GROUP))
        assert [m.content for m in emu.messages(GROUP)] == [messages.ADMIN_PRIVATE_UNREACHABLE]
        assert registry.current_name() == "v2"
        emu.open_chat(user_id=ADMIN)  # as told: /start in private, then the command again
        emu.send_text(user_id=ADMIN, text="/rollback", **IN_GROUP)
        await bot.wait_text(lambda t: "Torno al modello" in t, chat_id=ADMIN)
        assert registry.current_name() == "v1"


async def test_user_commands_share_the_rate_limit(tmp_path: Path, ct2_transcriber) -> None:
    async with running_bot(tmp_path, ct2_transcriber, messages_per_minute=LIMIT) as bot:
        emu = bot.emu
        for command in ("/help", "/privacy", "/start", "/help", "/forget", "/impostazioni"):
            emu.send_text(user_id=USER, text=command)
        await emu.async_wait_for(lambda: len(bot.texts(USER)) == LIMIT + 1)
        # Requests over the limit get one notice between them, not one each (in a group,
        # a notice per message was itself the flood), whatever kind they are.
        for refused in ("/trascrivi", "/vocabolario", "https://example.com/x", "ciao"):
            emu.send_text(user_id=USER, text=refused)
        emu.send_text(user_id=OTHER, text="/help")  # answered after the others were handled
        await emu.async_wait_for(lambda: bot.texts(OTHER))
        await asyncio.sleep(0.5)  # (updates are handled concurrently)
        limited = [t.startswith(RATE_LIMITED_PREFIX) for t in bot.texts(USER)]
        assert limited == [False] * LIMIT + [True]


async def test_corrections_share_the_rate_limit(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber, messages_per_minute=LIMIT) as bot:
        emu = bot.emu
        note = emu.send_voice(user_id=USER, data=voice_note, duration=3)  # request 1
        (reply,) = await bot.wait_reply(note["message_id"])
        answers = []
        for n in range(3):  # requests 2, 3, then one over the limit
            before = len(bot.texts(USER))
            fix = f"Il treno parte alle {n + 9}."
            emu.send_text(user_id=USER, text=fix, reply_to=reply.message_id)
            await emu.async_wait_for(lambda b=before: len(bot.texts(USER)) > b)
            answers.append(bot.texts(USER)[-1])
        assert answers[:2] == [messages.CORRECTION_SAVED] * 2
        assert answers[2].startswith(RATE_LIMITED_PREFIX)
        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert uow.session.query(Correction).count() == 2
