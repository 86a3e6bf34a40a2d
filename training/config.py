"""A training run's configuration: written by the bot as JSON, read by the training process.

Typed all the way down: the fine-tuning policy is a ``FinetuneArguments`` (its per-run
paths are filled in by the runner) and the promotion policy a ``GatePolicy``.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from model.asr.normalize import normalize_text
from storage.split_policy import DEFAULT_EVAL_FRACTION, DEFAULT_MIN_EVAL_SENTENCES, SplitPolicy
from training.arguments import FinetuneArguments
from training.gate_policy import GatePolicy


def split_policy(
    eval_fraction: float, min_eval_sentences: int = DEFAULT_MIN_EVAL_SENTENCES
) -> SplitPolicy:
    """The installation's split: ``eval_fraction`` of the sentences held out, at least
    ``min_eval_sentences`` of them, sentences compared by the one Italian normaliser every
    WER uses."""
    return SplitPolicy(
        eval_fraction=eval_fraction,
        sentence_key=normalize_text,
        min_eval_sentences=min_eval_sentences,
    )


def run_dir_name(run_id: int) -> str:
    """A run's folder under the runs directory."""
    return f"run-{run_id:04d}"


START_FROM_BASE = "base"
# Chaining on the served model: only for the benchmark that shows why runs start from base.
START_FROM_SERVING = "serving"
# Recent uncorrected clips the gate compares both models on (the default forgetting guard).
DEFAULT_RECENT_CLIPS = 32


@dataclass(frozen=True, kw_only=True)
class RunConfig:
    """Everything a training process needs."""

    run_id: int
    database_url: str
    audio_dir: str
    models_dir: str
    cache_dir: str
    runs_dir: str
    base_model: str
    offline: bool = False  # the base model from the Hub's cache only (WHISPER_IT_OFFLINE)
    language: str = "it"
    eval_fraction: float = DEFAULT_EVAL_FRACTION
    eval_min_sentences: int = DEFAULT_MIN_EVAL_SENTENCES
    train_max_user_share: float = 0.8
    eval_beam_size: int = 5
    eval_cpu_threads: int = 0
    general_eval_set: str | None = None
    recent_eval_clips: int = DEFAULT_RECENT_CLIPS
    # Recent uncorrected clips trained on with the served transcript as target.
    replay_uncorrected: int = 0
    base_corpus: str | None = None
    replay_ratio: float = 0.0
    min_train_samples: int = 1
    # Corrections of new sentences since the last run are first judged on, then trained on
    # (``training.snapshot.hold_out_fresh``).
    test_then_train: bool = True
    # A refused candidate's CTranslate2 model stays in the run folder (``REFUSED_CT2``), to
    # be scored or inspected; /forget deletes it with the rest (``training.forgetting``).
    keep_refused: bool = False
    # After a promotion, the weights of versions further back than this many rollback
    # steps are deleted (``ModelRegistry.prune``).
    versions_kept: int = 3
    hub_repo_id: str | None = None
    # The persistent lower-encoder cache (``training.encoder_cache``); None = per run.
    encoder_cache_dir: str | None = None
    start_from: str = START_FROM_BASE
    finetune: FinetuneArguments = field(default_factory=FinetuneArguments)
    gate: GatePolicy = field(default_factory=GatePolicy)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=2, sort_keys=True)

    def recorded(self) -> dict[str, Any]:
        """:meth:`to_dict` for the run's database row, which admins and backups read: the
        database password stays in the trainer's own 0600 file."""
        from sqlalchemy.engine import make_url

        url = make_url(self.database_url).render_as_string(hide_password=True)
        return {**self.to_dict(), "database_url": url}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunConfig:
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        values["finetune"] = FinetuneArguments.from_dict(dict(values.get("finetune") or {}))
        gate_fields = {f.name for f in fields(GatePolicy)}
        gate = {k: v for k, v in dict(values.get("gate") or {}).items() if k in gate_fields}
        values["gate"] = GatePolicy(**gate)
        return cls(**values)

    @classmethod
    def from_json(cls, text: str) -> RunConfig:
        return cls.from_dict(json.loads(text))

    def write(self, path: Path) -> None:
        """Save to ``path`` atomically, readable by its owner only: it holds the database
        URL, password included."""
        from model.asr.registry import write_text_atomically

        # mkstemp's file, renamed into place, keeps its mode: 0600, the owner's alone.
        write_text_atomically(path, self.to_json() + "\n")

    @property
    def split(self) -> SplitPolicy:
        return split_policy(self.eval_fraction, self.eval_min_sentences)

    @property
    def run_dir(self) -> Path:
        return Path(self.runs_dir) / run_dir_name(self.run_id)
