"""Training data: stored samples (+ optional base corpus) -> audio, serving features, labels.

Features are computed exactly as the serving engine computes them (NOTES §2):
faster-whisper takes the log-mel of the clip itself (plus 160 samples of padding, minus the
last frame) and pads the *log-mel* with zeros to 3000 frames, while transformers' feature
extractor pads the *audio* to 30 s before the log-mel. The padded region then differs
(0.0 versus ``(max - 8 + 4) / 4``), and a model trained on one sees the other as new input.
We train on faster-whisper's features, by calling faster-whisper's own feature extractor.

Labels are Whisper's training format with language and task forced:
``<|it|><|transcribe|><|notimestamps|> text<|endoftext|>`` (the model prepends
``<|startoftranscript|>`` when it shifts labels right). The text gets a leading space, as
in Whisper's pre-training and as the serving decoder emits it.

Audio stays as paths until needed and is decoded with soundfile / PyAV: ``datasets``' own
audio decoding is broken beside the CPU torch wheel (NOTES §9).
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from model.asr.normalize import normalize_text

if TYPE_CHECKING:
    from storage.audio_store import AudioStore
    from storage.samples import Sample

SAMPLE_RATE = 16_000
N_FRAMES = 3000  # log-mel frames in Whisper's 30 s window
N_MELS = 80
# Whisper's decoder has 448 positions; the prefix takes 4 of them.
MAX_LABEL_TOKENS = 440
MANIFEST_FILE = "metadata.csv"
# Training audio longer than Whisper's window would be cut mid-sentence: leave it out.
MAX_TRAIN_SECONDS = 30.0
# An hour of speech is far more than any corpus file should hold; decoding stops there.
_MAX_DECODE_SECONDS = 3600.0
# Integer PCM subtypes read directly with soundfile (every value is a valid sample).
_PLAIN_PCM = frozenset({"PCM_16", "PCM_24", "PCM_S8", "PCM_U8"})


class DataError(Exception):
    """Training or evaluation data is missing or malformed."""


@dataclass(frozen=True)
class Example:
    """One (audio, text) pair; ``key`` is stable across runs (an audio hash or a path)."""

    key: str
    text: str
    audio_path: Path


@dataclass(frozen=True, kw_only=True)
class Perturbation:
    """A speed change (resampling: tempo and pitch together, as in Kaldi) and added noise."""

    speed: float = 1.0
    snr_db: float | None = None


# --------------------------------------------------------------------------- sources


def examples_from_samples(samples: Iterable[Sample], store: AudioStore) -> list[Example]:
    """Stored samples whose audio is still in the store (purged audio is skipped)."""
    examples = []
    for sample in samples:
        path = store.path(sample.audio_sha256)
        if path.is_file():
            examples.append(Example(key=sample.audio_sha256, text=sample.text, audio_path=path))
    return examples


def read_manifest(
    path: Path, *, split: str | None = None, allow_outside: bool = False
) -> list[Example]:
    """Examples from a TSV (``model.asr.tsv``'s rules) or an audiofolder (``metadata.csv``).

    Paths are relative to the manifest's folder and, in a TSV, must stay inside it unless
    ``allow_outside`` (the run's own manifests, which point into the audio store). An
    audiofolder's optional ``split`` column is honoured when ``split`` is given.
    """
    from model.asr.tsv import ManifestError, read_tsv

    path = Path(path)
    if path.is_dir():
        return _read_audiofolder(path, split=split)
    try:
        clips = read_tsv(path, allow_outside=allow_outside)
    except ManifestError as exc:
        raise DataError(str(exc)) from exc
    return [Example(key=str(c.audio_path), text=c.text, audio_path=c.audio_path) for c in clips]


def _read_audiofolder(folder: Path, *, split: str | None) -> list[Example]:
    manifest = folder / MANIFEST_FILE
    if not manifest.is_file():
        raise DataError(f"{folder} has no {MANIFEST_FILE}")
    examples = []
    with manifest.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            name = row.get("file_name")
            text = row.get("transcription") or row.get("sentence") or row.get("text")
            if not name or text is None:
                raise DataError(f"{manifest} needs file_name and transcription columns")
            if split is not None and row.get("split", split) != split:
                continue
            audio = folder / name
            examples.append(Example(key=str(audio), text=text.strip(), audio_path=audio))
    return examples


def replay_mix(
    examples: Sequence[Example], base: Sequence[Example], *, ratio: float, seed: int
) -> list[Example]:
    """``examples`` plus ``ratio`` times as many base-corpus examples (replay)."""
    if ratio <= 0 or not base:
        return list(examples)
    count = min(len(base), max(1, round(len(examples) * ratio)))
    rng = np.random.default_rng(seed)
    chosen = rng.choice(len(base), size=count, replace=False)
    return [*examples, *(base[i] for i in sorted(chosen))]


# --------------------------------------------------------------------------- audio


def load_audio(path: Path) -> np.ndarray:
    """float32 mono 16 kHz samples: soundfile for 16 kHz integer PCM (the store's FLAC, whose
    samples cannot be out of range), the sandboxed PyAV decoder for everything else."""
    path = Path(path)
    if path.suffix.lower() in {".flac", ".wav"}:
        import soundfile

        try:
            info = soundfile.info(str(path))
            if info.samplerate == SAMPLE_RATE and info.subtype in _PLAIN_PCM:
                samples, _rate = soundfile.read(path, dtype="float32", always_2d=True)
                return np.ascontiguousarray(samples.mean(axis=1), dtype=np.float32)
        except (OSError, RuntimeError) as exc:
            raise DataError(f"cannot read {path}: {exc}") from exc
    from model.asr.audio import AudioError, AudioLimits, decode_audio

    limits = AudioLimits(max_seconds=_MAX_DECODE_SECONDS, min_seconds=0.0, max_bytes=2**40)
    try:
        return decode_audio(path, limits=limits).samples
    except AudioError as exc:
        raise DataError(f"cannot decode {path}: {exc}") from exc


def perturb(samples: np.ndarray, p: Perturbation, *, rng: np.random.Generator) -> np.ndarray:
    """``samples`` played ``p.speed`` times faster, with white noise at ``p.snr_db``."""
    out = samples.astype(np.float32, copy=True)
    if p.speed != 1.0 and out.size > 1:
        length = max(1, round(out.size / p.speed))
        positions = np.linspace(0, out.size - 1, length)
        out = np.interp(positions, np.arange(out.size), out).astype(np.float32)
    if p.snr_db is not None:
        power = float(np.mean(out**2)) or 1e-8
        noise_power = power / (10 ** (p.snr_db / 10))
        out = out + rng.normal(0.0, np.sqrt(noise_power), out.size).astype(np.float32)
        peak = float(np.max(np.abs(out)))
        if peak > 1.0:
            out /= peak
    return out


def random_perturbations(count: int, *, rng: np.random.Generator) -> list[Perturbation]:
    """``count`` random speed (0.85-1.15) and noise (10-30 dB SNR) perturbations."""
    return [
        Perturbation(speed=float(rng.uniform(0.85, 1.15)), snr_db=float(rng.uniform(10, 30)))
        for _ in range(count)
    ]


# --------------------------------------------------------------------------- features


class ServingFeatures:
    """Log-mel features exactly as faster-whisper computes them for a clip (see module doc)."""

    def __init__(self, n_mels: int = N_MELS) -> None:
        from faster_whisper.feature_extractor import FeatureExtractor

        self._extractor = FeatureExtractor(feature_size=n_mels)

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        from faster_whisper.audio import pad_or_trim

        # faster-whisper drops the last frame (content_frames = frames - 1), then pads.
        mel = self._extractor(samples.astype(np.float32, copy=False))[:, :-1]
        return pad_or_trim(mel, N_FRAMES).astype(np.float32, copy=False)


# --------------------------------------------------------------------------- labels

# Whisper's control tokens all open with this (see ``storage.labels.CONTROL_TOKEN``).
_CONTROL_OPENER = re.compile(r"(<\|)")


class LabelEncoder:
    """Text -> Whisper label ids with the language and task forced, timestamps off."""

    def __init__(self, model_dir: Path, *, language: str, task: str = "transcribe") -> None:
        from transformers import WhisperTokenizer

        self.tokenizer = WhisperTokenizer.from_pretrained(str(model_dir))
        self.tokenizer.set_prefix_tokens(language=language, task=task, predict_timestamps=False)
        self.start_token_id = self.tokenizer.convert_tokens_to_ids("<|startoftranscript|>")

    def __call__(self, text: str) -> list[int]:
        text_ids = self.text_ids(" " + " ".join(text.split()))
        ids = list(self.tokenizer.build_inputs_with_special_tokens(text_ids))
        if ids and ids[0] == self.start_token_id:
            ids = ids[1:]  # the model prepends it when shifting labels right
        if len(ids) > MAX_LABEL_TOKENS:
            ids = [*ids[: MAX_LABEL_TOKENS - 1], ids[-1]]
        return ids

    def text_ids(self, text: str) -> list[int]:
        """``text`` as plain BPE pieces: label text spelt like a control token
        (``<|endoftext|>``, or a timestamp such as ``<|5.00|>``, which the tokenizer treats
        as an added, not a special, token) never becomes that token. Each ``<|`` starts a
        piece of its own, so no added token can match across it."""
        ids: list[int] = []
        for piece in _CONTROL_OPENER.split(text):
            if piece:
                ids += self.tokenizer.encode(
                    piece, add_special_tokens=False, split_special_tokens=True
                )
        return ids


def pad_labels(batch: Sequence[Sequence[int]]) -> Any:
    """A (batch, longest) LongTensor of labels, padding masked with -100 (ignored by loss)."""
    import torch

    longest = max(len(ids) for ids in batch)
    out = torch.full((len(batch), longest), -100, dtype=torch.long)
    for row, ids in enumerate(batch):
        out[row, : len(ids)] = torch.tensor(ids, dtype=torch.long)
    return out


# --------------------------------------------------------------------------- base corpus


@dataclass(frozen=True)
class PreparedCorpus:
    path: Path
    examples: int
    skipped: int
    seconds: float


def prepare_corpus(
    source: str,
    out_dir: Path,
    *,
    config: str | None = None,
    split: str = "train",
    text_column: str | None = None,
    max_samples: int | None = None,
    max_seconds: float = MAX_TRAIN_SECONDS,
) -> PreparedCorpus:
    """Write ``source`` as an audiofolder of 16 kHz FLAC (``metadata.csv`` + ``audio/``).

    ``source`` is a local manifest (TSV or audiofolder) or a ``datasets`` id such as
    ``mozilla-foundation/common_voice_11_0`` (with ``config="it"``), streamed so only what
    is used is downloaded. Audio is decoded here, not by ``datasets`` (NOTES §9). Clips
    longer than Whisper's window, or empty, are skipped. Written atomically.
    """
    import os
    import shutil
    import tempfile

    import soundfile

    out_dir = Path(out_dir)
    if out_dir.exists() and not (out_dir / MANIFEST_FILE).is_file():
        # Only a prepared corpus is ever replaced: a mistyped name must not empty a folder.
        raise DataError(f"{out_dir} exists and is not a prepared corpus: not replacing it")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.tmp-", dir=out_dir.parent))
    rows: list[tuple[str, str]] = []
    skipped = 0
    seconds = 0.0
    try:
        (tmp / "audio").mkdir()
        for samples, text in _corpus_rows(source, config, split, text_column):
            if max_samples is not None and len(rows) >= max_samples:
                break
            text = " ".join((text or "").split())
            if not text or samples.size == 0 or samples.size > max_seconds * SAMPLE_RATE:
                skipped += 1
                continue
            name = f"audio/{len(rows):07d}.flac"
            soundfile.write(tmp / name, samples, SAMPLE_RATE, format="FLAC", subtype="PCM_16")
            rows.append((name, text))
            seconds += samples.size / SAMPLE_RATE
        with (tmp / MANIFEST_FILE).open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(("file_name", "transcription"))
            writer.writerows(rows)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return PreparedCorpus(out_dir, len(rows), skipped, round(seconds, 1))


def _corpus_rows(
    source: str, config: str | None, split: str, text_column: str | None
) -> Iterable[tuple[np.ndarray, str]]:
    local = Path(source).expanduser()
    if local.exists():
        for example in read_manifest(local):
            try:
                yield load_audio(example.audio_path), example.text
            except DataError:
                yield np.zeros(0, dtype=np.float32), ""
        return
    import io

    from datasets import Audio, load_dataset

    from model.asr.audio import AudioError, AudioLimits, decode_audio

    dataset = load_dataset(source, config, split=split, streaming=True)
    dataset = dataset.cast_column("audio", Audio(decode=False))  # decoded below, not by datasets
    limits = AudioLimits(max_seconds=_MAX_DECODE_SECONDS, min_seconds=0.0, max_bytes=2**40)
    for row in dataset:
        column = text_column or next(
            (c for c in ("sentence", "transcription", "text", "normalized_text") if c in row), None
        )
        if column is None:
            raise DataError(f"{source}: no text column; pass text_column")
        audio = row["audio"]
        try:
            raw = audio.get("bytes") or Path(audio["path"]).read_bytes()
            yield decode_audio(io.BytesIO(raw), limits=limits).samples, str(row[column])
        except (AudioError, OSError):
            yield np.zeros(0, dtype=np.float32), ""


# Salt so the validation choice is independent of the held-out split's hashing.
_VALIDATION_SALT = b"whisper-it/validation/v1:"


def _validation_rank(sentence: str) -> int:
    """A normalised sentence's place in [0, 2**64): under ``fraction`` of it, validation."""
    return int.from_bytes(hashlib.sha256(_VALIDATION_SALT + sentence.encode()).digest()[:8], "big")


def split_validation(
    examples: Sequence[Example], *, fraction: float, min_sentences: int
) -> tuple[list[Example], list[Example]]:
    """(train, validation): about ``fraction`` of the *sentences*, chosen by hash, with all
    their clips; no validation when ``fraction`` of them is fewer than ``min_sentences``
    sentences, or it would leave training without any.

    The sentences whose hash falls under ``fraction`` of the range, so more data never
    moves a training sentence to validation. When that draw picks fewer than
    ``min_sentences`` although ``fraction`` of the sentences is at least as many, the
    ``min_sentences`` lowest hashes (they include the draw's): otherwise the draw alone
    decided whether a run of 23 sentences could stop at its best step (it picked 2, and
    all six encoder layers overfit over 3 passes, demo_training.md round 4)."""
    groups = sorted({normalize_text(e.text) for e in examples})
    if fraction <= 0 or fraction * len(groups) < min_sentences:
        return list(examples), []
    chosen = {g for g in groups if _validation_rank(g) < fraction * 2**64}
    if len(chosen) < min_sentences:
        chosen = set(sorted(groups, key=_validation_rank)[:min_sentences])
    if len(chosen) == len(groups):
        return list(examples), []
    train = [e for e in examples if normalize_text(e.text) not in chosen]
    validation = [e for e in examples if normalize_text(e.text) in chosen]
    return train, validation
