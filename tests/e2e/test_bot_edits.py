"""An edited message is not a new request. Telegram sends an edit as an
``edited_message`` update, which the bot receives (it subscribes to every update type):
an edited caption was transcribed again, an edited /rollback rolled back a second
version, an edited /help answered again. Edits of a correction still count (the newer
text is the correction: tests/e2e/test_bot_corrections.py)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from bot import messages
from model.asr.registry import ModelRegistry
from storage import repository
from tests.support.bot_harness import ADMIN, GROUP, USER, running_bot
from tests.support.fake_versions import install_fake_version
from tests.support.speech import synthesize


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize("Il treno parte alle otto.", speech_dir / "edits.ogg").read_bytes()


async def test_edited_notes_and_commands_are_not_asked_again(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, fake_transcriber, train_schedule_hours=0) as bot:
        emu = bot.emu
        registry = ModelRegistry(bot.services.settings.models_dir)
        for name, parent in (("v1", "base"), ("v2", "v1")):
            install_fake_version(registry, tmp_path, name, parent)
        registry.set_current("v2")
        emu.open_chat(user_id=ADMIN)
        rollback = emu.send_text(user_id=ADMIN, text="/rollback")
        await bot.wait_text(lambda t: "Torno al modello" in t, chat_id=ADMIN)
        note = emu.send_voice(user_id=USER, data=voice_note, duration=3, caption="nota")
        await bot.wait_reply(note["message_id"])
        shown = emu.send_text(user_id=USER, text="/help")
        await bot.wait_text(lambda t: t.startswith("Come funziona"))
        admin_texts, user_texts = len(bot.texts(ADMIN)), len(bot.texts(USER))

        emu.edit_message(rollback, text="/rollback ")
        emu.edit_message(note, caption="nota, modificata")
        emu.edit_message(shown, text="/help ")
        emu.send_text(user_id=USER, text="ciao")  # answered after the edits were handled
        await bot.wait_text(lambda t: t == messages.TEXT_HINT)
        await asyncio.sleep(0.5)  # (updates are handled concurrently)
        assert registry.current_name() == "v1"
        assert len(bot.jobs()) == 1
        assert len(bot.texts(ADMIN)) == admin_texts
        assert len(bot.texts(USER)) == user_texts + 1


async def test_an_edited_correction_is_the_latest_correction(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        note = emu.send_voice(user_id=USER, data=voice_note, duration=3)
        (reply,) = await bot.wait_reply(note["message_id"])
        fix = emu.send_text(
            user_id=USER, text="Il treno parte alle nove.", reply_to=reply.message_id
        )
        await emu.async_wait_for(lambda: bot.texts(USER).count(messages.CORRECTION_SAVED) == 1)
        emu.edit_message(fix, text="Il treno parte alle dieci.")
        await emu.async_wait_for(lambda: bot.texts(USER).count(messages.CORRECTION_SAVED) == 2)
        with bot.services.db.unit_of_work(read_only=True) as uow:
            latest = repository.latest_correction(uow.session, bot.transcriptions()[0].id)
            assert latest is not None and latest.text == "Il treno parte alle dieci."


async def test_an_edited_reply_is_no_new_request_unless_it_is_a_correction(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    """A reply holding a link (to any message) and a reply to someone's own message are
    answered once; their edits are not asked again."""
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        hello = emu.send_text(user_id=USER, text="ciao")
        await bot.wait_text(lambda t: t == messages.TEXT_HINT)
        link = emu.send_text(
            user_id=USER, text="https://vimeo.com/12345", reply_to=hello["message_id"]
        )
        refusal = messages.link_error("not_allowed_host")
        await bot.wait_text(lambda t: t == refusal)
        chat = emu.send_text(user_id=USER, text="e poi", reply_to=hello["message_id"])
        await bot.wait_text(lambda t: t == messages.CORRECTION_NOT_TRANSCRIPT)
        texts = len(bot.texts(USER))

        emu.edit_message(link, text="https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54")
        emu.edit_message(chat, text="e poi?")
        emu.send_text(user_id=USER, text="ciao")  # answered after the edits were handled
        await emu.async_wait_for(lambda: len(bot.texts(USER)) > texts)
        await asyncio.sleep(0.5)  # (updates are handled concurrently)
        assert bot.texts(USER)[texts:] == [messages.TEXT_HINT]
        assert bot.jobs() == []


async def test_a_command_deleted_before_the_answer_is_still_answered(
    tmp_path: Path, fake_transcriber
) -> None:
    # Groups often run a cleaner bot that deletes commands at once: the reply to a
    # vanished message failed ("message to be replied not found"), the group read
    # "errore imprevisto" and the admins got an alert.
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        sent = emu.send_text(user_id=USER, text="/help", chat_id=GROUP, chat_type="group")
        emu.delete_message(chat_id=GROUP, message_id=sent["message_id"])
        await bot.wait_text(lambda t: t.startswith("Come funziona"), chat_id=GROUP)
        assert messages.INTERNAL_ERROR not in bot.texts(GROUP)
