"""Small real stand-ins for the worker's unit tests: a fake transcriber and tagger, WAV
bytes with a tone, and a runner wired to a real SQLite database and the fake Bot API."""

from __future__ import annotations

import io
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soundfile

from bot.delivery import DeliveryOptions
from bot.model_holder import ModelHolder
from bot.pipeline import PipelineLimits, TranscriptionPipeline
from bot.work_queue import QueueLimits, WorkQueue
from bot.worker import JobRunner, WorkerOptions
from model.asr.audio import SAMPLE_RATE, AudioLimits
from model.asr.engines import Segment, TranscribeOptions, Transcription
from model.media.youtube import DownloadLimits
from storage.audio_store import AudioStore
from storage.unit_of_work import Database


def tone_wav(seconds: float = 1.5, *, frequency: float = 440.0) -> bytes:
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    samples = (0.3 * np.sin(2 * np.pi * frequency * t)).astype(np.float32)
    buffer = io.BytesIO()
    soundfile.write(buffer, samples, SAMPLE_RATE, format="WAV", subtype="PCM_16")
    return buffer.getvalue()


@dataclass
class FakeTranscriber:
    """Answers ``text`` (or raises ``error``); counts its calls."""

    text: str = "buongiorno a tutti"
    error: Exception | None = None
    delay: float = 0.0
    model_name: str = "fake-model"
    engine: str = "ct2"
    calls: int = 0
    batches: list[int] = field(default_factory=list)

    def transcribe(self, audio, *, options=None, progress=None) -> Transcription:
        options = options or TranscribeOptions()
        self.calls += 1
        if self.delay:
            time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        duration = audio.size / SAMPLE_RATE
        return Transcription(
            text=self.text,
            segments=(Segment(0.0, duration, self.text),),
            language=options.language,
            duration=duration,
            model=self.model_name,
            engine="ct2",
            elapsed=0.01,
            options=options,
        )

    def transcribe_batch(self, clips, *, options=None) -> list[Transcription | Exception]:
        self.batches.append(len(clips))
        results: list[Transcription | Exception] = []
        for clip in clips:
            try:
                results.append(self.transcribe(clip, options=options))
            except Exception as exc:
                results.append(exc)
        return results


@dataclass
class FakeTagger:
    name: str = "fake-tags"
    delay: float = 0.0
    started: threading.Event = field(default_factory=threading.Event)

    def tags(self, text: str) -> list[str]:
        self.started.set()
        if self.delay:
            time.sleep(self.delay)
        return ["saluti", "mattina"]


@dataclass
class Rig:
    db: Database
    store: AudioStore
    queue: WorkQueue
    pipeline: TranscriptionPipeline
    runner: JobRunner


def build_rig(
    tmp_path: Path,
    transcriber: FakeTranscriber,
    *,
    tagger: FakeTagger | None = None,
    tag_budget: float = 5.0,
    max_message_chars: int = 4096,
    max_queued: int = 100,
    max_per_user: int = 3,
    workers: int = 1,
    batch_size: int = 1,
    lease_seconds: float = 60.0,
) -> Rig:
    db = Database.open(f"sqlite:///{tmp_path / 'unit.db'}")
    store = AudioStore(tmp_path / "audio")
    queue = WorkQueue(
        db,
        store,
        QueueLimits(
            max_queued_jobs=max_queued,
            max_pending_per_user=max_per_user,
            lease_seconds=lease_seconds,
        ),
    )
    pipeline = TranscriptionPipeline(
        models=ModelHolder(lambda _spec: transcriber, lambda: "fake"),  # type: ignore[arg-type]
        limits=PipelineLimits(
            audio=AudioLimits(), download=DownloadLimits(max_seconds=60, max_bytes=2**20)
        ),
        options=TranscribeOptions(),
        tagger=tagger,
    )
    runner = JobRunner(
        queue=queue,
        pipeline=pipeline,
        options=WorkerOptions(
            workers=workers,
            tag_budget_seconds=tag_budget,
            delivery=DeliveryOptions(
                status_edit_interval=0.0,
                max_message_chars=max_message_chars,
                long_text_as_file_chars=12_000,
            ),
            batch_size=batch_size,
            batch_wait_seconds=0.2,
            poll_seconds=0.05,
        ),
    )
    return Rig(db, store, queue, pipeline, runner)
