"""Hotwords on the real whisper-base (CT2 int8): every decoding path takes them, and a
prompt of words never talks the short-clip path into hearing speech in silence or noise."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from model.asr.audio import SAMPLE_RATE
from model.asr.engines import MAX_HOTWORD_TOKENS
from model.asr.normalize import normalize_text
from model.asr.transcription import TranscribeOptions
from tests.support.speech import synthesize_array

SENTENCE = "Abbiamo trovato un altro strato piroclastico sotto la strada."
VOICE = "it+f2"
RARE = "piroclastico"
# A user's vocabulary as it stood late in the benchmark (benchmarks/personal_vocabulary.py).
VOCABULARY = (
    "Valbondione Serve analisi deposito nevicato Zanchettin arriva lunedì materiale "
    "piroclastico copre valle parlato dottoressa"
)
PLAIN = TranscribeOptions()


@pytest.fixture(scope="module")
def clip(tmp_path_factory: pytest.TempPathFactory) -> np.ndarray:
    return synthesize_array(SENTENCE, tmp_path_factory.mktemp("hotwords"), voice=VOICE)


def _words(text: str) -> list[str]:
    return normalize_text(text).split()


def test_the_short_clip_path_spells_a_rare_word_with_hotwords(ct2_transcriber, clip) -> None:
    (plain,) = ct2_transcriber.transcribe_batch([clip], options=PLAIN)
    (biased,) = ct2_transcriber.transcribe_batch(
        [clip], options=replace(PLAIN, hotwords=VOCABULARY)
    )
    assert RARE not in _words(plain.text)
    assert RARE in _words(biased.text)
    assert biased.options.hotwords == VOCABULARY  # recorded: the repeat cache keys on it


@pytest.mark.parametrize("chunk_batch", [0, 8], ids=["sequential", "chunked"])
def test_the_long_form_paths_take_hotwords_too(ct2_transcriber, clip, chunk_batch: int) -> None:
    options = replace(PLAIN, chunk_batch=chunk_batch)
    plain = ct2_transcriber.transcribe(clip, options=options)
    biased = ct2_transcriber.transcribe(clip, options=replace(options, hotwords=RARE))
    assert RARE not in _words(plain.text)
    assert RARE in _words(biased.text)


@pytest.mark.parametrize("rms", [0.0, 0.003, 0.05], ids=["silence", "room", "loud noise"])
def test_hotwords_never_make_speech_out_of_silence_or_noise(ct2_transcriber, rms: float) -> None:
    rng = np.random.default_rng(11)
    noise = (rng.standard_normal(5 * SAMPLE_RATE) * rms).astype(np.float32)
    (plain,) = ct2_transcriber.transcribe_batch([noise], options=PLAIN)
    (biased,) = ct2_transcriber.transcribe_batch(
        [noise], options=replace(PLAIN, hotwords=VOCABULARY)
    )
    # (Without the unprompted no-speech check, this prompt made "un po'" of all three.)
    assert plain.text == "" and biased.text == ""


@pytest.mark.parametrize("chunk_batch", [None, 0, 8], ids=["short", "sequential", "chunked"])
def test_an_oversized_vocabulary_is_cut_to_fit_the_decoder(
    ct2_transcriber, clip, chunk_batch: int | None
) -> None:
    # ~400 characters of plain (non-Latin) words: far over 448 tokens before the cut.
    hostile = " ".join(["語彙漢字" * 8] * 12)
    options = replace(PLAIN, hotwords=hostile)
    assert len(ct2_transcriber._hotword_tokens(hostile)) > 448
    if chunk_batch is None:
        (result,) = ct2_transcriber.transcribe_batch([clip], options=options)
        assert not isinstance(result, Exception), result
    else:
        result = ct2_transcriber.transcribe(clip, options=replace(options, chunk_batch=chunk_batch))
    kept = result.options.hotwords
    assert kept and hostile.startswith(kept)
    assert len(ct2_transcriber._hotword_tokens(kept)) <= MAX_HOTWORD_TOKENS
