"""A training run beside the bot on the same cores: how much slower does a user's note get,
and does the trainer's OpenMP wait policy matter?

torch (the trainer) and CTranslate2 (the bot) run OpenMP thread teams whose idle threads,
by default, spin for a while before they sleep: on a small machine a trainer's spinning
threads compete with the bot's transcription for the same cores. Here the bot's decoding
(CT2 int8, the packaged whisper-base, 2 threads, beam 5, a 10 s espeak note) is timed
alone, then beside a fine-tuning loop (``benchmarks/training.py``'s ``cpu-all`` steps, 2
threads, the CPU default mode) started with the default wait policy or with
``OMP_WAIT_POLICY=PASSIVE``; the two trainer conditions alternate, twice each.

    .venv/bin/python benchmarks/training_interference.py [--notes 6] [--rounds 2]

Writes ``benchmarks/results/training_interference.{json,md}``. The trainer subprocess is
killed after each measurement (it never finishes, so it writes no results of its own).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

RESULT_NAME = "training_interference"
MODEL_SPEC = "packaged:whisper-base"
THREADS = 2
NOTE_SECONDS = 10.0
TRAINER_CONFIG = "cpu-all"
# Long enough for the trainer to load torch and the model and reach its steps.
TRAINER_WARMUP_SECONDS = 25.0
POLICIES = {"default": None, "PASSIVE": "PASSIVE"}


def _trainer(policy: str | None) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if policy is not None:
        env["OMP_WAIT_POLICY"] = policy
    command = [
        sys.executable,
        str(REPO_ROOT / "benchmarks" / "training.py"),
        "--steps",
        "100000",  # never reached: killed after the measurement
        "--threads",
        str(THREADS),
        "--configs",
        TRAINER_CONFIG,
    ]
    return subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def _note_seconds(transcriber, samples, notes: int) -> list[float]:
    from model.asr.transcription import TranscribeOptions

    options = TranscribeOptions(beam_size=5)
    times = []
    for _ in range(notes):
        started = time.perf_counter()
        transcriber.transcribe(samples, options=options)
        times.append(time.perf_counter() - started)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--notes", type=int, default=6, help="timed notes per condition")
    parser.add_argument("--rounds", type=int, default=2, help="rounds of the two trainers")
    args = parser.parse_args()
    info = _common.machine_info()
    from model.asr.sources import load_transcriber

    transcriber = load_transcriber(
        MODEL_SPEC, engine="ct2", cache_dir=_common.DEFAULT_CACHE_DIR, cpu_threads=THREADS
    )
    with tempfile.TemporaryDirectory(prefix="interference-") as scratch:
        speech = _common.italian_speech(NOTE_SECONDS, Path(scratch))
    _note_seconds(transcriber, speech.samples, 1)  # warm-up
    results: dict[str, list[float]] = {
        "alone": _note_seconds(transcriber, speech.samples, args.notes)
    }
    for _ in range(args.rounds):
        for name, policy in POLICIES.items():
            trainer = _trainer(policy)
            try:
                time.sleep(TRAINER_WARMUP_SECONDS)
                assert trainer.poll() is None, "the trainer stopped early"
                times = _note_seconds(transcriber, speech.samples, args.notes)
            finally:
                trainer.kill()
                trainer.wait()
            results.setdefault(f"trainer, {name} wait", []).extend(times)
            print(name, [round(t, 2) for t in times], flush=True)
    alone = statistics.median(results["alone"])
    rows = [
        [
            name,
            f"{statistics.median(times):.2f}",
            f"{statistics.median(times) / alone:.2f}×",
            len(times),
        ]
        for name, times in results.items()
    ]
    data = {"machine": info, "note_seconds": speech.duration, "results": results}
    markdown = (
        "# A note transcribed while a training run shares the cores\n\n"
        f"CT2 int8 {MODEL_SPEC}, {THREADS} threads, beam 5, a {speech.duration:.1f} s espeak "
        f"note; the trainer: `benchmarks/training.py --configs {TRAINER_CONFIG}`, "
        f"{THREADS} threads. Machine: {info.get('cpu', '?')}, {os.cpu_count()} cores, load "
        f"{info.get('load_average_1_5_15', '?')} at the start; "
        f"commit {info.get('git_commit', '?')}."
        "\n\n"
        + _common.markdown_table(["condition", "median s per note", "× alone", "notes"], rows)
    )
    _common.write_results(RESULT_NAME, data, markdown)
    print(markdown)


if __name__ == "__main__":
    main()
