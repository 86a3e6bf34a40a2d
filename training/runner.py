"""One training run, start to finish: the process the bot launches.

``python -m training run --config RUN.json`` (``training.__main__``) snapshots the data
(first start only, ``training.snapshot``), fine-tunes **from the base model** on all current
corrections (never from the served model: no version inherits another's data or drift, and
/forget leaves the weights at the next promotion), with checkpoints, keeping the last step
(or, with a validation slice, the one that did best on it), exports the candidate to CTranslate2,
evaluates candidate and serving model with the serving engine on the same clips, records
every evaluation, and promotes the candidate if the gate (``training.gate``) allows. The
candidate's ``parent`` is the version it replaces (what /rollback returns to). Progress
goes to the ``training_runs`` row, and the outcome is one ``training.report.RunReport``.

Started again with the same run id after a crash or kill, it reuses the run's data
snapshot and resumes from the newest checkpoint. A failure is recorded on the run. A
finished run deletes its text manifests (privacy: ``training.snapshot``).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import os
from pathlib import Path
from typing import Any

from model.asr.registry import BASE_VERSION, ModelRegistry, RegistryError, VersionFolder
from storage import training_records
from storage.models import RunStatus
from storage.training_lease import lease_owner
from training.arguments import FinetuneArguments, FinetuneResult
from training.config import START_FROM_SERVING, RunConfig
from training.data import Example
from training.finetune import finetune, planned_steps
from training.forgetting import (
    TRAINED_ON_FILE,
    record_trained_on,
    run_forgotten,
    trained_on,
)
from training.gate_policy import GENERAL_SET, HELDOUT_SET, RECENT_SET
from training.heartbeat import LeaseHeartbeat, LeaseLost
from training.judging import judge
from training.promote import FORGOTTEN_MEANWHILE, INSTALLED_NOT_SERVING, PromotionWithheld
from training.report import REPORT_KEY, DataFacts, RunReport
from training.run_folder import CANDIDATE_CT2, TRAIN_SUBDIR, clean_up, sweep_closed_runs
from training.run_progress import ProgressReporter
from training.snapshot import (
    SNAPSHOT_FILE,
    TRAIN_MANIFEST,
    Snapshot,
    SnapshotError,
    read_run_manifest,
    take_snapshot,
)

log = logging.getLogger(__name__)

CONFIG_FILE = "run_config.json"

__all__ = ["CONFIG_FILE", "RunConfig", "RunError", "run_training"]


# The run's error when a /forget took clips from under the training (admins read it).
FORGOTTEN_DURING_TRAINING = (
    "addestramento interrotto: un utente ha cancellato con /forget audio che questa "
    "esecuzione stava usando. La prossima esecuzione addestrerà senza."
)


class RunError(Exception):
    """The run cannot proceed (no data, finished already, unknown id)."""


def version_name(run_id: int) -> str:
    return f"v{run_id}"


def run_training(config: RunConfig) -> RunReport:
    """Run (or resume) ``config.run_id``; records failure on the run and re-raises."""
    from storage.unit_of_work import Database

    database = Database.open(config.database_url)
    try:
        with database.unit_of_work(read_only=True) as uow:
            run = training_records.get_training_run(uow.session, config.run_id)
            if run is None:
                raise RunError(f"training run {config.run_id} does not exist")
            if run.status not in training_records.OPEN_RUN_STATUSES:
                raise RunError(f"training run {config.run_id} is already {run.status}")
        try:
            with LeaseHeartbeat(database, config.run_id, owner=lease_owner()) as heartbeat:
                return _run(config, database, heartbeat)
        except SnapshotError as exc:
            _fail(database, config.run_id, exc)
            raise RunError(str(exc)) from exc
        except BaseException as exc:
            if isinstance(exc, KeyboardInterrupt | SystemExit | LeaseLost):
                # Stopped on purpose, or another trainer holds the run: leave it open.
                raise
            _fail(database, config.run_id, exc)
            raise
    finally:
        database.close()


def _fail(database: Any, run_id: int, exc: BaseException) -> None:

    with database.unit_of_work() as uow:
        run = training_records.get_training_run(uow.session, run_id)
        if run is not None and run.status in training_records.OPEN_RUN_STATUSES:
            training_records.finish_training_run(
                uow.session,
                run_id,
                status=RunStatus.FAILED,
                error=f"{type(exc).__name__}: {exc}"[:2000],
            )
            uow.commit()


def _run(config: RunConfig, database: Any, heartbeat: LeaseHeartbeat) -> RunReport:
    run_dir = config.run_dir
    run_dir.mkdir(parents=True, exist_ok=True)
    config.write(run_dir / CONFIG_FILE)
    sweep_closed_runs(run_dir)
    registry = ModelRegistry(Path(config.models_dir))
    registry.remove_partial_installs()  # a killed install's; this trainer holds the lease
    installed = _installed(registry, version_name(config.run_id))
    if installed is not None:  # killed after promoting, before the run was closed
        return _finish_installed(config, database, registry, installed)
    snapshot, finetune_args = _prepare(config, database, registry)
    reporter = ProgressReporter(database, config.run_id, heartbeat)
    try:
        result = finetune(finetune_args, progress=reporter)
    except FileNotFoundError as exc:  # a /forget deleted cached clips the run was reading
        if run_forgotten(run_dir):
            raise RunError(FORGOTTEN_DURING_TRAINING) from exc
        raise
    reporter.phase("evaluating", result.steps)

    from model.asr import convert

    candidate_ct2 = convert.export_hf_to_ct2(
        result.model_dir, run_dir / CANDIDATE_CT2, quantization="int8", overwrite=True
    )
    candidate_name = version_name(config.run_id)
    decision, evaluations, sets = judge(
        config, database, registry, snapshot.replaces, candidate_name, candidate_ct2
    )
    for line in decision.reasons:
        log.info("gate: %s", line)
    # Read before the check: a /forget after it rewrites the run's list, and the version
    # must carry the full list for a later /forget (or the check after install) to mark it.
    hashes = trained_on(run_dir)
    # Audio deleted by /forget while this process had it loaded: never serve the result.
    withheld = FORGOTTEN_MEANWHILE if decision.promote and run_forgotten(run_dir) else None
    report = RunReport(
        run_id=config.run_id,
        candidate=candidate_name,
        parent=snapshot.replaces,
        promoted=decision.promote and withheld is None,
        gate=decision,
        finetune=result,
        data=_facts(snapshot, sets, general_set=config.general_eval_set),
        base_model=config.base_model,
        created_at=dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    )
    heartbeat.confirm()  # another trainer holds the run now: it records, not this one
    candidate_id = _record(config, database, report, evaluations)
    if report.promoted:
        heartbeat.confirm()
        try:
            _promote(config, database, registry, report, candidate_ct2, candidate_id, hashes)
        except PromotionWithheld as exc:
            withheld = str(exc)
            report = dataclasses.replace(report, promoted=False)
    log.info("gate: %s", "promote" if report.promoted else f"refuse: {withheld or 'gate'}")
    _finish(database, config.run_id, report, error=withheld)
    clean_up(run_dir, promoted=report.promoted, keep_refused=config.keep_refused)
    return report


def _installed(registry: ModelRegistry, name: str) -> VersionFolder | None:
    try:
        return registry.get(name)
    except RegistryError:
        return None


def _finish_installed(
    config: RunConfig, database: Any, registry: ModelRegistry, version: VersionFolder
) -> RunReport:
    """Close a run whose version was installed before a kill: judging it again would add
    duplicate evaluations and fail on the existing folder. It counts as promoted only if
    it serves (otherwise it was withheld, or killed before the pointer switch)."""
    promoted = registry.current_name() == version.name
    report = dataclasses.replace(RunReport.from_dict(version.metrics), promoted=promoted)
    withheld = None if promoted else INSTALLED_NOT_SERVING.format(name=version.name)
    if promoted:
        with database.unit_of_work() as uow:
            row = training_records.get_model_version(uow.session, version.name)
            if row is not None:  # the pointer may have switched before the DB commit
                training_records.activate_model_version(uow.session, row.id)
            uow.commit()
    log.info("run %d: %s was installed before a restart", config.run_id, version.name)
    _finish(database, config.run_id, report, error=withheld)
    clean_up(config.run_dir, promoted=promoted, keep_refused=False)
    return report


def _finish(database: Any, run_id: int, report: RunReport, *, error: str | None) -> None:
    """Close the run; ``error`` says why an approved candidate does not serve."""
    with database.unit_of_work() as uow:
        training_records.finish_training_run(
            uow.session,
            run_id,
            status=RunStatus.DONE,
            phase="done",
            report=report.to_dict(),
            error=error,
        )
        uow.commit()


def _prepare(
    config: RunConfig, database: Any, registry: ModelRegistry
) -> tuple[Snapshot, FinetuneArguments]:
    """The run's data, frozen once (a resume reuses it), and its fine-tuning arguments;
    the run is recorded as started."""
    run_dir = config.run_dir
    start_model, start_hf = _start_model(config, registry)
    snapshot = take_snapshot(
        config,
        database,
        start_model=start_model,
        start_hf_dir=start_hf,
        replaces=registry.current_name(),
    )
    # Drops audio forgotten since the snapshot.
    train_examples = read_run_manifest(run_dir / TRAIN_MANIFEST)
    if not (run_dir / TRAINED_ON_FILE).is_file():
        record_trained_on(run_dir, (e.audio_path for e in train_examples))
    finetune_args = dataclasses.replace(
        config.finetune,
        model_dir=snapshot.start_hf_dir,
        train_manifest=str(run_dir / TRAIN_MANIFEST),
        output_dir=str(run_dir / TRAIN_SUBDIR),
        encoder_cache_dir=config.encoder_cache_dir or "",
    )
    with database.unit_of_work() as uow:
        training_records.start_training_run(
            uow.session,
            config.run_id,
            samples_used=snapshot.samples_used,
            max_correction_id=snapshot.max_correction_id,
            steps_total=planned_steps(finetune_args, len(train_examples)),
            pid=os.getpid(),
        )
        training_records.update_training_progress(
            uow.session,
            config.run_id,
            steps_done=0,
            phase="training",
            start_model=snapshot.start_model,
            replaces=snapshot.replaces,
        )
        uow.commit()
    return snapshot, finetune_args


def _start_model(config: RunConfig, registry: ModelRegistry) -> tuple[str, Path]:
    """(name, HF folder) this run fine-tunes: the base model. ``start_from="serving"``
    (chaining on the served model, kept only for the benchmark that compares the two)
    takes the served version instead."""
    from model.asr import sources

    current = registry.current() if config.start_from == START_FROM_SERVING else None
    if current is not None:
        return current.name, current.hf_dir
    base = sources.hf_dir(
        config.base_model, cache_dir=Path(config.cache_dir), local_files_only=config.offline
    )
    return BASE_VERSION, base.path


def _facts(
    snapshot: Snapshot, sets: dict[str, list[Example]], *, general_set: str | None
) -> DataFacts:
    return DataFacts(
        samples_used=snapshot.samples_used,
        train_clips=snapshot.train_clips,
        heldout_clips=len(sets.get(HELDOUT_SET, ())),
        heldout_shared_sentences=snapshot.heldout_shared_sentences,
        recent_clips=len(sets.get(RECENT_SET, ())),
        replayed_uncorrected=snapshot.replayed_uncorrected,
        general_clips=len(sets.get(GENERAL_SET, ())),
        general_set=general_set,
        max_correction_id=snapshot.max_correction_id,
        fresh_clips=snapshot.fresh_clips,
    )


def _record(
    config: RunConfig, database: Any, report: RunReport, evaluations: dict[str, dict[str, Any]]
) -> int:
    """Model version rows and every evaluation; returns the candidate's row id. A run
    killed after recording (before its version was installed) judges again when it
    resumes: the new evaluations replace the ones it recorded then."""
    from training.promote import ensure_version_row

    with database.unit_of_work() as uow:
        training_records.delete_run_evaluations(uow.session, config.run_id)
        parent_row = ensure_version_row(uow.session, report.parent, spec=config.base_model)
        candidate_row = training_records.get_model_version(uow.session, report.candidate)
        if candidate_row is None:
            candidate_row = training_records.add_model_version(
                uow.session,
                name=report.candidate,
                parent_id=parent_row.id,
                training_run_id=config.run_id,
                metrics={"promoted": False, REPORT_KEY: report.to_dict()},
            )
        else:  # recorded by a killed attempt: this judging's report replaces its one
            candidate_row.metrics = {**candidate_row.metrics, REPORT_KEY: report.to_dict()}
        for model_name, by_set in evaluations.items():
            row = candidate_row if model_name == report.candidate else parent_row
            if model_name not in (report.candidate, report.parent):  # the base model
                row = ensure_version_row(uow.session, model_name, spec=config.base_model)
            for set_name, evaluation in by_set.items():
                check = report.gate.check(set_name)
                training_records.add_evaluation(
                    uow.session,
                    model_version_id=row.id,
                    eval_set=set_name,
                    wer=evaluation.rates.wer,
                    cer=evaluation.rates.cer,
                    count=evaluation.rates.n,
                    training_run_id=config.run_id,
                    # Counts and the gate's verdict only: no texts leave the run.
                    metrics={
                        **evaluation.as_dict(),
                        "gate": check.to_dict() if check else None,
                    },
                )
        uow.commit()
        return int(candidate_row.id)


def _promote(
    config: RunConfig,
    database: Any,
    registry: ModelRegistry,
    report: RunReport,
    candidate_ct2: Path,
    candidate_id: int,
    hashes: set[str],
) -> None:
    from training.promote import model_card, promote_version, push_to_hub

    result: FinetuneResult = report.finetune
    trained_from = Snapshot.from_json((config.run_dir / SNAPSHOT_FILE).read_text()).start_model
    card = model_card(
        name=report.candidate,
        parent=report.parent,
        base_model=config.base_model,
        decision=report.gate,
        training={
            "mode": result.mode,
            "steps": result.steps,
            "kept step (best validation loss)": result.best_step,
            "validation clips (unseen sentences)": result.validation_clips,
            "training examples (with augmented copies)": result.examples,
            "samples used": report.data.samples_used,
            "final training loss": result.train_loss,
            "training seconds": result.train_seconds,
            "trained from": trained_from,
            "replaces": report.parent,
            "WiSE-FT alpha (chosen on validation; none = off)": result.wise_alpha,
            "checkpoint averaging: steps averaged (none = off)": result.averaged_steps or None,
            "encoder cache entries reused / computed": (
                f"{result.encoder_cache_reused} / {result.encoder_cache_computed}"
            ),
        },
        created_at=dt.datetime.now(dt.UTC),
    )
    promote_version(
        registry,
        database,
        name=report.candidate,
        hf_dir=result.model_dir,
        ct2_dir=candidate_ct2,
        metrics={**report.to_dict(), "trained_from": trained_from},
        card=card,
        model_version_id=candidate_id,
        trained_on=hashes,
        run_dir=config.run_dir,
    )
    try:  # the weights no rollback can reach (the promotion stands if this fails)
        log.info("weights deleted: %s", registry.prune(keep=config.versions_kept) or "none")
    except OSError as exc:
        log.warning("could not delete old versions' weights: %s", exc)
    if config.hub_repo_id:
        try:
            push_to_hub(registry.get(report.candidate).path, config.hub_repo_id,
                        revision_message=report.candidate)  # fmt: skip
        except Exception as exc:  # the model is promoted; a failed upload is only logged
            log.warning("could not push %s to the Hub: %s", report.candidate, exc)
