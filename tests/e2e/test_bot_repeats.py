"""Instant repeats: audio the serving model already transcribed is answered from storage,
through the real bot over the Bot API emulator, and the model is never called for it."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.bot_harness import OTHER_USER, USER, is_status_text, running_bot
from tests.support.speech import synthesize

SENTENCE = "La biblioteca comunale è chiusa il lunedì mattina."
# Answered from storage: no download/decode/model; well under a second even here.
MAX_REPEAT_SECONDS = 1.0


class CountingTranscriber:
    """The real whisper-base, counting the calls that reach it."""

    def __init__(self, inner: Any) -> None:
        self._inner = inner
        self.calls = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def transcribe(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._inner.transcribe(*args, **kwargs)

    def transcribe_batch(self, *args: Any, **kwargs: Any) -> Any:
        self.calls += 1
        return self._inner.transcribe_batch(*args, **kwargs)


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "repeat.ogg").read_bytes()


def _final_text(bot: Any, message_id: int, chat_id: int) -> str:
    texts = [m.content for m in bot.emu.messages(chat_id) if m.message_id == message_id]
    assert texts and not is_status_text(texts[0]), texts
    return texts[0]


async def test_a_forwarded_note_and_the_same_audio_again_never_reach_the_model(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    model = CountingTranscriber(ct2_transcriber)
    async with running_bot(tmp_path, model) as bot:
        first = bot.emu.send_voice(user_id=USER, data=voice_note, duration=4)
        (reply,) = await bot.wait_reply(first["message_id"], timeout=90)
        original = _final_text(bot, reply.message_id, USER)
        assert model.calls == 1 and "#" in original

        # The same file forwarded by another user: not even downloaded again.
        downloads = len(bot.emu.calls_to("getFile"))
        started = time.monotonic()
        forwarded = bot.emu.send_voice(
            user_id=OTHER_USER, data=b"", duration=4, forward_of=first["voice"]["file_id"]
        )
        (again,) = await bot.wait_reply(forwarded["message_id"], chat_id=OTHER_USER)
        elapsed = time.monotonic() - started
        assert _final_text(bot, again.message_id, OTHER_USER) == original
        assert model.calls == 1
        assert len(bot.emu.calls_to("getFile")) == downloads
        assert elapsed < MAX_REPEAT_SECONDS, elapsed

        # The same audio uploaded anew (another file id): decoded, never transcribed.
        uploaded = bot.emu.send_voice(user_id=USER, data=voice_note, duration=4)
        (third,) = await bot.wait_reply(uploaded["message_id"])
        assert _final_text(bot, third.message_id, USER) == original
        assert model.calls == 1

        # The other user forwards it again and again: each is answered, and all their
        # answers are one row (copies of a long transcript per forward grew the database
        # without bound).
        for _ in range(3):
            more = bot.emu.send_voice(
                user_id=OTHER_USER, data=b"", duration=4, forward_of=first["voice"]["file_id"]
            )
            (last,) = await bot.wait_reply(more["message_id"], chat_id=OTHER_USER)

        # The forwards are one row, on the audio all rows share: a correction by the other
        # user is theirs alone, and any of their answers finds it.
        rows = bot.transcriptions()
        assert [row.user_id for row in rows] == [USER, OTHER_USER, USER]  # 3: uploaded anew
        assert len({row.audio_sha256 for row in rows}) == 1
        assert bot.transcription_by_reply(third.message_id).id == rows[2].id
        for answer in (again, last):
            found = bot.transcription_by_reply(answer.message_id, chat_id=OTHER_USER)
            assert found.id == rows[1].id
        assert len(bot.jobs()) == 6
        bot.emu.send_text(
            user_id=OTHER_USER, text=SENTENCE, reply_to=again.message_id, chat_id=OTHER_USER
        )
        await bot.wait_text(lambda t: "correzione" in t.lower(), chat_id=OTHER_USER)
        from storage import repository

        with bot.services.db.unit_of_work(read_only=True) as uow:
            assert repository.latest_correction(uow.session, rows[1].id) is not None
            assert repository.latest_correction(uow.session, rows[0].id) is None
            assert repository.latest_correction(uow.session, rows[2].id) is None


async def test_a_different_model_version_transcribes_again(
    tmp_path: Path, ct2_transcriber, voice_note: bytes
) -> None:
    model = CountingTranscriber(ct2_transcriber)
    async with running_bot(tmp_path, model) as bot:
        first = bot.emu.send_voice(user_id=USER, data=voice_note, duration=4)
        await bot.wait_reply(first["message_id"], timeout=90)
        from sqlalchemy import update

        from storage.models import Transcription

        with bot.services.db.unit_of_work() as uow:  # as if an older model had made it
            uow.session.execute(update(Transcription).values(model_version="old-model"))
            uow.commit()
        again = bot.emu.send_voice(
            user_id=USER, data=b"", duration=4, forward_of=first["voice"]["file_id"]
        )
        await bot.wait_reply(again["message_id"], timeout=90)
        assert model.calls == 2
