"""The gate's statistics: paired per-clip changes, clustered by speaker x sentence.

* **Clips, not words.** Each clip contributes its own WER change (candidate minus
  baseline, per-clip WER), so a ten-minute clip weighs what a short sentence weighs.
* **Clusters.** Two voices reading one sentence, or one user's many notes, are not
  independent trials: a cluster is one speaker (the user who sent the clip; for imported
  samples the speaker named in the TSV) saying one normalised sentence. A cluster's value
  is the mean of its clips' changes.
* **Capped users.** No user holds more than ``max_user_share`` of the total weight
  (water-filling: a larger user's clusters are scaled down, the others' up).
* **Selection on errors.** A held-out correction exists only because some model's
  transcript was wrong (a correction equal to the transcript is refused), so a candidate
  that is no better but errs on *other* clips looks better there. For such a clip the
  change is measured as ``candidate - (1 - p0) x baseline``, where ``p0`` is the share of
  served transcripts nobody corrected: if the candidate's errors were independent of the
  selecting model's, its expected WER on selected clips is the population WER ``mu``,
  while the baseline's is ``mu / (1 - p0)``, so the corrected change has mean zero under
  the null; errors that are positively correlated (the realistic case) only make it
  conservative. Imported samples were selected by nobody and are not corrected.
* **The test.** An exact sign-flip (randomisation) test over clusters, every one of the
  2^n sign patterns while n <= ``EXACT_MAX_CLUSTERS``, a seeded Monte-Carlo sample beyond;
  the interval flips the centred cluster values (a Rademacher wild bootstrap).
"""

from __future__ import annotations

import functools
import itertools
from dataclasses import dataclass

import numpy as np

# 2^12 = 4,096 sign patterns: exact; beyond, as many Monte-Carlo patterns as asked.
EXACT_MAX_CLUSTERS = 12
_WATER_FILL_ROUNDS = 50


@dataclass(frozen=True)
class PairedClip:
    """One clip scored by both models."""

    speaker: str
    sentence: str
    baseline_wer: float
    candidate_wer: float
    # True when the clip exists because a model's transcript of it was wrong.
    selected: bool = False


@dataclass(frozen=True)
class ClusterData:
    speakers: tuple[str, ...]
    values: np.ndarray  # per cluster: mean corrected change (negative = candidate better)
    weights: np.ndarray  # per cluster, summing to 1

    @property
    def size(self) -> int:
        return len(self.speakers)

    @property
    def users(self) -> int:
        return len(set(self.speakers))

    @property
    def mean(self) -> float:
        return float(self.weights @ self.values) if self.size else 0.0

    def users_better(self) -> int:
        """Users whose own weighted mean change is a gain."""
        better = 0
        for user in set(self.speakers):
            mask = np.array([s == user for s in self.speakers])
            if float(self.weights[mask] @ self.values[mask]) < 0:
                better += 1
        return better


def clusters(
    clips: list[PairedClip], *, uncorrected_share: float, max_user_share: float
) -> ClusterData:
    """Cluster values (see the module docstring) and capped weights."""
    keep = 1.0 - min(max(uncorrected_share, 0.0), 1.0)
    groups: dict[tuple[str, str], list[float]] = {}
    for clip in clips:
        baseline = keep * clip.baseline_wer if clip.selected else clip.baseline_wer
        groups.setdefault((clip.speaker, clip.sentence), []).append(clip.candidate_wer - baseline)
    keys = sorted(groups)
    speakers = tuple(speaker for speaker, _ in keys)
    values = np.array([np.mean(groups[key]) for key in keys], dtype=np.float64)
    return ClusterData(speakers, values, capped_weights(speakers, max_user_share))


def capped_weights(speakers: tuple[str, ...], max_user_share: float) -> np.ndarray:
    """Equal weight per cluster, then no speaker above ``max_user_share`` of the total
    (when fewer speakers than ``1 / max_user_share`` make that impossible: equal shares)."""
    if not speakers:
        return np.zeros(0)
    names = sorted(set(speakers))
    counts = np.array([speakers.count(name) for name in names], dtype=np.float64)
    share = counts / counts.sum()
    cap = max(max_user_share, 1.0 / len(names))
    for _ in range(_WATER_FILL_ROUNDS):
        over = share > cap + 1e-12
        if not over.any():
            break
        excess = float((share[over] - cap).sum())
        share[over] = cap
        under = ~over & (share < cap)
        share[under] += excess * share[under] / share[under].sum()
    per_cluster = {name: share[i] / counts[i] for i, name in enumerate(names)}
    return np.array([per_cluster[s] for s in speakers], dtype=np.float64)


def sign_patterns(n: int, *, resamples: int, seed: int) -> np.ndarray:
    """(patterns, n) of +-1: all 2^n when n is small, else a seeded random sample."""
    if n <= EXACT_MAX_CLUSTERS:
        return _all_patterns(n)
    rng = np.random.default_rng(seed)
    return rng.choice((1.0, -1.0), size=(resamples, n))


@functools.cache
def _all_patterns(n: int) -> np.ndarray:
    patterns = np.array(list(itertools.product((1.0, -1.0), repeat=n)), dtype=np.float64)
    patterns.setflags(write=False)
    return patterns


def p_value_below(data: ClusterData, shift: float, *, resamples: int, seed: int) -> float:
    """One-sided p-value of "the mean change is at least ``shift``" against "below it":
    the share of sign patterns whose mean is at most the observed one."""
    if not data.size:
        return 1.0
    centred = data.values - shift
    observed = float(data.weights @ centred)
    flipped = sign_patterns(data.size, resamples=resamples, seed=seed) @ (data.weights * centred)
    exact = data.size <= EXACT_MAX_CLUSTERS
    hits = int(np.sum(flipped <= observed + 1e-12))
    return hits / len(flipped) if exact else (hits + 1) / (len(flipped) + 1)


def interval(
    data: ClusterData, *, confidence: float, resamples: int, seed: int
) -> tuple[float, float, float]:
    """(mean, low, high): the centred cluster values' sign-flip spread around the mean."""
    if not data.size:
        return 0.0, 0.0, 0.0
    mean = data.mean
    residuals = data.weights * (data.values - mean)
    spread = sign_patterns(data.size, resamples=resamples, seed=seed) @ residuals
    half = float(np.quantile(np.abs(spread), confidence))
    return mean, mean - half, mean + half
