"""Corrections that help at once (issue 21), through the real bot over the Bot API emulator:
a user's corrected words reach the model with that user's next note and nobody else's;
/vocabolario shows and clears them; /forget deletes them; instant repeats never hand one
user's personalised transcript to another; hostile correction text stays harmless.

The model here is a stand-in that records the options it was given and writes the
hotwords it received into its transcript, so that a leak would be visible to the user."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest

from bot import messages
from model.asr.transcription import Segment, Transcription
from storage import vocabulary
from tests.support.bot_harness import GROUP, OTHER_USER, USER, running_bot
from tests.support.speech import synthesize
from tests.support.worker_support import FakeTranscriber, tone_wav

HEARD = "buongiorno a tutti"
CORRECTION = "Buongiorno a tutti da Zanchettin, a Valbondione."
TAUGHT = "Zanchettin Valbondione"  # in the order written; "da", "a" are stop words
SENTENCES = (
    "Il treno per Milano parte alle otto.",
    "La pizza margherita è nata a Napoli.",
    "Domani andiamo al mare con gli amici.",
    "Il museo apre alle nove.",
)
# A user here sends more than the default per-minute limit allows.
BUSY = {"messages_per_minute": 100, "personal_vocabulary": True}  # (off by default)


@dataclass
class EchoingTranscriber(FakeTranscriber):
    """The fixed text, followed by the hotwords it was given (if any)."""

    text: str = HEARD

    def transcribe(self, audio, *, options=None, progress=None) -> Transcription:
        result = super().transcribe(audio, options=options, progress=progress)
        if not result.options.hotwords:
            return result
        text = f"{result.text} {result.options.hotwords}"
        return replace(result, text=text, segments=(Segment(0.0, result.duration, text),))


@pytest.fixture(scope="module")
def notes(speech_dir: Path) -> list[bytes]:
    return [
        synthesize(text, speech_dir / f"vocabulary_{n}.ogg").read_bytes()
        for n, text in enumerate(SENTENCES)
    ]


async def _transcribe(bot: Any, note: bytes, user: int = USER, **extra: Any) -> Any:
    sent = bot.emu.send_voice(user_id=user, data=note, duration=3, **extra)
    (reply,) = await bot.wait_reply(sent["message_id"], chat_id=user, timeout=60)
    return sent, reply


async def _correct(bot: Any, reply: Any, text: str, user: int = USER) -> str:
    """Reply with a correction; the bot's answer to it."""
    sent = bot.emu.send_text(user_id=user, text=text, reply_to=reply.message_id, chat_id=user)
    answer = await bot.wait_message(
        lambda m: m.reply_to == sent["message_id"] or m.message_id > sent["message_id"],
        chat_id=user,
    )
    return answer.content


def _stored_words(bot: Any, user: int) -> list[str]:
    with bot.services.db.unit_of_work(read_only=True) as uow:
        return vocabulary.words(uow.session, user, limit=100)


async def test_a_correction_biases_that_users_next_note_and_nobody_elses(
    tmp_path: Path, notes: list[bytes]
) -> None:
    model = EchoingTranscriber()
    async with running_bot(tmp_path, model, **BUSY) as bot:
        _sent, first = await _transcribe(bot, notes[0])
        assert model.options_seen[-1].hotwords is None and first.content.startswith(HEARD)
        assert await _correct(bot, first, CORRECTION) == messages.CORRECTION_SAVED

        _sent, second = await _transcribe(bot, notes[1])
        assert model.options_seen[-1].hotwords == TAUGHT
        assert TAUGHT in second.content

        _sent, theirs = await _transcribe(bot, notes[2], user=OTHER_USER)
        assert model.options_seen[-1].hotwords is None
        assert "Zanchettin" not in theirs.content
        assert _stored_words(bot, OTHER_USER) == []
        assert not bot.errors


async def test_vocabolario_shows_and_clears_and_forget_deletes(
    tmp_path: Path, notes: list[bytes]
) -> None:
    model = EchoingTranscriber()
    async with running_bot(tmp_path, model, **BUSY) as bot:
        emu = bot.emu
        emu.send_text(user_id=USER, text="/vocabolario")
        assert await bot.wait_text(lambda t: t.startswith("📖")) == messages.VOCABULARY_EMPTY

        _sent, reply = await _transcribe(bot, notes[0])
        await _correct(bot, reply, CORRECTION)
        emu.send_text(user_id=USER, text="/vocabolario")
        shown = await bot.wait_message(lambda m: "le più recenti prima" in m.content)
        assert "Zanchettin, Valbondione" in shown.content and "(2 parole" in shown.content
        (button,) = shown.reply_markup["inline_keyboard"][0]
        assert button["text"] == messages.VOCABULARY_CLEAR_BUTTON

        # Someone else cannot press it; its owner can.
        emu.send_callback_query(
            user_id=OTHER_USER,
            chat_id=USER,
            message_id=shown.message_id,
            data=button["callback_data"],
        )
        await emu.async_wait_for(lambda: len(emu.calls_to("answerCallbackQuery")) == 1)
        assert emu.calls_to("answerCallbackQuery")[-1]["text"] == messages.VOCABULARY_NOT_YOURS
        assert _stored_words(bot, USER) == ["Zanchettin", "Valbondione"]
        emu.send_callback_query(
            user_id=USER, message_id=shown.message_id, data=button["callback_data"]
        )
        await bot.wait_text(lambda t: t == messages.VOCABULARY_CLEARED.format(count=2))
        assert _stored_words(bot, USER) == []
        # The corrections stay (training data); the next note is unbiased.
        with bot.services.db.unit_of_work(read_only=True) as uow:
            from storage.models import Correction

            assert uow.session.query(Correction).count() == 1
        await _transcribe(bot, notes[1])
        assert model.options_seen[-1].hotwords is None

        # "/vocabolario cancella" clears too; a group gets no list of anyone's words.
        _sent, reply = await _transcribe(bot, notes[2])
        await _correct(bot, reply, f"{HEARD} Scognamiglio")
        emu.send_text(user_id=USER, text="/vocabolario cancella")
        await bot.wait_text(lambda t: t == messages.VOCABULARY_CLEARED.format(count=1))
        emu.send_text(user_id=USER, text="/vocabolario", chat_id=GROUP, chat_type="group")
        await bot.wait_text(lambda t: t == messages.VOCABULARY_PRIVATE_ONLY, chat_id=GROUP)

        # /forget deletes the words with everything else.
        _sent, reply = await _transcribe(bot, notes[3])
        await _correct(bot, reply, f"{HEARD} Pozzuoli")
        assert _stored_words(bot, USER) == ["Pozzuoli"]
        emu.send_text(user_id=USER, text="/privacy")
        privacy = await bot.wait_text(lambda t: t.startswith("Privacy"))
        assert "/vocabolario" in privacy
        emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        emu.send_callback_query(user_id=USER, message_id=question.message_id, data=yes)
        await bot.wait_text(lambda t: t.startswith("🗑 Fatto"))
        assert _stored_words(bot, USER) == []
        assert not bot.errors


def _job_hotwords(bot: Any, user: int) -> list[str | None]:
    """The words each of ``user``'s stored jobs carries in its payload, oldest first."""
    from sqlalchemy import select

    from storage.models import Job

    with bot.services.db.unit_of_work(read_only=True) as uow:
        found = uow.session.scalars(select(Job).where(Job.user_id == user).order_by(Job.id))
        return [job.payload.get("hotwords") for job in found]


async def test_clearing_the_vocabulary_leaves_no_copy_in_the_jobs(tmp_path: Path) -> None:
    """A note sent with the words keeps them in its job's payload; "Vocabolario
    cancellato" removes that copy too (finished jobs stay until retention), and /forget
    deletes the jobs."""
    async with running_bot(tmp_path, EchoingTranscriber(), **BUSY) as bot:
        _sent, reply = await _transcribe(bot, tone_wav(2.0))
        await _correct(bot, reply, CORRECTION)
        await _transcribe(bot, tone_wav(2.5))
        assert _job_hotwords(bot, USER) == [None, TAUGHT]
        bot.emu.send_text(user_id=USER, text="/vocabolario cancella")
        await bot.wait_text(lambda t: t == messages.VOCABULARY_CLEARED.format(count=2))
        assert _job_hotwords(bot, USER) == [None, None]

        bot.emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        bot.emu.send_callback_query(user_id=USER, message_id=question.message_id, data=yes)
        await bot.wait_text(lambda t: t.startswith("🗑 Fatto"))
        assert _job_hotwords(bot, USER) == []
        assert not bot.errors


async def test_instant_repeats_never_cross_users_with_personalised_transcripts(
    tmp_path: Path, notes: list[bytes]
) -> None:
    model = EchoingTranscriber()
    async with running_bot(tmp_path, model, **BUSY) as bot:
        _sent, reply = await _transcribe(bot, notes[0])
        await _correct(bot, reply, CORRECTION)

        # USER's note, decoded with USER's words.
        sent, mine = await _transcribe(bot, notes[1])
        assert TAUGHT in mine.content and model.calls == 2
        # The same file forwarded by OTHER_USER: decoded again, without USER's words.
        forwarded = {"forward_of": sent["voice"]["file_id"]}
        _fwd, theirs = await _transcribe(bot, b"", user=OTHER_USER, **forwarded)
        assert "Zanchettin" not in theirs.content and model.calls == 3
        assert model.options_seen[-1].hotwords is None
        # USER uploads the same audio again: answered from storage, same words, no model.
        _again, repeat = await _transcribe(bot, notes[1])
        assert repeat.content == mine.content and model.calls == 3
        # OTHER_USER again: their own plain transcript is reused, still no words of USER's.
        _fwd, again = await _transcribe(bot, b"", user=OTHER_USER, **forwarded)
        assert again.content == theirs.content and model.calls == 3
        rows = bot.transcriptions()
        # (Their second forward of the same file is their first row again, not a copy.)
        assert [row.user_id for row in rows[1:]] == [USER, OTHER_USER, USER]
        assert bot.transcription_by_reply(again.message_id, chat_id=OTHER_USER).id == rows[2].id
        assert not bot.errors


async def test_hostile_correction_text_is_bounded_and_never_markup(
    tmp_path: Path, notes: list[bytes]
) -> None:
    model = EchoingTranscriber()
    async with running_bot(tmp_path, model, personal_vocabulary_size=4, **BUSY) as bot:
        _sent, reply = await _transcribe(bot, notes[0])
        long_word = "Supercalifragilistichespiralidosoeancora"  # over 32 characters
        hostile = f'{HEARD} <b>Grassetto</b> <a href="#x">Collegamento</a> {long_word}'
        assert await _correct(bot, reply, hostile) == messages.CORRECTION_SAVED
        refused = await _correct(bot, reply, f"{HEARD} <|en|> Pippo")
        assert "<|endoftext|>" in refused  # messages.CORRECTION_CONTROL_TOKEN, as shown
        many = " ".join(f"Nome{chr(ord('a') + i)}" for i in range(10))
        await _correct(bot, reply, f"{HEARD} {many}")
        words = _stored_words(bot, USER)
        assert words == ["Nomea", "Nomeb", "Nomec", "Nomed"]  # the cap: newest 4
        bot.emu.send_text(user_id=USER, text="/vocabolario")
        shown = await bot.wait_message(lambda m: "le più recenti prima" in m.content)
        assert "Nomea, Nomeb, Nomec, Nomed" in shown.content
        # Only the bot's own bold title is markup; no link, no word over the length cap.
        assert [entity["type"] for entity in shown.entities] == ["bold"]
        assert long_word not in shown.content and "Pippo" not in shown.content

        # Earlier words of the hostile correction, before the cap pushed them out.
        bot.emu.send_text(user_id=USER, text="/vocabolario cancella")
        await bot.wait_text(lambda t: t.startswith("🗑 Vocabolario"))
        await _correct(bot, reply, hostile)
        bot.emu.send_text(user_id=USER, text="/vocabolario")
        shown = await bot.wait_message(
            lambda m: "le più recenti prima" in m.content and "Grassetto" in m.content
        )
        assert "Grassetto, href, Collegamento" in shown.content
        assert [entity["type"] for entity in shown.entities] == ["bold"]
        assert not bot.errors


async def test_off_by_default_nothing_is_learnt_or_used(tmp_path: Path, notes: list[bytes]) -> None:
    model = EchoingTranscriber()
    async with running_bot(tmp_path, model) as bot:
        _sent, reply = await _transcribe(bot, notes[0])
        assert await _correct(bot, reply, CORRECTION) == messages.CORRECTION_SAVED
        assert _stored_words(bot, USER) == []
        await _transcribe(bot, notes[1])
        assert model.options_seen[-1].hotwords is None
        bot.emu.send_text(user_id=USER, text="/vocabolario")
        await bot.wait_text(lambda t: t == messages.VOCABULARY_OFF)
        bot.emu.send_text(user_id=USER, text="/privacy")
        privacy = await bot.wait_text(lambda t: t.startswith("Privacy"))
        assert "/vocabolario" not in privacy and "/forget" in privacy
        assert not bot.errors
