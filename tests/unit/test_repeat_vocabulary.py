"""A repeat decoded with a user's vocabulary is found again with that vocabulary, however
long: the engine cuts a long one to the prompt's size, and the stored key was the cut
words' while the lookup used the words asked for, so the repeat was never found."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from pathlib import Path

from bot.job_payloads import TelegramFileJob
from model.asr.transcription import Transcription
from storage.models import Job, JobStatus
from tests.support.fake_bot_api import FakeBotApi
from tests.support.worker_support import FakeTranscriber, build_rig, tone_wav

USER = 42
VOCABULARY = ", ".join(f"Nome{n}" for n in range(60))


@dataclasses.dataclass
class CuttingTranscriber(FakeTranscriber):
    """Decodes with the first few hotwords only, as the real engine's ``bounded`` does."""

    def transcribe(self, audio, *, options=None, progress=None) -> Transcription:
        result = super().transcribe(audio, options=options, progress=progress)
        cut = dataclasses.replace(result.options, hotwords=", ".join(VOCABULARY.split(", ")[:5]))
        return dataclasses.replace(result, options=cut)


async def test_a_repeat_with_a_long_vocabulary_is_answered_from_storage(tmp_path: Path) -> None:
    transcriber = CuttingTranscriber(text="Nome3 e Nome40 sono arrivati")
    rig = build_rig(tmp_path, transcriber)
    api = FakeBotApi()
    api.add_file("nota", tone_wav(frequency=610.0))
    payload = TelegramFileJob("voice", "nota", "u-nota", duration=1.5, hotwords=VOCABULARY)
    await rig.runner.start(api.bot())
    try:
        for message_id in (1, 2):
            submitted = await rig.runner.submit(
                payload, user_id=USER, chat_id=USER, user_message_id=message_id
            )
            deadline = time.monotonic() + 10
            while True:
                with rig.db.unit_of_work(read_only=True) as uow:
                    job = uow.session.get(Job, submitted.job_id)
                    if job is not None and job.status == JobStatus.DONE:
                        break
                assert time.monotonic() < deadline
                await asyncio.sleep(0.02)
    finally:
        await rig.runner.stop()
    assert transcriber.calls == 1
