"""The one decision of how a clip is decoded (model.asr.routing)."""

from __future__ import annotations

import pytest

from model.asr.routing import (
    DEFAULT_CHUNK_BATCH,
    LONG_AUDIO_SECONDS,
    SHORT_CLIP_SECONDS,
    DecodePath,
    choose_route,
    fits_short_clip,
)
from model.asr.transcription import TranscribeOptions

BASE = TranscribeOptions(beam_size=5)


@pytest.mark.parametrize(
    ("duration", "short_clips", "chunk_batch", "path", "chunks"),
    [
        (5.0, True, None, DecodePath.SHORT_CLIPS, 0),  # a voice note
        (SHORT_CLIP_SECONDS, True, None, DecodePath.SHORT_CLIPS, 0),  # one window exactly
        (5.0, False, None, DecodePath.SEQUENTIAL, 0),  # a link wants subtitle timings
        (LONG_AUDIO_SECONDS + 1, True, None, DecodePath.CHUNKED, DEFAULT_CHUNK_BATCH),
        (LONG_AUDIO_SECONDS + 1, False, None, DecodePath.CHUNKED, DEFAULT_CHUNK_BATCH),
        (600.0, True, 0, DecodePath.SEQUENTIAL, 0),  # forced sequential
        (5.0, True, 4, DecodePath.CHUNKED, 4),  # a forced chunk batch skips the short path
    ],
)
def test_routes(
    duration: float, short_clips: bool, chunk_batch: int | None, path: DecodePath, chunks: int
) -> None:
    route = choose_route(duration, BASE, short_clips=short_clips, chunk_batch=chunk_batch)
    assert route.path == path
    assert route.options.chunk_batch == chunks
    # Nothing else about the options changes.
    assert route.options.beam_size == 5 and route.options.max_new_tokens == BASE.max_new_tokens


def test_the_short_path_is_one_window_at_most() -> None:
    assert fits_short_clip(SHORT_CLIP_SECONDS)
    assert not fits_short_clip(SHORT_CLIP_SECONDS + 0.01)


def test_a_sequential_decode_the_length_chose_may_skip_silence() -> None:
    timed = choose_route(5.0, BASE, short_clips=False, skip_silence=True)
    assert timed.path == DecodePath.SEQUENTIAL and timed.options.vad_filter
    # Evaluation keeps its plain decoding; a forced path is left as asked.
    assert not choose_route(5.0, BASE, short_clips=False).options.vad_filter
    forced = choose_route(600.0, BASE, chunk_batch=0, skip_silence=True)
    assert not forced.options.vad_filter
