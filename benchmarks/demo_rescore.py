"""Score a finished demonstration's served models again on the work folder's sets.

``benchmarks/demo_training.py`` keeps each installation's data folder (and so every model
version it promoted) under its work folder. When an evaluation set changes (the festival set
grew; a part ran in another work folder, whose ``disjoint`` clips carry another draw of
noise), the rounds already run need no new training: this re-scores the model each round
served on the sets named, writes the new scores into the results and renders them again::

    .venv/bin/python benchmarks/demo_rescore.py benchmarks/results/demo_training_ttt_g80_salt1.json
    .venv/bin/python benchmarks/demo_rescore.py RESULTS.json --sets disjoint \
        --data-workdir /tmp/other-demo   # models from there, audio from --workdir
    .venv/bin/python benchmarks/demo_rescore.py A.json B.json ...  # the base model scored once

The training and the gate's verdicts are left as they were.
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


def rescore(
    result: dict[str, Any],
    workdir: Path,
    cache_dir: Path,
    sets: tuple[str, ...] = ("festival",),
    data_workdir: Path | None = None,
    memo: dict[tuple[Path, str], dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """``memo`` (model folder, set) -> scores, shared between results that serve the same
    models (the base model in every one)."""
    from model.asr import sources

    manifests = demo_training.synthesize_sets(workdir)
    base = sources.ct2_dir("packaged:whisper-base", cache_dir=cache_dir).path
    memo = {} if memo is None else memo
    for series in result["series"]:
        data_dir = (data_workdir or workdir) / f"data-{series['variant']}-salt{series['salt']}"
        for row in series["rounds"]:
            name = row["model"]
            ct2 = base if name == "base" else data_dir / "models" / VERSIONS_DIR / name / "ct2"
            if not ct2.is_dir():
                raise SystemExit(f"{ct2}: not there (was the demo's work folder cleared?)")
            for set_name in sets:
                if (ct2, set_name) not in memo:
                    memo[ct2, set_name] = demo_training.score_set(ct2, name, manifests, set_name)
                row["scores"][set_name] = memo[ct2, set_name]
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, nargs="+", help="demo_training results JSON")
    parser.add_argument("--workdir", type=Path, default=demo_training.DEFAULT_WORKDIR)
    parser.add_argument("--cache-dir", type=Path, default=_common.DEFAULT_CACHE_DIR)
    parser.add_argument(
        "--sets", default="festival", help="comma-separated: festival, disjoint (what to score)"
    )
    parser.add_argument(
        "--data-workdir", type=Path, default=None,
        help="where the data-VARIANT-saltN folders are, when not in --workdir",
    )  # fmt: skip
    args = parser.parse_args()
    memo: dict[tuple[Path, str], dict[str, Any]] = {}
    for results in args.results:
        result = rescore(
            json.loads(results.read_text()), args.workdir, args.cache_dir,
            sets=tuple(args.sets.split(",")), data_workdir=args.data_workdir, memo=memo,
        )  # fmt: skip
        paths = _common.write_results(results.stem, result, demo_training.markdown(result))
        print(f"written: {', '.join(str(p) for p in paths)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
