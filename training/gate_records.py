"""The gate's records: what it decided on each set and in all (``training.gate`` decides).

Read back by the run report, the model card, ``/status``, ``/wer`` and ``whisper-it models``,
so they round-trip through JSON (``to_dict`` / ``from_dict``); records written by older
versions load with defaults for fields added since.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

from training.gate_policy import GatePolicy

SERVING = "serving"
BASE = "base"


class Role(enum.StrEnum):
    PRIMARY = "primary"
    GUARD = "guard"


class Verdict(enum.StrEnum):
    """What the interval says about the candidate on one set."""

    BETTER = "better"
    WORSE = "worse"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True)
class Interval:
    """Candidate WER minus the baseline's (negative = better), with its sign-flip interval."""

    delta: float
    low: float
    high: float

    @property
    def verdict(self) -> Verdict:
        if self.high < 0:
            return Verdict.BETTER
        if self.low > 0:
            return Verdict.WORSE
        return Verdict.INCONCLUSIVE


@dataclass(frozen=True)
class SetCheck:
    """One set's paired comparison and whether it lets the candidate through."""

    eval_set: str
    role: Role
    clips: int
    sentences: int
    current_wer: float
    candidate_wer: float
    current_cer: float
    candidate_cer: float
    current_insertion_rate: float
    candidate_insertion_rate: float
    interval: Interval
    passed: bool
    rule: str  # why it passed or failed, in plain English (logs, CLI, model card)
    baseline: str = SERVING  # which model the candidate is compared with
    clusters: int = 0
    users: int = 0
    users_better: int = 0
    p_value: float | None = None
    # The interval's confidence (the gain test's, or the guards'); 0: an older record.
    interval_confidence: float = 0.0
    # Confirmed clusters (the "✅ Giusto" button), and whether the set was post-stratified
    # by corrected / confirmed clips (``training.gate_stats``).
    confirmed_clusters: int = 0
    stratified: bool = False

    @property
    def verdict(self) -> Verdict:
        return self.interval.verdict

    def describe(self) -> str:
        i = self.interval
        versus = "" if self.baseline == SERVING else f" vs {self.baseline}"
        return (
            f"{self.eval_set}{versus} ({self.clips} clips, {self.clusters} clusters, "
            f"{self.users} users): WER "
            f"{pct(self.current_wer)} -> {pct(self.candidate_wer)}, change {signed(i.delta)} "
            f"[{signed(i.low)}, {signed(i.high)}]: {self.verdict}; {self.rule}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = str(self.role)
        data["verdict"] = str(self.verdict)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetCheck:
        known = {f.name for f in dataclasses.fields(cls)}
        fields = {k: v for k, v in data.items() if k in known}
        fields["role"] = Role(fields["role"])
        fields["interval"] = Interval(**fields["interval"])
        return cls(**fields)


@dataclass(frozen=True)
class GateDecision:
    promote: bool
    primary_set: str | None
    checks: tuple[SetCheck, ...]
    confidence: float
    # Said when no check could be made (no set large enough to judge).
    note: str | None = None

    @property
    def reasons(self) -> tuple[str, ...]:
        lines = tuple(check.describe() for check in self.checks)
        return (self.note, *lines) if self.note else lines

    @property
    def summary(self) -> str:
        return "; ".join(self.reasons)

    def check(self, eval_set: str) -> SetCheck | None:
        return next((c for c in self.checks if c.eval_set == eval_set), None)

    def to_dict(self) -> dict[str, Any]:
        return {
            "promote": self.promote,
            "primary_set": self.primary_set,
            "confidence": self.confidence,
            "note": self.note,
            "checks": [check.to_dict() for check in self.checks],
            "reasons": list(self.reasons),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> GateDecision:
        return cls(
            promote=bool(data["promote"]),
            primary_set=data.get("primary_set"),
            checks=tuple(SetCheck.from_dict(c) for c in data.get("checks", ())),
            confidence=float(data.get("confidence", GatePolicy().confidence)),
            note=data.get("note"),
        )


def pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def signed(value: float) -> str:
    return f"{100 * value:+.1f}"
