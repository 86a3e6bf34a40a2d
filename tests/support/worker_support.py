"""Small real stand-ins for the worker's unit tests: a fake transcriber and tagger, WAV
bytes with a tone, and the bot's own services (``bot.bootstrap``) on a real SQLite database
with those stand-ins, for the fake Bot API."""

from __future__ import annotations

import asyncio
import io
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import soundfile

from bot.bootstrap import Seams, Services, bootstrap
from bot.pipeline import TranscriptionPipeline
from bot.settings import Settings
from bot.work_queue import WorkQueue
from bot.worker import JobRunner
from model.asr.audio import SAMPLE_RATE
from model.asr.transcription import Segment, TranscribeOptions, Transcription
from storage.audio_store import AudioStore
from storage.unit_of_work import Database


async def until(predicate: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait, polling, until ``predicate`` holds (an AssertionError after ``timeout``)."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.01)


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
    # The options of every clip it transcribed, in order (what reached the model).
    options_seen: list[TranscribeOptions] = field(default_factory=list)

    def transcribe(self, audio, *, options=None, progress=None) -> Transcription:
        options = options or TranscribeOptions()
        self.calls += 1
        self.options_seen.append(options)
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


class SlowTagger:
    """Another tagger's hashtags, late: they miss the reply's time budget and are edited
    in (or sent) afterwards."""

    def __init__(self, inner: Any, delay: float) -> None:
        self._inner, self.delay = inner, delay

    def tags(self, text: str) -> list[str]:
        time.sleep(self.delay)
        return self._inner.tags(text)


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
    services: Services

    @property
    def db(self) -> Database:
        return self.services.db

    @property
    def store(self) -> AudioStore:
        return self.services.store

    @property
    def queue(self) -> WorkQueue:
        return self.services.queue

    @property
    def pipeline(self) -> TranscriptionPipeline:
        return self.services.pipeline

    @property
    def runner(self) -> JobRunner:
        return self.services.runner


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
    admin_ids: list[int] | None = None,
) -> Rig:
    """The services ``whisper-it bot`` builds (``bot.bootstrap``), on a SQLite file under
    ``tmp_path``, with the fake model and tagger through the bootstrap's seams."""
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path,
        database_url=f"sqlite:///{tmp_path / 'unit.db'}",
        tag_budget_seconds=tag_budget,
        max_message_chars=max_message_chars,
        max_queued_jobs=max_queued,
        max_pending_jobs_per_user=max_per_user,
        workers=workers,
        batch_size=batch_size,
        lease_seconds=lease_seconds,
        batch_wait_ms=200,
        worker_poll_seconds=0.05,
        admin_ids=admin_ids or [],
    )
    seams = Seams(
        load_model=lambda _spec: transcriber,  # type: ignore[arg-type,return-value]
        model_spec=lambda: "fake",
        tagger=tagger,
        tagger_off=tagger is None,
        status_edit_seconds=0.0,
    )
    return Rig(bootstrap(settings, seams=seams))
