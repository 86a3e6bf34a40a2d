"""The general set: speech the gate judges every candidate on, against forgetting
(``training.gate``: a guard, or the primary set while the held-out corrections cannot be
judged), which nobody can write to.

``WHISPER_IT_EVAL_GENERAL_SET`` chooses it:

* ``packaged`` (the default): 80 Italian sentences written for it, each spoken by
  festival's two Italian diphone voices (160 Ogg Opus clips, about 2 MB), shipped inside the
  package (``training/packaged_general_set/``, made by ``scripts/render_general_set.py``).
  It is read in place from the installed package (``importlib.resources``), never copied
  into the data folder where samples and audio live: corrections and imports write there,
  so they can never add to it;
* a path: an admin's own TSV (``audio<TAB>text``) or audiofolder, e.g. Common Voice or
  FLEURS Italian prepared once with ``whisper-it data prepare``;
* ``none``: no general set (the guard is off).

A run's configuration carries ``packaged``, not a path, so the trainer reads the set of the
installation it runs from.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from training.data import DataError, Example, read_manifest

PACKAGED = "packaged"
OFF = "none"
# A data-only package, so setuptools ships its files (setup.py's package_data).
PACKAGE = "training.packaged_general_set"
PACKAGED_MANIFEST = "manifest.tsv"


@dataclass(frozen=True)
class GeneralSet:
    """A general set as loaded: where it comes from and its clips."""

    source: str  # PACKAGED or the manifest's path
    examples: tuple[Example, ...]
    # By audio path; the packaged set names its voice, an admin's set may not.
    speakers: dict[Path, str]

    @property
    def sentences(self) -> int:
        return len({example.text for example in self.examples})

    def describe(self) -> str:
        """One Italian line for operators (``whisper-it doctor``)."""
        where = "incluso nel pacchetto" if self.source == PACKAGED else self.source
        voices = len(set(self.speakers.values()))
        sentences = f"{self.sentences} {'frase' if self.sentences == 1 else 'frasi'}"
        count = f"{len(self.examples)} clip, {sentences}"
        return f"{where}: {count}" + (f", {voices} voci" if voices > 1 else "")


def packaged_manifest() -> Path:
    """The packaged set's manifest, where the installed package holds it."""
    resource = resources.files(PACKAGE) / PACKAGED_MANIFEST
    if not isinstance(resource, Path):  # a zipped install: not supported
        raise DataError(f"the packaged general set is not a plain file: {resource}")
    return resource


def general_set_source(value: str | os.PathLike[str] | None) -> str | None:
    """What a run judges for a ``WHISPER_IT_EVAL_GENERAL_SET`` value: ``PACKAGED`` (unset,
    empty or ``packaged``), None (``none``), or the absolute path of an admin's set."""
    text = "" if value is None else os.fspath(value).strip()
    if not text or text.lower() == PACKAGED:
        return PACKAGED
    if text.lower() == OFF:
        return None
    return str(Path(text).expanduser().resolve())


def load_general_set(source: str) -> GeneralSet:
    """The clips of ``source`` (``general_set_source``'s answer, not None)."""
    if source != PACKAGED:
        return GeneralSet(source, tuple(read_manifest(Path(source))), {})
    from model.asr.tsv import ManifestError, read_tsv

    try:
        clips = read_tsv(packaged_manifest())
    except ManifestError as exc:
        raise DataError(str(exc)) from exc
    examples = tuple(
        Example(key=str(c.audio_path), text=c.text, audio_path=c.audio_path) for c in clips
    )
    speakers = {c.audio_path: c.speaker for c in clips if c.speaker}
    return GeneralSet(PACKAGED, examples, speakers)
