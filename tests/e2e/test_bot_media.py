"""Every kind of media a user can send, and the media the bot must refuse, end to end."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from bot import messages
from model.asr.normalize import error_rates
from storage.models import JobStatus
from tests.support.bot_harness import GROUP, USER, is_status_text, running_bot
from tests.support.media_server import make_speech_mp4
from tests.support.speech import synthesize

SENTENCE = "Il treno per Milano parte alle otto e arriva a Roma nel pomeriggio."
GOOD_SENTENCE = "La pizza margherita è nata a Napoli."
# espeak speech + whisper-base greedy: words slip, characters mostly land.
MAX_CER = 0.4


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> dict[str, bytes]:
    """The same Italian sentence as an MP3, a WAV, an MP4 video; a short Opus voice note."""
    folder = speech_dir / "bot_media"
    silence = folder / "silence.ogg"
    folder.mkdir(parents=True, exist_ok=True)
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-f", "lavfi", "-i", "anullsrc=r=16000:cl=mono",
         "-t", "3", "-c:a", "libopus", str(silence)],
        check=True,
    )  # fmt: skip
    return {
        "mp3": synthesize(SENTENCE, folder / "sentence.mp3").read_bytes(),
        "wav": synthesize(SENTENCE, folder / "sentence.wav").read_bytes(),
        "mp4": make_speech_mp4(folder / "sentence.mp4", SENTENCE).read_bytes(),
        "voice": synthesize(GOOD_SENTENCE, folder / "good.ogg").read_bytes(),
        "silence": silence.read_bytes(),
    }


def _transcript_of(texts: list[str]) -> str:
    """The transcript part of the bot's reply (before the hashtags line)."""
    assert texts and not any(is_status_text(text) for text in texts), texts
    return "\n\n".join(texts).split("\n\n#")[0]


async def test_audio_video_video_note_and_audio_document_are_transcribed(
    tmp_path: Path, ct2_transcriber, clips: dict[str, bytes]
) -> None:
    # All four are queued at once: allow more than the default 3 pending jobs.
    async with running_bot(tmp_path, ct2_transcriber, max_pending_jobs_per_user=10) as bot:
        emu = bot.emu
        sent = {
            "audio": emu.send_audio(
                user_id=USER, data=clips["mp3"], duration=5, file_name="nota.mp3"
            ),
            "video": emu.send_video(user_id=USER, data=clips["mp4"], duration=5),
            "video_note": emu.send_video_note(user_id=USER, data=clips["mp4"], duration=5),
            "document": emu.send_document(
                user_id=USER, data=clips["wav"], file_name="registrazione", mime_type="audio/wav"
            ),
        }
        for kind, message in sent.items():
            replies = await bot.wait_reply(message["message_id"], timeout=60)
            transcript = _transcript_of([m.content for m in replies])
            assert error_rates([SENTENCE], [transcript]).cer < MAX_CER, (kind, transcript)
            stored = bot.transcription_by_reply(replies[0].message_id)
            assert stored is not None and stored.source_kind == kind, (kind, stored)
            assert stored.text.strip() and stored.audio_sha256
            assert bot.services.store.exists(stored.audio_sha256)
            assert 4.0 < (stored.audio_duration or 0) < 8.0, stored
        assert [job.status for job in bot.jobs()] == [JobStatus.DONE] * len(sent)
        assert len(emu.calls_to("sendChatAction")) >= len(sent)  # the typing action


async def test_document_that_is_not_audio_is_refused_in_italian(
    tmp_path: Path, ct2_transcriber
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        pdf = bot.emu.send_document(
            user_id=USER, data=b"%PDF-1.4\n%fake\n", file_name="fattura.pdf",
            mime_type="application/pdf",
        )  # fmt: skip
        refusal = await bot.wait_text(lambda t: t == messages.UNSUPPORTED_FILE)
        assert refusal
        note = bot.emu.send_document(
            user_id=USER, data=b"ciao", file_name="note.txt", mime_type="text/plain"
        )
        await bot.emu.async_wait_for(lambda: len(bot.texts()) == 2)
        assert bot.texts() == [messages.UNSUPPORTED_FILE] * 2
        assert [m.reply_to for m in bot.emu.messages(USER)] == [None, None]
        assert pdf["message_id"] < note["message_id"]
        assert bot.jobs() == [] and not bot.emu.calls_to("getFile")


async def test_photos_stickers_and_locations_are_answered_in_private_only(
    tmp_path: Path, fake_transcriber
) -> None:
    photo = [{"file_id": "ph", "file_unique_id": "uph", "width": 90, "height": 90}]
    sticker = {"file_id": "st", "file_unique_id": "ust", "type": "regular", "width": 512,
               "height": 512, "is_animated": False, "is_video": False}  # fmt: skip
    others = (
        {"photo": photo},
        {"sticker": sticker},
        {"location": {"latitude": 45.0, "longitude": 9.0}},
    )
    async with running_bot(tmp_path, fake_transcriber) as bot:
        for content in others:
            bot.emu.send_other(user_id=USER, content=content, chat_id=GROUP, chat_type="group")
        for content in others:
            bot.emu.send_other(user_id=USER, content=content)
        await bot.emu.async_wait_for(lambda: len(bot.texts()) == 3)
        assert bot.texts() == [messages.UNSUPPORTED_MESSAGE] * 3
        assert bot.texts(GROUP) == [] and bot.jobs() == []


async def test_bad_files_end_with_an_italian_error_and_the_bot_keeps_working(
    tmp_path: Path, ct2_transcriber, clips: dict[str, bytes]
) -> None:
    bad = {  # name -> (bytes, message); the name is also the job's error code
        "corrupt": (bytes(range(256)) * 40, messages.AUDIO_ERRORS["corrupt"]),
        "empty": (b"", messages.AUDIO_ERRORS["empty"]),
        "silent": (clips["silence"], messages.AUDIO_ERRORS["silent"]),
    }
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        for name, (data, expected) in bad.items():
            sent = bot.emu.send_voice(user_id=USER, data=data, duration=3)
            job = await bot.wait_job(sent["message_id"])
            assert job.status == JobStatus.FAILED, (name, job)
            (status,) = bot.replies_to(sent["message_id"])
            assert status.content == f"⚠️ {expected}", (name, status.content)
            assert job.error == name
            assert status.edit_history, "the status message was never shown"
        assert bot.transcriptions() == []

        good = bot.emu.send_voice(user_id=USER, data=clips["voice"], duration=3)
        replies = await bot.wait_reply(good["message_id"])
        transcript = _transcript_of([m.content for m in replies])
        assert error_rates([GOOD_SENTENCE], [transcript]).cer < MAX_CER, transcript
        assert [job.status for job in bot.jobs()] == [JobStatus.FAILED] * 3 + [JobStatus.DONE]


async def test_too_long_and_too_big_are_refused_from_metadata_before_any_download(
    tmp_path: Path, ct2_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(
        tmp_path, ct2_transcriber, max_audio_seconds=60.0, max_file_bytes=1_000_000
    ) as bot:
        bot.emu.send_voice(user_id=USER, data=clips["voice"], duration=61)
        long_text = await bot.wait_text(lambda t: "troppo lungo" in t)
        assert long_text == messages.AUDIO_TOO_LONG.format(max_duration="1 min")
        bot.emu.send_audio(
            user_id=USER, data=clips["mp3"], duration=5, file_size=1_000_001, file_name="a.mp3"
        )
        big_text = await bot.wait_text(lambda t: "troppo grande" in t)
        assert big_text == messages.FILE_TOO_BIG.format(max_mb="1")
        bot.emu.send_document(
            user_id=USER, data=clips["wav"], file_name="a.wav", mime_type="audio/wav",
            file_size=50 * 2**20,
        )  # fmt: skip
        await bot.emu.async_wait_for(lambda: len(bot.texts()) == 3)
        assert bot.texts()[2] == big_text
        assert not bot.emu.calls_to("getFile")
        assert bot.jobs() == []


async def test_reply_still_quotes_the_voice_note_when_the_queued_message_was_lost(
    tmp_path: Path, ct2_transcriber, clips: dict[str, bytes]
) -> None:
    async with running_bot(tmp_path, ct2_transcriber) as bot:
        # The "queued" status message fails; the worker then sends its own status message.
        bot.emu.fail_next("sendMessage", error_code=500, description="Internal Server Error")
        sent = bot.emu.send_voice(user_id=USER, data=clips["voice"], duration=3)
        (reply,) = await bot.wait_reply(sent["message_id"])
        assert reply.reply_to == sent["message_id"]
        assert "pizza" in reply.content.lower(), reply.content
        assert len(bot.emu.messages(USER)) == 1
