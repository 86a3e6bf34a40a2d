"""Which decoding path uses voice-activity detection (benchmarks/results/vad_notes.md):
past one window the batched pipeline (VAD built in); a one-window note that wants timings
goes sequentially with faster-whisper's VAD filter; an explicit batch size is respected."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from bot.model_holder import ModelHolder
from bot.pipeline import PipelineLimits, TranscriptionPipeline
from model.asr.audio import SAMPLE_RATE, AudioLimits, DecodedAudio
from model.asr.transcription import TranscribeOptions
from model.media.youtube import DownloadLimits
from tests.support.worker_support import FakeTranscriber


@dataclass
class RecordingTranscriber(FakeTranscriber):
    seen: list[TranscribeOptions] = field(default_factory=list)

    def transcribe(self, audio, *, options=None, progress=None):
        self.seen.append(options)
        return super().transcribe(audio, options=options, progress=progress)


def _pipeline(model: RecordingTranscriber) -> TranscriptionPipeline:
    return TranscriptionPipeline(
        models=ModelHolder(lambda _spec: model, lambda: "fake"),  # type: ignore[arg-type]
        limits=PipelineLimits(
            audio=AudioLimits(), download=DownloadLimits(max_seconds=60, max_bytes=2**20)
        ),
        options=TranscribeOptions(),
    )


def _audio(seconds: float) -> DecodedAudio:
    samples = np.zeros(int(seconds * SAMPLE_RATE), np.float32)
    return DecodedAudio(samples=samples, duration=seconds)


def test_vad_on_every_automatic_path_that_decodes_with_timings() -> None:
    model = RecordingTranscriber()
    pipeline = _pipeline(model)
    pipeline.transcribe(_audio(20), short_path=False)  # a timed one-window note
    pipeline.transcribe(_audio(45), short_path=False)  # 30-60 s: the batched pipeline
    pipeline.transcribe(_audio(20), short_path=False, chunk_batch=0)  # asked for plainly
    timed, long, plain = model.seen
    assert timed.chunk_batch == 0 and timed.vad_filter
    assert long.chunk_batch > 0  # faster-whisper's batched pipeline always splits on VAD
    assert plain.chunk_batch == 0 and not plain.vad_filter
