"""``whisper-it evaluate --general-set``: the current model on the general set the gate
judges, named in the result; in-process, with the packaged model."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from bot.cli import main
from training.general_set import PACKAGED, load_general_set

pytestmark = pytest.mark.slow  # loads the model


@pytest.fixture
def settings_env(tmp_path: Path, model_cache: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in [key for key in os.environ if key.startswith("WHISPER_IT_")]:
        monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.setenv("WHISPER_IT_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("WHISPER_IT_MODEL_CACHE_DIR", str(model_cache))
    monkeypatch.setenv("WHISPER_IT_OFFLINE", "true")
    monkeypatch.setenv("WHISPER_IT_TAGGER", "off")
    return tmp_path


def test_evaluate_scores_the_general_set_in_use(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Two packaged clips as an admin's own set: the packaged 80 would take minutes here.
    own = settings_env / "own"
    own.mkdir()
    clips = load_general_set(PACKAGED).examples[:2]
    for clip in clips:
        shutil.copy2(clip.audio_path, own / clip.audio_path.name)
    rows = [f"{c.audio_path.name}\t{c.text}" for c in clips]
    (own / "set.tsv").write_text("\n".join(rows) + "\n", encoding="utf-8")
    monkeypatch.setenv("WHISPER_IT_EVAL_GENERAL_SET", str(own / "set.tsv"))

    assert main(["evaluate", "--general-set"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["general_set"] == str((own / "set.tsv").resolve())
    assert result["n"] == 2 and result["wer"] < 0.5  # festival is easy for whisper-base


def test_evaluate_needs_one_set(
    settings_env: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # Neither or both: a wrong command line, exit 2 with the usage (argparse's way).
    for argv in (["evaluate"], ["evaluate", "x.tsv", "--general-set"]):
        with pytest.raises(SystemExit) as wrong:
            main(argv)
        assert wrong.value.code == 2
        assert "usage: whisper-it evaluate" in capsys.readouterr().err
    monkeypatch.setenv("WHISPER_IT_EVAL_GENERAL_SET", "none")
    assert main(["evaluate", "--general-set"]) != 0
    assert "Nessun insieme generale" in capsys.readouterr().err
