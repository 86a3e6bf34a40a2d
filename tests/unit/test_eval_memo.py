"""The general set's words are kept between runs: a model that heard a clip with the same
settings is not asked again; another model, other settings or other audio are."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from model.asr.transcription import TranscribeOptions
from tests.support.worker_support import FakeTranscriber
from training.eval_memo import MemoTranscriber, cpu_flags, memo_path, model_fingerprint


def _clip(seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal(16_000).astype(np.float32) * 0.1


def _model(folder: Path, weights: bytes) -> Path:
    folder.mkdir(parents=True)
    (folder / "model.bin").write_bytes(weights)
    (folder / "config.json").write_text("{}")
    return folder


def test_a_second_run_answers_from_the_memo(tmp_path: Path) -> None:
    model = _model(tmp_path / "ct2", b"weights")
    path = memo_path(tmp_path / "memo", model)
    options = TranscribeOptions(beam_size=5)
    first = MemoTranscriber(FakeTranscriber(text="ciao a tutti"), path)
    assert first.transcribe(_clip(1), options=options).text == "ciao a tutti"
    first.save()
    assert first.transcriber.calls == 1 and first.hits == 0

    engine = FakeTranscriber(text="something else")
    again = MemoTranscriber(engine, path)
    assert again.transcribe(_clip(1), options=options).text == "ciao a tutti"
    assert engine.calls == 0 and again.hits == 1
    # Other audio, or other decoding settings, are decoded.
    assert again.transcribe(_clip(2), options=options).text == "something else"
    assert again.transcribe(_clip(1), options=TranscribeOptions(beam_size=1)).text == (
        "something else"
    )
    assert engine.calls == 2


def test_the_memo_belongs_to_the_weights(tmp_path: Path) -> None:
    one = _model(tmp_path / "v1", b"weights one")
    same = _model(tmp_path / "copy", b"weights one")
    other = _model(tmp_path / "v2", b"weights two")
    assert model_fingerprint(one) == model_fingerprint(same)
    assert memo_path(tmp_path, one) != memo_path(tmp_path, other)


def test_a_damaged_memo_is_ignored(tmp_path: Path) -> None:
    path = tmp_path / "memo.json"
    for content in ("not json", "[1, 2]", '{"key": 3}'):
        path.write_text(content)
        engine = FakeTranscriber(text="ciao")
        memo = MemoTranscriber(engine, path)
        assert memo.transcribe(_clip(3)).text == "ciao" and engine.calls == 1


def test_the_memo_belongs_to_the_machine_that_decoded(tmp_path: Path) -> None:
    """Another CPU (other int8 kernels) or CTranslate2 version may read a clip differently:
    the words decoded on one machine are not served as another's."""
    model = _model(tmp_path / "ct2", b"weights")
    here = memo_path(tmp_path, model)
    assert here == memo_path(tmp_path, model)
    assert memo_path(tmp_path, model, decoder="a" * 64) != memo_path(tmp_path, model, "b" * 64)

    avx512 = tmp_path / "cpuinfo-avx512"
    avx512.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 avx512f avx512bw\n")
    avx2 = tmp_path / "cpuinfo-avx2"
    avx2.write_text("processor\t: 0\nflags\t\t: fpu sse4_2 avx avx2 fma\n")
    assert cpu_flags(avx512) == ["avx", "avx2", "avx512bw", "avx512f", "sse4_2"]
    assert cpu_flags(avx2) == ["avx", "avx2", "fma", "sse4_2"]
    assert cpu_flags(tmp_path / "missing") == []
