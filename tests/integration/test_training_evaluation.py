"""The one evaluation function, on the real serving engine and espeak speech."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from model.asr.evaluation import UnreadableClipError, evaluate, score_clip
from model.asr.normalize import error_rates
from tests.support.speech import synthesize


@dataclass(frozen=True)
class _Clip:
    audio_path: Path
    text: str


@pytest.fixture(scope="module")
def clips(speech_dir: Path) -> list[_Clip]:
    folder = speech_dir / "evaluation"
    texts = ("Il treno per Milano parte alle otto.", "Mi piace leggere un libro la sera.")
    return [
        _Clip(synthesize(text, folder / f"{n}.wav", voice="it+m1", speed=150), text)
        for n, text in enumerate(texts)
    ]


def test_per_clip_counts_add_up_to_the_corpus_rates(clips, ct2_transcriber) -> None:
    result = evaluate(ct2_transcriber, clips)
    assert result.rates.n == len(clips) == len(result.clips)
    words = sum(c.reference_words for c in result.clips)
    assert words == result.rates.reference_words
    errors = sum(c.word_errors for c in result.clips)
    assert errors / words == pytest.approx(result.rates.wer)
    assert result.rates == error_rates(
        [c.reference for c in result.clips], [c.hypothesis for c in result.clips]
    )
    assert result.audio_seconds > 1.0 and result.rtf is not None and result.rtf > 0
    assert result.model == ct2_transcriber.model_name and result.engine == "ct2"
    assert "treno" in result.clips[0].hypothesis.lower()


def test_unreadable_clips_raise_or_are_skipped(clips, ct2_transcriber, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.wav"
    garbage.write_bytes(b"not audio at all" * 10)
    broken = [*clips[:1], _Clip(garbage, "testo"), _Clip(tmp_path / "gone.wav", "testo")]
    with pytest.raises(UnreadableClipError) as caught:
        evaluate(ct2_transcriber, broken)
    assert caught.value.audio_path == garbage and caught.value.reason != "missing"
    result = evaluate(ct2_transcriber, broken, skip_unreadable=True)
    assert result.rates.n == 1 and result.skipped == (garbage, tmp_path / "gone.wav")


def test_score_clip_normalises_before_counting() -> None:
    same = score_clip(Path("x"), "L'acqua è fresca!", "l acqua è fresca", duration=1.0)
    assert same.word_errors == 0 and same.reference_words == 4
    accent = score_clip(Path("x"), "è", "e", duration=1.0)
    assert accent.word_errors == 1  # è (is) and e (and) are different words
    empty = score_clip(Path("x"), "...", "qualcosa", duration=1.0)
    assert empty.reference_words == 0 and empty.wer == 0.0
