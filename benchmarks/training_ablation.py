"""Which training recipe generalises: one fine-tuning per configuration, same data, same sets.

The data are the demonstration's (``benchmarks/demo_training.py``): the corrections of its
first TRAIN_SENTENCES sentences x 3 espeak-ng voices (132 clips, the train side of its one
default run), and three sets training never saw:

- ``disjoint``: the demo's unseen sentences (``DISJOINT_SENTENCES``: 47 since 2026-12-06,
  the first 16 of them before; a new set needs its own ``--name``) by 3 other espeak voices,
  other speeds, pink noise, Opus 24k;
- ``disjoint_more``: 8 more unseen sentences by the same other voices, same treatment (a
  second sample of the same kind: how much of a difference is the sentence draw);
- ``festival``: the demo's festival set, festival's diphone voices (different-sounding
  speech: forgetting shows here).

Each configuration is ``training.finetune`` (the code a run uses) with the default
``FinetuneArguments`` plus its overrides, exported to CTranslate2 int8 and scored with the
serving engine through ``model.asr.evaluation``. Results accumulate in
``benchmarks/results/training_ablation.{json,md}`` (a configuration run again replaces its
row), so configurations can be run one at a time. Run::

    .venv/bin/python benchmarks/training_ablation.py --config defaults '{}' \\
        --config decoder_all '{"decoder": "all"}'

About 10-25 minutes per configuration on 2 cores. Rows are comparable only on the same
audio: a fresh work folder draws the sets again, so give its rows their own ``--name``.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common
import demo_training
from _demo_sentences import GENERAL_SENTENCES, RECENT_SENTENCES

from tests.support.speech import synthesize

NAME = "training_ablation"
TRAIN_SENTENCES = 44  # x 3 voices = 132 clips
SETS = ("disjoint", "disjoint_more", "festival")
MAX_TRAIN_SECONDS = 1800.0  # a safety stop; the step count decides


def prepare(
    workdir: Path, train_sentences: int, voices: tuple[str, ...] = demo_training.TRAIN_VOICES
) -> tuple[Path, dict[str, Path]]:
    """(train manifest, evaluation manifests), synthesised on first use."""
    rounds = (
        demo_training.ROUND_SENTENCES
        if train_sentences <= demo_training.ROUND_SENTENCES[-1]
        else demo_training.LONG_ROUND_SENTENCES
    )
    manifests = demo_training.synthesize_sets(workdir, rounds, voices)
    audio = workdir / "audio"
    rows = []
    for s, sentence in enumerate(RECENT_SENTENCES):
        for voice, speed in demo_training.DISJOINT_VOICES:
            name = f"disjoint-more-{s:02d}-{voice.replace('+', '')}.ogg"
            if not (audio / name).exists():
                clean = synthesize(sentence, audio / f".{name}.wav", voice=voice, speed=speed)
                demo_training._noisy_opus(clean, audio / name)
                clean.unlink()
            rows.append(f"audio/{name}\t{sentence}")
    manifests["disjoint_more"] = demo_training._write_tsv(workdir / "disjoint_more.tsv", rows)
    train_rows = [
        row
        for key in manifests
        if key.startswith("round")
        for row in manifests[key].read_text(encoding="utf-8").splitlines()
    ]
    suffix = "" if train_sentences == TRAIN_SENTENCES else f"_{train_sentences}"
    suffix += "" if voices == demo_training.TRAIN_VOICES else "_wide"
    train = demo_training._write_tsv(
        workdir / f"ablation_train{suffix}.tsv",
        train_rows[: train_sentences * demo_training.VOICES_PER_SENTENCE],
    )
    # The festival set's first 16 sentences: what this table's rows were scored on.
    first = manifests["festival"].read_text(encoding="utf-8").splitlines()
    manifests["festival"] = demo_training._write_tsv(
        workdir / "ablation_festival.tsv", first[: 2 * len(GENERAL_SENTENCES)]
    )
    return train, {name: manifests[name] for name in SETS}


def score(ct2_dir: Path, name: str, manifests: dict[str, Path]) -> dict[str, Any]:
    """WER and CER on each set, with each clip's words (for intervals over sentences)."""
    return {s: demo_training.score_set(ct2_dir, name, manifests, s) for s in manifests}


def run_config(
    name: str, overrides: dict[str, Any], *, train: Path, manifests: dict[str, Path],
    workdir: Path, cache_dir: Path, train_sentences: int = TRAIN_SENTENCES,
    voices: tuple[str, ...] = demo_training.TRAIN_VOICES,
) -> dict[str, Any]:  # fmt: skip
    from model.asr import convert, sources
    from training.arguments import FinetuneArguments
    from training.finetune import finetune

    out = workdir / "ablation" / name
    shutil.rmtree(out, ignore_errors=True)  # a run resumes from any checkpoint left there
    args = FinetuneArguments(
        model_dir=str(sources.hf_dir("packaged:whisper-base", cache_dir=cache_dir).path),
        train_manifest=str(train),
        output_dir=str(out / "train"),
        max_train_seconds=MAX_TRAIN_SECONDS,
        **overrides,
    )
    started = time.perf_counter()
    result = finetune(args)
    seconds = time.perf_counter() - started
    ct2 = convert.export_hf_to_ct2(result.model_dir, out / "ct2", overwrite=True)
    return {
        "name": name,
        "overrides": overrides,
        "train_clips": train_sentences * demo_training.VOICES_PER_SENTENCE,
        "train_voices": list(voices),
        "train_seconds": round(seconds, 1),
        "steps": result.steps,
        "best_step": result.best_step,
        "best_validation_loss": result.best_validation_loss,
        "scores": score(ct2, name, manifests),
    }


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _wer_cell(scores: dict[str, Any]) -> str:
    """WER with its 95% interval over sentences; rows written before clips were kept
    (their ``clips`` a count) give the estimate alone."""
    if not isinstance(scores.get("clips"), list):
        return _pct(scores["wer"])
    return demo_training._interval_cell(demo_training.wer_interval(scores), signed=False)


def _clips(set_name: str) -> int:
    """Clips in one of today's sets (the markdown describes the sets as they are now)."""
    sentences = {
        "disjoint": demo_training.DISJOINT_SENTENCES,
        "disjoint_more": RECENT_SENTENCES,
        "festival": GENERAL_SENTENCES,  # prepare() keeps the festival set's first 16
    }[set_name]
    voices = (
        demo_training.FESTIVAL_VOICES if set_name == "festival" else demo_training.DISJOINT_VOICES
    )
    return len(sentences) * len(voices)


def markdown(data: dict[str, Any]) -> str:
    base = data["base"]
    rows = [["base (no training)", "-", "-", "-", "-", "-"]
            + [_wer_cell(base[s]) for s in SETS] + [_pct(base["disjoint"]["cer"])]]  # fmt: skip
    for row in data["runs"]:
        s = row["scores"]
        rows.append([
            f"`{row['name']}`", f"`{json.dumps(row['overrides'])}`",
            row.get("train_clips", TRAIN_SENTENCES * 3),
            f"{row['best_step']}/{row['steps']}", row["best_validation_loss"],
            f"{row['train_seconds']:.0f}",
            *[_wer_cell(s[name]) for name in SETS], _pct(s["disjoint"]["cer"]),
        ])  # fmt: skip
    headers = ["configuration", "arguments (the rest: defaults)", "clips", "kept step",
               "validation loss", "train s", *(f"{name} WER" for name in SETS),
               "disjoint CER"]  # fmt: skip
    return (
        "# Training recipes side by side\n\n"
        f"One fine-tuning per configuration on the demo's first {TRAIN_SENTENCES} sentences "
        "x 3 espeak voices (132 clips; `clips` says where a row had another number); "
        "candidates scored with the serving engine "
        "(faster-whisper int8, beam 5) on speech training never saw. "
        f"`disjoint` ({_clips('disjoint')} clips) and `disjoint_more` "
        f"({_clips('disjoint_more')} clips): other sentences by other espeak voices, noise, "
        f"Opus; `festival` ({_clips('festival')} clips): different-sounding voices, where "
        "forgetting shows. Brackets: 95% intervals over sentences (rows that kept each "
        "clip's words).\n\n"
        + _common.markdown_table(headers, rows)
        + (f"\n{data['note']}\n" if data.get("note") else "")
        + f"\nMachine: {data['machine'].get('cpu')}, load average at the last start "
        f"{data['machine'].get('load_average_1_5_15')}.\n"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, default=demo_training.DEFAULT_WORKDIR)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--config", nargs=2, action="append", default=[], metavar=("NAME", "JSON"),
        help="name and overrides of a configuration",
    )  # fmt: skip
    parser.add_argument(
        "--train-sentences", type=int, default=TRAIN_SENTENCES,
        help="train on the demo's first this-many sentences (x 3 voices; up to 100)",
    )  # fmt: skip
    parser.add_argument(
        "--wide-voices", action="store_true",
        help="each sentence by 3 of demo_training.WIDE_TRAIN_VOICES in turn (6 speakers)",
    )  # fmt: skip
    parser.add_argument(
        "--name", default=NAME,
        help="results file name: rows scored on another draw of the sets need their own",
    )  # fmt: skip
    args = parser.parse_args()
    machine = _common.machine_info()
    voices = demo_training.WIDE_TRAIN_VOICES if args.wide_voices else demo_training.TRAIN_VOICES
    train, manifests = prepare(args.workdir, args.train_sentences, voices)
    path = _common.RESULTS_DIR / f"{args.name}.json"
    data = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else {"runs": []}
    data["machine"] = machine
    if "base" not in data:
        from model.asr import sources

        base_ct2 = sources.ct2_dir("packaged:whisper-base", cache_dir=args.cache_dir).path
        data["base"] = score(base_ct2, "base", manifests)
    for name, overrides in args.config:
        row = run_config(name, json.loads(overrides), train=train, manifests=manifests,
                         workdir=args.workdir, cache_dir=args.cache_dir,
                         train_sentences=args.train_sentences, voices=voices)  # fmt: skip
        data["runs"] = [r for r in data["runs"] if r["name"] != name] + [row]
        _common.write_results(args.name, data, markdown(data))
    text = markdown(data)
    _common.write_results(args.name, data, text)
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
