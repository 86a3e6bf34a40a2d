"""`whisper-it data prepare` replaces only a corpus it prepared: `--name ..` emptied the
whole data folder (database included) before moving the new corpus in."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pytest
import soundfile

from bot.cli import CommandError
from bot.commands.training import run_prepare
from bot.settings import Settings
from training.data import DataError, prepare_corpus


@pytest.fixture
def source(tmp_path: Path) -> Path:
    clip = tmp_path / "src" / "a.wav"
    clip.parent.mkdir()
    soundfile.write(clip, np.zeros(16_000, dtype=np.float32) + 0.1, 16_000)
    manifest = tmp_path / "src" / "set.tsv"
    manifest.write_text("a.wav\tciao a tutti\n", encoding="utf-8")
    return manifest


@pytest.mark.parametrize("name", ["..", "../models", ".", "a/b", ".nascosto", ""])
def test_a_corpus_name_cannot_leave_the_corpora_folder(
    tmp_path: Path, source: Path, name: str
) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "whisper-it.db").write_bytes(b"database")
    settings = Settings(_env_file=None, data_dir=data_dir)  # type: ignore[call-arg]
    args = argparse.Namespace(source=str(source), config=None, split="train", name=name,
                              text_column=None, max_samples=None)  # fmt: skip
    if name:
        with pytest.raises(CommandError):
            run_prepare(args, settings)
    else:  # an empty --name falls back to the default name, made safe
        assert run_prepare(args, settings) == 0
    assert (data_dir / "whisper-it.db").read_bytes() == b"database"


def test_only_a_prepared_corpus_is_replaced(tmp_path: Path, source: Path) -> None:
    out = tmp_path / "corpus"
    prepared = prepare_corpus(str(source), out)
    assert prepared.examples == 1
    assert prepare_corpus(str(source), out).examples == 1  # a corpus is replaced
    other = tmp_path / "models"
    (other / "v1").mkdir(parents=True)
    with pytest.raises(DataError):
        prepare_corpus(str(source), other)
    assert (other / "v1").is_dir()
