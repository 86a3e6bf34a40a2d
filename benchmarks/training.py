"""Training speed per mode.

For each configuration: the median seconds per optimizer step (batch 8, labels of a
typical sentence's length, AdamW over the trainable parameters) after a warm-up step,
samples per second, and the one-off cost per clip of caching the frozen lower encoder.

The cached modes train the decoder as a run does (``TRAIN_DECODER``, cross-attention only
by default).

- ``cpu-decoder``: encoder frozen entirely (decoder-only training over cached outputs);
- ``cpu-top2`` / ``cpu-top4``: the top 2/4 encoder layers and the decoder over the cached
  lower ones (top 4: the default until 2026-12-05);
- ``cpu-all``: every encoder layer over the cached convolutions (the default since);
- ``cpu-full``: full fine-tuning on the CPU (what the cached modes avoid);
- ``gpu-full``: full fine-tuning in bf16 (only when CUDA is available).

What the training buys in WER is ``benchmarks/demo_training.py``'s. Writes
``benchmarks/results/training.{json,md}``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common

BATCH = 8
LABEL_TOKENS = 24  # a short spoken sentence plus the 3 prefix tokens and <|endoftext|>
# name: (mode, trainable encoder layers, whole model from the features: no cache at all)
CONFIGS = {
    "cpu-decoder": ("cpu", 0, False),
    "cpu-top2": ("cpu", 2, False),
    "cpu-top4": ("cpu", 4, False),
    "cpu-all": ("cpu", 6, False),
    "cpu-full": ("cpu", 6, True),
    "gpu-full": ("gpu", 6, True),
}


def measure(hf_dir: Path, device: str, layers: int, *, full: bool, steps: int) -> dict[str, object]:
    import torch

    from training._whisper_model import PartialEncoderWhisper
    from training.arguments import FinetuneArguments

    model = PartialEncoderWhisper.from_pretrained(str(hf_dir), dtype=torch.float32).to(device)
    # The cached modes train the decoder as a run does (its default: cross-attention only);
    # full fine-tuning trains everything.
    trainable = model.configure_trainable(
        encoder_layers=layers,
        train_embeddings=full,
        front_end=full,
        decoder="all" if full else FinetuneArguments().decoder,
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
        mode, layers, full = CONFIGS[name]
        if mode == "gpu" and not torch.cuda.is_available():
            results[name] = {"skipped": "no CUDA device"}
            continue
        steps = 1 if name == "cpu-full" else args.steps  # ~30 s per step on 2 cores
        results[name] = measure(model_dir, "cuda" if mode == "gpu" else "cpu", layers,
                                full=full, steps=steps)  # fmt: skip
        print(name, results[name], flush=True)
    data = {
        "machine": info,
        "batch_size": BATCH,
        "threads": args.threads,
        "modes": results,
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
    machine = data["machine"]
    return f"""# Training speed

{machine.get("cpu")}, {data["threads"]} threads, load average {machine.get("load_average_1_5_15")}
at the start (shared machine: numbers are noisy).

{table}
"""


if __name__ == "__main__":
    raise SystemExit(main())
