"""/privacy tells what is kept; /forget deletes it after a confirmation."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot import messages
from tests.support.bot_harness import OTHER_USER, USER, running_bot
from tests.support.speech import synthesize

RETENTION_DAYS = 7


@pytest.fixture(scope="module")
def voice_notes(speech_dir: Path) -> list[bytes]:
    texts = ("Il treno per Milano parte alle otto.", "La pizza margherita è nata a Napoli.")
    return [
        synthesize(text, speech_dir / f"bot_privacy_{n}.ogg").read_bytes()
        for n, text in enumerate(texts)
    ]


async def test_privacy_and_forget_with_confirmation(
    tmp_path: Path, fake_transcriber, voice_notes: list[bytes]
) -> None:
    async with running_bot(tmp_path, fake_transcriber, retention_days=RETENTION_DAYS) as bot:
        emu = bot.emu
        emu.send_text(user_id=USER, text="/privacy")
        privacy = await bot.wait_text(lambda t: t.startswith("Privacy"))
        assert f"dopo {RETENTION_DAYS} giorni" in privacy and "/forget" in privacy
        # What /forget means for the weights is said plainly.
        assert "riparte dal modello di base" in privacy
        assert "non tornano più in servizio, nemmeno con /rollback" in privacy

        # Two users, each with a transcript; USER also corrects theirs.
        mine = emu.send_voice(user_id=USER, data=voice_notes[0], duration=3)
        theirs = emu.send_voice(user_id=OTHER_USER, data=voice_notes[1], duration=3)
        (reply,) = await bot.wait_reply(mine["message_id"])
        await bot.wait_reply(theirs["message_id"], chat_id=OTHER_USER)
        emu.send_text(user_id=USER, text="Il treno parte alle nove.", reply_to=reply.message_id)
        await bot.wait_text(lambda t: t == messages.CORRECTION_SAVED)
        # (Updates are handled concurrently: either job may have been recorded first.)
        by_user = {row.user_id: row for row in bot.transcriptions()}
        own, other = by_user[USER], by_user[OTHER_USER]
        assert bot.services.store.exists(own.audio_sha256)

        # "No" keeps everything.
        emu.send_text(user_id=USER, text="/forget")
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        buttons = question.reply_markup["inline_keyboard"][0]
        assert [b["text"] for b in buttons] == [messages.FORGET_YES, messages.FORGET_NO]
        emu.send_callback_query(
            user_id=USER, message_id=question.message_id, data=buttons[1]["callback_data"]
        )
        await bot.wait_text(lambda t: t == messages.FORGET_CANCELLED)
        assert len(bot.transcriptions()) == 2

        # An open training run's manifest lists both users' clips.
        manifest = bot.services.training.runs_dir / "run-0009" / "train.tsv"
        manifest.parent.mkdir(parents=True)
        manifest.write_text(
            f"audio/{own.audio_sha256}.flac\tIl treno parte alle nove.\n"
            f"audio/{other.audio_sha256}.flac\t{other.text}\n",
            encoding="utf-8",
        )

        # "Yes" deletes this user's rows and audio, and nobody else's.
        emu.send_text(user_id=USER, text="/forget")
        # The first question was edited into "Ok, non ho cancellato niente": a new one.
        question = await bot.wait_message(lambda m: m.content.startswith("Vuoi davvero"))
        emu.send_callback_query(
            user_id=USER, message_id=question.message_id, data=buttons[0]["callback_data"]
        )
        done = await bot.wait_text(lambda t: t.startswith("🗑"))
        assert done == messages.FORGET_DONE.format(transcriptions=1, corrections=1, audio=1)
        assert emu.messages(USER)[-1].reply_markup is None  # the buttons are gone
        assert [row.id for row in bot.transcriptions()] == [other.id]
        assert not bot.services.store.exists(own.audio_sha256)
        assert bot.services.store.exists(other.audio_sha256)
        assert [job.user_message_id for job in bot.jobs()] == [theirs["message_id"]]
        assert bot.transcription_by_reply(reply.message_id) is None
        # ...and their correction is gone from the run's manifest too.
        assert manifest.read_text(encoding="utf-8").splitlines() == [
            f"audio/{other.audio_sha256}.flac\t{other.text}"
        ]
        # The transcript message is no longer a handle for corrections.
        emu.send_text(user_id=USER, text="Ancora una correzione.", reply_to=reply.message_id)
        await bot.wait_text(lambda t: t == messages.CORRECTION_NOT_TRANSCRIPT)
        assert len(emu.calls_to("answerCallbackQuery")) == 2
