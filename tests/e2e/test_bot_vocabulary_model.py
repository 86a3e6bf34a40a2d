"""Corrections that help at once, with the real whisper-base on espeak speech: a rare place
name the model mishears comes out right in the user's next note once their correction
taught it, and not for another user who sends the very same audio."""

from __future__ import annotations

from pathlib import Path

from bot import messages
from model.asr.normalize import normalize_text
from tests.support.bot_harness import OTHER_USER, USER, running_bot
from tests.support.speech import synthesize

VOICE = "it+f2"
FIRST = "Domani saliamo a Valbondione per prendere i campioni."
NEXT = "Zanchettin dice che il sentiero per Valbondione è chiuso."
RARE = "valbondione"


async def test_a_taught_place_name_comes_out_right_only_for_its_user(
    tmp_path: Path, speech_dir: Path, ct2_transcriber
) -> None:
    first = synthesize(FIRST, speech_dir / "vocab_model_1.ogg", voice=VOICE).read_bytes()
    later = synthesize(NEXT, speech_dir / "vocab_model_2.ogg", voice=VOICE).read_bytes()
    async with running_bot(
        tmp_path, ct2_transcriber, tagger="off", personal_vocabulary=True
    ) as bot:
        emu = bot.emu
        sent = emu.send_voice(user_id=USER, data=first, duration=4)
        (reply,) = await bot.wait_reply(sent["message_id"], timeout=120)
        assert RARE not in normalize_text(reply.content)  # the base model mishears it
        correction = emu.send_text(user_id=USER, text=FIRST, reply_to=reply.message_id)
        await bot.wait_message(lambda m: m.message_id > correction["message_id"])
        assert bot.texts()[-1] == messages.CORRECTION_SAVED

        # Another user sends the later note first: the model still mishears the name...
        theirs = emu.send_voice(user_id=OTHER_USER, data=later, duration=4)
        (plain,) = await bot.wait_reply(theirs["message_id"], chat_id=OTHER_USER, timeout=120)
        assert RARE not in normalize_text(plain.content)
        # ...and the same audio from the user who taught it comes out right (decoded with
        # their words, not answered from the other user's stored transcript).
        mine = emu.send_voice(user_id=USER, data=later, duration=4)
        (personal,) = await bot.wait_reply(mine["message_id"], timeout=120)
        assert RARE in normalize_text(personal.content)
        assert not bot.errors
