"""``whisper-it train [--max-steps N] [--wait]``, ``whisper-it models``, ``whisper-it rollback``.

``train`` launches (or resumes) a training run in its own process and prints its id; with
``--wait`` it follows the run to the end and prints the gate's decision.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import TYPE_CHECKING

from bot.cli import CommandError, bounded, open_existing_database
from bot.settings import Settings
from storage.models import RunStatus

CORPORA_SUBDIR = "corpora"

if TYPE_CHECKING:
    from pathlib import Path

    from bot.training_control import TrainingControl

POLL_SECONDS = 2.0
# The run is recorded as finished before its process deletes its checkpoints and keeps or
# drops a refused model; --wait returns when that is done too (a few seconds, bounded).
CLEAN_UP_SECONDS = 300.0
# Why ``train --wait`` ends without a verdict (the run's own error stays as recorded).
RUN_NOT_DONE = "l'addestramento #{run_id} non è riuscito (stato: {status}): {error}"
RUN_STOPPED = "il processo di addestramento si è fermato"
RUN_GONE = "l'addestramento #{run_id} non è più nel database"
RUN_NO_REPORT = "l'addestramento #{run_id} è finito senza un resoconto"


def register(subparsers: argparse._SubParsersAction) -> None:
    train = subparsers.add_parser("train", help="fine-tune on the stored corrections")
    train.add_argument(
        "--max-steps", type=bounded(int, ge=1), help="optimizer steps (default: settings)"
    )
    train.add_argument("--wait", action="store_true", help="wait for the run and its verdict")
    train.add_argument(
        "--if-enough-samples",
        action="store_true",
        help="start only with the scheduler's minimum of new samples",
    )
    train.set_defaults(func=run_train)

    models = subparsers.add_parser("models", help="list model versions and their WER")
    models.add_argument("--json", action="store_true", help="print JSON")
    models.set_defaults(func=run_models)

    rollback = subparsers.add_parser("rollback", help="serve the previous model version again")
    rollback.set_defaults(func=run_rollback)

    data = subparsers.add_parser("data", help="prepare a base corpus for replay or evaluation")
    actions = data.add_subparsers(dest="data_command", required=True)
    prepare = actions.add_parser(
        "prepare", help="decode a datasets id or a local TSV/audiofolder to 16 kHz FLAC, once"
    )
    prepare.add_argument("source", help="e.g. mozilla-foundation/common_voice_11_0, or a path")
    prepare.add_argument("--config", help="dataset configuration, e.g. it")
    prepare.add_argument("--split", default="train")
    prepare.add_argument("--text-column", help="default: sentence/transcription/text")
    prepare.add_argument("--max-samples", type=int)
    prepare.add_argument("--name", help="folder name under DATA_DIR/corpora")
    prepare.set_defaults(func=run_prepare)


def _control(settings: Settings, *, migrate: bool) -> TrainingControl:
    """``migrate``: ``train`` writes (a run row, and the trainer it starts migrates anyway)
    and creates the database as the bot does; ``models`` and ``rollback`` only read or move
    the current model: they need an existing database at the newest revision and never
    migrate it (open_existing_database)."""
    from bot.training_control import TrainingControl
    from storage.unit_of_work import Database

    url = settings.resolved_database_url
    database = Database.open(url) if migrate else open_existing_database(url)
    return TrainingControl(settings, database)


def run_train(args: argparse.Namespace, settings: Settings) -> int:
    control = _control(settings, migrate=True)
    try:
        result = control.start_run(force=not args.if_enough_samples, max_steps=args.max_steps)
        if not result.started:
            from bot.training_texts import cli_refusal_text

            raise CommandError(cli_refusal_text(result, _log_path(control, result.run_id)))
        what = "resumed" if result.resumed else "started"
        print(f"training run {result.run_id} {what} (pid {result.pid}, log {result.log_path})")
        if not args.wait:
            return 0
        assert result.run_id is not None
        return _follow(control, result.run_id)
    finally:
        control.database.close()


def _log_path(control: TrainingControl, run_id: int | None) -> Path | None:
    """A run's ``train.log`` (``TrainingControl.start_run`` writes it there)."""
    from bot.training_control import LOG_FILE
    from training.config import run_dir_name

    return None if run_id is None else control.runs_dir / run_dir_name(run_id) / LOG_FILE


def _follow(control: TrainingControl, run_id: int) -> int:
    shown = -1
    while True:
        finished = control.wait(run_id, timeout=POLL_SECONDS) is not None
        status = control.get_run(run_id)
        if status is None:
            raise CommandError(RUN_GONE.format(run_id=run_id))
        if status.status == RunStatus.RUNNING and status.steps_done != shown:
            shown = status.steps_done
            total = status.steps_total or "?"
            print(f"  step {shown}/{total} ({status.phase})", file=sys.stderr)
        if finished or not status.is_open:
            break
    if not finished:
        control.wait(run_id, timeout=CLEAN_UP_SECONDS)
    if status.status != RunStatus.DONE:
        from bot.training_texts import STATUS_NAMES

        name = STATUS_NAMES.get(status.status, status.status)
        error = status.error or RUN_STOPPED
        raise CommandError(RUN_NOT_DONE.format(run_id=run_id, status=name, error=error))
    report = status.report
    if report is None:
        raise CommandError(RUN_NO_REPORT.format(run_id=run_id))
    print(
        json.dumps(
            {
                "run_id": run_id,
                "candidate": report.candidate,
                "parent": report.parent,
                "promoted": report.promoted,
                "reasons": list(report.reasons),
                "steps": report.finetune.steps,
                "best_step": report.finetune.best_step,
                "gate": report.gate.to_dict(),
                "data": report.to_dict()["data"],
            },
            indent=2,
            ensure_ascii=False,
        )
    )
    return 0


def run_models(args: argparse.Namespace, settings: Settings) -> int:
    control = _control(settings, migrate=False)  # a report: never a new database
    try:
        models = control.list_models()
    finally:
        control.database.close()
    if args.json:
        rows = [
            {
                "name": m.name,
                "current": m.is_current,
                "parent": m.parent,
                "promoted_at": m.promoted_at.isoformat() if m.promoted_at else None,
                "wer": m.wer,
                "gate": m.gate.to_dict() if m.gate else None,
            }
            for m in models
        ]
        print(json.dumps(rows, indent=2))
        return 0
    for m in models:
        wer = ", ".join(f"{name} {100 * value:.1f}%" for name, value in sorted(m.wer.items()))
        mark = "*" if m.is_current else " "
        print(f"{mark} {m.name:<12} parent={m.parent or '-':<8} WER: {wer or '-'}")
        if m.gate is not None:
            verdict = "promoted" if m.gate.promote else "refused"
            for check in m.gate.checks:
                print(f"    {verdict}: {check.describe()}")
    return 0


def run_rollback(args: argparse.Namespace, settings: Settings) -> int:
    from bot.training_texts import plain_text, rollback_refusal_text
    from model.asr.registry import RegistryError

    control = _control(settings, migrate=False)  # a mistyped folder: nothing created
    try:
        name = control.rollback()
    except RegistryError as exc:  # the bot's /rollback answer (its texts are English)
        raise CommandError(plain_text(rollback_refusal_text(exc))) from exc
    finally:
        control.database.close()
    print(f"now serving {name}")
    return 0


def run_prepare(args: argparse.Namespace, settings: Settings) -> int:
    import re

    from training.data import DataError, prepare_corpus

    default = f"{args.source}-{args.config or ''}-{args.split}"
    name = args.name or re.sub(r"[^A-Za-z0-9._-]+", "_", default).strip("_-.")
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]*", name):  # no "..", no "/"
        raise CommandError(f"invalid corpus name {name!r}: letters, digits, . _ - only")
    out = settings.data_dir / CORPORA_SUBDIR / name
    try:
        prepared = prepare_corpus(
            args.source,
            out,
            config=args.config,
            split=args.split,
            text_column=args.text_column,
            max_samples=args.max_samples,
        )
    except DataError as exc:
        raise CommandError(str(exc)) from exc
    print(
        json.dumps(
            {
                "path": str(prepared.path),
                "examples": prepared.examples,
                "skipped": prepared.skipped,
                "audio_seconds": prepared.seconds,
                "use_with": f"WHISPER_IT_TRAIN_BASE_CORPUS={prepared.path}",
            },
            indent=2,
        )
    )
    return 0
