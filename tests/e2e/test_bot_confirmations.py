"""The "✅ Giusto" button (issue 19): under each transcript training could use, pressed by
the audio's sender only, it stores the transcript as a confirmed label, once; a later
correction replaces it, and /forget deletes it. Through the real bot and the Bot API
emulator, with a stand-in model (what it hears does not matter here)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest

from bot import messages
from bot.confirm_button import CONFIRM_LABEL, CONFIRM_PREFIX, CONFIRMED_LABEL
from model.asr.normalize import normalize_text
from storage import repository
from storage.models import LABEL_CONFIRMATION, LABEL_CORRECTION, SOURCE_YOUTUBE
from storage.samples import SplitPolicy, list_samples, uncorrected_share
from tests.support.bot_harness import OTHER_USER, USER, running_bot
from tests.support.media_server import VIDEO_NAME, MediaServer
from tests.support.worker_support import FakeTranscriber, SlowTagger, tone_wav

NOTE_SECONDS = 2.0
TAGS_LATE_BY = 5.0  # seconds: time to press ✅, or to /forget, before the tags come
FIX = "Il treno per Milano parte alle nove e arriva a Roma la sera."
POLICY = SplitPolicy(eval_fraction=0.1, sentence_key=normalize_text)


def _buttons(message: Any) -> list[dict[str, str]]:
    rows = (message.reply_markup or {}).get("inline_keyboard", [])
    return [button for row in rows for button in row]


def _labels(bot: Any, transcription_id: int) -> list[tuple[str, str]]:
    """(kind, text) of every label row of a transcription, oldest first."""
    with bot.services.db.unit_of_work(read_only=True) as uow:
        rows = repository.list_corrections(uow.session, transcription_id)
        return [(row.kind, row.text) for row in rows]


def _samples(bot: Any) -> list[Any]:
    with bot.services.db.unit_of_work(read_only=True) as uow:
        return list_samples(uow.session, policy=POLICY)


def _answers(bot: Any) -> list[dict[str, Any]]:
    return bot.emu.calls_to("answerCallbackQuery")


async def _press(bot: Any, user_id: int, message: Any, data: str, *, chat_id: int = USER) -> dict:
    """Press a button as ``user_id``; the bot's answer to that press."""
    before = len(_answers(bot))
    bot.emu.send_callback_query(
        user_id=user_id, chat_id=chat_id, message_id=message.message_id, data=data
    )
    await bot.emu.async_wait_for(lambda: len(_answers(bot)) > before, timeout=10)
    await asyncio.sleep(0.2)  # the markup edit that follows the answer
    return _answers(bot)[-1]


def _now(bot: Any, message: Any, chat_id: int = USER) -> Any:
    return next(m for m in bot.emu.messages(chat_id) if m.message_id == message.message_id)


async def test_the_sender_confirms_once_a_correction_replaces_it_and_forget_deletes_it(
    tmp_path: Path, fake_transcriber
) -> None:
    async with running_bot(tmp_path, fake_transcriber) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        (reply,) = await bot.wait_reply(sent["message_id"])
        stored = bot.transcription_by_reply(reply.message_id)
        assert stored is not None
        (button,) = _buttons(reply)
        assert button == {"text": CONFIRM_LABEL, "callback_data": f"{CONFIRM_PREFIX}{stored.id}"}
        data = button["callback_data"]

        # Someone else may not confirm it (in a group they would see the button).
        answer = await _press(bot, OTHER_USER, reply, data)
        assert answer["text"] == messages.CONFIRM_NOT_YOURS and answer["show_alert"] is True
        assert _labels(bot, stored.id) == []
        assert _buttons(_now(bot, reply))[0]["text"] == CONFIRM_LABEL

        # Its sender does: the transcript is a confirmed label, the button says so.
        answer = await _press(bot, USER, reply, data)
        assert answer["text"] == messages.CONFIRM_SAVED
        assert _labels(bot, stored.id) == [(LABEL_CONFIRMATION, stored.text)]
        assert [b["text"] for b in _buttons(_now(bot, reply))] == [CONFIRMED_LABEL]
        (sample,) = _samples(bot)
        assert (sample.text, sample.confirmed, sample.selected) == (stored.text, True, False)
        with bot.services.db.unit_of_work(read_only=True) as uow:
            # Confirmed is not corrected: the gate's share of uncorrected transcripts.
            assert uncorrected_share(uow.session) == 1.0

        # Twice stores once.
        answer = await _press(bot, USER, _now(bot, reply), data)
        assert answer["text"] == messages.CONFIRM_ALREADY
        assert len(_labels(bot, stored.id)) == 1

        # A later correction replaces the confirmation (the latest label wins).
        bot.emu.send_text(user_id=USER, text=FIX, reply_to=reply.message_id)
        await bot.wait_text(lambda t: t == messages.CORRECTION_SAVED)
        assert _labels(bot, stored.id) == [
            (LABEL_CONFIRMATION, stored.text),
            (LABEL_CORRECTION, FIX),
        ]
        (sample,) = _samples(bot)
        assert (sample.text, sample.confirmed, sample.selected) == (FIX, False, True)
        # ...and the button no longer confirms anything: it goes away.
        answer = await _press(bot, USER, _now(bot, reply), data)
        assert answer["text"] == messages.CONFIRM_CORRECTED
        assert len(_labels(bot, stored.id)) == 2
        assert _buttons(_now(bot, reply)) == []

        # /forget deletes confirmations with the rest.
        bot.emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        bot.emu.send_callback_query(user_id=USER, message_id=question.message_id, data=yes)
        await bot.wait_text(lambda t: t.startswith("🗑"))
        assert _labels(bot, stored.id) == [] and _samples(bot) == []
        answer = await _press(bot, USER, _now(bot, reply), data)
        assert answer["text"] == messages.CONFIRM_GONE


async def test_a_press_under_an_older_copy_does_not_undo_a_later_correction(
    tmp_path: Path, fake_transcriber
) -> None:
    """The same note sent twice: two replies, two buttons. After the user corrects the
    second, ✅ under the first is answered like a corrected transcript, stores nothing,
    and the correction stays the audio's label."""
    async with running_bot(tmp_path, fake_transcriber) as bot:
        note = tone_wav(NOTE_SECONDS)
        replies = []
        for _ in range(2):
            sent = bot.emu.send_voice(user_id=USER, data=note, duration=2)
            replies.append((await bot.wait_reply(sent["message_id"]))[-1])
        first, second = (bot.transcription_by_reply(r.message_id) for r in replies)
        assert first is not None and second is not None
        assert first.audio_sha256 == second.audio_sha256 and first.id != second.id

        bot.emu.send_text(user_id=USER, text=FIX, reply_to=replies[1].message_id)
        await bot.wait_text(lambda t: t == messages.CORRECTION_SAVED)
        (button,) = _buttons(_now(bot, replies[0]))
        answer = await _press(bot, USER, _now(bot, replies[0]), button["callback_data"])
        assert answer["text"] == messages.CONFIRM_CORRECTED
        assert _labels(bot, first.id) == []
        (sample,) = _samples(bot)
        assert (sample.text, sample.confirmed, sample.selected) == (FIX, False, True)
        assert not bot.errors


async def test_the_button_follows_the_transcript_and_repeats(tmp_path: Path) -> None:
    """Split over several messages: under the last one. As a .txt file: under the file, and
    pressing it there confirms. A repeat answered from storage gets its own button (the
    other sender's own row). Audio longer than training takes: no button."""
    long_text = " ".join(f"Questa è la frase numero {n} della nota vocale." for n in range(12))
    model = FakeTranscriber(text=long_text)
    async with running_bot(tmp_path, model, max_message_chars=200) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        replies = await bot.wait_reply(sent["message_id"])
        assert len(replies) > 2
        assert [bool(_buttons(m)) for m in replies] == [False] * (len(replies) - 1) + [True]
        first = bot.transcription_by_reply(replies[0].message_id)
        assert first is not None
        (button,) = _buttons(replies[-1])
        assert button["callback_data"] == f"{CONFIRM_PREFIX}{first.id}"

        # The same file forwarded by someone else: answered from storage, with a button
        # for their own transcription row, which only they may press.
        forwarded = bot.emu.send_voice(
            user_id=OTHER_USER, data=b"", duration=2, forward_of=sent["voice"]["file_id"]
        )
        theirs = await bot.wait_reply(forwarded["message_id"], chat_id=OTHER_USER)
        assert model.calls == 1  # not transcribed again
        (their_button,) = _buttons(theirs[-1])
        second = bot.transcription_by_reply(theirs[0].message_id, chat_id=OTHER_USER)
        assert second is not None and second.id != first.id
        assert their_button["callback_data"] == f"{CONFIRM_PREFIX}{second.id}"
        answer = await _press(
            bot, OTHER_USER, theirs[-1], their_button["callback_data"], chat_id=OTHER_USER
        )
        assert answer["text"] == messages.CONFIRM_SAVED
        assert _labels(bot, second.id) == [(LABEL_CONFIRMATION, long_text)]
        assert _labels(bot, first.id) == []

        # Too long for training: no button (corrections of it are kept for evaluation).
        long_note = bot.emu.send_voice(user_id=USER, data=tone_wav(35.0), duration=35)
        long_replies = await bot.wait_reply(long_note["message_id"], timeout=120)
        assert long_replies and not any(_buttons(m) for m in long_replies)

    async with running_bot(tmp_path / "file", model, long_text_as_file_chars=100) as bot:
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        (document,) = await bot.wait_reply(sent["message_id"])
        assert document.content.startswith("📄")
        stored = bot.transcription_by_reply(document.message_id)
        assert stored is not None
        (button,) = _buttons(document)
        answer = await _press(bot, USER, document, button["callback_data"])
        assert answer["text"] == messages.CONFIRM_SAVED
        assert _labels(bot, stored.id) == [(LABEL_CONFIRMATION, long_text)]
        assert [b["text"] for b in _buttons(_now(bot, document))] == [CONFIRMED_LABEL]


async def test_late_hashtags_keep_the_button(tmp_path: Path, fake_transcriber) -> None:
    async with running_bot(tmp_path, fake_transcriber, tag_budget_seconds=0.1) as bot:
        pipeline = bot.services.pipeline
        pipeline.tagger = SlowTagger(pipeline.tagger, delay=1.0)
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        (reply,) = await bot.wait_reply(sent["message_id"])
        tagged = await bot.wait_message(
            lambda m: m.message_id == reply.message_id and "#" in m.content, timeout=30
        )
        assert tagged.edit_history  # sent without tags first, then edited
        assert [b["text"] for b in _buttons(tagged)] == [CONFIRM_LABEL]


async def test_late_hashtags_keep_a_pressed_button_pressed_and_skip_a_forgotten_reply(
    tmp_path: Path, fake_transcriber
) -> None:
    """Tags that arrive after the user pressed ✅ leave "✅ Confermata" (they put "✅ Giusto"
    back); tags of a transcript deleted by /forget meanwhile are not shown at all."""
    async with running_bot(tmp_path, fake_transcriber, tag_budget_seconds=0.1) as bot:
        pipeline = bot.services.pipeline
        pipeline.tagger = SlowTagger(pipeline.tagger, delay=TAGS_LATE_BY)
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        (reply,) = await bot.wait_reply(sent["message_id"])
        (button,) = _buttons(reply)
        assert (await _press(bot, USER, reply, button["callback_data"]))["text"] == (
            messages.CONFIRM_SAVED
        )
        tagged = await bot.wait_message(
            lambda m: m.message_id == reply.message_id and "#" in m.content, timeout=30
        )
        assert [b["text"] for b in _buttons(tagged)] == [CONFIRMED_LABEL]

        fake_transcriber.text = FIX  # (tags of a text already tagged come at once)
        again = bot.emu.send_voice(
            user_id=USER, data=tone_wav(NOTE_SECONDS, frequency=660.0), duration=2
        )
        (second,) = await bot.wait_reply(again["message_id"])
        started = asyncio.get_running_loop().time()
        bot.emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
        bot.emu.send_callback_query(user_id=USER, message_id=question.message_id, data=yes)
        await bot.wait_text(lambda t: t.startswith("🗑"))
        assert asyncio.get_running_loop().time() - started < TAGS_LATE_BY  # before the tags
        await asyncio.sleep(TAGS_LATE_BY + 1)  # past the tagger's delay
        assert _now(bot, second).content == second.content and "#" not in second.content


@pytest.mark.parametrize("form", ["txt", "long"])
async def test_late_hashtags_reach_a_files_caption(tmp_path: Path, form: str) -> None:
    """The .txt form, and a transcript too long for messages: the tags go into the
    document's caption when they come late (they were dropped)."""
    text = " ".join([FIX] * (1 if form == "txt" else 60))
    async with running_bot(
        tmp_path, FakeTranscriber(text=text), tag_budget_seconds=0.1, long_text_as_file_chars=2000
    ) as bot:
        pipeline = bot.services.pipeline
        pipeline.tagger = SlowTagger(pipeline.tagger, delay=1.0)
        if form == "txt":
            bot.services.runner.queue.set_preferences(USER, output="txt")
        sent = bot.emu.send_voice(user_id=USER, data=tone_wav(NOTE_SECONDS), duration=2)
        (reply,) = await bot.wait_reply(sent["message_id"])
        assert reply.document is not None and "#" not in reply.content
        tagged = await bot.wait_message(
            lambda m: m.message_id == reply.message_id and "#" in m.content, timeout=30
        )
        assert "#milano" in tagged.content.lower()
        assert [b["text"] for b in _buttons(tagged)] == [CONFIRM_LABEL]


async def test_a_short_link_gets_the_button_on_its_transcript_not_its_subtitles(
    tmp_path: Path, fake_transcriber, media_server: MediaServer
) -> None:
    """A link's audio (a short video here) is confirmable like a voice note when training
    could use it: the button goes under the transcript, not under the .srt file."""
    async with running_bot(
        tmp_path, fake_transcriber, allowed_url_hosts=["127.0.0.1"], tag_budget_seconds=0.1
    ) as bot:
        pipeline = bot.services.pipeline
        pipeline.tagger = SlowTagger(pipeline.tagger, delay=1.0)
        sent = bot.emu.send_text(user_id=USER, text=media_server.url(VIDEO_NAME))
        replies = await bot.wait_reply(sent["message_id"], timeout=90)
        text, srt = replies
        assert srt.content.startswith("🎞")
        assert not _buttons(srt)
        # Late hashtags go into the transcript's text, not the .srt (they were dropped).
        text = await bot.wait_message(
            lambda m: m.message_id == text.message_id and "#" in m.content, timeout=30
        )
        stored = bot.transcription_by_reply(text.message_id)
        assert stored is not None and stored.source_kind == SOURCE_YOUTUBE
        (button,) = _buttons(text)
        answer = await _press(bot, USER, text, button["callback_data"])
        assert answer["text"] == messages.CONFIRM_SAVED
        assert _labels(bot, stored.id) == [(LABEL_CONFIRMATION, stored.text)]
