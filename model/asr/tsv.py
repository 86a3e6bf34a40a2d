"""Labelled-audio manifests: one reader, one set of rules, for every command that takes a TSV
(``evaluate``, ``samples import``, training's eval and base sets).

A manifest has one row per clip, ``audio_path<TAB>reference text[<TAB>speaker]``:

- the file is UTF-8, with or without the byte-order mark spreadsheets and Windows editors
  put first; blank lines and ``#`` comments are skipped, and so is a header row
  (``audio_path<TAB>...``) on the first line;
- an optional third column names the clip's speaker (``samples import`` stores it; the
  other commands ignore it), so one file serves every command: read as part of the text,
  it would put the speaker's name into references and training labels;
- runs of white space in the reference collapse to one;
- paths are relative to the manifest's folder and must stay inside it (no ``../`` or
  absolute paths out of it, symlinks resolved) unless the caller allows it;
- a malformed row, a missing file or an empty manifest is an error, reported with its line
  before any audio is decoded or any model loaded.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

HEADER_FIELDS = frozenset({"audio", "audio_path", "path", "file", "file_name"})
COMMENT = "#"
BOM = "\ufeff"
# Speaker names are cut to this (storage keeps as many).
SPEAKER_CHARS = 128

NOT_A_FILE = "{path}: file non trovato"
NOT_UTF8 = "{path}: il file non è testo UTF-8 (byte {offset})"
BAD_ROW = "{path}:{line}: attese due colonne, percorso_audio<TAB>testo"
MISSING_AUDIO = "{path}:{line}: file audio non trovato: {audio}"
OUTSIDE = "{path}:{line}: il percorso {audio} esce dalla cartella del file TSV"
EMPTY = "{path}: nessuna riga da leggere"


class ManifestError(Exception):
    """A manifest that cannot be used; the message is one line, for the user."""


@dataclass(frozen=True)
class LabelledClip:
    audio_path: Path  # resolved
    relative_path: str  # as written in the manifest
    text: str
    line: int
    # The optional third column.
    speaker: str | None = None


def read_tsv(path: Path, *, allow_outside: bool = False) -> list[LabelledClip]:
    """The clips of the manifest at ``path`` (see the module docstring for the rules)."""
    path = Path(path)
    if not path.is_file():
        raise ManifestError(NOT_A_FILE.format(path=path))
    try:
        # A leading BOM would otherwise start the first path (or header). Removed after
        # decoding ("utf-8-sig" would count a bad byte's offset from after the BOM).
        content = path.read_bytes().decode("utf-8").removeprefix(BOM)
    except UnicodeDecodeError as exc:
        raise ManifestError(NOT_UTF8.format(path=path, offset=exc.start)) from None
    except OSError as exc:
        raise ManifestError(f"{path}: {exc.strerror or exc}") from None
    root = path.parent.resolve()
    clips: list[LabelledClip] = []
    # Rows end at "\n" (and an optional "\r") only: splitlines() also broke rows at
    # U+2028, form feeds and the like inside a sentence, and numbered lines off an editor's.
    for number, line in enumerate(content.split("\n"), start=1):
        raw = line.removesuffix("\r")
        if not raw.strip() or raw.lstrip().startswith(COMMENT):
            continue
        fields = raw.split("\t")
        if number == 1 and fields[0].strip().lower() in HEADER_FIELDS:
            continue
        relative = fields[0].strip()
        text = " ".join(fields[1].split()) if len(fields) > 1 else ""
        speaker = " ".join(" ".join(fields[2:]).split())[:SPEAKER_CHARS] or None
        if not relative or not text:
            raise ManifestError(BAD_ROW.format(path=path, line=number))
        clip = _clip(path, root, relative, text, number, allow_outside=allow_outside)
        clips.append(replace(clip, speaker=speaker) if speaker else clip)
    if not clips:
        raise ManifestError(EMPTY.format(path=path))
    return clips


def _clip(
    path: Path, root: Path, relative: str, text: str, number: int, *, allow_outside: bool
) -> LabelledClip:
    try:
        audio = (root / relative).resolve()
        inside = audio.is_relative_to(root)
        exists = audio.is_file()
    except (OSError, ValueError):  # a name too long, a NUL byte: not a file we can read
        inside, exists, audio = True, False, Path(relative)
    if not inside and not allow_outside:
        raise ManifestError(OUTSIDE.format(path=path, line=number, audio=relative))
    if not exists:
        raise ManifestError(MISSING_AUDIO.format(path=path, line=number, audio=relative[:200]))
    return LabelledClip(audio_path=audio, relative_path=relative, text=text, line=number)
