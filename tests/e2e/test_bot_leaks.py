"""Issue 18, the smaller leaks, each driven through the bot and the Bot API emulator:

- /forget answers the same counts whether or not someone else sent the same recording;
- /forget's buttons answer only the user who asked (in a group anyone sees them);
- the labeller of a ``/trascrivi`` job is the note's author: another group member, or
  whoever forwarded the note, labels nothing.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from storage.samples import list_samples
from tests.support.bot_harness import GROUP, OTHER_USER, USER, RunningBot, running_bot
from tests.support.labelling import SPLIT
from tests.support.speech import synthesize

THIRD_USER = 1003
IN_GROUP = {"chat_id": GROUP, "chat_type": "group"}
AUTHOR_FIX = "Il treno per Milano parte alle otto e un quarto."
# A poisoned "correction": close enough to the transcript to read as one (a reply unlike it
# is conversation in a group, and gets no answer at all).
MEMBER_FIX = "Il treno per Milano non parte alle otto: compra le azioni."


@pytest.fixture(scope="module")
def notes(speech_dir: Path) -> list[bytes]:
    texts = ("Il treno per Milano parte alle otto.", "La pizza margherita è nata a Napoli.")
    return [
        synthesize(text, speech_dir / f"bot_leaks_{n}.ogg").read_bytes()
        for n, text in enumerate(texts)
    ]


def _labels(bot: RunningBot) -> list[tuple[int, str]]:
    with bot.services.db.unit_of_work(read_only=True) as uow:
        return [(sample.user_id, sample.text) for sample in list_samples(uow.session, policy=SPLIT)]


async def _forget(bot: RunningBot, user_id: int) -> str:
    bot.emu.send_text(user_id=user_id, text="/forget")
    question = await bot.wait_message(
        lambda m: m.content.startswith("Vuoi davvero"), chat_id=user_id
    )
    yes = question.reply_markup["inline_keyboard"][0][0]["callback_data"]
    bot.emu.send_callback_query(user_id=user_id, message_id=question.message_id, data=yes)
    return await bot.wait_text(lambda t: t.startswith("🗑"), chat_id=user_id)


async def _correct(bot: RunningBot, user_id: int, reply_to: int, text: str, **chat) -> str:
    sent = bot.emu.send_text(user_id=user_id, text=text, reply_to=reply_to, **chat)
    chat_id = chat.get("chat_id", user_id)
    answer = await bot.wait_message(lambda m: m.reply_to == sent["message_id"], chat_id=chat_id)
    return answer.content


async def test_forget_reply_does_not_tell_who_else_sent_the_same_audio(
    tmp_path: Path, ct2_transcriber, notes: list[bytes]
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        # USER's recording was also sent by OTHER_USER; THIRD_USER's by nobody else.
        shared = emu.send_voice(user_id=USER, data=notes[0], duration=3)
        again = emu.send_voice(user_id=OTHER_USER, data=notes[0], duration=3)
        alone = emu.send_voice(user_id=THIRD_USER, data=notes[1], duration=3)
        await bot.wait_reply(shared["message_id"])
        await bot.wait_reply(again["message_id"], chat_id=OTHER_USER)
        await bot.wait_reply(alone["message_id"], chat_id=THIRD_USER)

        shared_answer = await _forget(bot, USER)
        alone_answer = await _forget(bot, THIRD_USER)
        assert shared_answer == alone_answer
        assert shared_answer == messages.FORGET_DONE.format(
            transcriptions=1, corrections=0, audio=1
        )
        # (The shared file itself stays for OTHER_USER.)
        (kept,) = bot.transcriptions()
        assert kept.user_id == OTHER_USER and bot.services.store.exists(kept.audio_sha256)


async def test_forget_buttons_answer_only_the_user_who_asked(
    tmp_path: Path, ct2_transcriber, notes: list[bytes]
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        own = emu.send_voice(user_id=OTHER_USER, data=notes[1], duration=3)
        await bot.wait_reply(own["message_id"], chat_id=OTHER_USER)
        emu.send_text(user_id=USER, text="/forget", **IN_GROUP)
        question = await bot.wait_message(
            lambda m: m.content.startswith("Vuoi davvero"), chat_id=GROUP
        )
        yes, no = (b["callback_data"] for b in question.reply_markup["inline_keyboard"][0])
        for data in (yes, no):  # another member presses them
            emu.send_callback_query(
                user_id=OTHER_USER, message_id=question.message_id, data=data, chat_id=GROUP
            )
        await emu.async_wait_for(lambda: len(emu.calls_to("answerCallbackQuery")) == 2)
        refusals = emu.calls_to("answerCallbackQuery")
        assert {call.get("text") for call in refusals} == {messages.FORGET_NOT_YOURS}
        assert all(call.get("show_alert") for call in refusals)
        # Nothing was deleted (OTHER_USER's own data included) and the question stands.
        assert [t.user_id for t in bot.transcriptions()] == [OTHER_USER]
        current = next(m for m in emu.messages(GROUP) if m.message_id == question.message_id)
        assert current.content == question.content and current.reply_markup is not None
        # The asker's own press works.
        emu.send_callback_query(
            user_id=USER, message_id=question.message_id, data=no, chat_id=GROUP
        )
        await bot.wait_text(lambda t: t == messages.FORGET_CANCELLED, chat_id=GROUP)


async def test_trascrivi_in_a_group_is_labelled_by_the_notes_author(
    tmp_path: Path, ct2_transcriber, notes: list[bytes]
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        note = emu.send_voice(user_id=USER, data=notes[0], duration=3, **IN_GROUP)
        ask = {"text": "/trascrivi", "reply_to": note["message_id"], **IN_GROUP}
        emu.send_text(user_id=OTHER_USER, **ask)
        (reply,) = await bot.wait_reply(note["message_id"], chat_id=GROUP)
        stored = bot.transcription_by_reply(reply.message_id, chat_id=GROUP)
        assert stored is not None and stored.user_id == USER  # the author's, not the asker's
        answer = await _correct(bot, OTHER_USER, reply.message_id, MEMBER_FIX, **IN_GROUP)
        assert answer == messages.CORRECTION_NOT_OWNER
        answer = await _correct(bot, USER, reply.message_id, AUTHOR_FIX, **IN_GROUP)
        assert answer == messages.CORRECTION_SAVED
        assert _labels(bot) == [(USER, AUTHOR_FIX)]


@pytest.mark.parametrize("origin", ["user", "hidden_user"])
async def test_trascrivi_on_a_forward_is_not_labelled_by_the_forwarder(
    tmp_path: Path, ct2_transcriber, notes: list[bytes], origin: str
) -> None:
    forward = (
        {"type": "user", "date": 1, "sender_user": {"id": USER, "is_bot": False, "first_name": "A"}}
        if origin == "user"
        else {"type": "hidden_user", "date": 1, "sender_user_name": "Anonimo"}
    )
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        emu = bot.emu
        note = emu.send_voice(
            user_id=OTHER_USER, data=notes[0], duration=3, forward_origin=forward, **IN_GROUP
        )
        ask = {"text": "/trascrivi", "reply_to": note["message_id"], **IN_GROUP}
        emu.send_text(user_id=OTHER_USER, **ask)
        (reply,) = await bot.wait_reply(note["message_id"], chat_id=GROUP)
        stored = bot.transcription_by_reply(reply.message_id, chat_id=GROUP)
        assert stored is not None
        assert stored.user_id == (USER if origin == "user" else None)
        answer = await _correct(bot, OTHER_USER, reply.message_id, MEMBER_FIX, **IN_GROUP)
        assert answer == messages.CORRECTION_NOT_OWNER
        assert _labels(bot) == []
