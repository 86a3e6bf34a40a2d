"""Training as the bot and the CLI see it: start a run, follow it, list and roll back models.

No ``telegram`` import. Runs are separate processes (``python -m training run``); this
service only launches them and reads the database and the model registry. One run at a
time: a run left open by a dead process (crash, kill, reboot) is resumed, with the same id
and data snapshot, by the next ``start_run``.
"""

from __future__ import annotations

import datetime as dt
import enum
import os
import subprocess
import sys
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import training
from bot.settings import Settings
from model.asr.registry import BASE_VERSION, ModelRegistry
from storage import training_records
from storage.models import RunStatus
from storage.training_lease import lease_alive, lease_owner, lock_training, take_run_lease
from training.arguments import FinetuneArguments
from training.config import RunConfig, run_dir_name
from training.configurable import from_settings
from training.gate_policy import GatePolicy
from training.gate_records import GateDecision
from training.general_set import general_set_source
from training.report import REPORT_KEY, RunReport

if TYPE_CHECKING:
    from storage.training_records import WerPoint
    from storage.unit_of_work import Database
    from training.forgetting import ForgetReport

RUNS_SUBDIR = "runs"
ENCODER_CACHE_SUBDIR = "encoder-cache"
LOG_FILE = "train.log"
# A run killed this many times (out of memory, say) is failed instead of resumed again.
MAX_ATTEMPTS = 3


class StartRefusal(enum.Enum):
    """Why ``start_run`` did not start a run (Italian texts: ``bot.training_texts``)."""

    IN_PROGRESS = "in_progress"  # ``run_id`` is the run in progress
    GIVEN_UP = "given_up"  # the interrupted run ``run_id`` was killed too often
    NOT_ENOUGH_SAMPLES = "not_enough_samples"  # ``new_samples`` < ``needed``


@dataclass(frozen=True)
class StartResult:
    """``started`` False: ``refusal`` says why (``run_id`` is then the blocking run, if any)."""

    started: bool
    run_id: int | None = None
    pid: int | None = None
    resumed: bool = False
    refusal: StartRefusal | None = None
    new_samples: int | None = None
    needed: int | None = None
    log_path: Path | None = None


@dataclass(frozen=True)
class TrainingStatus:
    run_id: int
    status: str  # pending, running, done, failed, cancelled
    phase: str | None
    steps_done: int
    steps_total: int | None
    progress: float
    samples_used: int | None
    error: str | None
    created_at: dt.datetime
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    updated_at: dt.datetime
    state: training_records.RunState = field(default_factory=training_records.RunState)
    # False once its trainer is gone: the lease ran out, or the process we launched ended.
    trainer_alive: bool = True

    @property
    def is_open(self) -> bool:
        return self.status in (RunStatus.PENDING, RunStatus.RUNNING)

    @property
    def interrupted(self) -> bool:
        """Open, but nobody works on it: the next ``start_run`` resumes it (or gives up)."""
        return self.is_open and not self.trainer_alive

    @property
    def report(self) -> RunReport | None:
        """The finished run's report (None while it runs, or when it failed)."""
        report = self.state.report
        return RunReport.from_dict(report) if report else None

    @property
    def promoted(self) -> bool | None:
        report = self.report
        return None if report is None else report.promoted


@dataclass(frozen=True)
class ModelInfo:
    name: str
    is_current: bool
    created_at: dt.datetime | None
    promoted_at: dt.datetime | None
    parent: str | None
    # Latest WER per evaluation set, as fractions.
    wer: dict[str, float] = field(default_factory=dict)
    # The gate's decision on this version (None for the base model).
    gate: GateDecision | None = None


class TrainingControl:
    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.registry = ModelRegistry(settings.models_dir)
        self._processes: dict[int, subprocess.Popen[bytes]] = {}
        # Exit statuses of the trainers reaped by ``_reap`` (their processes are dropped).
        self._exit_codes: dict[int, int] = {}
        self._lock = threading.Lock()

    @property
    def runs_dir(self) -> Path:
        return self.settings.data_dir / RUNS_SUBDIR

    @property
    def encoder_cache_dir(self) -> Path:
        return self.settings.data_dir / ENCODER_CACHE_SUBDIR

    def forget_audio(self, audio_hashes: Collection[str]) -> ForgetReport:
        """/forget for training: open runs' data, the encoder cache, and the versions
        trained on the audio (never served again; ``training.forgetting``)."""
        from training.forgetting import forget_training_audio

        with self.database.unit_of_work(read_only=True) as uow:
            active = training_records.active_training_run(uow.session)
            # Its trainer is still using its model folders: it refuses to promote instead.
            in_progress = run_dir_name(active.id) if active is not None else None
        return forget_training_audio(
            audio_hashes,
            runs_dir=self.runs_dir,
            models_dir=self.settings.models_dir,
            encoder_cache_dir=self.encoder_cache_dir,
            in_progress=in_progress,
        )

    # --- runs ------------------------------------------------------------------------

    def new_samples(self) -> int:
        from storage.samples import count_new_samples

        with self.database.unit_of_work(read_only=True) as uow:
            return count_new_samples(uow.session, policy=self.settings.split)

    def start_run(self, *, force: bool = False, max_steps: int | None = None) -> StartResult:
        """Launch a run (or resume an interrupted one); never two at once.

        Without ``force`` a new run needs ``train_min_new_samples`` new corrections (the
        scheduler's rule); an interrupted run is resumed either way.
        """

        with self._lock, self.database.unit_of_work() as uow:
            # Two callers (two fronts, the CLI, any machine) cannot both see "no run" and
            # both start one; a run whose trainer stopped renewing its lease is resumed.
            lock_training(uow.session)
            active = training_records.active_training_run(uow.session)
            if active is not None and lease_alive(active) and not self._exited(active.id):
                return StartResult(False, active.id, active.pid, refusal=StartRefusal.IN_PROGRESS)
            if active is not None:
                run, resumed = active, True
                if training_records.run_state(run).attempts >= MAX_ATTEMPTS:
                    training_records.finish_training_run(
                        uow.session,
                        run.id,
                        status=RunStatus.FAILED,
                        error=f"interrupted {MAX_ATTEMPTS} times; not resumed again",
                    )
                    uow.commit()
                    return StartResult(False, run.id, refusal=StartRefusal.GIVEN_UP)
                training_records.restart_training_run(uow.session, run.id)
            else:
                if not force:
                    new = self._count_new(uow.session)
                    needed = self.settings.train_min_new_samples
                    if new < needed:
                        return StartResult(
                            False,
                            refusal=StartRefusal.NOT_ENOUGH_SAMPLES,
                            new_samples=new,
                            needed=needed,
                        )
                run = training_records.create_training_run(uow.session, config={})
                resumed = False
                config = self.run_config(run.id, max_steps=max_steps)
                run.config = config.recorded()
                run.base_model = self.settings.base_model
                run.output_dir = str(config.run_dir)
            config_path = self._write_config(run.id, max_steps=max_steps, reuse=resumed)
            log_path = config_path.parent / LOG_FILE
            process = self._spawn(config_path, log_path)
            run.pid = process.pid  # for the log reader; liveness is the lease
            take_run_lease(uow.session, run, owner=lease_owner(process.pid))
            uow.commit()
            self._processes[run.id] = process
            self._exit_codes.pop(run.id, None)
            return StartResult(True, run.id, process.pid, resumed=resumed, log_path=log_path)

    def wait(self, run_id: int, timeout: float | None = None) -> int | None:
        """Wait for a run this service launched and return its exit status; None if it is
        still running after ``timeout`` seconds (or was not launched by this service)."""
        process = self._processes.get(run_id)
        if process is None:
            return self._exit_codes.get(run_id)
        try:
            return process.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def status(self) -> TrainingStatus | None:
        """The open run, else the latest one; None if training never ran."""
        self._reap()
        with self.database.unit_of_work(read_only=True) as uow:
            run = training_records.active_training_run(
                uow.session
            ) or training_records.latest_training_run(uow.session)
            if run is None:
                return None
            return _status(run, trainer_alive=lease_alive(run) and not self._exited(run.id))

    def get_run(self, run_id: int) -> TrainingStatus | None:
        with self.database.unit_of_work(read_only=True) as uow:
            run = training_records.get_training_run(uow.session, run_id)
            return None if run is None else _status(run)

    # --- models ----------------------------------------------------------------------

    def wer_history(self, eval_set: str | None = None) -> list[WerPoint]:
        with self.database.unit_of_work(read_only=True) as uow:
            return training_records.wer_history(uow.session, eval_set=eval_set)

    def list_models(self) -> list[ModelInfo]:
        """Every recorded version, oldest first; the served one has ``is_current``."""

        current = self.registry.current_name()
        with self.database.unit_of_work(read_only=True) as uow:
            versions = training_records.list_model_versions(uow.session)
            names = {v.id: v.name for v in versions}
            latest: dict[str, dict[str, float]] = {}
            for point in training_records.wer_history(uow.session):
                latest.setdefault(point.model_version, {})[point.eval_set] = point.wer
        infos = [
            ModelInfo(
                name=v.name,
                is_current=v.name == current,
                created_at=v.created_at,
                promoted_at=v.promoted_at,
                parent=names.get(v.parent_id) if v.parent_id else None,
                wer=latest.get(v.name, {}),
                gate=_gate_of(v.metrics),
            )
            for v in versions
        ]
        if not any(info.name == BASE_VERSION for info in infos):
            infos.insert(0, ModelInfo(BASE_VERSION, current == BASE_VERSION, None, None, None))
        return infos

    def rollback(self) -> str:
        """Serve the current version's parent again; returns its name.

        Raises ``model.asr.registry.RegistryError`` when the base model is already serving.
        """
        from training.promote import rollback

        return rollback(self.registry, self.database)

    def current_model(self) -> tuple[str, Path] | None:
        """(name, CTranslate2 folder) of the promoted model in service; None = base model."""
        version = self.registry.current()
        return None if version is None else (version.name, version.ct2_dir)

    # --- helpers ---------------------------------------------------------------------

    def run_config(self, run_id: int, *, max_steps: int | None = None) -> RunConfig:
        s = self.settings
        finetune = from_settings(
            FinetuneArguments,
            s,
            max_steps=max_steps or s.train_max_steps,
            max_train_seconds=s.train_max_minutes * 60,
            language=s.language,
        )
        gate = from_settings(GatePolicy, s)
        return RunConfig(
            run_id=run_id,
            database_url=s.resolved_database_url,
            audio_dir=str(s.audio_dir.resolve()),
            models_dir=str(s.models_dir.resolve()),
            cache_dir=str(s.cache_dir.resolve()),
            runs_dir=str(self.runs_dir.resolve()),
            base_model=s.base_model,
            offline=s.offline,
            language=s.language,
            eval_fraction=s.eval_fraction,
            eval_min_sentences=s.eval_min_sentences,
            train_max_user_share=s.train_max_user_share,
            eval_beam_size=s.beam_size,
            eval_cpu_threads=s.cpu_threads,
            general_eval_set=general_set_source(s.eval_general_set),
            recent_eval_clips=s.eval_recent_clips,
            replay_uncorrected=s.train_replay_uncorrected,
            base_corpus=str(s.train_base_corpus.resolve()) if s.train_base_corpus else None,
            replay_ratio=s.train_replay_ratio,
            min_train_samples=s.train_min_samples,
            test_then_train=s.train_test_then_train,
            keep_refused=s.train_keep_refused,
            versions_kept=s.model_versions_kept,
            hub_repo_id=s.hub_repo_id,
            encoder_cache_dir=str(self.encoder_cache_dir.resolve()),
            start_from=s.train_start_from,
            finetune=finetune,
            gate=gate,
        )

    def _write_config(self, run_id: int, *, max_steps: int | None, reuse: bool) -> Path:
        from training.runner import CONFIG_FILE

        config = self.run_config(run_id, max_steps=max_steps)
        path = config.run_dir / CONFIG_FILE
        if reuse and path.is_file():
            config = RunConfig.from_json(path.read_text(encoding="utf-8"))
        config.run_dir.mkdir(parents=True, exist_ok=True)
        config.write(path)
        return path

    def _spawn(self, config_path: Path, log_path: Path) -> subprocess.Popen[bytes]:
        with log_path.open("ab") as log:
            return subprocess.Popen(
                [sys.executable, "-m", "training", "run", "--config", str(config_path)],
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env=self._trainer_env(),
                # The run's own folder: nothing is read from the working directory, and
                # the bot may run from anywhere (an installed wheel has no source tree).
                cwd=str(config_path.parent),
                # Its own session: a Ctrl-C or a bot restart does not kill the training.
                start_new_session=True,
            )

    def _trainer_env(self) -> dict[str, str]:
        env = dict(os.environ)
        # Where this process found the ``training`` package: site-packages for a wheel, the
        # checkout for a source run. The child imports the very same code either way.
        package_root = str(Path(training.__file__).resolve().parent.parent)
        paths = [package_root, *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env["PYTHONPATH"] = os.pathsep.join(dict.fromkeys(paths))
        if self.settings.hub_token is not None:
            # huggingface_hub reads its token from the environment of the training process.
            env["HF_TOKEN"] = self.settings.hub_token.get_secret_value()
        return env

    def _exited(self, run_id: int) -> bool:
        """A trainer this process launched has ended (its lease may not have run out yet:
        no need to wait for it)."""
        process = self._processes.get(run_id)
        if process is None:
            return run_id in self._exit_codes
        return process.poll() is not None

    def _reap(self) -> None:
        """Collect the trainers that ended (no zombies) and drop their processes."""
        with self._lock:
            for run_id, process in list(self._processes.items()):
                code = process.poll()
                if code is not None:
                    self._exit_codes[run_id] = code
                    del self._processes[run_id]

    def _count_new(self, session: Any) -> int:
        from storage.samples import count_new_samples

        return count_new_samples(session, policy=self.settings.split)


def _gate_of(metrics: dict[str, Any] | None) -> GateDecision | None:
    report = (metrics or {}).get(REPORT_KEY)
    return GateDecision.from_dict(report["gate"]) if report else None


def _status(run: Any, *, trainer_alive: bool = True) -> TrainingStatus:
    state = training_records.run_state(run)
    return TrainingStatus(
        run_id=run.id,
        status=run.status,
        phase=state.phase,
        steps_done=run.steps_done,
        steps_total=run.steps_total,
        progress=run.progress,
        samples_used=run.samples_used,
        error=run.error,
        created_at=run.created_at,
        started_at=run.started_at,
        finished_at=run.finished_at,
        updated_at=run.updated_at,
        state=state,
        trainer_alive=trainer_alive,
    )
