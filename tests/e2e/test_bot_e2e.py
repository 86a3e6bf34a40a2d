"""The real bot, through python-telegram-bot's HTTP stack, against the Bot API emulator."""

from __future__ import annotations

from pathlib import Path

import pytest

from model.asr.normalize import error_rates
from storage import repository
from tests.support.bot_harness import USER, running_bot
from tests.support.speech import synthesize

SENTENCE = "Domani andiamo al mare con gli amici e poi mangiamo un gelato in centro."


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "bot_voice.ogg").read_bytes()


async def test_voice_note_gets_a_transcript_with_hashtags_and_a_correction_is_stored(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=voice_note, duration=5)
        transcript = await bot.wait_text(lambda t: "#" in t, timeout=30)
        assert error_rates([SENTENCE], [transcript.split("\n\n")[0]]).wer < 0.5, transcript
        reply = next(m for m in bot.emu.messages(USER) if m.content == transcript)
        # The status message became the transcript, replying to the user's voice note.
        assert reply.reply_to == sent["message_id"]
        assert reply.edit_history, "the status message was never shown"
        with bot.services.db.unit_of_work(read_only=True) as uow:
            row = repository.find_transcription_by_reply(
                uow.session, chat_id=USER, message_id=reply.message_id
            )
            assert row is not None and row.source_kind == "voice"
            assert row.audio_sha256 and bot.services.store.exists(row.audio_sha256)

        bot.emu.send_text(user_id=USER, text=SENTENCE, reply_to=reply.message_id)
        await bot.wait_text(lambda t: "correzione" in t.lower())
        with bot.services.db.unit_of_work(read_only=True) as uow:
            latest = repository.latest_correction(uow.session, row.id)
            assert latest is not None and latest.text == SENTENCE


class _SlowTagger:
    """The keyword tagger behind a delay, standing in for text2tags on a busy CPU."""

    def __init__(self, delay: float) -> None:
        from model.tagging.keywords import KeywordTagger

        self._inner = KeywordTagger(max_tags=5)
        self.name = "slow-keywords"
        self.delay = delay

    def tags(self, text: str) -> list[str]:
        import time

        time.sleep(self.delay)
        return self._inner.tags(text)


async def test_slow_tags_do_not_hold_back_the_transcript(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    async with running_bot(tmp_path, ct2_transcriber, tag_budget_seconds=0.1) as bot:
        bot.services.pipeline.tagger = _SlowTagger(delay=2.0)
        sent = bot.emu.send_voice(user_id=USER, data=voice_note, duration=5)
        transcript = await bot.wait_text(lambda t: "#" in t, timeout=60)
        reply = next(m for m in bot.emu.messages(USER) if m.content == transcript)
        assert reply.reply_to == sent["message_id"]
        # The transcript went out without tags first; the tags were edited in afterwards.
        untagged = [text for text in reply.edit_history if "#" not in text]
        assert any(error_rates([SENTENCE], [t]).wer < 0.6 for t in untagged), reply.edit_history
        with bot.services.db.unit_of_work(read_only=True) as uow:
            row = repository.find_transcription_by_reply(
                uow.session, chat_id=USER, message_id=reply.message_id
            )
            assert row is not None and row.tags and all(t.startswith("#") for t in row.tags)
