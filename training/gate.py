"""The gate: promote a candidate only on an improvement that is unlikely to be noise.

Candidate and serving model are evaluated with the serving engine on the same clips
(``model.asr.evaluation``). Each set gets a paired comparison: the change in WER and a
bootstrap confidence interval for it, resampling *sentences* (every clip of a sentence
together, since two voices reading one sentence are not two independent trials).

Sets and their roles:

* ``heldout`` (primary): held-out corrections whose sentences training never saw;
* ``general`` (guard, or primary while ``heldout`` is too small): an admin-provided set of
  other speech, against forgetting;
* ``recent`` (guard, on by default): recent audio nobody corrected, with the transcript
  the users were given as reference. Silence is weak approval, so it only catches a
  candidate that changes much of what users accepted (forgetting, loops), with a wider
  tolerance.

Promotion needs all of: on the primary set, the whole interval below
``-min_wer_improvement`` (a gain at least that large, with the policy's confidence); on each guard,
a WER change no larger than its tolerance; no set where the candidate loops (insertion
rate above ``max_insertion_rate`` and above the serving model's).
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np

from model.asr.normalize import normalize_text
from training.configurable import configurable

if TYPE_CHECKING:
    from model.asr.evaluation import Evaluation

HELDOUT_SET = "heldout"
GENERAL_SET = "general"
RECENT_SET = "recent"
# The order sets are judged and shown in.
SET_ORDER = (HELDOUT_SET, GENERAL_SET, RECENT_SET)


class Role(enum.StrEnum):
    PRIMARY = "primary"
    GUARD = "guard"


class Verdict(enum.StrEnum):
    """What the interval says about the candidate on one set."""

    BETTER = "better"
    WORSE = "worse"
    INCONCLUSIVE = "inconclusive"


@dataclass(frozen=True, kw_only=True)
class GatePolicy:
    min_wer_improvement: float = configurable(
        0.005, setting="gate_min_wer_improvement", help="Absolute WER gain to promote"
    )
    confidence: float = configurable(
        0.95,
        setting="gate_confidence",
        help="Paired-bootstrap confidence the held-out gain must reach",
    )
    bootstrap_resamples: int = 2000
    general_tolerance: float = configurable(
        0.01, setting="gate_general_tolerance", help="Allowed general-set WER loss"
    )
    # Disagreement with what users were sent, not errors: 19-30% for candidates no worse
    # on other voices (benchmarks/results/demo_training*.md). An alarm for collapse only.
    recent_tolerance: float = configurable(
        0.40,
        setting="gate_recent_tolerance",
        help="Allowed change on recent uncorrected audio (vs what users saw)",
    )
    max_insertion_rate: float = configurable(
        0.2,
        setting="gate_max_insertion_rate",
        help="Refuse candidates inserting more words per reference word (loops)",
    )
    # The bootstrap resamples sentences: with one it has a single draw, with two three, and
    # its "95%" interval is a fiction. With 3 (10 distinct draws) a gain can only show if
    # every sentence improved; stricter installations raise it.
    min_eval_sentences: int = configurable(
        3,
        setting="gate_min_eval_sentences",
        help="Different sentences a set needs before the gate judges on it",
        ge=2,
    )
    seed: int = 0

    def tolerance(self, eval_set: str) -> float:
        return self.recent_tolerance if eval_set == RECENT_SET else self.general_tolerance


@dataclass(frozen=True)
class Interval:
    """Candidate WER minus serving WER (negative = better), with its bootstrap bounds."""

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

    @property
    def verdict(self) -> Verdict:
        return self.interval.verdict

    def describe(self) -> str:
        i = self.interval
        return (
            f"{self.eval_set} ({self.clips} clips, {self.sentences} sentences): WER "
            f"{_pct(self.current_wer)} -> {_pct(self.candidate_wer)}, change {_signed(i.delta)} "
            f"[{_signed(i.low)}, {_signed(i.high)}]: {self.verdict}; {self.rule}"
        )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["role"] = str(self.role)
        data["verdict"] = str(self.verdict)
        return data

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SetCheck:
        fields = {k: v for k, v in data.items() if k != "verdict"}
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


# --------------------------------------------------------------------------- statistics


@dataclass(frozen=True)
class PairedErrors:
    """Per-clip word errors of both models on the same clips, with each clip's sentence."""

    groups: tuple[str, ...]
    reference_words: tuple[int, ...]
    current_errors: tuple[int, ...]
    candidate_errors: tuple[int, ...]

    @classmethod
    def from_evaluations(cls, current: Evaluation, candidate: Evaluation) -> PairedErrors:
        """Clips scored by both (one may have skipped audio purged in between)."""
        theirs = {clip.audio_path: clip for clip in current.clips}
        pairs = [
            (theirs[clip.audio_path], clip)
            for clip in candidate.clips
            if clip.audio_path in theirs and clip.reference_words
        ]
        return cls(
            groups=tuple(normalize_text(cur.reference) for cur, _ in pairs),
            reference_words=tuple(cur.reference_words for cur, _ in pairs),
            current_errors=tuple(cur.word_errors for cur, _ in pairs),
            candidate_errors=tuple(cand.word_errors for _, cand in pairs),
        )

    @property
    def clips(self) -> int:
        return len(self.groups)

    @property
    def sentences(self) -> int:
        return len(set(self.groups))


def paired_bootstrap(
    paired: PairedErrors, *, resamples: int, confidence: float, seed: int
) -> Interval:
    """Percentile interval of (candidate WER - current WER), resampling sentence groups."""
    if not paired.clips:
        return Interval(0.0, 0.0, 0.0)
    names = sorted(set(paired.groups))
    index = {name: i for i, name in enumerate(names)}
    # Per sentence: reference words and both models' errors, summed over its clips.
    totals = np.zeros((len(names), 3), dtype=np.float64)
    for group, words, cur, cand in zip(
        paired.groups, paired.reference_words, paired.current_errors, paired.candidate_errors,
        strict=True,
    ):  # fmt: skip
        totals[index[group]] += (words, cur, cand)
    delta = float((totals[:, 2].sum() - totals[:, 1].sum()) / totals[:, 0].sum())
    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(names), size=(resamples, len(names)))
    sums = totals[draws].sum(axis=1)  # (resamples, 3)
    deltas = (sums[:, 2] - sums[:, 1]) / np.maximum(sums[:, 0], 1.0)
    tail = (1.0 - confidence) / 2 * 100
    low, high = np.percentile(deltas, [tail, 100 - tail])
    return Interval(delta, float(low), float(high))


# --------------------------------------------------------------------------- decision


def decide(
    current: Mapping[str, Evaluation],
    candidate: Mapping[str, Evaluation],
    policy: GatePolicy = GatePolicy(),
) -> GateDecision:
    """Pure decision from both models' evaluations on the same sets."""
    names = [n for n in SET_ORDER if n in current and n in candidate]
    names += sorted(n for n in candidate if n in current and n not in SET_ORDER)
    paired = {name: PairedErrors.from_evaluations(current[name], candidate[name]) for name in names}
    primary = next(
        (
            name
            for name in (HELDOUT_SET, GENERAL_SET)
            if name in paired and paired[name].sentences >= policy.min_eval_sentences
        ),
        None,
    )
    if primary is None:
        note = (
            f"no evaluation set has the {policy.min_eval_sentences} different sentences "
            "needed to judge; the candidate is kept out"
        )
        return GateDecision(False, None, (), policy.confidence, note)
    checks = [
        _check(name, paired[name], current[name], candidate[name], primary, policy)
        for name in names
        if paired[name].clips
    ]
    promote = all(check.passed for check in checks)
    return GateDecision(promote, primary, tuple(checks), policy.confidence)


def _check(
    name: str,
    paired: PairedErrors,
    current: Evaluation,
    candidate: Evaluation,
    primary: str,
    policy: GatePolicy,
) -> SetCheck:
    interval = paired_bootstrap(
        paired,
        resamples=policy.bootstrap_resamples,
        confidence=policy.confidence,
        seed=policy.seed,
    )
    role = Role.PRIMARY if name == primary else Role.GUARD
    if role is Role.PRIMARY:
        # The interval's upper end is the smallest gain the data support at this confidence.
        passed = interval.high < -policy.min_wer_improvement
        rule = (
            f"gain of at least {_pct(policy.min_wer_improvement)} with "
            f"{100 * policy.confidence:.0f}% confidence"
        )
        rule = rule if passed else f"no {rule}"
    else:
        tolerance = policy.tolerance(name)
        passed = interval.delta <= tolerance
        rule = (
            f"within the {_pct(tolerance)} tolerance"
            if passed
            else f"regresses beyond the {_pct(tolerance)} tolerance"
        )
    cur, cand = current.rates, candidate.rates
    loops = cand.insertion_rate > max(policy.max_insertion_rate, cur.insertion_rate)
    if loops:  # an alarm on loops the candidate brings, not on a set where both insert
        passed = False
        rule += f"; insertion rate {_pct(cand.insertion_rate)} (generation loops?)"
    return SetCheck(
        eval_set=name,
        role=role,
        clips=paired.clips,
        sentences=paired.sentences,
        current_wer=cur.wer,
        candidate_wer=cand.wer,
        current_cer=cur.cer,
        candidate_cer=cand.cer,
        current_insertion_rate=cur.insertion_rate,
        candidate_insertion_rate=cand.insertion_rate,
        interval=interval,
        passed=passed,
        rule=rule,
    )


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def _signed(value: float) -> str:
    return f"{100 * value:+.1f}"
