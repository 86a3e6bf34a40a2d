"""One training run, start to finish: the process the bot launches.

``python -m training run --config RUN.json`` snapshots the data (first start only), fine-
tunes from the served model with checkpoints, exports the candidate to CTranslate2,
evaluates candidate and current model with the serving engine, records every evaluation,
and promotes the candidate if the gate allows. Progress goes to the ``training_runs`` row.

Started again with the same run id after a crash or kill, it reuses the run's data
snapshot and resumes from the newest checkpoint. A failure is recorded on the run.

``python -m training finetune ARGS.json`` runs only the fine-tuning (``FinetuneArguments``
as JSON): that is the entry point for ``torchrun`` / ``accelerate launch`` on several GPUs.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from model.registry import BASE_VERSION, ModelRegistry
from training.data import Example, examples_from_samples, read_manifest, replay_mix
from training.finetune import CACHE_FILE, CHECKPOINTS_DIR, FinetuneArguments, finetune
from training.promote import GENERAL_SET, HELDOUT_SET, GatePolicy, decide

log = logging.getLogger(__name__)

SNAPSHOT_FILE = "snapshot.json"
CONFIG_FILE = "run_config.json"
TRAIN_MANIFEST = "train.tsv"
HELDOUT_MANIFEST = "heldout.tsv"
TRAIN_SUBDIR = "train"
CANDIDATE_CT2 = "candidate-ct2"
# Progress rows are written at most this often (a step takes seconds on CPU anyway).
PROGRESS_EVERY_S = 2.0


class RunError(Exception):
    """The run cannot proceed (no data, finished already, unknown id)."""


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a training process needs; written by the bot as JSON."""

    run_id: int
    database_url: str
    audio_dir: str
    models_dir: str
    cache_dir: str
    runs_dir: str
    base_model: str
    language: str = "it"
    eval_fraction: float = 0.1
    eval_beam_size: int = 5
    eval_cpu_threads: int = 0
    general_eval_set: str | None = None
    base_corpus: str | None = None
    replay_ratio: float = 0.0
    min_train_samples: int = 1
    hub_repo_id: str | None = None
    finetune: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / f"run-{self.run_id:04d}"


@dataclass(frozen=True)
class RunOutcome:
    run_id: int
    candidate: str
    promoted: bool
    reasons: tuple[str, ...]
    metrics: dict[str, Any]


def version_name(run_id: int) -> str:
    return f"v{run_id}"


def run_training(config: RunConfig) -> RunOutcome:
    """Run (or resume) ``config.run_id``; records failure on the run and re-raises."""
    from storage import repository
    from storage.unit_of_work import Database

    database = Database.open(config.database_url)
    try:
        with database.unit_of_work(read_only=True) as uow:
            run = repository.get_training_run(uow.session, config.run_id)
            if run is None:
                raise RunError(f"training run {config.run_id} does not exist")
            if run.status not in repository.OPEN_RUN_STATUSES:
                raise RunError(f"training run {config.run_id} is already {run.status}")
        try:
            return _run(config, database)
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit):
                raise  # stopped on purpose: leave it open so the next start resumes it
            with database.unit_of_work() as uow:
                repository.finish_training_run(
                    uow.session,
                    config.run_id,
                    status="failed",
                    error=f"{type(exc).__name__}: {exc}"[:2000],
                )
                uow.commit()
            raise
    finally:
        database.close()


def _run(config: RunConfig, database: Any) -> RunOutcome:
    from storage import repository

    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / CONFIG_FILE).write_text(config.to_json() + "\n", encoding="utf-8")
    registry = ModelRegistry(Path(config.models_dir))
    snapshot = _snapshot(config, database, registry)
    finetune_args = FinetuneArguments(
        model_dir=snapshot["start_hf_dir"],
        train_manifest=str(run_dir / TRAIN_MANIFEST),
        output_dir=str(run_dir / TRAIN_SUBDIR),
        **config.finetune,
    )
    with database.unit_of_work() as uow:
        repository.start_training_run(
            uow.session,
            config.run_id,
            samples_used=snapshot["samples_used"],
            max_correction_id=snapshot["max_correction_id"],
            steps_total=finetune_args.max_steps,
            pid=os.getpid(),
        )
        repository.update_training_progress(
            uow.session,
            config.run_id,
            steps_done=0,
            metrics={"phase": "training", "start_model": snapshot["start_model"]},
        )
        uow.commit()

    reporter = _ProgressReporter(database, config.run_id)
    result = finetune(finetune_args, progress=reporter)
    reporter.phase("evaluating", result.steps)

    from model import convert, sources

    candidate_ct2 = convert.export_hf_to_ct2(
        result.model_dir, run_dir / CANDIDATE_CT2, quantization="int8", overwrite=True
    )
    current_name = snapshot["start_model"]
    current = registry.current()
    if current is not None and current.name == current_name:
        current_ct2 = current.ct2_dir
    elif current_name == BASE_VERSION:
        current_ct2 = sources.ct2_dir(config.base_model, cache_dir=Path(config.cache_dir)).path
    else:
        current_ct2 = registry.get(current_name).ct2_dir
    sets = _eval_sets(config, run_dir)
    candidate_name = version_name(config.run_id)
    current_scores, candidate_scores, reports = {}, {}, []
    for set_name, examples in sets.items():
        for model_name, ct2, scores in (
            (current_name, current_ct2, current_scores),
            (candidate_name, candidate_ct2, candidate_scores),
        ):
            report = _evaluate(config, ct2, examples, set_name, model_name)
            scores[set_name] = report.rates
            reports.append(report)
    policy = GatePolicy(**config.gate)
    decision = decide(current_scores, candidate_scores, policy)
    log.info("gate: %s -> %s", decision.summary, "promote" if decision.promote else "refuse")

    from training.promote import ensure_version_row

    metrics = {
        "phase": "done",
        "candidate": candidate_name,
        "parent": current_name,
        "promoted": decision.promote,
        "gate": decision.as_dict(),
        "finetune": result.as_dict(),
        "samples_used": snapshot["samples_used"],
        "created_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "base_model": config.base_model,
    }
    with database.unit_of_work() as uow:
        parent_row = ensure_version_row(uow.session, current_name, spec=config.base_model)
        candidate_row = repository.get_model_version(uow.session, candidate_name)
        if candidate_row is None:
            candidate_row = repository.add_model_version(
                uow.session,
                name=candidate_name,
                parent_id=parent_row.id,
                training_run_id=config.run_id,
                metrics={"promoted": False, "gate": decision.as_dict()},
            )
        for report in reports:
            row = candidate_row if report.model == candidate_name else parent_row
            repository.add_evaluation(
                uow.session,
                model_version_id=row.id,
                eval_set=report.eval_set,
                wer=report.rates.wer,
                cer=report.rates.cer,
                count=report.rates.n,
                training_run_id=config.run_id,
                metrics=report.as_dict(),
            )
        uow.commit()
        candidate_id = candidate_row.id

    if decision.promote:
        _promote(config, database, registry, result, candidate_ct2, candidate_id, metrics,
                 decision)  # fmt: skip
    with database.unit_of_work() as uow:
        repository.finish_training_run(uow.session, config.run_id, status="done", metrics=metrics)
        uow.commit()
    _clean_up(run_dir, promoted=decision.promote)
    return RunOutcome(config.run_id, candidate_name, decision.promote, decision.reasons, metrics)


def _promote(
    config: RunConfig,
    database: Any,
    registry: ModelRegistry,
    result: Any,
    candidate_ct2: Path,
    candidate_id: int,
    metrics: dict[str, Any],
    decision: Any,
) -> None:
    from training.promote import model_card, promote_version

    name = metrics["candidate"]
    card = model_card(
        name=name,
        parent=metrics["parent"],
        base_model=config.base_model,
        decision=decision,
        training={
            "mode": result.mode,
            "steps": result.steps,
            "training examples (with augmented copies)": result.examples,
            "samples used": metrics["samples_used"],
            "final training loss": result.train_loss,
            "training seconds": result.train_seconds,
        },
        created_at=dt.datetime.now(dt.UTC),
    )
    promote_version(
        registry,
        database,
        name=name,
        hf_dir=result.model_dir,
        ct2_dir=candidate_ct2,
        metrics=metrics,
        card=card,
        model_version_id=candidate_id,
    )
    if config.hub_repo_id:
        try:
            push_to_hub(registry.get(name).path, config.hub_repo_id, revision_message=name)
        except Exception as exc:  # the model is promoted; a failed upload is only logged
            log.warning("could not push %s to the Hub: %s", name, exc)


def push_to_hub(folder: Path, repo_id: str, *, revision_message: str) -> None:
    """Upload a version folder (huggingface_hub takes the token from its own config/env)."""
    from huggingface_hub import HfApi

    api = HfApi()
    api.create_repo(repo_id, exist_ok=True, private=True)
    api.upload_folder(
        repo_id=repo_id, folder_path=str(folder), commit_message=f"whisper-it {revision_message}"
    )


def _snapshot(config: RunConfig, database: Any, registry: ModelRegistry) -> dict[str, Any]:
    """The run's fixed inputs, decided at its first start and reused when it resumes."""
    path = config.run_dir / SNAPSHOT_FILE
    if path.is_file():
        return json.loads(path.read_text(encoding="utf-8"))
    from model import sources
    from storage.audio_store import AudioStore
    from storage.samples import EVAL, TRAIN, list_samples

    with database.unit_of_work(read_only=True) as uow:
        train = list_samples(uow.session, TRAIN, eval_fraction=config.eval_fraction)
        heldout = list_samples(uow.session, EVAL, eval_fraction=config.eval_fraction)
    store = AudioStore(Path(config.audio_dir))
    train_examples = examples_from_samples(train, store)
    if len(train_examples) < max(1, config.min_train_samples):
        raise RunError(
            f"{len(train_examples)} training samples; at least {config.min_train_samples} needed"
        )
    if config.base_corpus:
        base = read_manifest(Path(config.base_corpus))
        train_examples = replay_mix(
            train_examples, base, ratio=config.replay_ratio, seed=config.run_id
        )
    current = registry.current()
    if current is not None:
        start_model, start_hf = current.name, current.hf_dir
    else:
        start_model = BASE_VERSION
        start_hf = sources.hf_dir(config.base_model, cache_dir=Path(config.cache_dir)).path
    _write_manifest(config.run_dir / TRAIN_MANIFEST, train_examples)
    _write_manifest(config.run_dir / HELDOUT_MANIFEST, examples_from_samples(heldout, store))
    snapshot = {
        "start_model": start_model,
        "start_hf_dir": str(Path(start_hf).resolve()),
        "samples_used": len(train),
        "max_correction_id": max((s.correction_id for s in train), default=None),
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(snapshot, indent=2) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    return snapshot


def _write_manifest(path: Path, examples: Sequence[Example]) -> None:
    lines = [f"{e.audio_path.resolve()}\t{' '.join(e.text.split())}" for e in examples]
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")


def _eval_sets(config: RunConfig, run_dir: Path) -> dict[str, list[Example]]:
    sets = {HELDOUT_SET: read_manifest(run_dir / HELDOUT_MANIFEST)}
    if config.general_eval_set:
        sets[GENERAL_SET] = read_manifest(Path(config.general_eval_set))
    return {name: examples for name, examples in sets.items() if examples}


def _evaluate(
    config: RunConfig, ct2_dir: Path, examples: list[Example], set_name: str, model_name: str
) -> Any:
    from training.evaluate import evaluate_ct2

    report = evaluate_ct2(
        ct2_dir,
        examples,
        eval_set=set_name,
        model_name=model_name,
        language=config.language,
        beam_size=config.eval_beam_size,
        cpu_threads=config.eval_cpu_threads,
    )
    log.info(
        "%s on %s (%d clips): WER %.1f%%, CER %.1f%%, %.0f s",
        model_name, set_name, report.rates.n, 100 * report.rates.wer, 100 * report.rates.cer,
        report.seconds,
    )  # fmt: skip
    return report


def _clean_up(run_dir: Path, *, promoted: bool) -> None:
    """Drop what only a resume needs (checkpoints, encoder cache) and a refused model."""
    train = run_dir / TRAIN_SUBDIR
    shutil.rmtree(train / CHECKPOINTS_DIR, ignore_errors=True)
    (train / CACHE_FILE).unlink(missing_ok=True)
    if not promoted:
        shutil.rmtree(train / "final", ignore_errors=True)
        shutil.rmtree(run_dir / CANDIDATE_CT2, ignore_errors=True)


class _ProgressReporter:
    def __init__(self, database: Any, run_id: int) -> None:
        self.database = database
        self.run_id = run_id
        self.last = 0.0

    def __call__(self, step: int, total: int, metrics: dict[str, Any]) -> None:
        now = time.monotonic()
        if now - self.last < PROGRESS_EVERY_S and step < total and "phase" not in metrics:
            return
        self.last = now
        self._write(step, total, metrics)

    def phase(self, phase: str, step: int) -> None:
        self._write(step, None, {"phase": phase})

    def _write(self, step: int, total: int | None, metrics: dict[str, Any]) -> None:
        from storage import repository

        with self.database.unit_of_work() as uow:
            repository.update_training_progress(
                uow.session, self.run_id, steps_done=step, steps_total=total, metrics=metrics
            )
            uow.commit()


# --------------------------------------------------------------------------- CLI


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
        result = finetune(FinetuneArguments.from_json(args.args_json))
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    config = RunConfig.from_json(args.config.read_text(encoding="utf-8"))
    try:
        outcome = run_training(config)
    except RunError as exc:
        print(f"training: {exc}", file=sys.stderr)
        return 1
    print(
        json.dumps(
            {"run_id": outcome.run_id, "candidate": outcome.candidate,
             "promoted": outcome.promoted, "reasons": list(outcome.reasons)},
            indent=2,
        )
    )  # fmt: skip
    return 0 if outcome is not None else 1
