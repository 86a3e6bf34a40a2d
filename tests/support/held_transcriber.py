"""A stand-in model that holds a job in the middle of its transcription until the test
lets it go: for cancelling and queueing tests that need a job to stay running."""

from __future__ import annotations

import threading
import time
from typing import Any

from model.asr.audio import SAMPLE_RATE
from model.asr.transcription import Segment, TranscribeOptions, Transcription

HELD_SECONDS = 30.0


class HeldTranscriber:
    """Reports some progress, then waits for the test before going on (and counts the
    calls that got to the end)."""

    model_name = "held-model"
    engine = "ct2"

    def __init__(
        self, *, hold: bool = True, seconds: float = 0.0, text: str = "una trascrizione"
    ) -> None:
        self.text = text  # what every clip says (changeable between jobs)
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        self.seconds = seconds  # time each call takes once released
        self.calls = 0
        self.completed = 0

    def _result(self, audio: Any, options: TranscribeOptions | None) -> Transcription:
        duration = audio.size / SAMPLE_RATE
        return Transcription(
            text=self.text,
            segments=(Segment(0.0, duration, self.text),),
            language="it",
            duration=duration,
            model=self.model_name,
            engine="ct2",
            elapsed=0.01,
            options=options or TranscribeOptions(),
        )

    def transcribe(self, audio, *, options=None, progress=None) -> Transcription:
        self.calls += 1
        if progress is not None:
            progress(0.1)
        self.started.set()
        self.release.wait(HELD_SECONDS)
        time.sleep(self.seconds)
        if progress is not None:
            progress(0.5)  # a cancelled job stops here
        self.completed += 1
        return self._result(audio, options)

    def transcribe_batch(self, clips, *, options=None) -> list[Transcription | Exception]:
        self.calls += 1
        self.started.set()
        self.release.wait(HELD_SECONDS)
        time.sleep(self.seconds)
        self.completed += 1
        return [self._result(clip, options) for clip in clips]
