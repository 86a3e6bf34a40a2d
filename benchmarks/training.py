"""Training speed per mode, and the quality it buys (WER before/after from the demo).

For each configuration: the median seconds per optimizer step (batch 8, labels of a
typical sentence's length, AdamW over the trainable parameters) after a warm-up step,
samples per second, and the one-off cost per clip of caching the frozen lower encoder.

- ``cpu-decoder``: encoder frozen entirely (decoder-only training over cached outputs);
- ``cpu-top2`` / ``cpu-top3``: the top 2/3 encoder layers and the decoder (the default
  is top 2);
- ``cpu-full``: full fine-tuning on the CPU (what the cached modes avoid);
- ``gpu-full``: full fine-tuning in bf16 (only when CUDA is available).

WER before/after comes from ``benchmarks/results/demo_training.json`` when it exists
(run ``benchmarks/demo_training.py`` first). Writes ``benchmarks/results/training.{json,md}``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common

BATCH = 8
LABEL_TOKENS = 24  # a short spoken sentence plus the 3 prefix tokens and <|endoftext|>
CONFIGS = {
    "cpu-decoder": ("cpu", 0),
    "cpu-top2": ("cpu", 2),
    "cpu-top3": ("cpu", 3),
    "cpu-full": ("cpu", 6),
    "gpu-full": ("gpu", 6),
}


def measure(hf_dir: Path, device: str, layers: int, *, steps: int) -> dict[str, object]:
    import torch

    from training._whisper_model import PartialEncoderWhisper

    model = PartialEncoderWhisper.from_pretrained(str(hf_dir), dtype=torch.float32).to(device)
    full = layers >= len(model.model.encoder.layers)
    trainable = model.configure_trainable(
        encoder_layers=layers, train_embeddings=full, front_end=full
    )
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=1e-5)
    features = torch.randn(BATCH, 80, 3000, device=device)
    labels = torch.randint(0, 50_000, (BATCH, LABEL_TOKENS), device=device)
    started = time.perf_counter()
    lower = None if full else model.lower_encoder(features)
    cache_seconds = (time.perf_counter() - started) / BATCH
    model.train()
    timings = []
    for _ in range(steps + 1):  # the first step warms up
        if device == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        with torch.autocast(device_type=device, dtype=torch.bfloat16, enabled=device == "cuda"):
            if full:
                loss = model(input_features=features, labels=labels).loss
            else:
                loss = model(lower_hidden_states=lower, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        if device == "cuda":
            torch.cuda.synchronize()
        timings.append(time.perf_counter() - started)
    per_step = statistics.median(timings[1:])
    return {
        "trainable_parameters": trainable,
        "seconds_per_step": round(per_step, 3),
        "samples_per_second": round(BATCH / per_step, 3),
        "cache_seconds_per_clip": None if full else round(cache_seconds, 3),
        "step_seconds": [round(t, 3) for t in timings[1:]],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=3, help="timed steps per configuration")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()

    import torch

    from model.asr.sources import hf_dir

    torch.set_num_threads(args.threads)
    info = _common.machine_info()
    model_dir = hf_dir("packaged:whisper-base", cache_dir=_common.DEFAULT_CACHE_DIR).path
    results: dict[str, object] = {}
    for name in args.configs:
        mode, layers = CONFIGS[name]
        if mode == "gpu" and not torch.cuda.is_available():
            results[name] = {"skipped": "no CUDA device"}
            continue
        steps = 1 if name == "cpu-full" else args.steps  # ~30 s per step on 2 cores
        results[name] = measure(model_dir, "cuda" if mode == "gpu" else "cpu", layers,
                                steps=steps)  # fmt: skip
        print(name, results[name], flush=True)
    demo_path = _common.RESULTS_DIR / "demo_training.json"
    demo = json.loads(demo_path.read_text()) if demo_path.is_file() else None
    data = {
        "machine": info,
        "batch_size": BATCH,
        "threads": args.threads,
        "modes": results,
        "demo": None
        if demo is None
        else {
            "before": demo.get("before"),
            "after": demo.get("after"),
            "finetune": demo.get("finetune"),
            "promoted": demo.get("promoted"),
        },
    }
    _common.write_results("training", data, _markdown(data))
    print(_markdown(data))
    return 0


def _markdown(data: dict[str, object]) -> str:
    rows = []
    for name, r in data["modes"].items():  # type: ignore[union-attr]
        if "skipped" in r:
            rows.append([name, "-", "-", "-", r["skipped"]])
            continue
        rows.append(
            [name, f"{r['trainable_parameters'] / 1e6:.1f} M", r["seconds_per_step"],
             r["samples_per_second"], r["cache_seconds_per_clip"] or "-"]
        )  # fmt: skip
    table = _common.markdown_table(
        ["mode", "trainable", "s/step (batch 8)", "samples/s", "cache s/clip"], rows
    )
    demo = data.get("demo")
    quality = ""
    if demo and demo.get("before") and demo.get("after"):
        lines = [
            f"- {name}: WER {100 * demo['before'][name]['wer']:.1f}% -> "
            f"{100 * demo['after'][name]['wer']:.1f}% ({demo['after'][name]['n']} clips)"
            for name in demo["after"]
        ]
        quality = "\n## WER before/after (demo, default settings)\n\n" + "\n".join(lines) + "\n"
    machine = data["machine"]
    return f"""# Training speed

{machine.get("cpu")}, {data["threads"]} threads, load average {machine.get("load_average_1_5_15")}
at the start (shared machine: numbers are noisy).

{table}
{quality}"""


if __name__ == "__main__":
    raise SystemExit(main())
