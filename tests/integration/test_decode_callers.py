"""Issue 18: every caller of the decoder goes through the sandbox, hostile media included:
``whisper-it samples import`` (the CLI) and training data preparation (``load_audio``)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.settings import Settings
from tests.support import hostile_media
from tests.support.cli_commands import run_command
from tests.support.speech import ITALIAN_SENTENCES, synthesize
from training.data import DataError, load_audio

HOSTILE = {
    "bomb.m4a": hostile_media.mp4_sample_table_bomb,
    "rate.wav": hostile_media.wav_declaring_rate,
    "switch.mp3": hostile_media.mp3_rate_change,
    "huge.wav": hostile_media.huge_float_wav,
}


def test_samples_import_refuses_hostile_media_row_by_row(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    clips = tmp_path / "clips"
    clips.mkdir()
    synthesize(ITALIAN_SENTENCES[0], clips / "good.wav")
    lines = ["audio_path\treference", f"clips/good.wav\t{ITALIAN_SENTENCES[0]}"]
    for name, build in HOSTILE.items():
        (clips / name).write_bytes(build())
        lines.append(f"clips/{name}\tnon si sente")
    (tmp_path / "data.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert run_command(settings, "samples", "import", str(tmp_path / "data.tsv")) == 1
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["failed"]) == (1, len(HOSTILE))
    assert sorted(Path(e["path"]).name for e in report["errors"]) == sorted(HOSTILE)


@pytest.mark.parametrize("name", ["huge.wav", "rate.wav"])
def test_training_data_refuses_hostile_wav(tmp_path: Path, name: str) -> None:
    """A WAV is not read with soundfile unless it is plain 16 kHz integer PCM: the float
    WAV of 3e38 used to go straight into training."""
    path = tmp_path / name
    path.write_bytes(HOSTILE[name]())
    with pytest.raises(DataError):
        load_audio(path)


def test_training_data_still_reads_plain_pcm(tmp_path: Path) -> None:
    path = synthesize(ITALIAN_SENTENCES[1], tmp_path / "plain.wav")
    assert load_audio(path).size > 16_000
