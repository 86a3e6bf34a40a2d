"""The one typed report of a finished training run.

The runner writes it (``training_runs.metrics["report"]``, the version's ``metrics.json``),
and the CLI (``whisper-it train --wait``, ``models``) and the bot (``/status``, ``/wer``)
read it back with ``RunReport.from_metrics``; nobody else digs in the JSON.
No heavy imports: the bot imports this at start.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from training.arguments import FinetuneResult
from training.gate_records import GateDecision

REPORT_KEY = "report"


@dataclass(frozen=True)
class DataFacts:
    """What the run trained and was judged on (counts only: no texts, see privacy)."""

    samples_used: int
    train_clips: int
    heldout_clips: int
    # Held-out clips left out of the gate because their sentence is also on the train side.
    heldout_shared_sentences: int = 0
    recent_clips: int = 0
    replayed_uncorrected: int = 0
    general_clips: int = 0
    # Which general set was judged: "packaged", an admin's path, or None (off).
    general_set: str | None = None
    max_correction_id: int | None = None
    # Of the held-out clips: new since the last run, trained on by the next (test-then-train).
    fresh_clips: int = 0


@dataclass(frozen=True)
class RunReport:
    run_id: int
    candidate: str
    parent: str
    promoted: bool
    gate: GateDecision
    finetune: FinetuneResult
    data: DataFacts
    base_model: str
    created_at: str  # ISO 8601, UTC

    @property
    def reasons(self) -> tuple[str, ...]:
        return self.gate.reasons

    def to_dict(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "candidate": self.candidate,
            "parent": self.parent,
            "promoted": self.promoted,
            "gate": self.gate.to_dict(),
            "finetune": self.finetune.to_dict(),
            "data": asdict(self.data),
            "base_model": self.base_model,
            "created_at": self.created_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RunReport:
        known = {f.name for f in fields(DataFacts)}
        return cls(
            run_id=int(data["run_id"]),
            candidate=str(data["candidate"]),
            parent=str(data["parent"]),
            promoted=bool(data["promoted"]),
            gate=GateDecision.from_dict(data["gate"]),
            finetune=FinetuneResult.from_dict(dict(data["finetune"])),
            data=DataFacts(**{k: v for k, v in dict(data["data"]).items() if k in known}),
            base_model=str(data.get("base_model", "")),
            created_at=str(data.get("created_at", "")),
        )

    @classmethod
    def from_metrics(cls, metrics: Mapping[str, Any] | None) -> RunReport | None:
        """The report inside a run's (or a version's) metrics; None while it runs."""
        raw = (metrics or {}).get(REPORT_KEY)
        return None if not raw else cls.from_dict(raw)
