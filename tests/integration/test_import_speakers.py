"""``samples import`` reads an optional third TSV column naming the speaker; the gate
counts import speakers as users (issue 19)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from bot.commands import samples
from bot.settings import Settings
from storage.samples import list_samples
from storage.unit_of_work import Database
from tests.support.speech import synthesize
from training.config import split_policy


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="whisper-it")
    samples.register(parser.add_subparsers(dest="command", required=True))
    return parser


def test_help_names_the_speaker_column(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["samples", "import", "--help"])
    assert "[<TAB>speaker]" in " ".join(capsys.readouterr().out.split())


def test_import_stores_each_rows_speaker(
    tmp_path: Path, speech_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "set"
    synthesize("Il treno per Milano parte alle otto.", folder / "a.wav")
    synthesize("Domani andiamo al mare con gli amici.", folder / "b.wav", voice="it+f2")
    tsv = folder / "set.tsv"
    tsv.write_text(
        "a.wav\tIl treno per Milano parte alle otto.\tAnna Rossi\n"
        "b.wav\tDomani andiamo al mare con gli amici.\n",
        encoding="utf-8",
    )
    settings = Settings(data_dir=tmp_path / "data", _env_file=None)  # type: ignore[call-arg]
    args = _parser().parse_args(["samples", "import", str(tsv)])
    assert args.func(args, settings) == 0
    assert json.loads(capsys.readouterr().out)["added"] == 2

    def speakers() -> dict[str, str]:
        database = Database.open(settings.resolved_database_url)
        try:
            with database.unit_of_work(read_only=True) as uow:
                found = list_samples(uow.session, policy=split_policy(0.1, 0))
        finally:
            database.close()
        assert not any(sample.selected for sample in found)  # imports: chosen by nobody
        return {sample.text.split()[0]: sample.speaker for sample in found}

    first = speakers()
    assert first["Il"] == "speaker:Anna Rossi"
    assert first["Domani"].startswith("user:")  # unnamed: the import user
    # Naming the speaker later updates the row; the text did not change.
    tsv.write_text("b.wav\tDomani andiamo al mare con gli amici.\tBruno\n", encoding="utf-8")
    assert args.func(args, settings) == 0
    assert json.loads(capsys.readouterr().out)["updated"] == 1
    assert speakers()["Domani"] == "speaker:Bruno"


def test_every_command_reads_the_import_format(tmp_path: Path) -> None:
    """The speaker column is never text: read as part of the reference, an import TSV given
    to `evaluate` or training would put the speaker's name into references and labels
    (the training ablation benchmark trained on "... casa. it+m1" that way)."""
    from model.asr.tsv import read_tsv
    from training.data import read_manifest

    (tmp_path / "a.wav").write_bytes(b"")
    tsv = tmp_path / "set.tsv"
    tsv.write_text("a.wav\tBuongiorno a tutti.\tit+m1\n", encoding="utf-8")
    (clip,) = read_tsv(tsv)
    assert (clip.text, clip.speaker) == ("Buongiorno a tutti.", "it+m1")
    (example,) = read_manifest(tsv)
    assert example.text == "Buongiorno a tutti."


def test_a_row_ends_only_at_a_newline(tmp_path: Path) -> None:
    """A line separator or form feed inside a sentence is a space, not a new row (the
    import refused the whole file, its line numbers off an editor's)."""
    from model.asr.tsv import read_tsv

    for name in ("a.wav", "b.wav"):
        (tmp_path / name).write_bytes(b"")
    tsv = tmp_path / "set.tsv"
    tsv.write_text("a.wav\tciao\u2028mondo\tAnna\r\nb.wav\tbuona\x0cnotte\n", encoding="utf-8")
    first, second = read_tsv(tsv)
    assert (first.text, first.speaker, second.text) == ("ciao mondo", "Anna", "buona notte")
