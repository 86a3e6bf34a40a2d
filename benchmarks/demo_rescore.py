"""Score a finished demonstration's served models again on today's ``festival`` set.

``benchmarks/demo_training.py`` keeps each installation's data folder (and so every model
version it promoted) under its work folder. When the festival set grows, the rounds already
run need no new training: this re-scores the model each round served, writes the new
``festival`` scores into the results and renders them again. Run::

    .venv/bin/python benchmarks/demo_rescore.py benchmarks/results/demo_training_ttt_g80_salt1.json

The training, the gate's verdicts and the ``disjoint`` scores are left as they were.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import _common
import demo_training

from model.asr.registry import VERSIONS_DIR


def rescore(result: dict[str, Any], workdir: Path, cache_dir: Path) -> dict[str, Any]:
    from model.asr import sources

    manifests = demo_training.synthesize_sets(workdir)
    base = sources.ct2_dir("packaged:whisper-base", cache_dir=cache_dir).path
    memo: dict[Path, dict[str, Any]] = {}
    for series in result["series"]:
        data_dir = workdir / f"data-{series['variant']}-salt{series['salt']}"
        for row in series["rounds"]:
            name = row["model"]
            ct2 = base if name == "base" else data_dir / "models" / VERSIONS_DIR / name / "ct2"
            if not ct2.is_dir():
                raise SystemExit(f"{ct2}: not there (was the demo's work folder cleared?)")
            if ct2 not in memo:
                memo[ct2] = demo_training.score_set(ct2, name, manifests, "festival")
            row["scores"]["festival"] = memo[ct2]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="a demo_training results JSON")
    parser.add_argument("--workdir", type=Path, default=demo_training.DEFAULT_WORKDIR)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    args = parser.parse_args()
    result = rescore(json.loads(args.results.read_text()), args.workdir, args.cache_dir)
    paths = _common.write_results(args.results.stem, result, demo_training.markdown(result))
    print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
