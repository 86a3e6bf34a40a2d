"""``whisper-it db ...`` and ``whisper-it samples ...`` through their ``run`` functions,
with real espeak speech decoded by model.asr.audio."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import soundfile

from bot.cli import CommandError
from bot.settings import Settings
from storage import migrations
from storage.audio_store import AudioStore
from storage.privacy import delete_user_data
from storage.repository import IMPORT_USER_ID
from storage.unit_of_work import Database
from tests.support.cli_commands import run_command
from tests.support.speech import ITALIAN_SENTENCES, synthesize


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]


@pytest.fixture(scope="module")
def recordings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder with a TSV of three spoken sentences and a corrupt file."""
    folder = tmp_path_factory.mktemp("recordings")
    lines = ["audio_path\treference"]
    for index, sentence in enumerate(ITALIAN_SENTENCES[:3]):
        suffix = ".ogg" if index == 0 else ".wav"
        synthesize(sentence, folder / "clips" / f"clip{index}{suffix}")
        lines.append(f"clips/clip{index}{suffix}\t{sentence}")
    (folder / "clips" / "broken.wav").write_bytes(b"RIFF not really audio")
    lines += ["clips/broken.wav\tnon si sente", "", "# comment"]
    (folder / "data.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


def test_db_commands(settings: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    url = settings.resolved_database_url
    # Reading a database that does not exist fails, and creates nothing (a mistyped path).
    for argv in (("db", "current"), ("db", "downgrade"), ("samples", "stats")):
        with pytest.raises(CommandError, match="non esiste"):
            run_command(settings, *argv)
    assert not settings.data_dir.exists()
    assert run_command(settings, "db", "upgrade") == 0
    assert migrations.current(url) == migrations.head()
    assert f"current: {migrations.head()}" in capsys.readouterr().out
    assert run_command(settings, "db", "downgrade", "base") == 0
    assert migrations.current(url) is None


def test_samples_import_stats_export(
    settings: Settings, recordings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        run_command(settings, "samples", "import", str(recordings / "data.tsv")) == 1
    )  # 1 bad row
    report = json.loads(capsys.readouterr().out)
    assert (report["added"], report["failed"]) == (3, 1)
    assert [error["path"] for error in report["errors"]] == ["clips/broken.wav"]

    # Importing again changes nothing.
    assert run_command(settings, "samples", "import", str(recordings / "data.tsv")) == 1
    again = json.loads(capsys.readouterr().out)
    assert (again["added"], again["unchanged"]) == (0, 3)

    assert run_command(settings, "samples", "stats") == 0
    stats = json.loads(capsys.readouterr().out)
    assert stats["samples"] == 3
    assert stats["train"] + stats["eval"] == 3
    assert 3.0 < stats["audio_seconds"] < 15.0
    assert stats["new_since_last_training_run"] == stats["train"]
    # everything lives under DATA_DIR
    assert len(list(AudioStore(settings.audio_dir))) == 3
    assert (settings.data_dir / "whisper-it.sqlite3").is_file()

    # everything held out: the split column must say so (a fraction of 1 is refused, as
    # the setting refuses it: the floor of held-out sentences holds all three)
    out = tmp_path / "export"
    assert run_command(settings, "samples", "export", str(out), "--eval-min-sentences", "3") == 0
    assert json.loads(capsys.readouterr().out)["eval"] == 3
    assert run_command(settings, "samples", "export", str(out)) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["exported"] == 3
    with (out / "metadata.csv").open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    header = (out / "metadata.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "file_name,transcription,split"
    assert sorted(row["transcription"] for row in rows) == sorted(ITALIAN_SENTENCES[:3])
    assert sum(row["split"] == "eval" for row in rows) == exported["eval"]
    for row in rows:
        info = soundfile.info(out / row["file_name"])
        assert (info.samplerate, info.channels, info.subtype) == (16_000, 1, "PCM_16")
        assert 1.0 < info.duration < 6.0

    # A sample deleted since the last export disappears from the next one.
    database = Database.open(settings.resolved_database_url)
    with database.unit_of_work() as uow:
        assert (
            delete_user_data(
                uow.session, AudioStore(settings.audio_dir), IMPORT_USER_ID
            ).transcriptions
            == 3
        )
        uow.commit()
    database.close()
    assert run_command(settings, "samples", "export", str(out)) == 0
    assert json.loads(capsys.readouterr().out)["exported"] == 0
    assert list((out / "audio").iterdir()) == []


def test_import_of_a_missing_tsv_fails_cleanly(settings: Settings, tmp_path: Path) -> None:
    with pytest.raises(CommandError, match=r"nope\.tsv: file non trovato"):
        run_command(settings, "samples", "import", str(tmp_path / "nope.tsv"))


def test_a_malformed_line_stops_the_import_before_any_audio(
    settings: Settings, recordings: Path
) -> None:
    tsv = recordings / "bad.tsv"
    tsv.write_text("clips/clip2.wav\tLa pizza\nclips/clip1.wav\n")
    with pytest.raises(CommandError, match=r"bad.tsv:2: attese due colonne"):
        run_command(settings, "samples", "import", str(tsv))
    assert list(AudioStore(settings.audio_dir)) == []
