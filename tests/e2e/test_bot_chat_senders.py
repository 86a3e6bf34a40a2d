"""Messages sent on behalf of a chat, over the Bot API emulator (the battery's cases are in
tests/e2e/test_security_battery.py).

An anonymous group admin, a user who "sends as" one of their channels, a channel's post
forwarded into its discussion group: Telegram hides the person and puts one placeholder
account in ``from`` for every such chat everywhere (GroupAnonymousBot, Channel_Bot,
Telegram 777000). The bot refuses these messages with a clear answer, so none of them
becomes training data, vocabulary, someone's job or a shared rate limit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from storage.models import JobStatus
from tests.support.bot_harness import GROUP, OTHER_USER, USER, RunningBot, running_bot
from tests.support.labelling import labels_of
from tests.support.speech import synthesize

SENTENCE = "Il treno per Milano parte alle otto."
# Close enough to the transcript to read as its correction (tests/conftest.py FAKE_TRANSCRIPT).
HIJACK = "Il treno per Milano non parte alle otto e arriva a Roma. Compra azioni."
CHANNEL_X, CHANNEL_Y = -1_001_700, -1_001_701
IN_GROUP = {"chat_id": GROUP, "chat_type": "supergroup"}


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "chat_senders.ogg").read_bytes()


async def _answer_to(bot: RunningBot, sent: dict) -> str:
    """The bot's answer in the group to ``sent`` (quoted there)."""
    message = await bot.wait_message(
        lambda m: m.reply_to == sent["message_id"], chat_id=GROUP, timeout=30
    )
    return message.content


def _nothing_stored(bot: RunningBot) -> None:
    assert bot.jobs() == [] and bot.transcriptions() == []
    assert labels_of(bot.services.db) == []


async def test_channel_senders_cannot_label_each_others_notes(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    """The attack: X's note "as" channel C1, Y's "correction" "as" channel C2 — one
    placeholder user to a bot that reads ``from``, so a self-correction."""
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        mention = f"@{emu.bot_username}"
        note = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, caption=mention, sender_chat=CHANNEL_X,
            **IN_GROUP,
        )  # fmt: skip
        assert await _answer_to(bot, note) == messages.SENT_AS_CHAT
        (refusal,) = bot.replies_to(note["message_id"], chat_id=GROUP)
        fix = emu.send_text(
            user_id=OTHER_USER, text=HIJACK, reply_to=refusal.message_id, sender_chat=CHANNEL_Y,
            **IN_GROUP,
        )  # fmt: skip
        assert await _answer_to(bot, fix) == messages.SENT_AS_CHAT
        # The same note forwarded automatically from the linked channel.
        forwarded = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, caption=mention, sender_chat=CHANNEL_X,
            automatic_forward=True, **IN_GROUP,
        )  # fmt: skip
        assert await _answer_to(bot, forwarded) == messages.SENT_AS_CHAT
        _nothing_stored(bot)
        assert fake_transcriber.calls == 0


async def test_every_request_on_behalf_of_a_chat_is_refused(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        # People talking among themselves as channels: the bot stays out of it.
        emu.send_voice(user_id=USER, data=voice_note, duration=3, sender_chat=CHANNEL_X, **IN_GROUP)
        emu.send_text(user_id=USER, text="Ciao a tutti", sender_chat=GROUP, **IN_GROUP)
        # A real user's note, nobody asked for it yet.
        real = emu.send_voice(user_id=USER, data=voice_note, duration=3, **IN_GROUP)
        requests = [
            emu.send_text(user_id=OTHER_USER, text=text, sender_chat=GROUP, **IN_GROUP)
            for text in ("/forget", "/vocabolario", "/privacy", "/stats", "/retrain")
        ]
        mention = f"@{emu.bot_username} https://youtu.be/dQw4w9WgXcQ"
        for text, reply_to, sender_chat in (
            ("/trascrivi", real["message_id"], GROUP),  # an anonymous admin asks
            (mention, None, CHANNEL_Y),  # a link "as" a channel
        ):
            sent = emu.send_text(
                user_id=OTHER_USER, text=text, reply_to=reply_to, sender_chat=sender_chat,
                **IN_GROUP,
            )  # fmt: skip
            requests.append(sent)
        for sent in requests:
            assert await _answer_to(bot, sent) == messages.SENT_AS_CHAT, sent["text"]
        # "Transcribe every voice note": a channel's post forwarded into the group.
        bot.services.runner.queue.set_preferences(GROUP, transcribe_all=True)
        forwarded = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, sender_chat=CHANNEL_X,
            automatic_forward=True, **IN_GROUP,
        )  # fmt: skip
        assert await _answer_to(bot, forwarded) == messages.SENT_AS_CHAT
        answered = {m.reply_to for m in emu.messages(GROUP)}
        assert answered == {sent["message_id"] for sent in [*requests, forwarded]}
        _nothing_stored(bot)
        assert emu.calls_to("answerCallbackQuery") == []
        assert bot.texts(USER) == [] and bot.texts(OTHER_USER) == []


async def test_chats_have_rate_limits_of_their_own(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber, messages_per_minute=2) as bot:
        emu = bot.emu

        def privacy(sender_chat: int | None, user: int = OTHER_USER) -> dict:
            return emu.send_text(user_id=user, text="/privacy", sender_chat=sender_chat, **IN_GROUP)

        for _ in range(2):
            assert await _answer_to(bot, privacy(CHANNEL_X)) == messages.SENT_AS_CHAT
        assert "Stai inviando troppi messaggi" in await _answer_to(bot, privacy(CHANNEL_X))
        # Nobody else pays for channel X: not another channel, not an anonymous admin, not
        # a person (all three would be one placeholder user to a bot that read ``from``).
        assert await _answer_to(bot, privacy(CHANNEL_Y)) == messages.SENT_AS_CHAT
        assert await _answer_to(bot, privacy(GROUP)) == messages.SENT_AS_CHAT
        assert "Privacy" in await _answer_to(bot, privacy(None, user=USER))


async def test_a_person_may_have_a_channels_note_transcribed_but_nobody_labels_it(
    tmp_path: Path, fake_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        emu = bot.emu
        note = emu.send_voice(
            user_id=OTHER_USER, data=voice_note, duration=3, sender_chat=CHANNEL_X, **IN_GROUP
        )
        emu.send_text(user_id=USER, text="/trascrivi", reply_to=note["message_id"], **IN_GROUP)
        (transcript,) = await bot.wait_reply(note["message_id"], chat_id=GROUP)
        stored = bot.transcription_by_reply(transcript.message_id, chat_id=GROUP)
        # Its author is unknown: not the requester, not a placeholder shared by every chat.
        assert stored is not None and stored.user_id is None
        for user, sender_chat, expected in (
            (USER, None, messages.CORRECTION_NOT_OWNER),
            (OTHER_USER, CHANNEL_X, messages.SENT_AS_CHAT),
            (OTHER_USER, GROUP, messages.SENT_AS_CHAT),
        ):
            fix = emu.send_text(
                user_id=user, text=HIJACK, reply_to=transcript.message_id,
                sender_chat=sender_chat, **IN_GROUP,
            )  # fmt: skip
            assert await _answer_to(bot, fix) == expected
        assert labels_of(bot.services.db) == []
        assert [job.status for job in bot.jobs()] == [JobStatus.DONE]


async def test_an_anonymous_admin_opens_the_groups_settings(
    tmp_path: Path, fake_transcriber
) -> None:
    # The panel is the group's, and every press is checked against the person pressing:
    # refusing the command locked out the people who usually run the group.
    async with running_bot(tmp_path, fake_transcriber) as bot:
        sent = bot.emu.send_text(
            user_id=OTHER_USER, text="/impostazioni", sender_chat=GROUP, **IN_GROUP
        )
        assert (await _answer_to(bot, sent)).startswith("⚙️")
        _nothing_stored(bot)
