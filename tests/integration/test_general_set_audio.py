"""The packaged general set against real audio tools: the project's decoder reads its
clips, an import of them lands in the data folder and leaves the package as shipped, and
an admin's corpus prepared by ``whisper-it data prepare`` is a general set too."""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import pytest

from bot.settings import Settings
from model.asr.audio import decode_audio
from tests.support.cli_commands import run_command
from training.general_set import (
    PACKAGED,
    general_set_source,
    load_general_set,
    packaged_manifest,
)


def _digest(folder: Path) -> str:
    sha = hashlib.sha256()
    for path in sorted(folder.iterdir()):
        if path.is_file():
            sha.update(path.name.encode() + b"\0" + path.read_bytes())
    return sha.hexdigest()


def test_its_clips_decode_with_the_projects_decoder() -> None:
    general = load_general_set(PACKAGED)
    for example in (general.examples[0], general.examples[-1]):
        audio = decode_audio(example.audio_path)
        assert 1.5 < audio.duration < 10.0
        # festival speaks at full scale; Opus may overshoot it a little.
        assert 0.5 < float(abs(audio.samples).max()) < 1.2


def test_imports_never_reach_it(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An import of the packaged clips themselves copies them into the data folder's store;
    the packaged set stays as shipped and is never read from there."""
    folder = packaged_manifest().parent
    before = _digest(folder)
    general = load_general_set(PACKAGED)
    rows = [f"{e.audio_path}\t{e.text}\tqualcuno" for e in general.examples[:3]]
    tsv = tmp_path / "import.tsv"
    tsv.write_text("\n".join(rows) + "\n", encoding="utf-8")
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)

    assert run_command(settings, "samples", "import", "--allow-outside", str(tsv)) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 3
    assert _digest(folder) == before
    again = load_general_set(PACKAGED)
    assert again == general
    data_dir = settings.data_dir.resolve()
    assert not any(e.audio_path.is_relative_to(data_dir) for e in again.examples)
    assert not folder.is_relative_to(data_dir)
    assert not list(data_dir.rglob("manifest.tsv"))  # never copied in


def test_a_prepared_corpus_is_a_general_set_too(tmp_path: Path) -> None:
    """An admin's set prepared with ``whisper-it data prepare`` (Common Voice or FLEURS from
    the Hub, here a local TSV): the audiofolder it writes is what EVAL_GENERAL_SET names."""
    from training.data import prepare_corpus

    clips = load_general_set(PACKAGED).examples[:2]
    for clip in clips:
        shutil.copy2(clip.audio_path, tmp_path / clip.audio_path.name)
    rows = [f"{c.audio_path.name}\t{c.text}" for c in clips]
    (tmp_path / "src.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    folder = tmp_path / "data" / "corpora" / "mine"
    prepare_corpus(str(tmp_path / "src.tsv"), folder)

    general = load_general_set(general_set_source(folder) or "")
    assert general.source == str(folder) and [e.text for e in general.examples] == [
        c.text for c in clips
    ]
    assert all(e.audio_path.is_relative_to(folder) for e in general.examples)
