"""/impostazioni through the real bot over the Bot API emulator: buttons pressed edit the
same message, and the next voice note comes back in the chosen form (real whisper-base,
real espeak speech); in groups, "trascrivi tutto" and the administrators' lock."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot import messages
from model.asr.normalize import error_rates
from tests.support.bot_harness import ADMIN, GROUP, OTHER_USER, USER, running_bot
from tests.support.speech import synthesize

SENTENCE = "Il treno per Milano parte alle otto e arriva a Roma nel pomeriggio."
IN_GROUP = {"chat_id": GROUP, "chat_type": "group"}


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "preferences.ogg").read_bytes()


def _transcribed(text: str) -> bool:
    """``text`` is the note's transcript: a few words wrong at most (the int8 decoding of
    synthetic speech differs by CPU: "Milano" was read as "terminano" on one)."""
    return error_rates([SENTENCE], [text.split("\n\n#")[0]]).wer < 0.5


def _buttons(message: Any) -> dict[str, str]:
    """Button data by label."""
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return {button["text"]: button["callback_data"] for row in rows for button in row}


def _data(message: Any, fragment: str) -> str:
    return next(data for label, data in _buttons(message).items() if fragment in label)


async def _settings_message(bot: Any, **where: Any) -> Any:
    chat_id = where.get("chat_id", USER)
    sent = bot.emu.send_text(user_id=USER, text="/impostazioni", **where)
    return await bot.wait_message(
        lambda m: m.content.startswith("⚙️") and m.message_id > sent["message_id"],
        chat_id=chat_id,
    )


async def _press(
    bot: Any, message: Any, fragment: str, *, user_id: int = USER, chat_id: int = USER
):
    answers = len(bot.emu.calls_to("answerCallbackQuery"))
    bot.emu.send_callback_query(
        user_id=user_id,
        chat_id=chat_id,
        message_id=message.message_id,
        data=_data(message, fragment),
    )
    await bot.emu.async_wait_for(lambda: len(bot.emu.calls_to("answerCallbackQuery")) > answers)
    answer = bot.emu.calls_to("answerCallbackQuery")[-1]
    now = next(m for m in bot.emu.messages(chat_id) if m.message_id == message.message_id)
    return now, answer


async def _reply_to_voice(bot: Any, voice_note: bytes, **where: Any) -> Any:
    chat_id = where.get("chat_id", USER)
    sent = bot.emu.send_voice(user_id=USER, data=voice_note, duration=5, **where)
    (reply,) = await bot.wait_reply(sent["message_id"], chat_id=chat_id, timeout=90)
    return reply


async def test_each_output_form_and_hashtags_off_in_a_private_chat(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        panel = await _settings_message(bot)
        assert "Formato della trascrizione: testo" in panel.content
        assert "Trascrivi tutto" not in " ".join(_buttons(panel))  # groups only

        panel, answer = await _press(bot, panel, "sottotitoli .srt")
        assert answer["text"] == messages.SETTINGS_SAVED
        assert "✅ sottotitoli .srt" in _buttons(panel) and "sottotitoli .srt" in panel.content
        reply = await _reply_to_voice(bot, voice_note)
        assert reply.document is not None and reply.document.name.endswith(".srt")
        srt = reply.document.data.decode()
        assert "-->" in srt and "milano" in srt.lower(), srt
        assert "#" in (reply.caption or "")  # the hashtags ride in the caption

        panel, _ = await _press(bot, panel, "sottotitoli .vtt")
        reply = await _reply_to_voice(bot, voice_note)
        vtt = reply.document.data.decode()
        assert reply.document.name.endswith(".vtt") and vtt.startswith("WEBVTT\n\n"), vtt
        assert "00:00:00.000 -->" in vtt

        panel, _ = await _press(bot, panel, "testo con i tempi")
        reply = await _reply_to_voice(bot, voice_note)
        assert reply.document is None and reply.content.startswith("[00:00] "), reply.content

        panel, _ = await _press(bot, panel, "file .txt")
        reply = await _reply_to_voice(bot, voice_note)
        assert reply.document.name.endswith(".txt")
        assert _transcribed(reply.document.data.decode())

        panel, _ = await _press(bot, panel, "Hashtag")
        assert "Hashtag: no" in _buttons(panel)
        panel, _ = await _press(bot, panel, "✅ file .txt")  # pressing the chosen one: no change
        panel, _ = await _press(bot, panel, "testo")
        reply = await _reply_to_voice(bot, voice_note)
        assert reply.document is None and "#" not in reply.content and _transcribed(reply.content)

        # A correction still works on a reply in a chosen form (it is the user's own row).
        assert bot.transcription_by_reply(reply.message_id) is not None


async def test_groups_transcribe_every_voice_note_and_admins_can_lock_the_settings(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        ignored = bot.emu.send_voice(user_id=USER, data=voice_note, duration=5, **IN_GROUP)
        bot.emu.set_member_status(chat_id=GROUP, user_id=ADMIN, status="administrator")
        panel = await _settings_message(bot, **IN_GROUP)
        panel, _ = await _press(bot, panel, "Trascrivi tutto", chat_id=GROUP)
        assert "Trascrivi tutto: sì" in _buttons(panel)
        reply = await _reply_to_voice(bot, voice_note, **IN_GROUP)
        assert _transcribed(reply.content), reply.content
        # The note sent before, not addressed to the bot, was left alone.
        assert bot.replies_to(ignored["message_id"], chat_id=GROUP) == []

        # Only an administrator may lock; then only administrators change anything.
        unchanged, answer = await _press(
            bot, panel, "Solo admin", user_id=OTHER_USER, chat_id=GROUP
        )
        assert answer["text"] == messages.SETTINGS_ONLY_ADMINS and answer["show_alert"]
        assert "Solo admin: no" in _buttons(unchanged)
        panel, _ = await _press(bot, panel, "Solo admin", user_id=ADMIN, chat_id=GROUP)
        assert "Solo admin: sì" in _buttons(panel)
        _, answer = await _press(bot, panel, "Hashtag", user_id=OTHER_USER, chat_id=GROUP)
        assert answer["text"] == messages.SETTINGS_ONLY_ADMINS
        panel, answer = await _press(bot, panel, "Hashtag", user_id=ADMIN, chat_id=GROUP)
        assert answer["text"] == messages.SETTINGS_SAVED and "Hashtag: no" in _buttons(panel)
        await asyncio.sleep(0)


async def test_settings_presses_are_limited_apart_from_requests(
    tmp_path: Path, fake_transcriber
) -> None:
    # Each press writes the setting and edits the message: 30 presses were 30 edits (in a
    # group, past Telegram's per-group budget). Limited in their own bucket, so choosing
    # settings does not use up the user's requests.
    async with running_bot(tmp_path, fake_transcriber, messages_per_minute=3) as bot:
        panel = await _settings_message(bot)  # request 1
        answers = [(await _press(bot, panel, "Hashtag"))[1]["text"] for _ in range(4)]
        assert answers[:3] == [messages.SETTINGS_SAVED] * 3
        assert answers[3].startswith(messages.RATE_LIMITED.split("{")[0])
        bot.emu.send_text(user_id=USER, text="/help")  # request 2: still allowed
        await bot.wait_text(lambda t: t.startswith("Come funziona"))
