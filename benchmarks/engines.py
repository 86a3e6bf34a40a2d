"""The same model and audio through both engines: CTranslate2 (faster-whisper) vs transformers.

Clips of about 5 s and 30 s of espeak-ng Italian (concatenated sentences, never over the
target, so the 30 s clip is one Whisper window), greedy (beam 1) and beam 5. For each
configuration both engines get a warm-up call, then ``--runs`` timed calls, alternating
engine by engine; the median seconds, the real-time factor (seconds per second of audio)
and the ratio transformers / CT2 are reported, with each engine's WER against the text
spoken as a sanity column.

    .venv/bin/python benchmarks/engines.py [--runs 3] [--quick] [--threads N]

Writes ``benchmarks/results/engines.json`` and ``engines.md`` (``engines-quick.*`` with
``--quick``: one timed run, 5 s clip only; ``engines-threadsN.*`` with ``--threads N``,
which gives both engines N CPU threads: on a loaded machine torch's default thread pool
slows down several-fold, so a one-thread run compares the engines more fairly).
"""

from __future__ import annotations

import argparse
import functools
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

MODEL_SPEC = "packaged:whisper-base"
ENGINES = ("ct2", "transformers")
CLIP_SECONDS = (5.0, 30.0)
BEAMS = (1, 5)
DEFAULT_RUNS = 3
RESULT_NAME = "engines"


def _load_engines(cache_dir: Path, threads: int) -> tuple[dict[str, object], dict[str, float]]:
    import torch

    from model.asr.sources import load_transcriber

    if threads > 0:
        torch.set_num_threads(threads)
    engines: dict[str, object] = {}
    load_seconds: dict[str, float] = {}
    for name in ENGINES:
        started = time.perf_counter()
        engines[name] = load_transcriber(
            MODEL_SPEC, engine=name, cache_dir=cache_dir, cpu_threads=threads
        )
        load_seconds[name] = round(time.perf_counter() - started, 2)
    return engines, load_seconds


def _engine_settings(engines: dict[str, object], threads: int) -> dict[str, dict[str, object]]:
    import torch

    ct2, hf = engines["ct2"], engines["transformers"]
    return {
        "ct2": {
            "device": ct2.device,  # type: ignore[attr-defined]
            "compute_type": ct2.compute_type,  # type: ignore[attr-defined]
            "cpu_threads": threads or "default",
        },
        "transformers": {
            "device": hf.device,  # type: ignore[attr-defined]
            "dtype": str(hf.dtype).removeprefix("torch."),  # type: ignore[attr-defined]
            "torch_threads": torch.get_num_threads(),
        },
    }


def run(
    *, runs: int, quick: bool, threads: int, cache_dir: Path, results_dir: Path
) -> dict[str, object]:
    from model.asr.normalize import error_rates
    from model.asr.transcription import TranscribeOptions

    info = _common.machine_info()
    engines, load_seconds = _load_engines(cache_dir, threads)
    clip_targets = CLIP_SECONDS[:1] if quick else CLIP_SECONDS
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        clips = {
            target: _common.italian_speech(target, Path(tmp) / f"clip{int(target)}")
            for target in clip_targets
        }
    for target, clip in clips.items():
        for beam in BEAMS:
            options = TranscribeOptions(beam_size=beam)
            calls = {
                name: functools.partial(engine.transcribe, clip.samples, options=options)  # type: ignore[attr-defined]
                for name, engine in engines.items()
            }
            timings = _common.time_interleaved(calls, runs=runs)
            row: dict[str, object] = {
                "clip_target_s": target,
                "clip_s": round(clip.duration, 2),
                "beam_size": beam,
                "reference": clip.text,
            }
            for name, timing in timings.items():
                text = timing.result.text
                row[name] = {
                    **timing.as_dict(),
                    "rtf": round(timing.median / clip.duration, 4),
                    "wer": round(error_rates([clip.text], [text]).wer, 4),
                    "text": text,
                }
            hf_timing, ct2_timing = timings["transformers"], timings["ct2"]
            row["ratio_transformers_over_ct2"] = round(hf_timing.median / ct2_timing.median, 2)
            # The fastest run is the least disturbed by other work on a shared machine.
            row["ratio_of_fastest_runs"] = round(min(hf_timing.runs) / min(ct2_timing.runs), 2)
            rows.append(row)
            print(_summary_line(row), flush=True)
    data: dict[str, object] = {
        "benchmark": RESULT_NAME,
        "model": MODEL_SPEC,
        "runs": runs,
        "warmup": 1,
        "quick": quick,
        "machine": info,
        "load_average_at_end": _common.load_average(),
        "threads": threads or "default",
        "engines": _engine_settings(engines, threads),
        "load_seconds": load_seconds,
        "results": rows,
    }
    name = RESULT_NAME + (f"-threads{threads}" if threads else "") + ("-quick" if quick else "")
    paths = _common.write_results(name, data, _markdown(data), results_dir=results_dir)
    print("wrote", *(str(p) for p in paths))
    return data


def _summary_line(row: dict[str, object]) -> str:
    ct2, hf = row["ct2"], row["transformers"]
    return (
        f"{row['clip_s']:>5} s beam {row['beam_size']}: "
        f"ct2 {ct2['median_s']:.2f} s (WER {ct2['wer']:.0%}), "  # type: ignore[index]
        f"transformers {hf['median_s']:.2f} s (WER {hf['wer']:.0%}), "  # type: ignore[index]
        f"x{row['ratio_transformers_over_ct2']}"
    )


def _markdown(data: dict[str, object]) -> str:
    machine = data["machine"]
    settings = data["engines"]
    ct2, hf = settings["ct2"], settings["transformers"]  # type: ignore[index]
    headers = [
        "clip",
        "beam",
        "CT2 s",
        "CT2 RTF",
        "CT2 WER",
        "transformers s",
        "transformers RTF",
        "transformers WER",
        "transformers / CT2",
    ]
    table_rows = []
    for row in data["results"]:  # type: ignore[attr-defined]
        a, b = row["ct2"], row["transformers"]
        table_rows.append(
            [
                f"{row['clip_s']} s",
                row["beam_size"],
                f"{a['median_s']:.2f} ({a['min_s']:.2f})",
                f"{a['rtf']:.3f}",
                f"{a['wer']:.0%}",
                f"{b['median_s']:.2f} ({b['min_s']:.2f})",
                f"{b['rtf']:.3f}",
                f"{b['wer']:.0%}",
                f"{row['ratio_transformers_over_ct2']:.1f}× ({row['ratio_of_fastest_runs']:.1f}×)",
            ]
        )
    return (
        "# Engines: CTranslate2 vs transformers\n\n"
        f"Model `{data['model']}`; CT2 {ct2['compute_type']} on {ct2['device']} "
        f"({ct2['cpu_threads']} threads), transformers {hf['dtype']} on {hf['device']} "
        f"({hf['torch_threads']} torch threads). "
        f"Seconds: median of {data['runs']} runs (fastest in brackets) after 1 warm-up, "
        "engines alternating; RTF and ratio from the medians (ratio of the fastest runs in "
        "brackets). espeak-ng Italian; WER against the text spoken (normalised).\n\n"
        + _common.markdown_table(headers, table_rows)
        + f"\n{machine['cpu_count']} × {machine['cpu']}, "  # type: ignore[index]
        f"load average {machine['load_average_1_5_15']} at start, "  # type: ignore[index]
        f"{data['load_average_at_end']} at end (shared machine: expect noise); "
        f"{machine['timestamp_utc']}, commit {machine['git_commit']}.\n"  # type: ignore[index]
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS, help="timed runs per cell")
    parser.add_argument("--quick", action="store_true", help="1 run, 5 s clip only")
    parser.add_argument(
        "--threads",
        type=int,
        default=0,
        help="CPU threads for both engines (0: each library's default); writes engines-threadsN.*",
    )
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    args = parser.parse_args(argv)
    runs = 1 if args.quick else args.runs
    run(
        runs=runs,
        quick=args.quick,
        threads=args.threads,
        cache_dir=args.cache_dir,
        results_dir=args.results_dir,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
