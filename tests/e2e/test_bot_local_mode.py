"""``WHISPER_IT_TELEGRAM_LOCAL_MODE``: with a local Bot API server, files over the cloud's
20 MB limit are accepted and read from the server's folder (PTB's local mode)."""

from __future__ import annotations

from pathlib import Path, PosixPath

import pytest

from bot import messages, pipeline
from bot.settings import LOCAL_MODE_MAX_FILE_BYTES, Settings
from model.asr.audio import decode_audio
from tests.support.bot_harness import USER, running_bot
from tests.support.speech import synthesize

SENTENCE = "La pizza margherita è nata a Napoli."
# Declared by Telegram's metadata: over the cloud Bot API's 20 MB, under the local 2000 MB.
BIG_FILE_BYTES = 300 * 1024 * 1024


@pytest.fixture(scope="module")
def voice_note(speech_dir: Path) -> bytes:
    return synthesize(SENTENCE, speech_dir / "local_mode.ogg").read_bytes()


def test_local_mode_raises_the_file_limit_unless_one_is_set() -> None:
    cloud = Settings(_env_file=None)
    local = Settings(_env_file=None, telegram_local_mode=True)
    chosen = Settings(_env_file=None, telegram_local_mode=True, max_file_bytes=50 * 2**20)
    assert cloud.max_file_bytes == 20 * 2**20
    assert local.max_file_bytes == LOCAL_MODE_MAX_FILE_BYTES
    assert chosen.max_file_bytes == 50 * 2**20


async def test_a_file_over_20_mb_is_transcribed_through_a_local_server(
    tmp_path: Path, ct2_transcriber, voice_note: bytes, monkeypatch: pytest.MonkeyPatch
) -> None:
    server_files = tmp_path / "telegram-bot-api"
    decoded: list[object] = []

    def recording_decode(source, **kwargs):
        decoded.append(source)
        return decode_audio(source, **kwargs)

    monkeypatch.setattr(pipeline, "decode_audio", recording_decode)
    async with running_bot(
        tmp_path / "cloud", ct2_transcriber
    ) as cloud:  # the cloud API: refused from the metadata
        sent = cloud.emu.send_voice(
            user_id=USER, data=voice_note, duration=3, file_size=BIG_FILE_BYTES
        )
        refusal = await cloud.wait_text(lambda t: "MB" in t)
        assert refusal == messages.FILE_TOO_BIG.format(max_mb="20")
        assert cloud.jobs() == [] and sent["message_id"]  # refused before any job

    async with running_bot(
        tmp_path / "local", ct2_transcriber, local_dir=server_files, telegram_local_mode=True
    ) as bot:
        sent = bot.emu.send_voice(
            user_id=USER, data=voice_note, duration=3, file_size=BIG_FILE_BYTES
        )
        (reply,) = await bot.wait_reply(sent["message_id"], timeout=90)
        assert "pizza margherita" in reply.content.lower(), reply.content
        # Read from the server's folder, not downloaded over HTTP, and in place: the
        # decoder opened the server's own file (a 2000 MB file was read into this
        # process's memory twice, then written to a temporary file again to be decoded).
        assert any(server_files.rglob("*.oga"))
        assert bot.app.bot.local_mode
        assert [type(source) for source in decoded] == [PosixPath], decoded
        assert decoded[0].is_relative_to(server_files.resolve()), decoded
