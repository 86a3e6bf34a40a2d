"""What a model heard on the general set, kept between runs.

Every run judges the serving model (and, once a trained version serves, the base model) on
the same general set, which nobody can write to: the same model, clip and settings give the
same words whatever the load (``model.asr.seeded_sampling``), so decoding them again each
run only costs minutes. ``MemoTranscriber`` answers a clip it has already heard from a file
keyed by the model's weights and the machine that decodes (the CTranslate2 version and the
CPU's instruction sets: another CPU runs other int8 kernels and can read a clip
differently), and decodes the rest. Only the general set goes through it:
held-out and recent clips are users' audio, which /forget must be able to erase, so they are
never written here.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import os
import platform
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from model.asr.audio import SAMPLE_RATE
from model.asr.transcription import (
    DEFAULT_OPTIONS,
    Progress,
    TranscribeOptions,
    Transcriber,
    Transcription,
)

log = logging.getLogger(__name__)

# The files that define a CTranslate2 model's output (weights, shapes, vocabulary).
MODEL_FILES = ("model.bin", "config.json", "vocabulary.json", "vocabulary.txt")
HASH_BLOCK = 1 << 20
CPUINFO = Path("/proc/cpuinfo")
# CPU features that select CTranslate2's kernels (its dispatch is by instruction set).
KERNEL_FLAGS = frozenset({
    "sse4_1", "sse4_2", "avx", "avx2", "fma", "f16c", "avx512f", "avx512bw", "avx512dq",
    "avx512vl", "avx512_vnni", "avx512_bf16", "avx_vnni", "amx_int8", "amx_bf16", "asimd",
    "sve", "i8mm", "bf16",
})  # fmt: skip


def model_fingerprint(ct2_dir: Path) -> str:
    """A hash of the model's own files: two folders with the same weights share it."""
    digest = hashlib.sha256()
    for name in MODEL_FILES:
        path = ct2_dir / name
        if not path.is_file():
            continue
        digest.update(name.encode())
        with path.open("rb") as handle:
            while block := handle.read(HASH_BLOCK):
                digest.update(block)
    return digest.hexdigest()


def cpu_flags(cpuinfo: Path = CPUINFO) -> list[str]:
    """The kernel-selecting features the CPU reports (Linux; elsewhere none are read)."""
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return []
    for line in text.splitlines():
        name, _, value = line.partition(":")
        if name.strip() in ("flags", "Features"):
            return sorted(KERNEL_FLAGS.intersection(value.split()))
    return []


@functools.cache
def decoder_fingerprint() -> str:
    """What besides the model decides the words: CTranslate2's version, the architecture and
    the instruction sets its kernels are chosen by."""
    import ctranslate2

    parts = [ctranslate2.__version__, platform.machine(), *cpu_flags()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()


def clip_key(audio: np.ndarray, options: TranscribeOptions) -> str:
    """The clip's samples and every decoding setting: what decides the words."""
    digest = hashlib.sha256(np.ascontiguousarray(audio, dtype=np.float32).tobytes())
    digest.update(repr(options).encode())
    return digest.hexdigest()


class MemoTranscriber:
    """``transcriber``, answering clips it has heard before from ``path`` (JSON)."""

    def __init__(self, transcriber: Transcriber, path: Path) -> None:
        self.transcriber = transcriber
        self.model_name = transcriber.model_name
        self.engine = transcriber.engine
        self.path = path
        self.hits = 0
        self._texts = self._load()
        self._dirty = False

    def transcribe(
        self,
        audio: np.ndarray,
        *,
        options: TranscribeOptions = DEFAULT_OPTIONS,
        progress: Progress | None = None,
    ) -> Transcription:
        key = clip_key(audio, options)
        text = self._texts.get(key)
        if text is not None:
            self.hits += 1
            return Transcription(
                text=text, segments=(), language=options.language or "",
                duration=len(audio) / SAMPLE_RATE, model=self.model_name, engine=self.engine,
                elapsed=0.0, options=options,
            )  # fmt: skip
        result = self.transcriber.transcribe(audio, options=options, progress=progress)
        self._texts[key] = result.text
        self._dirty = True
        return result

    def transcribe_batch(
        self, clips: Sequence[np.ndarray], *, options: TranscribeOptions = DEFAULT_OPTIONS
    ) -> list[Transcription | Exception]:
        return [self.transcribe(clip, options=options) for clip in clips]

    def save(self) -> None:
        """Write what was heard (atomically: a killed run leaves the old file whole)."""
        if not self._dirty:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        partial = self.path.with_suffix(f".{os.getpid()}.tmp")
        partial.write_text(json.dumps(self._texts, ensure_ascii=False), encoding="utf-8")
        partial.replace(self.path)
        self._dirty = False

    def _load(self) -> dict[str, str]:
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str)}


def memo_path(folder: Path, ct2_dir: Path, decoder: str | None = None) -> Path:
    """The memo of this model decoded on this machine (``decoder``: its fingerprint)."""
    machine = decoder if decoder is not None else decoder_fingerprint()
    return folder / f"{model_fingerprint(ct2_dir)[:32]}-{machine[:12]}.json"
