"""The packaged general set: the base model's WER on it, what the Opus encoding costs in WER
against the festival WAVs it was made from, and how long judging it takes.

Each variant is scored the way the gate scores a model (``training.evaluate.evaluate_ct2``:
CTranslate2 int8, beam 5, the serving engine and normaliser): the packaged clips as
shipped, the same sentences as 16 kHz WAV (rendered here by
``scripts/render_general_set.py``), and optionally other Opus bitrates made from those
WAVs. Writes ``benchmarks/results/general_set.{json,md}``.

    python benchmarks/general_set.py --bitrates 16k,32k
"""

from __future__ import annotations

import argparse
import importlib.util
import resource
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common

RENDER_SCRIPT = _common.REPO_ROOT / "scripts" / "render_general_set.py"
BASE_MODEL = "packaged:whisper-base"


def _render_module() -> Any:
    spec = importlib.util.spec_from_file_location("render_general_set", RENDER_SCRIPT)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _variants(workdir: Path, bitrates: list[str]) -> dict[str, Path]:
    """Manifests by name: the packaged set, its WAVs, and the other bitrates."""
    from training.general_set import packaged_manifest

    render = _render_module()
    wav_dir = workdir / "wav"
    if not (wav_dir / render.MANIFEST).is_file():
        render.render(workdir / "packaged-copy", wav_dir=wav_dir)
    variants = {
        f"packaged (Opus {render.OPUS_BITRATE})": packaged_manifest(),
        "WAV": wav_dir / render.MANIFEST,
    }
    for bitrate in bitrates:
        folder = workdir / f"opus-{bitrate}"
        folder.mkdir(exist_ok=True)
        rows = []
        for line in (wav_dir / render.MANIFEST).read_text(encoding="utf-8").splitlines()[1:]:
            name, text, speaker = line.split("\t")
            ogg = Path(name).with_suffix(".ogg").name
            render.encode_opus(wav_dir / name, folder / ogg, bitrate=bitrate)
            rows.append(f"{ogg}\t{text}\t{speaker}")
        (folder / render.MANIFEST).write_text("\n".join(rows) + "\n", encoding="utf-8")
        variants[f"Opus {bitrate}"] = folder / render.MANIFEST
    return variants


def _cpu_seconds() -> float:
    own, children = (
        resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)
    )
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run(
    workdir: Path, cache_dir: Path, bitrates: list[str], beam_size: int, *, wav: bool = True
) -> dict[str, Any]:
    from model.asr import sources
    from model.asr.tsv import read_tsv
    from training.evaluate import evaluate_ct2

    ct2 = sources.ct2_dir(BASE_MODEL, cache_dir=cache_dir).path
    rows = {}
    for name, manifest in _variants(workdir, bitrates).items():
        if name == "WAV" and not wav:
            continue
        clips = read_tsv(manifest)
        cpu_before = _cpu_seconds()
        result = evaluate_ct2(ct2, clips, model_name="whisper-base", beam_size=beam_size)
        cpu = _cpu_seconds() - cpu_before
        size = sum(c.audio_path.stat().st_size for c in clips)
        rows[name] = {
            "clips": len(clips),
            "megabytes": round(size / 1e6, 2),
            "audio_seconds": round(result.audio_seconds, 1),
            "eval_seconds": round(result.elapsed, 1),
            # Load-independent: this process's threads and its decoder children.
            "cpu_seconds": round(cpu, 1),
            **result.rates.as_dict(),
            "hypotheses": [clip.hypothesis for clip in result.clips],
        }
        print(f"{name}: WER {100 * result.rates.wer:.1f}%, {result.elapsed:.0f} s", file=sys.stderr)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=None)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--bitrates", default="", help="other Opus bitrates, e.g. 16k,32k")
    parser.add_argument("--beam-size", type=int, default=5)
    parser.add_argument("--no-wav", action="store_true", help="skip the WAV reference")
    parser.add_argument("--results-dir", type=Path, default=_common.RESULTS_DIR)
    args = parser.parse_args()
    workdir = args.workdir or Path(tempfile.mkdtemp(prefix="general-set-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    bitrates = [b for b in args.bitrates.split(",") if b]
    machine = _common.machine_info()
    rows = run(workdir, args.cache_dir, bitrates, args.beam_size, wav=not args.no_wav)
    table = _common.markdown_table(
        ["variant", "clips", "MB", "audio s", "WER", "CER", "judging one model: s", "CPU s"],
        [
            [name, r["clips"], r["megabytes"], r["audio_seconds"], f"{100 * r['wer']:.1f}%",
             f"{100 * r['cer']:.1f}%", r["eval_seconds"], r["cpu_seconds"]]
            for name, r in rows.items()
        ],
    )  # fmt: skip
    markdown = (
        "# The packaged general set: whisper-base (CTranslate2 int8, "
        f"beam {args.beam_size})\n\n{table}\n{machine['cpu']}, {machine['cpu_count']} cores, "
        f"load average {machine['load_average_1_5_15']}, commit {machine['git_commit']}, "
        f"{machine['timestamp_utc']}. Judging a run costs this once per model compared "
        "(candidate, serving model, and the base model once a trained version serves).\n"
    )
    data = {"machine": machine, "beam_size": args.beam_size, "variants": rows}
    for path in _common.write_results("general_set", data, markdown, results_dir=args.results_dir):
        print(path)


if __name__ == "__main__":
    main()
