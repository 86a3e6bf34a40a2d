"""The decoding sandbox's cost per note: sandboxed vs in-process ``decode_audio``.

Voice notes (espeak-ng Italian, Opus in OGG as Telegram sends them) of ``--durations``
seconds, each decoded to 16 kHz float32 by ``model.asr.audio.decode_audio``:

- **in process**: ``SandboxLimits(enabled=False)``, the decoder before issue 18;
- **sandbox, warm**: the default, a warm pool of one decoder process (what the bot does
  from its second note on): the file goes to the child, the samples come back by pipe;
- **sandbox, cold**: a fresh pool per note (a child started, used once, killed): the price
  of the first note after start-up, or of a note after a hostile file killed the child.

Median of ``--runs`` (contenders interleaved), milliseconds, and the ratio to in process.

    .venv/bin/python benchmarks/decode_sandbox.py [--durations 5 30 300] [--runs 7]

About a minute on 2 busy cores. Writes ``benchmarks/results/decode_sandbox.{json,md}``.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

REPO_ROOT = Path(__file__).resolve().parents[1]
if str(REPO_ROOT) not in sys.path:
    sys.path.insert(0, str(REPO_ROOT))

import _common  # noqa: E402

RESULT_NAME = "decode_sandbox"
DEFAULT_DURATIONS = (5.0, 30.0, 300.0)
DEFAULT_RUNS = 7
SPEECH_SECONDS = 30.0  # longer notes repeat this much speech
OPUS_BITRATE = "32k"


def _note(seconds: float, work: Path) -> Path:
    speech = _common.italian_speech(min(seconds, SPEECH_SECONDS), work / "speech")
    repeats = int(np.ceil(seconds * _common.SAMPLE_RATE / speech.samples.size))
    samples = np.tile(speech.samples, repeats)[: int(seconds * _common.SAMPLE_RATE)]
    wav = _common.write_wav(samples, work / f"note{seconds:g}.wav")
    ogg = wav.with_suffix(".ogg")
    subprocess.run(
        ["ffmpeg", "-y", "-loglevel", "error", "-i", str(wav), "-c:a", "libopus",
         "-b:a", OPUS_BITRATE, str(ogg)],
        check=True,
    )  # fmt: skip
    return ogg


def measure(note: bytes, runs: int) -> dict[str, _common.Timing]:
    from model.asr.audio import AudioLimits, decode_audio
    from model.asr.sandbox import DecoderPool, SandboxLimits

    in_process = AudioLimits(sandbox=SandboxLimits(enabled=False))
    warm_limits = SandboxLimits()
    warm = DecoderPool(warm_limits)

    def sandbox_warm() -> object:
        result = warm.decode(None, note, AudioLimits(sandbox=warm_limits))
        assert result.samples is not None, result
        return result

    def sandbox_cold() -> object:
        pool = DecoderPool(warm_limits)
        try:
            result = pool.decode(None, note, AudioLimits(sandbox=warm_limits))
        finally:
            pool.close()
        assert result.samples is not None, result
        return result

    try:
        return _common.time_interleaved(
            {
                "in process": lambda: decode_audio(note, limits=in_process),
                "sandbox, warm": sandbox_warm,
                "sandbox, cold": sandbox_cold,
            },
            runs=runs,
        )
    finally:
        warm.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--durations", type=float, nargs="+", default=list(DEFAULT_DURATIONS))
    parser.add_argument("--runs", type=int, default=DEFAULT_RUNS)
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    args = parser.parse_args(argv)
    rows: list[list[object]] = []
    data: dict[str, object] = {"machine": _common.machine_info(), "runs": args.runs}
    results: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in args.durations:
            note = _note(seconds, Path(tmp) / f"n{seconds:g}").read_bytes()
            timings = measure(note, args.runs)
            base = timings["in process"].median
            entry: dict[str, object] = {"seconds": seconds, "bytes": len(note)}
            for name, timing in timings.items():
                entry[name] = {**timing.as_dict(), "ratio": round(timing.median / base, 2)}
                rows.append(
                    [f"{seconds:g} s", name, f"{timing.median * 1000:.1f}",
                     f"{timing.median / base:.2f}x"]
                )  # fmt: skip
            results.append(entry)
    data["results"] = results
    data["load_average_after"] = _common.load_average()
    table = _common.markdown_table(["note", "decoder", "median ms", "vs in process"], rows)
    markdown = f"# Decoding sandbox: cost per note\n\n{args.runs} runs each.\n\n{table}"
    paths = _common.write_results(RESULT_NAME, data, markdown, results_dir=args.results_dir)
    print(markdown)
    print("wrote", *paths)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
