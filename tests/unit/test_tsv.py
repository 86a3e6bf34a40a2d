"""The one TSV reader (``model.asr.tsv``): encodings and the rows it accepts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from model.asr.tsv import ManifestError, read_tsv

BOM = b"\xef\xbb\xbf"


def _manifest(folder: Path, content: bytes) -> Path:
    for name in ("c0.wav", "c1.wav"):
        (folder / name).write_bytes(b"")  # the reader checks that files exist, not audio
    path = folder / "set.tsv"
    path.write_bytes(content)
    return path


@pytest.mark.parametrize(
    "content",
    [
        "c0.wav\tprima frase\nc1.wav\tseconda frase\tAnna\n",
        "audio_path\ttext\tspeaker\nc0.wav\tprima frase\nc1.wav\tseconda frase\tAnna\n",
    ],
    ids=["rows", "header"],
)
def test_a_byte_order_mark_is_not_part_of_the_first_row(tmp_path: Path, content: str) -> None:
    """Spreadsheets and Windows editors save "UTF-8" with a BOM first: it must not become
    part of the first path (a missing file) or hide the header (read as a row)."""
    clips = read_tsv(_manifest(tmp_path, BOM + content.encode("utf-8")))
    assert [(c.relative_path, c.text, c.speaker) for c in clips] == [
        ("c0.wav", "prima frase", None),
        ("c1.wav", "seconda frase", "Anna"),
    ]
    assert clips[0].audio_path == (tmp_path / "c0.wav").resolve()


def test_a_bom_anywhere_else_is_text(tmp_path: Path) -> None:
    path = _manifest(tmp_path, b"c0.wav\tuno\n" + BOM + b"c1.wav\tdue\n")
    with pytest.raises(ManifestError, match=re.escape("file audio non trovato: \ufeffc1.wav")):
        read_tsv(path)


def test_bytes_that_are_not_utf8_are_reported_at_their_offset(tmp_path: Path) -> None:
    path = _manifest(tmp_path, BOM + b"c0.wav\tperch\xe9\n")
    with pytest.raises(ManifestError, match=r"non è testo UTF-8 \(byte 15\)"):
        read_tsv(path)
