"""Voice-activity detection on voice notes: where does it help, in WER and speed?

Notes of ``--durations`` seconds (espeak-ng Italian sentences in varied voices), each in
two forms: as spoken (short pauses) and "with gaps" (5 s of quiet room noise between
sentences, as real voice notes have). Each note goes through the three CT2 decoding paths
the bot can take (packaged whisper-base, int8, beam 5):

- ``sequential``: plain 30 s windows, no VAD (today: notes up to 30 s when timings are
  wanted — subtitles, timestamps, links);
- ``sequential+vad``: the same with faster-whisper's Silero VAD filter
  (``TranscribeOptions.vad_filter``);
- ``batched``: faster-whisper's batched pipeline, which always splits on VAD (today:
  every note past one window, i.e. 30-60 s notes).

One run per note and path after a warm-up (the VAD model loads then). WER against the
sentences spoken; seconds of wall time.

    .venv/bin/python benchmarks/vad_notes.py [--durations 25 40 55]

Writes ``benchmarks/results/vad_notes.json`` and ``vad_notes.md``.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

MODEL_SPEC = "packaged:whisper-base"
DEFAULT_DURATIONS = (25.0, 40.0, 55.0)
BEAM_SIZE = 5  # the serving default
BATCH_SIZE = 8  # the serving default for long audio
GAP_SECONDS = 5.0
GAP_NOISE_RMS = 0.003  # a quiet room, well below speech
NOISE_SEED = 7
PATHS = ("sequential", "sequential+vad", "batched")
RESULT_NAME = "vad_notes"


def run(*, durations: list[float], cache_dir: Path, results_dir: Path) -> dict[str, object]:
    from model.asr.normalize import error_rates
    from model.asr.sources import load_transcriber
    from model.asr.transcription import TranscribeOptions

    machine = _common.machine_info()
    engine = load_transcriber(MODEL_SPEC, engine="ct2", cache_dir=cache_dir)
    base = TranscribeOptions(beam_size=BEAM_SIZE)
    options = {
        "sequential": replace(base, chunk_batch=0, vad_filter=False),
        "sequential+vad": replace(base, chunk_batch=0, vad_filter=True),
        "batched": replace(base, chunk_batch=BATCH_SIZE),
    }
    notes: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="vad-notes-") as tmp:
        workdir = Path(tmp)
        warm = _common.italian_speech(5.0, workdir / "warm")
        for option in options.values():
            engine.transcribe(warm.samples, options=option)
        for seconds in durations:
            speech = _common.italian_speech(seconds, workdir / f"n{seconds:.0f}")
            gapped, gapped_text = _gapped(seconds, workdir / f"g{seconds:.0f}")
            for form, samples, reference in (
                ("spoken", speech.samples, speech.text),
                ("with gaps", gapped, gapped_text),
            ):
                row: dict[str, object] = {
                    "target_seconds": seconds,
                    "form": form,
                    "seconds": round(samples.size / _common.SAMPLE_RATE, 1),
                    "words": len(reference.split()),
                }
                for path, option in options.items():
                    started = time.perf_counter()
                    result = engine.transcribe(samples, options=option)
                    elapsed = time.perf_counter() - started
                    rates = error_rates([reference], [result.text])
                    row[path] = {"seconds": round(elapsed, 2), "wer": round(rates.wer, 4)}
                notes.append(row)
                print(row, flush=True)
    data = {
        "model": MODEL_SPEC,
        "beam_size": BEAM_SIZE,
        "batch_size": BATCH_SIZE,
        "gap_seconds": GAP_SECONDS,
        "notes": notes,
        "totals": _totals(notes),
        "machine": machine,
        "load_average_at_end": _common.load_average(),
    }
    _common.write_results(RESULT_NAME, data, _markdown(data), results_dir=results_dir)
    return data


def _gapped(seconds: float, workdir: Path) -> tuple[np.ndarray, str]:
    """The pool's sentences, each followed by a gap of quiet room noise, up to ``seconds``."""
    from model.asr.audio import SAMPLE_RATE, decode_audio
    from tests.support.speech import synthesize

    workdir.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(NOISE_SEED)
    pieces: list[np.ndarray] = []
    texts: list[str] = []
    total, limit = 0, int(seconds * SAMPLE_RATE)
    for index, sentence in enumerate(_common.ITALIAN_SENTENCES):
        voice = _common.ITALIAN_VOICES[index % len(_common.ITALIAN_VOICES)]
        wav = synthesize(sentence, workdir / f"g{index:03d}.wav", voice=voice)
        samples = decode_audio(wav).samples
        if total + samples.size > limit:
            break
        gap = rng.standard_normal(int(GAP_SECONDS * SAMPLE_RATE)) * GAP_NOISE_RMS
        pieces += [samples, gap.astype(np.float32)]
        texts.append(sentence)
        total += samples.size + gap.size
    return np.concatenate(pieces)[:limit].astype(np.float32), " ".join(texts)


def _totals(notes: list[dict[str, object]]) -> dict[str, dict[str, float]]:
    totals: dict[str, dict[str, float]] = {}
    for form in ("spoken", "with gaps"):
        rows = [n for n in notes if n["form"] == form]
        for path in PATHS:
            words = sum(int(n["words"]) for n in rows)  # type: ignore[arg-type]
            errors = sum(n[path]["wer"] * int(n["words"]) for n in rows)  # type: ignore[index]
            seconds = sum(n[path]["seconds"] for n in rows)  # type: ignore[index]
            totals[f"{form} / {path}"] = {
                "wer": round(errors / words, 4),
                "seconds": round(seconds, 2),
            }
    return totals


def _markdown(data: dict[str, object]) -> str:
    rows = []
    for note in data["notes"]:  # type: ignore[union-attr]
        rows.append(
            [f"{note['seconds']} s", note["form"], note["words"]]
            + [f"{note[path]['wer']:.1%} in {note[path]['seconds']:.1f} s" for path in PATHS]
        )
    totals = [
        [key, f"{value['wer']:.1%}", f"{value['seconds']:.1f}"]
        for key, value in data["totals"].items()  # type: ignore[union-attr]
    ]
    machine = data["machine"]
    return (
        "# Voice-activity detection on voice notes\n\n"
        f"`{data['model']}` through CT2 int8 on cpu, beam {data['beam_size']}; espeak-ng "
        "Italian sentences in varied voices, as spoken (short pauses) and with "
        f"{data['gap_seconds']:.0f} s of quiet room noise between sentences. One run per "
        "note and path after a warm-up. WER against the sentences spoken (word-weighted in "
        "the totals); wall seconds.\n\n"
        + _common.markdown_table(["note", "form", "words", *PATHS], rows)
        + "\n"
        + _common.markdown_table(["form / path", "WER", "seconds"], totals)
        + f"\n{machine['cpu_count']} × {machine['cpu']}, "  # type: ignore[index]
        f"load average {machine['load_average_1_5_15']} at start, "  # type: ignore[index]
        f"{data['load_average_at_end']} at end (shared machine: expect noise); "
        f"{machine['timestamp_utc']}, commit {machine['git_commit']}.\n"  # type: ignore[index]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=list(DEFAULT_DURATIONS))
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    args = parser.parse_args(argv)
    run(durations=args.durations, cache_dir=args.cache_dir, results_dir=args.results_dir)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
