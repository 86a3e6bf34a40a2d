"""Corrections by reply: what is stored, and the friendly answers to everything else."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from storage import repository
from tests.support.bot_harness import GROUP, OTHER_USER, USER, running_bot
from tests.support.speech import synthesize

SENTENCE = "Mi piace leggere un libro la sera."
SECOND_FIX = "Mi piace leggere un bel libro la sera."
THIRD_FIX = "Mi piace leggere un buon libro la sera."
MAX_CORRECTION_CHARS = 200


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "bot_corrections.ogg").read_bytes()


def _corrections(bot, transcription_id: int) -> list[str]:
    with bot.services.db.unit_of_work(read_only=True) as uow:
        return [c.text for c in repository.list_corrections(uow.session, transcription_id)]


def _latest(bot, transcription_id: int) -> str | None:
    with bot.services.db.unit_of_work(read_only=True) as uow:
        latest = repository.latest_correction(uow.session, transcription_id)
        return None if latest is None else latest.text


async def test_corrections_latest_wins_and_every_other_reply_is_explained(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(
        tmp_path,
        ct2_transcriber,
        max_correction_chars=MAX_CORRECTION_CHARS,
        messages_per_minute=30,  # a dozen replies in a row here
    ) as bot:
        emu = bot.emu
        sent = emu.send_voice(user_id=USER, data=voice_note, duration=3)
        (reply,) = await bot.wait_reply(sent["message_id"])
        stored = bot.transcription_by_reply(reply.message_id)
        assert stored is not None

        async def answer_to(text: str, reply_to: int) -> str:
            """The bot's one new message after the user replies ``text`` to ``reply_to``."""
            before = len(emu.messages(USER))
            emu.send_text(user_id=USER, text=text, reply_to=reply_to)
            await emu.async_wait_for(lambda: len(emu.messages(USER)) > before, timeout=10)
            new = emu.messages(USER)[before:]
            assert len(new) == 1, new
            return new[0].content

        # The identical text (up to case and punctuation) is not a correction.
        same = stored.text.upper().rstrip(".") + "!"
        assert await answer_to(same, reply.message_id) == messages.CORRECTION_UNCHANGED
        assert _corrections(bot, stored.id) == []

        # Two corrections: both kept, the latest counts.
        assert await answer_to(SECOND_FIX, reply.message_id) == messages.CORRECTION_SAVED
        assert await answer_to(THIRD_FIX, reply.message_id) == messages.CORRECTION_SAVED
        assert _corrections(bot, stored.id) == [SECOND_FIX, THIRD_FIX]
        assert _latest(bot, stored.id) == THIRD_FIX
        # "Unchanged" is judged against the latest correction, not the transcript.
        assert await answer_to(THIRD_FIX, reply.message_id) == messages.CORRECTION_UNCHANGED

        # No word at all (an emoji, punctuation): nothing to train on.
        for wordless in ("👍", "...?!"):
            assert await answer_to(wordless, reply.message_id) == messages.CORRECTION_EMPTY
        # A link, even one the bot refuses, is a link: its refusal, never a label.
        for link, reason in (
            ("https://www.youtube.com/playlist?list=PL590L5WQmH8fJ54F369BLDSqIwcs", "playlist"),
            ("https://vimeo.com/12345", "not_allowed_host"),
        ):
            assert await answer_to(link, reply.message_id) == messages.link_error(reason)

        # Too long.
        too_long = await answer_to("parola " * 40, reply.message_id)
        assert too_long == messages.CORRECTION_TOO_LONG.format(max_chars=MAX_CORRECTION_CHARS)

        # A reply to a bot message that is not a transcript (the /help answer).
        emu.send_text(user_id=USER, text="/help")
        help_message = await bot.wait_message(lambda m: "Come funziona" in m.content)
        not_transcript = await answer_to("Testo corretto.", help_message.message_id)
        assert not_transcript == messages.CORRECTION_NOT_TRANSCRIPT

        # In private, a reply to one's own message.
        own = emu.send_text(user_id=USER, text="Un mio messaggio qualunque.")
        await bot.wait_message(lambda m: m.content == messages.TEXT_HINT)
        assert await answer_to("Correggo me stesso.", own["message_id"]) == (
            messages.CORRECTION_NOT_TRANSCRIPT
        )

        assert _corrections(bot, stored.id) == [SECOND_FIX, THIRD_FIX]
        assert len(bot.transcriptions()) == 1


async def test_group_correction_by_someone_else_is_refused(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        sent = emu.send_voice(
            user_id=USER, data=voice_note, duration=3, chat_id=GROUP, chat_type="group",
            caption=f"@{emu.bot_username}",
        )  # fmt: skip
        (reply,) = await bot.wait_reply(sent["message_id"], chat_id=GROUP)
        stored = bot.transcription_by_reply(reply.message_id, chat_id=GROUP)
        assert stored is not None and stored.user_id == USER

        intruder = emu.send_text(
            user_id=OTHER_USER, text=SECOND_FIX, chat_id=GROUP, chat_type="group",
            reply_to=reply.message_id,
        )  # fmt: skip
        refusal = await bot.wait_message(
            lambda m: m.reply_to == intruder["message_id"], chat_id=GROUP
        )
        assert refusal.content == messages.CORRECTION_NOT_OWNER
        assert _corrections(bot, stored.id) == []

        owner = emu.send_text(
            user_id=USER, text=SECOND_FIX, chat_id=GROUP, chat_type="group",
            reply_to=reply.message_id,
        )  # fmt: skip
        thanks = await bot.wait_message(lambda m: m.reply_to == owner["message_id"], chat_id=GROUP)
        assert thanks.content == messages.CORRECTION_SAVED
        assert _corrections(bot, stored.id) == [SECOND_FIX]

        # Replies unlike the transcript are people answering the speaker: the bot keeps
        # out of it, whoever writes, and stores nothing.
        answered = len(bot.texts(GROUP))
        for who, chatter in ((OTHER_USER, "Vero, anche io!"), (USER, "ahahah ci vediamo domani")):
            emu.send_text(user_id=who, text=chatter, chat_id=GROUP, chat_type="group",
                          reply_to=reply.message_id)  # fmt: skip
        # A correction unlike the transcript (a garbled one) counts when it mentions the bot.
        forced = emu.send_text(
            user_id=USER, text=f"@{emu.bot_username} Stasera leggo un giallo.", chat_id=GROUP,
            chat_type="group", reply_to=reply.message_id,
        )  # fmt: skip
        thanks = await bot.wait_message(lambda m: m.reply_to == forced["message_id"], chat_id=GROUP)
        assert thanks.content == messages.CORRECTION_SAVED
        assert len(bot.texts(GROUP)) == answered + 1
        assert _corrections(bot, stored.id) == [SECOND_FIX, "Stasera leggo un giallo."]
