"""WiSE-FT on a small scale: does interpolating toward the base weights help on unseen and
different-sounding speech?

One CPU-mode run from the base model (``training.finetune`` with the default settings) on
the demo's first ``--sentences`` correction sentences x 3 espeak voices, with WiSE-FT's
alpha chosen on the run's validation split; then every alpha's model (base + alpha x
(tuned - base)) is exported to CTranslate2 int8 and scored on the demo's ``disjoint``
(unseen sentences and voices) and ``festival`` (different-sounding speech) sets with the
serving engine. Reuses the demo's synthesised audio (``benchmarks/demo_training.py``
makes it). Writes ``benchmarks/results/robust_candidate.{json,md}``.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common
from demo_training import DEFAULT_WORKDIR, _score, first_sentences, synthesize_sets

ALPHAS = (0.25, 0.5, 0.75, 1.0)


def _interpolated(base_hf: Path, tuned_state: dict[str, Any], start: dict[str, Any],
                  alpha: float, out: Path) -> Path:  # fmt: skip
    import torch
    from transformers import WhisperForConditionalGeneration

    model = WhisperForConditionalGeneration.from_pretrained(base_hf)
    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if name in tuned_state:
                parameter.copy_(start[name] + alpha * (tuned_state[name] - start[name]))
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    for item in base_hf.iterdir():
        if item.is_file() and not (out / item.name).exists():
            shutil.copyfile(item, out / item.name)
    return out


def run(
    workdir: Path,
    cache_dir: Path,
    *,
    sentences: int,
    max_steps: int = 0,
    checkpoint_every: int = 10,
    resume: bool = False,
    score_base: bool = True,
    scored_alphas: tuple[float, ...] = ALPHAS,
) -> dict[str, Any]:
    """``resume`` continues a run of this script from its newest checkpoint; ``max_steps``
    and ``checkpoint_every`` then let a slow machine finish it early."""
    import dataclasses

    from safetensors.torch import load_file

    from model.asr import convert, sources
    from training.arguments import FinetuneArguments
    from training.finetune import finetune
    from training.snapshot import write_manifest

    machine = _common.machine_info()
    started = time.perf_counter()
    manifests = synthesize_sets(workdir)
    examples = first_sentences(manifests, sentences)
    out = workdir / "robust"
    if not resume:
        shutil.rmtree(out, ignore_errors=True)
    write_manifest(out / "train.tsv", examples)
    base_hf = sources.hf_dir("packaged:whisper-base", cache_dir=cache_dir).path
    args = dataclasses.replace(
        FinetuneArguments(), model_dir=str(base_hf), train_manifest=str(out / "train.tsv"),
        output_dir=str(out / "train"), mode="cpu", wise_alphas=",".join(map(str, ALPHAS)),
        encoder_cache_dir=str(workdir / "robust-encoder-cache"),
        max_steps=max_steps, checkpoint_every=checkpoint_every,
    )  # fmt: skip
    result = finetune(args)
    kept = result.wise_alpha or 1.0
    final = load_file(str(Path(result.model_dir) / "model.safetensors"))
    base = load_file(str(base_hf / "model.safetensors"))
    changed = {n for n in final if n in base and not bool((final[n] == base[n]).all())}
    # The fine-tuned weights themselves: base + (kept model - base) / kept alpha.
    tuned = {n: base[n] + (final[n] - base[n]) / kept for n in changed}
    base_ct2 = sources.ct2_dir("packaged:whisper-base", cache_dir=cache_dir).path
    rows = []
    if score_base:
        rows.append({"model": "base", "alpha": 0.0, "scores": _score(base_ct2, "base", manifests)})
    for alpha in scored_alphas:
        hf = _interpolated(base_hf, tuned, base, alpha, out / f"alpha-{alpha}")
        ct2 = convert.export_hf_to_ct2(hf, out / f"alpha-{alpha}-ct2", overwrite=True)
        name = f"alpha {alpha}"
        rows.append({"model": name, "alpha": alpha, "scores": _score(ct2, name, manifests)})
    return {
        "machine": machine,
        "sentences": len({e.text for e in examples}),
        "clips": len(examples),
        "finetune": result.to_dict(),
        "kept_alpha": kept,
        "rows": rows,
        "total_seconds": round(time.perf_counter() - started, 1),
    }


def markdown(result: dict[str, Any]) -> str:
    losses = result["finetune"].get("wise_losses", {})
    rows = [
        [r["model"], losses.get(str(r["alpha"]), "-"),
         f"{100 * r['scores']['disjoint']['wer']:.1f}%",
         f"{100 * r['scores']['festival']['wer']:.1f}%",
         "kept" if r["alpha"] == result["kept_alpha"] else ""]
        for r in result["rows"]
    ]  # fmt: skip
    table = _common.markdown_table(
        ["model", "validation loss", "unseen WER (disjoint)", "general WER (festival)",
         "chosen on validation"], rows,
    )  # fmt: skip
    ft = result["finetune"]
    return f"""# WiSE-FT: interpolating between the base and the fine-tuned weights

One run from the base model (cpu mode, default settings: {ft["steps"]} steps, best step
{ft["best_step"]}) on {result["sentences"]} sentences x 3 espeak voices ({result["clips"]}
clips); alpha chosen on the run's own validation split (never the gate's sets). Scored with
the serving engine (faster-whisper int8, beam 5): `disjoint` = unseen sentences by unseen
voices with noise, `festival` = different-sounding speech.

{table}

Whole run: {result["total_seconds"]} s. Machine: {result["machine"].get("cpu")}, load average
{result["machine"].get("load_average_1_5_15")} at the start.
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=DEFAULT_WORKDIR)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument("--sentences", type=int, default=30)
    parser.add_argument("--max-steps", type=int, default=0, help="cap (0 = the epoch budget)")
    parser.add_argument("--checkpoint-every", type=int, default=10)
    parser.add_argument("--resume", action="store_true", help="continue from a checkpoint")
    parser.add_argument("--no-base", action="store_true", help="do not score the base model")
    parser.add_argument("--alphas", default=",".join(map(str, ALPHAS)), help="alphas scored")
    args = parser.parse_args()
    result = run(
        args.workdir, args.cache_dir, sentences=args.sentences, max_steps=args.max_steps,
        checkpoint_every=args.checkpoint_every, resume=args.resume, score_base=not args.no_base,
        scored_alphas=tuple(float(a) for a in args.alphas.split(",")),
    )  # fmt: skip
    paths = _common.write_results("robust_candidate", result, markdown(result))
    print(markdown(result))
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
