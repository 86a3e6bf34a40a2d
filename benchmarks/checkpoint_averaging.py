"""Checkpoint averaging on a small scale: is the mean of the run's last weight snapshots a
better candidate than the checkpoint the run keeps, on unseen and different-sounding speech?

One CPU-mode run from the base model (``training.finetune``, default settings) on the
demo's first ``--sentences`` correction sentences x 3 espeak voices, with weight snapshots
every ``--every`` steps after warm-up (``training.averaging``, kept for up to ``--keep``
of them). Same data and steps for every row: the kept checkpoint (the best validation
step, what a run without averaging exports) and the means of the last 2, 3, 4 ... snapshots
ending at it, each exported to CTranslate2 int8 and scored with the serving engine on the
demo's ``disjoint`` (unseen sentences by unseen voices) and ``festival`` (different-sounding
speech) sets. Reuses the demo's synthesised audio (``benchmarks/demo_training.py`` makes
it). Writes ``benchmarks/results/checkpoint_averaging.{json,md}``.
"""

from __future__ import annotations

import argparse
import dataclasses
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common
from demo_training import DEFAULT_WORKDIR, _score, first_sentences, synthesize_sets

COUNTS = (2, 3, 4)


def _candidate(base_hf: Path, snapshots: list[Path], out: Path) -> Path:
    """The base model with its trained weights set to the mean of ``snapshots``."""
    from transformers import WhisperForConditionalGeneration

    from training.averaging import average_into

    model = WhisperForConditionalGeneration.from_pretrained(base_hf)
    average_into(model, snapshots)  # one snapshot: exactly its weights
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    for item in base_hf.iterdir():
        if item.is_file() and not (out / item.name).exists():
            shutil.copyfile(item, out / item.name)
    return out


def _train(workdir: Path, base_hf: Path, *, sentences: int, every: int, keep: int,
           max_steps: int, resume: bool) -> tuple[Any, Path, int]:  # fmt: skip
    from training.arguments import FinetuneArguments
    from training.finetune import finetune
    from training.snapshot import write_manifest

    manifests = synthesize_sets(workdir)
    examples = first_sentences(manifests, sentences)
    out = workdir / "averaging"
    if not resume:
        shutil.rmtree(out, ignore_errors=True)
    write_manifest(out / "train.tsv", examples)
    args = dataclasses.replace(
        FinetuneArguments(), model_dir=str(base_hf), train_manifest=str(out / "train.tsv"),
        output_dir=str(out / "train"), mode="cpu", average_checkpoints=keep,
        average_every=every, encoder_cache_dir=str(workdir / "averaging-encoder-cache"),
        max_steps=max_steps,
    )  # fmt: skip
    return finetune(args), out, len(examples)


def run(workdir: Path, cache_dir: Path, *, sentences: int, every: int, keep: int,
        max_steps: int = 0, resume: bool = False,
        score_base: bool = True) -> dict[str, Any]:  # fmt: skip
    from model.asr import convert, sources
    from training.averaging import SNAPSHOT_DIR, snapshot_path, snapshot_steps, window
    from training.finetune import CHECKPOINTS_DIR

    machine = _common.machine_info()
    started = time.perf_counter()
    base_hf = sources.hf_dir("packaged:whisper-base", cache_dir=cache_dir).path
    result, out, clips = _train(workdir, base_hf, sentences=sentences, every=every, keep=keep,
                                max_steps=max_steps, resume=resume)  # fmt: skip
    trained = time.perf_counter() - started
    manifests = synthesize_sets(workdir)
    folder = out / "train" / CHECKPOINTS_DIR / SNAPSHOT_DIR
    steps = snapshot_steps(folder)
    kept = int(result.best_step or result.steps)
    windows = {1: window(steps, upto=kept, count=1)}
    for count in (*COUNTS, len(steps)):
        chosen = window(steps, upto=kept, count=count)
        if chosen not in windows.values():
            windows[count] = chosen
    rows = []
    if score_base:
        base_ct2 = sources.ct2_dir("packaged:whisper-base", cache_dir=cache_dir).path
        rows.append({"model": "base", "steps": [], "scores": _score(base_ct2, "base", manifests)})
    for count, chosen in windows.items():
        name = f"kept checkpoint (step {kept})" if count == 1 else f"mean of last {len(chosen)}"
        hf = _candidate(base_hf, [snapshot_path(folder, s) for s in chosen], out / f"avg-{count}")
        ct2 = convert.export_hf_to_ct2(hf, out / f"avg-{count}-ct2", overwrite=True)
        rows.append({"model": name, "steps": chosen, "scores": _score(ct2, name, manifests)})
    return {
        "machine": machine,
        "sentences": sentences,
        "clips": clips,
        "every": every,
        "snapshot_steps": steps,
        "kept_step": kept,
        "finetune": result.to_dict(),
        "rows": rows,
        "train_seconds": round(trained, 1),
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def _wer(score: dict[str, Any]) -> str:
    words = score["reference_words"]
    return f"{100 * score['wer']:.1f}%: {round(score['wer'] * words)}/{words}"


def markdown(result: dict[str, Any]) -> str:
    rows = [
        [r["model"], ", ".join(map(str, r["steps"])) or "-",
         *(_wer(r["scores"][name]) for name in ("disjoint", "festival"))]
        for r in result["rows"]
    ]  # fmt: skip
    table = _common.markdown_table(
        ["candidate", "steps averaged", "unseen WER (disjoint): errors/words",
         "general WER (festival): errors/words"], rows,
    )  # fmt: skip
    ft = result["finetune"]
    return f"""# Checkpoint averaging: the kept checkpoint versus the mean of the last snapshots

One run from the base model (cpu mode, default settings: {ft["steps"]} of {ft["max_steps"]}
steps, warm-up to step {round(0.5 * ft["max_steps"])}, kept step {result["kept_step"]} (best
validation loss {ft["best_validation_loss"]})) on {result["sentences"]} sentences x 3
espeak voices ({result["clips"]} clips; {ft["validation_clips"]} of them validation); weight
snapshots every {result["every"]} steps after warm-up and at each checkpoint (steps
{", ".join(map(str, result["snapshot_steps"]))}). Every row comes from these same snapshots:
the kept checkpoint is what the run exports without averaging. Scored with the serving
engine (faster-whisper int8, beam 5): `disjoint` = unseen sentences by unseen voices with
noise (48 clips), `festival` = different-sounding speech (32 clips).

{table}

Training {result["train_seconds"]} s, whole run {result["total_seconds"]} s. Machine:
{result["machine"].get("cpu")}, load average {result["machine"].get("load_average_1_5_15")}
at the start.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--sentences", type=int, default=30)
    parser.add_argument("--every", type=int, default=3, help="steps between snapshots")
    parser.add_argument("--keep", type=int, default=12, help="snapshots kept (the most averaged)")
    parser.add_argument("--max-steps", type=int, default=0, help="cap (0 = the epoch budget)")
    parser.add_argument("--resume", action="store_true", help="continue from a checkpoint")
    parser.add_argument("--no-base", action="store_true", help="do not score the base model")
    args = parser.parse_args()
    result = run(
        args.workdir, args.cache_dir, sentences=args.sentences, every=args.every,
        keep=args.keep, max_steps=args.max_steps, resume=args.resume,
        score_base=not args.no_base,
    )  # fmt: skip
    paths = _common.write_results("checkpoint_averaging", result, markdown(result))
    print(markdown(result))
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
