"""SubRip output from transcript segments (model/asr/subtitles.py)."""

from __future__ import annotations

import pytest

from model.asr.subtitles import (
    MAX_LINE_CHARS,
    MIN_CUE_SECONDS,
    format_timestamp,
    segments_to_srt,
    segments_to_vtt,
)
from model.asr.transcription import Segment


@pytest.mark.parametrize(
    ("seconds", "expected"),
    [
        (0, "00:00:00,000"),
        (1.5, "00:00:01,500"),
        (59.9996, "00:01:00,000"),  # rounds to the millisecond, carrying into minutes
        (3723.25, "01:02:03,250"),
        (36_000, "10:00:00,000"),
        (-0.2, "00:00:00,000"),
    ],
)
def test_format_timestamp(seconds: float, expected: str) -> None:
    assert format_timestamp(seconds) == expected


def test_cues_are_numbered_timed_and_wrapped() -> None:
    long_text = "la biblioteca comunale è chiusa il lunedì ma apre il martedì mattina presto"
    srt = segments_to_srt(
        [
            Segment(0.0, 2.5, " Buongiorno a tutti. "),
            Segment(2.5, 3.0, "   "),  # blank: skipped, numbering stays continuous
            Segment(3.0, 9.25, long_text),
        ]
    )
    blocks = srt.split("\n\n")
    assert blocks[0] == "1\n00:00:00,000 --> 00:00:02,500\nBuongiorno a tutti."
    number, timing, *lines = blocks[1].rstrip("\n").split("\n")
    assert (number, timing) == ("2", "00:00:03,000 --> 00:00:09,250")
    assert len(lines) > 1 and all(len(line) <= MAX_LINE_CHARS for line in lines)
    assert " ".join(lines) == long_text
    assert srt.endswith("\n") and not srt.endswith("\n\n")


def test_times_never_overlap_or_run_backwards() -> None:
    srt = segments_to_srt(
        [
            Segment(0.0, 4.0, "uno"),
            Segment(3.0, 3.0, "due"),  # starts before the previous end, zero length
            Segment(5.0, 4.0, "tre"),  # end before start
        ]
    )
    timings = [block.split("\n")[1] for block in srt.split("\n\n")]
    assert timings == [
        "00:00:00,000 --> 00:00:03,000",  # cut where the next cue starts
        "00:00:03,000 --> 00:00:03,500",  # given MIN_CUE_SECONDS on screen
        "00:00:05,000 --> 00:00:05,500",
    ]
    assert MIN_CUE_SECONDS == 0.5


def test_no_segments_is_an_empty_file() -> None:
    assert segments_to_srt([]) == ""
    assert segments_to_srt([Segment(0, 1, " ")]) == ""


def test_webvtt_escapes_its_cue_text_and_leaves_spoken_times_alone() -> None:
    """In WebVTT "<" opens a tag and "&" an entity; a time said in the text is text."""
    vtt = segments_to_vtt([Segment(0.0, 1.0, "a <b> & c"), Segment(1.0, 2.0, "alle 01:02:03,500")])
    assert vtt == (
        "WEBVTT\n\n"
        "1\n00:00:00.000 --> 00:00:01.000\na &lt;b&gt; &amp; c\n\n"
        "2\n00:00:01.000 --> 00:00:02.000\nalle 01:02:03,500\n"
    )
