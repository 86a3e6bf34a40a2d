"""``python -m training``: the training process.

``run --config RUN.json`` runs or resumes one training run (``training.runner``);
``finetune ARGS.json`` runs only the fine-tuning (``FinetuneArguments`` as JSON): that is
the entry point for ``torchrun`` / ``accelerate launch`` on several GPUs.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from training.config import RunConfig
from training.finetune import finetune
from training.runner import RunError, run_training


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run or resume one training run")
    run.add_argument("--config", type=Path, required=True, help="RunConfig as JSON")
    tune = commands.add_parser("finetune", help="fine-tune only (torchrun/accelerate entry)")
    tune.add_argument("args_json", type=Path, help="FinetuneArguments as JSON")
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    logging.getLogger("faster_whisper").setLevel(logging.WARNING)  # a line per clip
    if args.command == "finetune":
        from training.arguments import FinetuneArguments

        result = finetune(FinetuneArguments.from_json(args.args_json))
        print(json.dumps(result.to_dict(), indent=2))
        return 0
    config = RunConfig.from_json(args.config.read_text(encoding="utf-8"))
    try:
        report = run_training(config)
    except RunError as exc:
        print(f"training: {exc}", file=sys.stderr)
        return 1
    print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
