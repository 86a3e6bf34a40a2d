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
* **Confirmed clips.** A user may confirm a transcript as right (the "✅ Giusto"
  button): such a clip was selected on the transcribing model being *right*, the other
  side of what users were served. With at least ``min_confirmed_clusters`` confirmed
  clusters (and some corrected ones) the gate post-stratifies instead of correcting:
  every clip's change is plain ``candidate - baseline``, the corrected clusters together
  weigh ``1 - p0`` of the users' part of the set and the confirmed ones ``p0``, as wrong
  and right transcripts weigh among those served. By the law of total expectation that
  mean is the change over everything served, whatever the correlation between the two
  models' errors (the correction above needs independence and, errors being correlated
  in practice, often hides a real gain). A confirmed cluster may weigh at most
  ``MAX_UPWEIGHT`` corrected ones; with fewer confirmations they are compared as they
  are (the baseline had no errors there to lose: that only makes the test stricter).
  Users are capped within each stratum, so the strata keep their weights. The strata's
  changes are skewed too (mostly zero on confirmed clips), so the gain test keeps the
  reduced level of selected sets (``GatePolicy.selected_alpha_factor``).
* **The test.** An exact sign-flip (randomisation) test over clusters, every one of the
  2^n sign patterns while n <= ``EXACT_MAX_CLUSTERS``, a seeded Monte-Carlo sample beyond;
  the interval flips the centred cluster values (a Rademacher wild bootstrap).
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
from dataclasses import dataclass

import numpy as np

# 2^12 = 4,096 sign patterns: exact; beyond, as many Monte-Carlo patterns as asked.
EXACT_MAX_CLUSTERS = 12
_WATER_FILL_ROUNDS = 50
# Post-stratification (module docstring): a confirmed cluster may weigh at most this many
# corrected ones. Confirmed clips' changes are mostly zero with a long tail, and a few of
# them carrying much weight make the sign-flip test too liberal (tests/unit/
# test_gate_confirmations.py).
MAX_UPWEIGHT = 3.0


@dataclass(frozen=True)
class PairedClip:
    """One clip scored by both models."""

    speaker: str
    sentence: str
    baseline_wer: float
    candidate_wer: float
    # True when the clip exists because a model's transcript of it was wrong.
    selected: bool = False
    # True when its sender confirmed the transcript as right (see the module docstring).
    confirmed: bool = False


@dataclass(frozen=True)
class ClusterData:
    speakers: tuple[str, ...]
    values: np.ndarray  # per cluster: mean corrected change (negative = candidate better)
    weights: np.ndarray  # per cluster, summing to 1
    # Per cluster: some clip where the baseline erred (there was something to gain).
    room: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=bool))
    # Post-stratified by corrected / confirmed clips (see the module docstring).
    stratified: bool = False
    confirmed: int = 0  # confirmed clusters

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

    def users_judged(self) -> int:
        """The users a majority is counted among: all of them, except, when stratified,
        users whose clips the baseline got all right (nothing to gain, only to lose:
        their losses still count in the mean)."""
        if not self.stratified:
            return self.users
        return len({s for s, room in zip(self.speakers, self.room, strict=True) if room})


_CORRECTED, _CONFIRMED, _OTHER = "corrected", "confirmed", "other"
_STRATA = (_CONFIRMED, _CORRECTED, _OTHER)


def _stratum(clip: PairedClip) -> str:
    if clip.confirmed:
        return _CONFIRMED
    return _CORRECTED if clip.selected else _OTHER


def clusters(
    clips: list[PairedClip],
    *,
    uncorrected_share: float,
    max_user_share: float,
    min_confirmed_clusters: int = 0,
) -> ClusterData:
    """Cluster values (see the module docstring) and capped weights; post-stratified
    when there are ``min_confirmed_clusters`` (at least 1) confirmed clusters."""
    p0 = min(max(uncorrected_share, 0.0), 1.0)
    by_voice: dict[tuple[str, str], list[PairedClip]] = {}
    for clip in clips:
        by_voice.setdefault((clip.speaker, clip.sentence), []).append(clip)
    # One speaker's clips of one sentence are one cluster, in one stratum (the first of
    # confirmed, corrected, other that any of them is in): they are not independent.
    groups = {
        (min((_stratum(c) for c in members), key=_STRATA.index), speaker, sentence): members
        for (speaker, sentence), members in by_voice.items()
    }
    keys = sorted(groups)
    counts = {name: sum(key[0] == name for key in keys) for name in (_CORRECTED, _CONFIRMED)}
    stratified = (
        counts[_CONFIRMED] >= max(min_confirmed_clusters, 1)
        and counts[_CORRECTED] > 0
        # Per cluster, a confirmed one weighs at most MAX_UPWEIGHT corrected ones.
        and p0 * counts[_CORRECTED] <= MAX_UPWEIGHT * (1.0 - p0) * counts[_CONFIRMED]
    )
    keep = 1.0 if stratified else 1.0 - p0
    values = np.array(
        [
            np.mean(
                [
                    c.candidate_wer - (keep * c.baseline_wer if c.selected else c.baseline_wer)
                    for c in groups[key]
                ]
            )
            for key in keys
        ],
        dtype=np.float64,
    )
    room = np.array([any(c.baseline_wer > 0 for c in groups[key]) for key in keys], dtype=bool)
    speakers = tuple(speaker for _, speaker, _ in keys)
    if not stratified:
        weights = capped_weights(speakers, max_user_share)
    else:
        users_part = (counts[_CORRECTED] + counts[_CONFIRMED]) / len(keys)
        shares = {
            _CORRECTED: users_part * (1.0 - p0),
            _CONFIRMED: users_part * p0,
            _OTHER: 1.0 - users_part,
        }
        weights = np.zeros(len(keys))
        for name, share in shares.items():
            mask = np.array([key[0] == name for key in keys], dtype=bool)
            if mask.any():
                inside = tuple(s for s, m in zip(speakers, mask, strict=True) if m)
                weights[mask] = share * capped_weights(inside, max_user_share)
    return ClusterData(
        speakers, values, weights, room, stratified=stratified, confirmed=counts[_CONFIRMED]
    )


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
